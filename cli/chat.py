"""`llmproxy chat`: talk to your routes from a terminal, one-shot or interactively."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli._client import Backend, DaemonBackend, TurnError, TurnInfo, open_backend
from cli._config import load, load_address, load_optional, state_dir
from cli._models import check_model
from cli._options import CONFIG_OPTION
from cli._output import Out, dim, fail, print_json, stderr, stdout, styled
from cli._render import (
    AnswerView,
    footer,
    print_footer,
    print_turn_error,
    stdout_is_terminal,
)
from proxy.frozen import frozen
from proxy.types import ClientAPI, JSONObject

if TYPE_CHECKING:
    from proxy.config import Config
    from proxy.config.address import DaemonAddress

PROMPT = "> "
CONTINUATION = ". "
HELP = """\
Commands: /model NAME  switch model (e.g. thinking, zai,glm-5)   /think  toggle reasoning
          /system TEXT  set the system prompt   /reset  start over   /exit  quit (or Ctrl-D)
Multi-line: end a line with \\ to continue, or wrap the message in lines of triple quotes.
Ctrl-C stops the answer being written; the conversation goes on."""


@dataclass(slots=True)
class Settings:
    model: str
    system: str | None
    stream: bool
    think: bool

    def body(self, messages: list[JSONObject]) -> JSONObject:
        head = [{"role": "system", "content": self.system}] if self.system else []
        body: JSONObject = {"model": self.model, "messages": head + messages, "stream": self.stream}
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.think:
            body["reasoning_effort"] = "high"
        return body


def chat(
    prompt: str | None = typer.Argument(
        None,
        help="Ask once and exit. Without it (and with "
        "nothing piped in) an interactive session starts.",
    ),
    model: str = typer.Option(
        "auto",
        "--model",
        "-m",
        help="A model name, mapping alias "
        "(`thinking`) or target (`zai,glm-5`); `auto` takes the default "
        "route.",
    ),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
    think: bool = typer.Option(False, "--think", help="Ask for reasoning (the think route)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Wait for the whole answer."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the answer and how it was served as JSON (one-shot only)."
    ),
    url: str | None = typer.Option(None, "--url", help="Talk to the daemon at this URL."),
    in_process: bool = typer.Option(
        False,
        "--in-process",
        help="Do not use a daemon: route and call the providers from this process.",
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="LLMPROXY_API_KEY",
        help="Client key for the daemon (default: the config's first `proxy.api_key`).",
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Chat with your routes: one-shot, piped, or an interactive session.

    Uses the running daemon when one answers at the configured address, else runs the same
    routing and fallback in-process. The footer (stderr) says who answered, the fallback hops,
    tokens and latency.

    \b
    Examples:
      llmproxy chat "What is a circuit breaker?"
      git diff | llmproxy chat -m thinking --system "Review this diff"
      llmproxy chat --json "2+2?" | jq .served_by
      llmproxy chat            # interactive; /help inside
    """
    # The daemon holds the provider keys, and its address is all a one-shot `auto` question
    # needs: the whole config is read only to check a model name (or for /model).
    address = load_address(config)
    question = combine(prompt, None if sys.stdin.isatty() else sys.stdin.read())
    if question == "":
        fail("nothing to ask: the piped input is empty")
    wanted = model != "auto" or question is None
    settings = load_optional(config, secrets=False) if wanted and address else None
    checked = check_model(model, settings)
    if checked.error:
        fail(checked.error)
    if checked.warning:
        stderr().print(styled((f"warning: {checked.warning}", "yellow")))
    options = Settings(model, system, stream=not no_stream, think=think)
    target = Target(address, settings, url, in_process, api_key, config)
    if question is None:
        if as_json:
            fail("--json needs a prompt (an argument or piped input)")
        _interactive(target, options)
        return
    try:
        code = _one_shot(target, options, question, as_json=as_json)
    except KeyboardInterrupt:
        stderr().print(dim("interrupted"))
        raise typer.Exit(130) from None
    if code:
        raise typer.Exit(code)


def combine(prompt: str | None, piped: str | None) -> str | None:
    """Like `llm`: the piped content, then the prompt. None: nothing given (interactive);
    "": only empty input was piped."""
    content = (piped or "").strip()
    if prompt is None:
        return None if piped is None else content
    return f"{content}\n\n{prompt}" if content else prompt


@frozen
class Target:
    """Where the turns go: the configured daemon, the config read without secrets (when a model
    name is checked against it), and the flags that choose."""

    address: DaemonAddress | None
    config: Config | None
    url: str | None
    in_process: bool
    api_key: str | None
    config_path: Path | None

    def open(self) -> Backend:
        why = "no daemon answers, so this process calls the providers itself"
        try:
            return open_backend(
                self.address,
                url=self.url,
                in_process=self.in_process,
                api_key=self.api_key,
                full_config=lambda: load(self.config_path, why=why),
            )
        except TurnError as exc:
            fail(exc.message)


def _one_shot(target: Target, options: Settings, question: str, *, as_json: bool) -> int:
    backend = target.open()
    err = stderr()
    view = AnswerView(stdout(), err, live=stdout_is_terminal(), quiet=as_json)
    try:
        with view:
            info = backend.run(
                ClientAPI.OPENAI, options.body([{"role": "user", "content": question}]), view.add
            )
    except TurnError as exc:
        if as_json:
            print_json(
                {
                    "error": exc.message,
                    "status": exc.status,
                    "attempts": [a.to_json() for a in exc.attempts],
                }
            )
        print_turn_error(err, exc)
        return 1
    finally:
        backend.close()
    if as_json:
        print_json(_answer_json(view, info))
    else:
        print_footer(err, footer(info, view.usage))
    return 0


def _answer_json(view: AnswerView, info: TurnInfo) -> dict[str, Any]:
    usage = view.usage
    return {
        "text": view.text,
        "reasoning": view.reasoning,
        "tool_calls": view.tool_calls(),
        "stop": view.finish.reason.value if view.finish else None,
        "usage": None
        if usage is None
        else {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        "served_by": info.served_by,
        "attempts": [a.to_json() for a in info.attempts],
        "latency_ms": round(info.latency_ms, 1),
        "via": info.via,
    }


# --- the interactive session --------------------------------------------------------------------


class Session:
    """One conversation: input with history and multi-line entry, one answer at a time."""

    def __init__(
        self,
        backend: Backend,
        options: Settings,
        out: Out,
        err: Out,
        config: Config | None = None,
        listed: Sequence[str] = (),
    ) -> None:
        self.backend = backend
        self.config = config
        self.listed = listed  # the daemon's model ids, to check `/model` without a config
        self.options = options
        self.out = out
        self.err = err
        self.messages: list[JSONObject] = []

    def read(self) -> str:
        """One message: `\\` at the end of a line continues it; a `\"\"\"` line opens a block that
        the next `\"\"\"` line closes. Raises EOFError (Ctrl-D) and KeyboardInterrupt."""
        first = input(PROMPT)
        if first.strip() == '"""':
            lines: list[str] = []
            while (line := input(CONTINUATION)).strip() != '"""':
                lines.append(line)
            return "\n".join(lines)
        lines = [first]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(input(CONTINUATION))
        return "\n".join(lines)

    def command(self, line: str) -> bool:
        """Run a slash command; False means the session ends."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit", "q"):
            return False
        if name in ("reset", "new", "clear"):
            self.messages.clear()
            self.err.print(dim("conversation cleared"))
        elif name == "model" and arg:
            checked = check_model(arg, self.config, self.listed)
            if checked.error:
                self.err.print(
                    styled((f"error: {checked.error}; the model stays {self.options.model}", "red"))
                )
                return True
            if checked.warning:
                self.err.print(styled((f"warning: {checked.warning}", "yellow")))
            self.options.model = arg
            self.err.print(dim(f"model: {arg}"))
        elif name == "system":
            self.options.system = arg or None
            self.err.print(dim(f"system prompt {'set' if arg else 'cleared'}"))
        elif name == "think":
            self.options.think = not self.options.think
            self.err.print(dim(f"reasoning {'on' if self.options.think else 'off'}"))
        else:
            self.err.print(HELP)
        return True

    def ask(self, text: str) -> None:
        """Send one message and show the answer; Ctrl-C stops only this answer."""
        self.messages.append({"role": "user", "content": text})
        view = AnswerView(self.out, self.err, live=stdout_is_terminal())
        try:
            with view:
                info = self.backend.run(
                    ClientAPI.OPENAI, self.options.body(self.messages), view.add
                )
        except KeyboardInterrupt:
            print_footer(self.err, "interrupted")
            if view.text:  # keep what was shown, so the conversation matches the screen
                self.messages.append({"role": "assistant", "content": view.text})
            else:
                self.messages.pop()
            return
        except TurnError as exc:
            print_turn_error(self.err, exc)
            self.messages.pop()
            return
        self.messages.append({"role": "assistant", "content": view.text})
        print_footer(self.err, footer(info, view.usage))


def _interactive(target: Target, options: Settings) -> None:
    err = stderr()
    history = _load_history(state_dir() / "chat_history")
    backend = target.open()
    try:
        listed = (
            backend.model_ids()
            if target.config is None and isinstance(backend, DaemonBackend)
            else []
        )
        session = Session(backend, options, stdout(), err, target.config, listed)
        err.print(
            dim(
                f"llmproxy chat · {backend.label} · model {options.model} · /help for "
                "commands, Ctrl-D to quit"
            )
        )
        while True:
            try:
                line = session.read()
            except KeyboardInterrupt:
                err.print()
                continue
            except EOFError:
                err.print()
                break
            if not line.strip():
                continue
            if line.startswith("/"):
                if not session.command(line):
                    break
                continue
            session.ask(line)
    finally:
        backend.close()
        history()


def _load_history(path: Path) -> Any:
    """Line editing and a persistent input history where `readline` exists; returns the saver."""
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input() still works
        return lambda: None
    readline.set_history_length(1000)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)

    def save() -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)

    return save
