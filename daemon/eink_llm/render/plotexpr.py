"""Functions of x for ```plot blocks: a tiny arithmetic grammar, parsed by hand and never ``eval``-ed.

Grammar (whitespace ignored)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary | unary)*        # juxtaposition multiplies: 2x, 3(x+1), x sin x
    unary   := ("-" | "+") unary | power
    power   := atom (("^" | "**") unary)?                 # right-associative: 2^x^2 = 2^(x^2)
    atom    := number | "x" | constant | function "(" expr ")" | function unary | "(" expr ")" | "|" expr "|"

Constants: ``pi``, ``e``, ``tau``. Functions: ``sin cos tan asin acos atan`` (also ``arcsin``…), ``sinh cosh
tanh``, ``exp``, ``ln`` and ``log`` (both natural), ``log10``, ``log2``, ``sqrt``, ``abs``, ``floor``, ``ceil``,
``sign``. A value that is undefined or overflows at some x (``sqrt(-1)``, ``1/0``, ``exp(1000)``) is NaN there
and leaves a gap in the curve. Expressions are at most :data:`MAX_CHARS` characters and :data:`MAX_DEPTH`
levels deep, so parsing and evaluating are bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from eink_llm.errors import DrawingRefused

MAX_CHARS = 300
MAX_DEPTH = 40

Fn = Callable[[float], float]


def _sign(v: float) -> float:
    return math.copysign(1.0, v) if v else 0.0


FUNCTIONS: dict[str, Fn] = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan,
    "arcsin": math.asin, "arccos": math.acos, "arctan": math.atan, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "exp": math.exp, "ln": math.log, "log": math.log, "log10": math.log10, "log2": math.log2,
    "sqrt": math.sqrt, "abs": abs, "floor": math.floor, "ceil": math.ceil, "sign": _sign,
}  # fmt: skip
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}

_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|(\*\*|[-+*/^()|]))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.replace("·", "*").replace("×", "*").replace("−", "-").replace("π", "pi")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise DrawingRefused(f"the plot's function has a character it does not know ({text[pos:].strip()[:1]!r})")
        number, name, op = match.groups()
        if number is not None:
            out.append(("num", number))
        elif name is not None:
            out.extend(_split_name(name))
        else:
            out.append(("op", op))
        pos = match.end()
    return out


def _split_name(name: str) -> list[tuple[str, str]]:
    """A run of letters: a known name, or a juxtaposition of them ("xsin" is rare; "2x" is split by the regex)."""
    lowered = name.lower()
    if lowered == "x" or lowered in FUNCTIONS or lowered in CONSTANTS:
        return [("name", lowered)]
    # "sinx", "pix", "xx": a known name followed by more names
    for known in sorted([*FUNCTIONS, *CONSTANTS, "x"], key=len, reverse=True):
        if lowered.startswith(known) and len(lowered) > len(known):
            return [("name", known), *_split_name(lowered[len(known) :])]
    raise DrawingRefused(f"the plot's function uses an unknown name ({name[:20]!r}); only x, constants and functions")


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            wanted = f"{value!r}" if value else "more"
            raise DrawingRefused(f"the plot's function is incomplete (expected {wanted})")
        self.pos += 1
        return token

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise DrawingRefused("the plot's function is nested too deeply")

    def expr(self) -> Fn:
        self.nested()
        left = self.term()
        while (token := self.peek()) is not None and token[1] in ("+", "-"):
            self.pos += 1
            right = self.term()
            left = _add(left, right) if token[1] == "+" else _sub(left, right)
        self.depth -= 1
        return left

    def starts_atom(self) -> bool:
        token = self.peek()
        return token is not None and (token[0] in ("num", "name") or token[1] == "(")

    def term(self) -> Fn:
        left = self.unary()
        while True:
            token = self.peek()
            if token is not None and token[1] in ("*", "/"):
                self.pos += 1
                right = self.unary()
                left = _mul(left, right) if token[1] == "*" else _div(left, right)
            elif self.starts_atom():
                left = _mul(left, self.power())
            else:
                return left

    def unary(self) -> Fn:
        token = self.peek()
        if token is not None and token[1] in ("-", "+"):
            self.pos += 1
            self.nested()
            inner = self.unary()
            self.depth -= 1
            return _neg(inner) if token[1] == "-" else inner
        return self.power()

    def power(self) -> Fn:
        base = self.atom()
        token = self.peek()
        if token is not None and token[1] in ("^", "**"):
            self.pos += 1
            self.nested()
            exponent = self.unary()
            self.depth -= 1
            return _pow(base, exponent)
        return base

    def atom(self) -> Fn:
        kind, value = self.take()
        if kind == "num":
            number = float(value)
            return lambda x: number
        if kind == "name":
            if value == "x":
                return lambda x: x
            if value in CONSTANTS:
                constant = CONSTANTS[value]
                return lambda x: constant
            function = FUNCTIONS[value]
            following = self.peek()
            if following is not None and following[1] == "(":
                argument = self.atom()
                return _call(function, argument)
            self.nested()
            argument = self.unary()  # "sin x", "sin 2x" reads as sin(2x) only up to the next * or /
            self.depth -= 1
            return _call(function, argument)
        if value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if value == "|":
            inner = self.expr()
            self.take("|")
            return _call(abs, inner)
        raise DrawingRefused(f"the plot's function has {value!r} where a number, x or a function was expected")


def _add(a: Fn, b: Fn) -> Fn:
    return lambda x: a(x) + b(x)


def _sub(a: Fn, b: Fn) -> Fn:
    return lambda x: a(x) - b(x)


def _mul(a: Fn, b: Fn) -> Fn:
    return lambda x: a(x) * b(x)


def _div(a: Fn, b: Fn) -> Fn:
    return lambda x: a(x) / b(x)


def _neg(a: Fn) -> Fn:
    return lambda x: -a(x)


def _pow(a: Fn, b: Fn) -> Fn:
    return lambda x: math.pow(a(x), b(x))


def _call(function: Fn, argument: Fn) -> Fn:
    return lambda x: float(function(argument(x)))


def compile_function(text: str) -> Fn:
    """``text`` as a function of x that never raises (NaN where undefined); :class:`DrawingRefused` if it is not one."""
    text = text.strip()
    for prefix in ("y=", "y =", "f(x)=", "f(x) ="):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :].strip()
    if not text:
        raise DrawingRefused("the plot has an empty function")
    if len(text) > MAX_CHARS:
        raise DrawingRefused(f"the plot's function is too long (at most {MAX_CHARS} characters)")
    parser = _Parser(_tokens(text))
    function = parser.expr()
    if parser.peek() is not None:
        raise DrawingRefused(f"the plot's function has something left over ({parser.peek()[1]!r})")  # type: ignore[index]

    def safe(x: float) -> float:
        try:
            value = function(x)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return math.nan
        return value if isinstance(value, float) and math.isfinite(value) else math.nan

    return safe
