"""The dialect rules of interpedia_core.dialect, without a server."""

import pytest
from pydantic import Field

from interpedia_core.dialect import (
    SnakeCaseFrame,
    WireSchema,
    body_dialect_is_camel,
    camel_case_wire,
)


class Inner(WireSchema):
    max_value: float
    by_hook: dict[str, int] = Field(default_factory=dict)


class Outer(WireSchema):
    top_k: int = 1
    inner: list[Inner]


class Frame(SnakeCaseFrame):
    top_token: str


@pytest.mark.parametrize(
    ("body", "camel"),
    [
        ({"prompt": "x", "topK": 2}, True),
        ({"prompt": "x", "top_k": 2}, False),
        ({"prompt": "x", "model": "m"}, None),
        ({"prompts": [{"role": "user", "maxValue": 1}]}, True),  # nested keys count
        ({"top_k": 1, "ignoreBos": True}, True),
        ([{"a_b": 1}], False),
        ("text", None),
    ],
)
def test_body_dialect(body: object, camel: bool | None) -> None:
    assert body_dialect_is_camel(body) is camel


def test_reads_both_and_writes_the_current_dialect() -> None:
    a = Outer.model_validate({"topK": 3, "inner": [{"maxValue": 1, "byHook": {"blocks.0.x_y": 1}}]})
    b = Outer.model_validate(
        {"top_k": 3, "inner": [{"max_value": 1, "by_hook": {"blocks.0.x_y": 1}}]}
    )
    assert a == b
    assert a.model_dump() == {
        "top_k": 3,
        "inner": [{"max_value": 1.0, "by_hook": {"blocks.0.x_y": 1}}],
    }
    token = camel_case_wire.set(True)
    try:
        # Field names change; dict keys that are data (a hook name) do not.
        assert a.model_dump() == {
            "topK": 3,
            "inner": [{"maxValue": 1.0, "byHook": {"blocks.0.x_y": 1}}],
        }
        assert Frame(top_token="a").model_dump() == {"top_token": "a"}
    finally:
        camel_case_wire.reset(token)


def test_schema_lists_snake_case_names_in_both_modes() -> None:
    for mode in ("validation", "serialization"):
        schema = Outer.model_json_schema(mode=mode)
        assert set(schema["properties"]) == {"top_k", "inner"}
        assert set(schema["$defs"]["Inner"]["properties"]) == {"max_value", "by_hook"}
