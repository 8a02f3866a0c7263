"""The filter bar's language is the probes' predicate language: parse with `unitrace.lang`, evaluate with
`unitrace.model.evaluate`. A mistake comes back with the column it is at, for the inline marker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unitrace.errors import ProbeError, UnitraceError
from unitrace.events import Event


@dataclass(frozen=True, slots=True)
class FilterProblem:
    message: str
    col: int  # 1-based column in the filter text; 0 when the problem has no position
    length: int = 1
    hint: str = ""

    def marker(self, indent: int = 0) -> str:
        """A caret line under the offending text, as the CLI prints it."""
        if self.col <= 0:
            return ""
        return " " * (indent + self.col - 1) + "^" + "~" * max(0, self.length - 1)


def compile_filter(text: str) -> Callable[[Event], bool] | FilterProblem:
    """A predicate for the filter text, or the problem with it. Empty text is not a filter (None is not
    returned: the caller clears the filter itself)."""
    try:
        from unitrace.lang import parse_predicate
        from unitrace.model.evaluate import predicate
    except ImportError:
        return FilterProblem("the predicate language (unitrace.lang, unitrace.model.evaluate) is not available in this build", 0)
    try:
        expr = parse_predicate(text)
        return predicate(expr)
    except ProbeError as err:
        return FilterProblem(err.message, err.span.col, err.span.length, err.hint or "")
    except UnitraceError as err:
        return FilterProblem(err.message, 0, 1, err.hint or "")
