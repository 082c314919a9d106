/* libFuzzer target: the streaming multipart/form-data decoder of the E2B listener's POST /files
 * (src/e2b/multipart.c). The input's first byte picks the piece size the body is fed in; up to
 * the first '\n' is the Content-Type (the boundary comes from it), the rest is the body.
 * Whatever is accepted holds bounded names, balanced parts and no more content than was fed;
 * a decoder that failed stays failed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/multipart.h"

struct tally {
	bool in_part;
	size_t content;
};

static int on_begin(void *ctx, const char *name, const char *filename, struct ember_error **err)
{
	struct tally *t = ctx;

	(void)err;
	if (t->in_part || (name != NULL && strlen(name) > E2B_MULTIPART_NAME_MAX) ||
	    (filename != NULL && strlen(filename) > E2B_MULTIPART_NAME_MAX))
		abort();
	t->in_part = true;
	return 0;
}

static int on_data(void *ctx, const char *data, size_t len, struct ember_error **err)
{
	struct tally *t = ctx;

	(void)data;
	(void)err;
	if (!t->in_part || len == 0)
		abort();
	t->content += len;
	return 0;
}

static int on_end(void *ctx, struct ember_error **err)
{
	struct tally *t = ctx;

	(void)err;
	if (!t->in_part)
		abort();
	t->in_part = false;
	return 0;
}

static const struct e2b_multipart_ops ops = { on_begin, on_data, on_end };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char boundary[E2B_MULTIPART_BOUNDARY_MAX + 1];
	struct tally t = { .in_part = false };
	struct ember_error *err = NULL;
	struct e2b_multipart *mp;
	const uint8_t *nl;
	char *ct;
	size_t piece, off, body_len;
	int ret = 0;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] % 97 + 1;
	nl = memchr(data + 1, '\n', size - 1);
	if (nl == NULL)
		return 0;
	ct = strndup((const char *)data + 1, (size_t)(nl - data - 1));
	if (ct == NULL)
		return 0;
	if (e2b_multipart_boundary(ct, boundary, &err) < 0) {
		ember_error_free(&err);
		free(ct);
		return 0;
	}
	free(ct);
	if (strlen(boundary) == 0 || strlen(boundary) > E2B_MULTIPART_BOUNDARY_MAX)
		abort();
	mp = e2b_multipart_new(boundary, &ops, &t, &err);
	if (mp == NULL) {
		ember_error_free(&err);
		return 0;
	}
	body_len = size - (size_t)(nl + 1 - data);
	for (off = 0; ret == 0 && off < body_len; off += piece) {
		size_t n = body_len - off < piece ? body_len - off : piece;

		ret = e2b_multipart_feed(mp, (const char *)nl + 1 + off, n, &err);
	}
	if (ret == 0)
		ret = e2b_multipart_finish(mp, &err);
	ember_error_free(&err);
	if (ret == 0 && t.in_part)
		abort(); /* accepted, yet a part never ended */
	if (t.content > body_len)
		abort();
	if (ret < 0 && e2b_multipart_feed(mp, "x", 1, &err) == 0)
		abort(); /* failed decoders stay failed */
	ember_error_free(&err);
	e2b_multipart_free(mp);
	return 0;
}
