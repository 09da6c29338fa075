"""A gate's condition (``< 0.01``, ``>= 0.99``, ``== 0``): parsed once at rule load, applied per sample.

One comparison against one number, nothing more: a condition is read by whoever reviews the rule,
and "error ratio < 1 %" must not need a language to read. NaN never satisfies a condition and is not
a violation either: it is *no answer* (a ratio of 0/0 when the new pods had no traffic), which the
gate counts as inconclusive, as Argo Rollouts' analysis does.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable

__all__ = ["Condition", "NotACondition", "parse"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_SYNTAX = re.compile(r"\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*")


class NotACondition(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    operator: str
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the condition; callers treat NaN as no answer before asking."""
        return _OPERATORS[self.operator](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.operator} {self.threshold:g}"


def parse(text: str) -> Condition:
    found = _SYNTAX.fullmatch(text)
    if found is None:
        raise NotACondition(f"{text!r} is not a condition: write an operator (<, <=, >, >=, ==, !=) and a number, "
                            "e.g. '< 0.01'")
    threshold = float(found.group(2))
    if math.isinf(threshold):
        raise NotACondition(f"{text!r}: the threshold is not a finite number")
    return Condition(found.group(1), threshold)
