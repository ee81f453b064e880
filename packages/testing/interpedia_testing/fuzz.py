"""Property-based API fuzzing: each service against its own OpenAPI spec (schemathesis).

A service's test module loads its app's spec with `load_schema` and runs
`@schema.parametrize()` against the app served on loopback (`servers.served`, its URL passed
to `case.call_and_validate(base_url=...)`), so every operation is one test: requests
built from the schema's boundaries (coverage phase) and random valid and invalid ones
(fuzzing phase, a bounded number per operation, deterministic so a failure replays). A
response fails the test when it is a 5xx; when its status, content type, headers or body
are not what the spec declares. So every status a service answers with must be declared,
and every limit it enforces belongs in its schema, where the generator can find its edges.
"""

import copy
from typing import Any

import schemathesis
from schemathesis.schemas import BaseSchema

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# Not checked: whether every request the schema forbids is refused. The services parse
# with pydantic's lax mode on purpose (Neuronpedia's clients send `1` for `true`), so
# that check only reports those coercions; every bound a schema declares is enforced by
# the same pydantic model that declares it.
# Random examples per operation and generation mode (valid, invalid), beside the
# coverage phase's boundary cases: a whole service takes a minute or so on two cores.
MAX_EXAMPLES = 15


def load_schema(
    spec: dict[str, Any],
    *,
    known: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> BaseSchema:
    """A service's OpenAPI document, set up to fuzz it with `CHECKS` (stateful phase off).

    `known` narrows string fields and parameters, by name, to values the served fixture
    holds (`{"model": ["tiny-random"]}`): a random string never names a model or source
    that exists, and every valid request would stop at that first lookup. Bounds, types
    and declared answers stay the service's own.
    """
    config: dict[str, Any] = {
        "generation": {"max-examples": max_examples, "deterministic": True, "mode": "all"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        # Two cores shared with other test processes: a slow answer is not a failure.
        "request-timeout": 120,
    }
    if headers:
        config["headers"] = headers
    return schemathesis.openapi.from_dict(
        narrowed(spec, known or {}), config=schemathesis.Config.from_dict(config)
    )


def narrowed(spec: dict[str, Any], known: dict[str, list[str]]) -> dict[str, Any]:
    """A copy of `spec` whose request string fields and parameters named in `known` are enums.

    Request bodies get inlined, narrowed copies of the components they use, so the response
    schemas (which may share those components) still accept whatever the service holds.
    """
    spec = copy.deepcopy(spec)
    components = spec.get("components", {}).get("schemas", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in known:
                    parameter["schema"] = _as_enum(parameter["schema"], known[parameter["name"]])
            for media in operation.get("requestBody", {}).get("content", {}).values():
                media["schema"] = _narrow(media["schema"], components, known)
    return spec


def _narrow(schema: Any, components: dict[str, Any], known: dict[str, list[str]]) -> Any:
    if isinstance(schema, list):
        return [_narrow(item, components, known) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return _narrow(components[ref.rsplit("/", 1)[1]], components, known)
    narrowed = {key: _narrow(value, components, known) for key, value in schema.items()}
    for name, prop in narrowed.get("properties", {}).items():
        if name in known:
            narrowed["properties"][name] = _as_enum(prop, known[name])
    return narrowed


def _as_enum(schema: dict[str, Any], values: list[str]) -> dict[str, Any]:
    if "anyOf" in schema:
        return {**schema, "anyOf": [_as_enum(s, values) for s in schema["anyOf"]]}
    if schema.get("type") == "array":
        return {**schema, "items": _as_enum(schema.get("items", {}), values)}
    if schema.get("type") == "string":
        return {"type": "string", "enum": values}
    return schema
