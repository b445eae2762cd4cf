"""What every benchmark shares: the reference network, the data, thread pinning and the machine description.

All systems train exactly this: 784-500-250-100-10, relu hidden layers, softmax + cross-entropy, float32 (the course
implementation excepted: float64 is part of what it represents), batch 64, plain SGD with lr 0.01, on MNIST.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

import numpy as np

LAYERS = (784, 500, 250, 100, 10)
BATCH = 64
LR = 0.01
# Issue 2's targets: epoch time over BLAS-floor time. bench/test_epoch.py fills EPOCH_MEDIANS (median seconds per
# epoch, keyed "floor", "numpy/sgd", "numpy/adam", ...) for the summary bench/conftest.py prints.
FLOOR_TARGETS = {"sgd": 1.3, "adam": 1.6}
EPOCH_MEDIANS: dict[str, float] = {}
# The speed environment variables some machines set; benchmarks are run with both unset (see docs/benchmarks).
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "XLA_FLAGS")


def scaled_layers(width: float, layers=LAYERS) -> tuple[int, ...]:
    """The reference network with every hidden size multiplied by ``width`` (inputs and classes unchanged)."""
    if width <= 0:
        raise ValueError(f"width: expected a positive multiplier, got {width!r}")
    hidden = [max(1, int(round(n * width))) for n in layers[1:-1]]
    return (layers[0], *hidden, layers[-1])


def n_parameters(layers) -> int:
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))


@dataclass
class Data:
    """Training and test arrays (float32 in [0, 1], int64 labels) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_data(samples: int | None = None, synthetic: bool = False, dataset: str = "mnist") -> Data:
    """MNIST from MLPX_DATA_DIR (never downloads), or random data of the same shapes when ``synthetic``.

    ``samples`` keeps only the first ``samples`` training images (smoke tests). ``dataset`` ("mnist" or
    "fashion-mnist"; ``bench.compare --dataset``) picks the data set. Speed depends on the
    pixel values through their zeros (mlpx's sparse first layer, ``input_sparsity="auto"``): the synthetic data
    (uniform, no zeros) is the dense case, not MNIST's.
    """
    if synthetic:
        rng = np.random.default_rng(0)
        n = samples or 60000
        return Data(rng.random((n, LAYERS[0]), dtype=np.float32), rng.integers(0, 10, n),
                    rng.random((min(n, 10000), LAYERS[0]), dtype=np.float32), rng.integers(0, 10, min(n, 10000)),
                    "synthetic uniform [0, 1)")
    import mlpx

    if not os.environ.get("MLPX_DATA_DIR"):
        raise SystemExit("benchmarks need MNIST: export MLPX_DATA_DIR=/path/to/folder/with/the/IDX/files "
                         "(or pass --synthetic for timing-only runs)")
    data = mlpx.datasets.load(dataset, download=False)
    x, y = data.x_train, data.y_train
    if samples:
        x, y = x[:samples], y[:samples]
    return Data(np.ascontiguousarray(x), y, data.x_test, data.y_test, f"{data.name} from {data.source}")


def pin_threads(n: int):
    """Limit every BLAS/OpenMP pool in this process, and Numba's parallel kernels once Numba is loaded (mlpx's
    CPU backend uses them), to ``n`` threads; returns the threadpoolctl limiter (keep it alive)."""
    from threadpoolctl import threadpool_limits

    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return threadpool_limits(limits=n)


def numba_threads() -> int | None:
    """Threads Numba's parallel kernels use in this process, or None when Numba is not loaded."""
    if "numba" not in sys.modules:
        return None
    import numba

    return numba.get_num_threads()


def blas_description() -> list[dict]:
    """Loaded BLAS libraries: library, version, kernel (architecture), threading layer, threads."""
    from mlpx.threads import blas_info

    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads", "filepath")
    return [{k: info.get(k) for k in keep} for info in blas_info()]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_description() -> dict:
    """What the reader needs to interpret the numbers: CPU, cores, OS, Python, NumPy and its BLAS, environment."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f" {f}" in flags]
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "simd": simd, "memory_gib": round(mem_kb / 2**20, 1),
        "os": platform.platform(), "python": sys.version.split()[0], "numpy": np.__version__,
        "blas": blas_description(), "numba_threads": numba_threads(),
        "env": {k: os.environ.get(k) for k in BLAS_ENV_VARS if k in os.environ},
    }
