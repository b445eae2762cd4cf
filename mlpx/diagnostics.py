"""Per-layer training diagnostics: what happens inside the network at each ``log_every`` point of ``fit``.

For each layer l (``W[l]``, shaped fan_in x fan_out, and ``b[l]``), from the optimizer step that ends at the log
point, :class:`LayerDiagnostics` records one dict (``History.layer_stats[i][l]``, for ``History.iterations[i]``):

- ``grad_norm``, ``bias_grad_norm``: ||dW_l||, ||db_l|| (Frobenius / Euclidean) of the loss gradient of that step's
  batch, before weight decay, momentum or any optimizer scaling;
- ``weight_norm``: ||W_l|| before the step (the weights that gradient was taken at);
- ``update_ratio``: ||W_l after - W_l before|| / ||W_l before||, the update the optimizer really made (momentum,
  Adam's scaling and weight decay included); None when ||W_l|| is 0 (e.g. ``init="zeros"``);
- hidden layers only (not the output layer, whose activation is the head): ``activation_mean``, the mean of the
  layer's outputs over the batch and units, and
  ``saturated_fraction`` (sigmoid, tanh): the fraction of the batch's (sample, unit) outputs that sit where the
  derivative is about 0.01 or less: sigmoid output < 0.01 or > 0.99, |tanh| > 0.99; or
  ``inactive_fraction`` (relu, leaky_relu): the fraction of units whose output is <= 0 on every sample of the batch
  (dead for that batch: relu passes no gradient there, leaky relu only ``leaky_slope`` of it).

How it is measured, and what it costs. Nothing changes in the training step, for any optimizer:

- before the logged step, one device copy of the flat parameter buffer (``W before``);
- after it, from the step's own buffers, which still hold its batch, activations and deltas: ||W before||, the update
  ``W before - W after`` (measured directly, whatever the optimizer did), the gradients recomputed as
  ``a_in^T delta`` and the column sums of delta (one product per layer, the same product the backward pass makes),
  and the activation statistics: all reductions through backend ops that leave their float64 results in a small
  device vector;
- that vector shares its device buffer with the loop's [loss sum, correct] accumulator, so the log point's one
  read-back brings it to the host in the same transfer: no extra host synchronization (counted on the emulated
  GPU backend's counters, tests/test_diagnostics.py).

Plain SGD without momentum folds its weight update into the weight-gradient product on the CPU
(``Optimizer.folded_weight_update``): no gradient buffer is written. The logged step keeps that folded path; the
update is measured directly (W after minus the copy before) and the gradient recomputed from the step's saved
activations and deltas, so the numbers are those of that step and the trained weights are bitwise the same with
diagnostics on or off (tested on the NumPy, Numba and emulated backends).

Cost per log point: two passes over the parameters (copy, difference), one extra weight-gradient product per layer
(about a third of a step) and float64 reductions over the weights: a few milliseconds on the reference network,
against the ~200 steps between log points (bench/diagnostics_cost.py measures it).
"""
from __future__ import annotations

import math

import numpy as np

SATURATING = ("sigmoid", "tanh")
RECTIFIED = ("relu", "leaky_relu")
# Device slots per layer: squared norms of W before, of the update, of dW and db; then ops.activation_stats' three
_WEIGHT, _UPDATE, _GRAD, _BIAS_GRAD, _ACTIVATIONS = 0, 1, 2, 3, 4
_SLOTS = 7
READBACK_HEAD = 2  # the loop's [loss sum, correct] accumulator comes first in the shared device vector


class LayerDiagnostics:
    """The per-layer statistics of one training run (``fit(..., diagnostics=True)``); see the module docstring.

    ``readback`` is the device vector the loop reads back at a log point; its first two entries are the loop's
    loss accumulator (``pending``), the rest are this object's values. Per log point: :meth:`before_step` just
    before the logged step, :meth:`measure` after it (device work only), then the loop's read-back and
    :meth:`finish` on the host values.
    """

    def __init__(self, model):
        ops = self.ops = model.ops
        self.model = model
        self.n_layers = model.n_layers
        self.readback = ops.zeros(READBACK_HEAD + _SLOTS * self.n_layers, np.float64)
        self.pending = self.readback[:READBACK_HEAD]
        self.before = ops.empty(model.params.shape, model.dtype)
        self.before_W, self.before_b = [], []
        offset = 0
        for shape in model.parameter_shapes():
            size = int(np.prod(shape))
            (self.before_W if len(shape) == 2 else self.before_b).append(
                self.before[offset:offset + size].reshape(shape))
            offset += size
        self._bufs = None
        self._step = None

    def _slot(self, layer: int, slot: int, width: int = 1):
        start = READBACK_HEAD + _SLOTS * layer + slot
        return self.readback[start:start + width]

    def before_step(self, bufs) -> None:
        """Keep W before the logged step (one device copy) and the batch buffers that step will fill."""
        self.before[...] = self.model.params
        self._bufs = bufs
        self._step = self.model.optimizer.step_count + 1

    def measure(self) -> bool:
        """After the logged step: every statistic into the device read-back vector, nothing read to the host.
        False (and nothing measured) when :meth:`before_step` did not precede this step."""
        model, ops, bufs = self.model, self.ops, self._bufs
        if bufs is None or self._step != model.optimizer.step_count:
            return False
        for layer in range(self.n_layers):
            ops.sum_squares(self.before_W[layer], self._slot(layer, _WEIGHT))
        self.before -= model.params                                  # W before - W after: the update (negated)
        for layer in range(self.n_layers):
            ops.sum_squares(self.before_W[layer], self._slot(layer, _UPDATE))
            a_in = bufs["x"] if layer == 0 else bufs["a"][layer - 1]
            delta = bufs["delta"][layer]
            ops.gemm(a_in, delta, out=self.before_W[layer], trans_a=True)   # dW = a_in^T delta, as in backward
            ops.sum_squares(self.before_W[layer], self._slot(layer, _GRAD))
            ops.bias_grad(delta, self.before_b[layer])
            ops.sum_squares(self.before_b[layer], self._slot(layer, _BIAS_GRAD))
            if layer < self.n_layers - 1:
                ops.activation_stats(bufs["a"][layer], model.activation, self._slot(layer, _ACTIVATIONS, 3))
        self._bufs = None
        return True

    def finish(self, values) -> list[dict]:
        """The per-layer dicts from the host copy of the read-back vector (without its two loss entries)."""
        return layer_dicts(values, self.n_layers, self.model.activation)


def layer_dicts(values, n_layers: int, activation: str) -> list[dict]:
    """Turn the read-back values (7 per layer: squared norms of W, update, dW, db; mean, saturated, inactive)
    into ``History.layer_stats`` entries: plain floats, JSON-exact."""
    values = np.asarray(values, dtype=np.float64)
    stats = []
    for layer in range(n_layers):
        w2, u2, g2, gb2, mean, saturated, inactive = (float(v) for v in values[_SLOTS * layer:_SLOTS * (layer + 1)])
        weight = math.sqrt(w2)
        entry = {"grad_norm": math.sqrt(g2), "bias_grad_norm": math.sqrt(gb2), "weight_norm": weight,
                 "update_ratio": math.sqrt(u2) / weight if weight > 0 else None}
        if layer < n_layers - 1:
            entry["activation_mean"] = mean
            key = fraction_key(activation)
            if key is not None:
                entry[key] = saturated if key == "saturated_fraction" else inactive
        stats.append(entry)
    return stats


# ---- reading recorded histories (History objects or history.json dicts) ---------------------------------------
def _get(history, key: str) -> list:
    values = history.get(key) if isinstance(history, dict) else getattr(history, key, None)
    return list(values or [])


def recorded_points(history) -> list:
    """The log points that recorded per-layer statistics (each a list of one dict per layer), in order; points
    without diagnostics (None) are left out."""
    return [point for point in _get(history, "layer_stats") if point]


def has_layer_stats(history) -> bool:
    """Whether any log point of ``history`` recorded per-layer statistics."""
    return bool(recorded_points(history))


def series(history, layer: int, key: str = "grad_norm") -> tuple[list, list]:
    """(iterations, values) of one statistic of one layer (0-based weight layer, negative from the end) over the
    log points that recorded it; points without diagnostics or without the key are left out."""
    steps, stats = _get(history, "iterations"), _get(history, "layer_stats")
    xs, ys = [], []
    for step, point in zip(steps, stats):
        if not point or not -len(point) <= layer < len(point):
            continue
        value = point[layer].get(key)
        if value is not None:
            xs.append(step)
            ys.append(value)
    return xs, ys


def fraction_key(activation: str) -> str | None:
    """Which fraction the hidden layers of ``activation`` record: 'saturated_fraction', 'inactive_fraction' or
    None (identity)."""
    return ("saturated_fraction" if activation in SATURATING else
            "inactive_fraction" if activation in RECTIFIED else None)


def layer_label(layer: int, layer_sizes) -> str:
    """'layer 1 (784-500)': the 1-based layer number and its fan-in and fan-out."""
    if layer_sizes:
        return f"layer {layer + 1} ({layer_sizes[layer]}-{layer_sizes[layer + 1]})"
    return f"layer {layer + 1}"


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def markdown_table(history, layer_sizes=None) -> str:
    """The last log point's statistics per layer as a Markdown table ('' when nothing was recorded)."""
    stats, steps = _get(history, "layer_stats"), _get(history, "iterations")
    index = max((i for i, p in enumerate(stats) if p), default=None)
    if index is None:
        return ""
    last = stats[index]
    header = ["layer", "gradient norm", "bias gradient norm", "weight norm", "update / weight", "mean activation",
              "saturated fraction", "inactive fraction"]
    has = {key: any(key in entry for entry in last) for key in ("saturated_fraction", "inactive_fraction")}
    header = [h for h in header if not (h == "saturated fraction" and not has["saturated_fraction"]
                                        or h == "inactive fraction" and not has["inactive_fraction"])]
    rows = []
    for layer, entry in enumerate(last):
        row = [layer_label(layer, layer_sizes) + (" (output)" if layer == len(last) - 1 else ""),
               _number(entry["grad_norm"]), _number(entry["bias_grad_norm"]), _number(entry["weight_norm"]),
               _number(entry["update_ratio"]), _number(entry.get("activation_mean"))]
        for key in ("saturated_fraction", "inactive_fraction"):
            if has[key]:
                row.append(_number(entry.get(key)))
        rows.append(row)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    step = steps[index] if index < len(steps) else "?"
    return (f"At step {step} (the last log point), from that step's batch: gradient norms of the loss, weight "
            f"norm before the step, update / weight = ||W after - W before|| / ||W before||; mean activation and "
            f"the fractions over the hidden layers' outputs (saturated: sigmoid < 0.01 or > 0.99, |tanh| > 0.99, "
            f"of all outputs; inactive: units <= 0 on every sample).\n\n" + "\n".join(lines))
