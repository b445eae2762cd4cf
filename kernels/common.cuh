// Helpers shared by mlpx's kernels. The same text is compiled three ways: by NVRTC through CuPy (the GPU backend),
// by nvcc (the build test: sm_80 and sm_90, no spills) and by g++ with cpu_compat.h (the CPU emulation in CI).
// So: no #include, no shared memory, no __syncthreads, no warp intrinsics; only grid-stride elementwise loops and
// one-thread-per-row or one-thread-per-column kernels, whose threads never read what another thread writes.

// Math by precision: the float overloads call the single-precision functions explicitly.
__device__ __forceinline__ float mx_exp(float x) { return expf(x); }
__device__ __forceinline__ double mx_exp(double x) { return exp(x); }
__device__ __forceinline__ float mx_log(float x) { return logf(x); }
__device__ __forceinline__ double mx_log(double x) { return log(x); }
__device__ __forceinline__ float mx_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double mx_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float mx_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double mx_sqrt(double x) { return sqrt(x); }

// Index of this thread in the whole grid (one-thread-per-row and one-thread-per-column kernels).
__device__ __forceinline__ long long mx_thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

// Grid-stride loop over [0, n): thread t handles t, t + (all threads), ...; correct for any grid size.
#define MX_GRID_STRIDE(i, n) \
    for (long long i = mx_thread_index(); i < (n); i += (long long)blockDim.x * gridDim.x)
