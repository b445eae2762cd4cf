#!/usr/bin/env bash
# The measurements behind docs/benchmarks/results.md's sparse first-layer section (issue 12) and the diagnostics
# cost (issue 14), one after the other on an otherwise idle machine:
#   MLPX_DATA_DIR=... bash bench/run_issue_benchmarks.sh OUT_DIR
set -euo pipefail
out="${1:?usage: run_issue_benchmarks.sh OUT_DIR}"
mkdir -p "$out"
py() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python "$@"; }
rows=mlpx-numpy,mlpx-numpy-dense,mlpx-numpy-adam,mlpx-numpy-momentum,mlpx-numpy-rmsprop,blas-floor
py -m bench.compare --threads 2 --rounds 9 --systems "$rows" --out "$out/mnist_2threads" 2>&1 | tail -25
py -m bench.compare --threads 1 --rounds 9 --systems "$rows" --out "$out/mnist_1thread" 2>&1 | tail -25
py -m bench.compare --threads 2 --rounds 5 --dataset fashion-mnist --systems mlpx-numpy,mlpx-numpy-dense,blas-floor \
    --out "$out/fashion_2threads" 2>&1 | tail -12
py -m bench.compare --threads 2 --rounds 5 --synthetic --systems mlpx-numpy,mlpx-numpy-dense,blas-floor \
    --out "$out/synthetic_2threads" 2>&1 | tail -12
py -m bench.sparse_epoch --threads 2 --rounds 9 --optimizers sgd,adam,momentum,rmsprop \
    --variants dense,dense-own,sparse,sparse-own 2>&1 | tee "$out/blas_pool_gain.txt" | tail -20
py -m bench.diagnostics_cost --rounds 9 2>&1 | tee "$out/diagnostics_cost.txt" | tail -20
