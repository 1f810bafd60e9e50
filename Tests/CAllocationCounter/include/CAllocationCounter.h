#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H

/// Heap allocations (malloc, calloc, realloc, memalign, aligned_alloc, posix_memalign, valloc,
/// pvalloc) made so far by the calling thread, in any library of the test process.
unsigned long long metronome_test_thread_allocations(void);

#endif
