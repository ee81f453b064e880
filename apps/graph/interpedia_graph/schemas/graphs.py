"""Our own `/v1` routes: graph jobs, stored graphs and the transcoder sets they use."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from interpedia_graph.schemas.neuronpedia import AttributionParameters, GraphSchema


class GraphCreateRequest(AttributionParameters):
    """POST /v1/graphs: queue a graph; its job reports progress, the graph is stored."""

    model_id: str = Field(max_length=256)
    transcoder_set: str | None = Field(
        default=None,
        max_length=128,
        description="A registered transcoder set (default: the service's).",
    )
    slug: str | None = Field(
        default=None,
        max_length=128,
        description="The graph's name within the model (default: made from the prompt).",
    )
    user_id: int | None = Field(default=None, description="The owner (a web API user id).")


class GraphInfo(GraphSchema):
    """A stored graph's metadata (its JSON is GET /v1/graphs/{model_id}/{slug})."""

    id: str
    model_id: str
    slug: str
    prompt: str
    prompt_tokens: list[str]
    source_set_name: str | None
    n_nodes: int
    n_links: int
    user_id: int | None
    created_at: datetime


JobStatus = Literal["todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted"]


class GraphJobResponse(GraphSchema):
    """A graph job: where it is, and the stored graph once it succeeded."""

    job_id: int
    status: JobStatus
    model_id: str
    slug: str
    done: int | None = None
    total: int | None = None
    message: str = ""
    graph: GraphInfo | None = None


class GraphJobListResponse(GraphSchema):
    """GET /v1/jobs: a model's graph jobs under way or recently ended, newest first."""

    jobs: list[GraphJobResponse]


class GraphListResponse(GraphSchema):
    graphs: list[GraphInfo]


class TranscoderSetInfo(GraphSchema):
    name: str
    model_id: str
    n_layers: int
    d_transcoder: int
    description: str


class TranscoderSetsResponse(GraphSchema):
    model_id: str
    default: str | None = Field(description="The set used when a request names none.")
    transcoder_sets: list[TranscoderSetInfo]
