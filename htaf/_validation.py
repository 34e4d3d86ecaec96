"""Argument checks shared by :mod:`htaf.functional`, :mod:`htaf.nn` and :mod:`htaf.surrogates`.

Every public entry point validates its inputs here, so that bad input fails early with a message
that names the problem and the fix.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch

__all__ = ["check_positive", "check_float_tensor", "compute_dtype", "check_fits_dtype"]

#: the largest finite value of each floating-point dtype (a plain dict: cheap to read, and torch.compile-friendly)
_FLOAT_MAX = {dtype: float(torch.finfo(dtype).max) for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}
#: the smallest positive normal value of each: a parameter below it is flushed towards 0 (``0 * inf`` is NaN)
_FLOAT_TINY = {dtype: float(torch.finfo(dtype).tiny) for dtype in _FLOAT_MAX}
#: headroom between the peak slope and the largest finite value, for the intermediates of the closed forms
#: (HTAF forms ``4*alpha*beta = 16 * peak`` inside ``sech2``)
_HEADROOM = 16.0


def check_positive(name: str, value) -> float:
    """Return ``value`` as a float after checking it is a finite number greater than zero.

    Raises:
        TypeError: ``value`` is not a real number (booleans are refused too).
        ValueError: ``value`` is zero, negative, NaN or infinite; the message names ``name``.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite number greater than 0, got {value!r}")
    return value


def check_float_tensor(x, function: str) -> torch.Tensor:
    """Check that ``x`` is a real floating-point tensor, the only input the activations accept.

    Raises:
        TypeError: ``x`` is not a tensor, or is an integer, boolean or complex tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{function} expects a torch.Tensor, got {type(x).__name__}; "
            "wrap it with torch.as_tensor(x, dtype=torch.float32)"
        )
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"{function} expects a floating-point tensor, got dtype {x.dtype}; "
            "pass floats, for example x.float()"
        )
    return x


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the closed forms are evaluated in: float32 for the 16-bit types, else ``dtype``.

    This mirrors PyTorch's own "opmath" rule for reduced-precision pointwise kernels.
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_fits_dtype(owner: Callable[[], str], params: dict[str, float], peak: float, dtype: torch.dtype) -> None:
    """Check that a unit with ``params`` and peak slope ``peak`` stays finite on inputs of ``dtype``.

    Finite but huge parameters overflow a narrower dtype: ``alpha=1e300`` becomes ``inf`` in float32, and
    ``alpha*beta = 1e39`` makes HTAF's backward ``inf``/``NaN`` there; tiny ones (``alpha=1e-300``) underflow to 0
    there, and ``0 * inf`` makes the gradient at an infinite input NaN. Every parameter must be finite in the
    compute dtype, the peak slope finite in ``dtype`` itself (the gradient is returned in it), and 16 times
    the peak slope finite in the compute dtype (room for the intermediates of the closed forms). ``owner()``
    names the unit in messages (called only when the check fails, to keep the check cheap).

    Raises:
        ValueError: naming the parameter or the peak slope, the limit and the fix.
    """
    work = compute_dtype(dtype)
    largest = _FLOAT_MAX.get(work)
    if largest is None:  # not one of the four float dtypes (float8 and friends): nothing we can promise
        return
    for key, value in params.items():
        if 0.0 < value < _FLOAT_TINY[work]:
            raise ValueError(
                f"{key} = {value:g} of {owner()} is too small for {work} inputs (smallest normal value "
                f"{_FLOAT_TINY[work]:.3g}: it would round towards 0 and make the gradient NaN); use a larger {key}, "
                "or float64 inputs"
            )
        if value > largest:
            raise ValueError(
                f"{key} = {value:g} of {owner()} is too large for {work} inputs (largest finite value {largest:.3g}); "
                f"use a smaller {key}, or float64 inputs"
            )
    limit = min(_FLOAT_MAX[dtype], largest / _HEADROOM)
    if not peak <= limit:
        names = " or ".join(params) or "its parameters"
        raise ValueError(
            f"{owner()} overflows {dtype}: its peak slope {peak:.3g} exceeds {limit:.3g}, the largest this dtype allows "
            f"(its largest finite value is {_FLOAT_MAX[dtype]:.3g}, the closed forms need headroom); "
            f"lower {names}, or use float64 inputs"
        )
