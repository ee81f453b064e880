"""What every service's wire models share: bounded numbers and the error bodies.

Ids and indices end up in PostgreSQL `integer` and `bigint` columns, seeds in torch's
generator and offsets in `OFFSET` clauses. A value beyond what those hold failed deep
inside a query or a library, as a 500. Declaring each bound here, once, puts it in every
service's spec, so clients and fuzzers see it and an out-of-range value is a 422 that
names the field. Every schema and path parameter that takes such a number uses these.
"""

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

INT32_MAX = 2**31 - 1  # PostgreSQL `integer`
INT64_MAX = 2**63 - 1  # PostgreSQL `bigint`

FeatureIndex = Annotated[
    int, Field(ge=0, le=INT32_MAX, description="Feature index in its source (0-based).")
]
# Keys of `integer` serial columns: training runs, imports, users, API keys.
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]
# Keys of `bigint` serial columns: explanations, scores, queue jobs.
BigRowId = Annotated[int, Field(ge=1, le=INT64_MAX)]
# What torch.Generator.manual_seed takes: any signed or unsigned 64-bit value.
Seed = Annotated[int, Field(ge=-(2**63), le=2**64 - 1, description="Sampling seed.")]
MAX_OFFSET = 10_000
# Result pages deeper than this are not served: no one reads them, and the index scans
# behind a page grow with its offset.
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Results to skip.")]


# A text that must say something: at least one character that is not white space.
NonBlankText = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


class ErrorResponse(BaseModel):
    """Every error answer: what went wrong, in words the caller can act on."""

    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where the bad value is (`body`, field names...).")
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """A 422: the request did not match the schema."""

    detail: str = Field(description="Every problem in one line: `field: message; ...`.")
    errors: list[ValidationErrorItem]
