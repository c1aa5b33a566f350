"""No secret in the logs: requests, failures and debug body logs through the real daemon, with
everything llmproxy and aiohttp log captured at debug level."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator

import pytest
from raw_http import post
from security_support import Apps
from support import CLIENT_KEY, config_text

from proxy.config import parse_config
from proxy.logging_setup import REDACTED, RedactingFilter, Redactor
from proxy.simulate import FaultPlan, SimulatedProvider, Status, run_simulated, unauthorized

ZAI_KEY = "zai-provider-key-0123456789"
MINIMAX_KEY = "sk-minimax-provider-key-abcdef"
HEADER_SECRET = "header-secret-value-xyz"
SECRETS = (ZAI_KEY, MINIMAX_KEY, HEADER_SECRET, CLIENT_KEY)


def test_redactor_masks_known_values_and_secret_shapes() -> None:
    redactor = Redactor([ZAI_KEY, "ollama", ""])
    text = redactor.redact(
        f"key {ZAI_KEY} sent; ollama is a provider; Authorization: Bearer abcdef123456; "
        'body {"api_key": "plain-value", "x-api-key":"v2", "model": "m"}; '
        "openai sk-proj-AbCdEf123456 and sk-ant-api03-xyz_789abc; url ?key=zzz&x=1; "
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"
    )
    for leaked in (
        ZAI_KEY,
        "abcdef123456",
        "plain-value",
        '"v2"',
        "sk-proj-AbCdEf123456",
        "sk-ant-api03",
        "zzz",
        "eyJhbGciOiJIUzI1NiJ9",
    ):
        assert leaked not in text, leaked
    assert "ollama is a provider" in text  # short placeholders are not masked as secrets
    assert '"model": "m"' in text
    assert "Bearer [REDACTED]" in text


def test_a_known_value_is_masked_in_a_line_with_no_secret_word() -> None:
    # The pattern pass is skipped for lines without a trigger word; known values never are.
    redactor = Redactor(["first-value-0001", "second-value-0002"])
    line = "req_1 anthropic once default [zai] => zai,second-value-0002 200 (first-value-0001)"
    assert redactor.redact(line) == (
        "req_1 anthropic once default [zai] => zai,[REDACTED] 200 ([REDACTED])"
    )
    plain = "req_2 openai once default [zai] => zai,glm-5 200 in=1 out=2"
    assert redactor.redact(plain) == plain


def test_filter_redacts_arguments_and_tracebacks() -> None:
    record_filter = RedactingFilter(Redactor([ZAI_KEY]))
    try:
        raise ValueError(f"upstream said: bad key {ZAI_KEY}")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed with %s", (ZAI_KEY,), sys.exc_info()
        )
    assert record_filter.filter(record)
    assert record.getMessage() == f"failed with {REDACTED}"
    assert record.exc_text is not None and ZAI_KEY not in record.exc_text
    assert "upstream said: bad key" in record.exc_text


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


def providers() -> list[SimulatedProvider]:
    return [
        SimulatedProvider(
            "zai",
            "openai",
            ["glm-5"],
            api_key=ZAI_KEY,
            plan=FaultPlan([Status(500), unauthorized("openai")]),
        ),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"], api_key=MINIMAX_KEY),
    ]


async def test_no_secret_in_logs_of_requests_and_failures(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_simulated(providers()) as sims:
        header = f'headers = {{ "X-Org" = "{HEADER_SECRET}" }}'
        text = config_text(
            sims, {"default": "zai,glm-5|minimax,MiniMax-M2"}, provider_extra={"minimax": header}
        )
        config = parse_config(text, {})
        proxy = await apps.start(config)
        with caplog.at_level(logging.DEBUG):
            chat, messages = proxy.url + "/v1/chat/completions", proxy.url + "/v1/messages"
            pasted = [{"role": "user", "content": f"my keys are {ZAI_KEY} and {MINIMAX_KEY}"}]
            ok = await post(chat, {"model": "auto", "messages": pasted})  # zai 500 -> minimax
            assert ok.status == 200, ok.body
            ok = await post(messages, {"model": "auto", "max_tokens": 30, "messages": pasted})
            assert ok.status == 200, ok.body  # zai 401 -> minimax
            assert (
                await post(chat, {"model": "auto", "messages": pasted}, key="sk-wrong-key")
            ).status == 401
            assert (await post(chat, b"{broken", key=CLIENT_KEY)).status == 400
            logging.getLogger("llmproxy.fallback").error(
                "a careless line: %s / Bearer %s", ZAI_KEY, CLIENT_KEY
            )
            logging.getLogger("aiohttp.server").error("peer sent x-api-key: %s", MINIMAX_KEY)
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "nothing was logged"
    for secret in SECRETS:
        assert secret not in logged, secret
    assert "request body" in logged and REDACTED in logged  # bodies at debug, redacted
    assert "a careless line: [REDACTED]" in logged


async def test_bodies_are_not_logged_above_debug(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_simulated(providers()[1:]) as sims:
        proxy = await apps.start(
            parse_config(config_text(sims, {"default": "minimax,MiniMax-M2"}), {})
        )
        with caplog.at_level(logging.INFO):
            body = {"model": "auto", "messages": [{"role": "user", "content": "private words"}]}
            assert (await post(proxy.url + "/v1/chat/completions", body)).status == 200
    assert "private words" not in caplog.text
    assert "request body" not in caplog.text
