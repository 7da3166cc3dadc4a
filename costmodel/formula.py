"""One expression, three uses: numbers, LaTeX, and "show your work".

A :class:`Formula` wraps a sympy expression written in the symbols of :mod:`costmodel.symbols`.

- ``f(**values)`` evaluates through a cached ``lambdify`` (numpy: arrays broadcast, so a sweep of
  a million points is one call);
- ``f.exact(**values)`` substitutes exactly (sympy integers and rationals) and returns an ``int``
  when the result is integral — parameter counts and byte counts stay exact;
- ``f.latex()`` is the formula, ``f.show(**values)`` the formula with the numbers put in and
  the result: ``P = V d + ... = 50257 \\cdot 768 + ... = 124439808``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from costmodel.symbols import NAME_OF


def _step(x):
    """Heaviside for the arguments the formulas use (never exactly 0: they are offset by ½)."""
    return (x > 0) * 1.0


class _Printer(NumPyPrinter):
    """numpy code, with Heaviside as a comparison (fast on scalars, broadcasts on arrays)."""

    def _print_Heaviside(self, expr):
        return f"_step({self._print(expr.args[0])})"

    def _nested(self, fn: str, args) -> str:
        first, *rest = (self._print(a) for a in args)
        for a in rest:
            first = f"numpy.{fn}({first}, {a})"
        return first

    def _print_Min(self, expr):
        return self._nested("minimum", expr.args)

    def _print_Max(self, expr):
        return self._nested("maximum", expr.args)


#: The names the generated code uses: the numpy module itself and the step function (passing
#: them directly spares lambdify importing every numpy submodule, a tenth of a second).
NAMESPACE = {"numpy": np, "_step": _step}


def lambdify(symbols: Sequence[sp.Symbol], expr, cse: bool = False):
    """A Python function of ``symbols`` evaluating ``expr`` (an expression or a list of them)
    with numpy (arrays broadcast). The symbols are renamed to their Python names first (LaTeX
    names such as ``H_{kv}`` are not identifiers, and lambdify's own renaming is slow)."""
    plain = {s: sp.Symbol(NAME_OF.get(s, f"x{i}"), **s.assumptions0)
             for i, s in enumerate(symbols)}
    expr = [e.xreplace(plain) for e in expr] if isinstance(expr, list) else \
        sp.sympify(expr).xreplace(plain)
    return sp.lambdify([plain[s] for s in symbols], expr, modules=[NAMESPACE],
                       printer=_Printer, cse=cse, docstring_limit=0, dummify=False)


def compile_numeric(symbols: Sequence[sp.Symbol], exprs: Sequence[sp.Expr]):
    """One Python function of ``symbols`` returning the list of ``exprs`` (common
    subexpressions computed once; numpy arrays broadcast)."""
    return lambdify(symbols, list(exprs), cse=True)


def _to_sympy(value: Any) -> sp.Basic:
    if isinstance(value, bool):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, float) and value.is_integer():
        return sp.Integer(int(value))
    if isinstance(value, float):
        return sp.Rational(str(value))  # exact decimal: 0.5 → 1/2, 1e-6 → 1/1000000
    return sp.sympify(value)


def _format_number(value: Any) -> str:
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()
                                                and abs(value) < 1e15):
        return str(int(value))
    return f"{float(value):.6g}"


@dataclass(frozen=True)
class Formula:
    """A named sympy expression with its unit and a one-line description."""

    name: str
    expr: sp.Expr
    unit: str = ""
    description: str = ""
    symbol: str = ""  # LaTeX for the left-hand side; defaults to the name

    @cached_property
    def free_names(self) -> tuple[str, ...]:
        """Python names of the symbols this formula needs, sorted."""
        return tuple(sorted(NAME_OF[s] for s in self.expr.free_symbols))

    @cached_property
    def _fn(self):
        syms = [next(s for s in self.expr.free_symbols if NAME_OF[s] == n)
                for n in self.free_names]
        return lambdify(syms, self.expr)

    def _args(self, values: dict[str, Any]) -> list[Any]:
        missing = [n for n in self.free_names if n not in values]
        if missing:
            raise ValueError(f"{self.name}: missing value(s) for {missing}")
        return [values[n] for n in self.free_names]

    def __call__(self, **values: Any) -> Any:
        """Numeric value; numpy arrays broadcast."""
        out = self._fn(*self._args(values))
        if isinstance(out, np.ndarray) and out.ndim == 0:
            return out.item()
        return out

    def exact(self, **values: Any) -> int | float | sp.Basic:
        """Exact value by substitution: an int when the result is integral."""
        args = self._args(values)
        subs = {next(s for s in self.expr.free_symbols if NAME_OF[s] == n): _to_sympy(v)
                for n, v in zip(self.free_names, args, strict=True)}
        out = sp.nsimplify(self.expr.xreplace(subs)) if subs else self.expr
        out = sp.simplify(out) if not out.is_number else out
        if out.is_Integer:
            return int(out)
        if out.is_Rational:
            return float(out)
        if out.is_number:
            return float(out)
        return out

    def latex(self) -> str:
        """``lhs = expression`` in LaTeX."""
        return f"{self.symbol or self.name} = {sp.latex(self.expr)}"

    def substituted(self, **values: Any) -> str:
        """The expression in LaTeX with every symbol replaced by its number (structure kept)."""
        names = {s: _format_number(values[NAME_OF[s]])
                 for s in self.expr.free_symbols if NAME_OF[s] in values}
        return sp.latex(self.expr, mul_symbol="dot", symbol_names=names)

    def show(self, **values: Any) -> str:
        """Show your work: formula = formula with numbers = result."""
        result = self.exact(**values)
        shown = result if isinstance(result, int) else f"{float(result):.6g}"
        return f"{self.latex()} = {self.substituted(**values)} = {shown}"
