"""Neuronpedia's attribution-graph JSON: the models that check it, and reading and writing it.

A graph file is what circuit-tracer's `create_graph_files` writes and Neuronpedia's graph
pages read: `metadata` (slug, scan = the model id, prompt_tokens, prompt, and optional
`info`, `generation_settings`, `pruning_settings`), `qParams` (the viewer's state: pinned
ids, supernodes), `nodes` (embeddings, transcoder features, error nodes and logits, each
with a `node_id`, its `layer` and token position `ctx_idx`) and `links` (weighted edges
between node ids). The checks follow the fields Neuronpedia's upload validator requires;
on top of them a link must join two nodes of the file, since a viewer cannot draw one
that does not. Unknown fields are kept, so a newer file round-trips.

Feature nodes of per-layer transcoders carry their feature as `node_id`
`{layer}_{index}_{ctx_idx}` (the `feature` field holds a Cantor pairing of layer and
index); `feature_of` turns one back into (layer, index) so a node can link to its
feature page.
"""

import gzip
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Neuronpedia refuses anything else in a slug or scan when it stores a graph.
SLUG_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
GZIP_MAGIC = b"\x1f\x8b"
TRANSCODER_FEATURE_TYPES = frozenset({"cross layer transcoder", "transcoder"})
ERROR_FEATURE_TYPE = "mlp reconstruction error"


def error_node_id(layer: int, ctx_idx: int) -> str:
    """An error node's id, `{layer}_-1_{ctx_idx}` (feature -1, as its `feature` field says).

    circuit-tracer 0.5.0 writes `0_{layer}_{ctx_idx}`, the id of layer 0's feature number
    `layer` at the same position, so a graph with such a feature has two nodes of one id and
    links that could be either (circuit-tracer issue #78, fixed upstream this way).
    """
    return f"{layer}_-1_{ctx_idx}"


class MalformedGraphError(ValueError):
    """The bytes are not an attribution graph in Neuronpedia's format; says what is wrong."""


class GraphMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    slug: str
    scan: str = Field(description="The model id the graph belongs to.")
    prompt_tokens: list[str]
    prompt: str
    node_threshold: float | None = None
    info: dict[str, Any] | None = None
    generation_settings: dict[str, Any] | None = None
    pruning_settings: dict[str, Any] | None = None

    @field_validator("slug", "scan")
    @classmethod
    def _storable(cls, value: str) -> str:
        if not SLUG_PATTERN.match(value):
            raise ValueError(
                "use 1 to 128 letters, digits, underscores, hyphens and periods, "
                f"not {value[:40]!r}"
            )
        return value


class GraphNode(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    node_id: str
    feature: int | None
    layer: str | int
    ctx_idx: int
    feature_type: str
    jsNodeId: str
    clerp: str
    influence: float | None = None
    activation: float | None = None


class GraphLink(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    source: str
    target: str
    weight: float


class AttributionGraph(BaseModel):
    """A whole graph file."""

    model_config = ConfigDict(extra="allow")

    metadata: GraphMetadata
    qParams: dict[str, Any]
    nodes: list[GraphNode]
    links: list[GraphLink]

    @model_validator(mode="after")
    def _links_join_nodes(self) -> "AttributionGraph":
        ids = {node.node_id for node in self.nodes}
        if len(ids) != len(self.nodes):
            raise ValueError("two nodes share a node_id")
        for i, link in enumerate(self.links):
            for end in (link.source, link.target):
                if end not in ids:
                    raise ValueError(f"links[{i}] joins {end!r}, which is not a node of the graph")
        return self


def _where(error: dict[str, Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")


def parse_graph(data: bytes | str | dict[str, Any]) -> AttributionGraph:
    """Read a graph file (plain or gzipped JSON, or its parsed JSON); `MalformedGraphError`
    names what is wrong."""
    if isinstance(data, bytes) and data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MalformedGraphError(f"not a readable gzip file: {exc}") from None
    try:
        document = data if isinstance(data, dict) else json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedGraphError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedGraphError(
            "a graph file is a JSON object with metadata, qParams, nodes and links"
        )
    try:
        return AttributionGraph.model_validate(document)
    except ValidationError as exc:
        problems = [f"{_where(e) or 'graph'}: {e['msg']}" for e in exc.errors()[:5]]
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise MalformedGraphError(
            "not an attribution graph in Neuronpedia's format: " + "; ".join(problems) + more
        ) from None


def graph_gzip(graph: dict[str, Any] | AttributionGraph) -> bytes:
    """The graph as gzipped JSON, as it is stored and served."""
    if isinstance(graph, AttributionGraph):
        graph = graph.model_dump(mode="json", exclude_unset=True)
    return gzip.compress(json.dumps(graph, separators=(",", ":")).encode(), compresslevel=6)


def feature_of(node: GraphNode | dict[str, Any]) -> tuple[int, int] | None:
    """(layer, feature index) of a transcoder feature node; None for any other node."""
    values = node.model_dump() if isinstance(node, GraphNode) else node
    if values.get("feature_type") not in TRANSCODER_FEATURE_TYPES:
        return None
    parts = str(values.get("node_id", "")).split("_")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])
