"""Neuronpedia's own Python client (`neuronpedia` on PyPI) against our server."""

import socket

import pytest

MODEL, SOURCE = "webapi-test", "6-res-jb"


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

    server, _ = live_server
    monkeypatch.setattr(NPRequest, "BASE_URL", server.url + "/api")
    return server.url


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
        MODEL, SOURCE, "3", "the cat sat"
    )
    assert activation.tokens == ["the", " cat", " sat"] and activation.values[1] == 3.0

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


def test_port_3000_with_use_localhost(seeded, database_url, tmp_path, monkeypatch) -> None:
    """With USE_LOCALHOST=true the client calls http://localhost:3000/api: serve there."""
    if not _port_free(3000):
        pytest.skip("port 3000 is in use on this machine; the other test covers the client")
    from conftest import LiveServer, live_app
    from neuronpedia.requests.base_request import NPRequest

    # What USE_LOCALHOST=true sets when the client is imported (it is read only then).
    monkeypatch.setattr(NPRequest, "BASE_URL", "http://localhost:3000/api")
    app, _ = live_app(database_url, tmp_path)
    with LiveServer(app, 3000):
        from neuronpedia.requests.feature_request import FeatureRequest

        feature = FeatureRequest(api_key=seeded["alice"]).get(MODEL, SOURCE, 1)
        assert feature.index == "1"
