"""Synthetic nonparametric-regression data: ``regression_<function>``.

Inputs are uniform in ``[0, 1]^d``; training targets are ``f(x) + noise`` with
Gaussian noise of standard deviation ``noise``; test targets are the noiseless
``f(x)``, so the test MSE estimates the excess risk ``E (f_hat(X) - f(X))^2``.

>>> x, y = generate("additive", "train", d=3, n_train=5)
>>> tuple(x.shape), tuple(y.shape)
((5, 3), (5, 1))
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # mean_j sin(2 pi x_j): additive, smooth, range [-1, 1]
    "additive": lambda x: np.sin(2 * np.pi * x).mean(axis=1),
    # Gaussian bump at the centre of the cube
    "bump": lambda x: np.exp(-8.0 * ((x - 0.5) ** 2).sum(axis=1)),
    # prod_j cos(pi x_j): every coordinate interacts
    "product": lambda x: np.cos(np.pi * x).prod(axis=1),
}


def generate(
    function: str,
    split: str,
    d: int = 2,
    n_train: int = 1000,
    n_test: int = 1000,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(inputs (n, d), targets (n, 1))`` as float32 tensors."""
    if function not in FUNCTIONS:
        raise ValueError(
            f"unknown regression function {function!r}; choose one of "
            + ", ".join(f"regression_{name}" for name in FUNCTIONS)
        )
    is_train = split == "train"
    rng = np.random.default_rng([seed, 0 if is_train else 1])
    n = n_train if is_train else n_test
    x = rng.uniform(0.0, 1.0, size=(n, d))
    y = FUNCTIONS[function](x)
    if is_train:
        y = y + rng.normal(0.0, noise, size=n)
    return (
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(y.astype(np.float32)).unsqueeze(1),
    )
