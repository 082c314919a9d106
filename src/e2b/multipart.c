/* multipart.c - streaming multipart/form-data decoding (multipart.h). */
#include "e2b/multipart.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIND EMBER_E_INVALID
/* Bytes read into the window at once: the HTTP library hands over at most 64 KiB. */
#define WINDOW (64u * 1024)
/* Transport padding allowed after a delimiter (RFC 2046: linear white space). */
#define PADDING_MAX 64u

enum state { S_PREAMBLE, S_AFTER_DELIM, S_HEADERS, S_BODY, S_END, S_FAILED };

struct e2b_multipart {
	enum state state;
	const struct e2b_multipart_ops *ops;
	void *ctx;
	char delim[4 + E2B_MULTIPART_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
	size_t delim_len;
	size_t skipped;                     /* preamble, padding or epilogue bytes so far */
	size_t hdr_len;
	char hdr[E2B_MULTIPART_HEADERS_MAX + 1];
	size_t len;                         /* bytes in buf not yet decoded */
	char buf[WINDOW + 4 + E2B_MULTIPART_BOUNDARY_MAX];
};

static bool is_bchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       strchr("'()+_,-./:=? ", c) != NULL;
}

static bool is_token_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A parameter value at *p: a token or a quoted string (backslash escapes the next
 * character); at most max bytes into out. Advances *p past it. */
static int param_value(const char **p, char *out, size_t max, const char *what,
		       struct ember_error **err)
{
	const char *s = *p;
	size_t n = 0;

	if (*s == '"') {
		for (s++; *s != '"'; s++) {
			if (*s == '\\')
				s++;
			if (*s == '\0' || *s == '\r' || *s == '\n')
				return ember_error_set(err, KIND, 0, "multipart: unterminated %s",
						       what);
			if (n == max)
				return ember_error_set(err, KIND, 0,
						       "multipart: %s is longer than %zu bytes", what,
						       max);
			out[n++] = *s;
		}
		s++;
	} else {
		for (; is_token_char(*s); s++) {
			if (n == max)
				return ember_error_set(err, KIND, 0,
						       "multipart: %s is longer than %zu bytes", what,
						       max);
			out[n++] = *s;
		}
		if (n == 0)
			return ember_error_set(err, KIND, 0, "multipart: %s is empty", what);
	}
	out[n] = '\0';
	*p = s;
	return 0;
}

/* `; key=value` pairs after a media or disposition type, handing each to take(). */
typedef int (*param_fn)(void *ctx, const char *key, size_t key_len, const char **p,
			struct ember_error **err);

static int params(const char *p, param_fn take, void *ctx, struct ember_error **err)
{
	for (;;) {
		const char *key;

		p = skip_ws(p);
		if (*p == '\0')
			return 0;
		if (*p != ';')
			return ember_error_set(err, KIND, 0, "multipart: expected `;` in a header");
		p = skip_ws(p + 1);
		if (*p == '\0')
			return 0; /* a trailing `;` */
		key = p;
		while (is_token_char(*p))
			p++;
		if (p == key || *p != '=')
			return ember_error_set(err, KIND, 0,
					       "multipart: a header parameter is not `key=value`");
		/* take() starts at the '=' and moves p past the value */
		if (take(ctx, key, (size_t)(p - key), &p, err) < 0)
			return -1;
	}
}

struct boundary_params {
	char *out;
	bool seen;
};

static bool key_is(const char *key, size_t len, const char *name)
{
	return len == strlen(name) && strncasecmp(key, name, len) == 0;
}

static int take_boundary(void *ctx, const char *key, size_t key_len, const char **p,
			 struct ember_error **err)
{
	struct boundary_params *b = ctx;
	char ignored[256];
	size_t i, n;

	(*p)++; /* '=' */
	if (!key_is(key, key_len, "boundary"))
		return param_value(p, ignored, sizeof(ignored) - 1, "a Content-Type parameter",
				   err);
	if (b->seen)
		return ember_error_set(err, KIND, 0, "multipart: `boundary` is given twice");
	b->seen = true;
	if (param_value(p, b->out, E2B_MULTIPART_BOUNDARY_MAX, "the boundary", err) < 0)
		return -1;
	n = strlen(b->out);
	if (n == 0)
		return ember_error_set(err, KIND, 0, "multipart: the boundary is empty");
	for (i = 0; i < n; i++) {
		if (!is_bchar(b->out[i]))
			return ember_error_set(err, KIND, 0,
					       "multipart: the boundary has a character RFC 2046 "
					       "does not allow");
	}
	if (b->out[n - 1] == ' ')
		return ember_error_set(err, KIND, 0, "multipart: the boundary ends in a space");
	return 0;
}

int e2b_multipart_boundary(const char *content_type, char *out, struct ember_error **err)
{
	static const char type[] = "multipart/form-data";
	struct boundary_params b = { .out = out };

	if (content_type == NULL || strncasecmp(content_type, type, sizeof(type) - 1) != 0)
		return ember_error_set(err, KIND, 0, "expected Content-Type multipart/form-data");
	if (params(content_type + sizeof(type) - 1, take_boundary, &b, err) < 0)
		return -1;
	if (!b.seen)
		return ember_error_set(err, KIND, 0,
				       "multipart/form-data without a `boundary` parameter");
	return 0;
}

struct e2b_multipart *e2b_multipart_new(const char *boundary, const struct e2b_multipart_ops *ops,
					void *ctx, struct ember_error **err)
{
	struct e2b_multipart *mp;
	size_t n = strlen(boundary);

	if (n == 0 || n > E2B_MULTIPART_BOUNDARY_MAX) {
		ember_error_set(err, KIND, 0, "multipart: the boundary must be 1 to %d bytes",
				E2B_MULTIPART_BOUNDARY_MAX);
		return NULL;
	}
	mp = calloc(1, sizeof(*mp));
	if (mp == NULL) {
		ember_error_oom(err);
		return NULL;
	}
	mp->ops = ops;
	mp->ctx = ctx;
	mp->delim_len = 4 + n;
	memcpy(mp->delim, "\r\n--", 4);
	memcpy(mp->delim + 4, boundary, n + 1);
	/* The first delimiter may open the body: seen as one preceded by a line break. */
	memcpy(mp->buf, "\r\n", 2);
	mp->len = 2;
	return mp;
}

/* --- one part's headers --- */

struct disposition {
	char name[E2B_MULTIPART_NAME_MAX + 1];
	char filename[E2B_MULTIPART_NAME_MAX + 1];
	bool has_name, has_filename;
};

static int take_disposition(void *ctx, const char *key, size_t key_len, const char **p,
			    struct ember_error **err)
{
	struct disposition *d = ctx;
	char ignored[E2B_MULTIPART_NAME_MAX + 1];

	(*p)++; /* '=' */
	if (key_is(key, key_len, "name")) {
		if (d->has_name)
			return ember_error_set(err, KIND, 0, "multipart: `name` is given twice");
		d->has_name = true;
		return param_value(p, d->name, E2B_MULTIPART_NAME_MAX, "a field name", err);
	}
	if (key_is(key, key_len, "filename")) {
		if (d->has_filename)
			return ember_error_set(err, KIND, 0,
					       "multipart: `filename` is given twice");
		d->has_filename = true;
		return param_value(p, d->filename, E2B_MULTIPART_NAME_MAX, "a filename", err);
	}
	return param_value(p, ignored, E2B_MULTIPART_NAME_MAX, "a parameter", err);
}

/* hdr: "Line\r\n...\r\n" (the final empty line removed), NUL-terminated. */
static int parse_headers(struct e2b_multipart *mp, char *hdr, struct ember_error **err)
{
	struct disposition *d = calloc(1, sizeof(*d));
	bool seen = false;
	char *line = hdr, *end;
	int ret = -1;

	if (d == NULL)
		return ember_error_oom(err);
	for (; *line != '\0'; line = end + 2) {
		char *colon;

		end = strstr(line, "\r\n");
		*end = '\0';
		if (strpbrk(line, "\r\n") != NULL)
			goto bad_line;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t')
			goto bad_line;
		*colon = '\0';
		for (char *c = line; c < colon; c++) {
			if (!is_token_char(*c))
				goto bad_line;
		}
		if (strcasecmp(line, "Content-Disposition") != 0)
			continue;
		if (seen) {
			ember_error_set(err, KIND, 0, "multipart: Content-Disposition is given twice");
			goto out;
		}
		seen = true;
		const char *v = skip_ws(colon + 1);
		if (strncasecmp(v, "form-data", 9) != 0 || is_token_char(v[9])) {
			ember_error_set(err, KIND, 0,
					"multipart: a part's Content-Disposition is not form-data");
			goto out;
		}
		if (params(v + 9, take_disposition, d, err) < 0)
			goto out;
	}
	ret = mp->ops->part_begin(mp->ctx, d->has_name ? d->name : NULL,
				  d->has_filename ? d->filename : NULL, err);
	goto out;
bad_line:
	ember_error_set(err, KIND, 0, "multipart: a malformed header line in a part");
out:
	free(d);
	return ret;
}

/* --- the decoder's steps: each returns bytes consumed from buf (0: needs more), or -1 --- */

static long step_preamble(struct e2b_multipart *mp, struct ember_error **err)
{
	const char *at = memmem(mp->buf, mp->len, mp->delim, mp->delim_len);
	size_t drop = at != NULL ? (size_t)(at - mp->buf)
		      : mp->len >= mp->delim_len ? mp->len - (mp->delim_len - 1) : 0;

	mp->skipped += drop;
	if (mp->skipped > E2B_MULTIPART_PREAMBLE_MAX + 2)
		return ember_error_set(err, KIND, 0,
				       "multipart: no boundary within the first %u bytes",
				       E2B_MULTIPART_PREAMBLE_MAX);
	if (at == NULL)
		return (long)drop;
	mp->state = S_AFTER_DELIM;
	mp->skipped = 0;
	return (long)(drop + mp->delim_len);
}

static long step_after_delim(struct e2b_multipart *mp, struct ember_error **err)
{
	size_t i;

	if (mp->len < 2)
		return 0;
	if (mp->skipped == 0 && mp->buf[0] == '-' && mp->buf[1] == '-') {
		mp->state = S_END;
		return 2;
	}
	for (i = 0; i < mp->len; i++) {
		char c = mp->buf[i];

		if (c == ' ' || c == '\t') {
			if (++mp->skipped > PADDING_MAX)
				break;
			continue;
		}
		if (c != '\r')
			break;
		if (i + 1 == mp->len)
			return (long)i; /* the '\n' is still to come */
		if (mp->buf[i + 1] != '\n')
			break;
		mp->state = S_HEADERS;
		mp->skipped = 0;
		mp->hdr_len = 0;
		return (long)(i + 2);
	}
	if (i == mp->len)
		return (long)i;
	return ember_error_set(err, KIND, 0, "multipart: a boundary is not followed by a line "
					     "break or `--`");
}

static long step_headers(struct e2b_multipart *mp, struct ember_error **err)
{
	size_t i;

	for (i = 0; i < mp->len; i++) {
		if (mp->hdr_len == E2B_MULTIPART_HEADERS_MAX)
			return ember_error_set(err, KIND, 0,
					       "multipart: a part's headers exceed %u bytes",
					       E2B_MULTIPART_HEADERS_MAX);
		mp->hdr[mp->hdr_len++] = mp->buf[i];
		if (mp->hdr_len == 2 && memcmp(mp->hdr, "\r\n", 2) == 0) {
			mp->hdr_len = 0; /* no headers at all */
			break;
		}
		if (mp->hdr_len >= 4 && memcmp(mp->hdr + mp->hdr_len - 4, "\r\n\r\n", 4) == 0) {
			mp->hdr_len -= 2; /* keep the last line's own CRLF */
			break;
		}
	}
	if (i == mp->len)
		return (long)i;
	mp->hdr[mp->hdr_len] = '\0';
	if (memchr(mp->hdr, '\0', mp->hdr_len) != NULL)
		return ember_error_set(err, KIND, 0, "multipart: a part's headers contain NUL");
	if (parse_headers(mp, mp->hdr, err) < 0)
		return -1;
	mp->state = S_BODY;
	return (long)(i + 1);
}

static long step_body(struct e2b_multipart *mp, struct ember_error **err)
{
	const char *at = memmem(mp->buf, mp->len, mp->delim, mp->delim_len);
	size_t n = at != NULL ? (size_t)(at - mp->buf)
		   : mp->len >= mp->delim_len ? mp->len - (mp->delim_len - 1) : 0;

	if (n > 0 && mp->ops->part_data(mp->ctx, mp->buf, n, err) < 0)
		return -1;
	if (at == NULL)
		return (long)n;
	if (mp->ops->part_end(mp->ctx, err) < 0)
		return -1;
	mp->state = S_AFTER_DELIM;
	mp->skipped = 0;
	return (long)(n + mp->delim_len);
}

static long step_end(struct e2b_multipart *mp, struct ember_error **err)
{
	mp->skipped += mp->len;
	if (mp->skipped > E2B_MULTIPART_EPILOGUE_MAX)
		return ember_error_set(err, KIND, 0,
				       "multipart: more than %u bytes after the closing boundary",
				       E2B_MULTIPART_EPILOGUE_MAX);
	return (long)mp->len;
}

/* Decodes what buf holds; leaves the undecided tail at its start. */
static int decode(struct e2b_multipart *mp, struct ember_error **err)
{
	for (;;) {
		long used;

		switch (mp->state) {
		case S_PREAMBLE: used = step_preamble(mp, err); break;
		case S_AFTER_DELIM: used = step_after_delim(mp, err); break;
		case S_HEADERS: used = step_headers(mp, err); break;
		case S_BODY: used = step_body(mp, err); break;
		case S_END: used = step_end(mp, err); break;
		default: return ember_error_set(err, KIND, 0, "multipart: the body is malformed");
		}
		if (used < 0) {
			mp->state = S_FAILED;
			return -1;
		}
		if (used == 0)
			return 0;
		memmove(mp->buf, mp->buf + used, mp->len - (size_t)used);
		mp->len -= (size_t)used;
		if (mp->len == 0)
			return 0;
	}
}

int e2b_multipart_feed(struct e2b_multipart *mp, const char *data, size_t len,
		       struct ember_error **err)
{
	while (len > 0) {
		size_t room = sizeof(mp->buf) - mp->len, n = len < room ? len : room;

		if (mp->state == S_FAILED)
			return ember_error_set(err, KIND, 0, "multipart: the body is malformed");
		memcpy(mp->buf + mp->len, data, n);
		mp->len += n;
		data += n;
		len -= n;
		if (decode(mp, err) < 0)
			return -1;
	}
	return 0;
}

int e2b_multipart_finish(struct e2b_multipart *mp, struct ember_error **err)
{
	if (mp->state == S_END)
		return 0;
	mp->state = S_FAILED;
	return ember_error_set(err, KIND, 0, "multipart: the body ended before its closing "
					     "boundary");
}

void e2b_multipart_free(struct e2b_multipart *mp)
{
	free(mp);
}
