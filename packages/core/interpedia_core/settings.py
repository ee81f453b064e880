"""Settings shared by every service and tool.

Each service subclasses `CommonSettings` with its own `env_prefix`
(`INTERPEDIA_INFERENCE_`, ...). The shared fields carry explicit aliases, so they
are read from the same variables whatever the subclass's prefix: one
`DATABASE_URL` configures the whole platform. Settings are built in `create_app`
or a CLI entry point and injected; nothing builds them at import time.

An empty variable means unset (`env_ignore_empty`): compose files and shells pass
`VAR=` / `${VAR:-}` for "not configured", and an optional secret or URL must then take
its default (None), not the empty string, which a validator would rightly refuse.
Subclasses inherit this, since pydantic merges `model_config` with the parent's.
"""

import sys
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every process needs: where the database is, where data and caches live."""

    # Settings hold secrets: a refused value is named, never echoed.
    model_config = SettingsConfigDict(
        env_prefix="INTERPEDIA_",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
        env_ignore_empty=True,
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


class SharedSecretSettings(CommonSettings):
    """The internal services' shared secret, `INTERPEDIA_SECRET` or a file holding it
    (`INTERPEDIA_SECRET_FILE`, which docker compose generates): resolved here once for the
    services that require it and the tools that send it (the demo's graph request)."""

    shared_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INTERPEDIA_SECRET", "shared_secret"),
        description="The secret the internal services require (header X-SECRET-KEY) and the "
        "web API sends them. Required when one listens beyond 127.0.0.1.",
    )
    shared_secret_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("INTERPEDIA_SECRET_FILE", "shared_secret_file"),
        description="A file holding INTERPEDIA_SECRET (docker compose generates one), read "
        "when that is unset.",
    )

    # `secret` is ServiceSettings' own (check_fields=False lets a subclass's field share this).
    @field_validator("shared_secret", "secret", mode="before", check_fields=False)
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # Compose passes `${VAR:-}`: an empty value means "not set", never "the empty secret".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _read_secret_file(self) -> Self:
        if self.shared_secret is None and self.shared_secret_file:
            if not self.shared_secret_file.is_file():
                raise ValueError(f"INTERPEDIA_SECRET_FILE {self.shared_secret_file} is not a file")
            self.shared_secret = self.shared_secret_file.read_text().strip() or None
        return self


class ServiceSettings(SharedSecretSettings):
    """Common fields of an HTTP service; subclasses set `port`'s default and a prefix.

    A service's own `..._SECRET` overrides the shared one; `secret` is the one that
    applies, after the fallbacks.
    """

    host: str = Field(
        default="127.0.0.1", description="Interface to listen on (0.0.0.0 in containers)."
    )
    port: int = 0
    secret: str | None = Field(
        default=None,
        description="If set, every request but /health needs header X-SECRET-KEY with this "
        "value (default: INTERPEDIA_SECRET).",
    )

    @model_validator(mode="after")
    def _resolve_secret(self) -> Self:
        # Runs after the parent's validator, so a secret file has been read.
        if self.secret is None:
            self.secret = self.shared_secret
        return self


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
