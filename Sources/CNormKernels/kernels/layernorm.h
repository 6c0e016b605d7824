// The LayerNorm kernels, written once; layernorm_<level>.c instantiates them per
// instruction set (isa/begin.h gives NK_W, nk_vf, NK_FMA, NK_NAME). A row's tail
// (n mod NK_W elements) goes through the same vector code on a padded copy, so an
// element's value does not depend on where in the row it sits.

static nk_moments NK_NAME(nk_ln_row_moments)(const float *x, size_t n, float shift) {
    const nk_vd s = nk_splatd((double)shift);
    nk_vd a0 = {}, a1 = {}, q0 = {}, q1 = {};
    size_t i = 0;
    for (; i + 2 * NK_W <= n; i += 2 * NK_W) {
        const nk_vd d0 = nk_widen(nk_load(x + i)) - s;
        const nk_vd d1 = nk_widen(nk_load(x + i + NK_W)) - s;
        a0 += d0;
        a1 += d1;
        q0 = NK_FMA(d0, d0, q0);
        q1 = NK_FMA(d1, d1, q1);
    }
    for (; i < n; i += NK_W) {
        // The padding lanes hold `shift`: their difference is 0.
        const nk_vf v = n - i >= NK_W ? nk_load(x + i) : nk_load_partial(x + i, n - i, shift);
        const nk_vd d = nk_widen(v) - s;
        a0 += d;
        q0 = NK_FMA(d, d, q0);
    }
    return (nk_moments){nk_sumd(a0 + a1), nk_sumd(q0 + q1)};
}

static inline __attribute__((always_inline)) nk_vf NK_NAME(nk_ln_affine_v)(
    nk_vf x, nk_vf w, nk_vf b, nk_vf hi, nk_vf lo, nk_vf r) {
    return NK_FMA(((x - hi) - lo) * r, w, b);
}

static void NK_NAME(nk_ln_affine)(const float *x, float *y, size_t n, float mean_hi, float mean_lo, float scale,
                                  const float *w, const float *b) {
    const nk_vf hi = nk_splat(mean_hi), lo = nk_splat(mean_lo), r = nk_splat(scale);
    size_t i = 0;
    for (; i + 4 * NK_W <= n; i += 4 * NK_W) {
        for (int j = 0; j < 4 * NK_W; j += NK_W) {
            nk_store(y + i + j,
                     NK_NAME(nk_ln_affine_v)(nk_load(x + i + j), nk_load(w + i + j), nk_load(b + i + j), hi, lo, r));
        }
    }
    for (; i + NK_W <= n; i += NK_W) {
        nk_store(y + i, NK_NAME(nk_ln_affine_v)(nk_load(x + i), nk_load(w + i), nk_load(b + i), hi, lo, r));
    }
    if (i < n) {
        const size_t k = n - i;
        nk_store_partial(y + i, k, NK_NAME(nk_ln_affine_v)(nk_load_partial(x + i, k, 0), nk_load_partial(w + i, k, 0),
                                                           nk_load_partial(b + i, k, 0), hi, lo, r));
    }
}

/// y = ((x·p - mean_hi) - mean_lo)·scale·w + b for a power of two p: x·p is exact, and
/// brings a row whose spread is near float's limits (x - mean could overflow, or lose
/// digits among subnormals) to a spread near 1.
static void NK_NAME(nk_ln_affine_scaled)(const float *x, float *y, size_t n, float p, float mean_hi, float mean_lo,
                                         float scale, const float *w, const float *b) {
    const nk_vf pv = nk_splat(p), hi = nk_splat(mean_hi), lo = nk_splat(mean_lo), r = nk_splat(scale);
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) {
        nk_store(y + i, NK_NAME(nk_ln_affine_v)(nk_load(x + i) * pv, nk_load(w + i), nk_load(b + i), hi, lo, r));
    }
    if (i < n) {
        const size_t k = n - i;
        nk_store_partial(y + i, k, NK_NAME(nk_ln_affine_v)(nk_load_partial(x + i, k, 0) * pv, nk_load_partial(w + i, k, 0),
                                                           nk_load_partial(b + i, k, 0), hi, lo, r));
    }
}

/// The binary exponent of a positive normal double: v in [2^e, 2^(e+1)).
static inline int NK_NAME(nk_exponent)(double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (int)((bits >> 52) & 0x7ff) - 1023;
}

/// 2^e as a float, for e in [-126, 127].
static inline float NK_NAME(nk_pow2f)(int e) {
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void NK_NAME(nk_ln_forward_row)(const float *x, float *y, size_t n, float shift, double eps,
                                       const float *w, const float *b, double *stats) {
    const double inv_n = 1.0 / (double)n;
    if (!(shift - shift == 0)) shift = 0;  // NaN or infinite: any finite shift is correct
    for (int pass = 0;; pass++) {
        const nk_moments m = NK_NAME(nk_ln_row_moments)(x, n, shift);
        const double delta = m.sum * inv_n, mean_square = m.sum_squares * inv_n;
        if (!(delta - delta == 0 && mean_square - mean_square == 0)) break;  // NaN or ±inf in the row
        const double variance = mean_square - delta * delta;
        const double mean = (double)shift + delta;
        // Accept when the shift is within a standard deviation of the mean: the
        // subtraction above then cancels by a factor of at most 2. Else centre on the
        // mean found, which every float of the row is at least as far from as it is
        // from the nearest float (docs/numerics.md).
        if (delta * delta <= variance || pass == 1) {
            const double rstd = 1.0 / __builtin_sqrt((variance > 0 ? variance : 0) + eps);
            if (variance > 0 && (variance < 0x1p-200 || variance > 0x1p200 || __builtin_fabs(mean) > 0x1p100)) {
                // Scale by p = 2^-e with e the exponent of the standard deviation: the
                // spread becomes about 1. p stays a normal float, and so does rstd/p.
                const int e_sd = NK_NAME(nk_exponent)(__builtin_sqrt(variance));
                const int e_rstd = NK_NAME(nk_exponent)(rstd);
                int k = -e_sd;
                k = k < -126 ? -126 : k > 126 ? 126 : k;
                if (k > e_rstd + 126) k = e_rstd + 126;  // rstd·2^-k >= 2^-126
                const float p = NK_NAME(nk_pow2f)(k);
                const double ms = mean * (double)p;
                const float hi = (float)ms;
                const float lo = (float)(ms - (double)hi);
                NK_NAME(nk_ln_affine_scaled)(x, y, n, p, hi, lo, (float)(rstd / (double)p), w, b);
            } else {
                const float hi = (float)mean;
                const float lo = (float)(mean - (double)hi);
                NK_NAME(nk_ln_affine)(x, y, n, hi, lo, (float)rstd, w, b);
            }
            stats[0] = mean;
            stats[1] = rstd;
            return;
        }
        shift = (float)mean;
    }
    for (size_t i = 0; i < n; i++) y[i] = __builtin_nanf("");
    stats[0] = __builtin_nan("");
    stats[1] = __builtin_nan("");
}

// ---- Backward ----

/// Vectors per block of the fast pass's float row sums (docs/numerics.md, "Backward").
#define NK_LN_BLOCK 4

/// The largest lane (NaN lanes were skipped by the running maximum that built `v`).
static inline float NK_NAME(nk_hmax)(nk_vf v) {
    float m = v[0];
    for (int i = 1; i < NK_W; i++) m = v[i] > m ? v[i] : m;
    return m;
}
static inline float NK_NAME(nk_hmin)(nk_vf v) {
    float m = v[0];
    for (int i = 1; i < NK_W; i++) m = v[i] < m ? v[i] : m;
    return m;
}

/// One vector of the fast pass 1: d = (x - hi) - lo, max|d|, and dy·w, (d·dy)·w into the
/// block's float partials.
#define NK_LN_CENTRE_STEP(xv, dyv, wv)                     \
    do {                                                   \
        const nk_vf d_ = ((xv) - hv) - lv;                 \
        dmax = nk_max_skip_nan(dmax, nk_abs(d_));          \
        fg += (dyv) * (wv);                                \
        fq += (d_ * (dyv)) * (wv);                         \
    } while (0)

static float NK_NAME(nk_ln_backward_centre)(const float *x, const float *dy, const float *w, size_t n, float mean_hi,
                                            float mean_lo, size_t ahead, double *sums) {
    const nk_vf hv = nk_splat(mean_hi), lv = nk_splat(mean_lo);
    nk_vf dmax = {};
    nk_vd sg = {}, sq = {};
    size_t i = 0;
    // Blocks of NK_LN_BLOCK vectors: each lane adds at most NK_LN_BLOCK float terms
    // (the first into zero, exactly), then the block's partials are widened and added
    // in Double (docs/numerics.md, "Backward": at most 4 float additions per term).
    for (; i + NK_LN_BLOCK * NK_W <= n; i += NK_LN_BLOCK * NK_W) {
        nk_vf fg = {}, fq = {};
        for (int j = 0; j < NK_LN_BLOCK; j++) {
            const size_t o = i + (size_t)j * NK_W;
            __builtin_prefetch(x + o + ahead, 0, 2);
            __builtin_prefetch(dy + o + ahead, 0, 2);
            const nk_vf xv = nk_load(x + o), dyv = nk_load(dy + o), wv = nk_load(w + o);
            NK_LN_CENTRE_STEP(xv, dyv, wv);
        }
        sg += nk_widen(fg);
        sq += nk_widen(fq);
    }
    if (i < n) {
        nk_vf fg = {}, fq = {};
        for (; i < n; i += NK_W) {
            const size_t k = n - i;
            if (k >= NK_W) {
                const nk_vf xv = nk_load(x + i), dyv = nk_load(dy + i), wv = nk_load(w + i);
                NK_LN_CENTRE_STEP(xv, dyv, wv);
            } else {
                // Padding: x = mean_hi, dy = w = 0, so both terms are 0 (and |d| = |mean_lo|).
                const nk_vf xv = nk_load_partial(x + i, k, mean_hi), dyv = nk_load_partial(dy + i, k, 0),
                            wv = nk_load_partial(w + i, k, 0);
                NK_LN_CENTRE_STEP(xv, dyv, wv);
            }
        }
        sg += nk_widen(fg);
        sq += nk_widen(fq);
    }
    sums[0] = nk_sumd(sg);
    sums[1] = nk_sumd(sq);
    return NK_NAME(nk_hmax)(dmax);
}
#undef NK_LN_CENTRE_STEP

/// One vector of the fast pass 2: e = (dy·w)·r + (x·beta + gamma), and the block's
/// partials pw += ((x - hi) - lo)·s·dy, pb += dy where wanted.
static inline __attribute__((always_inline)) nk_vf NK_NAME(nk_ln_affine_step)(
    nk_vf xv, nk_vf dyv, nk_vf wv, nk_vf rv, nk_vf bv, nk_vf gv, nk_vf hv, nk_vf lv, nk_vf sv, nk_vf *pwv,
    nk_vf *pbv, int want_w, int want_b) {
    if (want_w) *pwv = *pwv + ((xv - hv) - lv) * sv * dyv;
    if (want_b) *pbv = *pbv + dyv;
    return (dyv * wv) * rv + (xv * bv + gv);
}

static inline __attribute__((always_inline)) float NK_NAME(nk_ln_backward_affine_body)(
    const float *dy, const float *w, const float *x, float *out, size_t n, float rstd, float beta, float gamma,
    float mean_hi, float mean_lo, float s, float *pw, float *pb, const float *prefetch, int want_w, int want_b) {
    const nk_vf rv = nk_splat(rstd), bv = nk_splat(beta), gv = nk_splat(gamma);
    const nk_vf hv = nk_splat(mean_hi), lv = nk_splat(mean_lo), sv = nk_splat(s);
    nk_vf emax = {};
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) {
        __builtin_prefetch(prefetch + i, 1, 2);
        nk_vf pwv = {}, pbv = {};
        if (want_w) pwv = nk_load(pw + i);
        if (want_b) pbv = nk_load(pb + i);
        const nk_vf e = NK_NAME(nk_ln_affine_step)(nk_load(x + i), nk_load(dy + i), nk_load(w + i), rv, bv, gv, hv,
                                                    lv, sv, &pwv, &pbv, want_w, want_b);
        nk_store(out + i, e);
        if (want_w) nk_store(pw + i, pwv);
        if (want_b) nk_store(pb + i, pbv);
        emax = nk_max_skip_nan(emax, nk_abs(e));
    }
    float m = NK_NAME(nk_hmax)(emax);
    if (i < n) {
        const size_t k = n - i;
        nk_vf pwv = {}, pbv = {};
        if (want_w) pwv = nk_load_partial(pw + i, k, 0);
        if (want_b) pbv = nk_load_partial(pb + i, k, 0);
        const nk_vf e = NK_NAME(nk_ln_affine_step)(nk_load_partial(x + i, k, 0), nk_load_partial(dy + i, k, 0),
                                                    nk_load_partial(w + i, k, 0), rv, bv, gv, hv, lv, sv, &pwv, &pbv,
                                                    want_w, want_b);
        nk_store_partial(out + i, k, e);
        if (want_w) nk_store_partial(pw + i, k, pwv);
        if (want_b) nk_store_partial(pb + i, k, pbv);
        for (size_t j = 0; j < k; j++) {
            const float a = __builtin_fabsf(e[j]);
            m = a > m ? a : m;
        }
    }
    return m;
}

static float NK_NAME(nk_ln_backward_affine)(const float *dy, const float *w, const float *x, float *out, size_t n,
                                            float rstd, float beta, float gamma, float mean_hi, float mean_lo,
                                            float s, float *pw, float *pb, const float *prefetch) {
    if (pw && pb)
        return NK_NAME(nk_ln_backward_affine_body)(dy, w, x, out, n, rstd, beta, gamma, mean_hi, mean_lo, s, pw, pb,
                                                   prefetch, 1, 1);
    if (pw)
        return NK_NAME(nk_ln_backward_affine_body)(dy, w, x, out, n, rstd, beta, gamma, mean_hi, mean_lo, s, pw, pb,
                                                   prefetch, 1, 0);
    if (pb)
        return NK_NAME(nk_ln_backward_affine_body)(dy, w, x, out, n, rstd, beta, gamma, mean_hi, mean_lo, s, pw, pb,
                                                   prefetch, 0, 1);
    return NK_NAME(nk_ln_backward_affine_body)(dy, w, x, out, n, rstd, beta, gamma, mean_hi, mean_lo, s, pw, pb,
                                               prefetch, 0, 0);
}

static void NK_NAME(nk_ln_backward_normalize)(const float *x, const float *dy, const float *w, float *xhat, float *p,
                                              size_t n, float mean_hi, float mean_lo, float rstd, size_t ahead,
                                              double *sums, float *range) {
    const nk_vf hv = nk_splat(mean_hi), lv = nk_splat(mean_lo), rv = nk_splat(rstd);
    nk_vf lo = hv, hi = hv;
    nk_vd sg = {}, sq = {};
    for (size_t i = 0; i < n; i += NK_W) {
        const size_t k = n - i;
        nk_vf xv, dyv, wv;
        if (k >= NK_W) {
            __builtin_prefetch(x + i + ahead, 0, 2);
            __builtin_prefetch(dy + i + ahead, 0, 2);
            xv = nk_load(x + i), dyv = nk_load(dy + i), wv = nk_load(w + i);
        } else {
            xv = nk_load_partial(x + i, k, mean_hi), dyv = nk_load_partial(dy + i, k, 0), wv = nk_load_partial(w + i, k, 0);
        }
        const nk_vf v = ((xv - hv) - lv) * rv;
        const nk_vf pv = v * dyv;
        if (k >= NK_W) {
            nk_store(xhat + i, v);
            nk_store(p + i, pv);
        } else {
            nk_store_partial(xhat + i, k, v);
            nk_store_partial(p + i, k, pv);
        }
        lo = nk_min_skip_nan(lo, xv);
        hi = nk_max_skip_nan(hi, xv);
        sg += nk_widen(dyv * wv);
        sq += nk_widen(pv * wv);
    }
    sums[0] = nk_sumd(sg);
    sums[1] = nk_sumd(sq);
    range[0] = NK_NAME(nk_hmin)(lo);
    range[1] = NK_NAME(nk_hmax)(hi);
}

static float NK_NAME(nk_ln_backward_combine)(const float *dy, const float *w, const float *xhat, float *dx, size_t n,
                                             float a, float c, float rstd, const float *prefetch) {
    const nk_vf av = nk_splat(a), cv = nk_splat(c), rv = nk_splat(rstd);
    nk_vf tmax = {};
    for (size_t i = 0; i < n; i += NK_W) {
        const size_t k = n - i;
        nk_vf t;
        if (k >= NK_W) {
            __builtin_prefetch(prefetch + i, 1, 2);
            t = (nk_load(dy + i) * nk_load(w + i) - av) - nk_load(xhat + i) * cv;
            nk_store(dx + i, t * rv);
        } else {
            // Padding lanes: dy = w = xhat = 0 gives t = -a, so they are zeroed before the maximum.
            t = (nk_load_partial(dy + i, k, 0) * nk_load_partial(w + i, k, 0) - av) - nk_load_partial(xhat + i, k, 0) * cv;
            nk_store_partial(dx + i, k, t * rv);
            for (size_t j = k; j < NK_W; j++) t[j] = 0;
        }
        tmax = nk_max_skip_nan(tmax, nk_abs(t));
    }
    return NK_NAME(nk_hmax)(tmax);
}

static void NK_NAME(nk_ln_backward_accumulate)(float *pw, float *pb, const float *p, const float *dy, size_t n,
                                               float s) {
    const nk_vf sv = nk_splat(s);
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) {
        if (pw) nk_store(pw + i, nk_load(pw + i) + sv * nk_load(p + i));
        if (pb) nk_store(pb + i, nk_load(pb + i) + nk_load(dy + i));
    }
    for (; i < n; i++) {
        if (pw) pw[i] = pw[i] + s * p[i];
        if (pb) pb[i] = pb[i] + dy[i];
    }
}

static void NK_NAME(nk_ln_scale)(const float *x, float *y, size_t n, float s) {
    const nk_vf sv = nk_splat(s);
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) nk_store(y + i, nk_load(x + i) * sv);
    for (; i < n; i++) y[i] = x[i] * s;
}

const nk_layernorm_kernels NK_NAME(nk_layernorm_kernels) = {
    .row_moments = NK_NAME(nk_ln_row_moments),
    .affine = NK_NAME(nk_ln_affine),
    .forward_row = NK_NAME(nk_ln_forward_row),
    .backward_centre = NK_NAME(nk_ln_backward_centre),
    .backward_affine = NK_NAME(nk_ln_backward_affine),
    .backward_normalize = NK_NAME(nk_ln_backward_normalize),
    .backward_combine = NK_NAME(nk_ln_backward_combine),
    .backward_accumulate = NK_NAME(nk_ln_backward_accumulate),
    .scale = NK_NAME(nk_ln_scale),
};
