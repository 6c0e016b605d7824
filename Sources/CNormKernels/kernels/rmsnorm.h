// The RMSNorm and fused residual-add kernels, written once; rmsnorm_<level>.c
// instantiates them per instruction set (isa/begin.h). Tails (n mod NK_W elements) go
// through the same vector code on padded copies (zeros, which add nothing to any
// sum), so an element's value does not depend on where in the row it sits.
#include "nk_rmsnorm.h"
#include "half_convert.h"

/// Double vectors of NK_W lanes from and to memory (the backward's weight partials).
#define nk_loadd(p) ({ nk_vd nk_ld_v_; memcpy(&nk_ld_v_, (p), sizeof nk_ld_v_); nk_ld_v_; })
#define nk_stored(p, v) do { const nk_vd nk_st_v_ = (v); memcpy((p), &nk_st_v_, sizeof nk_st_v_); } while (0)
#define nk_narrow(v) __builtin_convertvector((v), nk_vf)

/// One step of the sum of squares: q += d², d widened to double.
#define NK_RMS_SQ(q, v) do { const nk_vd nk_sq_d_ = nk_widen(v); (q) = NK_FMA(nk_sq_d_, nk_sq_d_, (q)); } while (0)

// The sum of squares walks the row in the same lanes and order whether the row is
// read (row_sumsq) or made on the way (add_row_sumsq): two accumulators over pairs of
// vectors, then single vectors, then the padded tail. BODY(i, v) yields the vector v
// of elements i ..< i + NK_W; TAIL(i, k, v) the k < NK_W last ones, zero padded.
#define NK_RMS_SUMSQ_WALK(n, LOAD, LOAD_TAIL)                           \
    nk_vd q0 = {}, q1 = {};                                             \
    size_t i = 0;                                                       \
    for (; i + 2 * NK_W <= (n); i += 2 * NK_W) {                        \
        NK_RMS_SQ(q0, LOAD(i));                                         \
        NK_RMS_SQ(q1, LOAD(i + NK_W));                                  \
    }                                                                   \
    for (; i + NK_W <= (n); i += NK_W) NK_RMS_SQ(q0, LOAD(i));          \
    if (i < (n)) NK_RMS_SQ(q0, LOAD_TAIL(i, (n) - i));                  \
    return nk_sumd(q0 + q1);

// The row's vectors for the walks: read from x (row_sumsq, row_sumsq_f) or made as the
// sum of a and b, stored into sum on the way (add_row_sumsq, add_row_sumsq_f).
#define NK_X_LOAD(i) nk_load(x + (i))
#define NK_X_TAIL(i, k) nk_load_partial(x + (i), (k), 0)
#define NK_S_LOAD(i) NK_NAME(nk_rms_add_v)(a, b, sum, (i))
#define NK_S_TAIL(i, k) NK_NAME(nk_rms_add_tail)(a, b, sum, (i), (k))

static double NK_NAME(nk_rms_row_sumsq)(const float *x, size_t n) {
    NK_RMS_SUMSQ_WALK(n, NK_X_LOAD, NK_X_TAIL)
}

NK_INLINE nk_vf NK_NAME(nk_rms_add_v)(const float *a, const float *b, float *s,
                                      size_t i) {
    const nk_vf v = nk_load(a + i) + nk_load(b + i);
    nk_store(s + i, v);
    return v;
}

NK_INLINE nk_vf NK_NAME(nk_rms_add_tail)(const float *a, const float *b, float *s,
                                         size_t i, size_t k) {
    const nk_vf v = nk_load_partial(a + i, k, 0) + nk_load_partial(b + i, k, 0);
    nk_store_partial(s + i, k, v);
    return v;
}

static double NK_NAME(nk_rms_add_row_sumsq)(const float *a, const float *b, float *sum, size_t n) {
    NK_RMS_SUMSQ_WALK(n, NK_S_LOAD, NK_S_TAIL)
}

/// Float terms per lane in one block of the float sum of squares (`row_sumsq_f`): each
/// float partial adds at most this many squares before it is widened and added in
/// double. docs/numerics.md ("RMSNorm", "The float sum of squares") proves the bound
/// from it; the Swift caller's certificate does not depend on it.
#define NK_RMS_FAST_TERMS 4

// The float sum of squares walks the row the same way whether the row is read
// (row_sumsq_f) or made on the way (add_row_sumsq_f): blocks of 2·NK_RMS_FAST_TERMS
// vectors, even vectors into chain 0 and odd ones into chain 1, each chain's float
// partial widened to double at the block's end; the last, partial block fills the same
// two chains (each still at most NK_RMS_FAST_TERMS terms) and ends with the zero-padded
// tail. AFTER2(i) runs after each pair of whole vectors (elements i ..< i + 2·NK_W),
// AFTER(i) after a single one, AFTER_TAIL(i, k) after the tail's k: the pipelined rows'
// output steps (no-ops elsewhere). The sum goes to OUT.
#define NK_RMS_SUMSQ_F_WALK_INTO(OUT, n, LOAD, LOAD_TAIL, AFTER2, AFTER, AFTER_TAIL) \
    do {                                                                            \
        nk_vd q0 = {}, q1 = {};                                                     \
        size_t i = 0;                                                               \
        for (; i + 2 * NK_RMS_FAST_TERMS * NK_W <= (n); i += 2 * NK_RMS_FAST_TERMS * NK_W) { \
            nk_vf f0 = {}, f1 = {};                                                 \
            for (int t = 0; t < NK_RMS_FAST_TERMS; t++) {                           \
                const nk_vf a_ = LOAD(i + (size_t)(2 * t) * NK_W);                  \
                const nk_vf b_ = LOAD(i + (size_t)(2 * t + 1) * NK_W);              \
                f0 = NK_FMA(a_, a_, f0);                                            \
                f1 = NK_FMA(b_, b_, f1);                                            \
                AFTER2(i + (size_t)(2 * t) * NK_W);                                 \
            }                                                                       \
            q0 += nk_widen(f0);                                                     \
            q1 += nk_widen(f1);                                                     \
        }                                                                           \
        if (i < (n)) {                                                              \
            nk_vf f0 = {}, f1 = {};                                                 \
            for (; i + 2 * NK_W <= (n); i += 2 * NK_W) {                            \
                const nk_vf a_ = LOAD(i), b_ = LOAD(i + NK_W);                      \
                f0 = NK_FMA(a_, a_, f0);                                            \
                f1 = NK_FMA(b_, b_, f1);                                            \
                AFTER2(i);                                                          \
            }                                                                       \
            if (i + NK_W <= (n)) {                                                  \
                const nk_vf a_ = LOAD(i);                                           \
                f0 = NK_FMA(a_, a_, f0);                                            \
                AFTER(i);                                                           \
                i += NK_W;                                                          \
            }                                                                       \
            if (i < (n)) {                                                          \
                const nk_vf b_ = LOAD_TAIL(i, (n) - i);                             \
                f1 = NK_FMA(b_, b_, f1);                                            \
                AFTER_TAIL(i, (n) - i);                                             \
            }                                                                       \
            q0 += nk_widen(f0);                                                     \
            q1 += nk_widen(f1);                                                     \
        }                                                                           \
        (OUT) = nk_sumd_tree(q0 + q1);                                                 \
    } while (0)
#define NK_RMS_NO_AFTER(i) ((void)0)
#define NK_RMS_NO_AFTER_TAIL(i, k) ((void)0)
#define NK_RMS_SUMSQ_F_WALK(n, LOAD, LOAD_TAIL)                                                  \
    double nk_walk_sum_;                                                                         \
    NK_RMS_SUMSQ_F_WALK_INTO(nk_walk_sum_, n, LOAD, LOAD_TAIL, NK_RMS_NO_AFTER, NK_RMS_NO_AFTER,            \
                             NK_RMS_NO_AFTER_TAIL);                                                 \
    return nk_walk_sum_;

/// The float sum of squares of a row of format `fmt` (NK_ELEM_*), converted as loaded.
NK_INLINE double NK_NAME(nk_rms_row_sumsq_f_body)(const void *x, size_t n,
                                                  const int fmt) {
#define NK_E_LOAD(i) nk_elem_load(x, (i), fmt)
#define NK_E_TAIL(i, k) nk_elem_load_partial(x, (i), (k), 0, fmt)
    NK_RMS_SUMSQ_F_WALK(n, NK_E_LOAD, NK_E_TAIL)
#undef NK_E_LOAD
#undef NK_E_TAIL
}

static double NK_NAME(nk_rms_row_sumsq_f)(const float *x, size_t n) {
    return NK_NAME(nk_rms_row_sumsq_f_body)(x, n, NK_ELEM_F32);
}

static double NK_NAME(nk_rms_add_row_sumsq_f)(const float *a, const float *b, float *sum, size_t n) {
    NK_RMS_SUMSQ_F_WALK(n, NK_S_LOAD, NK_S_TAIL)
}
#undef NK_X_LOAD
#undef NK_X_TAIL
#undef NK_S_LOAD
#undef NK_S_TAIL

static void NK_NAME(nk_rms_add)(const float *a, const float *b, float *sum, size_t n) {
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) (void)NK_NAME(nk_rms_add_v)(a, b, sum, i);
    if (i < n) (void)NK_NAME(nk_rms_add_tail)(a, b, sum, i, n - i);
}

/// One vector of the output pass: (x·r)·(offset + w), in float. Every form of the pass
/// (one row, pipelined rows) computes y with it, so their bits cannot drift apart. With
/// `plain` (a constant; only where nk_rms_offset_is_exact holds for the row's w and
/// offset) the sum is left out: it is w, bit for bit.
NK_INLINE nk_vf NK_NAME(nk_rms_scaled)(nk_vf x, nk_vf r, nk_vf offset, nk_vf w,
                                       const int plain) {
    return plain ? (x * r) * w : (x * r) * (offset + w);
}

/// Whether the output pass's offset + w[i] (the offset as nk_splat makes it: a -0 offset is
/// +0 there) is w[i], bit for bit, for every i < n: an offset of ±0 with no -0 (0 + -0 is
/// +0) and no signalling NaN (the sum quietens it) among the weights. Then
/// the output pass may multiply by w itself (nk_rms_scaled's `plain`): one operation a
/// vector fewer, the same bits (6% of a pipelined row of 768, docs/performance.md).
static inline int NK_NAME(nk_rms_offset_is_exact)(const float *w, size_t n, float offset) {
    const nk_vf ov = nk_splat(offset);
    nk_vi differ = {};
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) {
        const nk_vf wv = nk_load(w + i);
        differ |= (nk_vi)(ov + wv) ^ (nk_vi)wv;
    }
    if (i < n) {  // padding lanes 0: ov + 0 is 0 unless the offset is not finite (then not exact)
        const nk_vf wv = nk_load_partial(w + i, n - i, 0);
        differ |= (nk_vi)(ov + wv) ^ (nk_vi)wv;
    }
    for (int j = 0; j < NK_W; j++)
        if (differ[j]) return 0;
    return 1;
}

/// 1/sqrt(Σ/n + eps) in double, as RMSKernel computes r from a row's sum of squares (and
/// savedReciprocal its kept 1/rms from the Double sum).
NK_INLINE double NK_NAME(nk_rms_reciprocal)(double sum, size_t n, double eps) {
    return 1 / __builtin_sqrt(sum / (double)n + eps);
}

/// y = (x·r)·(offset + w), x and y of format `fmt` (y may be x: each vector is read
/// before it is written).
NK_INLINE void NK_NAME(nk_rms_scale_body)(const void *x, void *y, size_t n, float r,
                                          const float *w, float offset,
                                          const int plain, const int fmt) {
    const nk_vf rv = nk_splat(r), ov = nk_splat(offset);
    size_t i = 0;
    for (; i + 2 * NK_W <= n; i += 2 * NK_W) {
        const nk_vf a = NK_NAME(nk_rms_scaled)(nk_elem_load(x, i, fmt), rv, ov, nk_load(w + i), plain);
        const nk_vf b = NK_NAME(nk_rms_scaled)(nk_elem_load(x, i + NK_W, fmt), rv, ov, nk_load(w + i + NK_W), plain);
        nk_elem_store2(y, i, a, b, fmt);
    }
    for (; i + NK_W <= n; i += NK_W)
        nk_elem_store(y, i, NK_NAME(nk_rms_scaled)(nk_elem_load(x, i, fmt), rv, ov, nk_load(w + i), plain), fmt);
    if (i < n) {
        const size_t k = n - i;
        nk_elem_store_partial(
            y, i, k,
            NK_NAME(nk_rms_scaled)(nk_elem_load_partial(x, i, k, 0, fmt), rv, ov, nk_load_partial(w + i, k, 0), plain),
            fmt);
    }
}

static void NK_NAME(nk_rms_scale)(const float *x, float *y, size_t n, float r, const float *w, float offset) {
    NK_NAME(nk_rms_scale_body)(x, y, n, r, w, offset, 0, NK_ELEM_F32);
}

/// A row of 16-bit elements through the certified float sum and the scale, converted in
/// registers: RMSKernel's certificate and arithmetic (Sources/NormKit/Norms/RMSNorm/
/// RMSKernel.swift), in the same order, so the bits are the float row's, narrowed once.
NK_INLINE int32_t NK_NAME(nk_rms_forward_row_half_body)(
    const uint16_t *x, uint16_t *y, size_t n, double eps, const float *w, float offset, const int fmt) {
    const double s = NK_NAME(nk_rms_row_sumsq_f_body)(x, n, fmt);
    // A certified sum is below n·2^128, so ms <= 2^240 and RMSKernel's scaling is not needed.
    if (!nk_rms_sum_certified(s, n)) return 1;
    NK_NAME(nk_rms_scale_body)(x, y, n, (float)NK_NAME(nk_rms_reciprocal)(s, n, eps), w, offset, 0, fmt);
    return 0;
}

static int32_t NK_NAME(nk_rms_forward_row_half)(const uint16_t *x, uint16_t *y, size_t n, int32_t format, double eps,
                                                const float *w, float offset) {
    if (format == NK_ELEM_BF16) return NK_NAME(nk_rms_forward_row_half_body)(x, y, n, eps, w, offset, NK_ELEM_BF16);
    return NK_NAME(nk_rms_forward_row_half_body)(x, y, n, eps, w, offset, NK_ELEM_F16);
}

// ---- Forward over many rows, software-pipelined ----

/// RMSKernel's rows (Sources/NormKit/Norms/RMSNorm/RMSKernel.swift) over `rows` rows of n
/// elements of format `fmt` (a constant) at once: row r's float sum of squares walks beside
/// the output pass of the last certified row before it, vector by vector (the sum's FMAs
/// and the output's multiplies share the vector units better than either alone, and the
/// row's scalar steps overlap the next row's loads). Each row's sum, certificate, r and
/// y are bit for bit those of row_sumsq_f (add_row_sumsq_f with `add`), nk_rms_sum_certified,
/// RMSKernel's r = 1/sqrt(Σ/n + eps) and `scale` with Float(r). A row whose sum the
/// certificate refuses is not written (nor counted: its fallback counts it) and is listed
/// in `refused` (indices, increasing); the function returns how many. With `add` (float
/// rows only), row r's input is sum_r = x_r + res_r, stored as the walk makes it (every
/// row's, refused or not), and the outputs read the sums. With `rrms` (float rows only),
/// a certified row's 1/rms as RMSKernel.savedReciprocal keeps it (from the Double sum,
/// row_sumsq, taken before the row's output is written) goes to rrms[r]; a refused row's
/// is left to the fallback. y may be x (or, with `add`, any
/// of x, res, sum): a row's output is written one row after its elements were read.
/// No prefetch: callers use it on rows in cache (RMSKernel.pipelines), where prefetching
/// the rows ahead cost 7-18% (docs/performance.md, "RMSNorm rows pipelined").
NK_INLINE size_t NK_NAME(nk_rms_forward_rows_body)(
    const void *x, const float *res, float *sum, void *y, size_t rows, size_t n, double eps, const float *w,
    float offset, double *rrms, size_t *refused, const int add, const int plain, const int fmt) {
    size_t count = 0;
    const size_t stride = n * NK_ELEM_SIZE(fmt);  // bytes per row
    const void *const input = add ? (const void *)sum : x;
    const nk_vf ov = nk_splat(offset);
    int pending = 0;  // row o: certified, its output not yet written
    size_t o = 0;
    float r_o = 0;
    for (size_t r = 0; r < rows; r++) {
        const void *const xr = (const char *)x + r * stride;
        const void *const xo = (const char *)input + o * stride;
        void *const yo = (char *)y + o * stride;
        const nk_vf rv = nk_splat(r_o);
        double s;
#define NK_RMS_OUT_V(i) NK_NAME(nk_rms_scaled)(nk_elem_load(xo, (i), fmt), rv, ov, nk_load(w + (i)), plain)
#define NK_RMS_OUT(i) nk_elem_store(yo, (i), NK_RMS_OUT_V(i), fmt)
#define NK_RMS_OUT2(i) nk_elem_store2(yo, (i), NK_RMS_OUT_V(i), NK_RMS_OUT_V((i) + NK_W), fmt)
#define NK_RMS_OUT_TAIL(i, k)                                                                              \
    nk_elem_store_partial(yo, (i), (k),                                                                    \
                          NK_NAME(nk_rms_scaled)(nk_elem_load_partial(xo, (i), (k), 0, fmt), rv, ov,      \
                                                 nk_load_partial(w + (i), (k), 0), plain),                 \
                          fmt)
#define NK_RMS_ROW_LOAD(i) nk_elem_load(xr, (i), fmt)
#define NK_RMS_ROW_TAIL(i, k) nk_elem_load_partial(xr, (i), (k), 0, fmt)
#define NK_RMS_ADD_LOAD(i) NK_NAME(nk_rms_add_v)(xa, ra, sa, (i))
#define NK_RMS_ADD_TAIL(i, k) NK_NAME(nk_rms_add_tail)(xa, ra, sa, (i), (k))
        if (add) {
            const float *const xa = (const float *)xr, *const ra = (const float *)((const char *)res + r * stride);
            float *const sa = (float *)((char *)sum + r * stride);
            if (pending)
                NK_RMS_SUMSQ_F_WALK_INTO(s, n, NK_RMS_ADD_LOAD, NK_RMS_ADD_TAIL, NK_RMS_OUT2, NK_RMS_OUT, NK_RMS_OUT_TAIL);
            else
                NK_RMS_SUMSQ_F_WALK_INTO(s, n, NK_RMS_ADD_LOAD, NK_RMS_ADD_TAIL, NK_RMS_NO_AFTER, NK_RMS_NO_AFTER,
                                         NK_RMS_NO_AFTER_TAIL);
        } else if (pending) {
            NK_RMS_SUMSQ_F_WALK_INTO(s, n, NK_RMS_ROW_LOAD, NK_RMS_ROW_TAIL, NK_RMS_OUT2, NK_RMS_OUT, NK_RMS_OUT_TAIL);
        } else {
            NK_RMS_SUMSQ_F_WALK_INTO(s, n, NK_RMS_ROW_LOAD, NK_RMS_ROW_TAIL, NK_RMS_NO_AFTER, NK_RMS_NO_AFTER,
                                     NK_RMS_NO_AFTER_TAIL);
        }
#undef NK_RMS_OUT
#undef NK_RMS_OUT2
#undef NK_RMS_OUT_V
#undef NK_RMS_OUT_TAIL
#undef NK_RMS_ROW_LOAD
#undef NK_RMS_ROW_TAIL
#undef NK_RMS_ADD_LOAD
#undef NK_RMS_ADD_TAIL
        pending = 0;
        if (!nk_rms_sum_certified(s, n)) {
            refused[count++] = r;
            continue;
        }
        // A certified sum is below n·2^128, so ms <= 2^240: RMSKernel's scaled case never arises.
        r_o = (float)NK_NAME(nk_rms_reciprocal)(s, n, eps);
        if (fmt == NK_ELEM_F32 && rrms) {
            const float *const in = (const float *)((const char *)input + r * stride);
            rrms[r] = NK_NAME(nk_rms_reciprocal)(NK_NAME(nk_rms_row_sumsq)(in, n), n, eps);
        }
        o = r;
        pending = 1;
    }
    if (pending)
        NK_NAME(nk_rms_scale_body)((const char *)input + o * stride, (char *)y + o * stride, n, r_o, w, offset, plain,
                                   fmt);
    return count;
}

/// nk_rms_forward_rows_body with `plain` a constant: nk_rms_offset_is_exact, checked once a
/// call (the names y, rows, n, eps, w, offset, refused are the callers' parameters).
#define NK_RMS_ROWS(x, res, sum, rrms, add, fmt)                                                                \
    (NK_NAME(nk_rms_offset_is_exact)(w, n, offset)                                                              \
         ? NK_NAME(nk_rms_forward_rows_body)(x, res, sum, y, rows, n, eps, w, offset, rrms, refused, add, 1, fmt) \
         : NK_NAME(nk_rms_forward_rows_body)(x, res, sum, y, rows, n, eps, w, offset, rrms, refused, add, 0, fmt))

static size_t NK_NAME(nk_rms_forward_rows)(const float *x, float *y, size_t rows, size_t n, double eps, const float *w,
                                           float offset, double *rrms, size_t *refused) {
    return NK_RMS_ROWS(x, 0, 0, rrms, 0, NK_ELEM_F32);
}

static size_t NK_NAME(nk_rms_add_forward_rows)(const float *x, const float *res, float *sum, float *y, size_t rows,
                                               size_t n, double eps, const float *w, float offset, double *rrms,
                                               size_t *refused) {
    return NK_RMS_ROWS(x, res, sum, rrms, 1, NK_ELEM_F32);
}

static size_t NK_NAME(nk_rms_forward_rows_half)(const uint16_t *x, uint16_t *y, size_t rows, size_t n, int32_t format,
                                                double eps, const float *w, float offset, size_t *refused) {
    if (format == NK_ELEM_BF16) return NK_RMS_ROWS(x, 0, 0, 0, 0, NK_ELEM_BF16);
    return NK_RMS_ROWS(x, 0, 0, 0, 0, NK_ELEM_F16);
}
#undef NK_RMS_ROWS

static double NK_NAME(nk_rms_backward_dot)(const float *x, const float *dy, const float *w, float offset, size_t n) {
    const nk_vd ov = nk_splatd(offset);
    nk_vd c0 = {}, c1 = {};
    size_t i = 0;
    for (; i + 2 * NK_W <= n; i += 2 * NK_W) {
        const nk_vd g0 = nk_widen(nk_load(dy + i)) * (ov + nk_widen(nk_load(w + i)));
        const nk_vd g1 = nk_widen(nk_load(dy + i + NK_W)) * (ov + nk_widen(nk_load(w + i + NK_W)));
        c0 = NK_FMA(g0, nk_widen(nk_load(x + i)), c0);
        c1 = NK_FMA(g1, nk_widen(nk_load(x + i + NK_W)), c1);
    }
    for (; i < n; i += NK_W) {
        const size_t k = n - i < NK_W ? n - i : NK_W;
        const nk_vd g = nk_widen(nk_load_partial(dy + i, k, 0)) * (ov + nk_widen(nk_load_partial(w + i, k, 0)));
        c0 = NK_FMA(g, nk_widen(nk_load_partial(x + i, k, 0)), c0);
    }
    return nk_sumd(c0 + c1);
}

static void NK_NAME(nk_rms_backward_row)(const float *x, const float *dy, float *dx, size_t n, const float *w,
                                         float offset, double r, double k, int32_t accumulate, double *partial) {
    const nk_vd ov = nk_splatd(offset), rv = nk_splatd(r), kv = nk_splatd(k);
    for (size_t i = 0; i < n; i += NK_W) {
        const size_t m = n - i < NK_W ? n - i : NK_W;
        const int full = m == NK_W;
        const nk_vd xd = nk_widen(full ? nk_load(x + i) : nk_load_partial(x + i, m, 0));
        const nk_vd dyd = nk_widen(full ? nk_load(dy + i) : nk_load_partial(dy + i, m, 0));
        const nk_vd wd = ov + nk_widen(full ? nk_load(w + i) : nk_load_partial(w + i, m, 0));
        nk_vf v = nk_narrow(rv * (dyd * wd) - xd * kv);
        if (accumulate) v = (full ? nk_load(dx + i) : nk_load_partial(dx + i, m, 0)) + v;
        if (full) nk_store(dx + i, v); else nk_store_partial(dx + i, m, v);
        const nk_vd t = (dyd * xd) * rv;
        if (full) {
            nk_stored(partial + i, nk_loadd(partial + i) + t);
        } else {
            double p[NK_W];
            for (size_t j = 0; j < NK_W; j++) p[j] = j < m ? partial[i + j] : 0;
            nk_stored(p, nk_loadd(p) + t);
            memcpy(partial + i, p, m * sizeof(double));
        }
    }
}

/// The running maximum of double vectors (NaN lanes skipped, as nk_max_skip_nan); nk_absd
/// is in isa/begin.h.
#define nk_maxd_skip_nan(m, a) ({ const nk_vd nk_mx_a_ = (a), nk_mx_m_ = (m); const nk_vl nk_mx_gt_ = nk_mx_a_ > nk_mx_m_; \
    (nk_vd)((nk_mx_gt_ & (nk_vl)nk_mx_a_) | (~nk_mx_gt_ & (nk_vl)nk_mx_m_)); })
static inline double NK_NAME(nk_hmaxd)(nk_vd v) {
    double m = v[0];
    for (int i = 1; i < NK_W; i++) m = v[i] > m ? v[i] : m;
    return m;
}

static void NK_NAME(nk_rms_backward_sums)(const float *x, const float *dy, const float *w, float offset, size_t n,
                                          double *out) {
    const nk_vd ov = nk_splatd(offset);
    nk_vd c0 = {}, c1 = {}, a0 = {}, a1 = {}, gm = {}, xm = {};
    size_t i = 0;
    for (; i + 2 * NK_W <= n; i += 2 * NK_W) {
        const nk_vd g0 = nk_widen(nk_load(dy + i)) * (ov + nk_widen(nk_load(w + i)));
        const nk_vd g1 = nk_widen(nk_load(dy + i + NK_W)) * (ov + nk_widen(nk_load(w + i + NK_W)));
        const nk_vd x0 = nk_widen(nk_load(x + i)), x1 = nk_widen(nk_load(x + i + NK_W));
        c0 = NK_FMA(g0, x0, c0);
        c1 = NK_FMA(g1, x1, c1);
        a0 = NK_FMA(nk_absd(g0), nk_absd(x0), a0);
        a1 = NK_FMA(nk_absd(g1), nk_absd(x1), a1);
        gm = nk_maxd_skip_nan(gm, nk_absd(g0));
        gm = nk_maxd_skip_nan(gm, nk_absd(g1));
        xm = nk_maxd_skip_nan(xm, nk_absd(x0));
        xm = nk_maxd_skip_nan(xm, nk_absd(x1));
    }
    for (; i < n; i += NK_W) {
        const size_t k = n - i < NK_W ? n - i : NK_W;
        const nk_vd g = nk_widen(nk_load_partial(dy + i, k, 0)) * (ov + nk_widen(nk_load_partial(w + i, k, 0)));
        const nk_vd xd = nk_widen(nk_load_partial(x + i, k, 0));
        c0 = NK_FMA(g, xd, c0);
        a0 = NK_FMA(nk_absd(g), nk_absd(xd), a0);
        gm = nk_maxd_skip_nan(gm, nk_absd(g));
        xm = nk_maxd_skip_nan(xm, nk_absd(xd));
    }
    out[0] = nk_sumd(c0 + c1);
    out[1] = nk_sumd(a0 + a1);
    out[2] = NK_NAME(nk_hmaxd)(gm);
    out[3] = NK_NAME(nk_hmaxd)(xm);
}

/// `partial` may be NULL (no weight-gradient partials wanted).
static double NK_NAME(nk_rms_backward_grad)(const float *x, const float *dy, float *out, size_t n, const float *w,
                                            float offset, double r, double k, double *partial) {
    const nk_vd ov = nk_splatd(offset), rv = nk_splatd(r), kv = nk_splatd(k);
    nk_vd vm = {};
    for (size_t i = 0; i < n; i += NK_W) {
        const size_t m = n - i < NK_W ? n - i : NK_W;
        const int full = m == NK_W;
        const nk_vd xd = nk_widen(full ? nk_load(x + i) : nk_load_partial(x + i, m, 0));
        const nk_vd dyd = nk_widen(full ? nk_load(dy + i) : nk_load_partial(dy + i, m, 0));
        const nk_vd wd = ov + nk_widen(full ? nk_load(w + i) : nk_load_partial(w + i, m, 0));
        const nk_vd vd = rv * (dyd * wd) - xd * kv;  // padding lanes: 0
        const nk_vf v = nk_narrow(vd);
        if (full) nk_store(out + i, v); else nk_store_partial(out + i, m, v);
        // A NaN lane is skipped by the maximum but caught by the sums (NaN c, so NaN k).
        vm = nk_maxd_skip_nan(vm, nk_absd(vd));
        const nk_vd t = (dyd * xd) * rv;
        if (!partial) continue;
        if (full) {
            nk_stored(partial + i, nk_loadd(partial + i) + t);
        } else {
            double p[NK_W];
            for (size_t j = 0; j < NK_W; j++) p[j] = j < m ? partial[i + j] : 0;
            nk_stored(p, nk_loadd(p) + t);
            memcpy(partial + i, p, m * sizeof(double));
        }
    }
    return NK_NAME(nk_hmaxd)(vm);
}

static inline float NK_NAME(nk_rms_hmaxf)(nk_vf v) {
    float m = v[0];
    for (int i = 1; i < NK_W; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/// Vectors per block of the float fast pass's row sums (docs/numerics.md, "RMSNorm", "Backward").
#define NK_RMS_BLOCK 4

#define NK_RMS_SUMS_STEP(xv, dyv, wv)                       \
    do {                                                    \
        const nk_vf g_ = (dyv) * (ov + (wv));               \
        const nk_vf gx_ = g_ * (xv);                        \
        fc += gx_;                                          \
        fa += nk_abs(gx_);                                  \
        gm = nk_max_magnitude(gm, g_);                      \
        xm = nk_max_skip_nan(xm, nk_abs(xv));               \
    } while (0)

static void NK_NAME(nk_rms_backward_sums_f)(const float *x, const float *dy, const float *w, float offset, size_t n,
                                            double *out) {
    const nk_vf ov = nk_splat(offset);
    nk_vf gm = {}, xm = {};
    nk_vd c = {}, a = {};
    size_t i = 0;
    for (; i + NK_RMS_BLOCK * NK_W <= n; i += NK_RMS_BLOCK * NK_W) {
        nk_vf fc = {}, fa = {};
        for (int j = 0; j < NK_RMS_BLOCK; j++) {
            const size_t o = i + (size_t)j * NK_W;
            const nk_vf xv = nk_load(x + o), dyv = nk_load(dy + o), wv = nk_load(w + o);
            NK_RMS_SUMS_STEP(xv, dyv, wv);
        }
        c += nk_widen(fc);
        a += nk_widen(fa);
    }
    if (i < n) {
        nk_vf fc = {}, fa = {};
        for (; i < n; i += NK_W) {
            const size_t k = n - i < NK_W ? n - i : NK_W;
            const nk_vf xv = k == NK_W ? nk_load(x + i) : nk_load_partial(x + i, k, 0);
            const nk_vf dyv = k == NK_W ? nk_load(dy + i) : nk_load_partial(dy + i, k, 0);
            const nk_vf wv = k == NK_W ? nk_load(w + i) : nk_load_partial(w + i, k, 0);
            NK_RMS_SUMS_STEP(xv, dyv, wv);
        }
        c += nk_widen(fc);
        a += nk_widen(fa);
    }
    out[0] = nk_sumd(c);
    out[1] = nk_sumd(a);
    out[2] = NK_NAME(nk_rms_hmaxf)(gm);
    out[3] = NK_NAME(nk_rms_hmaxf)(xm);
}
#undef NK_RMS_SUMS_STEP

static float NK_NAME(nk_rms_backward_grad_f)(const float *x, const float *dy, float *out, size_t n, const float *w,
                                             float offset, float r, float k, double *partial) {
    const nk_vf ov = nk_splat(offset), rv = nk_splat(r), kv = nk_splat(k);
    nk_vf vm = {};
    for (size_t i = 0; i < n; i += NK_W) {
        const size_t m = n - i < NK_W ? n - i : NK_W;
        const int full = m == NK_W;
        const nk_vf xv = full ? nk_load(x + i) : nk_load_partial(x + i, m, 0);
        const nk_vf dyv = full ? nk_load(dy + i) : nk_load_partial(dy + i, m, 0);
        const nk_vf wv = full ? nk_load(w + i) : nk_load_partial(w + i, m, 0);
        const nk_vf v = (dyv * (ov + wv)) * rv - xv * kv;  // padding lanes: 0
        if (full) nk_store(out + i, v); else nk_store_partial(out + i, m, v);
        vm = nk_max_magnitude(vm, v);
        const nk_vd t = nk_widen((xv * rv) * dyv);
        if (full) {
            nk_stored(partial + i, nk_loadd(partial + i) + t);
        } else {
            double p[NK_W];
            for (size_t j = 0; j < NK_W; j++) p[j] = j < m ? partial[i + j] : 0;
            nk_stored(p, nk_loadd(p) + t);
            memcpy(partial + i, p, m * sizeof(double));
        }
    }
    return NK_NAME(nk_rms_hmaxf)(vm);
}

const nk_rmsnorm_kernels NK_NAME(nk_rmsnorm_kernels) = {
    .row_sumsq = NK_NAME(nk_rms_row_sumsq),
    .add_row_sumsq = NK_NAME(nk_rms_add_row_sumsq),
    .row_sumsq_f = NK_NAME(nk_rms_row_sumsq_f),
    .add_row_sumsq_f = NK_NAME(nk_rms_add_row_sumsq_f),
    .add = NK_NAME(nk_rms_add),
    .scale = NK_NAME(nk_rms_scale),
    .forward_row_half = NK_NAME(nk_rms_forward_row_half),
    .forward_rows = NK_NAME(nk_rms_forward_rows),
    .add_forward_rows = NK_NAME(nk_rms_add_forward_rows),
    .forward_rows_half = NK_NAME(nk_rms_forward_rows_half),
    .half_in_registers = NK_HALF_IN_REGISTERS,
    .backward_dot = NK_NAME(nk_rms_backward_dot),
    .backward_row = NK_NAME(nk_rms_backward_row),
    .backward_sums = NK_NAME(nk_rms_backward_sums),
    .backward_grad = NK_NAME(nk_rms_backward_grad),
    .backward_sums_f = NK_NAME(nk_rms_backward_sums_f),
    .backward_grad_f = NK_NAME(nk_rms_backward_grad_f),
};
