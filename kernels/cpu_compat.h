// CPU compatibility header: lets g++ compile mlpx's CUDA kernels (kernels/*.cu) unchanged, so CI runs the very same
// source on the CPU. A launch becomes a loop that runs every thread of every block, one after another (see
// mlpx/backend/emulated.py). That is exact for kernels whose threads are independent: grid-stride elementwise,
// one thread per row or per column, results combined only through atomicAdd. Kernels with shared memory or
// __syncthreads could not be emulated this way, and mlpx has none.
#pragma once
#include <math.h>

#define __global__
#define __device__
#define __forceinline__ inline

struct mx_dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
static mx_dim3 threadIdx, blockIdx, blockDim, gridDim;

// Threads run one at a time, so a plain read-modify-write is atomic.
static inline double atomicAdd(double* address, double value) {
    double old = *address;
    *address = old + value;
    return old;
}
