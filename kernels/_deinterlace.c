/* Deinterlacing one plane of one frame: the C form of edgevqa.deinterlace.deinterlace_plane_reference (NumPy),
 * which is the specification; the tests compare the two bit for bit.
 *
 * The lines of the kept field are copied; each line of the other field is copied where it agrees with the kept
 * lines and replaced by the cubic interpolation of the four nearest kept lines where it combs (it lies beyond
 * both kept neighbours by more than the threshold, and the other field is smoother along itself there). All
 * sums fit in int32 for samples of up to 16 bits; right shifts of negative sums are arithmetic, as NumPy's. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *kernel_error; /* edgevqa.errors.KernelError */

static inline Py_ssize_t clamp_index(Py_ssize_t i, Py_ssize_t last) { return i < 0 ? 0 : (i > last ? last : i); }

/* The other field's sample o, kept or replaced: branch-free, so the compiler vectorises the row loop. a, b are
 * the kept lines above and below, a2, b2 the ones beyond them, up, down the other field's lines around o. W is
 * the working type: int16_t holds every sum for 8-bit samples (9 * 510 + 8 < 2**15), twice the lanes of int32_t,
 * which deeper samples need. */
#define DEFINE_COMBED_OR_KEPT(NAME, W)                                                                           \
    static inline W NAME(W o, W a, W b, W a2, W b2, W up, W down, W threshold, W top) {                         \
        const W to_a = (W)(o - a), to_b = (W)(o - b);                                                            \
        const int beyond = (to_a > threshold) & (to_b > threshold);                                              \
        const int under = (to_a < -threshold) & (to_b < -threshold);                                             \
        const W along_sum = (W)(2 * o - up - down);                                                              \
        const W along = along_sum < 0 ? (W)-along_sum : along_sum;                                               \
        const W abs_a = to_a < 0 ? (W)-to_a : to_a, abs_b = to_b < 0 ? (W)-to_b : to_b;                          \
        const W across = abs_a < abs_b ? abs_a : abs_b;                                                          \
        W v = (W)((9 * (a + b) - a2 - b2 + 8) >> 4);                                                             \
        v = v < 0 ? 0 : (v > top ? top : v);                                                                     \
        return ((beyond | under) & (along < across)) ? v : o;                                                    \
    }

DEFINE_COMBED_OR_KEPT(combed_or_kept16, int16_t)
DEFINE_COMBED_OR_KEPT(combed_or_kept32, int32_t)

/* One plane of samples of type T; strides in samples (the caller checks they are whole samples). */
#define DEFINE_DEINTERLACE(NAME, T, W, COMBED_OR_KEPT)                                                           \
    static void NAME(const T *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t src_row, Py_ssize_t src_col,   \
                     T *dst, Py_ssize_t dst_row, Py_ssize_t dst_col, int field, int32_t threshold, int32_t top) { \
        for (Py_ssize_t r = 0; r < rows; r++) {                                                                 \
            const T *in = src + r * src_row;                                                                     \
            T *out = dst + r * dst_row;                                                                          \
            if (src_col == 1 && dst_col == 1)                                                                    \
                memcpy(out, in, (size_t)cols * sizeof(T));                                                       \
            else                                                                                                 \
                for (Py_ssize_t c = 0; c < cols; c++)                                                            \
                    out[c * dst_col] = in[c * src_col];                                                          \
        }                                                                                                        \
        const Py_ssize_t kept_count = (rows - field + 1) / 2, other_count = (rows - (1 - field) + 1) / 2;       \
        if (kept_count <= 0 || other_count <= 0)                                                                 \
            return;                                                                                              \
        const Py_ssize_t last_kept = kept_count - 1, last_other = other_count - 1;                               \
        for (Py_ssize_t n = 0; n < other_count; n++) {                                                           \
            const Py_ssize_t below = n + 1 - field; /* the kept line under this one, in kept-line numbering */  \
            const T *o_row = src + (2 * n + 1 - field) * src_row;                                                \
            const T *a_row = src + (2 * clamp_index(below - 1, last_kept) + field) * src_row;                    \
            const T *b_row = src + (2 * clamp_index(below, last_kept) + field) * src_row;                        \
            const T *a2_row = src + (2 * clamp_index(below - 2, last_kept) + field) * src_row;                   \
            const T *b2_row = src + (2 * clamp_index(below + 1, last_kept) + field) * src_row;                   \
            const T *up_row = src + (2 * clamp_index(n - 1, last_other) + 1 - field) * src_row;                  \
            const T *down_row = src + (2 * clamp_index(n + 1, last_other) + 1 - field) * src_row;                \
            T *out = dst + (2 * n + 1 - field) * dst_row;                                                        \
            if (src_col == 1 && dst_col == 1) /* the usual case: the same loop, unit strides, vectorised */     \
                for (Py_ssize_t c = 0; c < cols; c++)                                                            \
                    out[c] = (T)COMBED_OR_KEPT(o_row[c], a_row[c], b_row[c], a2_row[c], b2_row[c], up_row[c],   \
                                               down_row[c], (W)threshold, (W)top);                               \
            else                                                                                                 \
                for (Py_ssize_t c = 0; c < cols; c++) {                                                          \
                    const Py_ssize_t at = c * src_col;                                                           \
                    out[c * dst_col] = (T)COMBED_OR_KEPT(o_row[at], a_row[at], b_row[at], a2_row[at], b2_row[at],\
                                                         up_row[at], down_row[at], (W)threshold, (W)top);        \
                }                                                                                                \
        }                                                                                                        \
    }

DEFINE_DEINTERLACE(deinterlace_u8, uint8_t, int16_t, combed_or_kept16)
DEFINE_DEINTERLACE(deinterlace_u16, uint16_t, int32_t, combed_or_kept32)

static int sample_kind(const Py_buffer *b) {
    /* 0: uint8, 1: uint16 (native or little-endian order on a little-endian machine), -1: anything else */
    const char *f = b->format ? b->format : "B";
    if (b->itemsize == 1 && (!strcmp(f, "B") || !strcmp(f, "=B") || !strcmp(f, "<B") || !strcmp(f, "@B")))
        return 0;
    if (b->itemsize == 2 && (!strcmp(f, "H") || !strcmp(f, "=H") || !strcmp(f, "@H")))
        return 1;
#if PY_LITTLE_ENDIAN
    if (b->itemsize == 2 && !strcmp(f, "<H"))
        return 1;
#endif
    return -1;
}

static int overlaps(const Py_buffer *a, const Py_buffer *b) {
    /* the byte span each view can touch */
    const char *a_lo = a->buf, *a_hi = a->buf, *b_lo = b->buf, *b_hi = b->buf;
    for (int d = 0; d < 2; d++) {
        const Py_ssize_t sa = a->strides[d] * (a->shape[d] - 1), sb = b->strides[d] * (b->shape[d] - 1);
        if (sa < 0) a_lo += sa; else a_hi += sa;
        if (sb < 0) b_lo += sb; else b_hi += sb;
    }
    a_hi += a->itemsize;
    b_hi += b->itemsize;
    return a_lo < b_hi && b_lo < a_hi;
}

static PyObject *deinterlace_plane(PyObject *self, PyObject *args) {
    PyObject *src_obj, *dst_obj;
    int field, bit_depth, threshold;
    if (!PyArg_ParseTuple(args, "OOiii:deinterlace_plane", &src_obj, &dst_obj, &field, &bit_depth, &threshold))
        return NULL;
    Py_buffer src, dst;
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_STRIDED_RO | PyBUF_FORMAT) != 0)
        return NULL;
    if (PyObject_GetBuffer(dst_obj, &dst, PyBUF_STRIDED | PyBUF_FORMAT) != 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    const int kind = sample_kind(&src);
    if (src.ndim != 2 || dst.ndim != 2) {
        PyErr_Format(kernel_error, "deinterlace_plane: planes must be 2-D, got %d-D and %d-D", src.ndim, dst.ndim);
    } else if (kind < 0 || sample_kind(&dst) != kind) {
        PyErr_Format(kernel_error, "deinterlace_plane: planes must both be uint8 or both uint16, got '%s' and '%s'",
                     src.format ? src.format : "B", dst.format ? dst.format : "B");
    } else if (src.shape[0] != dst.shape[0] || src.shape[1] != dst.shape[1]) {
        PyErr_Format(kernel_error, "deinterlace_plane: the output is %zdx%zd, the plane %zdx%zd", dst.shape[0],
                     dst.shape[1], src.shape[0], src.shape[1]);
    } else if (field != 0 && field != 1) {
        PyErr_Format(kernel_error, "deinterlace_plane: field must be 0 (top) or 1 (bottom), got %d", field);
    } else if (bit_depth < 8 || bit_depth > (kind ? 16 : 8)) {
        PyErr_Format(kernel_error, "deinterlace_plane: %d-bit samples do not fit %s", bit_depth,
                     kind ? "uint16" : "uint8");
    } else if (threshold < 0) {
        PyErr_Format(kernel_error, "deinterlace_plane: the threshold must not be negative, got %d", threshold);
    } else if (kind && (src.strides[0] % 2 || src.strides[1] % 2 || dst.strides[0] % 2 || dst.strides[1] % 2 ||
                        (uintptr_t)src.buf % 2 || (uintptr_t)dst.buf % 2)) {
        PyErr_SetString(kernel_error, "deinterlace_plane: uint16 planes must be aligned to whole samples");
    } else if (src.shape[0] > 0 && src.shape[1] > 0 && overlaps(&src, &dst)) {
        PyErr_SetString(kernel_error, "deinterlace_plane: the output overlaps the plane; give a separate array");
    } else {
        const int32_t top = (int32_t)((1L << bit_depth) - 1);
        const Py_ssize_t rows = src.shape[0], cols = src.shape[1], size = src.itemsize;
        Py_BEGIN_ALLOW_THREADS
        if (kind)
            deinterlace_u16(src.buf, rows, cols, src.strides[0] / size, src.strides[1] / size, dst.buf,
                            dst.strides[0] / size, dst.strides[1] / size, field, threshold, top);
        else
            deinterlace_u8(src.buf, rows, cols, src.strides[0], src.strides[1], dst.buf, dst.strides[0],
                           dst.strides[1], field, threshold, top);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

PyDoc_STRVAR(deinterlace_plane_doc,
             "deinterlace_plane(plane, out, field, bit_depth, threshold) -> None\n\n"
             "Write ``plane`` (2-D uint8 or uint16, any strides) deinterlaced into ``out`` (same shape and type, not "
             "overlapping it): the lines of ``field`` (0 top, 1 bottom) kept, the other field's lines interpolated "
             "where they comb by more than ``threshold`` levels. The GIL is released meanwhile.");

static PyMethodDef deinterlace_methods[] = {
    {"deinterlace_plane", deinterlace_plane, METH_VARARGS, deinterlace_plane_doc},
    {NULL, NULL, 0, NULL},
};

static int deinterlace_exec(PyObject *module) {
    PyObject *errors = PyImport_ImportModule("edgevqa.errors");
    if (!errors)
        return -1;
    kernel_error = PyObject_GetAttrString(errors, "KernelError");
    Py_DECREF(errors);
    return kernel_error ? 0 : -1;
}

static PyModuleDef_Slot deinterlace_slots[] = {
    {Py_mod_exec, deinterlace_exec},
    {0, NULL},
};

static struct PyModuleDef deinterlace_module = {
    PyModuleDef_HEAD_INIT,
    "edgevqa.kernels._deinterlace",
    "C deinterlacing of one plane (bit-exact with edgevqa.deinterlace.deinterlace_plane_reference).",
    0,
    deinterlace_methods,
    deinterlace_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__deinterlace(void) { return PyModuleDef_Init(&deinterlace_module); }
