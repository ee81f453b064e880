"""Pure pieces: rate limiting, cache keys, settings, index parsing, search fusion, routes,
packed map coordinates."""

import math
import struct

import pytest

from interpedia_clients.inference import models as inference
from interpedia_core.errors import InvalidInput, RateLimited
from interpedia_webapi import steering
from interpedia_webapi.accounts import hash_key, new_key
from interpedia_webapi.explanation_search import fuse
from interpedia_webapi.feature_map import MapCoordinates, pack_coordinates
from interpedia_webapi.rate_limit import TokenBuckets
from interpedia_webapi.schemas import parse_index
from interpedia_webapi.settings import WebapiSettings


def test_token_bucket_allows_a_burst_then_refuses_then_refills(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("interpedia_webapi.rate_limit.time.monotonic", lambda: now[0])
    buckets = TokenBuckets(per_minute=60, burst=2)
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(RateLimited, match="try again in 1 s"):
        buckets.take("a")
    buckets.take("b")  # callers are independent
    now[0] += 1.0
    buckets.take("a")


def test_cache_key_ignores_field_order() -> None:
    a = steering.cache_key("completion", {"prompt": "x", "seed": 1})
    b = steering.cache_key("completion", {"seed": 1, "prompt": "x"})
    assert a == b and a != steering.cache_key("chat", {"prompt": "x", "seed": 1})
    completion = inference.SteerCompletionResponse.model_validate(
        {"outputs": [{"type": "STEERED", "output": "s"}, {"type": "DEFAULT", "output": "d"}]}
    )
    assert steering.outputs_by_type(completion) == {"STEERED": "s", "DEFAULT": "d"}
    chat = inference.SteerCompletionChatResponse.model_validate(
        {
            "input": {"chat_template": [], "raw": "p"},
            "outputs": [{"type": "DEFAULT", "raw": "p d", "chat_template": []}],
        }
    )
    assert steering.outputs_by_type(chat) == {"DEFAULT": "p d"}


def test_keys_are_random_and_hashed() -> None:
    one, two = new_key(), new_key()
    assert one != two and len(hash_key(one)) == 64 and hash_key(one) != one


def test_settings() -> None:
    settings = WebapiSettings(inference_url="http://a", inference_urls={"m": "http://b"})
    assert settings.port == 3000
    assert settings.inference_url_for("m") == "http://b"
    assert settings.inference_url_for("other") == "http://a"
    with pytest.raises(ValueError, match="at least 16"):
        WebapiSettings(admin_bootstrap_key="short")


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", True, -3, "9" * 12])
def test_parse_index_refuses_bad_values(value) -> None:
    with pytest.raises(InvalidInput):
        parse_index(value)


def test_parse_index() -> None:
    assert parse_index("12") == 12 and parse_index(7) == 7


def test_rrf_fusion_rewards_agreement() -> None:
    fused = fuse([(1, 0.9), (2, 0.8), (3, 0.7)], [(3, 5.0), (4, 4.0)])
    assert fused[0][0] == 3


def test_openapi_lists_the_neuronpedia_paths() -> None:
    from interpedia_webapi.app import create_app

    paths = create_app(WebapiSettings()).openapi()["paths"]
    for path in (
        "/api/feature/{model_id}/{source_id}/{index}",
        "/api/activation/new",
        "/api/activation/source",
        "/api/explanation/search",
        "/api/explanation/search-model",
        "/api/explanation/search-release",
        "/api/explanation/search-all",
        "/api/explanation/generate",
        "/api/explanation/score",
        "/api/search-all",
        "/api/search-topk-by-token",
        "/api/steer",
        "/api/steer-chat",
        "/api/tokenize",
        "/api/list/new",
        "/api/list/add-features",
        "/api/list/get",
        "/api/list/list",
        "/api/list/remove",
        "/api/list/delete",
        "/api/model/list",
    ):
        assert path in paths, path


def test_packed_coordinates_are_little_endian_columns_with_nan_for_never_fired() -> None:
    packed = pack_coordinates(
        MapCoordinates([3, 70_000], [0.5, -2.0], [1.0, 4.0], [-1, 7], [None, -2.5])
    )
    assert len(packed) == 2 * 20
    index, x, y, cluster, log_density = (
        struct.unpack_from("<2" + kind, packed, k * 8) for k, kind in enumerate("iffif")
    )
    assert (index, x, y, cluster) == ((3, 70_000), (0.5, -2.0), (1.0, 4.0), (-1, 7))
    assert math.isnan(log_density[0]) and log_density[1] == -2.5
