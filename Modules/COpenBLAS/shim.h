#ifndef NORMKIT_COPENBLAS_SHIM_H
#define NORMKIT_COPENBLAS_SHIM_H

// CBLAS from OpenBLAS (cblas_sdot, cblas_saxpy, cblas_isamax, ...) and
// openblas_get_num_threads / openblas_set_num_threads.
#include <cblas.h>
// LAPACKE, the C interface to LAPACK (linked for downstream users; NormKit's
// kernels do not need it).
#include <lapacke.h>

#endif
