// Output heads and losses, one thread per row (for a 10-class softmax that is also the fast layout).
// Each kernel adds the output bias to z in place (z_bk keeps z + bias, as the NumPy reference leaves it), writes the
// gradient of the *mean* loss w.r.t. z into grad_bk, and adds [sum of per-row losses, correct predictions] into the
// 2-element float64 accumulator `stats` with atomicAdd: it stays on the device, no host synchronization per step.
// _bk is (batch, classes), _k is (classes,), _b is (batch,).

// Over one row: z[k] += bias_k[k] (kept in z), out[k] = exp(z[k] - max z); returns the sum of out (the softmax
// denominator) and sets *best to the index of the first maximum (numpy.argmax picks the first too).
template <typename T>
__device__ __forceinline__ T bias_softmax_numerators(T* z, const T* bias_k, T* out, long long classes,
                                                     long long* best) {
    long long arg = 0;
    for (long long k = 0; k < classes; ++k) {
        z[k] += bias_k[k];
        if (z[k] > z[arg]) arg = k;
    }
    T sum = T(0);
    for (long long k = 0; k < classes; ++k) {
        T e = mx_exp(z[k] - z[arg]);
        out[k] = e;
        sum += e;
    }
    *best = arg;
    return sum;
}

// Labels are checked on the host before they reach the device; one out of [0, classes) still never reads out of
// bounds: it adds a huge loss (1e30) and no -1 to the gradient, so the run visibly breaks.
__device__ __forceinline__ bool mx_label_ok(int label, long long classes) { return label >= 0 && label < classes; }

// Softmax + cross-entropy: loss_b = logsumexp(z_b) - z_b[label_b]; grad_bk = (p - onehot) * inv_batch.
template <typename T>
__global__ void softmax_xent(T* z_bk, const T* bias_k, const int* labels_b, T* grad_bk, double* stats, long long rows,
                             long long classes, T inv_batch) {
    long long row = mx_thread_index();
    if (row >= rows) return;
    T* z = z_bk + row * classes;
    T* grad = grad_bk + row * classes;
    long long best;
    T sum = bias_softmax_numerators(z, bias_k, grad, classes, &best);
    int label = labels_b[row];
    bool ok = mx_label_ok(label, classes);
    for (long long k = 0; k < classes; ++k) {
        T p = grad[k] / sum;
        if (k == label) p -= T(1);
        grad[k] = p * inv_batch;
    }
    double loss = ok ? (double)(mx_log(sum) + z[best] - z[label]) : 1e30;
    atomicAdd(stats, loss);
    if (best == label) atomicAdd(stats + 1, 1.0);
}

// MSE on the softmax probabilities against one-hot labels: loss_b = sum_k (p_k - t_k)^2. With g = 2 (p - t) / B,
// the softmax Jacobian gives dz_k = p_k (g_k - sum_j g_j p_j). two_over_batch = 2 / B.
template <typename T>
__global__ void softmax_mse(T* z_bk, const T* bias_k, const int* labels_b, T* grad_bk, double* stats, long long rows,
                            long long classes, T two_over_batch) {
    long long row = mx_thread_index();
    if (row >= rows) return;
    long long best;
    T* grad = grad_bk + row * classes;
    T sum = bias_softmax_numerators(z_bk + row * classes, bias_k, grad, classes, &best);
    int label = labels_b[row];
    double loss = mx_label_ok(label, classes) ? 0.0 : 1e30;
    T inner = T(0);
    for (long long k = 0; k < classes; ++k) {
        T p = grad[k] / sum;
        grad[k] = p;
        T diff = k == label ? p - T(1) : p;
        loss += (double)(diff * diff);
        inner += (diff * two_over_batch) * p;
    }
    for (long long k = 0; k < classes; ++k) {
        T p = grad[k];
        T g = (k == label ? p - T(1) : p) * two_over_batch;
        grad[k] = p * (g - inner);
    }
    atomicAdd(stats, loss);
    if (best == label) atomicAdd(stats + 1, 1.0);
}

// Identity head with MSE on real-valued targets: loss = sum (y - t)^2 over the row, grad = (y - t) * 2 / B.
// Elementwise and grid-stride (output widths can be large, e.g. an autoencoder's 784); each thread adds its partial
// sum to stats[0] once.
template <typename T>
__global__ void identity_mse(T* z_bk, const T* bias_k, const T* targets_bk, T* grad_bk, double* stats, long long rows,
                             long long cols, T two_over_batch) {
    double partial = 0.0;
    bool worked = false;
    MX_GRID_STRIDE(i, rows * cols) {
        T y = z_bk[i] + bias_k[i % cols];
        z_bk[i] = y;
        T diff = y - targets_bk[i];
        partial += (double)(diff * diff);
        grad_bk[i] = diff * two_over_batch;
        worked = true;
    }
    if (worked) atomicAdd(stats, partial);
}

// Inference: probs_bk = softmax(z_bk + bias_k), one thread per row.
template <typename T>
__global__ void softmax(T* z_bk, const T* bias_k, T* probs_bk, long long rows, long long classes) {
    long long row = mx_thread_index();
    if (row >= rows) return;
    long long best;
    T* probs = probs_bk + row * classes;
    T sum = bias_softmax_numerators(z_bk + row * classes, bias_k, probs, classes, &best);
    for (long long k = 0; k < classes; ++k) probs[k] = probs[k] / sum;
}
