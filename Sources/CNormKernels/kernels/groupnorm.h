// The GroupNorm kernels, written once; groupnorm_<level>.c instantiates them per
// instruction set (isa/begin.h). A channel's tail (spatial mod NK_W elements) goes
// through the same vector code on a zero-padded copy (a zero dy adds nothing to any sum).
#include "nk_groupnorm.h"

static void NK_NAME(nk_gn_affine)(const float *x, float *y, size_t channels, size_t spatial, float mean_hi,
                                  float mean_lo, float scale, const float *w, const float *b) {
    const nk_vf hi = nk_splat(mean_hi), lo = nk_splat(mean_lo), r = nk_splat(scale);
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * spatial;
        float *yc = y + c * spatial;
        const nk_vf wv = nk_splat(w[c]), bv = nk_splat(b[c]);
        size_t i = 0;
        for (; i + 2 * NK_W <= spatial; i += 2 * NK_W) {
            const nk_vf a = NK_FMA(((nk_load(xc + i) - hi) - lo) * r, wv, bv);
            const nk_vf d = NK_FMA(((nk_load(xc + i + NK_W) - hi) - lo) * r, wv, bv);
            nk_store(yc + i, a);
            nk_store(yc + i + NK_W, d);
        }
        for (; i + NK_W <= spatial; i += NK_W) nk_store(yc + i, NK_FMA(((nk_load(xc + i) - hi) - lo) * r, wv, bv));
        if (i < spatial) {
            const size_t k = spatial - i;
            nk_store_partial(yc + i, k, NK_FMA(((nk_load_partial(xc + i, k, 0) - hi) - lo) * r, wv, bv));
        }
    }
}

/// Elements i ..< i + NK_W of a channel, widened (the last `k` < NK_W of them zero padded).
#define NK_GN_LOAD(p, i, k) nk_widen((k) == NK_W ? nk_load((p) + (i)) : nk_load_partial((p) + (i), (k), 0))

static void NK_NAME(nk_gn_backward_sums)(const float *x, const float *dy, size_t channels, size_t spatial,
                                         double mean, double rstd, const float *w, double *sums, double *pw,
                                         double *pb) {
    const nk_vd mv = nk_splatd(mean), rv = nk_splatd(rstd);
    nk_vd sg = {}, sgx = {};
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * spatial, *dyc = dy + c * spatial;
        nk_vd sdx = {}, sdy = {};
        for (size_t i = 0; i < spatial; i += NK_W) {
            const size_t k = spatial - i < NK_W ? spatial - i : NK_W;
            const nk_vd d = NK_GN_LOAD(dyc, i, k);
            const nk_vd xh = (NK_GN_LOAD(xc, i, k) - mv) * rv;
            sdx += d * xh;
            sdy += d;
        }
        const double wc = (double)w[c];
        sg += sdy * wc;
        sgx += sdx * wc;
        if (pw) pw[c] += nk_sumd(sdx);
        if (pb) pb[c] += nk_sumd(sdy);
    }
    sums[0] = nk_sumd(sg);
    sums[1] = nk_sumd(sgx);
}

static void NK_NAME(nk_gn_backward_dx)(const float *x, const float *dy, float *dx, size_t channels, size_t spatial,
                                       double mean, double rstd, const float *w, double a, double c,
                                       int32_t accumulate) {
    const nk_vd mv = nk_splatd(mean), rv = nk_splatd(rstd), av = nk_splatd(a), cv = nk_splatd(c);
    for (size_t ch = 0; ch < channels; ch++) {
        const float *xc = x + ch * spatial, *dyc = dy + ch * spatial;
        float *dxc = dx + ch * spatial;
        const nk_vd wv = nk_splatd(w[ch]);
        for (size_t i = 0; i < spatial; i += NK_W) {
            const size_t k = spatial - i < NK_W ? spatial - i : NK_W;
            const nk_vd xh = (NK_GN_LOAD(xc, i, k) - mv) * rv;
            const nk_vd v = rv * ((NK_GN_LOAD(dyc, i, k) * wv - av) - xh * cv);
            nk_vf out = __builtin_convertvector(v, nk_vf);
            if (accumulate) out = (k == NK_W ? nk_load(dxc + i) : nk_load_partial(dxc + i, k, 0)) + out;
            if (k == NK_W) nk_store(dxc + i, out); else nk_store_partial(dxc + i, k, out);
        }
    }
}

#undef NK_GN_LOAD

const nk_groupnorm_kernels NK_NAME(nk_groupnorm_kernels) = {
    .affine = NK_NAME(nk_gn_affine),
    .backward_sums = NK_NAME(nk_gn_backward_sums),
    .backward_dx = NK_NAME(nk_gn_backward_dx),
};
