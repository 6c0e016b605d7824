// The LayerNorm kernels, written once; layernorm_<level>.c instantiates them per
// instruction set (isa/begin.h gives NK_W, nk_vf, NK_FMA, NK_NAME). A row's tail
// (n mod NK_W elements) goes through the same vector code on a padded copy, so an
// element's value does not depend on where in the row it sits.
//
// The forward's fast path also reads and writes rows of bfloat16 or binary16 (the
// `fmt` argument, NK_ELEM_*, a constant wherever it is passed): each vector is widened
// to float in registers as it is loaded and narrowed as it is stored, and every float
// operation is the one the float row makes, so a half row gives the bits of its
// widened copy through the float kernel, narrowed once.
#include "half_convert.h"

/// The float instantiation of a function written over `fmt` (no suffix), or its
/// bfloat16 or binary16 one; `fmt` is a constant, so the choice folds away.
#define NK_LN_FMT(name, fmt) \
    ((fmt) == NK_ELEM_BF16 ? NK_NAME(name##_bf16) : (fmt) == NK_ELEM_F16 ? NK_NAME(name##_f16) : NK_NAME(name))
/// The three instantiations of `name##_body` over `fmt`: a float one named `name` and
/// `_bf16`, `_f16` ones. PARAMS and ARGS are parenthesised lists without `fmt`.
#define NK_LN_BY_FORMAT(ret, name, PARAMS, ARGS)                                                      \
    static ret NK_NAME(name) PARAMS { return NK_NAME(name##_body)(NK_LN_UNPAREN ARGS, NK_ELEM_F32); }   \
    static ret NK_NAME(name##_bf16) PARAMS { return NK_NAME(name##_body)(NK_LN_UNPAREN ARGS, NK_ELEM_BF16); } \
    static ret NK_NAME(name##_f16) PARAMS { return NK_NAME(name##_body)(NK_LN_UNPAREN ARGS, NK_ELEM_F16); }
#define NK_LN_UNPAREN(...) __VA_ARGS__

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

NK_INLINE nk_vf NK_NAME(nk_ln_affine_v)(
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

// ---- Forward: the certified float fast path (docs/numerics.md, "The fast path") ----

/// B of the fast moments' bound: every term meets at most B - 1 float additions (after
/// its own roundings) before its lane's partial is widened and added in double. The
/// bounds nk_ln_fast_stats uses are functions of it.
#define NK_LN_FAST_TERMS 4
/// Vectors in a whole block of the fast moments: added as a balanced tree, so each term
/// meets log2(8) = 3 = NK_LN_FAST_TERMS - 1 float additions, as in a chain of 4 terms,
/// with one widening per sum for 8 vectors instead of one for 4.
#define NK_LN_TREE_VECTORS 8
#define NK_LN_U 0x1p-24
#define NK_LN_EPS53 0x1p-53

/// One vector of a chain of the fast moments (the partial last block): d = x - s in
/// float, fa += d, fq += d² (fused where the level has FMA: one rounding either way per
/// term and step).
#define NK_LN_FAST_STEP(c, v)                  \
    do {                                       \
        const nk_vf d_ = (v) - sv;             \
        fa[c] += d_;                           \
        fq[c] = NK_FMA(d_, d_, fq[c]);         \
    } while (0)

/// Rows ahead that the fast moments prefetch, one line per vector read: the row after
/// next when rows are contiguous, as the forward's callers hand them (a prefetch never
/// faults, so past a buffer's end it is only a wasted request). Two threads from DRAM
/// gained 8% with it, one thread and rows in cache nothing either way; 4 and 8 rows were
/// slower (docs/performance.md, "Half forms in registers, and a cheaper output certificate").
#define NK_LN_PREFETCH_ROWS 2
/// The farthest ahead the fast moments prefetch, in bytes: NK_LN_PREFETCH_ROWS rows of 4096
/// floats (32 KiB ahead) evicted from the first-level cache the lines the output pass still
/// had to read. At 8 KiB a row of 4096 floats from the third-level cache took 1520-1540 ns
/// against 1600-1680; rows of up to 1024 floats do not reach the cap (docs/performance.md,
/// "Long rows: a nearer prefetch").
#define NK_LN_PREFETCH_BYTES (8 * 1024)

/// The walk's last, partial block (from i_ to n, fewer than a block's vectors) over CH
/// chains (a constant: 1 or 2, the fewest that keep every chain at
/// NK_LN_FAST_TERMS terms or fewer), vector v into chain v mod CH, walked a group of CH
/// vectors at a time so that every chain index is a constant (the chains stay in
/// registers); then the CH chains widened and added. The bound is the same for any
/// assignment that keeps the chains that short; fewer chains widen fewer vectors, which
/// are most of a short row's moments (docs/numerics.md, "Blocked float moments").
#define NK_LN_PARTIAL_BLOCK(CH, LOAD, LOAD_PART, AFTER, AFTER_PART)                                        \
    do {                                                                                                   \
        nk_vf fa[CH] = {}, fq[CH] = {};                                                                    \
        for (; i_ + (CH) * NK_W <= n; i_ += (CH) * NK_W)                                                   \
            for (int c_ = 0; c_ < (CH); c_++) {                                                            \
                NK_LN_FAST_STEP(c_, LOAD(i_ + (size_t)c_ * NK_W));                                         \
                AFTER(i_ + (size_t)c_ * NK_W, NK_LN_TREE_VECTORS + c_);                                    \
            }                                                                                              \
        for (int c_ = 0; c_ < (CH) && i_ < n; c_++, i_ += NK_W) {                                          \
            if (n - i_ >= NK_W) {                                                                          \
                NK_LN_FAST_STEP(c_, LOAD(i_));                                                             \
                AFTER(i_, NK_LN_TREE_VECTORS + c_);                                                        \
            } else {                                                                                       \
                NK_LN_FAST_STEP(c_, LOAD_PART(i_, n - i_));                                                \
                AFTER_PART(i_, n - i_);                                                                    \
            }                                                                                              \
        }                                                                                                  \
        for (int c_ = 0; c_ < (CH); c_++) {                                                                \
            sa += nk_widen(fa[c_]);                                                                        \
            sq += nk_widen(fq[c_]);                                                                        \
        }                                                                                                  \
    } while (0)
/// The first level of a whole block's tree: vectors 2k and 2k + 1 of the block at i_ (both
/// loaded by LOAD##_PAIR, then AFTER on each), their differences' sum into PA and their
/// squares' sum into PQ (the square of the first rounded, the second added to it in one
/// fused operation where the level has FMA). Written out, not as arrays indexed in a loop,
/// so that the partials stay in registers (a loop over arrays kept them on the stack in the
/// fused add's walk).
#define NK_LN_TREE_PAIR(k, PA, PQ, LOAD, PREFETCH, AFTER)                                                \
    do {                                                                                                   \
        const size_t at_ = i_ + (size_t)(2 * (k)) * NK_W;                                                  \
        PREFETCH(at_);                                                                                     \
        PREFETCH(at_ + NK_W);                                                                              \
        nk_vf v0_, v1_;                                                                                    \
        LOAD##_PAIR(at_, v0_, v1_);                                                                        \
        const nk_vf d0_ = v0_ - sv;                                                                        \
        AFTER(at_, 2 * (k));                                                                               \
        const nk_vf d1_ = v1_ - sv;                                                                        \
        AFTER(at_ + NK_W, 2 * (k) + 1);                                                                    \
        (PA) = d0_ + d1_;                                                                                  \
        (PQ) = NK_FMA(d1_, d1_, d0_ * d0_);                                                                \
    } while (0)
/// The fast moments' walk over a row of n elements about `shift` (sv, sa, sq, and fa, fq
/// in the partial block, as the bodies below name them): whole blocks of
/// NK_LN_TREE_VECTORS vectors, each block's differences d = x - s and their squares added
/// as a balanced tree in float (pairs of squares as d1·d1 + d0·d0, one fused operation
/// where the level has FMA), the two block sums widened and added into sa, sq. The last,
/// partial block (NK_LN_PARTIAL_BLOCK) takes one chain, or two, of NK_LN_FAST_TERMS
/// terms or fewer; its last vector may be partial, its padding lanes `shift`
/// (difference 0). Either way no term meets more than NK_LN_FAST_TERMS - 1 float
/// additions (docs/numerics.md, "Blocked float moments"). LOAD(at) gives the float vector
/// of elements at ..< at + NK_W, and the macro named LOAD##_PAIR(at, v0, v1) sets v0 and v1
/// to LOAD(at) and LOAD(at + NK_W); LOAD_PART(at, k) the last k < NK_W with padding `shift`;
/// PREFETCH(at) runs before each vector of a whole block, for the element `ahead_` on
/// (defined here: NK_LN_PREFETCH_ROWS rows, at most NK_LN_PREFETCH_BYTES, or 0 for a row of
/// one block). AFTER(at, c) runs after each whole vector (element `at`; c its index in a
/// whole block, so that vectors c even and c + 1 follow each other, or NK_LN_TREE_VECTORS
/// plus its chain in the partial block), AFTER_PART(at, k) after the partial one (k
/// elements): the pipelined body's output steps. One walk for every form, so the moments'
/// bits are the same in each.
#define NK_LN_MOMENTS_WALK(LOAD, LOAD_PART, PREFETCH, AFTER, AFTER_PART)                                  \
    do {                                                                                                   \
        _Static_assert(NK_LN_TREE_VECTORS == 8 && NK_LN_FAST_TERMS == 4, "the tree below is written for 8"); \
        const size_t block_ = (size_t)NK_LN_TREE_VECTORS * NK_W;                                           \
        /* Elements ahead that PREFETCH asks for: NK_LN_PREFETCH_ROWS rows, at most NK_LN_PREFETCH_BYTES,  \
           or for rows of one block or less none (the line being read; ahead cost 8% on [32768, 128] from   \
           memory). */                                                                                     \
        const size_t far_ = NK_LN_PREFETCH_BYTES / NK_ELEM_SIZE(fmt);                                      \
        const size_t ahead_ = n <= block_ ? 0 : NK_LN_PREFETCH_ROWS * n < far_ ? NK_LN_PREFETCH_ROWS * n : far_; \
        size_t i_ = 0;                                                                                     \
        for (; i_ + block_ <= n; i_ += block_) {                                                           \
            nk_vf a0_, q0_, a1_, q1_, a2_, q2_, a3_, q3_;                                                  \
            NK_LN_TREE_PAIR(0, a0_, q0_, LOAD, PREFETCH, AFTER);                                           \
            NK_LN_TREE_PAIR(1, a1_, q1_, LOAD, PREFETCH, AFTER);                                           \
            const nk_vf a01_ = a0_ + a1_, q01_ = q0_ + q1_;                                                \
            NK_LN_TREE_PAIR(2, a2_, q2_, LOAD, PREFETCH, AFTER);                                           \
            NK_LN_TREE_PAIR(3, a3_, q3_, LOAD, PREFETCH, AFTER);                                           \
            sa += nk_widen(a01_ + (a2_ + a3_));                                                            \
            sq += nk_widen(q01_ + (q2_ + q3_));                                                            \
        }                                                                                                  \
        if (i_ < n) {                                                                                      \
            const size_t left_ = (n - i_ + NK_W - 1) / NK_W; /* vectors, fewer than a block's */             \
            if (left_ <= NK_LN_FAST_TERMS)                                                                 \
                NK_LN_PARTIAL_BLOCK(1, LOAD, LOAD_PART, AFTER, AFTER_PART);                                \
            else                                                                                           \
                NK_LN_PARTIAL_BLOCK(2, LOAD, LOAD_PART, AFTER, AFTER_PART);                                \
        }                                                                                                  \
    } while (0)
/// The walk's loads of a row `xp` of format fmt, and its prefetch: one line per vector
/// read, `ahead_` elements ahead (NK_LN_MOMENTS_WALK).
#define NK_LN_ROW_LOAD(at) nk_elem_load(xp_, (at), fmt)
#define NK_LN_ROW_LOAD_PAIR(at, v0, v1) (v0 = NK_LN_ROW_LOAD(at), v1 = NK_LN_ROW_LOAD((at) + NK_W))
#define NK_LN_ROW_LOAD_PART(at, k) nk_elem_load_partial(xp_, (at), (k), shift, fmt)
#define NK_LN_ROW_PREFETCH(at) \
    __builtin_prefetch((const char *)xp_ + ((at) + ahead_) * NK_ELEM_SIZE(fmt), 0, 3)
/// The fused add's loads (rows of format fmt at xa_, ra_, sum at sa_out_): s = x + res in
/// float, stored to sum (a half format rounds it there: the stream's value), is the vector
/// the moments take (for a half format, the rounded sum read back); padding lanes
/// shift + 0 = shift. Both inputs prefetched.
#define NK_LN_ADD_LOAD(at)                                                          \
    ({                                                                              \
        nk_vf s_ = nk_elem_load(xa_, (at), fmt) + nk_elem_load(ra_, (at), fmt);     \
        nk_elem_store(sa_out_, (at), s_, fmt);                                      \
        if (fmt != NK_ELEM_F32) s_ = nk_elem_load(sa_out_, (at), fmt);              \
        s_;                                                                         \
    })
/// NK_LN_ADD_LOAD of the vectors at `at` and at + NK_W, into v0 and v1. For bfloat16 where
/// the level has AVX512_BF16 the two sums are narrowed by one VCVTNE2PS2BF16 (the cost of
/// one VCVTNEPS2BF16), stored together and widened back in registers
/// (nk_bf16_narrow_store2_widen); elsewhere one at a time. The same bits either way.
#define NK_LN_ADD_LOAD_PAIR(at, v0, v1)                                                    \
    do {                                                                                   \
        if (NK_BF16_NARROW_STORE2_WIDEN && fmt == NK_ELEM_BF16) {                          \
            v0 = nk_elem_load(xa_, (at), fmt) + nk_elem_load(ra_, (at), fmt);              \
            v1 = nk_elem_load(xa_, (at) + NK_W, fmt) + nk_elem_load(ra_, (at) + NK_W, fmt); \
            nk_bf16_narrow_store2_widen((uint16_t *)sa_out_ + (at), v0, v1, &v0, &v1);     \
        } else {                                                                           \
            v0 = NK_LN_ADD_LOAD(at);                                                       \
            v1 = NK_LN_ADD_LOAD((at) + NK_W);                                              \
        }                                                                                  \
    } while (0)
#define NK_LN_ADD_LOAD_PART(at, k)                                                                             \
    ({                                                                                                         \
        nk_vf s_ = nk_elem_load_partial(xa_, (at), (k), shift, fmt) + nk_elem_load_partial(ra_, (at), (k), 0, fmt); \
        nk_elem_store_partial(sa_out_, (at), (k), s_, fmt);                                                    \
        if (fmt != NK_ELEM_F32) s_ = nk_elem_load_partial(sa_out_, (at), (k), shift, fmt);                     \
        s_;                                                                                                    \
    })
#define NK_LN_ADD_PREFETCH(at)                                                                              \
    do {                                                                                                    \
        __builtin_prefetch((const char *)xa_ + ((at) + ahead_) * NK_ELEM_SIZE(fmt), 0, 3); \
        __builtin_prefetch((const char *)ra_ + ((at) + ahead_) * NK_ELEM_SIZE(fmt), 0, 3); \
    } while (0)
#define NK_LN_NO_STEP(at, c) ((void)0)
#define NK_LN_NO_PART(at, k) ((void)0)

/// Σ(x - s) and Σ(x - s)² in float lanes, blocks of NK_LN_TREE_VECTORS vectors added as
/// trees (NK_LN_MOMENTS_WALK), the block partials added in double. A non-finite result means an infinity or NaN in the
/// row, or an overflow of a difference, a square or a partial: the caller falls back.
NK_INLINE nk_moments NK_NAME(nk_ln_row_moments_fast_body)(
    const void *x, size_t n, float shift, const int fmt) {
    const nk_vf sv = nk_splat(shift);
    nk_vd sa = {}, sq = {};
    const void *const xp_ = x;
    NK_LN_MOMENTS_WALK(NK_LN_ROW_LOAD, NK_LN_ROW_LOAD_PART, NK_LN_ROW_PREFETCH, NK_LN_NO_STEP, NK_LN_NO_PART);
    return (nk_moments){nk_sumd_tree(sa), nk_sumd_tree(sq)};
}
NK_LN_BY_FORMAT(nk_moments, nk_ln_row_moments_fast, (const void *x, size_t n, float shift), (x, n, shift))

/// The output pass with its certificate's maximum: y = fma(t, w, b) with
/// t = ((x·p - hi) - lo)·r (p = 1 skips the multiply), or, `centred`, t = fma(x, r, hi)
/// with hi = Float(-mean·r) (FMA levels, |mean| <= 2σ: docs/numerics.md, "The centred
/// form"); returns max |y| (NaN skipped), and with `want_m` stores
/// max |w|·(|t| + kappa) at *m_out (NaN skipped). Writes y only when `store`; with
/// `stream` (float rows only), through non-temporal stores from y's first vector-aligned
/// element on (the elements before it take one partial vector: each y_i is the same
/// function of x_i, w_i, b_i wherever it sits, and a maximum does not depend on order).
/// `scaled`, `centred`, `store`, `want_m` and `stream` are constants at every call.
/// With `flush` (a constant; only where nk_elem_store_flush flushes: a bfloat16 row with
/// VCVTNEPS2BF16, y not x, `store` and not `stream`), whole vectors are narrowed by
/// nk_elem_store_flush, which is exact unless a lane is a float subnormal: the pass keeps
/// min |y| over those vectors, and when it is below 2^-126 (a subnormal, or a zero) stores
/// them again through nk_elem_store, whose bits are the integer code's. x is still intact
/// (y is not x), and each y_i is the same function of x_i, w_i, b_i both times.
NK_INLINE float NK_NAME(nk_ln_affine_cert_loop)(
    const void *x, void *y, size_t n, float p, float mean_hi, float mean_lo, float scale, const float *w,
    const float *b, float kappa, float *m_out, int scaled, int centred, int store, int want_m, int stream,
    const int flush, const int fmt) {
    const nk_vf pv = nk_splat(p), hi = nk_splat(mean_hi), lo = nk_splat(mean_lo), r = nk_splat(scale);
    const nk_vf kv = nk_splat(kappa);
    nk_vf ym = {}, ym1 = {}, mm = {}, mm1 = {};  // two chains of each maximum
    nk_vf least = nk_splat(__builtin_inff());    // with `flush`: min |y| over the whole vectors
#define NK_LN_CERT_Y(xv0, wv, bv)                                                \
    ({                                                                           \
        nk_vf xv_ = (xv0);                                                       \
        if (scaled) xv_ = xv_ * pv;                                              \
        t_ = centred ? NK_FMA(xv_, r, hi) : ((xv_ - hi) - lo) * r;               \
        NK_FMA(t_, (wv), (bv));                                                  \
    })
#define NK_LN_CERT_STEP(xv0, wv, bv, STORE)                                 \
    do {                                                                    \
        nk_vf t_;                                                           \
        const nk_vf y_ = NK_LN_CERT_Y(xv0, wv, bv);                          \
        STORE(y_);                                                          \
        ym = nk_max_magnitude(ym, y_);                                      \
        if (want_m) mm = nk_max_magnitude(mm, nk_abs(wv) * (nk_abs(t_) + kv)); \
    } while (0)
    size_t i = 0;
    const int nt = stream && store && fmt == NK_ELEM_F32;
    if (nt) {
        // Elements before y's first vector-aligned address, in one partial vector (padding
        // lanes as the tail's); the aligned loop then streams.
        size_t head = (((size_t)0 - (size_t)(uintptr_t)y) % (NK_W * sizeof(float))) / sizeof(float);
        head = head < n ? head : n;
        if (head > 0) {
            const nk_vf wv = nk_load_partial(w, head, 0), bv = nk_load_partial(b, head, 0);
#define NK_LN_STORE_HEAD(v) nk_store_partial((float *)y, head, (v))
            NK_LN_CERT_STEP(nk_load_partial((const float *)x, head, 0), wv, bv, NK_LN_STORE_HEAD);
#undef NK_LN_STORE_HEAD
            i = head;
        }
    }
    for (; i + 2 * NK_W <= n; i += 2 * NK_W) {
        const nk_vf wv = nk_load(w + i), bv = nk_load(b + i);
        const nk_vf wv1 = nk_load(w + i + NK_W), bv1 = nk_load(b + i + NK_W);
        nk_vf y0, y1;  // stored together: a pair narrows into one vector of 16-bit elements
#define NK_LN_KEEP0(v) y0 = (v)
#define NK_LN_KEEP1(v) y1 = (v)
        NK_LN_CERT_STEP(nk_elem_load(x, i, fmt), wv, bv, NK_LN_KEEP0);
        const nk_vf swap_y = ym, swap_m = mm;
        ym = ym1, mm = mm1;
        NK_LN_CERT_STEP(nk_elem_load(x, i + NK_W, fmt), wv1, bv1, NK_LN_KEEP1);
        ym1 = ym, mm1 = mm;
        ym = swap_y, mm = swap_m;
        if (nt) {
            nk_store_stream((float *)y + i, y0);
            nk_store_stream((float *)y + i + NK_W, y1);
        } else if (flush) {
            nk_elem_store2_flush(y, i, y0, y1, fmt);
            least = nk_min_magnitude(nk_min_magnitude(least, y0), y1);
        } else if (store) {
            nk_elem_store2(y, i, y0, y1, fmt);
        }
#undef NK_LN_KEEP0
#undef NK_LN_KEEP1
    }
    for (; i + NK_W <= n; i += NK_W) {
        const nk_vf wv = nk_load(w + i), bv = nk_load(b + i);
#define NK_LN_STORE_FULL(v)                                            \
    if (nt) nk_store_stream((float *)y + i, (v));                      \
    else if (flush) nk_elem_store_flush(y, i, (v), fmt), least = nk_min_magnitude(least, (v)); \
    else if (store) nk_elem_store(y, i, (v), fmt)
        NK_LN_CERT_STEP(nk_elem_load(x, i, fmt), wv, bv, NK_LN_STORE_FULL);
#undef NK_LN_STORE_FULL
    }
    if (i < n) {
        // Padding: w = b = 0 gives t·0 + 0 = 0, and |w|·(...) = 0.
        const size_t k = n - i;
        const nk_vf wv = nk_load_partial(w + i, k, 0), bv = nk_load_partial(b + i, k, 0);
#define NK_LN_STORE_PART(v) if (store) nk_elem_store_partial(y, i, k, (v), fmt)
        NK_LN_CERT_STEP(nk_elem_load_partial(x, i, k, 0, fmt), wv, bv, NK_LN_STORE_PART);
#undef NK_LN_STORE_PART
    }
    if (flush && nk_any_below(least, 0x1p-126f)) {
        // A subnormal (or zero) y: the whole vectors again, narrowed exactly (the partial
        // one, if any, was).
        for (size_t j = 0; j + NK_W <= n; j += NK_W) {
            nk_vf t_;
            nk_elem_store(y, j, NK_LN_CERT_Y(nk_elem_load(x, j, fmt), nk_load(w + j), nk_load(b + j)), fmt);
            (void)t_;
        }
    }
#undef NK_LN_CERT_STEP
#undef NK_LN_CERT_Y
    if (want_m) *m_out = nk_hmax_magnitudes(nk_max_skip_nan(mm, mm1));
    return nk_hmax_magnitudes(nk_max_skip_nan(ym, ym1));
}

/// nk_ln_affine_cert_loop, with `flush` wherever nk_elem_store_flush may be used.
NK_INLINE float NK_NAME(nk_ln_affine_cert_body)(
    const void *x, void *y, size_t n, float p, float mean_hi, float mean_lo, float scale, const float *w,
    const float *b, float kappa, float *m_out, int scaled, int centred, int store, int want_m, int stream,
    const int fmt) {
    if (NK_ELEM_STORE_FLUSHES(fmt) && store && !stream && x != (const void *)y)
        return NK_NAME(nk_ln_affine_cert_loop)(x, y, n, p, mean_hi, mean_lo, scale, w, b, kappa, m_out, scaled,
                                               centred, store, want_m, stream, 1, fmt);
    return NK_NAME(nk_ln_affine_cert_loop)(x, y, n, p, mean_hi, mean_lo, scale, w, b, kappa, m_out, scaled, centred,
                                           store, want_m, stream, 0, fmt);
}

/// y in Double, rounded once to float: the affine step for rows whose float affine the
/// certificate cannot vouch for (a bias cancelling w·x̂).
static void NK_NAME(nk_ln_affine_double)(const float *x, float *y, size_t n, double mean, double rstd,
                                         const float *w, const float *b) {
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)w[i] * (((double)x[i] - mean) * rstd) + (double)b[i]);
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

/// A row's statistics and the bounds of their errors: |rstd - rstd*| <= rho·rstd*, and
/// |mean - mean*|·rstd* <= mu (in units of the row's x̂), against the exact values *.
typedef struct {
    double mean, rstd, variance, rho, mu;
} NK_NAME(nk_ln_stats);

/// The certificate of the float fast moments `m` of a row of n elements about `shift`
/// (docs/numerics.md, "The fast path"). Returns 0 when the row is certified (and fills
/// *st), else 1.
/// Twin: nk_ln_forward_rows_batched_body computes the same, a row per vector lane, with the
/// same operations in the same order; change both (PipelinedForwardTests compares their bits).
NK_INLINE int NK_NAME(nk_ln_moments_certified)(nk_moments m, size_t n, float shift, double eps,
                                               NK_NAME(nk_ln_stats) *st) {
    if (n > ((size_t)1 << 24)) return 1;
    if (!(m.sum - m.sum == 0 && m.sum_squares - m.sum_squares == 0)) return 1;  // non-finite, or overflowed
    const double nd = (double)n, inv_n = 1.0 / nd;
    const double tiny = nd * 0x1p-149;  // the squares' underflow: at most 2^-150 each
    // Relative bounds of the float sums (docs): (B+2)u for Σd² (the difference, the square
    // and B-1 additions), B·u for Σd (the difference and B-1 additions), each plus n·ε for
    // the double additions, and a factor for the second-order terms.
    const double alpha = 1.0001 * ((NK_LN_FAST_TERMS + 2) * NK_LN_U + nd * NK_LN_EPS53);
    const double beta = 1.0001 * (NK_LN_FAST_TERMS * NK_LN_U + nd * NK_LN_EPS53);
    const double d2_upper = (m.sum_squares + tiny) / (1 - alpha);
    const double e_delta = beta * __builtin_sqrt(nd * d2_upper) * inv_n * 1.0001;
    const double delta = m.sum * inv_n, mean_square = m.sum_squares * inv_n;
    if (mean_square < 0x1p-90) return 1;  // too near float's underflow for the bound to pay
    const double variance = mean_square - delta * delta;
    const double e_var = (alpha * d2_upper + tiny) * inv_n + 2 * __builtin_fabs(delta) * e_delta + e_delta * e_delta +
                         8 * NK_LN_EPS53 * (mean_square + delta * delta);
    // The variance itself must be known to a quarter: else the shift was too far from the
    // mean for the float sums (or the row is constant, which the Double path makes exact).
    if (!(e_var <= 0.25 * variance)) return 1;
    const double v_eps = variance + eps;
    const double mean = (double)shift + delta;
    const double rstd = 1.0 / __builtin_sqrt(v_eps);
    st->mean = mean;
    st->rstd = rstd;
    st->variance = variance;
    st->rho = 0.6 * e_var / v_eps + 1e-15;
    st->mu = 1.25 * (e_delta + 2 * NK_LN_EPS53 * __builtin_fabs(mean)) * rstd;
    // Past these the affine certificate would fail anyway: go to the Double moments now.
    if (st->rho > 64 * NK_LN_U || st->mu > 64 * NK_LN_U) return 1;
    return 0;
}

/// The float fast moments and their certificate. Returns 0 when the row is certified
/// (and fills *st), else 1.
NK_INLINE int NK_NAME(nk_ln_fast_stats_body)(
    const void *x, size_t n, float shift, double eps, NK_NAME(nk_ln_stats) *st, const int fmt) {
    if (n > ((size_t)1 << 24)) return 1;
    return NK_NAME(nk_ln_moments_certified)(NK_LN_FMT(nk_ln_row_moments_fast, fmt)(x, n, shift), n, shift, eps, st);
}
NK_LN_BY_FORMAT(int, nk_ln_fast_stats, (const void *x, size_t n, float shift, double eps, NK_NAME(nk_ln_stats) *st),
                (x, n, shift, eps, st))

/// Today's Double moments (the second pass when the shift was more than a standard
/// deviation off). Returns 0 with *st filled, or 1 for a row holding NaN or infinity.
static int NK_NAME(nk_ln_double_stats)(const float *x, size_t n, float shift, double eps, NK_NAME(nk_ln_stats) *st) {
    const double nd = (double)n, inv_n = 1.0 / nd;
    if (!(shift - shift == 0)) shift = 0;  // NaN or infinite: any finite shift is correct
    for (int pass = 0;; pass++) {
        const nk_moments m = NK_NAME(nk_ln_row_moments)(x, n, shift);
        const double delta = m.sum * inv_n, mean_square = m.sum_squares * inv_n;
        if (!(delta - delta == 0 && mean_square - mean_square == 0)) return 1;  // NaN or ±inf in the row
        const double variance = mean_square - delta * delta;
        const double mean = (double)shift + delta;
        // Accept when the shift is within a standard deviation of the mean: the
        // subtraction above then cancels by a factor of at most 2. Else centre on the
        // mean found, which every float of the row is at least as far from as it is
        // from the nearest float (docs/numerics.md).
        if (delta * delta <= variance || pass == 1) {
            st->mean = mean;
            st->rstd = 1.0 / __builtin_sqrt((variance > 0 ? variance : 0) + eps);
            st->variance = variance;
            // docs/numerics.md, "The bound": |δvar| <= 5nε·var, the mean within 1.5nε·σ + ε|mean|.
            st->rho = 3 * nd * NK_LN_EPS53 + 4 * NK_LN_EPS53;
            st->mu = 1.25 * (2 * nd * NK_LN_EPS53 + 3 * NK_LN_EPS53 * __builtin_fabs(mean) * st->rstd);
            return 0;
        }
        shift = (float)mean;
    }
}

/// The float output pass (scaled by a power of two for a spread near float's limits),
/// then its certificate: returns 0 when y is within 1e-6·max(1, max|y|) of the exact
/// result, given the statistics' bounds in *st.
/// The affine certificate: E = 1.001·u·(1.0001·A·M + Y) <= 1e-6·max(1, Y - E), with
/// Y = max|y| from the output pass and M >= max |w_i|·(|t_i| + κ) (docs/numerics.md,
/// "The affine certificate").
/// Twin: nk_ln_forward_rows_batched_body computes the same, a row per vector lane, with the
/// same operations in the same order; change both (PipelinedForwardTests compares their bits).
static inline int NK_NAME(nk_ln_certified)(double a, double m, float y_max) {
    const double big = (double)y_max;
    const double bound = 1.001 * NK_LN_U * (1.0001 * a * m + big);
    const double scale = big - bound > 1 ? big - bound : 1;
    return bound <= 1e-6 * scale;
}

/// How a row's output pass computes t (docs/numerics.md, "The affine certificate"), with
/// the certificate's constants. Per element (docs): |y_i - y*_i| <= u·|w_i|·(A·|x̂_i| + C)
/// + u·|y_i|, with A the float affine's own constant plus rho/u and C = 2 + mu/u;
/// |x̂_i| <= 1.0001·|t_i| + 2e-5. The centred form t = fma(x, r, Float(-mean·r)) where
/// the level fuses and the mean is within 2σ ("The centred form"): A0 = 3 (2 and 1 of
/// margin) and C0 = 2.01 there; A0 = 5 or 6 and C0 = 2 for ((x·p - hi) - lo)·r.
typedef struct {
    int scaled, centred;
    float p, hi, lo, r;  // centred: hi = Float(-mean·r), lo = 0
    double a, kappa;
} NK_NAME(nk_ln_form);

/// The output pass's form for a row with statistics *st.
/// Twin: nk_ln_forward_rows_batched_body computes the same, a row per vector lane, with the
/// same operations in the same order (a scaled form it takes from here); change both
/// (PipelinedForwardTests compares their bits).
NK_INLINE void NK_NAME(nk_ln_form_of)(const NK_NAME(nk_ln_stats) *st, NK_NAME(nk_ln_form) *f) {
    const double mean = st->mean, rstd = st->rstd, variance = st->variance;
    f->scaled = variance > 0 && (variance < 0x1p-200 || variance > 0x1p200 || __builtin_fabs(mean) > 0x1p100);
    f->centred = NK_HAS_FMA && !f->scaled && variance > 0 && mean * mean <= 4 * variance;
    f->a = (f->centred ? 3.0 : NK_HAS_FMA ? 5.0 : 6.0) + st->rho / NK_LN_U;
    const double c = (f->centred ? 2.01 : 2.0) + st->mu / NK_LN_U;
    f->kappa = (c + 2e-5 * f->a) / (1.0001 * f->a);
    f->p = 1;
    f->lo = 0;
    if (f->scaled) {
        // Scale by p = 2^-e with e the exponent of the standard deviation: the
        // spread becomes about 1. p stays a normal float, and so does rstd/p.
        const int e_sd = NK_NAME(nk_exponent)(__builtin_sqrt(variance));
        const int e_rstd = NK_NAME(nk_exponent)(rstd);
        int k = -e_sd;
        k = k < -126 ? -126 : k > 126 ? 126 : k;
        if (k > e_rstd + 126) k = e_rstd + 126;  // rstd·2^-k >= 2^-126
        f->p = NK_NAME(nk_pow2f)(k);
        const double ms = mean * (double)f->p;
        f->hi = (float)ms;
        f->lo = (float)(ms - (double)f->hi);
        f->r = (float)(rstd / (double)f->p);
    } else if (f->centred) {
        f->r = (float)rstd;
        f->hi = (float)(-(mean * (double)f->r));  // -mean·r, within 2u of it
    } else {
        f->hi = (float)mean;
        f->lo = (float)(mean - (double)f->hi);
        f->r = (float)rstd;
    }
}

/// nk_ln_affine_cert_body in form *f (the branch picks a specialised pass).
NK_INLINE float NK_NAME(nk_ln_form_pass)(
    const NK_NAME(nk_ln_form) *f, const void *x, void *y, size_t n, const float *w, const float *b, float *m_out,
    int store, int want_m, int stream, const int fmt) {
    const float kappa = (float)f->kappa;
    if (f->scaled)
        return NK_NAME(nk_ln_affine_cert_body)(x, y, n, f->p, f->hi, f->lo, f->r, w, b, kappa, m_out, 1, 0, store,
                                               want_m, stream, fmt);
    if (f->centred)
        return NK_NAME(nk_ln_affine_cert_body)(x, y, n, 1, f->hi, 0, f->r, w, b, kappa, m_out, 0, 1, store, want_m,
                                               stream, fmt);
    return NK_NAME(nk_ln_affine_cert_body)(x, y, n, 1, f->hi, f->lo, f->r, w, b, kappa, m_out, 0, 0, store, want_m,
                                           stream, fmt);
}

/// Whether a row's output in form *f, whose pass gave max|y| = `big`, is certified: first
/// M bounded from `big` and the call's max|w|, max|b|; when that bound refuses, a pass
/// that stores nothing computes M = max|w_i|·(|t_i| + κ) element by element, which
/// certifies what it did before the cheaper bound existed. The cheaper bound's
/// twin is in nk_ln_forward_rows_batched_body (a row per vector lane; change both).
NK_INLINE int NK_NAME(nk_ln_form_certified)(
    const NK_NAME(nk_ln_form) *f, const void *x, size_t n, const float *w, const float *b, float w_max, float b_max,
    float big, const int fmt) {
    const double bound = (1 + 4 * NK_LN_U) * ((double)big + (double)b_max) + 0x1p-140 + f->kappa * (double)w_max;
    if (NK_NAME(nk_ln_certified)(f->a, bound, big)) return 1;
    float m = 0;
    (void)NK_NAME(nk_ln_form_pass)(f, x, (void *)0, n, w, b, &m, 0, 1, 0, fmt);
    return NK_NAME(nk_ln_certified)(f->a, (double)m, big);
}

NK_INLINE int NK_NAME(nk_ln_output_body)(
    const void *x, void *y, size_t n, const NK_NAME(nk_ln_stats) *st, const float *w, const float *b, float w_max,
    float b_max, int stream, const int fmt) {
    NK_NAME(nk_ln_form) f;
    NK_NAME(nk_ln_form_of)(st, &f);
    // y may be x (in place): then y is written only once the row is certified, so a
    // fallback still reads the input. `store` and `want_m` are constants in each call
    // (no branch per vector).
    const int in_place = x == (const void *)y;
    float m = 0;
    const float big = in_place ? NK_NAME(nk_ln_form_pass)(&f, x, y, n, w, b, &m, 0, 0, 0, fmt)
                               : NK_NAME(nk_ln_form_pass)(&f, x, y, n, w, b, &m, 1, 0, stream, fmt);
    if (!NK_NAME(nk_ln_form_certified)(&f, x, n, w, b, w_max, b_max, big, fmt)) return 1;
    if (in_place) (void)NK_NAME(nk_ln_form_pass)(&f, x, y, n, w, b, &m, 1, 0, 0, fmt);
    return 0;
}
NK_LN_BY_FORMAT(int, nk_ln_output,
                (const void *x, void *y, size_t n, const NK_NAME(nk_ln_stats) *st, const float *w, const float *b,
                 float w_max, float b_max, int stream),
                (x, y, n, st, w, b, w_max, b_max, stream))

static int32_t NK_NAME(nk_ln_forward_row_path)(const float *x, float *y, size_t n, float shift, double eps,
                                               const float *w, const float *b, float w_max, float b_max,
                                               double *stats) {
    NK_NAME(nk_ln_stats) st;
    int32_t path = NK_LN_PATH_FAST;
    if (!(shift - shift == 0) || NK_NAME(nk_ln_fast_stats)(x, n, shift, eps, &st) != 0) {
        path = NK_LN_PATH_DOUBLE_MOMENTS;
        if (NK_NAME(nk_ln_double_stats)(x, n, shift, eps, &st) != 0) {
            for (size_t i = 0; i < n; i++) y[i] = __builtin_nanf("");
            stats[0] = __builtin_nan("");
            stats[1] = __builtin_nan("");
            nk_ln_count_path(NK_LN_PATH_NONFINITE);
            return NK_LN_PATH_NONFINITE;
        }
    }
    if (NK_NAME(nk_ln_output)(x, y, n, &st, w, b, w_max, b_max, 0) != 0) {
        if (path == NK_LN_PATH_FAST && NK_NAME(nk_ln_double_stats)(x, n, shift, eps, &st) == 0 &&
            NK_NAME(nk_ln_output)(x, y, n, &st, w, b, w_max, b_max, 0) == 0) {
            path = NK_LN_PATH_DOUBLE_MOMENTS;
        } else {
            NK_NAME(nk_ln_affine_double)(x, y, n, st.mean, st.rstd, w, b);
            path = NK_LN_PATH_DOUBLE_AFFINE;
        }
    }
    stats[0] = st.mean;
    stats[1] = st.rstd;
    if (path != NK_LN_PATH_FAST) nk_ln_count_path(path);
    return path;
}

/// The sampled shift: the mean, in double, of NK_LN_SAMPLE elements of the row (all of a
/// shorter row). Any finite value is a correct shift (the fast certificate holds for
/// every shift); a good one only makes the fast path more likely. docs/numerics.md, "The
/// shift", has how near it lands.
#define NK_LN_SAMPLE 32
_Static_assert((NK_LN_SAMPLE & (NK_LN_SAMPLE - 1)) == 0, "the sampled mean multiplies by 1 / NK_LN_SAMPLE");
/// A row of n >= NK_LN_SAMPLE elements is sampled in four runs of NK_LN_RUN consecutive
/// elements, run q (0 ..< 4) from element ⌊(2q + 1)·n/8⌋ - NK_LN_RUN/2: the middle of
/// each quarter of the row (for n = 32, the whole row). The runs take eight loads of four
/// floats where 32 scattered elements took 32 loads and conversions.
#define NK_LN_RUN 8
_Static_assert(4 * NK_LN_RUN == NK_LN_SAMPLE, "four runs make the sample");

/// The mean, in double, of x[j] for j < k (a row of k < NK_LN_SAMPLE elements, all
/// sampled), GET(j) giving the float x[j]. Four partial sums: the loads are independent,
/// and one chain of dependent additions would cost more than the loads.
#define NK_LN_SAMPLE_MEAN(k, GET)                                                        \
    ({                                                                                   \
        double part_[4] = {0, 0, 0, 0};                                                  \
        size_t j_ = 0;                                                                   \
        for (; j_ + 4 <= (k); j_ += 4)                                                   \
            for (int q_ = 0; q_ < 4; q_++) part_[q_] += (double)GET(j_ + (size_t)q_);     \
        for (; j_ < (k); j_++) part_[0] += (double)GET(j_);                              \
        ((part_[0] + part_[1]) + (part_[2] + part_[3])) / (double)(k);                   \
    })

/// The mean, in double, of a sample of four runs, GET4(q, h) giving elements 4h ..< 4h + 4
/// of run q as four floats: lane l of the runs' first halves added as a tree, the same for
/// their second halves, the two added lane by lane, then those four lanes as a tree; the
/// sum divided by 2^5 (exact).
#define NK_LN_RUNS_MEAN(GET4)                                                                           \
    ({                                                                                                  \
        typedef double d4_ __attribute__((vector_size(32)));                                            \
        const d4_ lo_ = (__builtin_convertvector(GET4(0, 0), d4_) + __builtin_convertvector(GET4(1, 0), d4_)) + \
                        (__builtin_convertvector(GET4(2, 0), d4_) + __builtin_convertvector(GET4(3, 0), d4_)); \
        const d4_ hi_ = (__builtin_convertvector(GET4(0, 1), d4_) + __builtin_convertvector(GET4(1, 1), d4_)) + \
                        (__builtin_convertvector(GET4(2, 1), d4_) + __builtin_convertvector(GET4(3, 1), d4_)); \
        const d4_ t_ = lo_ + hi_;                                                                       \
        ((t_[0] + t_[2]) + (t_[1] + t_[3])) * (1.0 / NK_LN_SAMPLE);                                     \
    })
/// Four floats from p (any alignment).
typedef float NK_NAME(nk_ln_f4) __attribute__((vector_size(16), aligned(4)));
NK_INLINE NK_NAME(nk_ln_f4) NK_NAME(nk_ln_load4)(const float *p) {
    NK_NAME(nk_ln_f4) f;
    memcpy(&f, p, sizeof f);
    return f;
}

/// Where the four runs of a row of n >= NK_LN_SAMPLE elements start.
NK_INLINE void NK_NAME(nk_ln_run_starts)(size_t n, size_t at[4]) {
    for (size_t q = 0; q < 4; q++) at[q] = (2 * q + 1) * n / 8 - NK_LN_RUN / 2;
}
/// The sample's mean from its values v: all n of a row shorter than NK_LN_SAMPLE, else
/// the four runs one after another.
NK_INLINE double NK_NAME(nk_ln_sample_mean)(const float *v, size_t n) {
    if (n < NK_LN_SAMPLE) {
#define NK_LN_GET_V(j) (v[(j)])
        return NK_LN_SAMPLE_MEAN(n, NK_LN_GET_V);
#undef NK_LN_GET_V
    }
#define NK_LN_RUN4(q, h) NK_NAME(nk_ln_load4)(v + (q) * NK_LN_RUN + 4 * (h))
    return NK_LN_RUNS_MEAN(NK_LN_RUN4);
#undef NK_LN_RUN4
}

/// Values j ..< j + NK_W (j a multiple of NK_W) of the 16-bit sample of a row whose runs
/// start at at[0 ..< 4] (n >= NK_LN_SAMPLE): run j / NK_LN_RUN from value j % NK_LN_RUN
/// on, and for NK_W = 16 the next run too, loaded from the row into one register.
NK_INLINE nk_vh NK_NAME(nk_ln_sample_halves)(const uint16_t *x, const size_t at[4], size_t j) {
#if NK_W == 2 * NK_LN_RUN
    typedef uint16_t h8 __attribute__((vector_size(2 * NK_LN_RUN), aligned(2)));
    h8 a, b;
    memcpy(&a, x + at[j / NK_LN_RUN], sizeof a);
    memcpy(&b, x + at[j / NK_LN_RUN + 1], sizeof b);
    return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    _Static_assert(NK_LN_RUN % NK_W == 0, "a vector of halves lies within one run");
    return nk_loadh(x + at[j / NK_LN_RUN] + j % NK_LN_RUN);
#endif
}

/// The sampled shift of a row of n >= 1 elements of format `fmt`: NaN or ±inf when one
/// was sampled, or when the mean overflowed float.
NK_INLINE float NK_NAME(nk_ln_sampled_shift_body)(const void *x, size_t n,
                                                  const int fmt) {
    size_t at[4] = {0, 0, 0, 0};
    if (n >= NK_LN_SAMPLE) NK_NAME(nk_ln_run_starts)(n, at);
    if (fmt == NK_ELEM_F32 && n >= NK_LN_SAMPLE) {
        const float *xf = (const float *)x;
#define NK_LN_RUN4(q, h) NK_NAME(nk_ln_load4)(xf + at[q] + 4 * (h))
        return (float)NK_LN_RUNS_MEAN(NK_LN_RUN4);
#undef NK_LN_RUN4
    }
    float v[NK_LN_SAMPLE];
    if (fmt == NK_ELEM_F32) {
        memcpy(v, x, n * sizeof(float));  // n < NK_LN_SAMPLE
    } else if (n < NK_LN_SAMPLE) {
        // The short 16-bit row, widened a vector at a time (NK_LN_SAMPLE is a multiple of
        // NK_W), then the same sum as a float row's.
        uint16_t h[NK_LN_SAMPLE] = {0};
        memcpy(h, x, n * sizeof(uint16_t));
        for (size_t j = 0; j < NK_LN_SAMPLE; j += NK_W) nk_store(v + j, nk_elem_load(h, j, fmt));
    } else {
        // The four runs of 16-bit values, each vector of them put together in registers and
        // widened there (the same floats as nk_elem_load's). Copied into a buffer instead, a
        // vector's load spans two runs' stores, which the CPU cannot forward: a stall of
        // tens of cycles a row.
        for (size_t j = 0; j < NK_LN_SAMPLE; j += NK_W)
            nk_store(v + j, nk_elem_widen(NK_NAME(nk_ln_sample_halves)((const uint16_t *)x, at, j), fmt));
    }
    return (float)NK_NAME(nk_ln_sample_mean)(v, n);
}

/// After the output certificate refused a row whose statistics *st (about `shift`) were
/// certified: its margin shrinks with the shift's distance k·σ from the mean (ρ grows as
/// 1 + k²), so re-centre once on the mean just found, when that is more than σ/32 away,
/// and try again (docs/numerics.md, "The shift"). Returns 0 when the row is now
/// certified (y and *st written), else 1.
static __attribute__((noinline)) int NK_NAME(nk_ln_recentre_body)(
    const void *x, void *y, size_t n, float shift, double eps, NK_NAME(nk_ln_stats) *st, const float *w,
    const float *b, float w_max, float b_max, int stream, const int fmt) {
    const double off = st->mean - (double)shift;
    if (!(off * off * 1024 > st->variance)) return 1;
    const float again = (float)st->mean;
    return NK_LN_FMT(nk_ln_fast_stats, fmt)(x, n, again, eps, st) != 0 ||
           NK_LN_FMT(nk_ln_output, fmt)(x, y, n, st, w, b, w_max, b_max, stream) != 0;
}

NK_INLINE int32_t NK_NAME(nk_ln_forward_row_sampled_body)(
    const void *x, void *y, size_t n, double eps, const float *w, const float *b, float w_max, float b_max,
    double *stats, int stream, const int fmt) {
    if (n == 0) return 1;
    const float shift = NK_NAME(nk_ln_sampled_shift_body)(x, n, fmt);
    NK_NAME(nk_ln_stats) st;
    // NaN or ±inf sampled, or the mean overflowed float: refused (the !(s - s == 0) test).
    // In place (y == x), the output pass writes y only once certified: a refusal leaves x.
    int refused = !(shift - shift == 0) || NK_LN_FMT(nk_ln_fast_stats, fmt)(x, n, shift, eps, &st) != 0;
    if (!refused && NK_LN_FMT(nk_ln_output, fmt)(x, y, n, &st, w, b, w_max, b_max, stream) != 0)
        refused = NK_NAME(nk_ln_recentre_body)(x, y, n, shift, eps, &st, w, b, w_max, b_max, stream, fmt);
    if (refused) {
        nk_ln_count_path(NK_LN_SAMPLED_REFUSED);
        return 1;
    }
    stats[0] = st.mean;
    stats[1] = st.rstd;
    return 0;
}

static int32_t NK_NAME(nk_ln_forward_row_sampled)(const float *x, float *y, size_t n, double eps, const float *w,
                                                  const float *b, float w_max, float b_max, double *stats) {
    return NK_NAME(nk_ln_forward_row_sampled_body)(x, y, n, eps, w, b, w_max, b_max, stats, 0, NK_ELEM_F32);
}

/// forward_row_sampled writing y through non-temporal stores (docs/performance.md,
/// "Streaming stores"): the same outcome, bits and stats.
static int32_t NK_NAME(nk_ln_forward_row_sampled_stream)(const float *x, float *y, size_t n, double eps,
                                                         const float *w, const float *b, float w_max, float b_max,
                                                         double *stats) {
    return NK_NAME(nk_ln_forward_row_sampled_body)(x, y, n, eps, w, b, w_max, b_max, stats, 1, NK_ELEM_F32);
}

/// The sampled fast path on a row of 16-bit elements (`format`: NK_ELEM_BF16 or
/// NK_ELEM_F16), converted in registers: the outcome, y's bits and stats are those of
/// forward_row_sampled on the row widened to float, with y narrowed once.
static int32_t NK_NAME(nk_ln_forward_row_sampled_half)(const uint16_t *x, uint16_t *y, size_t n, int32_t format,
                                                       double eps, const float *w, const float *b, float w_max,
                                                       float b_max, double *stats) {
    if (format == NK_ELEM_BF16)
        return NK_NAME(nk_ln_forward_row_sampled_body)(x, y, n, eps, w, b, w_max, b_max, stats, 0, NK_ELEM_BF16);
    return NK_NAME(nk_ln_forward_row_sampled_body)(x, y, n, eps, w, b, w_max, b_max, stats, 0, NK_ELEM_F16);
}

// ---- Forward over many rows, software-pipelined ----

/// The fused add's fast moments (rows of format fmt): sum = x + res stored as it is read
/// (rounded to a half format), and the moments of the stored sum about `shift`, bit for
/// bit nk_ln_row_moments_fast's on that sum.
NK_INLINE nk_moments NK_NAME(nk_ln_row_moments_fast_add)(
    const void *x, const void *res, void *sum, size_t n, float shift, const int fmt) {
    const nk_vf sv = nk_splat(shift);
    nk_vd sa = {}, sq = {};
    const void *const xa_ = x, *const ra_ = res;
    void *const sa_out_ = sum;
    NK_LN_MOMENTS_WALK(NK_LN_ADD_LOAD, NK_LN_ADD_LOAD_PART, NK_LN_ADD_PREFETCH, NK_LN_NO_STEP, NK_LN_NO_PART);
    return (nk_moments){nk_sumd_tree(sa), nk_sumd_tree(sq)};
}

/// sum = x + res over n elements of format fmt, one float addition each, rounded to a
/// half format as NK_LN_ADD_LOAD rounds it (the fused add's rows the sampled shift refuses
/// before any moments ran).
NK_INLINE void NK_NAME(nk_ln_add_row)(const void *x, const void *res, void *sum,
                                      size_t n, const int fmt) {
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) nk_elem_store(sum, i, nk_elem_load(x, i, fmt) + nk_elem_load(res, i, fmt), fmt);
    if (i < n)
        nk_elem_store_partial(sum, i, n - i,
                              nk_elem_load_partial(x, i, n - i, 0, fmt) + nk_elem_load_partial(res, i, n - i, 0, fmt),
                              fmt);
}

/// The sampled shift of the sum x + res (rows of format fmt): nk_ln_sampled_shift_body's
/// on the stored sum, each sample the value the add stores (for a half format, the float
/// sum rounded to the format, made a vector at a time as the add makes it).
NK_INLINE float NK_NAME(nk_ln_sampled_shift_add)(const void *x, const void *res,
                                                 size_t n, const int fmt) {
    size_t at[4] = {0, 0, 0, 0};
    if (n >= NK_LN_SAMPLE) NK_NAME(nk_ln_run_starts)(n, at);
    if (fmt == NK_ELEM_F32 && n >= NK_LN_SAMPLE) {
        const float *xf = (const float *)x, *rf = (const float *)res;
#define NK_LN_RUN4(q, h) (NK_NAME(nk_ln_load4)(xf + at[q] + 4 * (h)) + NK_NAME(nk_ln_load4)(rf + at[q] + 4 * (h)))
        return (float)NK_LN_RUNS_MEAN(NK_LN_RUN4);
#undef NK_LN_RUN4
    }
    float v[NK_LN_SAMPLE];
    if (fmt == NK_ELEM_F32) {
        for (size_t j = 0; j < n; j++) v[j] = ((const float *)x)[j] + ((const float *)res)[j];  // n < NK_LN_SAMPLE
    } else if (n < NK_LN_SAMPLE) {
        uint16_t hx[NK_LN_SAMPLE] = {0}, hr[NK_LN_SAMPLE] = {0}, hs[NK_LN_SAMPLE];
        memcpy(hx, x, n * sizeof(uint16_t)), memcpy(hr, res, n * sizeof(uint16_t));
        for (size_t j = 0; j < NK_LN_SAMPLE; j += NK_W) {
            nk_elem_store(hs, j, nk_elem_load(hx, j, fmt) + nk_elem_load(hr, j, fmt), fmt);
            nk_store(v + j, nk_elem_load(hs, j, fmt));
        }
    } else {
        // The sums of the runs rounded to the format, in registers (nk_ln_sampled_shift_body).
        const uint16_t *xh = (const uint16_t *)x, *rh = (const uint16_t *)res;
        for (size_t j = 0; j < NK_LN_SAMPLE; j += NK_W) {
            const nk_vf sum = nk_elem_widen(NK_NAME(nk_ln_sample_halves)(xh, at, j), fmt) +
                              nk_elem_widen(NK_NAME(nk_ln_sample_halves)(rh, at, j), fmt);
            nk_store(v + j, nk_elem_widen(nk_elem_narrow(sum, fmt), fmt));
        }
    }
    return (float)NK_NAME(nk_ln_sample_mean)(v, n);
}


/// The fast moments of row xm about `shift`, bit for bit nk_ln_row_moments_fast's (the
/// same blocks, chains and order of additions), with the output pass of an earlier row xo
/// in form *f (not scaled; `centred` is f->centred, a constant) interleaved vector by
/// vector: yo is stored (yo must not overlap xm) and max|y| goes to *big, each y_i
/// computed (and, for a half format, narrowed) as nk_ln_affine_cert_body does it. The two
/// are independent: the moments' additions and the output's multiplies share the vector
/// units better than either alone, and the moments need not wait for the earlier row's
/// statistics. Rows are of element format `fmt` (a constant).
/// With `add`, the moments' row is the sum x + res of rows xm and res, stored to `sum` as
/// it is read (NK_LN_ADD_LOAD).
NK_INLINE nk_moments NK_NAME(nk_ln_moments_and_output_body)(
    const void *xm, const void *res, void *sum, size_t n, float shift, const void *xo, void *yo,
    const NK_NAME(nk_ln_form) *f, const float *w, const float *b, float *big, const int centred, const int add,
    const int fmt) {
    const nk_vf sv = nk_splat(shift);
    const nk_vf hv = nk_splat(f->hi), lv = nk_splat(f->lo), rv = nk_splat(f->r);
    nk_vd sa = {}, sq = {};
    nk_vf ym0 = {}, ym1 = {};
    // Whole vectors stored by nk_elem_store_flush (yo is not xo), which is nk_elem_store
    // unless `flush`; then min |y| is kept to find a flushed subnormal
    // (nk_ln_affine_cert_loop's `flush`).
    const int flush = NK_ELEM_STORE_FLUSHES(fmt);
    nk_vf least = nk_splat(__builtin_inff());
#define NK_LN_OUT_Y(xv) NK_FMA(centred ? NK_FMA((xv), rv, hv) : (((xv) - hv) - lv) * rv, wv_, bv_)
/// y of the whole vector at `at`, its magnitude into the running maximum ym (and with
/// `flush` into `least`).
#define NK_LN_OUT_VEC(at, ym)                                                  \
    ({                                                                         \
        const nk_vf wv_ = nk_load(w + (at)), bv_ = nk_load(b + (at));           \
        const nk_vf y_ = NK_LN_OUT_Y(nk_elem_load(xo, (at), fmt));              \
        if (flush) least = nk_min_magnitude(least, y_);                        \
        ym = nk_max_magnitude(ym, y_);                                         \
        y_;                                                                    \
    })
    // A whole block's vectors come in pairs (c even, then c + 1 at the next vector). For
    // bfloat16 the pair is narrowed and stored together: one VCVTNE2PS2BF16 where the level
    // has it, which costs what one VCVTNEPS2BF16 does, or the integer rounding's one
    // permute for two vectors. Other formats, and the partial block's vectors
    // (c >= NK_LN_TREE_VECTORS), go one at a time (binary16 pairs were slower: the pair's
    // insert costs more than the store it saves).
    const int pair = fmt == NK_ELEM_BF16;
    nk_vf held = {};
#define NK_LN_OUT_AFTER(at, c)                                                      \
    do {                                                                            \
        if (!pair || (c) >= NK_LN_TREE_VECTORS) {                                   \
            const nk_vf y_ = (c) & 1 ? NK_LN_OUT_VEC(at, ym1) : NK_LN_OUT_VEC(at, ym0); \
            nk_elem_store_flush(yo, (at), y_, fmt);                                 \
        } else if (((c) & 1) == 0) {                                                \
            held = NK_LN_OUT_VEC(at, ym0);                                          \
        } else {                                                                    \
            const nk_vf y_ = NK_LN_OUT_VEC(at, ym1);                                \
            nk_elem_store2_flush(yo, (at) - NK_W, held, y_, fmt);                   \
        }                                                                           \
    } while (0)
    // Padding of the partial vector: x = w = b = 0 (y = 0), as in the one-row pass.
#define NK_LN_OUT_PART(at, k)                                                                          \
    do {                                                                                               \
        const nk_vf wv_ = nk_load_partial(w + (at), (k), 0), bv_ = nk_load_partial(b + (at), (k), 0); \
        const nk_vf y_ = NK_LN_OUT_Y(nk_elem_load_partial(xo, (at), (k), 0, fmt));                    \
        nk_elem_store_partial(yo, (at), (k), y_, fmt);                                                 \
        ym0 = nk_max_magnitude(ym0, y_);                                                               \
    } while (0)
    if (add) {
        const void *const xa_ = xm, *const ra_ = res;
        void *const sa_out_ = sum;
        NK_LN_MOMENTS_WALK(NK_LN_ADD_LOAD, NK_LN_ADD_LOAD_PART, NK_LN_ADD_PREFETCH, NK_LN_OUT_AFTER, NK_LN_OUT_PART);
    } else {
        const void *const xp_ = xm;
        NK_LN_MOMENTS_WALK(NK_LN_ROW_LOAD, NK_LN_ROW_LOAD_PART, NK_LN_ROW_PREFETCH, NK_LN_OUT_AFTER, NK_LN_OUT_PART);
    }
#undef NK_LN_OUT_PART
#undef NK_LN_OUT_AFTER
#undef NK_LN_OUT_VEC
#undef NK_LN_OUT_Y
    if (flush && nk_any_below(least, 0x1p-126f)) {
        // A subnormal (or zero) y: the row's output again, by the one-row pass (the same
        // y_i; it narrows exactly where a lane needs it).
        float unused = 0;
        (void)NK_NAME(nk_ln_form_pass)(f, xo, yo, n, w, b, &unused, 1, 0, 0, fmt);
    }
    *big = nk_hmax_magnitudes(nk_max_skip_nan(ym0, ym1));
    return (nk_moments){nk_sumd_tree(sa), nk_sumd_tree(sq)};
}

/// A multi-row driver's decision on a row whose output pass in form *f (statistics *st,
/// about `shift`) wrote yo and gave max|y| = `big`: the output certificate, and when it
/// refuses, the re-centring (which rewrites yo and *st). Returns 1 when the row is done.
NK_INLINE int NK_NAME(nk_ln_output_verdict)(
    const NK_NAME(nk_ln_form) *f, const void *xo, void *yo, size_t n, float shift, double eps, NK_NAME(nk_ln_stats) *st,
    const float *w, const float *b, float w_max, float b_max, float big, const int fmt) {
    return NK_NAME(nk_ln_form_certified)(f, xo, n, w, b, w_max, b_max, big, fmt) ||
           NK_NAME(nk_ln_recentre_body)(xo, yo, n, shift, eps, st, w, b, w_max, b_max, 0, fmt) == 0;
}

/// Row r's outcome in a multi-row driver: its statistics stored when `done`, else the row
/// counted and listed as refused. Returns the new count of refused rows.
NK_INLINE size_t NK_NAME(nk_ln_row_outcome)(
    int done, size_t r, const NK_NAME(nk_ln_stats) *st, double *mean, double *rstd, size_t *refused, size_t count) {
    if (done) {
        if (mean) mean[r] = st->mean;
        if (rstd) rstd[r] = st->rstd;
        return count;
    }
    nk_ln_count_path(NK_LN_SAMPLED_REFUSED);
    refused[count] = r;
    return count + 1;
}

/// forward_rows_sampled over rows of element format `fmt` (a constant); with `add`,
/// add_forward_rows_sampled(_half): row r's input is sum_r = x_r + res_r, written as its
/// moments read it (or by nk_ln_add_row when the sampled shift refuses the row), and the
/// output passes, certificates and re-centring read the sum.
NK_INLINE size_t NK_NAME(nk_ln_forward_rows_sampled_body)(
    const void *x, const void *res, void *sum, void *y, size_t rows, size_t n, double eps, const float *w,
    const float *b, float w_max, float b_max, double *mean, double *rstd, size_t *refused, const int add,
    const int fmt) {
    size_t count = 0;
    if (n == 0) {
        for (size_t r = 0; r < rows; r++) nk_ln_count_path(NK_LN_SAMPLED_REFUSED), refused[count++] = r;
        return count;
    }
    const size_t stride = n * NK_ELEM_SIZE(fmt);  // bytes per row
    // The rows the output passes read: the sums when adding.
    const void *const input = add ? (const void *)sum : x;
    // Row o: statistics certified, output pending (it runs beside row r's moments).
    int pending = 0;
    size_t o = 0;
    float shift_o = 0;
    NK_NAME(nk_ln_stats) st;
    NK_NAME(nk_ln_form) f;
    for (size_t r = 0;; r++) {
        const void *xr = (const char *)x + r * stride;
        const void *rr = add ? (const char *)res + r * stride : 0;
        void *sr = add ? (char *)sum + r * stride : 0;
        float shift = 0;
        if (r < rows) shift = add ? NK_NAME(nk_ln_sampled_shift_add)(xr, rr, n, fmt)
                                  : NK_NAME(nk_ln_sampled_shift_body)(xr, n, fmt);
        const int sampled = r < rows && shift - shift == 0;
        nk_moments m = {0, 0};
        int have_m = 0;
        if (pending) {
            const void *xo = (const char *)input + o * stride;
            void *yo = (char *)y + o * stride;
            float big, unused = 0;
            if (sampled && !f.scaled) {
                m = f.centred
                        ? NK_NAME(nk_ln_moments_and_output_body)(xr, rr, sr, n, shift, xo, yo, &f, w, b, &big, 1, add, fmt)
                        : NK_NAME(nk_ln_moments_and_output_body)(xr, rr, sr, n, shift, xo, yo, &f, w, b, &big, 0, add, fmt);
                have_m = 1;
            } else {
                big = NK_NAME(nk_ln_form_pass)(&f, xo, yo, n, w, b, &unused, 1, 0, 0, fmt);
            }
            const int done = NK_NAME(nk_ln_output_verdict)(&f, xo, yo, n, shift_o, eps, &st, w, b, w_max, b_max, big, fmt);
            count = NK_NAME(nk_ln_row_outcome)(done, o, &st, mean, rstd, refused, count);
            pending = 0;
        }
        if (r == rows) return count;
        if (sampled && !have_m)
            m = add ? NK_NAME(nk_ln_row_moments_fast_add)(xr, rr, sr, n, shift, fmt)
                    : NK_LN_FMT(nk_ln_row_moments_fast, fmt)(xr, n, shift);
        if (add && !sampled) NK_NAME(nk_ln_add_row)(xr, rr, sr, n, fmt);
        if (!sampled || NK_NAME(nk_ln_moments_certified)(m, n, shift, eps, &st) != 0) {
            nk_ln_count_path(NK_LN_SAMPLED_REFUSED);
            refused[count++] = r;
            continue;
        }
        NK_NAME(nk_ln_form_of)(&st, &f);
        o = r;
        shift_o = shift;
        pending = 1;
    }
}

/// Rows per batch of nk_ln_forward_rows_batched_body: one lane of a double vector each.
#define NK_LN_BATCH NK_W

/// A batch of up to NK_LN_BATCH rows, r0 ..< r0 + g, between its moments and its
/// outcomes: each row's sampled shift, statistics and the numbers of its output form
/// (`ok[j]`: certified by the moments; the form itself by nk_ln_batch_form, just before
/// the row's output pass), and the lanes the cheap output bound needs.
typedef struct {
    size_t r0, g;
    float shift[NK_LN_BATCH];
    double mean[NK_LN_BATCH], rstd[NK_LN_BATCH], var[NK_LN_BATCH], rho[NK_LN_BATCH], mu[NK_LN_BATCH];
    double a[NK_LN_BATCH], kappa[NK_LN_BATCH];
    float r[NK_LN_BATCH], hi[NK_LN_BATCH], lo[NK_LN_BATCH];
    int64_t ok[NK_LN_BATCH], scaled[NK_LN_BATCH], centred[NK_LN_BATCH];
    nk_vl ok_v;
    nk_vd a_v, kappa_v;
} NK_NAME(nk_ln_batch);

/// Row j's output form (a row certified by its moments): nk_ln_form_of's, from the lanes
/// of nk_ln_batch_certify (a scaled row's by nk_ln_form_of itself).
NK_INLINE void NK_NAME(nk_ln_batch_form)(const NK_NAME(nk_ln_batch) *bt, size_t j, NK_NAME(nk_ln_form) *f) {
    if (bt->scaled[j]) {
        const NK_NAME(nk_ln_stats) st = {bt->mean[j], bt->rstd[j], bt->var[j], bt->rho[j], bt->mu[j]};
        NK_NAME(nk_ln_form_of)(&st, f);
        return;
    }
    f->scaled = 0;
    f->centred = bt->centred[j] != 0;
    f->p = 1;
    f->r = bt->r[j];
    f->hi = bt->hi[j];
    f->lo = bt->lo[j];
    f->a = bt->a[j];
    f->kappa = bt->kappa[j];
}

/// The sampled shifts of rows r0 ..< r0 + g into bt->shift (lanes past g: 0).
NK_INLINE void NK_NAME(nk_ln_batch_shifts)(
    NK_NAME(nk_ln_batch) *bt, size_t r0, size_t g, const void *x, const void *res, size_t n, size_t stride,
    const int add, const int fmt) {
    bt->r0 = r0;
    bt->g = g;
    for (size_t j = 0; j < NK_LN_BATCH; j++) bt->shift[j] = 0;
    for (size_t j = 0; j < g; j++) {
        const size_t r = r0 + j;
        const void *xr = (const char *)x + r * stride;
        bt->shift[j] = add ? NK_NAME(nk_ln_sampled_shift_add)(xr, (const char *)res + r * stride, n, fmt)
                           : NK_NAME(nk_ln_sampled_shift_body)(xr, n, fmt);
    }
}

/// nk_ln_moments_certified and nk_ln_form_of for a batch, a row per lane, from its
/// moments s1, s2 (NaN for a row with no moments, and for lanes past g: refused), with the
/// same operations in the same order (contraction is off, and + - · / and the square
/// root round alike in a lane and in a scalar); a scaled row's form (a spread near
/// float's limits) by nk_ln_form_of itself.
NK_INLINE void NK_NAME(nk_ln_batch_certify)(NK_NAME(nk_ln_batch) *bt,
                                            const double *s1, const double *s2,
                                            size_t n, double eps) {
    // nk_ln_moments_certified's constants, computed as it computes them.
    const double nd = (double)n, inv_n = 1.0 / nd;
    const double tiny = nd * 0x1p-149;
    const double alpha = 1.0001 * ((NK_LN_FAST_TERMS + 2) * NK_LN_U + nd * NK_LN_EPS53);
    const double beta = 1.0001 * (NK_LN_FAST_TERMS * NK_LN_U + nd * NK_LN_EPS53);
    const double one_minus_alpha = 1 - alpha;
    nk_vd sum1, sum2;
    memcpy(&sum1, s1, sizeof sum1);
    memcpy(&sum2, s2, sizeof sum2);
    nk_vf shift_f;
    memcpy(&shift_f, bt->shift, sizeof shift_f);
    nk_vl ok = (sum1 - sum1 == 0) & (sum2 - sum2 == 0);
    const nk_vd d2_upper = (sum2 + tiny) / one_minus_alpha;
    const nk_vd e_delta = beta * nk_sqrtd(nd * d2_upper) * inv_n * 1.0001;
    const nk_vd delta = sum1 * inv_n, mean_square = sum2 * inv_n;
    ok &= ~(nk_vl)(mean_square < 0x1p-90);
    const nk_vd variance = mean_square - delta * delta;
    const nk_vd e_var = (alpha * d2_upper + tiny) * inv_n + 2 * nk_absd(delta) * e_delta + e_delta * e_delta +
                        8 * NK_LN_EPS53 * (mean_square + delta * delta);
    ok &= (nk_vl)(e_var <= 0.25 * variance);
    const nk_vd v_eps = variance + eps;
    const nk_vd mean_v = nk_widen(shift_f) + delta;
    const nk_vd rstd_v = 1.0 / nk_sqrtd(v_eps);
    const nk_vd rho = 0.6 * e_var / v_eps + 1e-15;
    const nk_vd mu = 1.25 * (e_delta + 2 * NK_LN_EPS53 * nk_absd(mean_v)) * rstd_v;
    ok &= ~(nk_vl)(rho > 64 * NK_LN_U) & ~(nk_vl)(mu > 64 * NK_LN_U);
    // nk_ln_form_of, a row per lane (a scaled row's form by nk_ln_form_of below).
    const nk_vl scaled = (nk_vl)(variance > 0) & ((nk_vl)(variance < 0x1p-200) | (nk_vl)(variance > 0x1p200) |
                                                   (nk_vl)(nk_absd(mean_v) > 0x1p100));
    const nk_vl centred = NK_HAS_FMA ? ~scaled & (nk_vl)(variance > 0) & (nk_vl)(mean_v * mean_v <= 4 * variance)
                                     : (nk_vl){};
    const nk_vd a_v = nk_selectd(centred, nk_splatd(3.0), nk_splatd(NK_HAS_FMA ? 5.0 : 6.0)) + rho / NK_LN_U;
    const nk_vd c_v = nk_selectd(centred, nk_splatd(2.01), nk_splatd(2.0)) + mu / NK_LN_U;
    const nk_vd kappa_v = (c_v + 2e-5 * a_v) / (1.0001 * a_v);
    const nk_vf r_v = __builtin_convertvector(rstd_v, nk_vf);
    const nk_vf hi_centred = __builtin_convertvector(-(mean_v * __builtin_convertvector(r_v, nk_vd)), nk_vf);
    const nk_vf hi_plain = __builtin_convertvector(mean_v, nk_vf);
    const nk_vf lo_plain = __builtin_convertvector(mean_v - __builtin_convertvector(hi_plain, nk_vd), nk_vf);
    // The form's numbers a row at a time (lane by lane extraction from registers would
    // spill the vectors once per row).
    memcpy(bt->mean, &mean_v, sizeof bt->mean), memcpy(bt->rstd, &rstd_v, sizeof bt->rstd);
    memcpy(bt->var, &variance, sizeof bt->var), memcpy(bt->rho, &rho, sizeof bt->rho);
    memcpy(bt->mu, &mu, sizeof bt->mu);
    memcpy(bt->a, &a_v, sizeof bt->a), memcpy(bt->kappa, &kappa_v, sizeof bt->kappa);
    const nk_vi centred_f = __builtin_convertvector(centred, nk_vi);  // the mask on float lanes
    const nk_vf hi_v = (nk_vf)((centred_f & (nk_vi)hi_centred) | (~centred_f & (nk_vi)hi_plain));
    const nk_vf lo_v = (nk_vf)(~centred_f & (nk_vi)lo_plain);
    memcpy(bt->r, &r_v, sizeof bt->r), memcpy(bt->hi, &hi_v, sizeof bt->hi), memcpy(bt->lo, &lo_v, sizeof bt->lo);
    memcpy(bt->ok, &ok, sizeof bt->ok), memcpy(bt->scaled, &scaled, sizeof bt->scaled);
    memcpy(bt->centred, &centred, sizeof bt->centred);
    bt->ok_v = ok;
    bt->a_v = a_v;
    bt->kappa_v = kappa_v;
}

/// A batch's outcomes, in row order, once its output passes have run (big[j]: row j's max
/// |y|; 0 for a row not certified): the cheap bound of nk_ln_form_certified and
/// nk_ln_certified a row per lane, and for a row it refuses, nk_ln_output_verdict as the
/// pipelined body takes it (the element-wise bound, then the re-centring). Returns the
/// new count of refused rows.
NK_INLINE size_t NK_NAME(nk_ln_batch_outcomes)(
    NK_NAME(nk_ln_batch) *bt, const float *big, const void *input, void *y, size_t n, size_t stride, double eps,
    const float *w, const float *b, float w_max, float b_max, double *mean, double *rstd, size_t *refused,
    size_t count, const int fmt) {
    nk_vf big_f;
    memcpy(&big_f, big, sizeof big_f);
    const nk_vd big_v = nk_widen(big_f);
    const nk_vd m_bound = (1 + 4 * NK_LN_U) * (big_v + (double)b_max) + 0x1p-140 + bt->kappa_v * (double)w_max;
    const nk_vd bound = 1.001 * NK_LN_U * (1.0001 * bt->a_v * m_bound + big_v);
    const nk_vd margin = big_v - bound;
    const nk_vd scale = nk_selectd(margin > 1, margin, nk_splatd(1.0));
    const nk_vl cheap = bt->ok_v & (nk_vl)(bound <= 1e-6 * scale);
    int64_t cheap_a[NK_LN_BATCH];
    memcpy(cheap_a, &cheap, sizeof cheap_a);
    for (size_t j = 0; j < bt->g; j++) {
        const size_t r = bt->r0 + j;
        if (cheap_a[j]) {
            if (mean) mean[r] = bt->mean[j];
            if (rstd) rstd[r] = bt->rstd[j];
            continue;
        }
        NK_NAME(nk_ln_stats) st = {bt->mean[j], bt->rstd[j], bt->var[j], bt->rho[j], bt->mu[j]};
        int done = 0;
        if (bt->ok[j]) {
            const void *xo = (const char *)input + r * stride;
            void *yo = (char *)y + r * stride;
            NK_NAME(nk_ln_form) f;
            NK_NAME(nk_ln_batch_form)(bt, j, &f);
            done = NK_NAME(nk_ln_output_verdict)(&f, xo, yo, n, bt->shift[j], eps, &st, w, b, w_max, b_max,
                                                 big[j], fmt);
        }
        count = NK_NAME(nk_ln_row_outcome)(done, r, &st, mean, rstd, refused, count);
    }
    return count;
}

/// Asks for every 64-byte line of `bytes` bytes from p into the first-level cache. The
/// batched body asks for each row a batch (NK_LN_BATCH rows) before it reads it: from
/// memory the hardware prefetcher, which starts again at every 4 KiB page, left a row of
/// 128 floats at 75 ns against 45 in cache, and this brought it to about 65
/// (docs/performance.md, "Short rows: the next batch prefetched").
NK_INLINE void NK_NAME(nk_ln_prefetch_bytes)(const char *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}

/// forward_rows_sampled_body's contract and bits, for short rows. A row's certificate is a
/// chain of dependent double operations (square roots, divisions) that the pipelined body
/// waits for once per row before the next row's output can start, and on a short row that
/// wait is most of the row's time. Here a batch of NK_LN_BATCH rows takes its steps a
/// phase at a time, so the rows' chains overlap and the certificate's arithmetic runs in
/// the lanes of double vectors, one row per lane:
///   1. the sampled shifts of the batch's rows, then their fast moments (each row's walk
///      and sums exactly nk_ln_row_moments_fast's, or the fused add's);
///   2. the moments' certificates and the output forms (nk_ln_batch_certify);
///   3. each certified row's output pass (nk_ln_form_pass, as the one-row kernel makes
///      it), then the outcomes (nk_ln_batch_outcomes).
/// Refused rows are listed in increasing order, as the pipelined body lists them. With
/// `add`, a batch's sums are all written (phase 1) before any of its outputs, so the
/// aliasing the pipelined body allows holds here too. `rows` >= 1 and 0 < n <= 2^24 (the
/// callers pick this body only then).
NK_INLINE size_t NK_NAME(nk_ln_forward_rows_batched_body)(
    const void *x, const void *res, void *sum, void *y, size_t rows, size_t n, double eps, const float *w,
    const float *b, float w_max, float b_max, double *mean, double *rstd, size_t *refused, const int add,
    const int fmt) {
    size_t count = 0;
    const size_t stride = n * NK_ELEM_SIZE(fmt);  // bytes per row
    const void *const input = add ? (const void *)sum : x;
    NK_NAME(nk_ln_batch) bt;
    for (size_t r0 = 0; r0 < rows; r0 += NK_LN_BATCH) {
        const size_t g = rows - r0 < NK_LN_BATCH ? rows - r0 : NK_LN_BATCH;
        NK_NAME(nk_ln_batch_shifts)(&bt, r0, g, x, res, n, stride, add, fmt);
        // Lanes past g, and rows whose sampled shift is not finite, get moments that
        // refuse (NaN).
        double s1[NK_LN_BATCH], s2[NK_LN_BATCH];
        for (size_t j = 0; j < NK_LN_BATCH; j++) {
            const size_t r = r0 + j;
            s1[j] = s2[j] = __builtin_nan("");
            if (j >= g) continue;
            const void *xr = (const char *)x + r * stride;
            const int sampled = bt.shift[j] - bt.shift[j] == 0;
            // Row j of the next batch, a batch ahead of its first read (past the last row
            // too: the next call's rows usually follow, and a prefetch never faults).
            NK_NAME(nk_ln_prefetch_bytes)((const char *)xr + NK_LN_BATCH * stride, stride);
            if (add) {
                const void *rr = (const char *)res + r * stride;
                void *sr = (char *)sum + r * stride;
                NK_NAME(nk_ln_prefetch_bytes)((const char *)rr + NK_LN_BATCH * stride, stride);
                if (!sampled) {
                    NK_NAME(nk_ln_add_row)(xr, rr, sr, n, fmt);
                    continue;
                }
                const nk_moments m = NK_NAME(nk_ln_row_moments_fast_add)(xr, rr, sr, n, bt.shift[j], fmt);
                s1[j] = m.sum, s2[j] = m.sum_squares;
            } else if (sampled) {
                // The walk inlined (not the per-format function): on a short row the call's
                // spills were measurable (docs/performance.md, "A sample in runs").
                const nk_moments m = NK_NAME(nk_ln_row_moments_fast_body)(xr, n, bt.shift[j], fmt);
                s1[j] = m.sum, s2[j] = m.sum_squares;
            }
        }
        NK_NAME(nk_ln_batch_certify)(&bt, s1, s2, n, eps);
        float big[NK_LN_BATCH] = {0};
        for (size_t j = 0; j < g; j++) {
            if (!bt.ok[j]) continue;
            const size_t r = r0 + j;
            float unused = 0;
            NK_NAME(nk_ln_form) f;
            NK_NAME(nk_ln_batch_form)(&bt, j, &f);
            big[j] = NK_NAME(nk_ln_form_pass)(&f, (const char *)input + r * stride, (char *)y + r * stride, n,
                                              w, b, &unused, 1, 0, 0, fmt);
        }
        count = NK_NAME(nk_ln_batch_outcomes)(&bt, big, input, y, n, stride, eps, w, b, w_max, b_max, mean, rstd,
                                              refused, count, fmt);
    }
    return count;
}

/// forward_rows_sampled_body's contract and bits (without the fused add), for rows of
/// NK_LN_BATCHES_ROW_BYTES or fewer: batches of NK_LN_BATCH rows as in
/// nk_ln_forward_rows_batched_body, each row's certificate in a lane, pipelined as in
/// nk_ln_forward_rows_sampled_body. Step k walks the rows of batch k, row j's moments
/// interleaved with the output pass of row j of batch k - 1
/// (nk_ln_moments_and_output_body), then takes batch k - 1's outcomes and batch k's
/// certificates. A row's scalar work (its certificate's square roots and divisions) is
/// then one lane of a vector operation, and no walk waits for it; the cost is that an
/// output pass reads its row a batch after the moments did (from the second-level
/// cache: hence the bound on the row's bytes). Refused rows are listed in increasing
/// order. `rows` >= 1 and 0 < n <= 2^24 (the callers pick this body only then).
NK_INLINE size_t NK_NAME(nk_ln_forward_rows_batches_body)(
    const void *x, void *y, size_t rows, size_t n, double eps, const float *w, const float *b, float w_max,
    float b_max, double *mean, double *rstd, size_t *refused, const int fmt) {
    size_t count = 0;
    const size_t stride = n * NK_ELEM_SIZE(fmt);  // bytes per row
    NK_NAME(nk_ln_batch) q[2];                    // batch k in q[k & 1]
    q[1].g = 0;
    for (size_t k = 0;; k++) {
        NK_NAME(nk_ln_batch) *const cur = &q[k & 1], *const prev = &q[(k + 1) & 1];
        const size_t r0 = k * NK_LN_BATCH;
        const size_t g = r0 < rows ? (rows - r0 < NK_LN_BATCH ? rows - r0 : NK_LN_BATCH) : 0;
        if (g == 0 && prev->g == 0) return count;
        cur->r0 = r0;
        cur->g = g;
        // Rows with no moments (past g, or a sampled shift not finite): NaN, refused.
        double s1[NK_LN_BATCH], s2[NK_LN_BATCH];
        float big[NK_LN_BATCH] = {0};
        for (size_t j = 0; j < NK_LN_BATCH; j++) {
            s1[j] = s2[j] = __builtin_nan("");
            const void *xr = (const char *)x + (r0 + j) * stride;
            // Each row's shift just before its walk (the walk's prefetch has brought its lines).
            const float shift = j < g ? NK_NAME(nk_ln_sampled_shift_body)(xr, n, fmt) : 0;
            cur->shift[j] = shift;
            const int sampled = j < g && shift - shift == 0;
            nk_moments m;
            if (j < prev->g && prev->ok[j]) {
                NK_NAME(nk_ln_form) form;
                NK_NAME(nk_ln_batch_form)(prev, j, &form);
                const void *xo = (const char *)x + (prev->r0 + j) * stride;
                void *yo = (char *)y + (prev->r0 + j) * stride;
                if (sampled && !form.scaled) {
                    m = form.centred ? NK_NAME(nk_ln_moments_and_output_body)(xr, 0, 0, n, shift, xo, yo, &form, w, b,
                                                                              &big[j], 1, 0, fmt)
                                     : NK_NAME(nk_ln_moments_and_output_body)(xr, 0, 0, n, shift, xo, yo, &form, w, b,
                                                                              &big[j], 0, 0, fmt);
                    s1[j] = m.sum, s2[j] = m.sum_squares;
                    continue;
                }
                float unused = 0;
                big[j] = NK_NAME(nk_ln_form_pass)(&form, xo, yo, n, w, b, &unused, 1, 0, 0, fmt);
            }
            if (sampled) {
                m = NK_LN_FMT(nk_ln_row_moments_fast, fmt)(xr, n, shift);
                s1[j] = m.sum, s2[j] = m.sum_squares;
            }
        }
        if (prev->g)
            count = NK_NAME(nk_ln_batch_outcomes)(prev, big, x, y, n, stride, eps, w, b, w_max, b_max, mean, rstd,
                                                  refused, count, fmt);
        NK_NAME(nk_ln_batch_certify)(cur, s1, s2, n, eps);
    }
}

/// A batch's rows in bytes, at most, for the batched body: a batch is read twice (moments,
/// then output), and the second read should find it in the first-level cache. Longer rows
/// take the pipelined batches (up to NK_LN_BATCHES_ROW_BYTES) or the pipelined body, whose
/// output passes read a row the moments read a batch or a row before.
#define NK_LN_BATCH_BYTES (16 * 1024)

/// The longest row, in bytes, of nk_ln_forward_rows_batches_body: two batches of such rows
/// (64 KB) stay in the second-level cache. Measured (docs/performance.md, "Certificates in
/// lanes for rows of middling length"): faster for rows of 1.5 KB (384 floats, 768 bf16),
/// not for 3 KB (768 floats) and up, nor with the fused add.
#define NK_LN_BATCHES_ROW_BYTES (2 * 1024)

/// The pipelined, the batched or the batches body (the same contract, refusals and bits):
/// batched for short rows, whose per-row certificate the pipelined body would wait for
/// (measured: docs/performance.md, "Short rows in batches"), pipelined batches for rows of
/// up to NK_LN_BATCHES_ROW_BYTES without the fused add.
NK_INLINE size_t NK_NAME(nk_ln_forward_rows_chosen)(
    const void *x, const void *res, void *sum, void *y, size_t rows, size_t n, double eps, const float *w,
    const float *b, float w_max, float b_max, double *mean, double *rstd, size_t *refused, const int add,
    const int fmt) {
    if (n > 0 && rows > 1 && n * NK_ELEM_SIZE(fmt) <= NK_LN_BATCH_BYTES / NK_LN_BATCH)
        return NK_NAME(nk_ln_forward_rows_batched_body)(x, res, sum, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                        refused, add, fmt);
    if (!add && rows > 1 && n * NK_ELEM_SIZE(fmt) <= NK_LN_BATCHES_ROW_BYTES)
        return NK_NAME(nk_ln_forward_rows_batches_body)(x, y, rows, n, eps, w, b, w_max, b_max, mean, rstd, refused,
                                                        fmt);
    return NK_NAME(nk_ln_forward_rows_sampled_body)(x, res, sum, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                    refused, add, fmt);
}

static size_t NK_NAME(nk_ln_forward_rows_sampled)(const float *x, float *y, size_t rows, size_t n, double eps,
                                                  const float *w, const float *b, float w_max, float b_max,
                                                  double *mean, double *rstd, size_t *refused) {
    return NK_NAME(nk_ln_forward_rows_chosen)(x, 0, 0, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                    refused, 0, NK_ELEM_F32);
}

static size_t NK_NAME(nk_ln_add_forward_rows_sampled)(const float *x, const float *res, float *sum, float *y,
                                                      size_t rows, size_t n, double eps, const float *w,
                                                      const float *b, float w_max, float b_max, double *mean,
                                                      double *rstd, size_t *refused) {
    return NK_NAME(nk_ln_forward_rows_chosen)(x, res, sum, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                    refused, 1, NK_ELEM_F32);
}

static size_t NK_NAME(nk_ln_add_forward_rows_pipelined)(const float *x, const float *res, float *sum, float *y,
                                                        size_t rows, size_t n, double eps, const float *w,
                                                        const float *b, float w_max, float b_max, double *mean,
                                                        double *rstd, size_t *refused) {
    return NK_NAME(nk_ln_forward_rows_sampled_body)(x, res, sum, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                    refused, 1, NK_ELEM_F32);
}

static size_t NK_NAME(nk_ln_forward_rows_sampled_half)(const uint16_t *x, uint16_t *y, size_t rows, size_t n,
                                                       int32_t format, double eps, const float *w, const float *b,
                                                       float w_max, float b_max, double *mean, double *rstd,
                                                       size_t *refused) {
    if (format == NK_ELEM_BF16)
        return NK_NAME(nk_ln_forward_rows_chosen)(x, 0, 0, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                        refused, 0, NK_ELEM_BF16);
    return NK_NAME(nk_ln_forward_rows_chosen)(x, 0, 0, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                    refused, 0, NK_ELEM_F16);
}

static size_t NK_NAME(nk_ln_add_forward_rows_sampled_half)(const uint16_t *x, const uint16_t *res, uint16_t *sum,
                                                           uint16_t *y, size_t rows, size_t n, int32_t format,
                                                           double eps, const float *w, const float *b, float w_max,
                                                           float b_max, double *mean, double *rstd, size_t *refused) {
    if (format == NK_ELEM_BF16)
        return NK_NAME(nk_ln_forward_rows_chosen)(x, res, sum, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                        refused, 1, NK_ELEM_BF16);
    return NK_NAME(nk_ln_forward_rows_chosen)(x, res, sum, y, rows, n, eps, w, b, w_max, b_max, mean, rstd,
                                                    refused, 1, NK_ELEM_F16);
}

static void NK_NAME(nk_ln_forward_row)(const float *x, float *y, size_t n, float shift, double eps,
                                       const float *w, const float *b, float w_max, float b_max, double *stats) {
    (void)NK_NAME(nk_ln_forward_row_path)(x, y, n, shift, eps, w, b, w_max, b_max, stats);
}

#undef NK_LN_FAST_STEP
#undef NK_LN_MOMENTS_WALK
#undef NK_LN_TREE_PAIR
#undef NK_LN_PARTIAL_BLOCK
#undef NK_LN_ROW_LOAD
#undef NK_LN_ROW_LOAD_PAIR
#undef NK_LN_ROW_LOAD_PART
#undef NK_LN_ROW_PREFETCH
#undef NK_LN_ADD_LOAD
#undef NK_LN_ADD_LOAD_PAIR
#undef NK_LN_ADD_LOAD_PART
#undef NK_LN_ADD_PREFETCH
#undef NK_LN_NO_STEP
#undef NK_LN_NO_PART

// ---- Backward ----

/// The longest float chain of the fast pass's row sums, in vectors: whole blocks are
/// twice this, added as trees of the same depth (docs/numerics.md, "Backward").
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
        dmax = nk_max_magnitude(dmax, d_);                 \
        fg += (dyv) * (wv);                                \
        fq += (d_ * (dyv)) * (wv);                         \
    } while (0)

static float NK_NAME(nk_ln_backward_centre)(const float *x, const float *dy, const float *w, size_t n, float mean_hi,
                                            float mean_lo, size_t ahead, double *sums) {
    const nk_vf hv = nk_splat(mean_hi), lv = nk_splat(mean_lo);
    nk_vf dmax = {};
    nk_vd sg = {}, sq = {};
    size_t i = 0;
    // Whole blocks of 2·NK_LN_BLOCK vectors, each sum's terms added per lane as a balanced
    // tree: pairs of vectors joined by one fused multiply-add (the second product exact in
    // it where the level has FMA), then two additions; the block's partials widened and
    // added in Double. Then chains of at most NK_LN_BLOCK terms a lane (the first into
    // zero, exactly). Either way a term meets at most 3 float roundings after its own
    // products (docs/numerics.md, "Backward").
#define NK_LN_CENTRE_PAIR(o, PG, PQ)                                                       \
    do {                                                                                   \
        __builtin_prefetch(x + (o) + ahead, 0, 2);                                         \
        __builtin_prefetch(dy + (o) + ahead, 0, 2);                                        \
        __builtin_prefetch(x + (o) + NK_W + ahead, 0, 2);                                  \
        __builtin_prefetch(dy + (o) + NK_W + ahead, 0, 2);                                 \
        const nk_vf x0_ = nk_load(x + (o)), dy0_ = nk_load(dy + (o)), w0_ = nk_load(w + (o)); \
        const nk_vf x1_ = nk_load(x + (o) + NK_W), dy1_ = nk_load(dy + (o) + NK_W),        \
                    w1_ = nk_load(w + (o) + NK_W);                                         \
        const nk_vf d0_ = (x0_ - hv) - lv, d1_ = (x1_ - hv) - lv;                          \
        dmax = nk_max_magnitude(dmax, d0_);                                                \
        dmax = nk_max_magnitude(dmax, d1_);                                                \
        (PG) = NK_FMA(dy1_, w1_, dy0_ * w0_);                                              \
        (PQ) = NK_FMA(d1_ * dy1_, w1_, (d0_ * dy0_) * w0_);                                \
    } while (0)
    for (; i + 2 * NK_LN_BLOCK * NK_W <= n; i += 2 * NK_LN_BLOCK * NK_W) {
        nk_vf g0, q0, g1, q1, g2, q2, g3, q3;
        NK_LN_CENTRE_PAIR(i, g0, q0);
        NK_LN_CENTRE_PAIR(i + 2 * NK_W, g1, q1);
        NK_LN_CENTRE_PAIR(i + 4 * NK_W, g2, q2);
        NK_LN_CENTRE_PAIR(i + 6 * NK_W, g3, q3);
        sg += nk_widen((g0 + g1) + (g2 + g3));
        sq += nk_widen((q0 + q1) + (q2 + q3));
    }
#undef NK_LN_CENTRE_PAIR
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
    sums[0] = nk_sumd_tree(sg);
    sums[1] = nk_sumd_tree(sq);
    return NK_NAME(nk_hmax)(dmax);
}
#undef NK_LN_CENTRE_STEP

/// One vector of the fast pass 2: e = fma(dy·w, r, fma(x, beta, gamma)), and the block's
/// partials pw = fma(((x - hi) - lo)·s, dy, pw), pb += dy where wanted (NK_FMA: one rounding
/// where the level has FMA, two at the baseline level; the bound counts two).
NK_INLINE nk_vf NK_NAME(nk_ln_affine_step)(
    nk_vf xv, nk_vf dyv, nk_vf wv, nk_vf rv, nk_vf bv, nk_vf gv, nk_vf hv, nk_vf lv, nk_vf sv, nk_vf *pwv,
    nk_vf *pbv, int want_w, int want_b) {
    if (want_w) *pwv = NK_FMA(((xv - hv) - lv) * sv, dyv, *pwv);
    if (want_b) *pbv = *pbv + dyv;
    return NK_FMA(dyv * wv, rv, NK_FMA(xv, bv, gv));
}

/// The fast pass 2 over `rows` (1 or 2, a constant) consecutive rows (x, dy and out of row
/// k at +k·n) that add into the same partials: at each vector, row 1's step, then row 2's,
/// with pw and pb kept in registers between them. Two rows give the same operations in the
/// same order as two one-row passes, so the same bits, with each partial read and written
/// once a vector instead of twice. q[6k ..< 6k + 6] are row k's rstd, beta, gamma,
/// mean_hi, mean_lo, s; maxima[k] gets row k's max|out|. Prefetches `prefetch` + k·n, the
/// rows' outputs ahead, for writing.
NK_INLINE void NK_NAME(nk_ln_backward_affine_rows_body)(
    const float *dy, const float *w, const float *x, float *out, size_t n, const float *q, float *pw, float *pb,
    const float *prefetch, float *maxima, const int rows, int want_w, int want_b) {
    nk_vf rv[2], bv[2], gv[2], hv[2], lv[2], sv[2], emax[2] = {};
    for (int k = 0; k < rows; k++) {
        const float *qk = q + 6 * k;
        rv[k] = nk_splat(qk[0]), bv[k] = nk_splat(qk[1]), gv[k] = nk_splat(qk[2]);
        hv[k] = nk_splat(qk[3]), lv[k] = nk_splat(qk[4]), sv[k] = nk_splat(qk[5]);
    }
    size_t i = 0;
    for (; i + NK_W <= n; i += NK_W) {
        for (int k = 0; k < rows; k++) __builtin_prefetch(prefetch + (size_t)k * n + i, 1, 2);
        nk_vf pwv = {}, pbv = {};
        if (want_w) pwv = nk_load(pw + i);
        if (want_b) pbv = nk_load(pb + i);
        const nk_vf wv = nk_load(w + i);
        for (int k = 0; k < rows; k++) {
            const size_t o = (size_t)k * n + i;
            const nk_vf e = NK_NAME(nk_ln_affine_step)(nk_load(x + o), nk_load(dy + o), wv, rv[k], bv[k], gv[k], hv[k],
                                                        lv[k], sv[k], &pwv, &pbv, want_w, want_b);
            nk_store(out + o, e);
            emax[k] = nk_max_magnitude(emax[k], e);
        }
        if (want_w) nk_store(pw + i, pwv);
        if (want_b) nk_store(pb + i, pbv);
    }
    float m[2];
    for (int k = 0; k < rows; k++) m[k] = NK_NAME(nk_hmax)(emax[k]);
    if (i < n) {
        const size_t k_ = n - i;
        nk_vf pwv = {}, pbv = {};
        if (want_w) pwv = nk_load_partial(pw + i, k_, 0);
        if (want_b) pbv = nk_load_partial(pb + i, k_, 0);
        const nk_vf wv = nk_load_partial(w + i, k_, 0);
        for (int k = 0; k < rows; k++) {
            const size_t o = (size_t)k * n + i;
            const nk_vf e = NK_NAME(nk_ln_affine_step)(nk_load_partial(x + o, k_, 0), nk_load_partial(dy + o, k_, 0),
                                                        wv, rv[k], bv[k], gv[k], hv[k], lv[k], sv[k], &pwv, &pbv,
                                                        want_w, want_b);
            nk_store_partial(out + o, k_, e);
            for (size_t j = 0; j < k_; j++) {
                const float a = __builtin_fabsf(e[j]);
                m[k] = a > m[k] ? a : m[k];
            }
        }
        if (want_w) nk_store_partial(pw + i, k_, pwv);
        if (want_b) nk_store_partial(pb + i, k_, pbv);
    }
    for (int k = 0; k < rows; k++) maxima[k] = m[k];
}

/// nk_ln_backward_affine_rows_body with `want_w`, `want_b` constants: pw or pb NULL means
/// that partial is not wanted.
#define NK_LN_AFFINE_ROWS(ROWS)                                                                                  \
    do {                                                                                                         \
        if (pw && pb)                                                                                            \
            NK_NAME(nk_ln_backward_affine_rows_body)(dy, w, x, out, n, q, pw, pb, prefetch, maxima, ROWS, 1, 1); \
        else if (pw)                                                                                             \
            NK_NAME(nk_ln_backward_affine_rows_body)(dy, w, x, out, n, q, pw, pb, prefetch, maxima, ROWS, 1, 0); \
        else if (pb)                                                                                             \
            NK_NAME(nk_ln_backward_affine_rows_body)(dy, w, x, out, n, q, pw, pb, prefetch, maxima, ROWS, 0, 1); \
        else                                                                                                     \
            NK_NAME(nk_ln_backward_affine_rows_body)(dy, w, x, out, n, q, pw, pb, prefetch, maxima, ROWS, 0, 0); \
    } while (0)

static float NK_NAME(nk_ln_backward_affine)(const float *dy, const float *w, const float *x, float *out, size_t n,
                                            float rstd, float beta, float gamma, float mean_hi, float mean_lo,
                                            float s, float *pw, float *pb, const float *prefetch) {
    const float q[6] = {rstd, beta, gamma, mean_hi, mean_lo, s};
    float maxima[1];
    NK_LN_AFFINE_ROWS(1);
    return maxima[0];
}

static void NK_NAME(nk_ln_backward_affine2)(const float *dy, const float *w, const float *x, float *out, size_t n,
                                            const float *q, float *pw, float *pb, const float *prefetch,
                                            float *maxima) {
    NK_LN_AFFINE_ROWS(2);
}
#undef NK_LN_AFFINE_ROWS

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
    sums[0] = nk_sumd_tree(sg);
    sums[1] = nk_sumd_tree(sq);
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
        tmax = nk_max_magnitude(tmax, t);
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

/// nk_ln_row_moments_fast on float rows, typed for the table.
static nk_moments NK_NAME(nk_ln_row_moments_fast_f32)(const float *x, size_t n, float shift) {
    return NK_NAME(nk_ln_row_moments_fast)(x, n, shift);
}

const nk_layernorm_kernels NK_NAME(nk_layernorm_kernels) = {
    .row_moments = NK_NAME(nk_ln_row_moments),
    .row_moments_fast = NK_NAME(nk_ln_row_moments_fast_f32),
    .affine = NK_NAME(nk_ln_affine),
    .forward_row = NK_NAME(nk_ln_forward_row),
    .forward_row_path = NK_NAME(nk_ln_forward_row_path),
    .forward_row_sampled = NK_NAME(nk_ln_forward_row_sampled),
    .forward_row_sampled_stream = NK_NAME(nk_ln_forward_row_sampled_stream),
    .forward_rows_sampled = NK_NAME(nk_ln_forward_rows_sampled),
    .add_forward_rows_sampled = NK_NAME(nk_ln_add_forward_rows_sampled),
    .add_forward_rows_pipelined = NK_NAME(nk_ln_add_forward_rows_pipelined),
    .add_forward_rows_sampled_half = NK_NAME(nk_ln_add_forward_rows_sampled_half),
    .forward_rows_sampled_half = NK_NAME(nk_ln_forward_rows_sampled_half),
    .forward_row_sampled_half = NK_NAME(nk_ln_forward_row_sampled_half),
    .half_in_registers = NK_HALF_IN_REGISTERS,
    .backward_centre = NK_NAME(nk_ln_backward_centre),
    .backward_affine = NK_NAME(nk_ln_backward_affine),
    .backward_affine2 = NK_NAME(nk_ln_backward_affine2),
    .backward_normalize = NK_NAME(nk_ln_backward_normalize),
    .backward_combine = NK_NAME(nk_ln_backward_combine),
    .backward_accumulate = NK_NAME(nk_ln_backward_accumulate),
    .scale = NK_NAME(nk_ln_scale),
};
