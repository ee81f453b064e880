"""Wire models of /v1/tokenize."""

from pydantic import Field

from interpedia_inference.schemas.common import BaseSchema


class TokenizeRequest(BaseSchema):
    model: str
    text: str
    prepend_bos: bool | None = Field(default=None, description="Omit: the model's default")


class TokenizeResponse(BaseSchema):
    tokens: list[int]
    token_strings: list[str]
    prepend_bos: bool
