// Batch gathering on the device: the dataset stays there and each step copies its rows.

// out_bc[r, c] = src_nc[index_b[r], c] (src_nc has src_rows rows). An index outside [0, src_rows) never reads out of
// bounds: its row is left untouched (indices come from a permutation checked on the host).
template <typename T>
__global__ void take_rows(const T* src_nc, const long long* index_b, T* out_bc, long long rows, long long cols,
                          long long src_rows) {
    MX_GRID_STRIDE(i, rows * cols) {
        long long r = i / cols;
        long long src = index_b[r];
        if (src >= 0 && src < src_rows) out_bc[i] = src_nc[src * cols + (i - r * cols)];
    }
}
