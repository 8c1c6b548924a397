/* HDR -> SDR tone mapping of one frame's planes: the C form of edgevqa.tonemap.tone_map_planes_reference
 * (NumPy), which is the specification; the tests compare the two bit for bit.
 *
 * Every step is integer arithmetic on the tables the Python side makes (edgevqa.tonemap.ToneMap): 14-bit R'G'B'
 * from Y'CbCr, linear light by table, the tone curve's gain by table on the largest channel, the gamut matrix,
 * the gamma by table, then 8-bit Y'CbCr with each chroma sample from its pixels' summed R'G'B'. Sums are int64
 * (the table bounds checked below keep them far from overflow); right shifts of negative sums are arithmetic, as
 * NumPy's. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static PyObject *kernel_error; /* edgevqa.errors.KernelError */

/* Must match edgevqa.tonemap. */
enum {
    CODED_TOP = 16383, /* CODED_BITS */
    ENCODED_TOP = 4095, /* ENCODED_BITS */
    LINEAR_SHIFT = 24,
    GAIN_SHIFT = 16,
    GAMUT_SHIFT = 14,
    OUT_SHIFT = 16,
    ENCODE_FINE_BITS = 16,
    ENCODE_COARSE_SHIFT = 8,
    TABLE_CODES = CODED_TOP + 1,
    ENCODE_ENTRIES = (1 << ENCODE_FINE_BITS) + (1 << (LINEAR_SHIFT - ENCODE_COARSE_SHIFT)) + 1,
};

typedef struct {
    const int32_t *to_rgb, *linear, *gain, *gamut, *to_yuv;
    const uint16_t *encode;
} tables;

typedef struct {
    const char *buf;
    Py_ssize_t rows, cols, row_stride, col_stride; /* strides in bytes */
} plane_in;

typedef struct {
    char *buf;
    Py_ssize_t rows, cols, row_stride, col_stride;
} plane_out;

static inline int64_t sample_at(const plane_in *p, Py_ssize_t r, Py_ssize_t c, int wide) {
    const char *at = p->buf + r * p->row_stride + c * p->col_stride;
    if (wide) {
        uint16_t v;
        memcpy(&v, at, 2);
        return v;
    }
    return (uint8_t)*at;
}

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* One pixel: Y'CbCr samples -> 12-bit SDR R'G'B' codes (through 14-bit HDR ones). */
static inline void pixel_to_sdr_rgb(const tables *t, int64_t luma, int64_t cb, int64_t cr, int32_t rgb[3]) {
    const int32_t *k = t->to_rgb;
    const int64_t y = (int64_t)k[2] * (luma - k[0]), u = cb - k[1], v = cr - k[1], half = 1 << 15;
    int64_t code[3];
    code[0] = clamp64((y + (int64_t)k[3] * v + half) >> 16, 0, CODED_TOP);
    code[1] = clamp64((y - (int64_t)k[4] * u - (int64_t)k[5] * v + half) >> 16, 0, CODED_TOP);
    code[2] = clamp64((y + (int64_t)k[6] * u + half) >> 16, 0, CODED_TOP);
    int64_t brightest = code[0] > code[1] ? code[0] : code[1];
    brightest = brightest > code[2] ? brightest : code[2];
    const int64_t gain = t->gain[brightest];
    int64_t linear[3];
    for (int c = 0; c < 3; c++)
        linear[c] = ((int64_t)t->linear[code[c]] * gain + (1 << (GAIN_SHIFT - 1))) >> GAIN_SHIFT;
    for (int r = 0; r < 3; r++) {
        const int32_t *m = t->gamut + 3 * r;
        int64_t mixed = ((int64_t)m[0] * linear[0] + (int64_t)m[1] * linear[1] + (int64_t)m[2] * linear[2] +
                         (1 << (GAMUT_SHIFT - 1))) >> GAMUT_SHIFT;
        mixed = clamp64(mixed, 0, (int64_t)1 << LINEAR_SHIFT);
        const int64_t index =
            mixed < (1 << ENCODE_FINE_BITS) ? mixed : (1 << ENCODE_FINE_BITS) + (mixed >> ENCODE_COARSE_SHIFT);
        rgb[r] = t->encode[index];
    }
}

/* The whole frame, one row of chroma samples (and the luma rows it covers) at a time. `sums` holds 3 int64
 * per chroma column. */
static inline __attribute__((always_inline)) void tone_map_frame(const tables *t, const plane_in *y,
    const plane_in *u, const plane_in *v, int wide, int shift_rows, int shift_cols, const plane_out *oy,
    const plane_out *ou, const plane_out *ov, int64_t *sums) {
    const int32_t *k = t->to_yuv;
    const int64_t out_half = 1 << (OUT_SHIFT - 1);
    for (Py_ssize_t cr = 0; cr < u->rows; cr++) {
        memset(sums, 0, (size_t)u->cols * 3 * sizeof(int64_t));
        const Py_ssize_t first = cr << shift_rows;
        Py_ssize_t last = (cr + 1) << shift_rows;
        if (last > y->rows)
            last = y->rows;
        for (Py_ssize_t r = first; r < last; r++) {
            char *out_row = oy->buf + r * oy->row_stride;
            for (Py_ssize_t x = 0; x < y->cols; x++) {
                const Py_ssize_t cx = x >> shift_cols;
                int32_t rgb[3];
                pixel_to_sdr_rgb(t, sample_at(y, r, x, wide), sample_at(u, cr, cx, wide), sample_at(v, cr, cx, wide),
                                 rgb);
                const int64_t out = ((int64_t)k[0] * rgb[0] + (int64_t)k[1] * rgb[1] + (int64_t)k[2] * rgb[2] +
                                     ((int64_t)16 << OUT_SHIFT) + out_half) >> OUT_SHIFT;
                out_row[x * oy->col_stride] = (char)(uint8_t)clamp64(out, 0, 255);
                int64_t *s = sums + 3 * cx;
                s[0] += rgb[0];
                s[1] += rgb[1];
                s[2] += rgb[2];
            }
        }
        const Py_ssize_t rows_in_block = last - first;
        for (Py_ssize_t cx = 0; cx < u->cols; cx++) {
            const Py_ssize_t col_first = cx << shift_cols;
            Py_ssize_t col_last = (cx + 1) << shift_cols;
            if (col_last > y->cols)
                col_last = y->cols;
            const int64_t count = (int64_t)rows_in_block * (col_last - col_first);
            const int64_t *s = sums + 3 * cx;
            const int64_t denominator = count << OUT_SHIFT;
            for (int c = 1; c <= 2; c++) {
                const int32_t *row = k + 3 * c;
                int64_t numerator = (int64_t)row[0] * s[0] + (int64_t)row[1] * s[1] + (int64_t)row[2] * s[2] +
                                    count * ((int64_t)128 << OUT_SHIFT);
                numerator = numerator < 0 ? 0 : numerator;
                const int64_t value = clamp64((numerator + denominator / 2) / denominator, 0, 255);
                const plane_out *o = c == 1 ? ou : ov;
                o->buf[cr * o->row_stride + cx * o->col_stride] = (char)(uint8_t)value;
            }
        }
    }
}

/* The frame loop compiled once per sample width, so the sample loads are not a branch per pixel. */
static void tone_map_frame_u8(const tables *t, const plane_in *y, const plane_in *u, const plane_in *v,
                              int shift_rows, int shift_cols, const plane_out *oy, const plane_out *ou,
                              const plane_out *ov, int64_t *sums) {
    tone_map_frame(t, y, u, v, 0, shift_rows, shift_cols, oy, ou, ov, sums);
}

static void tone_map_frame_u16(const tables *t, const plane_in *y, const plane_in *u, const plane_in *v,
                               int shift_rows, int shift_cols, const plane_out *oy, const plane_out *ou,
                               const plane_out *ov, int64_t *sums) {
    tone_map_frame(t, y, u, v, 1, shift_rows, shift_cols, oy, ou, ov, sums);
}

/* ------------------------------------------------------------------------------------------ bindings */

static int format_is(const Py_buffer *b, char code) {
    const char *f = b->format ? b->format : "B";
    if (f[0] == '=' || f[0] == '@'
#if PY_LITTLE_ENDIAN
        || f[0] == '<'
#else
        || f[0] == '>'
#endif
    )
        f++;
    return f[0] == code && f[1] == 0;
}

static int table_ok(const Py_buffer *b, char code, Py_ssize_t size, Py_ssize_t count, const char *name) {
    if (b->ndim != 1 || b->itemsize != size || !format_is(b, code) || b->shape[0] != count ||
        !PyBuffer_IsContiguous(b, 'C') || (uintptr_t)b->buf % (uintptr_t)size) {
        PyErr_Format(kernel_error, "tone_map: the %s table must be %zd contiguous %s values", name, count,
                     code == 'H' ? "uint16" : "int32");
        return 0;
    }
    return 1;
}

static int span_overlaps(const Py_buffer *a, const Py_buffer *b) {
    const char *a_lo = a->buf, *a_hi = a->buf, *b_lo = b->buf, *b_hi = b->buf;
    for (int d = 0; d < a->ndim; d++) {
        const Py_ssize_t s = a->strides[d] * (a->shape[d] - 1);
        if (s < 0) a_lo += s; else a_hi += s;
    }
    for (int d = 0; d < b->ndim; d++) {
        const Py_ssize_t s = b->strides[d] * (b->shape[d] - 1);
        if (s < 0) b_lo += s; else b_hi += s;
    }
    return a_lo < b_hi + b->itemsize && b_lo < a_hi + a->itemsize;
}

static int is_empty(const Py_buffer *b) { return b->ndim == 2 && (b->shape[0] == 0 || b->shape[1] == 0); }

enum { IN_Y, IN_U, IN_V, OUT_Y, OUT_U, OUT_V, T_TO_RGB, T_LINEAR, T_GAIN, T_GAMUT, T_ENCODE, T_TO_YUV, N_BUFFERS };

static const char *validate(Py_buffer *b, int shift_rows, int shift_cols, int bit_depth, int *wide) {
    static char message[256];
    for (int i = IN_Y; i <= OUT_V; i++)
        if (b[i].ndim != 2) {
            snprintf(message, sizeof message, "tone_map: planes must be 2-D, plane %d is %d-D", i, b[i].ndim);
            return message;
        }
    if (shift_rows < 0 || shift_rows > 2 || shift_cols < 0 || shift_cols > 2)
        return "tone_map: chroma shifts must be 0..2";
    if (bit_depth < 8 || bit_depth > 16)
        return "tone_map: the bit depth must be 8..16";
    *wide = bit_depth > 8;
    for (int i = IN_Y; i <= IN_V; i++)
        if (!format_is(&b[i], *wide ? 'H' : 'B') || b[i].itemsize != (*wide ? 2 : 1))
            return *wide ? "tone_map: samples deeper than 8 bits must be uint16 planes"
                         : "tone_map: 8-bit samples must be uint8 planes";
    for (int i = OUT_Y; i <= OUT_V; i++)
        if (!format_is(&b[i], 'B') || b[i].itemsize != 1)
            return "tone_map: the outputs must be uint8 planes";
    if (*wide)
        for (int i = IN_Y; i <= IN_V; i++)
            if (b[i].strides[0] % 2 || b[i].strides[1] % 2 || (uintptr_t)b[i].buf % 2)
                return "tone_map: uint16 planes must be aligned to whole samples";
    const Py_ssize_t rows = b[IN_Y].shape[0], cols = b[IN_Y].shape[1];
    const Py_ssize_t chroma_rows = (rows + (1 << shift_rows) - 1) >> shift_rows,
                     chroma_cols = (cols + (1 << shift_cols) - 1) >> shift_cols;
    for (int i = IN_U; i <= IN_V; i++)
        if (b[i].shape[0] != chroma_rows || b[i].shape[1] != chroma_cols) {
            snprintf(message, sizeof message, "tone_map: a %zdx%zd luma plane with shifts (%d, %d) has %zdx%zd chroma "
                     "planes, got %zdx%zd", rows, cols, shift_rows, shift_cols, chroma_rows, chroma_cols,
                     b[i].shape[0], b[i].shape[1]);
            return message;
        }
    if (b[OUT_Y].shape[0] != rows || b[OUT_Y].shape[1] != cols)
        return "tone_map: the luma output must have the luma plane's shape";
    for (int i = OUT_U; i <= OUT_V; i++)
        if (b[i].shape[0] != chroma_rows || b[i].shape[1] != chroma_cols)
            return "tone_map: the chroma outputs must have the chroma planes' shape";
    for (int o = OUT_Y; o <= OUT_V; o++)
        for (int i = IN_Y; i <= OUT_V; i++)
            if (i != o && !is_empty(&b[o]) && !is_empty(&b[i]) && span_overlaps(&b[o], &b[i]))
                return "tone_map: an output overlaps a plane or another output; give separate arrays";
    return NULL;
}

static const char *validate_tables(const tables *t) {
    for (int i = 0; i < 7; i++)
        if (t->to_rgb[i] < -(1 << 24) || t->to_rgb[i] > (1 << 24))
            return "tone_map: the to_rgb coefficients must lie within +-2**24";
    for (int i = 0; i < TABLE_CODES; i++) {
        if (t->linear[i] < 0)
            return "tone_map: linear values must not be negative";
        if (t->gain[i] < 0 || t->gain[i] > (1 << GAIN_SHIFT))
            return "tone_map: gains must lie within 0..1";
    }
    for (int i = 0; i < 9; i++)
        if (t->gamut[i] < -(1 << 20) || t->gamut[i] > (1 << 20) || t->to_yuv[i] < -(1 << 20) ||
            t->to_yuv[i] > (1 << 20))
            return "tone_map: gamut and to_yuv entries must lie within +-2**20";
    for (Py_ssize_t i = 0; i < ENCODE_ENTRIES; i++)
        if (t->encode[i] > ENCODED_TOP)
            return "tone_map: encoded values must lie within 0..4095";
    return NULL;
}

static PyObject *tone_map(PyObject *self, PyObject *args) {
    PyObject *obj[N_BUFFERS];
    int shift_rows, shift_cols, bit_depth;
    if (!PyArg_ParseTuple(args, "OOOOOOiiiOOOOOO:tone_map", &obj[IN_Y], &obj[IN_U], &obj[IN_V], &obj[OUT_Y],
                          &obj[OUT_U], &obj[OUT_V], &shift_rows, &shift_cols, &bit_depth, &obj[T_TO_RGB],
                          &obj[T_LINEAR], &obj[T_GAIN], &obj[T_GAMUT], &obj[T_ENCODE], &obj[T_TO_YUV]))
        return NULL;
    Py_buffer b[N_BUFFERS];
    int taken = 0;
    PyObject *result = NULL;
    for (; taken < N_BUFFERS; taken++) {
        const int writable = taken >= OUT_Y && taken <= OUT_V;
        if (PyObject_GetBuffer(obj[taken], &b[taken], (writable ? PyBUF_STRIDED : PyBUF_STRIDED_RO) | PyBUF_FORMAT))
            goto done;
    }
    int wide = 0;
    const char *problem = validate(b, shift_rows, shift_cols, bit_depth, &wide);
    if (!problem && !(table_ok(&b[T_TO_RGB], 'i', 4, 7, "to_rgb") &&
                      table_ok(&b[T_LINEAR], 'i', 4, TABLE_CODES, "linear") &&
                      table_ok(&b[T_GAIN], 'i', 4, TABLE_CODES, "gain") && table_ok(&b[T_GAMUT], 'i', 4, 9, "gamut") &&
                      table_ok(&b[T_ENCODE], 'H', 2, ENCODE_ENTRIES, "encode") &&
                      table_ok(&b[T_TO_YUV], 'i', 4, 9, "to_yuv")))
        goto done;
    const tables t = {b[T_TO_RGB].buf, b[T_LINEAR].buf, b[T_GAIN].buf, b[T_GAMUT].buf, b[T_TO_YUV].buf,
                      b[T_ENCODE].buf};
    if (!problem)
        problem = validate_tables(&t);
    if (problem) {
        PyErr_SetString(kernel_error, problem);
        goto done;
    }
    plane_in in[3];
    plane_out out[3];
    for (int i = 0; i < 3; i++) {
        const Py_buffer *p = &b[IN_Y + i], *o = &b[OUT_Y + i];
        in[i] = (plane_in){p->buf, p->shape[0], p->shape[1], p->strides[0], p->strides[1]};
        out[i] = (plane_out){o->buf, o->shape[0], o->shape[1], o->strides[0], o->strides[1]};
    }
    int64_t *sums = malloc(((size_t)in[1].cols * 3 + 1) * sizeof(int64_t));
    if (!sums) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (in[0].rows > 0 && in[0].cols > 0)
        (wide ? tone_map_frame_u16 : tone_map_frame_u8)(&t, &in[0], &in[1], &in[2], shift_rows, shift_cols, &out[0],
                                                         &out[1], &out[2], sums);
    Py_END_ALLOW_THREADS
    free(sums);
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < taken; i++)
        PyBuffer_Release(&b[i]);
    return result;
}

PyDoc_STRVAR(tone_map_doc,
             "tone_map(y, cb, cr, out_y, out_cb, out_cr, shift_rows, shift_cols, bit_depth, to_rgb, linear, gain, "
             "gamut, encode, to_yuv) -> None\n\n"
             "Write HDR planes (uint8 or uint16, any strides; chroma subsampled by the shifts) tone-mapped into "
             "8-bit BT.709 Y'CbCr outputs of the same shapes, through the tables of edgevqa.tonemap.ToneMap. The "
             "GIL is released meanwhile.");

static PyMethodDef tonemap_methods[] = {
    {"tone_map", tone_map, METH_VARARGS, tone_map_doc},
    {NULL, NULL, 0, NULL},
};

static int tonemap_exec(PyObject *module) {
    PyObject *errors = PyImport_ImportModule("edgevqa.errors");
    if (!errors)
        return -1;
    kernel_error = PyObject_GetAttrString(errors, "KernelError");
    Py_DECREF(errors);
    return kernel_error ? 0 : -1;
}

static PyModuleDef_Slot tonemap_slots[] = {
    {Py_mod_exec, tonemap_exec},
    {0, NULL},
};

static struct PyModuleDef tonemap_module = {
    PyModuleDef_HEAD_INIT,
    "edgevqa.kernels._tonemap",
    "C tone mapping of one frame (bit-exact with edgevqa.tonemap.tone_map_planes_reference).",
    0,
    tonemap_methods,
    tonemap_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__tonemap(void) { return PyModuleDef_Init(&tonemap_module); }
