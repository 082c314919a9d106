/* buf.h - a growable byte buffer; callers bound its size themselves (it never caps silently).
 * Used for HTTP bodies, exec output and JSON building. */
#ifndef EMBER_UTIL_BUF_H
#define EMBER_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Appends n bytes; returns 0 or -1 (out of memory, buffer unchanged). */
int buf_append(struct buf *b, const void *data, size_t n);
/* Ensures data[len] exists and is NUL (not counted in len). */
int buf_terminate(struct buf *b);
void buf_release(struct buf *b);

#endif
