#ifndef METRONOME_CDNNL_SHIM_H
#define METRONOME_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

// Debian's oneDNN is built on the GNU OpenMP runtime. The executor sizes the team of the
// calling thread and pins each team member to a core; these libgomp entry points are
// declared here (rather than including <omp.h>) because Swift's clang does not ship omp.h.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);

// CPU affinity (glibc exposes these only under _GNU_SOURCE, which Swift's Glibc module
// does not set); bound to the real symbols under names that cannot clash.
int metronome_sched_setaffinity(int pid, unsigned long size, const void *mask) __asm__("sched_setaffinity");
int metronome_sched_getaffinity(int pid, unsigned long size, void *mask) __asm__("sched_getaffinity");

// glibc's malloc tuning (<malloc.h> is not in Swift's Glibc module): `metronome profile`'s
// worker returns the compiler's freed memory to the kernel before measuring its peak, and
// keeps one malloc arena under an address-space limit.
int metronome_malloc_trim(unsigned long pad) __asm__("malloc_trim");
int metronome_mallopt(int param, int value) __asm__("mallopt");

#endif
