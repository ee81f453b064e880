"""Settings shared by every service and tool.

Each service subclasses `CommonSettings` with its own `env_prefix`
(`INTERPEDIA_INFERENCE_`, ...). The shared fields carry explicit aliases, so they
are read from the same variables whatever the subclass's prefix: one
`DATABASE_URL` configures the whole platform. Settings are built in `create_app`
or a CLI entry point and injected; nothing builds them at import time.
"""

import sys
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every process needs: where the database is, where data and caches live."""

    model_config = SettingsConfigDict(
        env_prefix="INTERPEDIA_", extra="ignore", populate_by_name=True
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "INTERPEDIA_DATABASE_URL", "database_url"),
        description="PostgreSQL URL. Unset: start or attach to the embedded server.",
    )
    data_dir: Path = Field(
        default=Path(".data"),
        validation_alias=AliasChoices("INTERPEDIA_DATA_DIR", "data_dir"),
        description="Where the embedded database, trained SAEs and imports are kept.",
    )
    cache_dir: Path = Field(
        default=Path(".cache"),
        validation_alias=AliasChoices("INTERPEDIA_CACHE_DIR", "cache_dir"),
        description="Re-creatable downloads and conversions (corpora, activation caches).",
    )
    embedded_db_port: int = Field(
        default=54329,
        validation_alias=AliasChoices("INTERPEDIA_EMBEDDED_DB_PORT", "embedded_db_port"),
        description="Port of the embedded PostgreSQL server (127.0.0.1 only).",
    )
    graph_env: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("INTERPEDIA_GRAPH_ENV", "graph_env"),
        description="The graph service's own virtualenv (default: .venv-graph beside the "
        "running one); it cannot share this one (circuit-tracer pins transformers 4.57).",
    )
    log_level: str = Field(
        default="INFO",
        validation_alias=AliasChoices("INTERPEDIA_LOG_LEVEL", "log_level"),
        description="Python logging level for every service.",
    )

    @property
    def embedded_db_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def graph_bin(self) -> Path:
        """The graph environment's bin/ (its python and `interpedia-graph`)."""
        return (self.graph_env or Path(sys.prefix).parent / ".venv-graph") / "bin"


class ServiceSettings(CommonSettings):
    """Common fields of an HTTP service; subclasses set `port`'s default and a prefix."""

    host: str = Field(
        default="127.0.0.1", description="Interface to listen on (0.0.0.0 in containers)."
    )
    port: int = 0
    secret: str | None = Field(
        default=None,
        description="If set, every request but /health needs header X-SECRET-KEY with this value.",
    )


def env_variables(settings_class: type[BaseSettings]) -> dict[str, str]:
    """Every environment variable a settings class reads, with its description.

    A field with explicit aliases is read from those (uppercase ones are variables);
    any other field from `env_prefix` + its name. Used to write and check .env.example.
    """
    prefix = settings_class.model_config.get("env_prefix", "")
    variables: dict[str, str] = {}
    for name, field in settings_class.model_fields.items():
        description = field.description or name.replace("_", " ")
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
        elif isinstance(alias, str) and alias.isupper():
            names = [alias]
        else:
            names = [f"{prefix}{name}".upper()]
        for i, variable in enumerate(names):
            variables[variable] = description if i == 0 else f"Same as {names[0]}."
    return variables
