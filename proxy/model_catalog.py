"""Provider model lists, fetched on request and cached on disk.

`llmproxy providers refresh` calls `refresh_catalog`: every provider that publishes a list
(OpenAI-style `GET {base}/models`, Anthropic `GET /v1/models`) is asked, concurrently; what it
says about context windows, output caps, vision, tools, reasoning, prices and retirement is kept
in `models.json` under the platformdirs user cache dir. Nothing is fetched at build, install or
start-up time; the daemon only reads the cache (`load_catalog`), and a provider whose refresh
fails keeps its previous entry.

Publishing differs by service, so every field is optional: Anthropic gives `max_input_tokens`,
`max_tokens`, `capabilities` and `lifecycle`; OpenRouter `context_length`, `pricing` (USD per
token), `architecture.input_modalities` and `supported_parameters`; Groq `context_window`; most
others only ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from proxy.capabilities import (
    CAPABILITY_FIELDS,
    Catalog,
    ModelCapabilities,
    ProviderCatalog,
    capabilities_from_toml,
)
from proxy.config import GLOB_CHARS, Config, ProviderConfig
from proxy.errors import ConfigError, UpstreamError
from proxy.frozen import frozen, replace
from proxy.types import JSONObject, ProviderFormat

if TYPE_CHECKING:  # `route test` reads the cache without loading the HTTP client
    from proxy.security.http1 import Client


def _warn(message: str, *args: object) -> None:
    # logging, orjson and platformdirs are imported where they are used: `route test` reads
    # the catalog, and the three together cost about the interpreter's own start-up.
    import logging

    logging.getLogger("llmproxy.catalog").warning(message, *args)


CACHE_FILE = "models.json"
CATALOG_VERSION = 1
ANTHROPIC_VERSION = "2023-06-01"
MAX_PAGES = 20
DEFAULT_TIMEOUT = 30.0


def default_cache_dir() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("llmproxy")


@frozen
class ProviderRefresh:
    """What one provider's refresh found."""

    provider: str
    ok: bool
    models: int = 0
    error: str = ""
    skipped: str = ""
    """Why no list was asked for (the provider publishes none)."""
    unlisted: tuple[str, ...] = ()
    """Configured model ids missing from the published list: retired, renamed or a typo."""
    retired: tuple[str, ...] = ()
    """Configured model ids the list marks retired."""

    def to_json(self) -> JSONObject:
        return {
            "provider": self.provider,
            "ok": self.ok,
            "models": self.models,
            "error": self.error,
            "skipped": self.skipped,
            "unlisted": list(self.unlisted),
            "retired": list(self.retired),
        }


@frozen
class RefreshReport:
    path: Path
    providers: tuple[ProviderRefresh, ...]

    @property
    def failed(self) -> tuple[ProviderRefresh, ...]:
        return tuple(p for p in self.providers if not p.ok and not p.skipped)


# --- fetching ----------------------------------------------------------------------------------


async def refresh_catalog(
    config: Config,
    client: Client,
    cache_dir: Path | None = None,
    *,
    request_seconds: float = DEFAULT_TIMEOUT,
) -> RefreshReport:
    """Ask every provider for its model list and write the cache; never raises for a provider
    that fails (the report says why), only OSError when the cache cannot be written."""
    # Fetching imports asyncio and the HTTP client where it runs, not at the top: `llmproxy
    # route test` reads the catalog and needs neither (tests/test_cli_startup.py).
    import asyncio

    directory = cache_dir or default_cache_dir()
    path = directory / CACHE_FILE
    previous = _read_raw(path)
    results = await asyncio.gather(
        *(
            _refresh_one(p, client, request_seconds, config.security.limits.max_answer_bytes)
            for p in config.providers
        )
    )
    entries: dict[str, Any] = dict(previous.get("providers", {}))
    reports: list[ProviderRefresh] = []
    for provider, (report, models) in zip(config.providers, results, strict=True):
        reports.append(report)
        if models is not None:
            entries[provider.name] = {
                "api_base_url": provider.api_base_url,
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "models": {model_id: _known_fields(caps) for model_id, caps in models.items()},
            }
    _write(path, {"version": CATALOG_VERSION, "providers": entries})
    return RefreshReport(path, tuple(reports))


async def _refresh_one(
    provider: ProviderConfig,
    client: Client,
    request_seconds: float,
    max_bytes: int,
) -> tuple[ProviderRefresh, dict[str, ModelCapabilities] | None]:
    from proxy.providers.boundary import upstream_errors

    if provider.format is ProviderFormat.CODEX:
        why = "the ChatGPT (codex) backend publishes no model list"
        return ProviderRefresh(provider.name, False, skipped=why), None
    try:
        with upstream_errors(None, "model list"):
            models = await _fetch(provider, client, request_seconds, max_bytes)
    except (UpstreamError, ValueError) as exc:
        # The operator refreshing wants the lower layer's own words (the address a name
        # resolved to, the redirect), which the boundary keeps from clients.
        cause = exc.__cause__ if isinstance(exc, UpstreamError) and exc.__cause__ else exc
        message = str(cause) or type(cause).__name__
        return ProviderRefresh(provider.name, False, error=message[:300]), None
    configured = [m for m in provider.models if not GLOB_CHARS.intersection(m)]
    return (
        ProviderRefresh(
            provider.name,
            True,
            models=len(models),
            unlisted=tuple(m for m in configured if m not in models),
            retired=tuple(m for m in configured if m in models and models[m].retired),
        ),
        models,
    )


async def _fetch(
    provider: ProviderConfig,
    client: Client,
    request_seconds: float,
    max_bytes: int,
) -> dict[str, ModelCapabilities]:
    """Raises ValueError for a non-200 or odd body; the client's exceptions escape to the
    caller's `upstream_errors`."""
    import asyncio

    from yarl import URL

    from proxy.security.outgoing import read_capped

    models: dict[str, ModelCapabilities] = {}
    url, headers = _request(provider)
    anthropic = provider.format is ProviderFormat.ANTHROPIC
    params: dict[str, str] = {"limit": "1000"} if anthropic else {}
    for _ in range(MAX_PAGES):
        async with asyncio.timeout(request_seconds):
            response = await client.request("GET", URL(url).update_query(params), headers)
            try:
                raw = await read_capped(response, max_bytes)
            finally:
                response.release()
        if response.status != 200:
            text = raw[:200].decode("utf-8", "replace").strip()
            raise ValueError(f"HTTP {response.status} from {url}: {text}")
        import orjson

        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{url} did not answer JSON: {exc}") from None
        models.update(parse_model_list(payload))
        # Anthropic pages with has_more/last_id; OpenAI-style lists come whole.
        if not (isinstance(payload, dict) and payload.get("has_more") is True):
            break
        last = payload.get("last_id")
        if not isinstance(last, str) or not last:
            break
        params = {**params, "after_id": last}
    return models


def _request(provider: ProviderConfig) -> tuple[str, dict[str, str]]:
    base = provider.api_base_url.rstrip("/")
    headers = {"accept": "application/json"}
    if provider.format is ProviderFormat.ANTHROPIC:
        for suffix in ("/v1/messages", "/v1"):
            base = base.removesuffix(suffix)
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        url = base + "/v1/models"
    else:
        if provider.api_key:
            headers["authorization"] = f"Bearer {provider.api_key}"
        url = base + "/models"
    headers.update(provider.headers)
    return url, headers


# --- reading what providers publish ------------------------------------------------------------


def parse_model_list(payload: Any) -> dict[str, ModelCapabilities]:
    """Model id -> what the entry says, for `{"data": [...]}` lists (OpenAI, Anthropic and
    their imitators) or a bare list. Raises ValueError for anything else."""
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError("model list has no 'data' array")
    models: dict[str, ModelCapabilities] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            models[item["id"]] = _entry_capabilities(item)
    return models


def _entry_capabilities(item: JSONObject) -> ModelCapabilities:
    top = _dict(item.get("top_provider"))
    caps = _dict(item.get("capabilities"))
    params = item.get("supported_parameters")
    params = {p for p in params if isinstance(p, str)} if isinstance(params, list) else None
    modalities = _dict(item.get("architecture")).get("input_modalities")
    thinking = _supported(caps.get("thinking"))
    price_in, price_out = _prices(_dict(item.get("pricing")))
    return ModelCapabilities(
        context_window=_first_int(
            item.get("context_window"),
            item.get("context_length"),
            item.get("max_input_tokens"),
            item.get("max_context_length"),
            item.get("max_model_len"),
            top.get("context_length"),
        ),
        max_output_tokens=_first_int(
            item.get("max_tokens"),
            item.get("max_output_tokens"),
            item.get("max_completion_tokens"),
            top.get("max_completion_tokens"),
        ),
        tools=("tools" in params if params is not None else _bool(caps.get("function_calling"))),
        vision=(
            "image" in modalities
            if isinstance(modalities, list)
            else _supported(caps.get("image_input"))
            if "image_input" in caps
            else _bool(caps.get("vision"))
        ),
        reasoning=("reasoning" in params if params is not None else thinking),
        reasoning_field="thinking" if thinking else None,
        price_in=price_in,
        price_out=price_out,
        retired=True if item.get("lifecycle") == "retired" else None,
        source="catalog",
    )


def _prices(pricing: JSONObject) -> tuple[float | None, float | None]:
    """USD per million tokens: OpenRouter's `prompt`/`completion` are per token, as strings;
    `input`/`output` (Together and others) are per million already."""
    if "prompt" in pricing or "completion" in pricing:
        return _per_million(pricing.get("prompt")), _per_million(pricing.get("completion"))
    return _number(pricing.get("input")), _number(pricing.get("output"))


def _per_million(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else round(number * 1e6, 6)


def _dict(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _first_int(*values: Any) -> int | None:
    return next(
        (v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), None
    )


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _supported(value: Any) -> bool | None:
    return _bool(value.get("supported")) if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _known_fields(caps: ModelCapabilities) -> JSONObject:
    return {f: getattr(caps, f) for f in CAPABILITY_FIELDS if getattr(caps, f) is not None}


# --- the cache file ----------------------------------------------------------------------------


def load_catalog(config: Config, cache_dir: Path | None = None) -> Catalog:
    """The cached lists of `config`'s providers. Entries fetched from another base URL are
    ignored (the name now points elsewhere); a missing or damaged cache is an empty catalog."""
    path = (cache_dir or default_cache_dir()) / CACHE_FILE
    raw = _read_raw(path)
    providers: dict[str, ProviderCatalog] = {}
    for provider in config.providers:
        entry = _dict(raw.get("providers", {})).get(provider.name)
        if not isinstance(entry, dict) or entry.get("api_base_url") != provider.api_base_url:
            continue
        try:
            models = {
                model_id: replace(
                    capabilities_from_toml(values, f"{path}:{provider.name}"), source="catalog"
                )
                for model_id, values in _dict(entry.get("models")).items()
            }
        except ConfigError as exc:
            _warn("ignoring the cached model list of %s: %s", provider.name, exc)
            continue
        providers[provider.name] = ProviderCatalog(
            provider.api_base_url, str(entry.get("fetched_at", "")), MappingProxyType(models)
        )
    return Catalog(MappingProxyType(providers))


def _read_raw(path: Path) -> Mapping[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        _warn("ignoring the model cache %s: %s", path, exc)
        return {}
    import orjson

    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _warn("ignoring the model cache %s: %s", path, exc)
        return {}
    if not isinstance(raw, dict) or raw.get("version") != CATALOG_VERSION:
        _warn("ignoring the model cache %s: unknown format", path)
        return {}
    return raw


def _write(path: Path, data: JSONObject) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    import orjson

    temporary.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(temporary, path)
