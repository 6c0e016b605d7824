// LayerNorm's fast backward over ROWS rows of N floats at the AVX-512 level, two ways,
// alternated in one run: "one row a pass" (backward_centre, then backward_affine, row by
// row) and "two rows a pass" (backward_centre of two rows, then backward_affine2 over
// both), as BackwardJob calls them, with both partial sums wanted, x and dy prefetched
// 2304 floats ahead and dx's rows ahead prefetched for writing. x ~ U[-0.5, 0.5),
// dy ~ U[-0.5, 0.5), w = 1. Prints the median and fastest of 9 timings of each, in ns
// per row. Build and run from the repository root:
//
//   S=Sources/CNormKernels; clang -O2 -I$S -I$S/include scripts/time-backward-rows.c -lm -o /tmp/time-bw
//   /tmp/time-bw 768 1024 100     # in cache ([1,1024,768])
//   /tmp/time-bw 768 8192 10      # from memory ([8,1024,768])
//
// docs/performance.md, "Backward: two rows a second pass", has the results.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define NK_LEVEL 2
#include "isa/begin.h"
#include "kernels/layernorm.h"
#include "isa/end.h"
#include "timing.h"

void nk_ln_count_path(int32_t path) { (void)path; }

int main(int argc, char **argv) {
    if (!__builtin_cpu_supports("avx512f")) { fprintf(stderr, "this CPU has no AVX-512\n"); return 1; }
    const size_t n = argc > 1 ? (size_t)atoi(argv[1]) : 768, rows = argc > 2 ? (size_t)atoi(argv[2]) : 1024;
    const int reps = argc > 3 ? atoi(argv[3]) : 100;
    const size_t ahead = 2304;
    if (rows < 2 || rows % 2) { fprintf(stderr, "ROWS must be even\n"); return 1; }
    // Room past the end for the prefetches' addresses (never read).
    float *x = malloc((n * rows + ahead) * sizeof *x), *dy = malloc((n * rows + ahead) * sizeof *dy),
          *dx = malloc((n * rows + ahead + n) * sizeof *dx), *w = malloc(n * sizeof *w), *pw = calloc(n, sizeof *pw),
          *pb = calloc(n, sizeof *pb);
    srand(1);
    for (size_t i = 0; i < n * rows + ahead; i++) {
        x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        dy[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    }
    for (size_t i = 0; i < n; i++) w[i] = 1;
    const float r = 3.4f, mean = 0.01f;
    double times[2][9];
    volatile float sink = 0;
    for (int t = 0; t < 9; t++) {
        for (int pair = 0; pair < 2; pair++) {
            const double start = now();
            for (int rep = 0; rep < reps; rep++) {
                for (size_t row = 0; row < rows; row += 2) {
                    const float *xr = x + row * n, *dyr = dy + row * n;
                    float *dxr = dx + row * n;
                    double s[2][2];
                    if (!pair) {
                        for (size_t k = 0; k < 2; k++) {
                            NK_NAME(nk_ln_backward_centre)(xr + k * n, dyr + k * n, w, n, mean, 0, ahead, s[k]);
                            const float beta = (float)(-(double)r * r * r * s[k][1] / (double)n);
                            sink += NK_NAME(nk_ln_backward_affine)(dyr + k * n, w, xr + k * n, dxr + k * n, n, r, beta,
                                                                   0.1f, mean, 0, r, pw, pb, dxr + k * n + ahead);
                        }
                    } else {
                        float q[12], m[2];
                        for (size_t k = 0; k < 2; k++) {
                            NK_NAME(nk_ln_backward_centre)(xr + k * n, dyr + k * n, w, n, mean, 0, ahead, s[k]);
                            const float beta = (float)(-(double)r * r * r * s[k][1] / (double)n);
                            const float qk[6] = {r, beta, 0.1f, mean, 0, r};
                            memcpy(q + 6 * k, qk, sizeof qk);
                        }
                        NK_NAME(nk_ln_backward_affine2)(dyr, w, xr, dxr, n, q, pw, pb, dxr + ahead, m);
                        sink += m[0] + m[1];
                    }
                }
            }
            times[pair][t] = (now() - start) / ((double)reps * (double)rows) * 1e9;
        }
    }
    for (int pair = 0; pair < 2; pair++) {
        qsort(times[pair], 9, sizeof times[pair][0], ascending);
        printf("%-17s %.1f ns/row median, %.1f fastest (%zu rows of %zu)\n", pair ? "two rows a pass" : "one row a pass",
               times[pair][4], times[pair][0], rows, n);
    }
    return 0;
}
