"""The inference API keeps its contract under fuzzing (tiny model, two tiny SAEs)."""

from collections.abc import Iterator

import pytest
import schemathesis

from interpedia_inference.app import create_app
from interpedia_testing.fuzz import load_schema
from interpedia_testing.servers import served

from ..conftest import TINY_SET, tiny_settings

SOURCES = [f"0-{TINY_SET}", f"1-{TINY_SET}"]

# Hypothesis builds float strategies only where subnormal floats exist.
pytestmark = pytest.mark.usefixtures("subnormal_floats")

schema = load_schema(
    create_app().openapi(),
    known={
        "model": ["tiny-random"],
        "source": SOURCES,
        "selected_sources": SOURCES,
        "source_set": [TINY_SET],
        "hook": ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
    },
)


@pytest.fixture(scope="module")
def inference_url(tiny_sae_dirs: list[str]) -> Iterator[str]:
    # One torch thread: on two shared cores more threads only spin against each other.
    settings = tiny_settings(tiny_sae_dirs, torch_threads=1)
    with served(create_app(settings)) as url:
        yield url


@schema.parametrize()
def test_inference_api_keeps_its_contract(case: schemathesis.Case, inference_url: str) -> None:
    case.call_and_validate(base_url=inference_url)
