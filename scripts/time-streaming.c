// LayerNorm's forward from DRAM with plain stores against non-temporal ones: the kernel
// layer's forward_row_sampled and forward_row_sampled_stream (AVX-512 level) over ROWS rows
// of N floats, x and y each offset by XOFF and YOFF floats from a 64-byte boundary and the
// weight and bias by WOFF, alternating with a memcpy of the same bytes in 15 rounds; prints
// the medians. docs/performance.md ("Streaming stores and pipelined rows") has the runs that
// chose StreamingStores' thresholds. Build and run from the repository root:
//
//   S=Sources/CNormKernels; clang -O2 -I$S -I$S/include scripts/time-streaming.c -lm -o /tmp/time-streaming
//   /tmp/time-streaming XOFF YOFF WOFF [N [ROWS]]     # e.g. 12 12 12 768 8192
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NK_LEVEL 2
#include "isa/begin.h"
#include "kernels/layernorm.h"
#include "isa/end.h"

void nk_ln_count_path(int32_t path) { (void)path; }

#include "timing.h"

typedef int32_t (*row_fn)(const float *, float *, size_t, double, const float *, const float *, float, float,
                          double *);

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: time-streaming XOFF YOFF WOFF [N [ROWS]]\n"); return 2; }
    if (!__builtin_cpu_supports("avx512f")) { fprintf(stderr, "this CPU has no AVX-512\n"); return 1; }
    const int xoff = atoi(argv[1]), yoff = atoi(argv[2]), woff = atoi(argv[3]);
    const size_t n = argc > 4 ? (size_t)atoi(argv[4]) : 768, rows = argc > 5 ? (size_t)atoi(argv[5]) : 8192;
    float *x0 = aligned_alloc(64, n * rows * 4 + 256), *y0 = aligned_alloc(64, n * rows * 4 + 256);
    float *w0 = aligned_alloc(64, n * 4 + 256), *b0 = aligned_alloc(64, n * 4 + 256);
    float *x = x0 + xoff, *y = y0 + yoff, *w = w0 + woff, *b = b0 + woff;
    for (size_t i = 0; i < n; i++) w[i] = 1 + 0.001f * (float)(i % 7), b[i] = 0.01f * (float)(i % 5);
    for (size_t i = 0; i < n * rows; i++) x[i] = (float)((i * 2654435761u) % 1000) * 0.004f - 2;
    memset(y0, 0, n * rows * 4 + 256);
    const row_fn f[2] = {NK_NAME(nk_ln_forward_row_sampled), NK_NAME(nk_ln_forward_row_sampled_stream)};
    double t[3][15], stats[2];
    size_t refused = 0;
    for (int k = 0; k < 15; k++)
        for (int v = 0; v < 3; v++) {
            const double start = now();
            if (v < 2) {
                for (size_t r = 0; r < rows; r++)
                    refused += f[v](x + r * n, y + r * n, n, 1e-5, w, b, 1.01f, 0.05f, stats) != 0;
                if (v == 1) __builtin_ia32_sfence();
            } else {
                memcpy(y, x, n * rows * 4);
                __asm__ volatile("" ::: "memory");
            }
            t[v][k] = (now() - start) * 1e6;
        }
    for (int v = 0; v < 3; v++) qsort(t[v], 15, sizeof t[v][0], ascending);
    printf("x+%d y+%d w+%d, %zu rows of %zu: plain %.0f us, streamed %.0f us (%.2fx), memcpy %.0f us; %zu refused\n",
           xoff, yoff, woff, rows, n, t[0][7], t[1][7], t[1][7] / t[0][7], t[2][7], refused);
    return 0;
}
