#ifndef METRONOME_CPNG_SHIM_H
#define METRONOME_CPNG_SHIM_H

// libpng (Debian libpng-dev). Metronome uses only the simplified read API
// (png_image_begin_read_from_memory / png_image_finish_read), which reports errors through
// png_image.message and a zero return instead of longjmp, so Swift can call it directly.
#include <png.h>

#endif
