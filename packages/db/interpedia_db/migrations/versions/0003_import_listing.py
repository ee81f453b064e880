"""import listing: each file's listed size and ETag, and rows skipped on import.

An import without a manifest (Neuronpedia's bucket has none) checks each download
against what the listing said, so the listing is kept per file. Rows whose ids are
already used under another model or source are skipped by the conflict clause;
`rows_skipped` counts them so the import and its verification can say so.

Revision ID: 0003_import_listing
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_import_listing"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("import_files", sa.Column("listed_size", sa.BigInteger(), nullable=True))
    op.add_column("import_files", sa.Column("etag", sa.String(length=128), nullable=True))
    op.add_column(
        "import_files",
        sa.Column("rows_skipped", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("import_files", "rows_skipped")
    op.drop_column("import_files", "etag")
    op.drop_column("import_files", "listed_size")
