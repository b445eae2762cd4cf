"""Shape checks at the fused kernels' Python entry points (NumbaOps, CupyOps).

The kernels take their loop bounds from one array and index the others with them, without bounds checks: a shorter
buffer (say, an optimizer state read from a damaged file) would be read and written past its end, corrupting memory
instead of failing. These checks compare shapes only, O(1) per call, never the elements.
"""
from __future__ import annotations


def check_shapes(op: str, expected: tuple, **arrays) -> None:
    """Each array must have shape ``expected``; the error names the op, the argument and both shapes."""
    for name, array in arrays.items():
        if tuple(array.shape) != expected:
            raise ValueError(f"{op}: {name} expected shape {expected}, got {tuple(array.shape)}")


def check_flat(op: str, params, **buffers) -> None:
    """Optimizer buffers must match the flat parameter buffer in shape and dtype (the kernels run over
    ``params.size`` elements of each)."""
    for name, buffer in buffers.items():
        if buffer.shape != params.shape or buffer.dtype != params.dtype:
            raise ValueError(f"{op}: {name} expected the parameters' shape {tuple(params.shape)} and dtype "
                             f"{params.dtype}, got {tuple(buffer.shape)} {buffer.dtype}")


def check_loss(op: str, z_bk, bias_k, targets, grad_out_bk, stats) -> None:
    """The loss kernels run over z's rows and columns and index every other argument with them: targets are one
    label per row, or (``identity_mse``) one row of targets per row; stats is [loss sum, correct]."""
    rows, classes = z_bk.shape
    check_shapes(op, (classes,), bias_k=bias_k)
    check_shapes(op, (rows, classes), grad_out_bk=grad_out_bk)
    check_shapes(op, (rows, classes) if op == "identity_mse" else (rows,), targets=targets)
    check_shapes(op, (2,), stats=stats)
