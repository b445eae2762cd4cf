// Optimizer updates: one launch over the model's one flat parameter buffer (_n: n entries). The formulas follow
// torch.optim and the NumPy reference (mlpx/backend/numpy_ops.py) operation by operation, in the same order, so the
// float results agree to the last bit where the math library is not involved. weight_decay adds
// weight_decay * param to the gradient (PyTorch's convention). Scalars come in the parameters' precision T,
// computed on the host in double and rounded once, as NumPy rounds a Python float against a float32 array.

// SGD with optional (Nesterov) momentum: v = first_step ? g : v momentum + g (1 - dampening).
template <typename T>
__global__ void sgd_update(T* params_n, const T* grads_n, T* velocity_n, long long n, T lr, T momentum,
                           T one_minus_dampening, T weight_decay, int nesterov, int first_step) {
    MX_GRID_STRIDE(i, n) {
        T p = params_n[i];
        T g = grads_n[i];
        if (weight_decay != T(0)) g = g + p * weight_decay;
        if (momentum != T(0)) {
            T v = first_step ? g : velocity_n[i] * momentum + g * one_minus_dampening;
            velocity_n[i] = v;
            g = nesterov ? g + v * momentum : v;
        }
        params_n[i] = p - g * lr;
    }
}

// RMSProp: s = s decay + g^2 (1 - decay); centered: a = a decay + g (1 - decay), denominator sqrt(s - a^2) + eps.
template <typename T>
__global__ void rmsprop_update(T* params_n, const T* grads_n, T* square_avg_n, T* grad_avg_n, T* momentum_buf_n,
                               long long n, T lr, T decay, T one_minus_decay, T eps, T weight_decay, T momentum,
                               int centered) {
    MX_GRID_STRIDE(i, n) {
        T p = params_n[i];
        T g = grads_n[i];
        if (weight_decay != T(0)) g = g + p * weight_decay;
        T s = square_avg_n[i] * decay + (g * g) * one_minus_decay;
        square_avg_n[i] = s;
        T denom;
        if (centered) {
            T a = grad_avg_n[i] * decay + g * one_minus_decay;
            grad_avg_n[i] = a;
            denom = mx_sqrt(s - a * a);
        } else {
            denom = mx_sqrt(s);
        }
        T step = g / (denom + eps);
        if (momentum != T(0)) {
            T b = momentum_buf_n[i] * momentum + step;
            momentum_buf_n[i] = b;
            step = b;
        }
        params_n[i] = p - step * lr;
    }
}

// Adam: m = m beta1 + g (1 - beta1); v = v beta2 + g^2 (1 - beta2);
// p -= (m / (sqrt(v) / sqrt(1 - beta2^t) + eps)) * lr / (1 - beta1^t), with step_size = lr / (1 - beta1^t).
template <typename T>
__global__ void adam_update(T* params_n, const T* grads_n, T* exp_avg_n, T* exp_avg_sq_n, long long n, T beta1,
                            T one_minus_beta1, T beta2, T one_minus_beta2, T inv_bias_correction2_sqrt, T eps,
                            T step_size, T weight_decay) {
    MX_GRID_STRIDE(i, n) {
        T p = params_n[i];
        T g = grads_n[i];
        if (weight_decay != T(0)) g = g + p * weight_decay;
        T m = exp_avg_n[i] * beta1 + g * one_minus_beta1;
        T v = exp_avg_sq_n[i] * beta2 + (g * g) * one_minus_beta2;
        exp_avg_n[i] = m;
        exp_avg_sq_n[i] = v;
        T denom = mx_sqrt(v) * inv_bias_correction2_sqrt + eps;
        params_n[i] = p - (m / denom) * step_size;
    }
}
