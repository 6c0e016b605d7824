// What the scripts/time-*.c harnesses share: a monotonic clock and an ordering of
// timings for qsort (they quote medians and the fastest of repeated timings).
#ifndef NK_SCRIPTS_TIMING_H
#define NK_SCRIPTS_TIMING_H
#include <time.h>

/// Seconds on the monotonic clock.
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/// qsort's comparison of two doubles, ascending.
static int ascending(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif
