"""Settings of the web API (`INTERPEDIA_WEBAPI_*`); shared ones come from `CommonSettings`."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from interpedia_core.settings import ServiceSettings
from interpedia_formats.locations import ExportLocation, S3Options, open_location
from interpedia_webapi.schemas import MAX_TEXT_CHARS, STEER_MAX_TOKENS


class WebapiSettings(ServiceSettings):
    """Where the other services are, who is admin, and how much a caller may ask for."""

    model_config = SettingsConfigDict(
        env_prefix="INTERPEDIA_WEBAPI_", extra="ignore", populate_by_name=True
    )

    port: int = Field(default=3000, description="Port of the web API and pages.")
    inference_url: str | None = Field(
        default=None, description="Inference service for every model without its own URL."
    )
    inference_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Per-model inference URLs as JSON, e.g. {"gpt2-small": "http://gpu1:5002"}.',
    )
    secret: str | None = Field(
        default=None,
        description="X-SECRET-KEY sent to inference and autointerp unless their own secrets "
        "below are set (default: INTERPEDIA_SECRET). The web API itself checks API keys.",
    )
    inference_secret: str | None = Field(
        default=None,
        description="X-SECRET-KEY for the inference services (default: _SECRET above).",
    )
    autointerp_url: str | None = Field(
        default=None, description="Autointerp service (explanations, scores, search)."
    )
    autointerp_secret: str | None = Field(
        default=None,
        description="X-SECRET-KEY for the autointerp service (default: _SECRET above).",
    )
    graph_url: str | None = Field(
        default=None, description="Graph service (attribution graphs of transcoders)."
    )
    graph_secret: str | None = Field(
        default=None, description="X-SECRET-KEY for the graph service (default: _SECRET above)."
    )
    graph_wait_seconds: float = Field(
        default=1800.0, gt=0, description="How long POST /api/graph/generate waits for its graph."
    )
    max_graph_upload_bytes: int = Field(
        default=100 * 1024 * 1024, gt=0, description="Largest graph file an upload may PUT."
    )
    signing_key: str | None = Field(
        default=None,
        description="Signs graph upload URLs (default: a random key per process; set one "
        "when several web API processes serve).",
    )
    admin_bootstrap_key: str | None = Field(
        default=None,
        description="If set, an `admin` user with this API key is created at start-up.",
    )
    rate_limit_per_minute: float = Field(
        default=60.0, description="Heavy requests (inference, steering, search) per key or address."
    )
    rate_limit_burst: int = Field(
        default=20, description="Heavy requests a key or address may make at once."
    )
    allow_signup: bool = Field(
        default=True, description="Anyone may make an account on the sign-up page."
    )
    session_days: float = Field(
        default=14.0, gt=0, description="Days a browser stays signed in without signing in again."
    )
    secure_cookies: bool = Field(
        default=False,
        description="Mark the sign-in cookies Secure (set it when pages are served over https).",
    )
    signin_per_minute: float = Field(
        default=5.0, gt=0, description="Sign-in attempts per address and user name (burst 5)."
    )
    max_text_chars: int = Field(
        default=MAX_TEXT_CHARS,
        gt=0,
        le=MAX_TEXT_CHARS,
        description=f"Longest text accepted for inference (at most {MAX_TEXT_CHARS}).",
    )
    max_results: int = Field(default=100, description="Most results one search returns.")
    steer_max_tokens: int = Field(
        default=STEER_MAX_TOKENS,
        gt=0,
        le=STEER_MAX_TOKENS,
        description=f"Most tokens one steering request may generate (at most {STEER_MAX_TOKENS}).",
    )
    import_dir: Path | None = Field(
        default=None, description="Scratch folder for import downloads (default DATA_DIR/imports)."
    )
    import_runner: Literal["inline", "queue"] = Field(
        default="inline",
        description="inline: run imports in this process; queue: defer a job to the workers.",
    )
    import_roots: list[str] = Field(
        default_factory=list, description="Folders or URLs the admin page offers to import from."
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store for s3:// imports (MinIO, R2, ...); "
        "unset: AWS. Credentials come from the usual AWS variables or profile.",
    )
    s3_region: str | None = Field(
        default=None,
        description="Region of s3:// buckets; unset: AWS's configuration, else us-east-1.",
    )
    s3_addressing_style: Literal["auto", "virtual", "path"] = Field(
        default="auto",
        description="S3 URL style: virtual-host, path (most self-hosted stores), auto.",
    )
    s3_anonymous: bool | None = Field(
        default=None,
        description="true: never sign S3 requests (public buckets); false: always sign; "
        "unset: sign when AWS credentials are configured.",
    )

    @field_validator("s3_endpoint", "s3_region", "s3_anonymous", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # `VAR=` as .env.example writes it

    @field_validator("admin_bootstrap_key")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("the admin bootstrap key must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _upstream_secrets(self) -> Self:
        self.inference_secret = self.inference_secret or self.secret
        self.autointerp_secret = self.autointerp_secret or self.secret
        self.graph_secret = self.graph_secret or self.secret
        return self

    @property
    def import_scratch(self) -> Path:
        return self.import_dir or (self.data_dir / "imports")

    @property
    def s3_options(self) -> S3Options:
        return S3Options(
            endpoint_url=self.s3_endpoint,
            region=self.s3_region,
            addressing_style=self.s3_addressing_style,
            anonymous=self.s3_anonymous,
        )

    def open_export(self, location: str) -> ExportLocation:
        """An import location (folder, http(s), s3://) opened with these S3 settings."""
        return open_location(location, s3=self.s3_options)

    def inference_url_for(self, model_id: str) -> str | None:
        return self.inference_urls.get(model_id) or self.inference_url
