"""Showing answers as they stream: Markdown in a live region on a terminal, plain text when
piped. Reasoning is dimmed and kept apart from the answer; the footer goes to stderr.

On a terminal the live region shows the newest lines of the answer, wrapped to the width and
never taller than the screen (a region that scrolls off cannot be redrawn, and a line wider
than the screen is cut by it); once the answer is complete it is printed whole, once, so the
scrollback holds all of it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from cli._client import TurnError, TurnInfo
from cli._output import Out, dim, styled
from proxy.daemon_client import AttemptNote, path_text
from proxy.types import (
    Finish,
    MessageStart,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

if TYPE_CHECKING:  # rich is loaded only for a terminal's live view
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.live import Live


class _Tail:
    """The last lines of a renderable that fit in `height` rows."""

    def __init__(self, renderable: RenderableType, height: int) -> None:
        self.renderable = renderable
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        lines = console.render_lines(self.renderable, options, pad=False)
        for line in lines[-self.height :]:
            yield from line
            yield Segment.line()


@dataclass(slots=True)
class _Call:
    name: str
    arguments: list[str] = field(default_factory=list)


class AnswerView:
    """Collects one answer's events and shows them as they come.

    `live`: a rich Live region on `out` re-renders the Markdown on every delta (terminals);
    otherwise text goes to `out` as it arrives and reasoning to `err`, so a pipe gets the answer
    and nothing else.
    """

    def __init__(self, out: Out, err: Out, *, live: bool, quiet: bool = False) -> None:
        self.out = out
        self.err = err
        self.live = live
        self.quiet = quiet  # collect only (--json)
        self.text = ""
        self.reasoning = ""
        self.calls: dict[int, _Call] = {}
        self.usage: Usage | None = None
        self.model = ""
        self.finish: Finish | None = None
        self._live: Live | None = None
        self._screen: Console | None = None
        self._reasoning_open = False

    def __enter__(self) -> AnswerView:
        if self.live and not self.quiet:
            from rich.console import Console
            from rich.live import Live

            # Wrapping on: the data console's soft_wrap would leave each line to the live
            # region, which cuts it at the screen's edge.
            self._screen = screen = Console(file=self.out.file, highlight=False, markup=False)
            self._live = Live(
                self._tail(screen),
                console=screen,
                refresh_per_second=12,
                transient=True,
                vertical_overflow="crop",
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None and self._screen is not None:
            self._live.stop()
            self._live = None
            self._screen.print(self._renderable())
        elif not self.quiet:
            self._end_reasoning()
            if self.text and not self.text.endswith("\n"):
                self.out.file.write("\n")
            self.out.file.flush()

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self.text += event.text
            if not self.live and not self.quiet:
                self._end_reasoning()
                self.out.file.write(event.text)
                self.out.file.flush()
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
            if not self.live and not self.quiet:
                self._reasoning_open = True
                self.err.print(event.text, style="dim italic", end="")
        elif isinstance(event, ToolCallStart):
            self.calls[event.index] = _Call(event.name)
        elif isinstance(event, ToolCallDelta):
            self.calls.setdefault(event.index, _Call("?")).arguments.append(event.arguments)
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        elif isinstance(event, MessageStart):
            self.model = self.model or event.model
        elif isinstance(event, Finish):
            self.finish = event
        if self._live is not None and self._screen is not None:
            self._live.update(self._tail(self._screen))

    def tool_calls(self) -> list[dict[str, str]]:
        return [{"name": c.name, "arguments": "".join(c.arguments)} for c in self.calls.values()]

    def _end_reasoning(self) -> None:
        if self._reasoning_open:
            self.err.print()
            self._reasoning_open = False

    def _tail(self, screen: Console) -> _Tail:
        return _Tail(self._renderable(), max(1, screen.size.height - 1))

    def _renderable(self) -> RenderableType:
        from rich.console import Group
        from rich.markdown import Markdown
        from rich.padding import Padding
        from rich.text import Text

        parts: list[RenderableType] = []
        if self.reasoning.strip():
            parts.append(Padding(Text(self.reasoning.strip(), style="dim italic"), (0, 0, 1, 2)))
        if self.text:
            parts.append(Markdown(self.text))
        for call in self.calls.values():
            parts.append(Text(f"→ tool call {call.name}({''.join(call.arguments)})", style="cyan"))
        return Group(*parts)


def footer(info: TurnInfo, usage: Usage | None, *, interrupted: bool = False) -> str:
    """`zai,glm-5 · 1 hop: openai-codex 429 → zai · 40 in / 12 out tokens · 0.8 s · daemon`."""
    parts = [info.served_by or "no answer"]
    hops = max(0, len(info.attempts) - 1)
    if hops:
        parts.append(f"{hops} hop{'s' if hops > 1 else ''}: {path_text(info.attempts)}")
    if usage is not None:
        parts.append(f"{usage.input_tokens} in / {usage.output_tokens} out tokens")
    parts.append(f"{info.latency_ms / 1000:.1f} s")
    parts.append(info.via)
    if interrupted:
        parts.append("interrupted")
    return " · ".join(parts)


def print_footer(err: Out, text: str) -> None:
    err.print(dim(text))


def print_turn_error(err: Out, exc: TurnError) -> None:
    err.print(styled(("error: ", "bold red"), exc.message))
    for note in exc.attempts:
        err.print(dim(f"  {attempt_line(note)}"))


def attempt_line(note: AttemptNote) -> str:
    timing = f"{note.elapsed_ms:.0f} ms" if note.elapsed_ms is not None else "—"
    kind = note.error_class or ("ok" if note.ok else "")
    detail = f"  {note.detail}" if note.detail else ""
    return f"{note.target}  {note.outcome}  {kind}  {timing}{detail}"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
