"""Wire models of /v1/util/*."""

from pydantic import Field

from interpedia_core.wire import FeatureIndex
from interpedia_inference.schemas.common import BaseSchema


class UtilSaeVectorRequest(BaseSchema):
    model: str
    source: str
    index: FeatureIndex


class UtilSaeVectorResponse(BaseSchema):
    vector: list[float]
    hook_name: str = Field(alias="hookName")


class FeatureRef(BaseSchema):
    model: str
    source: str
    index: FeatureIndex


class UtilSaeTopkByDecoderCossimRequest(BaseSchema):
    feature: FeatureRef | None = None
    vector: list[float] | None = None
    model: str
    source: str
    num_results: int = Field(default=10, gt=0, description="Clamped to 128 and to d_sae")


class CossimFeature(BaseSchema):
    feature: FeatureRef
    cosine_similarity: float


class UtilSaeTopkByDecoderCossimResponse(BaseSchema):
    feature: FeatureRef | None = None
    topk_decoder_cossim_features: list[CossimFeature]
