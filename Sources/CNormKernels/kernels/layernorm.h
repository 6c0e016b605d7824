// The LayerNorm kernels, written once; layernorm_<level>.c instantiates them per
// instruction set (isa/begin.h gives NK_W, nk_vf, NK_FMA, NK_NAME). A row's tail
// (n mod NK_W elements) goes through the same vector code on a padded copy, so an
// element's value does not depend on where in the row it sits.

static void NK_NAME(nk_ln_row_moments)(const float *x, size_t n, float shift, double *out) {
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
    out[0] = nk_sumd(a0 + a1);
    out[1] = nk_sumd(q0 + q1);
}

static inline __attribute__((always_inline)) nk_vf NK_NAME(nk_ln_affine_v)(
    nk_vf x, nk_vf w, nk_vf b, nk_vf hi, nk_vf lo, nk_vf r) {
    return NK_FMA(((x - hi) - lo) * r, w, b);
}

static void NK_NAME(nk_ln_affine)(const float *x, float *y, size_t n, float mean_hi, float mean_lo, float scale,
                                  const float *w, const float *b) {
    const nk_vf hi = nk_splat(mean_hi), lo = nk_splat(mean_lo), r = nk_splat(scale);
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) {
        nk_store(y + i, NK_NAME(nk_ln_affine_v)(nk_load(x + i), nk_load(w + i), nk_load(b + i), hi, lo, r));
    }
    if (i < n) {
        const size_t k = n - i;
        nk_store_partial(y + i, k, NK_NAME(nk_ln_affine_v)(nk_load_partial(x + i, k, 0), nk_load_partial(w + i, k, 0),
                                                           nk_load_partial(b + i, k, 0), hi, lo, r));
    }
}

const nk_layernorm_kernels NK_NAME(nk_layernorm_kernels) = {
    .row_moments = NK_NAME(nk_ln_row_moments),
    .affine = NK_NAME(nk_ln_affine),
};
