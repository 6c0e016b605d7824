// Every 16-bit pattern widened and every one of the 2^32 floats narrowed, in both
// half formats, at every instruction-set level this CPU has: all must give the
// baseline's (integer) bits. About a minute and a half on one core; not part of CI.
//
//   clang -O2 -ISources/CNormKernels/include -ISources/CNormKernels scripts/check-half-exhaustive.c \
//       Sources/CNormKernels/half_*.c Sources/CNormKernels/dispatch.c -o .build/check-half && .build/check-half
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CNormKernels.h"

#define N (1u << 20)

int main(void) {
    const nk_half_kernels *t[3];
    const int top = nk_isa_detected();
    for (int l = 0; l <= top; l++) {
        t[l] = nk_half_kernels_for(l);
        printf("level %d: bfloat16 %s, float16 %s\n", l, t[l]->bfloat16.method, t[l]->float16.method);
    }
    long bad = 0;
    static uint16_t h[65536];
    static float w[3][65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    for (int f = 0; f < 2; f++) {
        for (int l = 0; l <= top; l++) (f ? t[l]->float16 : t[l]->bfloat16).widen(h, w[l], 65536);
        for (int l = 1; l <= top; l++)
            for (int i = 0; i < 65536; i++)
                if (memcmp(&w[0][i], &w[l][i], 4) && bad++ < 10) printf("widen format %d level %d differs at %04x\n", f, l, i);
    }
    float *x = malloc(N * sizeof(float));
    uint16_t *o[3];
    for (int l = 0; l < 3; l++) o[l] = malloc(N * sizeof(uint16_t));
    for (uint64_t base = 0; base < (1ull << 32); base += N) {
        for (uint32_t i = 0; i < N; i++) {
            const uint32_t b = (uint32_t)(base + i);
            memcpy(&x[i], &b, 4);
        }
        for (int f = 0; f < 2; f++) {
            for (int l = 0; l <= top; l++) (f ? t[l]->float16 : t[l]->bfloat16).narrow(x, o[l], N);
            for (int l = 1; l <= top; l++)
                if (memcmp(o[0], o[l], N * sizeof(uint16_t)))
                    for (uint32_t i = 0; i < N; i++)
                        if (o[0][i] != o[l][i] && bad++ < 10)
                            printf("narrow format %d level %d differs at %08llx: %04x vs %04x\n", f, l,
                                   (unsigned long long)(base + i), o[0][i], o[l][i]);
        }
    }
    printf("%ld differences\n", bad);
    return bad != 0;
}
