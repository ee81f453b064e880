"""Graph requests: job arguments round-trip, slugs, progress counting, steering checks."""

import json
from typing import Any

import pytest
import torch

from interpedia_core.errors import InvalidInput
from interpedia_graph import attribution, generation, steering


def test_a_request_survives_the_queue_as_json() -> None:
    request = generation.GraphRequest(
        model_id="smollm2-135m",
        transcoder_set="tc-a",
        slug="s-1",
        prompt="The capital of France is",
        options=attribution.AttributionOptions(max_feature_nodes=64, node_threshold=0.7),
        user_id=3,
    )
    assert generation.GraphRequest.from_json(json.loads(json.dumps(request.to_json()))) == request


def test_slugs_made_from_prompts_are_storable() -> None:
    from interpedia_formats.neuronpedia_graph import SLUG_PATTERN

    slug = generation.slug_from_prompt("<|im_start|>user\nWhat is 2+2?<|im_end|>")
    assert slug.startswith("whatis22-") and SLUG_PATTERN.match(slug)
    assert generation.slug_from_prompt("!!!").startswith("graph-")


class _Context:
    def __init__(self) -> None:
        # [n_layers, n_pos, d_transcoder] with 3 active features
        self.activation_matrix = torch.sparse_coo_tensor(
            torch.tensor([[0, 1, 1], [0, 1, 2], [1, 2, 3]]), torch.ones(3), (2, 3, 4)
        ).coalesce()

    def compute_batch(self, layers: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.zeros(len(layers), 10)


class _Model:
    def setup_attribution(self, input_ids: torch.Tensor) -> _Context:
        return _Context()


class Stop(Exception):
    pass


def test_progress_counts_backward_rows_and_can_stop_the_run() -> None:
    seen: list[tuple[int, int, str]] = []
    options = attribution.AttributionOptions(max_n_logits=2, max_feature_nodes=2)
    counting = attribution._CountingModel(_Model(), options, lambda *a: seen.append(a))
    context = counting.setup_attribution(torch.tensor([1, 2, 3]))
    context.compute_batch(layers=torch.tensor([0, 0]))
    context.compute_batch(layers=torch.tensor([1]))
    # 2 logits + min(2 feature nodes, 3 active features) = 4 rows in all
    assert [s[:2] for s in seen] == [(0, 4), (2, 4), (3, 4)]

    def stop(*args: Any) -> None:
        if args[0] > 0:
            raise Stop

    stopping = attribution._CountingModel(_Model(), options, stop)
    with pytest.raises(Stop):
        stopping.setup_attribution(torch.tensor([1])).compute_batch(layers=torch.tensor([0]))


def _edit(**values: Any) -> steering.FeatureEdit:
    base = {
        "layer": 1,
        "index": 2,
        "token_active_position": 2,
        "steer_position": 2,
        "steer_generated_tokens": False,
        "delta": 1.0,
        "ablate": False,
    }
    return steering.FeatureEdit(**(base | values))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ablate": True}, "ablate without one"),
        ({"delta": None}, "give a delta"),
        ({"steer_generated_tokens": True}, "steer_generated_tokens without one"),
        ({"steer_position": None}, "give a steer_position"),
        ({"layer": 30}, "30 layers of 128 features"),
        ({"index": 128}, "30 layers of 128 features"),
        ({"steer_position": 9}, "past the prompt's 5 tokens"),
        ({"token_active_position": 5}, "past the prompt's 5 tokens"),
        ({"steer_position": 0}, "special token"),
    ],
)
def test_feature_edits_that_cannot_work_are_refused_with_why(
    values: dict[str, Any], message: str
) -> None:
    steering.check_edits([_edit()], n_tokens=5, n_layers=30, d_transcoder=128)
    with pytest.raises(InvalidInput, match=message):
        steering.check_edits([_edit(**values)], n_tokens=5, n_layers=30, d_transcoder=128)
