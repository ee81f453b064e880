"""The graph JSON: node ids stay unique where circuit-tracer 0.5.0's would collide."""

import torch
from circuit_tracer.attribution.targets import LogitTarget
from circuit_tracer.graph import Graph
from transformers import LlamaConfig

from interpedia_formats.neuronpedia_graph import parse_graph
from interpedia_graph import attribution

N_LAYERS, N_POS = 2, 2


class _Tokenizer:
    def decode(self, token: object) -> str:
        return f"t{int(token)}"  # type: ignore[call-overload]


def _graph_with_a_layer0_feature_named_like_an_error_node() -> Graph:
    """Every node linked to the next: feature (layer 0, pos 1, index 1) is `0_1_1`, the id
    circuit-tracer 0.5.0 gives the error node of layer 1 at position 1."""
    cfg = LlamaConfig(
        num_hidden_layers=N_LAYERS,
        hidden_size=8,
        intermediate_size=16,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=10,
    )
    cfg.architectures = ["LlamaForCausalLM"]
    n_nodes = 1 + N_LAYERS * N_POS + N_POS + 1  # feature, errors, tokens, logit
    adjacency = torch.zeros(n_nodes, n_nodes)  # [target, source]
    for target in range(n_nodes - 1):
        adjacency[n_nodes - 1, target] = 1.0  # everything feeds the logit
    return Graph(
        input_string="ab",
        input_tokens=torch.tensor([1, 2]),
        active_features=torch.tensor([[0, 1, 1]]),  # (layer, pos, feature)
        adjacency_matrix=adjacency,
        cfg=cfg,
        selected_features=torch.tensor([0]),
        activation_values=torch.tensor([1.0]),
        logit_targets=[LogitTarget("t3", 3)],
        logit_probabilities=torch.tensor([0.9]),
        scan="s",
        vocab_size=10,
    )


def test_error_nodes_never_share_an_id_with_a_feature() -> None:
    options = attribution.AttributionOptions(node_threshold=1.0, edge_threshold=1.0)
    document = attribution.graph_document(
        _graph_with_a_layer0_feature_named_like_an_error_node(),
        slug="collide",
        model_id="m",
        tokenizer=_Tokenizer(),
        options=options,
        info={},
    )
    ids = [node["node_id"] for node in document["nodes"]]
    assert len(ids) == len(set(ids))
    errors = {n["node_id"] for n in document["nodes"] if n["feature_type"].endswith("error")}
    assert errors == {f"{layer}_-1_{pos}" for layer in range(N_LAYERS) for pos in range(N_POS)}
    assert "0_1_1" in ids  # the feature keeps circuit-tracer's id
    sources = {link["source"] for link in document["links"]}
    assert {"0_1_1", "1_-1_1"} <= sources  # each link names the node it comes from
    parse_graph(document)  # passes the format check that refused circuit-tracer's ids
