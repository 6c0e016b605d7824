// A heap-allocation counter for NormKit's allocation tests (scripts/check-allocations.sh).
//
// Preloaded (LD_PRELOAD), it stands in for glibc's allocation entry points, counts each
// call per thread and in total, and hands the call on to glibc's own implementation
// (__libc_malloc and friends). free is not interposed: glibc frees what it allocated.
// The tests find the two counters with dlsym; without the preload they skip, saying so.
// Linux/glibc only.
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

// initial-exec: a preloaded library's TLS is static, so reading it never allocates.
static __thread long thread_count __attribute__((tls_model("initial-exec")));
static atomic_long total_count;

static inline void counted(void) {
    thread_count += 1;
    atomic_fetch_add_explicit(&total_count, 1, memory_order_relaxed);
}

void *malloc(size_t size) { counted(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { counted(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { counted(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { counted(); return __libc_valloc(size); }
void *pvalloc(size_t size) { counted(); return __libc_pvalloc(size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    counted();
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

// Allocation calls made so far by the calling thread.
long normkit_malloc_count_thread(void) { return thread_count; }
// Allocation calls made so far by every thread of the process.
long normkit_malloc_count_total(void) { return atomic_load_explicit(&total_count, memory_order_relaxed); }
