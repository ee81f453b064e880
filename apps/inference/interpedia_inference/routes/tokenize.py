"""POST /v1/tokenize."""

from fastapi import APIRouter

from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.tokenize import TokenizeRequest, TokenizeResponse

router = APIRouter(tags=["tokenize"])


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, engine: EngineDep) -> TokenizeResponse:
    """Token ids and strings of a text, as the other endpoints see it."""
    engine.check_model(body.model)
    ids = engine.tokenize(body.text, prepend_bos=body.prepend_bos)
    return TokenizeResponse(
        tokens=ids, token_strings=engine.token_strings(ids), prepend_bos=engine.is_bos(ids)
    )
