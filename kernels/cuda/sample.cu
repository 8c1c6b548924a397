// CUDA sampling kernel: apply an edgevqa sampling plan to decoded frames already on the GPU.
//
// The specification is the NumPy reference (kernels/reference.py): the integer tap arithmetic of
// runtime/sampling.py, the fixed-point YUV -> RGB of kernels/colour.py, then a normalisation table lookup.
// Sums and products are done modulo 2**64 with arithmetic shifts, as NumPy's int64 does, so the output
// matches the reference bit for bit for any int32 weights and coefficients; float32 / float16 values are
// copied from the table as bit patterns, never computed.
//
// One launch covers up to EDGEVQA_MAX_FRAMES frames and EDGEVQA_MAX_JOBS (clip, time) positions: everything
// the launch needs travels in one __grid_constant__ parameter block (under the classic 4 KiB limit), so a
// launch needs no host-to-device copy. One thread makes EDGEVQA_PIXELS_PER_THREAD output pixels (all three
// channels) of one output row of one job.
//
// The file has no #include on purpose: it is compiled at first use by NVRTC (edgevqa.kernels.device) and by
// nvcc in CI (tests/kernels/test_cuda_compile.py), with the same text.

#ifdef EDGEVQA_HOST_EMULATION
// tests/kernels/test_device_emulation.py compiles the per-pixel code for the CPU to check it without a GPU.
#define __device__
#define __host__
#define __forceinline__ inline
#endif

#define EDGEVQA_WEIGHT_ONE 16384

// Flags that NVRTC may fix at compile time (edgevqa.kernels.device specialises the kernel for each plan's
// flags: no dead branches, fewer registers); without a definition they are read from the parameters.
#ifndef EDGEVQA_IS_RGB
#define EDGEVQA_IS_RGB (p.is_rgb != 0)
#endif
#ifndef EDGEVQA_WIDE
#define EDGEVQA_WIDE (p.wide != 0)
#endif
#ifndef EDGEVQA_IDENTITY
#define EDGEVQA_IDENTITY (p.identity != 0)
#endif
#ifndef EDGEVQA_NARROW_MATH
#define EDGEVQA_NARROW_MATH (p.narrow_math != 0)
#endif
#ifndef EDGEVQA_HALF_OUT
#define EDGEVQA_HALF_OUT (p.half_out != 0)
#endif
#define EDGEVQA_MAX_FRAMES 32
#define EDGEVQA_MAX_JOBS 64
#define EDGEVQA_BLOCK_X 32
#define EDGEVQA_BLOCK_Y 8
#ifndef EDGEVQA_PIXELS_PER_THREAD
#define EDGEVQA_PIXELS_PER_THREAD 2
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

// One plane: pointer to element [0, 0] and strides in bytes (any sign, zero allowed).
struct PlaneDesc {
    const u8 *data;
    i64 row_stride;
    i64 col_stride;
};

struct FrameDesc {
    PlaneDesc plane[3];
};

// frame: index into frames[]; n, t: output clip and time; group: tap group.
struct JobDesc {
    int frame, n, t, group;
};

// Every field is 8 bytes or a multiple of 8, so the host packs this block as int64 words
// (edgevqa.kernels.device.PARAM_FIELDS lists the scalar words in this order).
struct SampleParams {
    const int *tap_index[4];   // luma rows, luma cols, chroma rows, chroma cols: [G, gh, gw, L, K]
    const int *tap_weight[4];
    i64 taps[4];               // K of each table
    i64 grid_h, grid_w, tile_h, tile_w;
    u8 *out;
    i64 out_stride[5];         // bytes, NCTHW or NTCHW order of the output's own axes
    i64 channels_first;
    const u8 *table;           // [3][256] float32 or float16 bit patterns
    i64 coef[7];               // y_offset, c_mid, cy, crv, cgu, cgv, cbu
    i64 is_rgb, bit_depth, wide, narrow_math, half_out, max_value;
    i64 identity;              // every tap of the plan is one sample of weight one (fragments, no resize)
    i64 num_jobs;
    FrameDesc frames[EDGEVQA_MAX_FRAMES];
    JobDesc jobs[EDGEVQA_MAX_JOBS];
};

static_assert(sizeof(PlaneDesc) == 24, "PlaneDesc layout");
static_assert(sizeof(JobDesc) == 16, "JobDesc layout");
static_assert(sizeof(SampleParams) == 8 * 39 + 72 * EDGEVQA_MAX_FRAMES + 16 * EDGEVQA_MAX_JOBS,
              "SampleParams layout must match edgevqa.kernels.device");
static_assert(sizeof(SampleParams) <= 4096, "parameter block must fit the classic 4 KiB limit");

__host__ __device__ __forceinline__ i64 load_sample(const u8 *p, bool wide) {
    return wide ? (i64)(*(const u16 *)p) : (i64)(*p);
}

// One plane through one output pixel's taps, clamped to 0..max_value. Byte offsets fit in int32: the host
// checks every plane's addressed extent (and the tap tables' sizes) against 2**31, and 32-bit address
// arithmetic is what keeps this kernel's instruction count low.
__host__ __device__ __forceinline__ int sample_plane(const u8 *data, int row_stride, int col_stride, const int *ri,
                                                    const int *rw, int kr, const int *ci, const int *cw, int kc,
                                                    bool wide, int max_value, bool identity) {
    if (identity || (kr == 1 && kc == 1 && rw[0] == EDGEVQA_WEIGHT_ONE && cw[0] == EDGEVQA_WEIGHT_ONE)) {
        // ((P * 2**14 + 64) >> 7) * 2**14 rounds back to P exactly.
        const int v = (int)load_sample(data + (ri[0] * row_stride + ci[0] * col_stride), wide);
        return v > max_value ? max_value : v;
    }
    u64 acc = 0;
    for (int a = 0; a < kr; a++) {
        const u8 *row = data + ri[a] * row_stride;
        u64 h = 0;
        for (int b = 0; b < kc; b++)
            h += (u64)(i64)cw[b] * (u64)load_sample(row + ci[b] * col_stride, wide);
        i64 hs = ((i64)(h + 64)) >> 7;
        acc += (u64)(i64)rw[a] * (u64)hs;
    }
    i64 v = ((i64)(acc + ((u64)1 << 20))) >> 21;
    return (int)(v < 0 ? 0 : (v > max_value ? max_value : v));
}

__host__ __device__ __forceinline__ u32 clamp_255(i64 v) { return (u32)(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// a / b for 0 <= a < 2**24, 0 < b, without an integer division: a float estimate, then one correction.
__host__ __device__ __forceinline__ int divide(int a, int b, float inverse) {
    int q = (int)((float)a * inverse);
    if (q * b > a)
        q--;
    else if ((q + 1) * b <= a)
        q++;
    return q;
}

// Table bits of the three channels of output pixel (i, dy) x (j, dx) of a frame through tap group `group`.
__host__ __device__ __forceinline__ void pixel_bits(const SampleParams &p, const u32 *table, const FrameDesc &frame,
                                                    int group, int i, int dy, int j, int dx, u32 bits[3]) {
    const int th = (int)p.tile_h, tw = (int)p.tile_w;
    const int tile = (group * (int)p.grid_h + i) * (int)p.grid_w + j;  // tap tables hold < 2**31 entries
    const int max_value = (int)p.max_value;
    const bool wide = EDGEVQA_WIDE, identity = EDGEVQA_IDENTITY;
    int value[3];
    for (int c = 0; c < 3; c++) {
        const int set = (c == 0 || EDGEVQA_IS_RGB) ? 0 : 2;  // luma tables at 0, 1; chroma at 2, 3
        const int kr = (int)p.taps[set], kc = (int)p.taps[set + 1];
        const int ro = (tile * th + dy) * kr, co = (tile * tw + dx) * kc;
        const PlaneDesc &pl = frame.plane[c];
        value[c] = sample_plane(pl.data, (int)pl.row_stride, (int)pl.col_stride, p.tap_index[set] + ro,
                                p.tap_weight[set] + ro, kr, p.tap_index[set + 1] + co, p.tap_weight[set + 1] + co,
                                kc, wide, max_value, identity);
    }
    u32 rgb[3];
    if (EDGEVQA_IS_RGB) {
        const int shift = (int)p.bit_depth - 8;
        for (int c = 0; c < 3; c++)
            rgb[c] = (u32)(value[c] >> shift);
    } else if (EDGEVQA_NARROW_MATH) {
        // The host proved every intermediate fits in int32 for values in 0..max_value.
        const int k0 = (int)p.coef[0], k1 = (int)p.coef[1], k2 = (int)p.coef[2], k3 = (int)p.coef[3],
                  k4 = (int)p.coef[4], k5 = (int)p.coef[5], k6 = (int)p.coef[6];
        const int yt = k2 * (value[0] - k0) + (1 << 15), u = value[1] - k1, v = value[2] - k1;
        rgb[0] = clamp_255((yt + k3 * v) >> 16);
        rgb[1] = clamp_255((yt - k4 * u - k5 * v) >> 16);
        rgb[2] = clamp_255((yt + k6 * u) >> 16);
    } else {
        const u64 yt = (u64)p.coef[2] * (u64)((i64)value[0] - p.coef[0]) + ((u64)1 << 15);
        const u64 u = (u64)((i64)value[1] - p.coef[1]), v = (u64)((i64)value[2] - p.coef[1]);
        rgb[0] = clamp_255(((i64)(yt + (u64)p.coef[3] * v)) >> 16);
        rgb[1] = clamp_255(((i64)(yt - (u64)p.coef[4] * u - (u64)p.coef[5] * v)) >> 16);
        rgb[2] = clamp_255(((i64)(yt + (u64)p.coef[6] * u)) >> 16);
    }
    for (int c = 0; c < 3; c++)
        bits[c] = table[c * 256 + rgb[c]];
}

// What thread (thread_x, thread_y) of block (block_x, block_y, job) does: EDGEVQA_PIXELS_PER_THREAD pixels of
// one output row, EDGEVQA_BLOCK_X apart (so each load and store instruction of a warp stays contiguous), all
// read before any is written so their memory latencies overlap.
__host__ __device__ __forceinline__ void sample_thread(const SampleParams &p, const u32 *table, int block_x,
                                                      int block_y, int job_index, int thread_x, int thread_y) {
    const int th = (int)p.tile_h, tw = (int)p.tile_w;
    const int width = (int)p.grid_w * tw, height = (int)p.grid_h * th;
    const int y = block_y * EDGEVQA_BLOCK_Y + thread_y;
    if (y >= height || job_index >= p.num_jobs)
        return;
    const JobDesc job = p.jobs[job_index];
    const FrameDesc &frame = p.frames[job.frame];
    const int i = divide(y, th, 1.0f / (float)th), dy = y - i * th;
    const float inverse_tw = 1.0f / (float)tw;
    // Offsets inside one (clip, time) image fit in int32 (checked by the host).
    const int channel_stride = (int)(p.channels_first ? p.out_stride[1] : p.out_stride[2]);
    const int x_stride = (int)p.out_stride[4];
    const i64 time_stride = p.channels_first ? p.out_stride[2] : p.out_stride[1];
    u8 *row = p.out + job.n * p.out_stride[0] + job.t * time_stride + y * (int)p.out_stride[3];
    const int x0 = block_x * (EDGEVQA_BLOCK_X * EDGEVQA_PIXELS_PER_THREAD) + thread_x;

    u32 bits[EDGEVQA_PIXELS_PER_THREAD][3];
#pragma unroll
    for (int k = 0; k < EDGEVQA_PIXELS_PER_THREAD; k++) {
        const int x = x0 + k * EDGEVQA_BLOCK_X;
        if (x < width) {
            const int j = divide(x, tw, inverse_tw);
            pixel_bits(p, table, frame, job.group, i, dy, j, x - j * tw, bits[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < EDGEVQA_PIXELS_PER_THREAD; k++) {
        const int x = x0 + k * EDGEVQA_BLOCK_X;
        if (x < width) {
            u8 *base = row + x * x_stride;
            for (int c = 0; c < 3; c++) {
                if (EDGEVQA_HALF_OUT)
                    *(u16 *)(base + c * channel_stride) = (u16)bits[k][c];
                else
                    *(u32 *)(base + c * channel_stride) = bits[k][c];
            }
        }
    }
}

#ifndef EDGEVQA_HOST_EMULATION
extern "C" __global__ void __launch_bounds__(EDGEVQA_BLOCK_X * EDGEVQA_BLOCK_Y)
edgevqa_sample(const __grid_constant__ SampleParams p) {
    __shared__ u32 table[3 * 256];
    const int lane = threadIdx.y * EDGEVQA_BLOCK_X + threadIdx.x;
    for (int e = lane; e < 3 * 256; e += EDGEVQA_BLOCK_X * EDGEVQA_BLOCK_Y)
        table[e] = EDGEVQA_HALF_OUT ? (u32)((const u16 *)p.table)[e] : ((const u32 *)p.table)[e];
    __syncthreads();
    sample_thread(p, table, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y);
}
#endif
