"""Neuronpedia's own Python client (`neuronpedia` on PyPI) against our server, which runs on
the real inference service (so these are slow)."""

import socket

import pytest
from conftest import SERVED_MODEL, SERVED_SOURCE, live_app, service_settings

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
