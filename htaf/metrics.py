"""Measurements of binary networks that every model family shares.

* **Firing**: :func:`firing_rates` (per-unit firing frequency of every binary unit under the exact step)
  and :func:`firing_summary` (shares of units that never fire or always fire, mean rate).
* **The switch**: :func:`switch_metrics` scores one trained network with its smooth units and with exact
  steps (through the engine's :func:`htaf.engine.evaluate`).
* **Gradients**: :func:`gradient_norms`, one key scheme for every family: ``grad_norm_<layer>`` where
  ``<layer>`` is ``conv<k>`` for the k-th convolution and ``fc<k>`` for the k-th linear layer, counted
  from 1 in the order of ``model.modules()`` (:func:`weight_layers`); :func:`surrogate_gradient_statistics`,
  how much surrogate gradient the pre-activations of each unit let through, and :func:`unit_input_gradients`, the
  backward signal reaching each unit (the measured counterparts of :func:`htaf.theory.dead_fraction` and
  :func:`htaf.theory.gain`).
* **Binary weights**: :func:`flip_ratio` and :class:`FlipCounter`, the share of binary weights that change
  sign in an update (BNN training).

Binary units are the :mod:`htaf.nn` modules :class:`~htaf.nn.HTAF`, :class:`~htaf.nn.Spike` and
:class:`~htaf.nn.Smooth`, and any module with a true ``binary_unit`` attribute (the LIF layer of
:mod:`htaf.models.snn`, whose outputs are time-major, ``time_major = True``).

>>> import torch
>>> from torch import nn
>>> from htaf.nn import HTAF
>>> model = nn.Sequential(nn.Linear(2, 3), HTAF())
>>> sorted(weight_layers(model)), list(binary_units(model))
(['fc1'], ['1'])
>>> flip_ratio(torch.tensor([1.0, -2.0, 0.5, -1.0]), torch.tensor([1.0, 2.0, -0.5, -1.0]))
0.5
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf.engine import evaluate
from htaf.nn import HTAF, SWITCHABLE, Smooth, Spike, use_mode

__all__ = [
    "FlipCounter",
    "binary_units",
    "firing_rates",
    "firing_summary",
    "first_inputs",
    "flip_ratio",
    "gradient_norms",
    "surrogate_gradient_statistics",
    "switch_metrics",
    "unit_input_gradients",
    "weight_layers",
]


# --------------------------------------------------------------------------------------------
# Firing
# --------------------------------------------------------------------------------------------


def binary_units(model: nn.Module) -> dict[str, nn.Module]:
    """The binary units of ``model`` (see the module docstring), by qualified module name."""
    return {
        name: module for name, module in model.named_modules()
        if isinstance(module, (HTAF, Spike, Smooth)) or getattr(module, "binary_unit", False)
    }


def first_inputs(batches: Iterable, limit: int | None = None) -> Iterator[torch.Tensor]:
    """The inputs of ``batches`` (a loader's ``(x, y, ...)`` tuples or bare tensors), stopping after ``limit`` samples."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of samples or None, got {limit!r}")
    seen = 0
    for batch in batches:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        if limit is not None:
            if seen >= limit:
                return
            inputs = inputs[: limit - seen]
        seen += inputs.shape[0]
        yield inputs


@torch.no_grad()
def firing_rates(
    model: nn.Module,
    batches: Iterable,
    device: torch.device | str = "cpu",
    units: dict[str, nn.Module] | None = None,
    limit: int | None = None,
) -> dict[str, torch.Tensor]:
    """Per-unit firing frequency of every binary unit under the exact step, by unit module.

    ``batches`` yields input tensors or ``(inputs, ...)`` tuples (a DataLoader); only the first ``limit``
    samples are used when given. The network runs in eval mode with every switchable unit in ``"step"``
    mode, and a unit's frequency is the share of its outputs that equal 1 (over samples, and over time
    steps for time-major units). ``units`` defaults to :func:`binary_units`. Returns one float64 tensor of
    the unit's output shape (without the sample and time dimensions) per module. The model's train/eval
    state is restored.
    """
    units = binary_units(model) if units is None else units
    counts: dict[str, torch.Tensor] = {}
    samples: dict[str, int] = {}

    def record(name: str, module: nn.Module):
        def hook(_module, _inputs, out):
            leading = 2 if getattr(module, "time_major", False) else 1
            fired = (out == 1).flatten(0, leading - 1).sum(dim=0, dtype=torch.float64).cpu()
            counts[name] = counts[name] + fired if name in counts else fired
            samples[name] = samples.get(name, 0) + out.shape[:leading].numel()
        return hook

    hooks = [module.register_forward_hook(record(name, module)) for name, module in units.items()]
    was_training = model.training
    seen = 0
    try:
        model.eval()
        with use_mode(model, "step"):
            for inputs in first_inputs(batches, limit):
                model(inputs.to(device))
                seen += inputs.shape[0]
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    if seen == 0:
        raise ValueError("firing_rates got no inputs")
    return {name: counts[name] / samples[name] for name in units if name in counts}


def firing_summary(rates: dict[str, torch.Tensor] | list[torch.Tensor]) -> dict[str, float | list[float]]:
    """Shares of binary units that never fire (``dead_share``) or always fire (``always_on_share``).

    Shares are over all units of the network; ``*_by_layer`` lists give them per unit module and
    ``mean_firing_rate`` is the average unit's frequency.

    >>> firing_summary([torch.tensor([0.0, 1.0, 0.5, 0.5])])["dead_share"]
    0.25
    """
    layers = [rate.flatten() for rate in (rates.values() if isinstance(rates, dict) else rates)]
    flat = torch.cat(layers) if layers else torch.zeros(0)
    if flat.numel() == 0:
        raise ValueError("the network has no binary units")
    return {
        "dead_share": float((flat == 0).double().mean()),
        "always_on_share": float((flat == 1).double().mean()),
        "mean_firing_rate": float(flat.mean()),
        "dead_share_by_layer": [float((r == 0).double().mean()) for r in layers],
        "always_on_share_by_layer": [float((r == 1).double().mean()) for r in layers],
    }


# --------------------------------------------------------------------------------------------
# The switch from smooth units to exact steps
# --------------------------------------------------------------------------------------------


def switch_metrics(model: nn.Module, loader: DataLoader | Iterable, device: torch.device | str,
                   config: dict[str, Any], experiment: Any = None) -> dict[str, float]:
    r"""Score ``model`` with exact steps and, if it has switchable (smooth) units, with them smooth; and the gap.

    Scores come from :func:`htaf.engine.evaluate` (with ``experiment``'s batch and loss hooks, default the
    engine's) under ``config`` (``task``; ``amp``). Classification: ``accuracy_step``, ``accuracy_smooth``,
    ``switch_gap = accuracy_smooth - accuracy_step``. Regression: ``mse_step``, ``mse_smooth``,
    ``switch_gap = mse_step - mse_smooth``; both gaps are positive when the switch hurts. The model's
    train/eval state is restored.
    """
    device = torch.device(device)
    classification = config["task"] == "classification"
    key, name = ("test_accuracy", "accuracy") if classification else ("test_loss", "mse")
    was_training = model.training
    try:
        with use_mode(model, "step"):
            step = evaluate(model, loader, device, config, experiment)[key]
        metrics = {f"{name}_step": step}
        if any(isinstance(m, SWITCHABLE) for m in model.modules()):
            with use_mode(model, "smooth"):
                smooth = evaluate(model, loader, device, config, experiment)[key]
            metrics[f"{name}_smooth"] = smooth
            metrics["switch_gap"] = smooth - step if classification else step - smooth
    finally:
        model.train(was_training)
    return metrics


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Convolutions and linear layers named ``conv1, conv2, ...`` and ``fc1, fc2, ...`` in ``modules()`` order."""
    names: dict[str, nn.Module] = {}
    counts = {"conv": 0, "fc": 0}
    for module in model.modules():
        kind = ("conv" if isinstance(module, nn.modules.conv._ConvNd)
                else "fc" if isinstance(module, nn.Linear) else None)
        if kind:
            counts[kind] += 1
            names[f"{kind}{counts[kind]}"] = module
    return names


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """``grad_norm_<layer>``: L2 norm of each weight layer's weight gradient (one host sync for all layers).

    A layer without a gradient (frozen, or unused in this step) reports 0.
    """
    layers = weight_layers(model)
    if not layers:
        return {}
    norms = torch.stack([m.weight.grad.detach().float().norm() if m.weight.grad is not None
                         else torch.zeros((), device=m.weight.device) for m in layers.values()])
    return {f"grad_norm_{name}": value for name, value in zip(layers, norms.tolist())}


@torch.no_grad()
def surrogate_gradient_statistics(
    model: nn.Module,
    batches: Iterable,
    device: torch.device | str = "cpu",
    units: dict[str, nn.Module] | None = None,
    kappa: float = 1e-3,
    limit: int | None = None,
) -> dict[str, dict[str, float]]:
    r"""How much surrogate gradient the pre-activations of each binary unit let through, measured on data.

    For every unit module of :class:`~htaf.nn.HTAF`, :class:`~htaf.nn.Spike` or :class:`~htaf.nn.Smooth` (their
    input is the pre-activation :math:`x`, their ``surrogate`` gives the derivative :math:`F'` used backward),
    over every element of the unit's input on the first ``limit`` samples of ``batches``:

    * ``preact_rms``: :math:`\sqrt{E x^2}`, the pre-activation scale :math:`\varsigma` of the theory's
      Gaussian model (:func:`htaf.theory.dead_fraction` takes :math:`X \sim \mathcal N(0, \varsigma^2)`);
    * ``preact_mean``: :math:`E x` (the Gaussian model assumes 0);
    * ``grad_dead``: :math:`P(|F'(x)| < \kappa F'(0))`, the share of pre-activations whose gradient is
      unusable: the measured counterpart of :func:`htaf.theory.dead_fraction` (a forward-dead unit, one that
      never fires, is a different quantity: :func:`firing_summary`);
    * ``grad_sq``: :math:`E[(cF'(x))^2]` with :math:`c = 2` for ``signed`` units (the backward of a sign is
      twice the step's), 1 otherwise: the unit's factor in the mean-field gain :func:`htaf.theory.gain`.

    A unit whose input is not where its surrogate is evaluated provides ``surrogate_input(input)``, the tensor that is
    (the LIF layer of :mod:`htaf.models.snn`: membrane potential minus threshold at every time step), and is measured
    there. ``units`` (name -> module) defaults to every such unit of ``model`` by qualified name. The model runs in eval mode
    (BatchNorm with its running statistics instead of the batch's, dropout off) but every switchable unit runs its
    training ``mode`` (no exact step at inference), so the pre-activations are, up to BatchNorm's statistics, those the
    surrogate gradient sees in training; both are restored afterwards. No gradient is computed. Returns
    ``{name: {"preact_rms": ..., ...}}``; a unit the forward pass never reaches raises ``ValueError``.

    >>> from torch import nn
    >>> from htaf.nn import Spike
    >>> model = nn.Sequential(nn.Linear(4, 8), Spike("rectangle"))
    >>> stats = surrogate_gradient_statistics(model, [torch.randn(64, 4)])
    >>> sorted(stats["1"])
    ['grad_dead', 'grad_sq', 'preact_mean', 'preact_rms']
    """
    if not 0 < kappa < 1:
        raise ValueError(f"kappa must lie in (0, 1) (a share of the peak slope, e.g. 1e-3), got {kappa!r}")
    units = _surrogate_units(model, units)
    sums: dict[str, torch.Tensor] = {}  # per unit: count, sum x, sum x^2, dead count, sum (c F')^2

    def record(name: str, module: nn.Module):
        surrogate, c2 = module.surrogate, 4.0 if getattr(module, "signed", False) else 1.0
        level = kappa * float(surrogate.peak_slope)

        def hook(_module, inputs, _out):
            x = inputs[0].detach()
            x = (module.surrogate_input(x) if hasattr(module, "surrogate_input") else x).to(torch.float64)
            d = surrogate.derivative(x).abs()
            row = torch.stack([torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device), x.sum(),
                               x.square().sum(), (d < level).sum().to(torch.float64), c2 * d.square().sum()]).cpu()
            sums[name] = sums[name] + row if name in sums else row
        return hook

    hooks = [module.register_forward_hook(record(name, module)) for name, module in units.items()]
    try:
        with _training_forward(model):
            for inputs in first_inputs(batches, limit):
                model(inputs.to(device))
    finally:
        for hook in hooks:
            hook.remove()
    if units and not sums:
        raise ValueError("surrogate_gradient_statistics got no inputs")
    _check_reached(units, sums)
    out = {}
    for name in units:
        n, sx, sxx, dead, sg = sums[name].tolist()
        out[name] = {"preact_rms": (sxx / n) ** 0.5, "preact_mean": sx / n, "grad_dead": dead / n, "grad_sq": sg / n}
    return out


def _surrogate_units(model: nn.Module, units: dict[str, nn.Module] | None) -> dict[str, nn.Module]:
    """``units`` checked (each has a surrogate), or every HTAF / Spike / Smooth unit of ``model`` by name."""
    if units is None:
        return {name: m for name, m in binary_units(model).items()
                if isinstance(m, (HTAF, Spike, Smooth)) or hasattr(m, "surrogate_input")}
    for name, module in units.items():
        if not hasattr(getattr(module, "surrogate", None), "derivative"):
            raise TypeError(f"unit {name!r} ({type(module).__name__}) has no surrogate; pass HTAF, Spike, Smooth or "
                            "LIF units")
    return units


def _check_reached(units: dict[str, nn.Module], seen: dict[str, Any]) -> None:
    missing = [name for name in units if name not in seen]
    if missing:
        raise ValueError(f"the forward pass never reached unit(s) {', '.join(missing)}: pass units of this model")


@contextmanager
def _training_forward(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm's running statistics, no dropout) with every switchable unit in its training mode; every
    module's own train/eval flag and every unit's ``step_at_eval`` are restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    switchable = [m for m in model.modules() if isinstance(m, SWITCHABLE)]
    flags = [m.step_at_eval for m in switchable]
    try:
        model.eval()
        for m in switchable:
            m.step_at_eval = False
        yield model
    finally:
        for m, flag in zip(switchable, flags):
            m.step_at_eval = flag
        for m, training in modes:
            m.training = training


def unit_input_gradients(
    model: nn.Module,
    batches: Iterable,
    loss: Callable[[Any], torch.Tensor],
    units: dict[str, nn.Module] | None = None,
) -> dict[str, float]:
    r"""The backward signal at every unit: :math:`\sqrt{E_b \lVert \partial L/\partial x_b \rVert^2}`, the root mean
    square over samples :math:`b` of the gradient of ``loss`` with respect to the unit's input :math:`x_b` (the
    pre-activation of an HTAF, Spike or Smooth unit; a LIF layer's input current, all time steps of a sample
    together). Between layers of pre-activation units, the ratio of two values is what the mean-field gain
    :func:`htaf.theory.gain` predicts.

    ``loss(batch)`` runs the model on one item of ``batches`` and returns a scalar (for example the mean cross
    entropy; ratios between units do not depend on the loss's scale). The forward runs as in
    :func:`surrogate_gradient_statistics` (eval mode, units in their training mode); gradients are taken with
    :func:`torch.autograd.grad`, so no parameter's ``.grad`` is touched. A unit called several times in one forward
    contributes every call. ``units`` defaults to every HTAF, Spike, Smooth and LIF unit. Returns ``{name: value}``.

    >>> from torch import nn
    >>> from htaf.nn import Spike
    >>> model = nn.Sequential(nn.Linear(4, 8), Spike("sigmoid"), nn.Linear(8, 1))
    >>> norms = unit_input_gradients(model, [torch.randn(16, 4)], lambda x: model(x).sum())
    >>> list(norms), norms["1"] > 0
    (['1'], True)
    """
    units = _surrogate_units(model, units)
    sums = {name: 0.0 for name in units}
    counts = {name: 0 for name in units}
    captured: list[tuple[str, bool, torch.Tensor]] = []

    def record(name: str, module: nn.Module):
        def hook(_module, inputs, _out):
            captured.append((name, bool(getattr(module, "time_major", False)), inputs[0]))
        return hook

    hooks = [module.register_forward_hook(record(name, module)) for name, module in units.items()]
    try:
        with _training_forward(model), torch.enable_grad():
            for batch in batches:
                captured.clear()
                value = loss(batch)
                _check_reached(units, {name: None for name, _, _ in captured})
                frozen = sorted({name for name, _, x in captured if not x.requires_grad})
                if frozen:
                    raise ValueError(f"the input of unit(s) {', '.join(frozen)} needs no gradient (it comes straight "
                                     "from the data or from frozen layers): no backward signal reaches it")
                grads = torch.autograd.grad(value, [x for _, _, x in captured])
                for (name, time_major, _), grad in zip(captured, grads):
                    per_sample = (grad.transpose(0, 1) if time_major else grad).flatten(1)
                    sums[name] += float(per_sample.square().sum())
                    counts[name] += per_sample.shape[0]
    finally:
        for hook in hooks:
            hook.remove()
    if not any(counts.values()):
        raise ValueError("unit_input_gradients got no batches")
    return {name: (sums[name] / counts[name]) ** 0.5 for name in units}


# --------------------------------------------------------------------------------------------
# Sign flips of binary weights
# --------------------------------------------------------------------------------------------


def _signs(tensors: torch.Tensor | Iterable[torch.Tensor]) -> torch.Tensor:
    """Signs as booleans (True for >= 0, the convention of :func:`htaf.functional.sign`), flattened."""
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    return torch.cat([t.detach().flatten() >= 0 for t in tensors])


def flip_ratio(before: torch.Tensor | Iterable[torch.Tensor], after: torch.Tensor | Iterable[torch.Tensor]) -> float:
    """Share of weights whose sign (``+1`` at ``>= 0``, else ``-1``) differs between ``before`` and ``after``.

    Both are tensors, or matching sequences of tensors (e.g. every binary layer's latent weights).
    """
    old, new = _signs(before), _signs(after)
    if old.shape != new.shape:
        raise ValueError(f"flip_ratio needs weights of the same size, got {old.numel()} and {new.numel()}")
    if old.numel() == 0:
        raise ValueError("flip_ratio got no weights")
    return float((old != new).double().mean())


class FlipCounter:
    """Share of binary weights that change sign per update, for an ``after_step`` hook.

    >>> w = torch.tensor([1.0, -1.0, 2.0, -2.0])
    >>> counter = FlipCounter([w])
    >>> w.mul_(torch.tensor([-1.0, 1.0, 1.0, 1.0])) is w
    True
    >>> counter.update()
    0.25
    >>> counter.update()  # no change since the last update
    0.0
    """

    def __init__(self, weights: Iterable[torch.Tensor]):
        self.weights = list(weights)
        self.signs = _signs(self.weights)

    def update(self) -> float:
        """Flip ratio since the previous call (or construction); then remember the current signs."""
        signs = _signs(self.weights)
        ratio = float((signs != self.signs).double().mean()) if signs.numel() else 0.0
        self.signs = signs
        return ratio
