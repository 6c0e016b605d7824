// Included first by each per-ISA source file, after it defines NK_LEVEL (0, 1 or 2):
//
//   #define NK_LEVEL 2
//   #include "isa/begin.h"
//   #include "layernorm.h"      // the math, written once
//   #include "isa/end.h"
//
// It gives the body:
//   NK_W               floats per vector: the level's register width (4, 8 or 16)
//   nk_vf, nk_vd       float and double vectors of NK_W lanes (clang vector extensions)
//   nk_load/nk_store   unaligned loads and stores of nk_vf
//   NK_FMA(a, b, c)    a·b + c, fused (one rounding) where the level has FMA, else two roundings
//   NK_NAME(f)         f_baseline, f_avx2 or f_avx512 (f_avx2f16c, f_avx512bf16 for the
//                      F16C and AVX512_BF16 variants of the avx2 and avx512 levels):
//                      the level's own symbol names
//   NK_HAS_FMA         1 when NK_FMA is fused
// and puts every function up to isa/end.h under the level's target attribute
// (`#pragma clang attribute`), so no compiler flag is needed. x86 levels above the
// baseline compile to nothing off x86-64 (NK_ENABLED is 0 there).
#include <string.h>
#include "CNormKernels.h"

#if NK_LEVEL == 0
#define NK_ENABLED 1
#define NK_W 4
#define NK_SUFFIX baseline
#define NK_HAS_FMA 0
#elif NK_LEVEL == 1 && defined(__x86_64__) && defined(NK_F16C)
// The avx2 level's variant for CPUs with F16C (a file defines NK_F16C before this
// header; its table is chosen by cpuid: isa/table.h).
#define NK_ENABLED 1
#define NK_W 8
#define NK_SUFFIX avx2f16c
#define NK_HAS_FMA 1
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif NK_LEVEL == 1 && defined(__x86_64__)
#define NK_ENABLED 1
#define NK_W 8
#define NK_SUFFIX avx2
#define NK_HAS_FMA 1
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif NK_LEVEL == 2 && defined(__x86_64__) && defined(NK_AVX512BF16)
// The avx512 level's variant for CPUs with AVX512_BF16 (a file defines NK_AVX512BF16
// before this header; its table is chosen by cpuid: isa/table.h).
#define NK_ENABLED 1
#define NK_W 16
#define NK_SUFFIX avx512bf16
#define NK_HAS_FMA 1
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma"))), \
                             apply_to = function)
#elif NK_LEVEL == 2 && defined(__x86_64__)
#define NK_ENABLED 1
#define NK_W 16
#define NK_SUFFIX avx512
#define NK_HAS_FMA 1
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#else
#define NK_ENABLED 0
#endif

#if NK_ENABLED
// NK_INLINE: how every function of the math is declared. Optimised builds inline them
// always, so the constant arguments that pick a form (an element format, the fused add)
// fold away. Unoptimised builds (`swift build` in debug) keep them functions: at -O0
// clang still inlines always_inline functions but gives each inlined copy's locals their
// own stack slots, and the row kernels, built from hundreds of such copies, needed frames
// of up to 11 MB, more than a thread's stack (docs/reliability.md, "Stack use").
#if defined(__OPTIMIZE__)
#define NK_INLINE static inline __attribute__((always_inline))
#else
#define NK_INLINE static inline
#endif
#define NK_CAT2(a, b) a##_##b
#define NK_CAT(a, b) NK_CAT2(a, b)
#define NK_NAME(f) NK_CAT(f, NK_SUFFIX)

// The math's rounding is exactly what the code says: no contraction of a·b + c into
// an FMA behind our back (NK_FMA says where one is wanted).
#pragma clang fp contract(off)

// Vectors wider than the level's registers (the baseline's 8 floats, AVX2's 8
// doubles) are passed between static, always-inlined helpers of this file only:
// no call ever crosses an ABI boundary with them.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float nk_vf __attribute__((vector_size(NK_W * 4)));
typedef double nk_vd __attribute__((vector_size(NK_W * 8)));
typedef int32_t nk_vi __attribute__((vector_size(NK_W * 4)));
/// A comparison of two nk_vd: all ones in a lane where it holds, else 0.
typedef __typeof__((nk_vd){} > (nk_vd){}) nk_vl;

NK_INLINE nk_vf nk_load(const float *p) {
    nk_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
NK_INLINE void nk_store(float *p, nk_vf v) { memcpy(p, &v, sizeof v); }
/// A non-temporal store of v at p, which must be aligned to the vector's size: the
/// line goes to memory without being read first or kept in cache (a plain store off
/// x86). Ordered with other threads' reads only after nk_stream_fence().
NK_INLINE void nk_store_stream(float *p, nk_vf v) {
#if defined(__x86_64__)
    __builtin_nontemporal_store(v, (nk_vf *)(void *)p);
#else
    nk_store(p, v);
#endif
}
NK_INLINE nk_vf nk_splat(float s) { return (nk_vf){} + s; }
// Macros, not functions, for double vectors: at the AVX2 level they are 512 bits wide,
// which no AVX2 calling convention passes in registers.
#define nk_splatd(s) ((nk_vd){} + (double)(s))
#define nk_widen(v) __builtin_convertvector((v), nk_vd)
/// |v| of a double vector (clears the sign bits).
#define nk_absd(v) ((nk_vd)((nk_vl)(v) & 0x7fffffffffffffffLL))
/// The correctly rounded square root of each lane (the same bits as __builtin_sqrt on it).
#if __has_builtin(__builtin_elementwise_sqrt)
#define nk_sqrtd(v) __builtin_elementwise_sqrt(v)
#else
#define nk_sqrtd(v)                                                                              \
    ({                                                                                           \
        nk_vd nk_sqrt_v_ = (v);                                                                  \
        for (int nk_sqrt_i_ = 0; nk_sqrt_i_ < NK_W; nk_sqrt_i_++)                                \
            nk_sqrt_v_[nk_sqrt_i_] = __builtin_sqrt(nk_sqrt_v_[nk_sqrt_i_]);                     \
        nk_sqrt_v_;                                                                              \
    })
#endif
/// Per lane, a where the mask (a comparison of nk_vd) is set, else b.
#define nk_selectd(mask, a, b) ((nk_vd)(((nk_vl)(mask) & (nk_vl)(a)) | (~(nk_vl)(mask) & (nk_vl)(b))))
/// Σ of the lanes of a double vector, lane 0 first.
#define nk_sumd(v)                                    \
    ({                                                \
        const nk_vd nk_sum_v_ = (v);                  \
        double nk_sum_s_ = 0;                         \
        for (int nk_sum_i_ = 0; nk_sum_i_ < NK_W; nk_sum_i_++) nk_sum_s_ += nk_sum_v_[nk_sum_i_]; \
        nk_sum_s_;                                    \
    })

/// Σ of the lanes of a double vector as a tree: lanes i and i + NK_W/2 first, and so on
/// halving; log2(NK_W) dependent additions where nk_sumd makes NK_W. Its rounding differs
/// from nk_sumd's; a bound that holds for any order of the additions holds for both.
#define nk_sumd_tree(v)                                                                               \
    ({                                                                                                \
        nk_vd nk_tree_v_ = (v);                                                                       \
        for (int nk_tree_h_ = NK_W / 2; nk_tree_h_ >= 1; nk_tree_h_ /= 2)                             \
            for (int nk_tree_i_ = 0; nk_tree_i_ < nk_tree_h_; nk_tree_i_++)                           \
                nk_tree_v_[nk_tree_i_] += nk_tree_v_[nk_tree_i_ + nk_tree_h_];                        \
        nk_tree_v_[0];                                                                                \
    })

#if NK_LEVEL == 2
#include <immintrin.h>
/// The first `k` (< NK_W) floats of `p` in a vector, the other lanes `fill`: a masked
/// load, which reads (and can fault on) none of the masked-off lanes.
NK_INLINE nk_vf nk_load_partial(const float *p, size_t k, float fill) {
    return (nk_vf)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << k) - 1), p);
}
/// Stores the first `k` (< NK_W) lanes of `v` at `p` (a masked store: nothing else is written).
NK_INLINE void nk_store_partial(float *p, size_t k, nk_vf v) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << k) - 1), (__m512)v);
}
#else
/// The first `k` (< NK_W) floats of `p` in a vector, the other lanes `fill`.
NK_INLINE nk_vf nk_load_partial(const float *p, size_t k, float fill) {
    float tmp[NK_W];
    for (size_t i = 0; i < NK_W; i++) tmp[i] = fill;
    memcpy(tmp, p, k * sizeof(float));
    return nk_load(tmp);
}
/// Stores the first `k` (< NK_W) lanes of `v` at `p`.
NK_INLINE void nk_store_partial(float *p, size_t k, nk_vf v) {
    float tmp[NK_W];
    nk_store(tmp, v);
    memcpy(p, tmp, k * sizeof(float));
}
#endif

/// a > m ? a : m per lane (m where a is NaN): one maxps/vmaxps, not the NaN-ordering
/// maxNum sequence, so a running maximum is no long dependency chain.
NK_INLINE nk_vf nk_max_skip_nan(nk_vf m, nk_vf a) {
    const nk_vi gt = a > m;
    return (nk_vf)((gt & (nk_vi)a) | (~gt & (nk_vi)m));
}
/// a < m ? a : m per lane (m where a is NaN).
NK_INLINE nk_vf nk_min_skip_nan(nk_vf m, nk_vf a) {
    const nk_vi lt = a < m;
    return (nk_vf)((lt & (nk_vi)a) | (~lt & (nk_vi)m));
}
/// The largest lane of a vector of values >= +0 (no NaN, no -0: a running maximum of
/// magnitudes), as a tree: log2(NK_W) dependent steps. Exact, so the same value as any
/// other order.
NK_INLINE float nk_hmax_magnitudes(nk_vf v) {
    for (int h = NK_W / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++) v[i] = v[i + h] > v[i] ? v[i + h] : v[i];
    return v[0];
}
/// Whether a lane of v holding no NaN is below c: one comparison and a mask test, not a
/// tree of log2(NK_W) minimums.
NK_INLINE int nk_any_below(nk_vf v, float c) { return __builtin_reduce_or(v < nk_splat(c)) != 0; }
/// |v| (clears the sign bits).
NK_INLINE nk_vf nk_abs(nk_vf v) { return (nk_vf)((nk_vi)v & 0x7fffffff); }
#if NK_LEVEL == 2
/// VRANGEPS of m and v with the constant imm8 `imm`, in every lane (4:
/// _MM_FROUND_CUR_DIRECTION, no exception suppression).
#define NK_RANGEPS(m, v, imm)                                                                           \
    ((nk_vf)__builtin_ia32_rangeps512_mask((__attribute__((vector_size(64))) float)(m),                 \
                                           (__attribute__((vector_size(64))) float)(v), (imm),          \
                                           (__attribute__((vector_size(64))) float)(m), (unsigned short)0xffff, 4))
#endif
/// max(m, |v|) per lane, m where v is NaN: nk_max_skip_nan(m, nk_abs(v)), for a running
/// maximum m >= +0 (never NaN) of an arithmetic result v (never a signalling NaN). On
/// AVX-512 one VRANGEPS (imm8 0b1011: the larger magnitude, sign cleared), which returns
/// the other operand where one is a quiet NaN (Intel SDM, VRANGEPS, its NaN table); the
/// two-operation form at the other levels. One vector operation fewer per element in the
/// output passes, whose vector pipes are full (docs/performance.md, "One operation fewer
/// for the certificate's maximum").
NK_INLINE nk_vf nk_max_magnitude(nk_vf m, nk_vf v) {
#if NK_LEVEL == 2
    return NK_RANGEPS(m, v, 0x0B);
#else
    return nk_max_skip_nan(m, nk_abs(v));
#endif
}
/// min(m, |v|) per lane, m where v is NaN: nk_min_skip_nan(m, nk_abs(v)), for a running
/// minimum m >= +0 (never NaN) of an arithmetic result v (never a signalling NaN). On
/// AVX-512 one VRANGEPS (imm8 0b1010: the smaller magnitude, sign cleared), with the NaN
/// rule of nk_max_magnitude; the two-operation form at the other levels.
NK_INLINE nk_vf nk_min_magnitude(nk_vf m, nk_vf v) {
#if NK_LEVEL == 2
    return NK_RANGEPS(m, v, 0x0A);
#else
    return nk_min_skip_nan(m, nk_abs(v));
#endif
}

#if NK_HAS_FMA
#define NK_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#else
#define NK_FMA(a, b, c) ((a) * (b) + (c))
#endif

#endif
