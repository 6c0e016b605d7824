// Loads and stores of half-precision rows (kernels/half.h), per instruction set.
#ifndef NK_HALF_H
#define NK_HALF_H

#include "CNormKernels.h"

#pragma clang assume_nonnull begin

/// Conversions between rows of a 16-bit float format and float, for one level and one
/// format (bfloat16 or IEEE binary16). Every level gives the same bits:
/// - widening is exact (a NaN keeps its sign and payload, with the quiet bit set);
/// - narrowing rounds to nearest, ties to even, overflows to ±infinity, rounds into
///   the format's subnormals, and turns a NaN into a quiet NaN of the same sign whose
///   payload is the float payload's top bits.
/// Outputs may not overlap inputs.
typedef struct nk_half_format_kernels {
    /// y[i] = float(x[i]), exactly.
    void (*widen)(const uint16_t *x, float *y, size_t n);
    /// y[i] = x[i] rounded to the format.
    void (*narrow)(const float *x, uint16_t *y, size_t n);
    /// sum[i] = (float(a[i]) + float(b[i])) rounded to the format, once (the float sum
    /// of two values of the format rounds to the same result as their exact sum: float
    /// has more than twice the format's precision plus two bits), and rounded[i] =
    /// float(sum[i]) unless `rounded` is NULL. `sum` may be `a` or `b` (each element is
    /// read before it is written).
    void (*add)(const uint16_t *a, const uint16_t *b, uint16_t *sum, float *_Nullable rounded, size_t n);
    /// How this level converts: "integer", "F16C", "AVX-512", "AVX-512 BF16".
    const char *method;
} nk_half_format_kernels;

/// The half-precision conversions of one level.
typedef struct nk_half_kernels {
    nk_half_format_kernels bfloat16;
    nk_half_format_kernels float16;
} nk_half_kernels;

/// The half table of `level`, or NULL when this CPU lacks it. At the AVX2 level float16
/// uses F16C when the CPU has it (cpuid), at the AVX-512 level bfloat16 uses
/// VCVTNEPS2BF16 when the CPU has AVX512_BF16; otherwise the same integer code as the
/// baseline, vectorised for the level.
const nk_half_kernels *_Nullable nk_half_kernels_for(int32_t level);

#pragma clang assume_nonnull end

#endif
