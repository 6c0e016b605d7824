// A stand-in for OpenBLAS's level-1 routines that aborts on the first call, for CI's
// check that the tests listed as `blas_free` in .ci/run never reach BLAS (so running them
// again under another OPENBLAS_CORETYPE cannot change a bit). Preloaded (LD_PRELOAD), its
// definitions come before libopenblas's. The caller is among the tests the log shows
// started and not finished (run them one at a time with --filter to find it). NormKit
// calls exactly these two (Sources/NormKit/BLAS/BLAS.swift); .ci/run checks with nm that
// the test binary imports no other cblas_ routine. Linux only.
#include <stdio.h>
#include <stdlib.h>

static void trap(const char *name) {
    fprintf(stderr, "BLAS-TRAP: %s called (a test on .ci/run's blas_free list must not call BLAS)\n", name);
    abort();
}

float cblas_sdot(int n, const float *x, int incx, const float *y, int incy) {
    (void)n, (void)x, (void)incx, (void)y, (void)incy;
    trap("cblas_sdot");
    return 0;
}

void cblas_saxpy(int n, float alpha, const float *x, int incx, float *y, int incy) {
    (void)n, (void)alpha, (void)x, (void)incx, (void)y, (void)incy;
    trap("cblas_saxpy");
}
