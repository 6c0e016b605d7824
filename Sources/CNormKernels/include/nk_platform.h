// The platform's C library for NormKit's Swift code (threads, memory, environment,
// clocks, libm), included once here so no Swift file needs a per-platform import ladder:
// `import CNormKernels` brings these declarations on every platform that has POSIX.
#ifndef NK_PLATFORM_H
#define NK_PLATFORM_H

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#endif
