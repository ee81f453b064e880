"""Graph files in Neuronpedia's format are read, refused with a reason, and written back."""

import copy
import gzip
import json

import pytest

from interpedia_formats.neuronpedia_graph import (
    MalformedGraphError,
    feature_of,
    graph_gzip,
    parse_graph,
)

GRAPH = {
    "metadata": {
        "slug": "capital-france",
        "scan": "smollm2-135m",
        "prompt_tokens": ["<|im_start|>", "The", " capital"],
        "prompt": "<|im_start|>The capital",
        "node_threshold": 0.8,
        "info": {"transcoder_set": "tc-demo"},
    },
    "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both"},
    "nodes": [
        {
            "node_id": "E_504_1",
            "feature": 1,
            "layer": "E",
            "ctx_idx": 1,
            "feature_type": "embedding",
            "jsNodeId": "E_504-1",
            "clerp": "",
            "influence": 0.5,
        },
        {
            "node_id": "3_17_2",
            "feature": 227,
            "layer": "3",
            "ctx_idx": 2,
            "feature_type": "cross layer transcoder",
            "jsNodeId": "3_17-0",
            "clerp": "",
            "activation": 1.5,
            "somethingNewer": [1, 2],
        },
    ],
    "links": [{"source": "E_504_1", "target": "3_17_2", "weight": 0.25}],
}


def test_a_graph_round_trips_through_gzip_keeping_unknown_fields():
    graph = parse_graph(json.dumps(GRAPH).encode())
    again = parse_graph(graph_gzip(graph))
    assert again.metadata.slug == "capital-france"
    assert again.nodes[1].model_dump()["somethingNewer"] == [1, 2]
    assert again.links[0].weight == 0.25
    assert json.loads(gzip.decompress(graph_gzip(GRAPH)))["metadata"]["scan"] == "smollm2-135m"


def test_transcoder_nodes_name_their_feature():
    graph = parse_graph(json.dumps(GRAPH))
    assert feature_of(graph.nodes[1]) == (3, 17)
    assert feature_of(graph.nodes[0]) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g.pop("links"), "links: Field required"),
        (lambda g: g["metadata"].pop("prompt_tokens"), "metadata.prompt_tokens: Field required"),
        (lambda g: g["nodes"][0].update(ctx_idx="1"), "nodes[0].ctx_idx"),
        (lambda g: g["metadata"].update(slug="has space"), "metadata.slug"),
        (lambda g: g["links"][0].update(target="9_9_9"), "not a node of the graph"),
    ],
)
def test_a_file_not_in_neuronpedias_format_is_refused_with_where(change, message):
    graph = copy.deepcopy(GRAPH)
    change(graph)
    with pytest.raises(MalformedGraphError, match="Neuronpedia's format") as info:
        parse_graph(json.dumps(graph).encode())
    assert message in str(info.value)


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b"\x1f\x8b broken gzip"])
def test_bytes_that_are_no_graph_at_all_are_refused(data):
    with pytest.raises(MalformedGraphError):
        parse_graph(data)
