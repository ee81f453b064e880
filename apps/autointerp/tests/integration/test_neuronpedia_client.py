"""Neuronpedia's generated `neuronpedia-autointerp-client`, over real HTTP, against our service."""

import httpx
import pytest
from neuronpedia_autointerp_client import (
    ApiClient,
    Configuration,
    DefaultApi,
    ExplainDefaultPostRequest,
    NPActivation,
    NPScoreFuzzDetectionType,
    ScoreEmbeddingPostRequest,
    ScoreFuzzDetectionPostRequest,
)
from neuronpedia_autointerp_client.exceptions import ApiException

from interpedia_autointerp.app import create_app
from interpedia_autointerp.settings import AutointerpSettings

SECRET = "s3cret"


@pytest.fixture
def neuronpedia_api(embedders, fake_llm, serve_app, wait_ready) -> DefaultApi:
    settings = AutointerpSettings(
        database_enabled=False,
        secret=SECRET,
        llm_base_url=fake_llm.url,
        llm_model="judge",
        llm_max_retries=0,
    )
    url = serve_app(create_app(settings, embedders=embedders))
    wait_ready(httpx.Client(base_url=url))
    configuration = Configuration(host=f"{url}/v1", api_key={"SimpleSecretAuth": SECRET})
    return DefaultApi(ApiClient(configuration))


def _np(records) -> list[NPActivation]:
    return [NPActivation(tokens=r.tokens, values=r.values) for r in records]


def test_neuronpedia_client_round_trip(
    neuronpedia_api: DefaultApi, fake_llm, cat_records, other_records
) -> None:
    fake_llm.reply = lambda messages: "Explanation: cats and kittens"
    explained = neuronpedia_api.explain_default_post(
        ExplainDefaultPostRequest(
            activations=_np(cat_records), openrouter_key="unused", model="unused"
        )
    )
    assert explained.explanation == "cats and kittens"

    scored = neuronpedia_api.score_embedding_post(
        ScoreEmbeddingPostRequest(
            activations=_np(cat_records + other_records), explanation="cats and kittens"
        )
    )
    assert scored.score > 0.9
    assert scored.breakdown[0].distance == 0

    fake_llm.reply = lambda messages: str([1] * messages[-1]["content"].count("Example "))
    fuzzed = neuronpedia_api.score_fuzz_detection_post(
        ScoreFuzzDetectionPostRequest(
            activations=_np(cat_records + other_records),
            explanation="cats",
            openrouter_key="unused",
            model="unused",
            type=NPScoreFuzzDetectionType.DETECTION,
        )
    )
    assert fuzzed.score == pytest.approx(0.5)
    assert all(b.ground_truth is not None for b in fuzzed.breakdown)


def test_neuronpedia_client_sees_our_errors(neuronpedia_api: DefaultApi) -> None:
    with pytest.raises(ApiException) as caught:
        neuronpedia_api.explain_default_post(
            ExplainDefaultPostRequest(activations=[], openrouter_key="k", model="m")
        )
    assert caught.value.status == 422
    assert "activations: List should have at least 1 item" in caught.value.body


def test_secret_is_required(neuronpedia_api: DefaultApi) -> None:
    url = neuronpedia_api.api_client.configuration.host
    response = httpx.post(f"{url}/explain/default", json={"activations": []})
    assert response.status_code == 401
