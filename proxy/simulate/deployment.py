"""The simulated reference deployment: the provider conditions the reference proxy's operators
lived with in February 2026, reproduced offline, plus the config that routes over them.

- `openai-codex` (the ChatGPT backend, signed in through a token store the deployment writes):
  every request is a 429 `usage_limit_reached` (a quota window, not a blip);
- `zai` (OpenAI format, GLM-5 with `reasoning_content`): intermittent 500s, some before the
  response and some in the middle of a stream (wherever the drawn position falls: while the
  model thinks, in its answer text, or inside a tool call's arguments), drawn from a seeded
  random generator so a seed replays the same faults for the same request sequence;
- `cerebras` (OpenAI format): healthy;
- `minimax` (Anthropic format, thinking and tools): healthy.

The routes are what a careful user would configure: the default route ends with a target that
can continue a partial answer (minimax), because cerebras can take over a stream that died early
but cannot continue one that already showed text.

`DEFAULT_SEED` is chosen so that the 12-test e2e matrix, run in order, meets a pre-stream 500 and
mid-stream 500s on zai: on the streaming plain default test (the one the reference failed),
while zai thinks, and on the streaming plain think test, inside its answer text (continued on
minimax). Which request draws which fault depends on how many requests reach zai before it (the
fallback loop's retries count), so `tests/test_cli_e2e.py` pins this property: when the retry
policy changes, pick a new seed there. Used by `llmproxy serve --simulate`, `llmproxy e2e
--simulate` and the tests.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from proxy.codex_auth import TokenStore, parse_codex_auth
from proxy.config import Config, parse_config
from proxy.frozen import frozen
from proxy.loop_thread import LoopThread as LoopThread  # its home before the CLI used it
from proxy.server import build_app
from proxy.serving import listening
from proxy.simulate.faults import FaultPlan, MidStreamError, codex_usage_limit, zai_http_500
from proxy.simulate.provider import SimulatedProvider
from proxy.simulate.runner import run_simulated
from proxy.types import ProviderFormat

DEFAULT_SEED = 29
PRE_STREAM_500_RATE = 0.2
MID_STREAM_500_RATE = 0.25
# Where in a reply zai's mid-stream 500 falls, as a share of its content chunks: each mid-stream
# fault draws one of these (seeded), so it lands where it lands: in the reasoning, the answer
# text or a tool call's arguments, not only where recovery is easy.
MID_STREAM_POSITIONS = (0.1, 0.3, 0.5, 0.7, 0.9)

REFERENCE_ROUTES: Mapping[str, str] = {
    # A careful user's default route: cerebras takes over what zai could not start, but it
    # cannot continue a partial answer (no prefill), so minimax (Anthropic format, which can)
    # comes last for a zai stream that dies after its answer text began.
    "default": "zai,glm-5|cerebras,llama-3.3-70b|minimax,MiniMax-M2.5",
    "think": "openai-codex,gpt-5.2|zai,glm-5|minimax,MiniMax-M2.5",
    "background": "openai-codex,gpt-5.2-codex",
}
REFERENCE_MAPPINGS: tuple[tuple[str, str], ...] = (
    ("thinking", "openai-codex,gpt-5.2"),
    ("cheapest", "cerebras,llama3.1-8b"),
    ("fastest", "cerebras,llama-3.3-70b"),
)
ZAI_500_BODY = {
    "error": {
        "code": "500",
        "message": "HTTP 500 - Internal Server Error: the model service failed to respond",
    }
}


def zai_fault_plan(seed: int = DEFAULT_SEED) -> FaultPlan:
    """Each request independently: a 500 before the response, a 500 mid-stream, or healthy.

    A non-streaming request that draws the mid-stream fault gets a 500 status instead (the
    simulator's nearest equivalent), which is what Z.ai does too.
    """
    share = MID_STREAM_500_RATE / len(MID_STREAM_POSITIONS)
    mid_stream = [
        (share, MidStreamError(chunks=0, status=500, body=ZAI_500_BODY, fraction=position))
        for position in MID_STREAM_POSITIONS
    ]
    return FaultPlan(random_faults=[(PRE_STREAM_500_RATE, zai_http_500()), *mid_stream], seed=seed)


def reference_providers(
    seed: int = DEFAULT_SEED, *, chunk_delay: float = 0.0, first_token_delay: float = 0.0
) -> list[SimulatedProvider]:
    """Fresh simulators for the four providers (not started). Delays make streams look live."""
    sims = [
        SimulatedProvider(
            "openai-codex",
            ProviderFormat.CODEX,
            ["gpt-5.2", "gpt-5.2-codex"],
            plan=FaultPlan.always(codex_usage_limit()),
        ),
        SimulatedProvider(
            "zai",
            ProviderFormat.OPENAI,
            ["glm-5", "glm-4.7"],
            api_key="sim-zai-key",
            reasoning=True,
            plan=zai_fault_plan(seed),
        ),
        SimulatedProvider(
            "cerebras",
            ProviderFormat.OPENAI,
            ["llama-3.3-70b", "llama3.1-8b"],
            api_key="sim-cerebras-key",
        ),
        SimulatedProvider(
            "minimax",
            ProviderFormat.ANTHROPIC,
            ["MiniMax-M2.5"],
            api_key="sim-minimax-key",
            reasoning=True,
        ),
    ]
    for sim in sims:
        sim.chunk_delay = chunk_delay
        sim.first_token_delay = first_token_delay
    return sims


def write_sign_ins(sims: Mapping[str, SimulatedProvider], directory: Path) -> dict[str, Path]:
    """A ChatGPT token store per codex simulator (as `llmproxy auth import-codex` would write
    after a real sign-in), so the codex transport authenticates against the simulator."""
    stores = {}
    for sim in sims.values():
        if sim.format is ProviderFormat.CODEX:
            path = directory / f"{sim.name}-auth.json"
            TokenStore(path).save(parse_codex_auth(sim.account.codex_auth_json()))
            stores[sim.name] = path
    return stores


def reference_config_text(
    sims: Mapping[str, SimulatedProvider],
    sign_ins: Mapping[str, Path],
    *,
    host: str = "127.0.0.1",
    port: int = 3456,
    seed: int = DEFAULT_SEED,
) -> str:
    """The reference routes over running simulators. No client key: it binds to loopback only
    and serves made-up answers, so `llmproxy chat` works against it without a config."""
    lines = [
        f"# llmproxy: the simulated reference deployment (seed {seed}).",
        "# Providers are simulators on 127.0.0.1; see `llmproxy serve --help`.",
        "",
        "[proxy]",
        f'host = "{host}"',
        f"port = {port}",
        "",
        "[router]",
        *(f'{name} = "{chain}"' for name, chain in REFERENCE_ROUTES.items()),
    ]
    for source, target in REFERENCE_MAPPINGS:
        lines += ["", "[[router.model_mappings]]", f'from = "{source}"', f'to = "{target}"']
    for sim in sims.values():
        models = ", ".join(f'"{m}"' for m in sim.models)
        lines += [
            "",
            "[[providers]]",
            f'name = "{sim.name}"',
            f'api_base_url = "{sim.base_url}"',
            f'format = "{sim.format.value}"',
            f"models = [{models}]",
            "allow_private_network = true",
        ]
        if sim.format is ProviderFormat.CODEX:
            lines += [
                f'auth_file = "{sign_ins[sim.name]}"',
                f'token_endpoint = "{sim.token_endpoint}"',
            ]
        else:
            lines.append(f'api_key = "{sim.api_key or ""}"')
    return "\n".join(lines) + "\n"


def reference_config(
    sims: Mapping[str, SimulatedProvider],
    sign_ins: Mapping[str, Path],
    *,
    host: str = "127.0.0.1",
    port: int = 3456,
    seed: int = DEFAULT_SEED,
) -> Config:
    text = reference_config_text(sims, sign_ins, host=host, port=port, seed=seed)
    return parse_config(text, env={}, source=f"<simulated deployment, seed {seed}>")


# --- running it ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_daemon(
    config: Config, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """The real daemon on `host:port` (0: an ephemeral port) in the running loop; yields its URL."""
    async with listening(build_app(config), host, port) as runner:
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"


@frozen
class Deployment:
    url: str
    config: Config
    sims: Mapping[str, SimulatedProvider]
    seed: int


@contextlib.asynccontextmanager
async def simulated_deployment(
    seed: int = DEFAULT_SEED,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    chunk_delay: float = 0.0,
    first_token_delay: float = 0.0,
) -> AsyncIterator[Deployment]:
    """Simulators and the daemon in front of them, all in the running loop."""
    providers = reference_providers(
        seed, chunk_delay=chunk_delay, first_token_delay=first_token_delay
    )
    with tempfile.TemporaryDirectory(prefix="llmproxy-sim-") as directory:
        async with run_simulated(providers) as sims:
            sign_ins = write_sign_ins(sims, Path(directory))
            # An ephemeral port is only known once bound: `url` is the truth, not the config.
            config = reference_config(sims, sign_ins, host=host, port=port or 3456, seed=seed)
            async with running_daemon(config, host, port) as url:
                yield Deployment(url, config, sims, seed)
