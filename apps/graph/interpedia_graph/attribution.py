"""One attribution graph: circuit-tracer's `attribute`, then its graph files' JSON.

The attribution is circuit-tracer's own, called as it is. The only thing added is a view
of its progress: `attribute` runs its backward passes through the attribution context's
`compute_batch` (first the logit rows, then the feature rows in batches), so wrapping that
one method counts the rows done, and raising from the count stops the run between two
batches (how a job is cancelled). The JSON is built with the same functions circuit-
tracer's `create_graph_files` uses (`prune_graph`, `create_nodes`, `create_used_nodes_and_
edges`, `build_model`), minus its file writing and its hub lookup of the tokenizer, and
with error nodes named so they cannot collide with a layer-0 feature (`error_node_id`).
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

import torch

from interpedia_formats.neuronpedia_graph import ERROR_FEATURE_TYPE, error_node_id

Progress = Callable[[int, int, str], None]  # (rows done, rows in all, phase); may raise


@dataclass(frozen=True)
class AttributionOptions:
    max_n_logits: int = 10
    desired_logit_prob: float = 0.95
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    max_feature_nodes: int = 256
    batch_size: int = 32


class _CountingModel:
    """The replacement model, with the rows of each backward batch reported to `progress`."""

    def __init__(self, model: Any, options: AttributionOptions, progress: Progress) -> None:
        self._model = model
        self._options = options
        self._progress = progress

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def setup_attribution(self, input_ids: torch.Tensor) -> Any:
        context = self._model.setup_attribution(input_ids)
        active = int(context.activation_matrix._nnz())
        # An upper bound until the logits are chosen (at most max_n_logits of them).
        total = self._options.max_n_logits + min(self._options.max_feature_nodes, active)
        compute_batch = context.compute_batch
        done = 0

        def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
            nonlocal done
            rows = compute_batch(*args, **kwargs)  # [batch, n_nodes]
            done += rows.shape[0]
            self._progress(min(done, total), total, "attributing")
            return rows

        context.compute_batch = counted
        self._progress(0, total, f"attributing {active} active features")
        return context


def trace(
    model: Any, input_ids: torch.Tensor, options: AttributionOptions, progress: Progress
) -> Any:
    """circuit-tracer's `Graph` of the prompt (all active features ranked, the top traced)."""
    from circuit_tracer import attribute

    return attribute(
        input_ids,
        _CountingModel(model, options, progress),
        max_n_logits=options.max_n_logits,
        desired_logit_prob=options.desired_logit_prob,
        batch_size=options.batch_size,
        max_feature_nodes=options.max_feature_nodes,
    )


def graph_document(
    graph: Any,
    *,
    slug: str,
    model_id: str,
    tokenizer: Any,
    options: AttributionOptions,
    info: dict[str, Any],
) -> dict[str, Any]:
    """The graph in Neuronpedia's JSON format, with the metadata Neuronpedia's server adds."""
    from circuit_tracer.graph import compute_graph_scores, prune_graph
    from circuit_tracer.utils.create_graph_files import (
        build_model,
        create_nodes,
        create_used_nodes_and_edges,
    )

    node_mask, edge_mask, cumulative_scores = prune_graph(
        graph, options.node_threshold, options.edge_threshold
    )
    nodes = create_nodes(graph, node_mask, tokenizer, cumulative_scores)
    for node in nodes.values():
        if node.feature_type == ERROR_FEATURE_TYPE:
            node.node_id = error_node_id(int(node.layer), node.ctx_idx)
    used_nodes, used_edges = create_used_nodes_and_edges(graph, nodes, edge_mask)
    document = build_model(
        graph, used_nodes, used_edges, slug, model_id, options.node_threshold, tokenizer
    ).model_dump()
    replacement, completeness = compute_graph_scores(graph)
    document["metadata"]["info"] = {
        **info,
        "generator": {
            "name": "circuit-tracer by Hanna & Piotrowski",
            "version": version("circuit-tracer"),
            "url": "https://github.com/decoderesearch/circuit-tracer",
        },
        "create_time_ms": int(time.time() * 1000),
        "replacement_score": float(replacement),
        "completeness_score": float(completeness),
    }
    settings = asdict(options)
    document["metadata"]["generation_settings"] = {
        k: settings[k]
        for k in ("max_n_logits", "desired_logit_prob", "batch_size", "max_feature_nodes")
    }
    document["metadata"]["pruning_settings"] = {
        "node_threshold": options.node_threshold,
        "edge_threshold": options.edge_threshold,
    }
    return document
