/* error.c - construction and wrapping of struct ember_error. */
#include "util/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a failure site records when it cannot allocate its error: shared, read-only, never freed
 * (ember_error_free and ember_error_wrap know it), so a failed call always leaves an error. */
static struct ember_error out_of_memory = {
	.kind = EMBER_E_INTERNAL,
	.errno_value = ENOMEM,
	.message = "out of memory (while recording an error)",
};

bool ember_error_is_static(const struct ember_error *e)
{
	return e == &out_of_memory;
}

int ember_error_oom(struct ember_error **err)
{
	if (err != NULL && *err == NULL)
		*err = &out_of_memory;
	return -1;
}

static int error_vset(struct ember_error **err, enum ember_error_kind kind, int errno_value,
		      const char *fmt, va_list ap)
{
	struct ember_error *e;

	if (err == NULL || *err != NULL)
		return -1; /* first failure wins: it is the root cause */
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		*err = &out_of_memory;
		return -1;
	}
	e->kind = kind;
	e->errno_value = errno_value;
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	*err = e;
	return -1;
}

int ember_error_set(struct ember_error **err, enum ember_error_kind kind, int errno_value,
		    const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = error_vset(err, kind, errno_value, fmt, ap);
	va_end(ap);
	return ret;
}

int ember_error_retry_after(struct ember_error **err, unsigned seconds)
{
	if (err != NULL && *err != NULL && !ember_error_is_static(*err))
		(*err)->retry_after_s = seconds;
	return -1;
}

int ember_error_sys(struct ember_error **err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	error_vset(err, EMBER_E_INTERNAL, saved, fmt, ap);
	va_end(ap);
	if (err != NULL && *err != NULL && (*err)->errno_value == saved) {
		len = strlen((*err)->message);
		snprintf((*err)->message + len, sizeof((*err)->message) - len, ": %s",
			 strerror(saved));
	}
	errno = saved;
	return -1;
}

int ember_error_wrap(struct ember_error **err, const char *fmt, ...)
{
	char prefix[512];
	char old[sizeof(((struct ember_error *)0)->message)];
	va_list ap;

	if (err == NULL || *err == NULL || ember_error_is_static(*err))
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, (*err)->message, sizeof(old));
	/* Truncation is acceptable: the root cause is at the end and the context at the front. */
	if (snprintf((*err)->message, sizeof((*err)->message), "%s: %s", prefix, old) < 0)
		memcpy((*err)->message, old, sizeof(old));
	return -1;
}

void ember_error_free(struct ember_error **err)
{
	if (err == NULL)
		return;
	if (!ember_error_is_static(*err))
		free(*err);
	*err = NULL;
}

int ember_error_propagate(struct ember_error **err, struct ember_error *caught)
{
	if (err != NULL && *err == NULL)
		*err = caught;
	else
		ember_error_free(&caught);
	return -1;
}

const char *ember_error_kind_name(enum ember_error_kind kind)
{
	switch (kind) {
	case EMBER_E_INVALID: return "invalid_argument";
	case EMBER_E_NOT_FOUND: return "not_found";
	case EMBER_E_METHOD: return "method_not_allowed";
	case EMBER_E_CONFLICT: return "conflict";
	case EMBER_E_TOO_LARGE: return "too_large";
	case EMBER_E_CAPACITY: return "capacity";
	case EMBER_E_UNAVAILABLE: return "unavailable";
	case EMBER_E_GUEST: return "guest_failed";
	case EMBER_E_GUEST_TIMEOUT: return "guest_timeout";
	case EMBER_E_PROTOCOL: return "guest_protocol";
	case EMBER_E_UNAUTHORIZED: return "unauthorized";
	case EMBER_E_FORBIDDEN: return "forbidden";
	case EMBER_E_MISDIRECTED: return "misdirected_request";
	case EMBER_E_NO_SPACE: return "insufficient_storage";
	case EMBER_E_INTERNAL: break;
	}
	return "internal";
}
