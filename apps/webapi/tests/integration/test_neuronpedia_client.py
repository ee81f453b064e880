"""Neuronpedia's own Python client (`neuronpedia` on PyPI) against our server, which runs on
the real inference service (so these are slow)."""

import asyncio
import socket

import pytest
from conftest import (
    INFERENCE_SECRET,
    SERVED_MODEL,
    SERVED_SOURCE,
    live_app,
    service_settings,
)

from interpedia_testing.servers import ThreadedServer

MODEL, SOURCE = "webapi-test", "6-res-jb"
pytestmark = pytest.mark.slow


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def np_base_url(live_server, monkeypatch) -> str:
    """The client's base URL: the real localhost:3000 when free, else our server's port.

    The client reads USE_LOCALHOST at import time into `NPRequest.BASE_URL`; pointing
    that attribute at the live server is the same code path with another port.
    """
    from neuronpedia.requests.base_request import NPRequest

    monkeypatch.setattr(NPRequest, "BASE_URL", live_server.url + "/api")
    return live_server.url


def test_neuronpedia_client_reads_features_computes_activations_and_makes_lists(
    np_base_url: str, seeded
) -> None:
    from neuronpedia.np_list import NPListItem
    from neuronpedia.requests.activation_request import ActivationRequest
    from neuronpedia.requests.feature_request import FeatureRequest
    from neuronpedia.requests.list_request import ListRequest

    key = seeded["alice"]
    feature = FeatureRequest(api_key=key).get(MODEL, SOURCE, 3)
    assert feature.modelId == MODEL and feature.source == SOURCE and feature.index == "3"
    assert feature.density == pytest.approx(0.004)
    assert len(feature.activations) == 3 and feature.activations[0].tokens
    assert feature.explanations[0].text.startswith("dogs running home")

    activation = ActivationRequest(api_key=key).compute_activation_for_text(
        SERVED_MODEL, SERVED_SOURCE, "3", "the cat sat"
    )
    assert activation.tokens[-3:] == ["the", " cat", " sat"]
    assert len(activation.values) == len(activation.tokens)

    lists = ListRequest(api_key=key)
    made = lists.new("from the neuronpedia client", "made in a test")
    lists.add_items(
        made,
        [
            NPListItem(model_id=MODEL, source=SOURCE, index="1"),
            NPListItem(model_id=MODEL, source=SOURCE, index="2"),
        ],
    )
    got = lists.get(made.id)
    assert sorted(i.index for i in got.items) == ["1", "2"]
    assert made.id in [x.id for x in lists.get_owned()]


def test_top_features_by_token_through_the_client(np_base_url: str, seeded) -> None:
    """The client reads `position`, `token` and `topFeatures[].featureIndex/activationValue`."""
    from neuronpedia.requests.topk_by_token_request import TopKByTokenRequest

    results = TopKByTokenRequest(api_key=seeded["alice"]).compute_top_features_by_token_for_text(
        SERVED_MODEL, SERVED_SOURCE, "the cat sat", num_results=3
    )
    assert [r.token for r in results][-3:] == ["the", " cat", " sat"]
    assert [r.position for r in results] == sorted(r.position for r in results)
    for result in results:
        assert len(result.topFeatures) == 3
        assert result.topFeatures[0].feature.source == SERVED_SOURCE
        # Ranked by specificity (the web API's own tests check that order), so the
        # values need not be sorted: three distinct features, each firing on the token.
        assert len({f.feature.index for f in result.topFeatures}) == 3
        assert all(f.activationValue > 0 for f in result.topFeatures)


def test_port_3000_with_use_localhost(
    seeded, real_services, database_url, tmp_path, monkeypatch
) -> None:
    """With USE_LOCALHOST=true the client calls http://localhost:3000/api: serve there."""
    if not _port_free(3000):
        pytest.skip("port 3000 is in use on this machine; the other tests cover the client")
    from neuronpedia.requests.base_request import NPRequest

    # What USE_LOCALHOST=true sets when the client is imported (it is read only then).
    monkeypatch.setattr(NPRequest, "BASE_URL", "http://localhost:3000/api")
    app = live_app(database_url, tmp_path, **service_settings(real_services))
    with ThreadedServer(app, port=3000):
        from neuronpedia.requests.feature_request import FeatureRequest
        from neuronpedia.requests.topk_by_token_request import TopKByTokenRequest

        feature = FeatureRequest(api_key=seeded["alice"]).get(MODEL, SOURCE, 1)
        assert feature.index == "1"
        by_token = TopKByTokenRequest(api_key=seeded["alice"])
        results = by_token.compute_top_features_by_token_for_text(
            SERVED_MODEL, SERVED_SOURCE, "a cat"
        )
        assert results[-1].token == " cat"


def _decoder_row(inference_url: str, index: int) -> list[float]:
    from interpedia_clients.inference import AsyncInferenceClient
    from interpedia_clients.inference import models as inference

    async def fetch() -> list[float]:
        client = AsyncInferenceClient(inference_url, secret=INFERENCE_SECRET)
        row = await client.util_sae_vector(
            inference.UtilSaeVectorRequest(model=SERVED_MODEL, source=SERVED_SOURCE, index=index)
        )
        return row.vector

    return asyncio.run(fetch())


def test_a_lab_brings_its_model_features_and_vectors_through_the_client(
    np_base_url: str, seeded, real_services
) -> None:
    """Every call of the client a lab's own work goes through: model and source set new/get,
    feature and activation upload_batch, search, lists, vectors new/get/list_owned/delete,
    and steering (completion and chat) with SAE features and with a vector."""
    import neuronpedia
    import requests
    from neuronpedia.np_activation import Activation
    from neuronpedia.np_explanation import Explanation
    from neuronpedia.np_feature import Feature, Logit, SteerFeature
    from neuronpedia.np_list import NPListItem
    from neuronpedia.requests.activation_request import ActivationRequest
    from neuronpedia.requests.feature_request import FeatureRequest
    from neuronpedia.requests.list_request import ListRequest
    from neuronpedia.requests.model_request import ModelRequest
    from neuronpedia.requests.source_activation_request import SourceActivationRequest
    from neuronpedia.requests.source_set_request import SourceSetRequest
    from neuronpedia.requests.steer_request import SteerChatRequest, SteerCompletionRequest
    from neuronpedia.requests.vector_request import VectorRequest

    key, other = seeded["alice"], seeded["bob"]
    model = ModelRequest(api_key=key).new(
        "client-lab", layers=2, display_name="Client Lab", url="https://lab.example"
    )
    assert (model.id, model.layers, model.display_name) == ("client-lab", 2, "Client Lab")
    assert model.url == "https://lab.example"
    sets = SourceSetRequest(api_key=key)
    made = sets.new("client-res", "client-lab", description="lab SAEs")
    assert [s.id for s in made.sources] == ["0-client-res", "1-client-res"]
    got = sets.get("client-lab", "client-res")
    assert got.description == "lab SAEs" and got.get_source_for_layer_number(1).id == "1-client-res"

    lab, source = "client-lab", "1-client-res"
    FeatureRequest(api_key=key).upload_batch(
        lab,
        source,
        [
            Feature(
                modelId=lab,
                source=source,
                index=i,
                density=0.02,
                top_logits=[Logit(" up", 1.5)],
                bottom_logits=[Logit(" down", -1.0)],
                explanations=[Explanation(lab, source, i, f"lab words {i}", "np-client")],
                activations=[Activation(lab, source, i, [" a", " b"], [0.0, 2.0 + i])],
            )
            for i in range(3)
        ],
    )
    with pytest.raises(requests.HTTPError, match="403"):  # only the set's creator uploads
        FeatureRequest(api_key=other).upload_batch(lab, source, [Feature(lab, source, 9)])
    rows = [Activation(lab, source, 1, [" x", " y", " z"], [0.5, 9.0, 0.1]) for _ in range(50)]
    ActivationRequest(api_key=key).upload_batch(lab, source, "1", rows)
    feature = FeatureRequest(api_key=key).get(lab, source, 1)
    assert feature.explanations[0].text == "lab words 1" and feature.density == 0.02
    assert len(feature.activations) == 51
    assert feature.activations[0].values == pytest.approx([0.5, 9.0, 0.1])  # stored as REAL

    # Search (every feature of a source on a text), on the served model.
    found = SourceActivationRequest(api_key=key).compute_top_features_for_text(
        SERVED_MODEL, SERVED_SOURCE, "the cat sat on the mat", num_results=5
    )
    assert len(found) == 5 and all(a.source == SERVED_SOURCE for a in found)
    assert found[0].tokens[-3:] == [" on", " the", " mat"]
    assert all(max(a.values) > 0 for a in found)

    # A vector holding feature 3's decoder row: made, read, listed, steered with.
    vectors = VectorRequest(api_key=key)
    vector = vectors.new(
        "client feature three",
        SERVED_MODEL,
        6,
        "hook_resid_post",
        _decoder_row(real_services["inference"], 3),
        default_steer_strength=15,
    )
    assert (
        vector.source == "6-neuronpedia-resid-post"
        and vector.hook_name == "blocks.6.hook_resid_post"
    )
    assert vectors.get(SERVED_MODEL, vector.source, vector.index) == vector
    assert vector in vectors.get_owned()
    assert vector not in VectorRequest(api_key=other).get_owned()
    with pytest.raises(requests.HTTPError, match="409"):  # the label is taken
        vectors.new("client feature three", SERVED_MODEL, 6, "hook_resid_post", vector.values)

    lists = ListRequest(api_key=key)
    mine = lists.new("lab picks", "a feature and a vector")
    lists.add_items(
        mine,
        [
            NPListItem(model_id=lab, source=source, index="1"),
            NPListItem(model_id=SERVED_MODEL, source=vector.source, index=vector.index),
        ],
    )
    assert sorted(i.index for i in lists.get(mine.id).items) == sorted(["1", vector.index])
    assert mine.id in [x.id for x in lists.get_owned()]

    feature_three = SteerFeature(SERVED_MODEL, SERVED_SOURCE, 3, strength=15)
    settings = {"n_tokens": 6, "temperature": 0, "seed": 7}
    completion = SteerCompletionRequest(api_key=key)
    by_vector = completion.steer(SERVED_MODEL, [vector], "Once upon a time", **settings)
    by_feature = completion.steer_features(
        SERVED_MODEL, [feature_three], "Once upon a time", **settings
    )
    assert by_vector["STEERED"].startswith("Once upon a time")
    assert by_vector["STEERED"] == by_feature["STEERED"] != by_vector["DEFAULT"]
    chat = SteerChatRequest(api_key=key)
    messages = [{"role": "user", "content": "Tell me a story."}]
    chat_vector = chat.steer(SERVED_MODEL, [vector], steered_chat_messages=messages, **settings)
    chat_feature = chat.steer_features(
        SERVED_MODEL, [feature_three], messages, messages, **settings
    )
    assert "<|im_start|>user" in chat_vector["STEERED"]
    assert chat_vector["STEERED"] == chat_feature["STEERED"]

    with pytest.raises(requests.HTTPError, match="403"):  # only its creator deletes it
        VectorRequest(api_key=other).delete(vector)
    with neuronpedia.api_key(key):  # the vector's own method, on the context's key
        vector.delete()
    with pytest.raises(requests.HTTPError, match="not found"):
        vectors.get(SERVED_MODEL, vector.source, vector.index)
