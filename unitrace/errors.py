"""The one error type users see, and the exit codes that go with it.

Every user mistake (a bad probe, a missing binary, a PID that vanished, a kernel that refuses a probe)
ends as a UnitraceError: the CLI prints its text once and exits 2. Anything else escaping is our bug.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ASSERT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Span:
    """Where in the user's text something came from: 1-based line and column, half-open length."""

    line: int
    col: int
    length: int = 1
    source: str = "<command line>"

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}"


class UnitraceError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"unitrace: error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class ProbeError(UnitraceError):
    """An error located in probe text; renders the source line with a caret under the span."""

    def __init__(self, message: str, span: Span, text: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.span = span
        self.text = text

    def render(self) -> str:
        # Lines end at "\n" only, as the lexer counts them (str.splitlines also splits at \r, \f, \x1c, ...)
        lines = self.text.split("\n")
        src = lines[self.span.line - 1].rstrip("\r") if 0 < self.span.line <= len(lines) else ""
        # a tab in the source stays a tab under it, so that the caret lines up on a terminal
        pad = "".join("\t" if c == "\t" else " " for c in src[: self.span.col - 1])
        pad += " " * (self.span.col - 1 - len(pad))
        caret = pad + "^" + "~" * max(0, self.span.length - 1)
        out = f"{self.span}: error: {self.message}\n{src}\n{caret}"
        if self.hint:
            out += f"\nhint: {self.hint}"
        return out

    def __str__(self) -> str:
        return self.render()


class PlanError(UnitraceError):
    """No backend can run a probe; the message says per backend why not."""


class TargetError(UnitraceError):
    """The thing to trace is missing: no such command, a PID that is gone, no permission."""
