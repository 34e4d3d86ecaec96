r"""The symbolic (SymPy) description of a surrogate family: :class:`Family` and the symbols it is written in.

Each family of :mod:`htaf.surrogates` returns its :class:`Family` from ``symbolic()``; :mod:`htaf.theory`
re-exports everything here and builds its numbers from it. Only :meth:`Surrogate.symbolic
<htaf.surrogates.Surrogate.symbolic>` and :mod:`htaf.theory` import this module, on first use: SymPy takes a
second to load, and ``import htaf`` does not need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["x", "eps", "T", "sigmoid", "Family"]

#: the input variable (real), the half-width of the "near zero" window and the tail threshold
x = sp.Symbol("x", real=True)
eps = sp.Symbol("epsilon", positive=True)
T = sp.Symbol("T", positive=True)


def sigmoid(z):
    r"""The logistic sigmoid :math:`\sigma(z) = 1/(1 + e^{-z})` as a SymPy expression."""
    return 1 / (1 + sp.exp(-z))


@dataclass(frozen=True)
class Family:
    """Symbolic description of one surrogate family (step convention).

    Attributes:
        name: registry name in :mod:`htaf.surrogates`.
        symbols: the family's parameters, in the order of ``htaf.surrogates.get(name).params``.
        primitive: :math:`F(x)`.
        derivative: :math:`F'(x)`, written in a numerically stable form.
        mass: :math:`M(\\varepsilon) = F(\\varepsilon) - F(-\\varepsilon)` in closed form (symbol :data:`eps`).
        tail: :math:`\\int_{|x|\\ge T}|F'|` in closed form (symbol :data:`T`), numerically stable.
        total: :math:`F(+\\infty) - F(-\\infty)`.
        kinks: points (functions of the parameters) where :math:`F'` is not smooth, for quadrature.
        tail_kind: a few words on how :math:`F'` decays.
        note: a remark, such as the family it coincides with.
    """

    name: str
    symbols: tuple[sp.Symbol, ...]
    primitive: sp.Expr
    derivative: sp.Expr
    mass: sp.Expr
    tail: sp.Expr
    total: sp.Expr
    kinks: tuple[sp.Expr, ...] = ()
    tail_kind: str = ""
    note: str = ""

    @property
    def peak_slope(self) -> sp.Expr:
        """:math:`F'(0)` as a SymPy expression of the parameters."""
        return sp.simplify(self.derivative.subs(x, 0))

    def subs(self, expr: sp.Expr, **params) -> sp.Expr:
        """``expr`` with this family's parameters replaced by numbers."""
        return expr.subs({s: sp.Float(params[s.name]) for s in self.symbols})
