#ifndef METRONOME_CJPEG_SHIM_H
#define METRONOME_CJPEG_SHIM_H

// libjpeg-turbo (Debian libjpeg62-turbo-dev). libjpeg reports fatal errors by calling
// error_exit, which must not return; the decoder below installs an error manager that
// longjmps back into the same C function, so no jump ever crosses a Swift frame.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int warnings;
    char message[JMSG_LENGTH_MAX];
} metronome_jpeg_error_mgr;

static void metronome_jpeg_error_exit(j_common_ptr cinfo) {
    metronome_jpeg_error_mgr *err = (metronome_jpeg_error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

// Warnings (level -1) mean corrupt data that libjpeg papers over (e.g. a truncated file is
// filled with grey); the first one is kept so that the caller can refuse the image.
static void metronome_jpeg_emit_message(j_common_ptr cinfo, int level) {
    metronome_jpeg_error_mgr *err = (metronome_jpeg_error_mgr *)cinfo->err;
    if (level < 0) {
        if (err->warnings == 0) (*cinfo->err->format_message)(cinfo, err->message);
        err->warnings++;
    }
}

/// Decodes a JPEG held in memory to 8-bit interleaved RGB. On success returns 0 and sets
/// *pixels (free with free()), *width and *height. On failure returns 1 and writes a
/// message into `message` (of `message_size` bytes). Images larger than `max_pixels` are refused.
static inline int metronome_jpeg_decode(const unsigned char *data, unsigned long size,
                                        unsigned char **pixels, int *width, int *height,
                                        unsigned long max_pixels, char *message, int message_size) {
    struct jpeg_decompress_struct cinfo;
    metronome_jpeg_error_mgr err;
    unsigned char *volatile out = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = metronome_jpeg_error_exit;
    err.pub.emit_message = metronome_jpeg_emit_message;
    if (setjmp(err.jump)) {
        snprintf(message, message_size, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    /* Check the size the header declares before jpeg_start_decompress: for a progressive
       JPEG it allocates coefficient buffers for the whole image, gigabytes for a corrupt
       65496x65307 header (found by fuzz-image). */
    unsigned long hw = cinfo.image_width, hh = cinfo.image_height;
    if (hw == 0 || hh == 0 || hw * hh > max_pixels) {
        snprintf(message, message_size, "unsupported image: %lux%lu pixels (at most %lu)", hw, hh, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    /* Bound libjpeg's own working memory too (it then fails with an error instead). */
    cinfo.mem->max_memory_to_use = 1024L * 1024L * 1024L;
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    unsigned long w = cinfo.output_width, h = cinfo.output_height;
    if (cinfo.output_components != 3 || w == 0 || h == 0 || w * h > max_pixels) {
        snprintf(message, message_size, "unsupported image: %lux%lu pixels with %d components", w, h,
                 cinfo.output_components);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    out = (unsigned char *)malloc(w * h * 3);
    if (out == NULL) {
        snprintf(message, message_size, "out of memory for a %lux%lu image", w, h);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (err.warnings > 0) {
        snprintf(message, message_size, "corrupt JPEG data: %s", err.message);
        free(out);
        return 1;
    }
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

#endif
