"""`llmproxy route test --send`: perform the request and account for every attempt."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from cli._client import Backend, TurnError, open_backend
from cli._output import dim, fail, stderr, stdout, styled
from cli._render import AnswerView
from proxy.config import Config
from proxy.config.address import DaemonAddress
from proxy.daemon_client import AttemptNote, served_by
from proxy.frozen import field, frozen
from proxy.types import ClientAPI, JSONObject


@frozen
class Sent:
    ok: bool
    attempts: tuple[AttemptNote, ...]
    latency_ms: float
    via: str
    error: str | None = None
    status: int | None = None
    text: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    affinity: str | None = None

    @property
    def served_by(self) -> str | None:
        return served_by(self.attempts) if self.ok else None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "served_by": self.served_by,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 1),
            "via": self.via,
            "attempts": [a.to_json() for a in self.attempts],
            "text": self.text,
            "tool_calls": self.tool_calls,
            "affinity": self.affinity,
        }


def route_send(
    config: Config,
    body: JSONObject,
    *,
    stream: bool,
    url: str | None,
    api_key: str | None,
    turns: int = 1,
    session: str | None = None,
) -> list[Sent]:
    """Send an Anthropic-format request in-process (or through the daemon at `url`); with
    `turns` > 1, as the turns of one conversation (each resends the earlier ones), so the
    prompt-cache affinity of the later turns shows."""
    body = {**body, "stream": True} if stream else body
    try:
        backend = open_backend(
            DaemonAddress.of(config),
            url=url,
            in_process=url is None,
            api_key=api_key,
            full_config=lambda: config,
        )
    except TurnError as exc:
        fail(exc.message)
    sent: list[Sent] = []
    try:
        for turn in range(1, turns + 1):
            if turn > 1:
                body = _next_turn(body, sent[-1].text, turn)
            sent.append(_one(backend, body, session))
            if not sent[-1].ok:
                break
    finally:
        backend.close()
    return sent


def _one(backend: Backend, body: JSONObject, session: str | None) -> Sent:
    view = AnswerView(stdout(), stderr(), live=False, quiet=True)
    try:
        with view:
            info = backend.run(ClientAPI.ANTHROPIC, body, view.add, session)
    except TurnError as exc:
        return Sent(
            False,
            exc.attempts,
            exc.latency_ms,
            backend.label,
            exc.message,
            exc.status,
            view.text,
            view.tool_calls(),
        )
    return Sent(
        True,
        info.attempts,
        info.latency_ms,
        info.via,
        None,
        200,
        view.text,
        view.tool_calls(),
        info.affinity,
    )


def _next_turn(body: JSONObject, answer: str, turn: int) -> JSONObject:
    messages = [
        *body["messages"],
        {"role": "assistant", "content": answer or "(no text)"},
        {"role": "user", "content": f"Turn {turn}: go on."},
    ]
    return {**body, "messages": messages}


def print_sent(sent: Sent, turn: int | None = None) -> None:
    out = stdout()
    if turn is not None:
        out.print(styled((f"turn {turn}", "bold")))
    table = Table(
        box=box.SIMPLE, title=f"attempts ({sent.via})", title_justify="left", header_style="bold"
    )
    for column in ("#", "target", "status", "error class", "time", "detail"):
        table.add_column(column, overflow="fold")
    for position, note in enumerate(sent.attempts, 1):
        status = "200" if note.ok else note.outcome if note.outcome.isdigit() else "—"
        timing = f"{note.elapsed_ms:.0f} ms" if note.elapsed_ms is not None else "—"
        style = "green" if note.ok else "red" if note.outcome.isdigit() else "yellow"
        cells = (str(position), note.target, status, note.error_class or "", timing, note.detail)
        table.add_row(*(Text(cell) for cell in cells), style=style)
    if sent.attempts:
        out.print(table)
    hops = max(0, len(sent.attempts) - 1)
    if sent.ok:
        out.print(
            styled(
                ("verdict", "bold green"),
                f"  answered by {sent.served_by or '?'} "
                f"after {hops} fallback hop{'' if hops == 1 else 's'} in "
                f"{sent.latency_ms:.0f} ms",
            )
        )
        answer = sent.text.strip().replace("\n", " ")
        if answer:
            more = "…" if len(answer) > 100 else ""
            out.print(dim(f"answer   {answer[:100]}{more}"))
        for call in sent.tool_calls:
            out.print(dim(f"tool     {call['name']}({call['arguments']})"))
    else:
        status = f" ({sent.status})" if sent.status else ""
        out.print(styled(("verdict", "bold red"), f"  failed{status}: {sent.error or ''}"))
    if sent.affinity is not None:
        out.print(styled(("affinity", "bold"), f" {sent.affinity}"))
