// Throughput of the AVX-512 conversions and shuffles the 16-bit row kernels use, alone
// and beside float additions, to see which vector ports each occupies. Each loop runs
// independent instructions (no dependency chain), so its time per iteration is set by
// the ports. Build and run from the repository root (the CPU needs AVX512_BF16):
//
//   clang -O2 scripts/time-conversions.c -o /tmp/time-conversions && /tmp/time-conversions
//
// Read it against `4 vaddps` (two per cycle on two ports): an instruction alone at
// 1 per cycle uses one port; a mix that takes longer than the sum of its parts on
// separate ports shares them (docs/performance.md, "bfloat16 outputs narrowed in pairs").
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
#define N 100000000L
#define TIME(name, body)                                                                                 \
    do {                                                                                                 \
        const double t0 = now();                                                                         \
        for (long i = 0; i < N; i++)                                                                     \
            __asm__ volatile(body ::: "xmm1", "xmm3", "xmm5", "xmm7", "xmm9", "xmm11");                   \
        printf("%-34s %.3f ns per iteration\n", name, (now() - t0) / N * 1e9);                           \
    } while (0)

int main(void) {
    if (!__builtin_cpu_supports("avx512bf16")) {
        fprintf(stderr, "this CPU has no AVX512_BF16\n");
        return 1;
    }
    TIME("4 vaddps", "vaddps %%zmm4,%%zmm8,%%zmm5\n vaddps %%zmm6,%%zmm8,%%zmm7\n"
                     "vaddps %%zmm4,%%zmm8,%%zmm9\n vaddps %%zmm6,%%zmm8,%%zmm11\n");
    TIME("2 vcvtneps2bf16 (1 vector each)", "vcvtneps2bf16 %%zmm0,%%ymm1\n vcvtneps2bf16 %%zmm2,%%ymm3\n");
    TIME("2 vcvtne2ps2bf16 (2 vectors each)", "vcvtne2ps2bf16 %%zmm0,%%zmm8,%%zmm1\n vcvtne2ps2bf16 %%zmm2,%%zmm8,%%zmm3\n");
    TIME("2 vcvtne2ps2bf16 + 4 vaddps", "vcvtne2ps2bf16 %%zmm0,%%zmm8,%%zmm1\n vcvtne2ps2bf16 %%zmm2,%%zmm8,%%zmm3\n"
                                         "vaddps %%zmm4,%%zmm8,%%zmm5\n vaddps %%zmm6,%%zmm8,%%zmm7\n"
                                         "vaddps %%zmm4,%%zmm8,%%zmm9\n vaddps %%zmm6,%%zmm8,%%zmm11\n");
    TIME("2 vpermw", "vpermw %%zmm0,%%zmm8,%%zmm1\n vpermw %%zmm2,%%zmm8,%%zmm3\n");
    TIME("2 vpermw + 2 vaddps", "vpermw %%zmm0,%%zmm8,%%zmm1\n vpermw %%zmm2,%%zmm8,%%zmm3\n"
                                "vaddps %%zmm4,%%zmm8,%%zmm5\n vaddps %%zmm6,%%zmm8,%%zmm7\n");
    TIME("2 vcvtps2ph + 2 vaddps", "vcvtps2ph $4,%%zmm0,%%ymm1\n vcvtps2ph $4,%%zmm2,%%ymm3\n"
                                   "vaddps %%zmm4,%%zmm8,%%zmm5\n vaddps %%zmm6,%%zmm8,%%zmm7\n");
    TIME("2 vcvtph2ps + 2 vaddps", "vcvtph2ps %%ymm0,%%zmm1\n vcvtph2ps %%ymm2,%%zmm3\n"
                                   "vaddps %%zmm4,%%zmm8,%%zmm5\n vaddps %%zmm6,%%zmm8,%%zmm7\n");
    TIME("2 vrangeps", "vrangeps $10,%%zmm0,%%zmm8,%%zmm1\n vrangeps $10,%%zmm2,%%zmm8,%%zmm3\n");
    return 0;
}
