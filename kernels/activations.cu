// Dense-layer kernels: bias + activation forward, activation backward (from the saved output y, as the NumPy
// reference in mlpx/activations.py does, with the same formulas), fused with the bias gradient.
// Arguments carry their shape in their names: _bo is (batch, out), _o is (out,).

// Activation codes: the positions in mlpx.activations.ACTIVATIONS (checked by a test).
#define MX_SIGMOID 0
#define MX_TANH 1
#define MX_RELU 2
#define MX_LEAKY_RELU 3
#define MX_IDENTITY 4

// sigmoid: y = (1 + tanh(z / 2)) / 2, which cannot overflow for large |z|
template <typename T> __device__ __forceinline__ T sigmoid_forward(T z) {
    return (T(1) + mx_tanh(z * T(0.5))) * T(0.5);
}
// sigmoid': y (1 - y)
template <typename T> __device__ __forceinline__ T sigmoid_grad(T y) { return (T(1) - y) * y; }

// tanh: y = tanh(z)
template <typename T> __device__ __forceinline__ T tanh_forward(T z) { return mx_tanh(z); }
// tanh': 1 - y^2
template <typename T> __device__ __forceinline__ T tanh_grad(T y) { return T(1) - y * y; }

// relu: y = max(z, 0)
template <typename T> __device__ __forceinline__ T relu_forward(T z) { return z < T(0) ? T(0) : z; }  // NaN stays NaN
// relu': 1 where y > 0, else 0 (0 at z = 0, as PyTorch)
template <typename T> __device__ __forceinline__ T relu_grad(T y) { return y > T(0) ? T(1) : T(0); }

// leaky relu: y = max(z, slope z) for 0 <= slope < 1
template <typename T> __device__ __forceinline__ T leaky_relu_forward(T z, T slope) {
    T scaled = z * slope;
    return z >= scaled ? z : scaled;
}
// leaky relu': 1 where y > 0, else slope
template <typename T> __device__ __forceinline__ T leaky_relu_grad(T y, T slope) { return y > T(0) ? T(1) : slope; }

// identity: y = z, derivative 1

template <typename T> __device__ __forceinline__ T act_forward(int act, T z, T slope) {
    switch (act) {
        case MX_SIGMOID: return sigmoid_forward(z);
        case MX_TANH: return tanh_forward(z);
        case MX_RELU: return relu_forward(z);
        case MX_LEAKY_RELU: return leaky_relu_forward(z, slope);
        default: return z;
    }
}

template <typename T> __device__ __forceinline__ T act_grad(int act, T y, T slope) {
    switch (act) {
        case MX_SIGMOID: return sigmoid_grad(y);
        case MX_TANH: return tanh_grad(y);
        case MX_RELU: return relu_grad(y);
        case MX_LEAKY_RELU: return leaky_relu_grad(y, slope);
        default: return T(1);
    }
}

// out_bo = act(z_bo + bias_o), elementwise (out_bo may be z_bo).
template <typename T>
__global__ void bias_act_forward(const T* z_bo, const T* bias_o, T* out_bo, long long rows, long long cols, int act,
                                 T slope) {
    MX_GRID_STRIDE(i, rows * cols) out_bo[i] = act_forward(act, z_bo[i] + bias_o[i % cols], slope);
}

// out_bo = dy_bo * act'(y_bo), elementwise over n entries (out_bo may be dy_bo).
template <typename T>
__global__ void act_backward(const T* dy_bo, const T* y_bo, T* out_bo, long long n, int act, T slope) {
    MX_GRID_STRIDE(i, n) out_bo[i] = dy_bo[i] * act_grad(act, y_bo[i], slope);
}

// dz_bo = dy_bo * act'(y_bo) and db_o = column sums of dz_bo in one pass (dz_bo may be dy_bo).
// One thread per column walks down the rows: neighbouring threads read neighbouring addresses (coalesced), and
// the sum needs no shared memory. Rows are added in order, as numpy.sum(axis=0) does.
template <typename T>
__global__ void act_backward_bias_grad(const T* dy_bo, const T* y_bo, T* dz_bo, T* db_o, long long rows,
                                       long long cols, int act, T slope) {
    long long col = mx_thread_index();
    if (col >= cols) return;
    T sum = T(0);
    for (long long r = 0; r < rows; ++r) {
        long long i = r * cols + col;
        T dz = dy_bo[i] * act_grad(act, y_bo[i], slope);
        dz_bo[i] = dz;
        sum += dz;
    }
    db_o[col] = sum;
}

// db_o = column sums of dz_bo (the bias gradient), one thread per column.
template <typename T>
__global__ void bias_grad(const T* dz_bo, T* db_o, long long rows, long long cols) {
    long long col = mx_thread_index();
    if (col >= cols) return;
    T sum = T(0);
    for (long long r = 0; r < rows; ++r) sum += dz_bo[r * cols + col];
    db_o[col] = sum;
}
