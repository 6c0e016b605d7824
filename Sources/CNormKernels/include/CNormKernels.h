// NormKit's kernel layer: element-wise loops compiled for several instruction sets
// and chosen at run time (docs/architecture.md, "Kernel layer").
//
// Every kernel family has a table of function pointers per level, got with its
// `..._for(level)` function; the table of a level the CPU (or the OS) does not
// support is NULL, so unsupported code can never be reached.
#ifndef CNORMKERNELS_H
#define CNORMKERNELS_H

#include <stddef.h>
#include <stdint.h>

#pragma clang assume_nonnull begin

/// Instruction-set levels, lowest first.
#define NK_ISA_BASELINE 0  ///< SSE2 on x86-64, NEON on arm64: what every build runs.
#define NK_ISA_AVX2 1      ///< AVX2 + FMA (x86-64 only).
#define NK_ISA_AVX512 2    ///< AVX-512 F/VL/BW/DQ (x86-64 only).

/// The highest level this CPU and OS support: cpuid for the instructions, xgetbv for
/// the register state the OS saves (YMM for AVX2, opmask/ZMM for AVX-512). Computed
/// once; `NK_ISA_BASELINE` off x86-64.
int32_t nk_isa_detected(void);

/// The LayerNorm kernels of one level.
typedef struct nk_layernorm_kernels {
    /// out[0] = Σ (x[i] - shift), out[1] = Σ (x[i] - shift)², both in double:
    /// every difference and square is exact or rounded once in double, whatever the
    /// row's magnitude (a float squared cannot overflow or underflow a double).
    void (*row_moments)(const float *x, size_t n, float shift, double *out);
    /// y = ((x - mean_hi) - mean_lo)·scale·w + b (the mean as the sum of two floats).
    void (*affine)(const float *x, float *y, size_t n, float mean_hi, float mean_lo, float scale,
                   const float *w, const float *b);
} nk_layernorm_kernels;

/// The LayerNorm table of `level`, or NULL when this CPU lacks it.
const nk_layernorm_kernels *_Nullable nk_layernorm_kernels_for(int32_t level);

#pragma clang assume_nonnull end

#endif
