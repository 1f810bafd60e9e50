#ifndef METRONOME_CZLIB_SHIM_H
#define METRONOME_CZLIB_SHIM_H

// zlib (Debian zlib1g-dev) for the gzip-compressed IDX files of Debian's
// dataset-fashion-mnist package: inflateInit2 with windowBits 15 + 32 reads gzip and zlib.
#include <zlib.h>

static inline int metronome_inflate_init_gzip(z_stream *s) {
    return inflateInit2(s, 15 + 32);
}

#endif
