/* Host sampling kernel: apply an edgevqa sampling plan to one decoded frame, straight from its planes.
 *
 * The specification is the NumPy reference, kernels/reference.py: the integer tap arithmetic in the module
 * docstring of runtime/sampling.py, the fixed-point YUV -> RGB of kernels/colour.py, then a normalisation
 * table lookup. Every sum and product here is done modulo 2**64 and every shift is arithmetic, exactly what
 * NumPy's int64 does, so the output matches the reference bit for bit for any int32 weights and
 * coefficients, not only for the well-behaved ones make_plan produces. Outputs are copied from the
 * normalisation table (float16 as its 16-bit pattern), except on the vector paths when the caller passes the
 * table's mean and std and a computed form (float32 lanes: fma(v, hi_a, hi_b) + fma(v, lo_a, lo_b), converted
 * to float16 for float16 output; else, float32 only, float64: float32(fma(v, 1/std, -mean/std))) equals every
 * one of the 768 table entries bit for bit
 * (checked when the tables are built; they are cached per table, conversion and dtype): then the same values
 * are computed.
 *
 * Design follows sampling.md section 5 (convert only the kept pixels) and the PyAV / pytorch
 * extension-cpp pattern of a thin binding that validates everything, then releases the GIL for the work.
 * Buffers are taken through the buffer protocol (zero copy); planes may have any strides, including
 * negative ones (np.rot90 views) and zero ones (broadcast grey chroma).
 *
 * Paths, fastest first (each produces the reference's integers, so the choice never changes a bit):
 * - render_direct (AVX2 with FMA, chosen at run time, or NEON): planar 8-bit luma, one tap of weight one
 *   per axis (fragments of frames at least as large as the view), YUV through the lookup tables' integers:
 *   the first grid row's source lines touched, each later row's prefetched while the row above it is
 *   computed, the output written row by row in raster order, 8 pixels
 *   a step, the rows read in place; float32 normalisation computed in float32 lanes where that reproduces
 *   the table (checked per table);
 * - fused_identity_tile: the same tiles for any 8-bit layout (RGB, negative strides, ...): stage the tile's
 *   source runs, then one pass per output row, 8 pixels at a time with AVX2 where the processor has it
 *   (no NEON rows here yet; EDGEVQA_NATIVE_SCALAR=1 forces this path's scalar rows for every tile, and keeps
 *   every tile off the direct path; all give the same bits);
 * - apply_taps_tile's identity branch, then the tables (other bit depths up to 10, strided views);
 * - the general separable filter (resize taps, any K and weights) and multiply-and-clamp colour.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Vector versions of the hottest loops: AVX2 on x86, picked at run time (__builtin_cpu_supports), so the build
 * keeps portable flags; NEON on aarch64 (Jetson Orin, ARM servers), where Advanced SIMD and FMA are part of the
 * base architecture. Each computes the same int32 values as the scalar loops and the same float bits (the
 * computed normalisations are checked against the table per table), so every choice gives the same output.
 * -DEDGEVQA_NATIVE_PORTABLE leaves every vector path out: plain C, built and tested by
 * tests/kernels/test_native_portable.py. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(EDGEVQA_NATIVE_PORTABLE)
#define HAVE_AVX2_PATH 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define HAVE_AVX2_PATH 0
#endif
#if defined(__GNUC__) && defined(__aarch64__) && defined(__ARM_NEON) && !defined(EDGEVQA_NATIVE_PORTABLE)
#define HAVE_NEON_PATH 1
#include <arm_neon.h>
#else
#define HAVE_NEON_PATH 0
#endif
#define HAVE_VECTOR_PATH (HAVE_AVX2_PATH || HAVE_NEON_PATH)

/* Bytes readable past the end of the staging and norm buffers: the AVX2 path gathers 32-bit words at byte
 * (or 16-bit) positions and keeps the low bits, so its last lanes read up to 3 bytes beyond the sample. */
#define GATHER_PAD 16

#define WEIGHT_ONE (1 << 14)
#define NUM_TAP_ARRAYS 8
#define STAGE_MAX_SPAN 512

static PyObject *kernel_error; /* edgevqa.errors.KernelError */

/* The rows this build and processor run; EDGEVQA_NATIVE_SCALAR=1 forces the scalar ones (tests compare both). */
enum { ROWS_SCALAR, ROWS_AVX2, ROWS_AVX2_FMA, ROWS_NEON };

static int rows_in_use(void) {
    static int known = -1;
    if (known < 0) {
        const char *off = getenv("EDGEVQA_NATIVE_SCALAR");
        known = ROWS_SCALAR;
        if (!(off && *off && *off != '0')) {
#if HAVE_AVX2_PATH
            if (__builtin_cpu_supports("avx2"))
                known = __builtin_cpu_supports("fma") ? ROWS_AVX2_FMA : ROWS_AVX2;
#elif HAVE_NEON_PATH
            known = ROWS_NEON;
#endif
        }
    }
    return known;
}

#if HAVE_VECTOR_PATH
/* Whether the rows in use have a fused multiply-add (the direct path's rows need one). */
static int rows_fuse_multiply_add(void) { return rows_in_use() == ROWS_AVX2_FMA || rows_in_use() == ROWS_NEON; }
#endif

/* Wrapping int64 arithmetic (as NumPy's), free of signed-overflow undefined behaviour. */
static inline int64_t wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t wrap_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }

/* ------------------------------------------------------------------------------------------ buffers */

typedef struct {
    Py_buffer view;
    int held;
} held_buffer;

static void release_buffer(held_buffer *b) {
    if (b->held) {
        PyBuffer_Release(&b->view);
        b->held = 0;
    }
}

static int take_buffer(PyObject *obj, held_buffer *b, int writable, const char *what) {
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) != 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *text = value ? PyObject_Str(value) : NULL;
        PyErr_Format(kernel_error, "%s must be a %sarray with the buffer protocol, got %s (%s)", what,
                     writable ? "writable " : "", Py_TYPE(obj)->tp_name,
                     text ? PyUnicode_AsUTF8(text) : "no buffer");
        Py_XDECREF(text);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    b->held = 1;
    return 0;
}

/* 'u' unsigned integer, 'i' signed integer, 'f' float, 0 anything else (non-native byte order included). */
static char format_kind(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
#if PY_BIG_ENDIAN
    const char native = '>', foreign = '<';
#else
    const char native = '<', foreign = '>';
#endif
    if (*f == '@' || *f == '=' || *f == native)
        f++;
    else if (*f == foreign || *f == '!')
        return 0;
    if (f[0] == 0 || f[1] != 0)
        return 0;
    switch (f[0]) {
    case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N':
        return 'u';
    case 'b': case 'h': case 'i': case 'l': case 'q': case 'n':
        return 'i';
    case 'e': case 'f': case 'd':
        return 'f';
    default:
        return 0;
    }
}

static const char *format_text(const Py_buffer *v) { return v->format ? v->format : "B"; }

/* A C-contiguous int32 array of `ndim` dimensions. */
static int check_int32_array(const Py_buffer *v, int ndim, const char *what) {
    if (format_kind(v) != 'i' || v->itemsize != 4) {
        PyErr_Format(kernel_error, "%s must be int32, got buffer format '%s' (itemsize %zd)", what,
                     format_text(v), v->itemsize);
        return -1;
    }
    if (v->ndim != ndim) {
        PyErr_Format(kernel_error, "%s must have %d dimensions, got %d", what, ndim, v->ndim);
        return -1;
    }
    if (!PyBuffer_IsContiguous(v, 'C')) {
        PyErr_Format(kernel_error, "%s must be C-contiguous", what);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ the plan */

typedef struct {
    const char *data; /* element [0, 0] */
    Py_ssize_t rows, cols, s0, s1;
    int wide; /* uint16 samples */
} plane_desc;

typedef struct {
    const int32_t *index, *weight;
    Py_ssize_t groups, gh, gw, len, k;
} taps_desc;

static inline Py_ssize_t taps_offset(const taps_desc *t, Py_ssize_t g, Py_ssize_t i, Py_ssize_t j) {
    return (((g * t->gh + i) * t->gw + j) * t->len) * t->k;
}

typedef struct {
    plane_desc planes[3];
    taps_desc rows[2], cols[2]; /* [0] luma (or RGB), [1] chroma */
    int plane_taps[3];          /* which of rows/cols each plane uses */
    int is_rgb, bit_depth, narrow_math;
    int32_t max_value;
    int64_t coef[7];
    const void *table; /* [3][256] float32 or float16 bits */
    int half;
    int has_affine;      /* the caller said table[c][v] = float32((v - mean[c]) / std[c]) */
    double mean[3], std[3];
    char *out;
    Py_ssize_t out_s[5];
    int channels_first;
    Py_ssize_t grid_h, grid_w, tile_h, tile_w;
    /* The (n, t, group) positions this frame feeds, and for each the earlier position with the same group. */
    Py_ssize_t num_uses;
    Py_ssize_t *use_n, *use_t, *use_g, *use_copy_from;
} frame_job;

/* Tile j of the grid row being rendered by the direct path. */
typedef struct {
    const int32_t *luma_rows, *chroma_rows; /* [tile_h]: the source row of each output row */
    const uint8_t *luma;                     /* the luma plane at the tile's first column */
    Py_ssize_t *column, *block;              /* chroma byte offsets of every pixel, of each 8-pixel block */
    uint8_t *pick;                           /* each pixel's byte among the 16 loaded for its block */
    char *out;                               /* the tile's first output element */
} direct_tile;

typedef struct {
    int32_t *values;    /* [3][tile_h * tile_w] */
    Py_ssize_t *col_offset; /* [tile_w * k] */
    uint64_t *vertical; /* [tile_w] */
    int64_t *horizontal;
    size_t horizontal_cap;
    char *stage; /* [3][tile_h * STAGE_MAX_SPAN] */
    int32_t *rel; /* [3][tile_w] */
    uint8_t *shuffle; /* [tile_w + 8] */
    /* the direct path, for one grid row: [grid_w * tile_w], [grid_w * (tile_w / 8 + 1)], [grid_w] */
    Py_ssize_t *block;
    direct_tile *tiles;
    char *done; /* [grid_h * grid_w] */
} scratch_space;

static inline int64_t load_sample(const char *p, int wide) {
    if (wide) {
        uint16_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    return *(const uint8_t *)p;
}

/* One row of the horizontal pass: h[dx] = (sum_b cw[dx,b] * row[ci[dx,b]] + 64) >> 7. */
static void horizontal_row(const char *row, int wide, const Py_ssize_t *col_offset, const int32_t *cw,
                           Py_ssize_t tw, Py_ssize_t kx, int64_t *h) {
    for (Py_ssize_t dx = 0; dx < tw; dx++) {
        int64_t acc = 0;
        for (Py_ssize_t b = 0; b < kx; b++)
            acc = wrap_add(acc, wrap_mul(cw[dx * kx + b], load_sample(row + col_offset[dx * kx + b], wide)));
        h[dx] = wrap_add(acc, 64) >> 7;
    }
}

static inline int32_t finish_value(int64_t acc, int32_t max_value) {
    int64_t v = wrap_add(acc, (int64_t)1 << 20) >> 21;
    return (int32_t)(v < 0 ? 0 : (v > max_value ? max_value : v));
}

static int grow_horizontal(scratch_space *s, size_t count) {
    if (count <= s->horizontal_cap)
        return 0;
    int64_t *p = realloc(s->horizontal, count * sizeof(int64_t));
    if (!p)
        return -1;
    s->horizontal = p;
    s->horizontal_cap = count;
    return 0;
}

/* One plane through the taps of one tile: dst[dy * tw + dx], clamped to 0..max_value. */
static int apply_taps_tile(const plane_desc *pl, const int32_t *ri, const int32_t *rw, Py_ssize_t th,
                           Py_ssize_t ky, const int32_t *ci, const int32_t *cw, Py_ssize_t tw, Py_ssize_t kx,
                           int32_t max_value, int32_t *dst, scratch_space *s) {
    Py_ssize_t *col_offset = s->col_offset;
    for (Py_ssize_t q = 0; q < tw * kx; q++)
        col_offset[q] = (Py_ssize_t)ci[q] * pl->s1;

    int identity = (kx == 1 && ky == 1);
    for (Py_ssize_t q = 0; identity && q < th; q++)
        identity = rw[q] == WEIGHT_ONE;
    for (Py_ssize_t q = 0; identity && q < tw; q++)
        identity = cw[q] == WEIGHT_ONE;
    if (identity) {
        /* One tap of weight one on each axis: ((P * 2**14 + 64) >> 7) * 2**14 rounds back to P exactly. */
        const Py_ssize_t item = pl->wide ? 2 : 1;
        Py_ssize_t lo = col_offset[0], hi = col_offset[0];
        for (Py_ssize_t dx = 1; dx < tw; dx++) {
            if (col_offset[dx] < lo) lo = col_offset[dx];
            if (col_offset[dx] > hi) hi = col_offset[dx];
        }
        const Py_ssize_t span = hi - lo + item;
        const char *stage = NULL;
        Py_ssize_t stage_row = 0;
        if (span <= STAGE_MAX_SPAN) {
            /* Copy the tile's source runs first: one short memcpy per row is so few instructions that the
             * processor keeps dozens of cache misses in flight, where the per-sample loop kept two or three
             * (frames come from the decoder's buffers, mostly not in cache). The bytes between two samples of
             * one row view belong to the same buffer, so the copies stay inside it. */
            char *buffer = s->stage;
            for (Py_ssize_t dy = 0; dy < th; dy++)
                memcpy(buffer + dy * span, pl->data + (Py_ssize_t)ri[dy] * pl->s0 + lo, (size_t)span);
            stage = buffer;
            stage_row = span;
        }
        int unit_run = 1; /* columns are one contiguous run (planar planes; NV12 and RGB views are strided) */
        for (Py_ssize_t dx = 1; unit_run && dx < tw; dx++)
            unit_run = col_offset[dx] == col_offset[0] + dx * item;
        const Py_ssize_t shift = stage ? lo : 0; /* staged rows start at the tile's first sample */
        for (Py_ssize_t dy = 0; dy < th; dy++) {
            const char *row = stage ? stage + dy * stage_row : pl->data + (Py_ssize_t)ri[dy] * pl->s0;
            int32_t *d = dst + dy * tw;
            if (pl->wide) {
                for (Py_ssize_t dx = 0; dx < tw; dx++) {
                    uint16_t v;
                    memcpy(&v, row + (col_offset[dx] - shift), sizeof v);
                    d[dx] = v > max_value ? max_value : v;
                }
            } else if (unit_run) {
                const uint8_t *src = (const uint8_t *)row + (col_offset[0] - shift);
                for (Py_ssize_t dx = 0; dx < tw; dx++)
                    d[dx] = src[dx]; /* 8-bit samples never exceed max_value >= 255 */
            } else {
                for (Py_ssize_t dx = 0; dx < tw; dx++)
                    d[dx] = *(const uint8_t *)(row + (col_offset[dx] - shift));
            }
        }
        return 0;
    }

    int32_t row_min = ri[0], row_max = ri[0];
    for (Py_ssize_t q = 1; q < th * ky; q++) {
        if (ri[q] < row_min) row_min = ri[q];
        if (ri[q] > row_max) row_max = ri[q];
    }
    Py_ssize_t span = (Py_ssize_t)row_max - row_min + 1;
    uint64_t *vertical = s->vertical;
    if (span <= th * ky) {
        /* Neighbouring output rows share source rows (resizing): filter each source row once. */
        if (grow_horizontal(s, (size_t)span * (size_t)tw))
            return -1;
        for (Py_ssize_t r = 0; r < span; r++)
            horizontal_row(pl->data + (row_min + r) * pl->s0, pl->wide, col_offset, cw, tw, kx,
                           s->horizontal + r * tw);
        for (Py_ssize_t dy = 0; dy < th; dy++) {
            memset(vertical, 0, (size_t)tw * sizeof *vertical);
            for (Py_ssize_t a = 0; a < ky; a++) {
                uint64_t w = (uint64_t)(int64_t)rw[dy * ky + a];
                const int64_t *h = s->horizontal + (Py_ssize_t)(ri[dy * ky + a] - row_min) * tw;
                for (Py_ssize_t dx = 0; dx < tw; dx++)
                    vertical[dx] += w * (uint64_t)h[dx];
            }
            for (Py_ssize_t dx = 0; dx < tw; dx++)
                dst[dy * tw + dx] = finish_value((int64_t)vertical[dx], max_value);
        }
    } else {
        if (grow_horizontal(s, (size_t)ky * (size_t)tw))
            return -1;
        for (Py_ssize_t dy = 0; dy < th; dy++) {
            memset(vertical, 0, (size_t)tw * sizeof *vertical);
            for (Py_ssize_t a = 0; a < ky; a++) {
                uint64_t w = (uint64_t)(int64_t)rw[dy * ky + a];
                horizontal_row(pl->data + (Py_ssize_t)ri[dy * ky + a] * pl->s0, pl->wide, col_offset, cw, tw,
                               kx, s->horizontal);
                for (Py_ssize_t dx = 0; dx < tw; dx++)
                    vertical[dx] += w * (uint64_t)s->horizontal[dx];
            }
            for (Py_ssize_t dx = 0; dx < tw; dx++)
                dst[dy * tw + dx] = finish_value((int64_t)vertical[dx], max_value);
        }
    }
    return 0;
}

static inline uint8_t clamp_255(int64_t v) {
    v = v < 0 ? 0 : v;
    return (uint8_t)(v > 255 ? 255 : v);
}

static inline uint8_t clamp_255_i32(int32_t v) {
    v = v < 0 ? 0 : v;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* Three channel values -> 8-bit RGB (colour.py), for `tw` pixels. */
static __attribute__((noinline)) void values_to_rgb(const frame_job *job, const int32_t *restrict c0, const int32_t *restrict c1,
                          const int32_t *restrict c2, Py_ssize_t tw, uint8_t *restrict r, uint8_t *restrict g,
                          uint8_t *restrict b) {
    if (job->is_rgb) {
        int shift = job->bit_depth - 8; /* values are already clamped to the bit depth's maximum */
        for (Py_ssize_t dx = 0; dx < tw; dx++) {
            r[dx] = (uint8_t)(c0[dx] >> shift);
            g[dx] = (uint8_t)(c1[dx] >> shift);
            b[dx] = (uint8_t)(c2[dx] >> shift);
        }
        return;
    }
    if (job->narrow_math) {
        /* Every intermediate provably fits in int32 (checked in setup), so int32 gives the int64 result. */
        const int32_t k0 = (int32_t)job->coef[0], k1 = (int32_t)job->coef[1], k2 = (int32_t)job->coef[2],
                      k3 = (int32_t)job->coef[3], k4 = (int32_t)job->coef[4], k5 = (int32_t)job->coef[5],
                      k6 = (int32_t)job->coef[6], half = 1 << 15;
        for (Py_ssize_t dx = 0; dx < tw; dx++) {
            int32_t y = k2 * (c0[dx] - k0) + half, u = c1[dx] - k1, v = c2[dx] - k1;
            r[dx] = clamp_255_i32((y + k3 * v) >> 16);
            g[dx] = clamp_255_i32((y - k4 * u - k5 * v) >> 16);
            b[dx] = clamp_255_i32((y + k6 * u) >> 16);
        }
        return;
    }
    const int64_t *k = job->coef;
    const int64_t half = 1 << 15;
    for (Py_ssize_t dx = 0; dx < tw; dx++) {
        int64_t y = wrap_mul(k[2], wrap_sub(c0[dx], k[0]));
        int64_t u = wrap_sub(c1[dx], k[1]);
        int64_t v = wrap_sub(c2[dx], k[1]);
        r[dx] = clamp_255(wrap_add(wrap_add(y, wrap_mul(k[3], v)), half) >> 16);
        g[dx] = clamp_255(wrap_add(wrap_sub(wrap_sub(y, wrap_mul(k[4], u)), wrap_mul(k[5], v)), half) >> 16);
        b[dx] = clamp_255(wrap_add(wrap_add(y, wrap_mul(k[6], u)), half) >> 16);
    }
}

/* Whether YUV -> RGB can run in int32: bounds every partial sum over channel values in 0..max_value. */
static inline double max_double(double a, double b) { return a > b ? a : b; }

static int conversion_fits_int32(const int64_t *k, int32_t max_value) {
    /* In double: the bounds of extreme coefficients reach 2**64 (signed overflow in int64); every value that
     * decides the answer (below 2**31) is exact, and larger ones only need to stay larger. */
    const double y_span = max_double(fabs((double)k[0]), fabs((double)max_value - (double)k[0]));
    const double c_span = max_double(fabs((double)k[1]), fabs((double)max_value - (double)k[1]));
    const double y_term = fabs((double)k[2]) * y_span + (1 << 15);
    double worst = y_term + (fabs((double)k[4]) + fabs((double)k[5])) * c_span;
    worst = max_double(worst, y_term + fabs((double)k[3]) * c_span);
    worst = max_double(worst, y_term + fabs((double)k[6]) * c_span);
    return worst < INT32_MAX && y_span < INT32_MAX && c_span < INT32_MAX;
}

static char *image_origin(const frame_job *job, Py_ssize_t n, Py_ssize_t t) {
    return job->out + n * job->out_s[0] + t * (job->channels_first ? job->out_s[2] : job->out_s[1]);
}

static Py_ssize_t channel_stride(const frame_job *job) {
    return job->channels_first ? job->out_s[1] : job->out_s[2];
}

/* Table lookup of one tile row of one channel into the output. */
static void write_row(const frame_job *job, int channel, const uint8_t *rgb, Py_ssize_t tw, char *dst,
                      Py_ssize_t xs) {
    if (job->half) {
        const uint16_t *table = (const uint16_t *)job->table + channel * 256;
        if (xs == 2) {
            for (Py_ssize_t dx = 0; dx < tw; dx++)
                memcpy(dst + 2 * dx, &table[rgb[dx]], 2);
        } else {
            for (Py_ssize_t dx = 0; dx < tw; dx++)
                memcpy(dst + dx * xs, &table[rgb[dx]], 2);
        }
    } else {
        const float *table = (const float *)job->table + channel * 256;
        if (xs == 4) {
            for (Py_ssize_t dx = 0; dx < tw; dx++)
                memcpy(dst + 4 * dx, &table[rgb[dx]], 4);
        } else {
            for (Py_ssize_t dx = 0; dx < tw; dx++)
                memcpy(dst + dx * xs, &table[rgb[dx]], 4);
        }
    }
}

/* Colour through lookup tables, for bit depths up to LUT_MAX_BITS when the int32 arithmetic is exact
 * (narrow_math): each product of colour.py's formula becomes a table entry, and clamping plus normalisation
 * one more table indexed by the unclamped channel value. Same integers, same result, about a third of the
 * instructions of the multiply-and-clamp path. */
#define LUT_MAX_BITS 10
#define LUT_MAX_RANGE 8192

typedef struct {
    int32_t *term[5];     /* [max_value + 1]: cy*(Y-y0)+half, crv*(V-mid), cgu*(U-mid), cgv*(V-mid), cbu*(U-mid) */
    int32_t low[3];       /* smallest unclamped R, G, B */
    char *norm[3];        /* [high - low + 1] output elements: table[c][clamp(value, 0, 255)] */
    void *storage;
    /* The same tables folded for the hot loop (see colour_row_*): u and v terms interleaved, each channel's
     * position in the one norm array added (times 2**16) to a term, so a row needs few registers. */
    int packed;
    int32_t *tu, *tv;     /* [2 * (max_value + 1)]: (cgu*(U-mid) - off1 << 16, cbu*(U-mid) + off2 << 16), (crv.. + off0 << 16, cgv..) */
    /* The same folded terms as formulas, for the vector path: [y0, mid, cy, crv, cgu, cgv, cbu, half,
     * off0 << 16, off1 << 16, off2 << 16]; every product and sum of them fits int32 when `packed`. */
    int32_t folded[11];
    /* float32 output only: float32(fma(v, scale[c], shift[c])) reproduces table[c][v] for every v in 0..255
     * (checked entry by entry against the caller's table when the LUT is built), so the vector path can
     * compute the normalisation instead of gathering it. */
    int affine;
    double scale[3], shift[3];
    /* Cheaper still: float32 lanes compute fma(v, hi_a, hi_b) + fma(v, lo_a, lo_b), the first term exact
     * (hi_* on a coarse grid), and that (for float16 output: converted to float16) reproduces table[c][v] for
     * every v (checked). */
    int split;
    float hi_a[3], hi_b[3], lo_a[3], lo_b[3];
} colour_lut;

/* A float that is zero or normal: denormals would make the check depend on the FTZ/DAZ modes of the moment. */
static int plain_float(float f) { return f == 0.0f || (isfinite(f) && fabsf(f) >= FLT_MIN); }

/* float32 -> float16 bits, rounded to nearest even: the conversion the vector rows apply (x86: vcvtps2ph,
 * which needs F16C; aarch64: fcvtn, in the base architecture). */
#if HAVE_AVX2_PATH
/* cpuid rather than __builtin_cpu_supports("f16c"), which clang (14 at least) rejects at compile time. */
static int has_half_conversion(void) {
    unsigned int eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}
static __attribute__((target("f16c"))) uint16_t half_bits(float f) { return (uint16_t)_cvtss_sh(f, 0); }
#elif HAVE_NEON_PATH
static int has_half_conversion(void) { return 1; }
static uint16_t half_bits(float f) {
    return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
}
#else
static int has_half_conversion(void) { return 0; }
static uint16_t half_bits(float f) { (void)f; return 0; }
#endif

/* Fills lut->hi_* / lo_* for (v - mean[c]) / std[c]; returns 1 when the float32 sum (for float16 output: that
 * sum converted to float16, never a subnormal one, whose flushing could depend on the FTZ mode of the moment)
 * reproduces every entry of the caller's table bit for bit, else 0. */
static int build_split_affine(const frame_job *job, colour_lut *lut) {
    if (job->half && !has_half_conversion())
        return 0;
    for (int c = 0; c < 3; c++) {
        const double a = 1.0 / job->std[c], h = -job->mean[c] / job->std[c];
        if (!isfinite(a) || !isfinite(h))
            return 0;
        /* |v * a + h| over 0..255 peaks at an end; a grid 2**q with every hi value below 2**(q + 23) keeps
         * v * hi_a + hi_b within float32's 24 bits, so the first fma is exact. */
        double peak = fmax(fmax(fabs(h), fabs(255.0 * a + h)), fabs(a));
        int e = 0;
        if (peak > 0)
            (void)frexp(peak, &e);
        const int q = e - 23;
        const double ha = ldexp(nearbyint(ldexp(a, -q)), q), hb = ldexp(nearbyint(ldexp(h, -q)), q);
        lut->hi_a[c] = (float)ha;
        lut->hi_b[c] = (float)hb;
        lut->lo_a[c] = (float)(a - ha);
        lut->lo_b[c] = (float)(h - hb);
        if ((double)lut->hi_a[c] != ha || (double)lut->hi_b[c] != hb || !plain_float(lut->hi_a[c]) ||
            !plain_float(lut->hi_b[c]) || !plain_float(lut->lo_a[c]) || !plain_float(lut->lo_b[c]))
            return 0;
        for (int v = 0; v < 256; v++) {
            const float t1 = fmaf((float)v, lut->hi_a[c], lut->hi_b[c]), t2 = fmaf((float)v, lut->lo_a[c], lut->lo_b[c]);
            const float f = t1 + t2;
            if (!plain_float(t1) || !plain_float(t2) || !plain_float(f))
                return 0;
            if (job->half) {
                const uint16_t got = half_bits(f);
                uint16_t want;
                memcpy(&want, (const char *)job->table + (c * 256 + v) * 2, 2);
                if ((got & 0x7c00) == 0 && (got & 0x03ff) != 0) /* subnormal */
                    return 0;
                if (got != want)
                    return 0;
            } else {
                float want;
                memcpy(&want, (const char *)job->table + (c * 256 + v) * 4, 4);
                if (memcmp(&f, &want, 4) != 0)
                    return 0;
            }
        }
    }
    return 1;
}

static void free_colour_lut(colour_lut *lut);

static int32_t min_of(const int32_t *a, Py_ssize_t n, int want_max) {
    int32_t m = a[0];
    for (Py_ssize_t q = 1; q < n; q++)
        m = want_max ? (a[q] > m ? a[q] : m) : (a[q] < m ? a[q] : m);
    return m;
}

/* Builds the tables; returns 1 when the job can use them, 0 when not (range too large, wide samples), -1 on
 * allocation failure. */
static int build_colour_lut(const frame_job *job, colour_lut *lut) {
    memset(lut, 0, sizeof *lut);
    if (job->bit_depth > LUT_MAX_BITS || (!job->is_rgb && !job->narrow_math))
        return 0;
    const Py_ssize_t values = (Py_ssize_t)job->max_value + 1, item = job->half ? 2 : 4;
    int32_t low[3], high[3];
    int32_t *terms = malloc((size_t)(5 * values) * sizeof(int32_t));
    if (!terms)
        return -1;
    if (job->is_rgb) {
        for (int c = 0; c < 3; c++) {
            low[c] = 0; /* indexed by the sample itself; the entry holds table[c][sample >> (depth - 8)] */
            high[c] = job->max_value;
        }
    } else {
        const int64_t *k = job->coef;
        for (Py_ssize_t v = 0; v < values; v++) {
            terms[v] = (int32_t)(k[2] * (v - k[0]) + (1 << 15));
            terms[values + v] = (int32_t)(k[3] * (v - k[1]));
            terms[2 * values + v] = (int32_t)(k[4] * (v - k[1]));
            terms[3 * values + v] = (int32_t)(k[5] * (v - k[1]));
            terms[4 * values + v] = (int32_t)(k[6] * (v - k[1]));
        }
        int32_t mn[5], mx[5];
        for (int t = 0; t < 5; t++) {
            mn[t] = min_of(terms + t * values, values, 0);
            mx[t] = min_of(terms + t * values, values, 1);
        }
        /* Floor shifts are monotonic, so the extremes of each sum bound the channel's values. */
        low[0] = (mn[0] + mn[1]) >> 16, high[0] = (mx[0] + mx[1]) >> 16;
        low[1] = (mn[0] - mx[2] - mx[3]) >> 16, high[1] = (mx[0] - mn[2] - mn[3]) >> 16;
        low[2] = (mn[0] + mn[4]) >> 16, high[2] = (mx[0] + mx[4]) >> 16;
    }
    Py_ssize_t total = 0;
    for (int c = 0; c < 3; c++) {
        if ((int64_t)high[c] - low[c] + 1 > LUT_MAX_RANGE) {
            free(terms);
            return 0;
        }
        total += (Py_ssize_t)(high[c] - low[c] + 1);
    }
    char *norm = malloc((size_t)(total * item) + GATHER_PAD);
    if (!norm) {
        free(terms);
        return -1;
    }
    char *at = norm;
    for (int c = 0; c < 3; c++) {
        lut->low[c] = low[c];
        lut->norm[c] = at;
        for (int32_t v = low[c]; v <= high[c]; v++, at += item) {
            int32_t clamped = job->is_rgb ? (v >> (job->bit_depth - 8)) : (v < 0 ? 0 : (v > 255 ? 255 : v));
            const char *entry = (const char *)job->table + (c * 256 + clamped) * item;
            if (item == 4) /* constant sizes: a variable one becomes a slow `rep movsb` per entry */
                memcpy(at, entry, 4);
            else
                memcpy(at, entry, 2);
        }
    }
    for (int t = 0; t < 5; t++)
        lut->term[t] = terms + t * values;
    lut->storage = terms;
    lut->low[0] = low[0], lut->low[1] = low[1], lut->low[2] = low[2];
    /* norm is freed through norm[0] */
    if (!job->is_rgb) {
        /* Adding off << 16 inside a floor shift adds off outside it, so folding each channel's offset into one
         * term indexes the three norm blocks as one array; allowed only where every partial sum stays int32. */
        int64_t off[3], start = 0;
        for (int c = 0; c < 3; c++) {
            off[c] = start - low[c];
            start += (int64_t)high[c] - low[c] + 1;
        }
        int64_t mn[5], mx[5];
        for (int t = 0; t < 5; t++) {
            mn[t] = min_of(terms + t * values, values, 0);
            mx[t] = min_of(terms + t * values, values, 1);
        }
        int64_t bound = 0, limit = INT32_MAX / 2;
        int64_t extremes[] = {mn[0], mx[0], mn[1] + (off[0] << 16), mx[1] + (off[0] << 16), mn[2] - (off[1] << 16),
                              mx[2] - (off[1] << 16), mn[3], mx[3], mn[4] + (off[2] << 16), mx[4] + (off[2] << 16)};
        for (unsigned e = 0; e < sizeof extremes / sizeof extremes[0]; e++)
            bound = llabs(extremes[e]) > bound ? llabs(extremes[e]) : bound;
        if (3 * bound < limit) {
            int32_t *packed = malloc((size_t)(4 * values) * sizeof(int32_t));
            if (!packed) {
                free_colour_lut(lut);
                return -1;
            }
            lut->tu = packed;
            lut->tv = packed + 2 * values;
            for (Py_ssize_t v = 0; v < values; v++) {
                lut->tu[2 * v] = (int32_t)(terms[2 * values + v] - (off[1] << 16));
                lut->tu[2 * v + 1] = (int32_t)(terms[4 * values + v] + (off[2] << 16));
                lut->tv[2 * v] = (int32_t)(terms[values + v] + (off[0] << 16));
                lut->tv[2 * v + 1] = terms[3 * values + v];
            }
            lut->packed = 1;
            for (int c = 0; c < 7; c++)
                lut->folded[c] = (int32_t)job->coef[c];
            lut->folded[7] = 1 << 15;
            for (int c = 0; c < 3; c++)
                lut->folded[8 + c] = (int32_t)(off[c] << 16);
            if (job->has_affine && !job->half) {
                lut->affine = 1;
                for (int c = 0; c < 3 && lut->affine; c++) {
                    lut->scale[c] = 1.0 / job->std[c];
                    lut->shift[c] = -job->mean[c] / job->std[c];
                    for (int v = 0; v < 256 && lut->affine; v++) {
                        float f = (float)__builtin_fma((double)v, lut->scale[c], lut->shift[c]), want;
                        memcpy(&want, (const char *)job->table + (c * 256 + v) * 4, 4);
                        lut->affine = memcmp(&f, &want, 4) == 0;
                    }
                }
            }
            if (job->has_affine)
                lut->split = build_split_affine(job, lut);
        }
    }
    return 1;
}

static void free_colour_lut(colour_lut *lut) {
    free(lut->storage);
    free(lut->norm[0]);
    free(lut->tu);
}

/* One tile row through the lookup tables straight into the output (three channels). */
static void write_row_lut(const frame_job *job, const colour_lut *lut, const int32_t *restrict c0,
                          const int32_t *restrict c1, const int32_t *restrict c2, Py_ssize_t tw, char *d0, char *d1,
                          char *d2, Py_ssize_t xs) {
    const Py_ssize_t item = job->half ? 2 : 4;
    const char *n0 = lut->norm[0] - (Py_ssize_t)lut->low[0] * item, *n1 = lut->norm[1] - (Py_ssize_t)lut->low[1] * item,
               *n2 = lut->norm[2] - (Py_ssize_t)lut->low[2] * item;
    if (job->is_rgb) {
        for (Py_ssize_t dx = 0; dx < tw; dx++) {
            memcpy(d0 + dx * xs, n0 + c0[dx] * item, (size_t)item);
            memcpy(d1 + dx * xs, n1 + c1[dx] * item, (size_t)item);
            memcpy(d2 + dx * xs, n2 + c2[dx] * item, (size_t)item);
        }
        return;
    }
    const int32_t *ty = lut->term[0], *trv = lut->term[1], *tgu = lut->term[2], *tgv = lut->term[3],
                  *tbu = lut->term[4];
    if (item == 4 && xs == 4) {
        float *f0 = (float *)d0, *f1 = (float *)d1, *f2 = (float *)d2;
        const float *m0 = (const float *)n0, *m1 = (const float *)n1, *m2 = (const float *)n2;
        for (Py_ssize_t dx = 0; dx < tw; dx++) {
            const int32_t y = ty[c0[dx]], u = c1[dx], v = c2[dx];
            f0[dx] = m0[(y + trv[v]) >> 16];
            f1[dx] = m1[(y - tgu[u] - tgv[v]) >> 16];
            f2[dx] = m2[(y + tbu[u]) >> 16];
        }
    } else if (item == 2 && xs == 2) {
        uint16_t *h0 = (uint16_t *)d0, *h1 = (uint16_t *)d1, *h2 = (uint16_t *)d2;
        const uint16_t *m0 = (const uint16_t *)n0, *m1 = (const uint16_t *)n1, *m2 = (const uint16_t *)n2;
        for (Py_ssize_t dx = 0; dx < tw; dx++) {
            const int32_t y = ty[c0[dx]], u = c1[dx], v = c2[dx];
            h0[dx] = m0[(y + trv[v]) >> 16];
            h1[dx] = m1[(y - tgu[u] - tgv[v]) >> 16];
            h2[dx] = m2[(y + tbu[u]) >> 16];
        }
    } else {
        for (Py_ssize_t dx = 0; dx < tw; dx++) {
            const int32_t y = ty[c0[dx]], u = c1[dx], v = c2[dx];
            memcpy(d0 + dx * xs, n0 + ((y + trv[v]) >> 16) * item, (size_t)item);
            memcpy(d1 + dx * xs, n1 + ((y - tgu[u] - tgv[v]) >> 16) * item, (size_t)item);
            memcpy(d2 + dx * xs, n2 + ((y + tbu[u]) >> 16) * item, (size_t)item);
        }
    }
}

/* The hot loop of fused_identity_tile (planar luma, chroma planes sharing one column pattern and staged
 * `v_offset` bytes apart), one per output type. Few enough pointers to stay in registers: the packed tables
 * (colour_lut.tu / tv) and one norm array, the three output rows `plane` elements apart. */
#define COLOUR_ROW(NAME, T)                                                                                       \
    static void NAME(const colour_lut *lut, const T *restrict norm, const uint8_t *restrict luma,                 \
                     const uint8_t *restrict chroma, Py_ssize_t v_offset, const int32_t *restrict column,         \
                     Py_ssize_t tw, T *restrict out, Py_ssize_t plane) {                                          \
        const int32_t *restrict ty = lut->term[0], *restrict tu = lut->tu, *restrict tv = lut->tv;                \
        for (Py_ssize_t dx = 0; dx < tw; dx++) {                                                                  \
            const int32_t y = ty[luma[dx]];                                                                       \
            const uint8_t *at = chroma + column[dx];                                                              \
            const int32_t *u = tu + 2 * (Py_ssize_t)at[0], *v = tv + 2 * (Py_ssize_t)at[v_offset];               \
            out[dx] = norm[(y + v[0]) >> 16];                                                                     \
            out[dx + plane] = norm[(y - u[0] - v[1]) >> 16];                                                      \
            out[dx + 2 * plane] = norm[(y + u[1]) >> 16];                                                         \
        }                                                                                                         \
    }
COLOUR_ROW(colour_row_f32, float)
COLOUR_ROW(colour_row_f16, uint16_t)

#if HAVE_AVX2_PATH
/* colour_row_* for 8 pixels at a time: the luma run loaded, the two chroma samples gathered (32-bit words at
 * byte positions, low byte kept), the folded terms computed in int32 lanes (the scalar tables hold these very
 * products, and `packed` guarantees no lane overflows), then the three norm entries gathered. */
static inline __attribute__((target("avx2"))) void colour_indices_avx2(const colour_lut *lut,
                                                                    const uint8_t *luma, const uint8_t *chroma,
                                                                    Py_ssize_t v_offset, const int32_t *column,
                                                                    const uint8_t *shuffle, __m256i *i0,
                                                                    __m256i *i1, __m256i *i2) {
    const int32_t *k = lut->folded;
    const __m256i low_byte = _mm256_set1_epi32(0xff);
    __m256i y = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)luma));
    __m256i u, v;
    if (shuffle) {
        /* The 8 chroma columns lie within 16 bytes of the first (subsampled chroma): one load and a byte
         * shuffle per plane instead of a gather. */
        const __m128i pick = _mm_loadl_epi64((const __m128i *)shuffle);
        const uint8_t *at = chroma + column[0];
        u = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)at), pick));
        v = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(at + v_offset)), pick));
    } else {
        const __m256i col = _mm256_loadu_si256((const __m256i *)column);
        u = _mm256_and_si256(_mm256_i32gather_epi32((const int *)chroma, col, 1), low_byte);
        v = _mm256_and_si256(_mm256_i32gather_epi32((const int *)(chroma + v_offset), col, 1), low_byte);
    }
    y = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_sub_epi32(y, _mm256_set1_epi32(k[0])), _mm256_set1_epi32(k[2])),
                         _mm256_set1_epi32(k[7]));
    u = _mm256_sub_epi32(u, _mm256_set1_epi32(k[1]));
    v = _mm256_sub_epi32(v, _mm256_set1_epi32(k[1]));
    __m256i r = _mm256_add_epi32(_mm256_mullo_epi32(v, _mm256_set1_epi32(k[3])), _mm256_set1_epi32(k[8]));
    __m256i g = _mm256_add_epi32(_mm256_mullo_epi32(u, _mm256_set1_epi32(k[4])), _mm256_set1_epi32(-k[9]));
    g = _mm256_add_epi32(g, _mm256_mullo_epi32(v, _mm256_set1_epi32(k[5])));
    __m256i b = _mm256_add_epi32(_mm256_mullo_epi32(u, _mm256_set1_epi32(k[6])), _mm256_set1_epi32(k[10]));
    *i0 = _mm256_srai_epi32(_mm256_add_epi32(y, r), 16);
    *i1 = _mm256_srai_epi32(_mm256_sub_epi32(y, g), 16);
    *i2 = _mm256_srai_epi32(_mm256_add_epi32(y, b), 16);
}

/* Channel values (int32 lanes, unclamped) -> float32(fma(clamp(v, 0, 255), scale, shift)). */
static inline __attribute__((target("avx2,fma"))) __m256 affine_avx2(__m256i value, __m256d scale, __m256d shift) {
    value = _mm256_min_epi32(_mm256_max_epi32(value, _mm256_setzero_si256()), _mm256_set1_epi32(255));
    __m128 lo = _mm256_cvtpd_ps(_mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(value)), scale, shift));
    __m128 hi = _mm256_cvtpd_ps(_mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(value, 1)), scale, shift));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

static __attribute__((target("avx2,fma"))) Py_ssize_t colour_row_affine_avx2(const colour_lut *lut,
                                                                        const uint8_t *luma, const uint8_t *chroma,
                                                                        Py_ssize_t v_offset, const int32_t *column,
                                                                        const uint8_t *shuffle, Py_ssize_t tw,
                                                                        float *out, Py_ssize_t plane) {
    const __m256d s0 = _mm256_set1_pd(lut->scale[0]), s1 = _mm256_set1_pd(lut->scale[1]),
                  s2 = _mm256_set1_pd(lut->scale[2]), h0 = _mm256_set1_pd(lut->shift[0]),
                  h1 = _mm256_set1_pd(lut->shift[1]), h2 = _mm256_set1_pd(lut->shift[2]);
    /* The folded indices carry each channel's block offset (folded[8 + c] = off[c] << 16): take it back. */
    const __m256i o0 = _mm256_set1_epi32(lut->folded[8] >> 16), o1 = _mm256_set1_epi32(lut->folded[9] >> 16),
                  o2 = _mm256_set1_epi32(lut->folded[10] >> 16);
    Py_ssize_t dx = 0;
    for (; dx + 8 <= tw; dx += 8) {
        __m256i i0, i1, i2;
        colour_indices_avx2(lut, luma + dx, chroma, v_offset, column + dx, shuffle ? shuffle + dx : NULL, &i0,
                            &i1, &i2);
        _mm256_storeu_ps(out + dx, affine_avx2(_mm256_sub_epi32(i0, o0), s0, h0));
        _mm256_storeu_ps(out + dx + plane, affine_avx2(_mm256_sub_epi32(i1, o1), s1, h1));
        _mm256_storeu_ps(out + dx + 2 * plane, affine_avx2(_mm256_sub_epi32(i2, o2), s2, h2));
    }
    return dx;
}

static __attribute__((target("avx2"))) Py_ssize_t colour_row_f32_avx2(const colour_lut *lut, const float *norm,
                                                                      const uint8_t *luma, const uint8_t *chroma,
                                                                      Py_ssize_t v_offset, const int32_t *column,
                                                                      const uint8_t *shuffle, Py_ssize_t tw,
                                                                      float *out, Py_ssize_t plane) {
    Py_ssize_t dx = 0;
    for (; dx + 8 <= tw; dx += 8) {
        __m256i i0, i1, i2;
        colour_indices_avx2(lut, luma + dx, chroma, v_offset, column + dx, shuffle ? shuffle + dx : NULL, &i0,
                            &i1, &i2);
        _mm256_storeu_ps(out + dx, _mm256_i32gather_ps(norm, i0, 4));
        _mm256_storeu_ps(out + dx + plane, _mm256_i32gather_ps(norm, i1, 4));
        _mm256_storeu_ps(out + dx + 2 * plane, _mm256_i32gather_ps(norm, i2, 4));
    }
    return dx;
}

static inline __attribute__((target("avx2"))) __m128i gather_half_avx2(const uint16_t *norm, __m256i index) {
    __m256i words = _mm256_and_si256(_mm256_i32gather_epi32((const int *)norm, index, 2), _mm256_set1_epi32(0xffff));
    return _mm_packus_epi32(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
}

static __attribute__((target("avx2"))) Py_ssize_t colour_row_f16_avx2(const colour_lut *lut, const uint16_t *norm,
                                                                      const uint8_t *luma, const uint8_t *chroma,
                                                                      Py_ssize_t v_offset, const int32_t *column,
                                                                      const uint8_t *shuffle, Py_ssize_t tw,
                                                                      uint16_t *out, Py_ssize_t plane) {
    Py_ssize_t dx = 0;
    for (; dx + 8 <= tw; dx += 8) {
        __m256i i0, i1, i2;
        colour_indices_avx2(lut, luma + dx, chroma, v_offset, column + dx, shuffle ? shuffle + dx : NULL, &i0,
                            &i1, &i2);
        _mm_storeu_si128((__m128i *)(out + dx), gather_half_avx2(norm, i0));
        _mm_storeu_si128((__m128i *)(out + dx + plane), gather_half_avx2(norm, i1));
        _mm_storeu_si128((__m128i *)(out + dx + 2 * plane), gather_half_avx2(norm, i2));
    }
    return dx;
}

#endif

/* Reductions over a plan's int32 tap arrays, run on every call (a 7x7 fragment plan holds some 6,000 values
 * per group): AVX2 or NEON where the processor has it, the plain loops otherwise; all give the same answers. */
#if HAVE_AVX2_PATH
static __attribute__((target("avx2"))) int32_t differs_avx2(const int32_t *a, Py_ssize_t n, int32_t value) {
    const __m256i want = _mm256_set1_epi32(value);
    __m256i acc = _mm256_setzero_si256();
    Py_ssize_t q = 0;
    for (; q + 8 <= n; q += 8)
        acc = _mm256_or_si256(acc, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + q)), want));
    int32_t other = (int32_t)!_mm256_testz_si256(acc, acc);
    for (; q < n; q++)
        other |= a[q] ^ value;
    return other;
}

static __attribute__((target("avx2"))) void range_avx2(const int32_t *a, Py_ssize_t n, int32_t *lowest,
                                                        int32_t *highest) {
    __m256i lo = _mm256_set1_epi32(INT32_MAX), hi = _mm256_set1_epi32(INT32_MIN);
    Py_ssize_t q = 0;
    for (; q + 8 <= n; q += 8) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(a + q));
        lo = _mm256_min_epi32(lo, v);
        hi = _mm256_max_epi32(hi, v);
    }
    int32_t l[8], h[8];
    _mm256_storeu_si256((__m256i *)l, lo);
    _mm256_storeu_si256((__m256i *)h, hi);
    for (int e = 1; e < 8; e++) {
        l[0] = l[e] < l[0] ? l[e] : l[0];
        h[0] = h[e] > h[0] ? h[e] : h[0];
    }
    for (; q < n; q++) {
        l[0] = a[q] < l[0] ? a[q] : l[0];
        h[0] = a[q] > h[0] ? a[q] : h[0];
    }
    *lowest = l[0];
    *highest = h[0];
}
#endif

#if HAVE_NEON_PATH
static int32_t differs_neon(const int32_t *a, Py_ssize_t n, int32_t value) {
    const int32x4_t want = vdupq_n_s32(value);
    uint32x4_t acc = vdupq_n_u32(0);
    Py_ssize_t q = 0;
    for (; q + 4 <= n; q += 4)
        acc = vorrq_u32(acc, vreinterpretq_u32_s32(veorq_s32(vld1q_s32(a + q), want)));
    int32_t other = vmaxvq_u32(acc) != 0;
    for (; q < n; q++)
        other |= a[q] ^ value;
    return other;
}

static void range_neon(const int32_t *a, Py_ssize_t n, int32_t *lowest, int32_t *highest) {
    int32x4_t lo = vdupq_n_s32(INT32_MAX), hi = vdupq_n_s32(INT32_MIN);
    Py_ssize_t q = 0;
    for (; q + 4 <= n; q += 4) {
        const int32x4_t v = vld1q_s32(a + q);
        lo = vminq_s32(lo, v);
        hi = vmaxq_s32(hi, v);
    }
    int32_t l = vminvq_s32(lo), h = vmaxvq_s32(hi);
    for (; q < n; q++) {
        l = a[q] < l ? a[q] : l;
        h = a[q] > h ? a[q] : h;
    }
    *lowest = l;
    *highest = h;
}
#endif

#if HAVE_VECTOR_PATH /* only the direct path (vector rows) asks */
/* Nonzero when some a[q] != value. */
static int32_t int32_differs(const int32_t *a, Py_ssize_t n, int32_t value) {
#if HAVE_AVX2_PATH
    if (rows_in_use() != ROWS_SCALAR)
        return differs_avx2(a, n, value);
#else
    if (rows_in_use() != ROWS_SCALAR)
        return differs_neon(a, n, value);
#endif
    int32_t other = 0;
    for (Py_ssize_t q = 0; q < n; q++)
        other |= a[q] ^ value;
    return other;
}
#endif

/* The smallest and largest of a[0..n) (INT32_MAX and INT32_MIN when n is 0). */
static void int32_range(const int32_t *a, Py_ssize_t n, int32_t *lowest, int32_t *highest) {
#if HAVE_AVX2_PATH
    if (rows_in_use() != ROWS_SCALAR) {
        range_avx2(a, n, lowest, highest);
        return;
    }
#elif HAVE_NEON_PATH
    if (rows_in_use() != ROWS_SCALAR) {
        range_neon(a, n, lowest, highest);
        return;
    }
#endif
    int32_t l = INT32_MAX, h = INT32_MIN;
    for (Py_ssize_t q = 0; q < n; q++) {
        l = a[q] < l ? a[q] : l;
        h = a[q] > h ? a[q] : h;
    }
    *lowest = l;
    *highest = h;
}

/* memcpy for the short runs of staging (a few dozen bytes): overlapping fixed-size moves, where the compiler
 * would otherwise inline `rep movs`, whose start-up cost dominates such copies on some processors. */
static inline void copy_short(char *restrict dst, const char *restrict src, size_t n) {
    if (n >= 16) {
        size_t q = 0;
        for (; q + 16 <= n; q += 16)
            memcpy(dst + q, src + q, 16);
        if (q < n)
            memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        for (size_t q = 0; q < n; q++)
            dst[q] = src[q];
    }
}

/* The common case in one pass: 8-bit planes, one tap of weight one per axis (fragments of a frame at least
 * as large as the view), colour through the lookup tables. Each tile's source runs are staged (see
 * apply_taps_tile), then every output pixel is read, converted and written without intermediate arrays.
 * Returns 1 when it handled the tile, 0 when the tile needs the general path. */
static int fused_identity_tile(const frame_job *job, const colour_lut *lut, Py_ssize_t g, Py_ssize_t i,
                               Py_ssize_t j, char *tile, scratch_space *s) {
    const Py_ssize_t th = job->tile_h, tw = job->tile_w;
    const uint8_t *stage[3];
    Py_ssize_t span[3];
    int32_t *rel = s->rel; /* [3][tile_w]: column of each output pixel inside the staged rows */
    for (int p = 0; p < 3; p++) {
        const plane_desc *pl = &job->planes[p];
        const taps_desc *rt = &job->rows[job->plane_taps[p]], *ct = &job->cols[job->plane_taps[p]];
        if (pl->wide || rt->k != 1 || ct->k != 1)
            return 0;
        const Py_ssize_t ro = taps_offset(rt, g, i, j), co = taps_offset(ct, g, i, j);
        const int32_t *rw = rt->weight + ro, *cw = ct->weight + co, *ci = ct->index + co;
        for (Py_ssize_t q = 0; q < th; q++)
            if (rw[q] != WEIGHT_ONE)
                return 0;
        Py_ssize_t lo = (Py_ssize_t)ci[0] * pl->s1, hi = lo;
        for (Py_ssize_t q = 0; q < tw; q++) {
            if (cw[q] != WEIGHT_ONE)
                return 0;
            Py_ssize_t off = (Py_ssize_t)ci[q] * pl->s1;
            lo = off < lo ? off : lo;
            hi = off > hi ? off : hi;
        }
        span[p] = hi - lo + 1;
        if (span[p] > STAGE_MAX_SPAN)
            return 0;
        for (Py_ssize_t q = 0; q < tw; q++)
            rel[p * tw + q] = (int32_t)((Py_ssize_t)ci[q] * pl->s1 - lo);
        const int32_t *ri = rt->index + ro;
        char *buffer = s->stage + p * th * STAGE_MAX_SPAN;
        for (Py_ssize_t dy = 0; dy < th; dy++)
            copy_short(buffer + dy * span[p], pl->data + (Py_ssize_t)ri[dy] * pl->s0 + lo, (size_t)span[p]);
        stage[p] = (const uint8_t *)buffer;
    }
    const Py_ssize_t cs = channel_stride(job), ys = job->out_s[3], xs = job->out_s[4];
    const Py_ssize_t item = job->half ? 2 : 4;
    const char *n0 = lut->norm[0] - (Py_ssize_t)lut->low[0] * item, *n1 = lut->norm[1] - (Py_ssize_t)lut->low[1] * item,
               *n2 = lut->norm[2] - (Py_ssize_t)lut->low[2] * item;
    const int32_t *r0 = rel, *r1 = rel + tw, *r2 = rel + 2 * tw;
    /* Planar luma reads a contiguous run; both chroma planes usually share their column pattern. */
    int luma_run = 1, shared_chroma = job->planes[1].s1 == job->planes[2].s1;
    for (Py_ssize_t q = 0; q < tw; q++)
        luma_run &= r0[q] == q;
    const int fast_rows = lut->packed && luma_run && shared_chroma && span[1] == span[2] && xs == item &&
                          cs % item == 0;
#if HAVE_AVX2_PATH
    const int vector = fast_rows && rows_in_use() != ROWS_SCALAR;
    /* Byte shuffles picking each 8-pixel block's chroma out of the 16 bytes from its first column, when
     * every block's columns fit (always for 4:2:0 and 4:2:2 fragments). */
    uint8_t *shuffle = NULL;
    if (vector) {
        shuffle = s->shuffle;
        for (Py_ssize_t q = 0; shuffle && q + 8 <= tw; q += 8) {
            for (Py_ssize_t e = 0; e < 8; e++) {
                int32_t d = r1[q + e] - r1[q];
                if (d < 0 || d > 15) {
                    shuffle = NULL;
                    break;
                }
                shuffle[q + e] = (uint8_t)d;
            }
        }
    }
#endif
    for (Py_ssize_t dy = 0; dy < th; dy++) {
        const uint8_t *restrict a = stage[0] + dy * span[0], *restrict b = stage[1] + dy * span[1],
                               *restrict c = stage[2] + dy * span[2];
        char *d0 = tile + dy * ys, *d1 = d0 + cs, *d2 = d0 + 2 * cs;
        if (job->is_rgb) {
            for (Py_ssize_t dx = 0; dx < tw; dx++) {
                memcpy(d0 + dx * xs, n0 + a[r0[dx]] * item, (size_t)item);
                memcpy(d1 + dx * xs, n1 + b[r1[dx]] * item, (size_t)item);
                memcpy(d2 + dx * xs, n2 + c[r2[dx]] * item, (size_t)item);
            }
            continue;
        }
        if (fast_rows && item == 4) {
            Py_ssize_t done = 0;
#if HAVE_AVX2_PATH
            if (vector && lut->affine && rows_in_use() == ROWS_AVX2_FMA)
                done = colour_row_affine_avx2(lut, a, b, c - b, r1, shuffle, tw, (float *)d0, cs / 4);
            else if (vector)
                done = colour_row_f32_avx2(lut, (const float *)lut->norm[0], a, b, c - b, r1, shuffle, tw, (float *)d0,
                                           cs / 4);
#endif
            colour_row_f32(lut, (const float *)lut->norm[0], a + done, b, c - b, r1 + done, tw - done,
                           (float *)d0 + done, cs / 4);
        } else if (fast_rows) {
            Py_ssize_t done = 0;
#if HAVE_AVX2_PATH
            if (vector)
                done = colour_row_f16_avx2(lut, (const uint16_t *)lut->norm[0], a, b, c - b, r1, shuffle, tw,
                                           (uint16_t *)d0, cs / 2);
#endif
            colour_row_f16(lut, (const uint16_t *)lut->norm[0], a + done, b, c - b, r1 + done, tw - done,
                           (uint16_t *)d0 + done, cs / 2);
        } else {
            const int32_t *ty = lut->term[0], *trv = lut->term[1], *tgu = lut->term[2], *tgv = lut->term[3],
                          *tbu = lut->term[4];
            for (Py_ssize_t dx = 0; dx < tw; dx++) {
                const int32_t y = ty[a[r0[dx]]], u = b[r1[dx]], v = c[r2[dx]];
                memcpy(d0 + dx * xs, n0 + ((y + trv[v]) >> 16) * item, (size_t)item);
                memcpy(d1 + dx * xs, n1 + ((y - tgu[u] - tgv[v]) >> 16) * item, (size_t)item);
                memcpy(d2 + dx * xs, n2 + ((y + tbu[u]) >> 16) * item, (size_t)item);
            }
        }
    }
    return 1;
}

#if HAVE_VECTOR_PATH
/* The direct path: fused_identity_tile's work for planar 8-bit luma and chroma whose 8-pixel blocks each fit
 * in 16 bytes (4:2:0, 4:2:2, 4:4:4, NV12), reading the frame's rows in place (no staging copies) and
 * computing 8 pixels a step with AVX2 (direct_row_avx2) or NEON (direct_row_neon).
 * - Memory is most of what a cache-cold frame costs; the output is written in raster order (see
 *   render_direct). Measured and left out, on the 2-core AMD EPYC (Zen 3) development VM: non-temporal
 *   stores (1.2 to 4 times slower than plain ones for this pattern, 64-byte aligned outputs included) and
 *   software prefetches of the source rows ahead (no gain over the hardware prefetchers).
 * - Normalisation, float32: the exact float32 form (colour_lut.split) where it holds, else the float64 fma
 *   form (colour_lut.affine), else a gather from the table; float16: the float32 form converted with F16C
 *   where that holds (checked the same way), else a gather.
 * The integer arithmetic is colour_indices_avx2's with the constants folded ahead (wrapping int32 sums, equal
 * to the exact ones because `packed` bounds the results), so the channel values are the scalar tables'. */
enum { NORM_GATHER, NORM_AFFINE, NORM_SPLIT };

typedef struct {
    int32_t cy, cr, cgu, cgv, cbu; /* multipliers of Y, V (red), U and V (green), U (blue) */
    int32_t base[3];               /* the constant of each channel's sum, before the shift by 16 */
    int norm, half;
} direct_consts;

/* Whether the direct path applies to every tile of group g (per-tile conditions are checked per tile). */
static int direct_possible(const frame_job *job, const colour_lut *lut, Py_ssize_t g) {
    /* the x86 rows are compiled for AVX2 with FMA and F16C: processors with AVX2 alone take the staged path */
    if (!lut || !lut->packed || job->is_rgb || !rows_fuse_multiply_add())
        return 0;
    const plane_desc *y = &job->planes[0], *u = &job->planes[1], *v = &job->planes[2];
    const Py_ssize_t item = job->half ? 2 : 4;
    if (y->wide || u->wide || v->wide || y->s1 != 1 || u->s1 <= 0 || u->s1 != v->s1 || u->cols != v->cols ||
        job->out_s[4] != item || channel_stride(job) % item != 0)
        return 0;
    const taps_desc *all[4] = {&job->rows[0], &job->cols[0], &job->rows[1], &job->cols[1]};
    for (int a = 0; a < 4; a++) {
        const taps_desc *t = all[a];
        if (t->k != 1)
            return 0;
        const Py_ssize_t count = t->gh * t->gw * t->len;
        if (int32_differs(t->weight + g * count, count, WEIGHT_ONE))
            return 0;
    }
    return 1;
}

static direct_consts make_direct_consts(const frame_job *job, const colour_lut *lut) {
    direct_consts d;
    const int32_t *k = lut->folded;
    d.half = job->half;
    d.norm = lut->split ? NORM_SPLIT : (lut->affine && !job->half) ? NORM_AFFINE : NORM_GATHER;
    /* Table lookups index one array holding the three channels (offsets folded in); the computed forms take
     * the channel values themselves. */
    const int64_t off0 = d.norm == NORM_GATHER ? k[8] : 0, off1 = d.norm == NORM_GATHER ? k[9] : 0,
                  off2 = d.norm == NORM_GATHER ? k[10] : 0;
    const int64_t y_base = (int64_t)k[7] - (int64_t)k[2] * k[0];
    d.cy = k[2];
    d.cr = k[3];
    d.cgu = (int32_t)(uint32_t)(-(int64_t)k[4]);
    d.cgv = (int32_t)(uint32_t)(-(int64_t)k[5]);
    d.cbu = k[6];
    d.base[0] = (int32_t)(uint32_t)(uint64_t)(y_base - (int64_t)k[3] * k[1] + off0);
    d.base[1] = (int32_t)(uint32_t)(uint64_t)(y_base + ((int64_t)k[4] + k[5]) * k[1] + off1);
    d.base[2] = (int32_t)(uint32_t)(uint64_t)(y_base - (int64_t)k[6] * k[1] + off2);
    return d;
}

/* The last tw % 8 pixels of a direct row, from dx on, through the scalar tables (their entries are the
 * computed values, checked). */
static inline void direct_row_tail(const colour_lut *lut, const direct_consts *d, const uint8_t *luma,
                                   const uint8_t *u_row, const uint8_t *v_row, const Py_ssize_t *column, Py_ssize_t dx,
                                   Py_ssize_t tw, char *out, Py_ssize_t plane_bytes) {
    const int32_t *ty = lut->term[0], *tu = lut->tu, *tv = lut->tv;
    for (; dx < tw; dx++) {
        const int32_t y = ty[luma[dx]];
        const int32_t *u = tu + 2 * (Py_ssize_t)u_row[column[dx]], *v = tv + 2 * (Py_ssize_t)v_row[column[dx]];
        const int32_t i0 = (y + v[0]) >> 16, i1 = (y - u[0] - v[1]) >> 16, i2 = (y + u[1]) >> 16;
        if (d->half) {
            const uint16_t *norm = (const uint16_t *)lut->norm[0];
            memcpy(out + 2 * dx, &norm[i0], 2);
            memcpy(out + plane_bytes + 2 * dx, &norm[i1], 2);
            memcpy(out + 2 * plane_bytes + 2 * dx, &norm[i2], 2);
        } else {
            const float *norm = (const float *)lut->norm[0];
            memcpy(out + 4 * dx, &norm[i0], 4);
            memcpy(out + plane_bytes + 4 * dx, &norm[i1], 4);
            memcpy(out + 2 * plane_bytes + 4 * dx, &norm[i2], 4);
        }
    }
}

#if HAVE_AVX2_PATH
/* Bytes of chroma from `at`: 16 of them in one load, or, where those would run past the row's last sample,
 * only the bytes up to it. */
static inline __attribute__((target("avx2"))) __m128i load_chroma_avx2(const uint8_t *at, Py_ssize_t room) {
    if (room >= 16)
        return _mm_loadu_si128((const __m128i *)at);
    uint8_t tail[16] = {0};
    memcpy(tail, at, (size_t)room);
    return _mm_loadu_si128((const __m128i *)tail);
}

static inline __attribute__((target("avx2,fma"))) __m256 split_avx2(__m256i value, __m256 ha, __m256 hb, __m256 la,
                                                                  __m256 lb) {
    value = _mm256_min_epi32(_mm256_max_epi32(value, _mm256_setzero_si256()), _mm256_set1_epi32(255));
    const __m256 f = _mm256_cvtepi32_ps(value);
    return _mm256_add_ps(_mm256_fmadd_ps(f, ha, hb), _mm256_fmadd_ps(f, la, lb));
}

/* One tile row: `luma` at the tile's first column, `u_row` / `v_row` at column 0 of their rows, `block` the
 * chroma byte offset of each 8-pixel block's first pixel and `pick` its shuffle, `column` every pixel's chroma
 * byte offset (for the tail), `room` the bytes from column 0 to the end of the chroma row's last sample. */
static inline __attribute__((always_inline, target("avx2,fma,f16c"))) void direct_row_avx2(
    const colour_lut *lut, const direct_consts *d, const uint8_t *luma, const uint8_t *u_row, const uint8_t *v_row,
    const Py_ssize_t *block, const uint8_t *pick, const Py_ssize_t *column, Py_ssize_t room, Py_ssize_t tw,
    char *out, Py_ssize_t plane_bytes) {
    const __m256i cy = _mm256_set1_epi32(d->cy), cr = _mm256_set1_epi32(d->cr), cgu = _mm256_set1_epi32(d->cgu),
                  cgv = _mm256_set1_epi32(d->cgv), cbu = _mm256_set1_epi32(d->cbu),
                  b0 = _mm256_set1_epi32(d->base[0]), b1 = _mm256_set1_epi32(d->base[1]),
                  b2 = _mm256_set1_epi32(d->base[2]);
    Py_ssize_t dx = 0;
    for (; dx + 8 <= tw; dx += 8) {
        const Py_ssize_t at = block[dx >> 3];
        const __m128i shuffle = _mm_loadl_epi64((const __m128i *)(pick + dx));
        const __m256i y = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(luma + dx))), cy);
        const __m256i u = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(load_chroma_avx2(u_row + at, room - at), shuffle));
        const __m256i v = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(load_chroma_avx2(v_row + at, room - at), shuffle));
        const __m256i red = _mm256_add_epi32(_mm256_add_epi32(y, b0), _mm256_mullo_epi32(v, cr));
        const __m256i green = _mm256_add_epi32(_mm256_add_epi32(y, b1), _mm256_add_epi32(_mm256_mullo_epi32(u, cgu),
                                                                                          _mm256_mullo_epi32(v, cgv)));
        const __m256i blue = _mm256_add_epi32(_mm256_add_epi32(y, b2), _mm256_mullo_epi32(u, cbu));
        const __m256i i0 = _mm256_srai_epi32(red, 16), i1 = _mm256_srai_epi32(green, 16),
                      i2 = _mm256_srai_epi32(blue, 16);
        if (d->half && d->norm == NORM_SPLIT) { /* float32 lanes, then float16 (F16C), checked per table */
            char *o = out + 2 * dx;
            _mm_storeu_si128((__m128i *)o, _mm256_cvtps_ph(split_avx2(i0, _mm256_set1_ps(lut->hi_a[0]),
                _mm256_set1_ps(lut->hi_b[0]), _mm256_set1_ps(lut->lo_a[0]), _mm256_set1_ps(lut->lo_b[0])), 0));
            _mm_storeu_si128((__m128i *)(o + plane_bytes), _mm256_cvtps_ph(split_avx2(i1,
                _mm256_set1_ps(lut->hi_a[1]), _mm256_set1_ps(lut->hi_b[1]), _mm256_set1_ps(lut->lo_a[1]),
                _mm256_set1_ps(lut->lo_b[1])), 0));
            _mm_storeu_si128((__m128i *)(o + 2 * plane_bytes), _mm256_cvtps_ph(split_avx2(i2,
                _mm256_set1_ps(lut->hi_a[2]), _mm256_set1_ps(lut->hi_b[2]), _mm256_set1_ps(lut->lo_a[2]),
                _mm256_set1_ps(lut->lo_b[2])), 0));
            continue;
        }
        if (d->half) {
            const uint16_t *norm = (const uint16_t *)lut->norm[0];
            uint16_t *o = (uint16_t *)out + dx;
            _mm_storeu_si128((__m128i *)o, gather_half_avx2(norm, i0));
            _mm_storeu_si128((__m128i *)((char *)o + plane_bytes), gather_half_avx2(norm, i1));
            _mm_storeu_si128((__m128i *)((char *)o + 2 * plane_bytes), gather_half_avx2(norm, i2));
            continue;
        }
        float *o = (float *)out + dx;
        __m256 f0, f1, f2;
        if (d->norm == NORM_SPLIT) {
            f0 = split_avx2(i0, _mm256_set1_ps(lut->hi_a[0]), _mm256_set1_ps(lut->hi_b[0]),
                            _mm256_set1_ps(lut->lo_a[0]), _mm256_set1_ps(lut->lo_b[0]));
            f1 = split_avx2(i1, _mm256_set1_ps(lut->hi_a[1]), _mm256_set1_ps(lut->hi_b[1]),
                            _mm256_set1_ps(lut->lo_a[1]), _mm256_set1_ps(lut->lo_b[1]));
            f2 = split_avx2(i2, _mm256_set1_ps(lut->hi_a[2]), _mm256_set1_ps(lut->hi_b[2]),
                            _mm256_set1_ps(lut->lo_a[2]), _mm256_set1_ps(lut->lo_b[2]));
        } else if (d->norm == NORM_AFFINE) {
            f0 = affine_avx2(i0, _mm256_set1_pd(lut->scale[0]), _mm256_set1_pd(lut->shift[0]));
            f1 = affine_avx2(i1, _mm256_set1_pd(lut->scale[1]), _mm256_set1_pd(lut->shift[1]));
            f2 = affine_avx2(i2, _mm256_set1_pd(lut->scale[2]), _mm256_set1_pd(lut->shift[2]));
        } else {
            const float *norm = (const float *)lut->norm[0];
            f0 = _mm256_i32gather_ps(norm, i0, 4);
            f1 = _mm256_i32gather_ps(norm, i1, 4);
            f2 = _mm256_i32gather_ps(norm, i2, 4);
        }
        _mm256_storeu_ps(o, f0);
        _mm256_storeu_ps((float *)((char *)o + plane_bytes), f1);
        _mm256_storeu_ps((float *)((char *)o + 2 * plane_bytes), f2);
    }
    direct_row_tail(lut, d, luma, u_row, v_row, column, dx, tw, out, plane_bytes);
}

#endif

#if HAVE_NEON_PATH
/* direct_row_avx2's work with NEON: the same int32 lane arithmetic (wrapping sums, so the order of the terms
 * does not matter), each 8-pixel block as two vectors of 4. vfmaq_f32 and vfmaq_f64 are fused like
 * _mm256_fmadd_ps / _pd and like the fmaf / fma that checked the computed forms against the table, and the
 * conversions round to nearest even, as the x86 ones do. NEON has no gather: table entries are read lane by
 * lane. */
static inline uint8x16_t load_chroma_neon(const uint8_t *at, Py_ssize_t room) {
    if (room >= 16)
        return vld1q_u8(at);
    uint8_t tail[16] = {0};
    memcpy(tail, at, (size_t)room);
    return vld1q_u8(tail);
}

/* 8 bytes -> 8 int32 lanes: half[0] the first 4 pixels, half[1] the last 4. */
static inline void widen_bytes_neon(uint8x8_t bytes, int32x4_t half[2]) {
    const uint16x8_t wide = vmovl_u8(bytes);
    half[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(wide)));
    half[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(wide)));
}

static inline int32x4_t clamp_255_neon(int32x4_t value) {
    return vminq_s32(vmaxq_s32(value, vdupq_n_s32(0)), vdupq_n_s32(255));
}

/* fma(v, hi_a, hi_b) + fma(v, lo_a, lo_b) in float32, v the clamped channel value (colour_lut.split). */
static inline float32x4_t split_neon(const colour_lut *lut, int c, int32x4_t value) {
    const float32x4_t f = vcvtq_f32_s32(clamp_255_neon(value));
    return vaddq_f32(vfmaq_f32(vdupq_n_f32(lut->hi_b[c]), f, vdupq_n_f32(lut->hi_a[c])),
                     vfmaq_f32(vdupq_n_f32(lut->lo_b[c]), f, vdupq_n_f32(lut->lo_a[c])));
}

/* float32(fma(v, scale, shift)) in float64 lanes (colour_lut.affine). */
static inline float32x4_t affine_neon(const colour_lut *lut, int c, int32x4_t value) {
    const int32x4_t v = clamp_255_neon(value);
    const float64x2_t scale = vdupq_n_f64(lut->scale[c]), shift = vdupq_n_f64(lut->shift[c]);
    const float64x2_t lo = vfmaq_f64(shift, vcvtq_f64_s64(vmovl_s32(vget_low_s32(v))), scale);
    const float64x2_t hi = vfmaq_f64(shift, vcvtq_f64_s64(vmovl_high_s32(v)), scale);
    return vcombine_f32(vcvt_f32_f64(lo), vcvt_f32_f64(hi));
}

/* 4 float32 entries of the one norm array (colour_lut.norm[0]) at the lanes' indices. */
static inline float32x4_t gather_float_neon(const float *norm, int32x4_t index) {
    float32x4_t f = vdupq_n_f32(0.0f);
    f = vld1q_lane_f32(norm + vgetq_lane_s32(index, 0), f, 0);
    f = vld1q_lane_f32(norm + vgetq_lane_s32(index, 1), f, 1);
    f = vld1q_lane_f32(norm + vgetq_lane_s32(index, 2), f, 2);
    return vld1q_lane_f32(norm + vgetq_lane_s32(index, 3), f, 3);
}

static inline void store_gathered_half_neon(const uint16_t *norm, const int32x4_t index[2], char *out) {
    uint16x8_t h = vdupq_n_u16(0);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[0], 0), h, 0);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[0], 1), h, 1);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[0], 2), h, 2);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[0], 3), h, 3);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[1], 0), h, 4);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[1], 1), h, 5);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[1], 2), h, 6);
    h = vld1q_lane_u16(norm + vgetq_lane_s32(index[1], 3), h, 7);
    vst1q_u16((uint16_t *)out, h);
}

/* One tile row; the arguments are direct_row_avx2's. */
static inline __attribute__((always_inline)) void direct_row_neon(
    const colour_lut *lut, const direct_consts *d, const uint8_t *luma, const uint8_t *u_row, const uint8_t *v_row,
    const Py_ssize_t *block, const uint8_t *pick, const Py_ssize_t *column, Py_ssize_t room, Py_ssize_t tw,
    char *out, Py_ssize_t plane_bytes) {
    const int32x4_t cy = vdupq_n_s32(d->cy), cr = vdupq_n_s32(d->cr), cgu = vdupq_n_s32(d->cgu),
                    cgv = vdupq_n_s32(d->cgv), cbu = vdupq_n_s32(d->cbu), b0 = vdupq_n_s32(d->base[0]),
                    b1 = vdupq_n_s32(d->base[1]), b2 = vdupq_n_s32(d->base[2]);
    Py_ssize_t dx = 0;
    for (; dx + 8 <= tw; dx += 8) {
        const Py_ssize_t at = block[dx >> 3];
        const uint8x8_t shuffle = vld1_u8(pick + dx);
        int32x4_t y[2], u[2], v[2], index[3][2];
        widen_bytes_neon(vld1_u8(luma + dx), y);
        widen_bytes_neon(vqtbl1_u8(load_chroma_neon(u_row + at, room - at), shuffle), u);
        widen_bytes_neon(vqtbl1_u8(load_chroma_neon(v_row + at, room - at), shuffle), v);
        for (int h = 0; h < 2; h++) {
            const int32x4_t luma_term = vmulq_s32(y[h], cy);
            index[0][h] = vshrq_n_s32(vmlaq_s32(vaddq_s32(luma_term, b0), v[h], cr), 16);
            index[1][h] = vshrq_n_s32(vmlaq_s32(vmlaq_s32(vaddq_s32(luma_term, b1), u[h], cgu), v[h], cgv), 16);
            index[2][h] = vshrq_n_s32(vmlaq_s32(vaddq_s32(luma_term, b2), u[h], cbu), 16);
        }
        for (int c = 0; c < 3; c++) {
            char *o = out + c * plane_bytes;
            if (d->half && d->norm == NORM_SPLIT) {
                const float16x4_t lo = vcvt_f16_f32(split_neon(lut, c, index[c][0]));
                const float16x4_t hi = vcvt_f16_f32(split_neon(lut, c, index[c][1]));
                vst1q_u16((uint16_t *)(o + 2 * dx), vcombine_u16(vreinterpret_u16_f16(lo), vreinterpret_u16_f16(hi)));
            } else if (d->half) {
                store_gathered_half_neon((const uint16_t *)lut->norm[0], index[c], o + 2 * dx);
            } else {
                for (int h = 0; h < 2; h++) {
                    const float32x4_t f = d->norm == NORM_SPLIT    ? split_neon(lut, c, index[c][h])
                                          : d->norm == NORM_AFFINE ? affine_neon(lut, c, index[c][h])
                                                                   : gather_float_neon((const float *)lut->norm[0],
                                                                                       index[c][h]);
                    vst1q_f32((float *)(o + 4 * dx) + 4 * h, f);
                }
            }
        }
    }
    direct_row_tail(lut, d, luma, u_row, v_row, column, dx, tw, out, plane_bytes);
}
#endif
/* Prepares tile (i, j); returns 0 when its columns do not fit the direct path. */
static int prepare_direct_tile(const frame_job *job, Py_ssize_t g, Py_ssize_t i, Py_ssize_t j, char *origin,
                               direct_tile *t) {
    const Py_ssize_t th = job->tile_h, tw = job->tile_w;
    const plane_desc *py = &job->planes[0], *pu = &job->planes[1];
    const taps_desc *ry = &job->rows[0], *cy = &job->cols[0], *rc = &job->rows[1], *cc = &job->cols[1];
    const int32_t *yc = cy->index + taps_offset(cy, g, i, j), *ccol = cc->index + taps_offset(cc, g, i, j);
    int32_t off_run = 0;
    for (Py_ssize_t q = 0; q < tw; q++)
        off_run |= yc[q] - yc[0] - (int32_t)q;
    if (off_run)
        return 0;
    for (Py_ssize_t q = 0; q < tw; q++)
        t->column[q] = (Py_ssize_t)ccol[q] * pu->s1;
    for (Py_ssize_t q = 0; q + 8 <= tw; q += 8) {
        t->block[q >> 3] = t->column[q];
        for (Py_ssize_t e = 0; e < 8; e++) {
            const Py_ssize_t rel = t->column[q + e] - t->column[q];
            if (rel < 0 || rel > 15)
                return 0;
            t->pick[q + e] = (uint8_t)rel;
        }
    }
    t->luma_rows = ry->index + taps_offset(ry, g, i, j);
    t->chroma_rows = rc->index + taps_offset(rc, g, i, j);
    t->luma = (const uint8_t *)py->data + yc[0];
    t->out = origin + i * th * job->out_s[3] + j * tw * job->out_s[4];
    return 1;
}

/* Reads one byte of every cache line the prepared tiles of a grid row will read: a loop of independent loads
 * keeps many cache misses in flight, where the pixel loop, dozens of instructions per load, keeps two or three
 * (its rows come from a frame mostly outside the core's caches). Measured during decoding on the development
 * VM: a third less time than without it, and twice the gain of the same addresses as software prefetches
 * issued at the same point (render_direct now uses it for the first grid row only; see
 * prefetch_tile_rows). */
static uint32_t touch_source_lines(const frame_job *job, const direct_tile *tiles, const char *done) {
    const plane_desc *py = &job->planes[0], *pu = &job->planes[1], *pv = &job->planes[2];
    const Py_ssize_t th = job->tile_h, tw = job->tile_w;
    uint32_t sum = 0;
    for (Py_ssize_t j = 0; j < job->grid_w; j++) {
        if (!done[j])
            continue;
        const direct_tile *t = &tiles[j];
        const Py_ssize_t first = t->column[0], span = t->column[tw - 1] - first;
        int32_t previous = -1;
        for (Py_ssize_t dy = 0; dy < th; dy++) {
            const uint8_t *y_row = t->luma + (Py_ssize_t)t->luma_rows[dy] * py->s0;
            for (Py_ssize_t x = 0; x < tw - 1; x += 64)
                sum += y_row[x];
            sum += y_row[tw - 1];
            if (t->chroma_rows[dy] == previous) /* subsampled rows: the same chroma row again */
                continue;
            previous = t->chroma_rows[dy];
            const uint8_t *u_row = (const uint8_t *)pu->data + (Py_ssize_t)previous * pu->s0 + first,
                          *v_row = (const uint8_t *)pv->data + (Py_ssize_t)previous * pv->s0 + first;
            for (Py_ssize_t x = 0; x < span; x += 64)
                sum += u_row[x] + v_row[x];
            sum += u_row[span] + v_row[span];
        }
    }
    return sum;
}

/* Asks for the source lines of output row dy of the prepared tiles of a grid row, without waiting for them:
 * issued while the grid row above it is computed, so the lines arrive during that work instead of stalling
 * the touch before it. A grid row ahead is about 15 us of work at 1080p, far enough for misses, near enough
 * that the lines (some 45 KB a grid row) are still in the core's L2 when used. Measured per call on the
 * development VM (alternating builds, float32 FAST-VQA fragments of 1080p): 5 to 20 % less time during
 * decoding and on stored frames, 6 us (8 %) more when the frame is already in the caches (the prefetch
 * instructions themselves); the sampling bench's own run-to-run spread there (about 20 %) hides the gain. */
static inline __attribute__((always_inline)) void prefetch_tile_rows(const frame_job *job, const direct_tile *tiles,
                                                                     const char *done, Py_ssize_t dy) {
    const plane_desc *py = &job->planes[0], *pu = &job->planes[1], *pv = &job->planes[2];
    const Py_ssize_t tw = job->tile_w;
    for (Py_ssize_t j = 0; j < job->grid_w; j++) {
        if (!done[j])
            continue;
        const direct_tile *t = &tiles[j];
        const char *y_row = (const char *)t->luma + (Py_ssize_t)t->luma_rows[dy] * py->s0;
        for (Py_ssize_t x = 0; x < tw - 1; x += 64)
            __builtin_prefetch(y_row + x);
        __builtin_prefetch(y_row + tw - 1);
        if (dy > 0 && t->chroma_rows[dy] == t->chroma_rows[dy - 1])
            continue;
        const Py_ssize_t first = t->column[0], span = t->column[tw - 1] - first;
        const char *u_row = pu->data + (Py_ssize_t)t->chroma_rows[dy] * pu->s0 + first,
                   *v_row = pv->data + (Py_ssize_t)t->chroma_rows[dy] * pv->s0 + first;
        for (Py_ssize_t x = 0; x < span; x += 64) {
            __builtin_prefetch(u_row + x);
            __builtin_prefetch(v_row + x);
        }
        __builtin_prefetch(u_row + span);
        __builtin_prefetch(v_row + span);
    }
}

/* Every tile of group g that fits the direct path, in raster order: output row by output row across the
 * grid row, so each channel's output is one sequential stream the hardware prefetchers follow (tile by tile,
 * the cold output cost 40 % more). The first grid row's source lines are touched up front; each later row's
 * are prefetched while the row before it is computed (two sets of prepared tiles). Marks the tiles it wrote
 * in s->done. */
#if HAVE_AVX2_PATH
#define DIRECT_ROWS_TARGET __attribute__((target("avx2,fma,f16c")))
#define direct_row direct_row_avx2
#else
#define DIRECT_ROWS_TARGET
#define direct_row direct_row_neon
#endif
static DIRECT_ROWS_TARGET void render_direct(const frame_job *job, const colour_lut *lut, Py_ssize_t g, char *origin,
                                             scratch_space *s) {
    const Py_ssize_t th = job->tile_h, tw = job->tile_w, gw = job->grid_w, gh = job->grid_h;
    const plane_desc *py = &job->planes[0], *pu = &job->planes[1], *pv = &job->planes[2];
    const Py_ssize_t room = (pu->cols - 1) * pu->s1 + 1, cs = channel_stride(job);
    const direct_consts d = make_direct_consts(job, lut);
    direct_tile *sets[2] = {s->tiles, s->tiles + gw};
    for (Py_ssize_t j = 0; j < 2 * gw; j++) {
        s->tiles[j].column = s->col_offset + j * tw;
        s->tiles[j].block = s->block + j * (tw / 8 + 1);
        s->tiles[j].pick = s->shuffle + j * (tw + 8);
    }
    Py_ssize_t ready_next = 0;
    for (Py_ssize_t j = 0; j < gw; j++) {
        s->done[j] = (char)prepare_direct_tile(job, g, 0, j, origin, &sets[0][j]);
        ready_next += s->done[j];
    }
    const uint32_t touched = touch_source_lines(job, sets[0], s->done);
    __asm__ volatile("" : : "r"(touched)); /* the loads are the point: keep them */
    for (Py_ssize_t i = 0; i < gh; i++) {
        const direct_tile *tiles = sets[i & 1];
        direct_tile *next = sets[(i + 1) & 1];
        const Py_ssize_t ready = ready_next;
        const int ahead = i + 1 < gh;
        ready_next = 0;
        for (Py_ssize_t j = 0; ahead && j < gw; j++) {
            s->done[(i + 1) * gw + j] = (char)prepare_direct_tile(job, g, i + 1, j, origin, &next[j]);
            ready_next += s->done[(i + 1) * gw + j];
        }
        for (Py_ssize_t dy = 0; ready && dy < th; dy++) {
            if (ready_next)
                prefetch_tile_rows(job, next, s->done + (i + 1) * gw, dy);
            for (Py_ssize_t j = 0; j < gw; j++) {
                if (!s->done[i * gw + j])
                    continue;
                const direct_tile *t = &tiles[j];
                const uint8_t *y_row = t->luma + (Py_ssize_t)t->luma_rows[dy] * py->s0;
                const uint8_t *u_row = (const uint8_t *)pu->data + (Py_ssize_t)t->chroma_rows[dy] * pu->s0;
                const uint8_t *v_row = (const uint8_t *)pv->data + (Py_ssize_t)t->chroma_rows[dy] * pv->s0;
                char *out = t->out + dy * job->out_s[3];
                direct_row(lut, &d, y_row, u_row, v_row, t->block, t->pick, t->column, room, tw, out, cs);
            }
        }
        if (!ready && ready_next) { /* nothing computed to hide the next row's lines behind: wait for them */
            const uint32_t waited = touch_source_lines(job, next, s->done + (i + 1) * gw);
            __asm__ volatile("" : : "r"(waited));
        }
    }
}
#endif

static int render_image(const frame_job *job, Py_ssize_t g, char *origin, scratch_space *s,
                        const colour_lut *lut) {
    const Py_ssize_t th = job->tile_h, tw = job->tile_w, area = th * tw;
    const Py_ssize_t cs = channel_stride(job), ys = job->out_s[3], xs = job->out_s[4];
    uint8_t *rgb = (uint8_t *)(s->values + 3 * area); /* 3 * area bytes after the values */
    int direct = 0;
#if HAVE_VECTOR_PATH
    direct = direct_possible(job, lut, g);
    if (direct)
        render_direct(job, lut, g, origin, s);
#endif
    for (Py_ssize_t i = 0; i < job->grid_h; i++) {
        for (Py_ssize_t j = 0; j < job->grid_w; j++) {
            if (direct && s->done[i * job->grid_w + j])
                continue;
            if (lut && fused_identity_tile(job, lut, g, i, j, origin + i * th * ys + j * tw * xs, s))
                continue;
            for (int p = 0; p < 3; p++) {
                const taps_desc *rt = &job->rows[job->plane_taps[p]], *ct = &job->cols[job->plane_taps[p]];
                Py_ssize_t ro = taps_offset(rt, g, i, j), co = taps_offset(ct, g, i, j);
                if (apply_taps_tile(&job->planes[p], rt->index + ro, rt->weight + ro, th, rt->k, ct->index + co,
                                    ct->weight + co, tw, ct->k, job->max_value, s->values + p * area, s))
                    return -1;
            }
            char *tile = origin + i * th * ys + j * tw * xs;
            if (lut) {
                for (Py_ssize_t dy = 0; dy < th; dy++)
                    write_row_lut(job, lut, s->values + dy * tw, s->values + area + dy * tw,
                                  s->values + 2 * area + dy * tw, tw, tile + dy * ys, tile + cs + dy * ys,
                                  tile + 2 * cs + dy * ys, xs);
                continue;
            }
            values_to_rgb(job, s->values, s->values + area, s->values + 2 * area, area, rgb, rgb + area,
                          rgb + 2 * area);
            for (int c = 0; c < 3; c++)
                for (Py_ssize_t dy = 0; dy < th; dy++)
                    write_row(job, c, rgb + c * area + dy * tw, tw, tile + c * cs + dy * ys, xs);
        }
    }
    return 0;
}

static void copy_image(const frame_job *job, const char *src, char *dst) {
    const Py_ssize_t height = job->grid_h * job->tile_h, width = job->grid_w * job->tile_w;
    const Py_ssize_t cs = channel_stride(job), ys = job->out_s[3], xs = job->out_s[4];
    const Py_ssize_t item = job->half ? 2 : 4;
    for (int c = 0; c < 3; c++) {
        for (Py_ssize_t y = 0; y < height; y++) {
            const char *s = src + c * cs + y * ys;
            char *d = dst + c * cs + y * ys;
            if (xs == item) {
                memcpy(d, s, (size_t)(width * item));
            } else {
                for (Py_ssize_t x = 0; x < width; x++)
                    memcpy(d + x * xs, s + x * xs, (size_t)item);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------ table cache */

/* Building the tables costs about as much as sampling a fifth of a FAST-VQA frame, and a video's frames all
 * ask for the same ones, so the last few are kept, keyed by everything build_colour_lut reads. Only touched
 * with the GIL held; an entry pushed out while a call still uses it is freed when that call gives it back. */
#define LUT_CACHE_SIZE 8

typedef struct {
    int is_rgb, bit_depth, half, has_affine;
    int64_t coef[7];
    double mean[3], std[3];
    unsigned char table[3 * 256 * 4];
} lut_key;

typedef struct {
    lut_key key;
    colour_lut lut;
    int usable; /* build_colour_lut said 1 */
    int evicted;
    Py_ssize_t users;
} lut_entry;

static lut_entry *lut_cache[LUT_CACHE_SIZE];

static void make_lut_key(const frame_job *job, lut_key *key) {
    memset(key, 0, sizeof *key); /* padding included: keys are compared with memcmp */
    key->is_rgb = job->is_rgb;
    key->bit_depth = job->bit_depth;
    key->half = job->half;
    key->has_affine = job->has_affine;
    memcpy(key->coef, job->coef, sizeof key->coef);
    if (job->has_affine) {
        memcpy(key->mean, job->mean, sizeof key->mean);
        memcpy(key->std, job->std, sizeof key->std);
    }
    memcpy(key->table, job->table, (size_t)(3 * 256 * (job->half ? 2 : 4)));
}

static void free_lut_entry(lut_entry *e) {
    if (e->usable)
        free_colour_lut(&e->lut);
    free(e);
}

/* The job's tables, found or built (GIL held), or NULL on allocation failure; `usable` says whether the job
 * can use them. Give the entry back with release_lut (GIL held). */
static lut_entry *acquire_lut(const frame_job *job) {
    lut_key key;
    make_lut_key(job, &key);
    for (int q = 0; q < LUT_CACHE_SIZE && lut_cache[q]; q++) {
        lut_entry *hit = lut_cache[q];
        if (memcmp(&hit->key, &key, sizeof key) == 0) {
            for (int r = q; r > 0; r--) /* most recently used first */
                lut_cache[r] = lut_cache[r - 1];
            lut_cache[0] = hit;
            hit->users++;
            return hit;
        }
    }
    lut_entry *e = malloc(sizeof *e);
    if (!e)
        return NULL;
    memcpy(&e->key, &key, sizeof key); /* padding included, for memcmp */
    int built = build_colour_lut(job, &e->lut);
    if (built < 0) {
        free(e);
        return NULL;
    }
    e->usable = built;
    e->evicted = 0;
    e->users = 1;
    lut_entry *last = lut_cache[LUT_CACHE_SIZE - 1];
    if (last) {
        last->evicted = 1;
        if (last->users == 0)
            free_lut_entry(last);
    }
    for (int r = LUT_CACHE_SIZE - 1; r > 0; r--)
        lut_cache[r] = lut_cache[r - 1];
    lut_cache[0] = e;
    return e;
}

static void release_lut(lut_entry *e) {
    if (--e->users == 0 && e->evicted)
        free_lut_entry(e);
}

/* The work, run without the GIL. Returns -1 on allocation failure. */
static int run_job(const frame_job *job, const colour_lut *lut) {
    const Py_ssize_t area = job->tile_h * job->tile_w;
    Py_ssize_t kmax = job->cols[0].k > job->cols[1].k ? job->cols[0].k : job->cols[1].k;
    scratch_space s = {0};
    int status = -1;
    s.values = malloc((size_t)(3 * area) * (sizeof(int32_t) + 1) + 16);
    /* the direct path keeps two grid rows of prepared tiles (the one computed, the one prefetched) */
    const Py_ssize_t columns = job->tile_w * (kmax > 2 * job->grid_w ? kmax : 2 * job->grid_w);
    s.col_offset = malloc((size_t)columns * sizeof(Py_ssize_t));
    s.vertical = malloc((size_t)job->tile_w * sizeof(uint64_t));
    s.stage = malloc((size_t)(3 * job->tile_h) * STAGE_MAX_SPAN + GATHER_PAD);
    s.rel = malloc((size_t)(3 * job->tile_w) * sizeof(int32_t));
    s.shuffle = malloc((size_t)(2 * job->grid_w * (job->tile_w + 8)));
    s.block = malloc((size_t)(2 * job->grid_w * (job->tile_w / 8 + 1)) * sizeof(Py_ssize_t));
    s.tiles = malloc((size_t)(2 * job->grid_w) * sizeof *s.tiles);
    s.done = malloc((size_t)(job->grid_h * job->grid_w));
    if (!s.values || !s.col_offset || !s.vertical || !s.stage || !s.rel || !s.shuffle || !s.block || !s.tiles ||
        !s.done)
        goto done;
    for (Py_ssize_t u = 0; u < job->num_uses; u++) {
        char *dst = image_origin(job, job->use_n[u], job->use_t[u]);
        Py_ssize_t from = job->use_copy_from[u];
        if (from >= 0) {
            copy_image(job, image_origin(job, job->use_n[from], job->use_t[from]), dst);
        } else if (render_image(job, job->use_g[u], dst, &s, lut)) {
            goto done;
        }
    }
    status = 0;
done:
    free(s.block);
    free(s.tiles);
    free(s.done);
    free(s.values);
    free(s.col_offset);
    free(s.vertical);
    free(s.horizontal);
    free(s.stage);
    free(s.rel);
    free(s.shuffle);
    return status;
}

/* ------------------------------------------------------------------------------------------ binding */

static const char *const TAP_NAMES[NUM_TAP_ARRAYS] = {
    "luma_rows.index", "luma_rows.weight", "luma_cols.index", "luma_cols.weight",
    "chroma_rows.index", "chroma_rows.weight", "chroma_cols.index", "chroma_cols.weight"};

static int describe_taps(const Py_buffer *index, const Py_buffer *weight, const char *name, taps_desc *t) {
    for (int d = 0; d < 5; d++) {
        if (index->shape[d] != weight->shape[d]) {
            PyErr_Format(kernel_error, "%s index and weight arrays differ in shape", name);
            return -1;
        }
    }
    t->index = index->buf;
    t->weight = weight->buf;
    t->groups = index->shape[0];
    t->gh = index->shape[1];
    t->gw = index->shape[2];
    t->len = index->shape[3];
    t->k = index->shape[4];
    if (t->groups < 1 || t->gh < 1 || t->gw < 1 || t->len < 1 || t->k < 1) {
        PyErr_Format(kernel_error, "%s has an empty dimension (shape [%zd, %zd, %zd, %zd, %zd])", name,
                     t->groups, t->gh, t->gw, t->len, t->k);
        return -1;
    }
    return 0;
}

/* Every index of group g within [0, limit): returns 0, or -1 with a KernelError set. */
static int check_tap_range(const taps_desc *t, Py_ssize_t g, Py_ssize_t limit, const char *axis, int plane,
                           const plane_desc *pl) {
    Py_ssize_t count = t->gh * t->gw * t->len * t->k;
    const int32_t *idx = t->index + g * count;
    /* One pass for the range first; the slow search only to name the culprit. */
    int32_t lowest, highest;
    int32_range(idx, count, &lowest, &highest);
    if (lowest >= 0 && (Py_ssize_t)highest < limit)
        return 0;
    for (Py_ssize_t q = 0; q < count; q++) {
        if (idx[q] < 0 || idx[q] >= limit) {
            PyErr_Format(kernel_error,
                         "plan reads %s %d outside plane %d of %zdx%zd (tap group %zd): it was made for "
                         "another frame size or format",
                         axis, (int)idx[q], plane, pl->rows, pl->cols, g);
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(sample_frame_doc,
"sample_frame(planes, out, slot, slots, tap_group, taps, coefficients, is_rgb, bit_depth, table,\n"
"             channels_first, mean_std=None)\n"
"\n"
"Low-level binding behind edgevqa.kernels.sample_frame: write every (clip, time) position of `out` that\n"
"decoded frame `slot` feeds (slots[n, t] == slot). `planes`: 3 two-dimensional uint8 (8-bit) or uint16\n"
"buffers, any strides. `taps`: the 8 int32 C-contiguous [G, gh, gw, L, K] arrays (luma rows index/weight,\n"
"luma cols, chroma rows, chroma cols). `coefficients`: int32 [7] (colour.py). `table`: [3, 256] float32 or\n"
"float16, same dtype as `out`. `out`: writable 5-D NCTHW (channels_first) or NTCHW, any strides.\n"
"`mean_std`: optional (mean0, mean1, mean2, std0, std1, std2) the table was made from; used only where\n"
"computing the normalisation (in float32 lanes, or float32(fma(v, 1/std, -mean/std)) in float64)\n"
"reproduces every table entry bit for bit. Tables derived from `table`, `coefficients` and `mean_std` are\n"
"cached between calls (keyed by their contents).\n"
"Raises edgevqa.errors.KernelError on any inconsistency; releases the GIL while it works.");

static PyObject *sample_frame(PyObject *self, PyObject *args) {
    PyObject *planes_obj, *out_obj, *slots_obj, *group_obj, *taps_obj, *coef_obj, *table_obj, *affine_obj = Py_None;
    Py_ssize_t slot;
    int is_rgb, bit_depth, channels_first;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnOOOOpiOp|O:sample_frame", &planes_obj, &out_obj, &slot, &slots_obj, &group_obj,
                          &taps_obj, &coef_obj, &is_rgb, &bit_depth, &table_obj, &channels_first, &affine_obj)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *text = value ? PyObject_Str(value) : NULL;
        PyErr_Format(kernel_error, "bad arguments to the native sampler: %s",
                     text ? PyUnicode_AsUTF8(text) : "unknown");
        Py_XDECREF(text);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return NULL;
    }

    held_buffer plane_buf[3] = {{{0}}}, out_buf = {{0}}, slots_buf = {{0}}, group_buf = {{0}}, coef_buf = {{0}},
                table_buf = {{0}}, tap_buf[NUM_TAP_ARRAYS] = {{{0}}};
    PyObject *planes_seq = NULL, *taps_seq = NULL;
    frame_job job;
    memset(&job, 0, sizeof job);
    PyObject *result = NULL;
    Py_ssize_t *use_storage = NULL;

    if (bit_depth < 8 || bit_depth > 16) {
        PyErr_Format(kernel_error, "unsupported bit depth %d; 8 to 16 bits are supported", bit_depth);
        goto fail;
    }
    job.is_rgb = is_rgb;
    job.bit_depth = bit_depth;
    job.max_value = (int32_t)((1 << bit_depth) - 1);
    job.channels_first = channels_first;

    /* planes */
    planes_seq = PySequence_Fast(planes_obj, "planes must be a sequence of 3 arrays");
    if (!planes_seq) {
        PyErr_Clear();
        PyErr_Format(kernel_error, "planes must be a sequence of 3 arrays, got %s", Py_TYPE(planes_obj)->tp_name);
        goto fail;
    }
    if (PySequence_Fast_GET_SIZE(planes_seq) != 3) {
        PyErr_Format(kernel_error, "expected 3 planes (Y, U, V or R, G, B), got %zd",
                     PySequence_Fast_GET_SIZE(planes_seq));
        goto fail;
    }
    for (int p = 0; p < 3; p++) {
        char what[32];
        snprintf(what, sizeof what, "plane %d", p);
        if (take_buffer(PySequence_Fast_GET_ITEM(planes_seq, p), &plane_buf[p], 0, what))
            goto fail;
        const Py_buffer *v = &plane_buf[p].view;
        Py_ssize_t want = bit_depth == 8 ? 1 : 2;
        if (format_kind(v) != 'u' || v->itemsize != want) {
            PyErr_Format(kernel_error, "plane %d has buffer format '%s' (itemsize %zd), expected %s for %d-bit "
                         "input", p, format_text(v), v->itemsize, want == 1 ? "uint8" : "uint16", bit_depth);
            goto fail;
        }
        if (v->ndim != 2) {
            PyErr_Format(kernel_error, "plane %d must have 2 dimensions, got %d", p, v->ndim);
            goto fail;
        }
        if (v->shape[0] < 1 || v->shape[1] < 1) {
            PyErr_Format(kernel_error, "plane %d is empty (%zdx%zd)", p, v->shape[0], v->shape[1]);
            goto fail;
        }
        job.planes[p] = (plane_desc){v->buf, v->shape[0], v->shape[1], v->strides[0], v->strides[1], want == 2};
        job.plane_taps[p] = (p == 0 || is_rgb) ? 0 : 1;
    }

    /* taps */
    taps_seq = PySequence_Fast(taps_obj, "taps must be a sequence of 8 arrays");
    if (!taps_seq || PySequence_Fast_GET_SIZE(taps_seq) != NUM_TAP_ARRAYS) {
        PyErr_Clear();
        PyErr_Format(kernel_error, "taps must be a sequence of %d int32 arrays", NUM_TAP_ARRAYS);
        goto fail;
    }
    for (int a = 0; a < NUM_TAP_ARRAYS; a++) {
        if (take_buffer(PySequence_Fast_GET_ITEM(taps_seq, a), &tap_buf[a], 0, TAP_NAMES[a]) ||
            check_int32_array(&tap_buf[a].view, 5, TAP_NAMES[a]))
            goto fail;
    }
    if (describe_taps(&tap_buf[0].view, &tap_buf[1].view, "luma_rows", &job.rows[0]) ||
        describe_taps(&tap_buf[2].view, &tap_buf[3].view, "luma_cols", &job.cols[0]) ||
        describe_taps(&tap_buf[4].view, &tap_buf[5].view, "chroma_rows", &job.rows[1]) ||
        describe_taps(&tap_buf[6].view, &tap_buf[7].view, "chroma_cols", &job.cols[1]))
        goto fail;
    {
        const taps_desc *all[4] = {&job.rows[0], &job.cols[0], &job.rows[1], &job.cols[1]};
        for (int a = 1; a < 4; a++) {
            if (all[a]->groups != all[0]->groups || all[a]->gh != all[0]->gh || all[a]->gw != all[0]->gw) {
                PyErr_SetString(kernel_error, "tap tables disagree on groups or grid ([G, gh, gw, ...] differ)");
                goto fail;
            }
        }
        if (job.rows[1].len != job.rows[0].len || job.cols[1].len != job.cols[0].len) {
            PyErr_SetString(kernel_error, "luma and chroma tap tables disagree on the tile size");
            goto fail;
        }
    }
    job.grid_h = job.rows[0].gh;
    job.grid_w = job.rows[0].gw;
    job.tile_h = job.rows[0].len;
    job.tile_w = job.cols[0].len;

    /* slots and tap groups */
    if (take_buffer(slots_obj, &slots_buf, 0, "slots") || check_int32_array(&slots_buf.view, 2, "slots") ||
        take_buffer(group_obj, &group_buf, 0, "tap_group") || check_int32_array(&group_buf.view, 2, "tap_group"))
        goto fail;
    const Py_ssize_t num_clips = slots_buf.view.shape[0], clip_len = slots_buf.view.shape[1];
    if (group_buf.view.shape[0] != num_clips || group_buf.view.shape[1] != clip_len) {
        PyErr_Format(kernel_error, "tap_group has shape [%zd, %zd], slots has [%zd, %zd]", group_buf.view.shape[0],
                     group_buf.view.shape[1], num_clips, clip_len);
        goto fail;
    }
    if (slot < 0) {
        PyErr_Format(kernel_error, "slot %zd is negative", slot);
        goto fail;
    }

    /* colour */
    if (take_buffer(coef_obj, &coef_buf, 0, "coefficients") || check_int32_array(&coef_buf.view, 1, "coefficients"))
        goto fail;
    if (coef_buf.view.shape[0] != 7) {
        PyErr_Format(kernel_error, "coefficients must hold 7 values, got %zd", coef_buf.view.shape[0]);
        goto fail;
    }
    for (int c = 0; c < 7; c++)
        job.coef[c] = ((const int32_t *)coef_buf.view.buf)[c];
    job.narrow_math = conversion_fits_int32(job.coef, job.max_value);

    /* output and table */
    if (take_buffer(out_obj, &out_buf, 1, "output"))
        goto fail;
    const Py_buffer *ov = &out_buf.view;
    if (format_kind(ov) != 'f' || (ov->itemsize != 4 && ov->itemsize != 2)) {
        PyErr_Format(kernel_error, "output must be float32 or float16, got buffer format '%s'", format_text(ov));
        goto fail;
    }
    job.half = ov->itemsize == 2;
    if (ov->ndim != 5) {
        PyErr_Format(kernel_error, "output must have 5 dimensions (%s), got %d", channels_first ? "NCTHW" : "NTCHW",
                     ov->ndim);
        goto fail;
    }
    {
        Py_ssize_t want[5] = {num_clips, channels_first ? 3 : clip_len, channels_first ? clip_len : 3,
                              job.grid_h * job.tile_h, job.grid_w * job.tile_w};
        for (int d = 0; d < 5; d++) {
            if (ov->shape[d] != want[d]) {
                PyErr_Format(kernel_error, "output has shape (%zd, %zd, %zd, %zd, %zd), the plan makes "
                             "(%zd, %zd, %zd, %zd, %zd)", ov->shape[0], ov->shape[1], ov->shape[2], ov->shape[3],
                             ov->shape[4], want[0], want[1], want[2], want[3], want[4]);
                goto fail;
            }
        }
    }
    job.out = ov->buf;
    for (int d = 0; d < 5; d++)
        job.out_s[d] = ov->strides[d];
    if (take_buffer(table_obj, &table_buf, 0, "table"))
        goto fail;
    {
        const Py_buffer *tv = &table_buf.view;
        if (format_kind(tv) != 'f' || tv->itemsize != ov->itemsize || tv->ndim != 2 || tv->shape[0] != 3 ||
            tv->shape[1] != 256 || !PyBuffer_IsContiguous(tv, 'C')) {
            PyErr_Format(kernel_error, "table must be a C-contiguous [3, 256] array of the output's dtype "
                         "(float%d)", ov->itemsize == 2 ? 16 : 32);
            goto fail;
        }
        job.table = tv->buf;
    }
    if (affine_obj != Py_None) {
        /* (mean0, mean1, mean2, std0, std1, std2): only a hint, every table entry is checked against it */
        double values[6];
        PyObject *seq = PySequence_Fast(affine_obj, "mean_std must be a sequence");
        int ok = seq && PySequence_Fast_GET_SIZE(seq) == 6;
        for (int q = 0; ok && q < 6; q++) {
            values[q] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, q));
            ok = !(values[q] == -1.0 && PyErr_Occurred());
        }
        Py_XDECREF(seq);
        if (!ok) {
            PyErr_Clear();
            PyErr_SetString(kernel_error, "mean_std must be a sequence of 6 floats (3 means, 3 standard deviations)");
            goto fail;
        }
        job.has_affine = 1;
        for (int c = 0; c < 3; c++) {
            job.mean[c] = values[c];
            job.std[c] = values[3 + c];
        }
    }

    /* The positions this frame feeds, each checked against the planes before any memory is read. */
    {
        const int32_t *slots = slots_buf.view.buf, *groups = group_buf.view.buf;
        Py_ssize_t total = num_clips * clip_len;
        use_storage = PyMem_Malloc((size_t)(4 * (total > 0 ? total : 1)) * sizeof(Py_ssize_t));
        if (!use_storage) {
            PyErr_NoMemory();
            goto fail;
        }
        job.use_n = use_storage;
        job.use_t = use_storage + total;
        job.use_g = use_storage + 2 * total;
        job.use_copy_from = use_storage + 3 * total;
        Py_ssize_t count = 0;
        for (Py_ssize_t q = 0; q < total; q++) {
            if (slots[q] != slot)
                continue;
            Py_ssize_t g = groups[q];
            if (g < 0 || g >= job.rows[0].groups) {
                PyErr_Format(kernel_error, "tap_group[%zd, %zd] = %zd is outside the plan's %zd tap groups",
                             q / clip_len, q % clip_len, g, job.rows[0].groups);
                goto fail;
            }
            Py_ssize_t from = -1;
            for (Py_ssize_t e = 0; e < count && from < 0; e++)
                if (job.use_g[e] == g && job.use_copy_from[e] < 0)
                    from = e;
            if (from < 0) {
                for (int p = 0; p < 3; p++) {
                    const plane_desc *pl = &job.planes[p];
                    if (p == 2 && job.plane_taps[2] == job.plane_taps[1] && pl->rows == job.planes[1].rows &&
                        pl->cols == job.planes[1].cols)
                        continue; /* the same taps on a plane of the same size: checked with plane 1 */
                    if (check_tap_range(&job.rows[job.plane_taps[p]], g, pl->rows, "row", p, pl) ||
                        check_tap_range(&job.cols[job.plane_taps[p]], g, pl->cols, "column", p, pl))
                        goto fail;
                }
            }
            job.use_n[count] = q / clip_len;
            job.use_t[count] = q % clip_len;
            job.use_g[count] = g;
            job.use_copy_from[count] = from;
            count++;
        }
        job.num_uses = count;
    }

    int status;
    lut_entry *lut = acquire_lut(&job);
    if (!lut) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    status = run_job(&job, lut->usable ? &lut->lut : NULL);
    Py_END_ALLOW_THREADS
    release_lut(lut);
    if (status) {
        PyErr_NoMemory();
        goto fail;
    }
    result = Py_NewRef(Py_None);

fail:
    PyMem_Free(use_storage);
    for (int p = 0; p < 3; p++)
        release_buffer(&plane_buf[p]);
    for (int a = 0; a < NUM_TAP_ARRAYS; a++)
        release_buffer(&tap_buf[a]);
    release_buffer(&out_buf);
    release_buffer(&slots_buf);
    release_buffer(&group_buf);
    release_buffer(&coef_buf);
    release_buffer(&table_buf);
    Py_XDECREF(planes_seq);
    Py_XDECREF(taps_seq);
    return result;
}

static PyObject *vector_rows(PyObject *self, PyObject *unused) {
    static const char *const names[] = {[ROWS_SCALAR] = "scalar", [ROWS_AVX2] = "avx2", [ROWS_AVX2_FMA] = "avx2+fma",
                                        [ROWS_NEON] = "neon"};
    return PyUnicode_FromString(names[rows_in_use()]);
}

PyDoc_STRVAR(vector_rows_doc, "vector_rows() -> str\n\nThe rows this build and processor use: 'avx2+fma', 'avx2' "
                              "(x86), 'neon' (aarch64) or 'scalar' (other processors, builds with "
                              "-DEDGEVQA_NATIVE_PORTABLE, and EDGEVQA_NATIVE_SCALAR=1); every choice gives the "
                              "same bits.");

static PyMethodDef native_methods[] = {
    {"sample_frame", sample_frame, METH_VARARGS, sample_frame_doc},
    {"vector_rows", vector_rows, METH_NOARGS, vector_rows_doc},
    {NULL, NULL, 0, NULL},
};

static int native_exec(PyObject *module) {
    PyObject *errors = PyImport_ImportModule("edgevqa.errors");
    if (!errors)
        return -1;
    kernel_error = PyObject_GetAttrString(errors, "KernelError");
    Py_DECREF(errors);
    if (!kernel_error)
        return -1;
    if (PyModule_AddIntConstant(module, "WEIGHT_ONE", WEIGHT_ONE))
        return -1;
    return 0;
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "edgevqa.kernels._native",
    "C sampling kernel: apply a SamplePlan to one frame's YUV/RGB planes (bit-exact with kernels/reference.py).",
    0,
    native_methods,
    native_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&native_module); }
