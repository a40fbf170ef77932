// Easel's CUDA kernels: memory-bound steps that candle runs as several passes, done in one.
// bf16 is handled as raw 16-bit words (no CUDA headers needed); all arithmetic is f32.
// Compiled to PTX by build.rs when the `cuda` feature is on.

#define EASEL_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf2f(unsigned short h) {
    return __uint_as_float(((unsigned int)h) << 16);
}

// Round to nearest even, NaN kept quiet.
__device__ __forceinline__ unsigned short f2bf(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short)((u >> 16) | 0x40u);
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// Row-wise softmax over the last axis of a contiguous [rows, cols] bf16 matrix, one warp per
// row: one pass computes the running max and sum (online softmax), the second writes
// exp(x - max) / sum. candle's kernel makes five passes with 2-byte accesses.
extern "C" __global__ void easel_softmax_bf16(
    const unsigned short* __restrict__ x, unsigned short* __restrict__ y, int rows, int cols) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp >= rows) return;
    const unsigned short* xr = x + (size_t)warp * cols;
    unsigned short* yr = y + (size_t)warp * cols;
    const bool vec = (cols & 7) == 0 && (((size_t)xr) & 15) == 0 && (((size_t)yr) & 15) == 0;

    float m = -EASEL_INF;
    float s = 0.f;
    if (vec) {
        const uint4* xv = reinterpret_cast<const uint4*>(xr);
        for (int i = lane; i < (cols >> 3); i += 32) {
            uint4 p = xv[i];
            unsigned int w[4] = {p.x, p.y, p.z, p.w};
            float v[8];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                v[2 * k] = bf2f((unsigned short)(w[k] & 0xffffu));
                v[2 * k + 1] = bf2f((unsigned short)(w[k] >> 16));
            }
            float local = v[0];
#pragma unroll
            for (int k = 1; k < 8; ++k) local = fmaxf(local, v[k]);
            const float nm = fmaxf(m, local);
            float acc = (m == -EASEL_INF) ? 0.f : s * __expf(m - nm);
#pragma unroll
            for (int k = 0; k < 8; ++k) acc += __expf(v[k] - nm);
            s = acc;
            m = nm;
        }
    } else {
        for (int i = lane; i < cols; i += 32) {
            const float v = bf2f(xr[i]);
            const float nm = fmaxf(m, v);
            s = ((m == -EASEL_INF) ? 0.f : s * __expf(m - nm)) + __expf(v - nm);
            m = nm;
        }
    }
    // Combine the lanes' (max, sum) pairs.
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float om = __shfl_xor_sync(0xffffffffu, m, offset);
        const float os = __shfl_xor_sync(0xffffffffu, s, offset);
        const float nm = fmaxf(m, om);
        const float a = (m == -EASEL_INF) ? 0.f : s * __expf(m - nm);
        const float b = (om == -EASEL_INF) ? 0.f : os * __expf(om - nm);
        s = a + b;
        m = nm;
    }
    const float inv = 1.f / s;
    if (vec) {
        const uint4* xv = reinterpret_cast<const uint4*>(xr);
        uint4* yv = reinterpret_cast<uint4*>(yr);
        for (int i = lane; i < (cols >> 3); i += 32) {
            uint4 p = xv[i];
            unsigned int w[4] = {p.x, p.y, p.z, p.w};
            unsigned int o[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float a = __expf(bf2f((unsigned short)(w[k] & 0xffffu)) - m) * inv;
                const float b = __expf(bf2f((unsigned short)(w[k] >> 16)) - m) * inv;
                o[k] = (unsigned int)f2bf(a) | ((unsigned int)f2bf(b) << 16);
            }
            yv[i] = make_uint4(o[0], o[1], o[2], o[3]);
        }
    } else {
        for (int i = lane; i < cols; i += 32) {
            yr[i] = f2bf(__expf(bf2f(xr[i]) - m) * inv);
        }
    }
}

// x · σ(1.702 x), the vision MLP's activation, in one pass instead of three.
extern "C" __global__ void easel_quick_gelu_bf16(
    const unsigned short* __restrict__ x, unsigned short* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float v = bf2f(x[i]);
        y[i] = f2bf(v / (1.f + __expf(-1.702f * v)));
    }
}

// silu(gate) · up, the language model's SwiGLU, in one pass instead of three.
extern "C" __global__ void easel_silu_mul_bf16(
    const unsigned short* __restrict__ gate, const unsigned short* __restrict__ up,
    unsigned short* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float g = bf2f(gate[i]);
        y[i] = f2bf(g / (1.f + __expf(-g)) * bf2f(up[i]));
    }
}

// The vision attention's input step in one pass: split qkv [N, 3, H, D] into q, k, v laid out
// [3][H][N][D], apply the 2-D rotary to q and k in f32 (as HF does), and fold the softmax scale
// into q. cos/sin are the half tables [N, D/2] (f32). One thread per (n, h, j < D/2).
extern "C" __global__ void easel_vision_qkv_rope_bf16(
    const unsigned short* __restrict__ qkv, const float* __restrict__ cos,
    const float* __restrict__ sin, unsigned short* __restrict__ out, int n_tokens, int heads,
    int head_dim, float q_scale) {
    const int half = head_dim >> 1;
    const long long total = (long long)n_tokens * heads * half;
    const long long plane = (long long)heads * n_tokens * head_dim;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const int j = (int)(t % half);
        const long long nh = t / half;
        const int h = (int)(nh % heads);
        const long long n = nh / heads;
        const float c = cos[n * half + j];
        const float s = sin[n * half + j];
        const long long in_row = n * 3 * heads * head_dim;
        const long long out_row = ((long long)h * n_tokens + n) * head_dim;
        // q (scaled) and k: rotate the pair (j, j + D/2).
#pragma unroll
        for (int which = 0; which < 2; ++which) {
            const long long base = in_row + ((long long)which * heads + h) * head_dim;
            const float x1 = bf2f(qkv[base + j]);
            const float x2 = bf2f(qkv[base + j + half]);
            const float scale = which == 0 ? q_scale : 1.f;
            out[which * plane + out_row + j] = f2bf((x1 * c - x2 * s) * scale);
            out[which * plane + out_row + j + half] = f2bf((x2 * c + x1 * s) * scale);
        }
        const long long vbase = in_row + ((long long)2 * heads + h) * head_dim;
        out[2 * plane + out_row + j] = qkv[vbase + j];
        out[2 * plane + out_row + j + half] = qkv[vbase + j + half];
    }
}
