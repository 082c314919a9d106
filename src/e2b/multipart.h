/* multipart.h - a streaming, bounded decoder of multipart/form-data bodies (RFC 7578) for
 * POST /files on the E2B listener: the SDKs' FormData uploads, one `file` part per file, whose
 * filename is the file's path.
 * Used by upload.c; pure (bytes in, callbacks out), fuzzed by tests/fuzz/fuzz_e2b_multipart.c.
 * Never buffers a part's content (it is handed on as it arrives, less a held-back tail shorter
 * than the delimiter), never accepts a header block, preamble or epilogue past its bound, and
 * stays failed after the first error. */
#ifndef EMBER_E2B_MULTIPART_H
#define EMBER_E2B_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* RFC 2046: a boundary is 1 to 70 characters. */
#define E2B_MULTIPART_BOUNDARY_MAX 70
/* One part's header block: a filename is a path (up to 4096 bytes, escaped), plus room for
 * Content-Disposition's other words and a Content-Type line; 16 KiB is twice that. */
#define E2B_MULTIPART_HEADERS_MAX (16u * 1024)
/* FormData writes none; other clients write a line or two. */
#define E2B_MULTIPART_PREAMBLE_MAX 1024u
#define E2B_MULTIPART_EPILOGUE_MAX 1024u
/* A filename or field name after unquoting: a path's bound (PROTO_PATH_MAX). */
#define E2B_MULTIPART_NAME_MAX 4096u

/* What the decoder tells its user; each returns 0, or -1 with *err set to stop the decode. */
struct e2b_multipart_ops {
	/* A part begins: its form field name and filename (NULL when absent; "" is kept). */
	int (*part_begin)(void *ctx, const char *name, const char *filename,
			  struct ember_error **err);
	int (*part_data)(void *ctx, const char *data, size_t len, struct ember_error **err);
	int (*part_end)(void *ctx, struct ember_error **err);
};

struct e2b_multipart;

/* The boundary from a Content-Type value (`multipart/form-data; boundary=X`, X possibly
 * quoted); out has room for E2B_MULTIPART_BOUNDARY_MAX + 1 bytes. */
int e2b_multipart_boundary(const char *content_type, char *out, struct ember_error **err);

/* NULL only out of memory (then *err is set). */
struct e2b_multipart *e2b_multipart_new(const char *boundary, const struct e2b_multipart_ops *ops,
					void *ctx, struct ember_error **err);
/* Feeds body bytes; -1 once the body is malformed or a callback failed (and from then on). */
int e2b_multipart_feed(struct e2b_multipart *mp, const char *data, size_t len,
		       struct ember_error **err);
/* The body ended: -1 unless the closing delimiter was seen. */
int e2b_multipart_finish(struct e2b_multipart *mp, struct ember_error **err);
void e2b_multipart_free(struct e2b_multipart *mp);

#endif
