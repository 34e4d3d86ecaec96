"""Argument checks shared by :mod:`htaf.functional`, :mod:`htaf.nn` and :mod:`htaf.surrogates`.

Every public entry point validates its inputs here, so that bad input fails early with a message
that names the problem and the fix.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["check_positive", "check_float_tensor", "compute_dtype"]


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
