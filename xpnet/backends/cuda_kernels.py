"""CUDA C sources of the fused kernels behind :class:`~xpnet.backends.cupy.CupyBackend`.

Only text lives here: :mod:`xpnet.backends.cupy` (the one module that knows CuPy) compiles these
with ``cupy.ElementwiseKernel`` / ``cupy.RawKernel`` on first use. Each kernel replaces several
launches of the plain path with one, because a training step at batch 256 is bound by the
cost of launching kernels from Python, not by the GPU's arithmetic. Every kernel has a plain
counterpart made of ordinary array operations, and ``tests/test_fast_paths.py`` checks that
the two agree.

Dropout masks on the GPU come from a counter-based hash instead of a random stream: element
``i`` of a mask drawn with the 64-bit ``key`` is kept when the top 16 bits of
``splitmix64(key + i * 0x9E3779B97F4A7C15)`` are below ``round(keep * 65536)`` (the same
threshold rule as the host backends' 16-bit draws). The key is drawn from the layer's host
generator, so the masks need no device random state and a checkpoint restores them exactly.
"""

from __future__ import annotations

import re

#: ``splitmix64`` finalizer of ``key + i * golden``: the i-th output of a splitmix64 stream
#: started at ``key``; its top 16 bits decide whether element ``i`` is kept.
HASH16 = r"""
__device__ __forceinline__ unsigned int xpnet_hash16(unsigned long long key,
                                                     unsigned long long i) {
    unsigned long long x = key + i * 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x = x ^ (x >> 31);
    return (unsigned int)(x >> 48);
}
"""

# --------------------------------------------------------------- elementwise (ElementwiseKernel)
#: name -> (in_params, out_params, operation, preamble)
ELEMENTWISE: dict[str, tuple[str, str, str, str]] = {
    # max(x, 0) with NaN propagated, as xp.maximum does.
    "relu": ("T x", "T y", "y = (x > (T)0 || x != x) ? x : (T)0", ""),
    # dy * (y > 0): NaN in dy propagates, as the generic multiply does.
    "relu_backward": ("T dy, T y", "T dx", "dx = dy * (y > (T)0 ? (T)1 : (T)0)", ""),
    # Inverted-dropout mask from the hash: scale where kept, else 0.
    "dropout_mask": (
        "uint64 key, uint32 thr, T scale",
        "T mask",
        "mask = xpnet_hash16(key, (unsigned long long)i) < thr ? scale : (T)0",
        HASH16,
    ),
    # Dense bias + ReLU: a = relu(z + b) (b broadcast along rows of width `cols`).
    "bias_relu": (
        "T z, raw T b, int32 cols",
        "T a",
        "T s = z + b[i % cols]; a = (s > (T)0 || s != s) ? s : (T)0",
        "",
    ),
    # Dense bias + ReLU + dropout in one pass; writes what the three layers' backward passes
    # read (a for ReLU, mask for Dropout) and the output a * mask.
    "bias_relu_dropout": (
        "T z, raw T b, int32 cols, uint64 key, uint32 thr, T scale",
        "T a, T mask, T out",
        """
        T s = z + b[i % cols];
        a = (s > (T)0 || s != s) ? s : (T)0;
        mask = xpnet_hash16(key, (unsigned long long)i) < thr ? scale : (T)0;
        out = a * mask;
        """,
        HASH16,
    ),
    # Dropout then ReLU backward: dx = (dy * mask) * (a > 0), the two plain steps in one.
    "dropout_relu_backward": (
        "T dy, T mask, T a",
        "T dx",
        "T d = dy * mask; dx = d * (a > (T)0 ? (T)1 : (T)0)",
        "",
    ),
    # One bias-corrected Adam step (the caller folds the corrections into lr_t and eps_t).
    "adam": (
        "T g, T lr_t, T beta1, T beta2, T eps_t",
        "T p, T m, T v",
        """
        m = beta1 * m + ((T)1 - beta1) * g;
        v = beta2 * v + ((T)1 - beta2) * g * g;
        p -= lr_t * m / (sqrt(v) + eps_t);
        """,
        "",
    ),
}

# ----------------------------------------------------------------------- raw kernels (RawKernel)
#: Sum over rows of a C-contiguous (n, c) array: blocks of 32 columns x 8 row lanes, each lane
#: striding over rows, then a shared-memory sum of the 8 lanes (fixed order: deterministic).
SUM_ROWS = r"""
extern "C" __global__ void xpnet_sum_rows_T(const T* a, T* out, int n, int c) {
    __shared__ T part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    T acc = (T)0;
    if (col < c) {
        for (int r = threadIdx.y; r < n; r += 8) acc += a[(long long)r * c + col];
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < c) {
        T s = (T)0;
        for (int k = 0; k < 8; k++) s += part[k][threadIdx.x];
        out[col] = s;
    }
}
"""

#: Softmax cross-entropy on integer labels, forward, backward and accuracy in one launch of
#: one block: per row ``m = max z``, ``s = sum exp(z - m)``, ``loss = log s - (z_y - m)``,
#: ``dz = (exp(z - m) / s - onehot(y)) * inv_n``; then a block reduction (in double) writes
#: ``out[0] = mean loss`` and ``out[1] = accuracy`` (argmax, first index on ties, == y).
#: A label outside ``[0, c)`` makes the loss NaN rather than reading out of bounds.
SOFTMAX_XENT = r"""
extern "C" __global__ void xpnet_softmax_xent_T(const T* z, const long long* y, int n, int c,
                                                T inv_n, T* dz, T* out) {
    __shared__ double s_loss[256];
    __shared__ double s_hits[256];
    double loss = 0.0, hits = 0.0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) {
        const T* zr = z + (long long)r * c;
        T* dr = dz + (long long)r * c;
        long long lab = y[r];
        bool ok = lab >= 0 && lab < c;
        T m = zr[0];
        int am = 0;
        for (int j = 1; j < c; j++) {
            T v = zr[j];
            if (v > m) { m = v; am = j; }
        }
        T s = (T)0;
        for (int j = 0; j < c; j++) s += exp(zr[j] - m);
        for (int j = 0; j < c; j++) {
            T p = exp(zr[j] - m) / s;
            dr[j] = (p - (j == lab ? (T)1 : (T)0)) * inv_n;
        }
        T zl = ok ? zr[lab] : sqrt((T)-1);
        // Scaled per row: a sum of n float64 losses near 1.8e308 would overflow the double sum.
        loss += (double)(log(s) - (zl - m)) * (double)inv_n;
        hits += (ok && am == lab) ? 1.0 : 0.0;
    }
    s_loss[threadIdx.x] = loss;
    s_hits[threadIdx.x] = hits;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) {
            s_loss[threadIdx.x] += s_loss[threadIdx.x + k];
            s_hits[threadIdx.x] += s_hits[threadIdx.x + k];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out[0] = (T)s_loss[0];
        out[1] = (T)(s_hits[0] * (double)inv_n);
    }
}
"""

#: Multi-tensor Adam: one launch updates every parameter. ``ptrs`` holds (p, g, m, v) device
#: addresses per tensor, ``offsets`` the running element counts (k + 1 entries); each thread
#: finds its tensor by a linear scan (k is small) and applies the rule of ``adam`` above.
ADAM_MULTI = r"""
extern "C" __global__ void xpnet_adam_multi_T(const unsigned long long* ptrs,
                                              const long long* offsets, int k, T lr_t, T beta1,
                                              T beta2, T eps_t) {
    long long total = offsets[k];
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        int t = 0;
        while (idx >= offsets[t + 1]) t++;
        long long e = idx - offsets[t];
        T* p = (T*)ptrs[4 * t];
        const T* g = (const T*)ptrs[4 * t + 1];
        T* m = (T*)ptrs[4 * t + 2];
        T* v = (T*)ptrs[4 * t + 3];
        T gi = g[e];
        T mi = beta1 * m[e] + ((T)1 - beta1) * gi;
        T vi = beta2 * v[e] + ((T)1 - beta2) * gi * gi;
        m[e] = mi;
        v[e] = vi;
        p[e] -= lr_t * mi / (sqrt(vi) + eps_t);
    }
}
"""

#: name -> source with ``T`` standing for the element type
RAW: dict[str, str] = {
    "sum_rows": SUM_ROWS,
    "softmax_xent": SOFTMAX_XENT,
    "adam_multi": ADAM_MULTI,
}


def raw_source(name: str, ctype: str) -> tuple[str, str]:
    """``(source, function name)`` of raw kernel ``name`` for C type ``float`` or ``double``."""
    if ctype not in ("float", "double"):
        raise ValueError(f"ctype must be 'float' or 'double', got {ctype!r}")
    suffix = "f32" if ctype == "float" else "f64"
    src = RAW[name].replace("_T(", f"_{suffix}(")
    src = re.sub(r"\bT\b", ctype, src)
    return src, f"xpnet_{name}_{suffix}"


__all__ = ["ELEMENTWISE", "HASH16", "RAW", "raw_source"]
