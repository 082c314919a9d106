/* error.h - the one error type of emberd: a kind (what the API reports), an errno and a message.
 * Used by every fallible function as the last parameter `struct ember_error **err`.
 * Never logs by itself; callers wrap with context and the API layer maps kinds to HTTP statuses. */
#ifndef EMBER_UTIL_ERROR_H
#define EMBER_UTIL_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

enum ember_error_kind {
	EMBER_E_INTERNAL = 0,   /* 500: a bug or a host resource failure */
	EMBER_E_INVALID,        /* 400: bad input from a client */
	EMBER_E_NOT_FOUND,      /* 404 */
	EMBER_E_METHOD,         /* 405 */
	EMBER_E_CONFLICT,       /* 409: wrong state */
	EMBER_E_TOO_LARGE,      /* 413 */
	EMBER_E_CAPACITY,       /* 429: a configured limit is reached */
	EMBER_E_UNAVAILABLE,    /* 503: temporarily unable (e.g. shutting down, boot queue full) */
	EMBER_E_GUEST,          /* 502: the guest or its VMM failed or misbehaved */
	EMBER_E_GUEST_TIMEOUT,  /* 504: the guest did not answer in time */
	EMBER_E_PROTOCOL,       /* a peer broke the wire protocol (reported as 502 by the API) */
	EMBER_E_UNAUTHORIZED,   /* 401: no or a wrong bearer token */
	EMBER_E_FORBIDDEN,      /* 403: a request the API refuses to serve (cross-origin) */
	EMBER_E_MISDIRECTED,    /* 421: a Host header that does not name this daemon */
	EMBER_E_NO_SPACE,       /* 507: the guest's file system is full (a file transfer) */
};

struct ember_error {
	enum ember_error_kind kind;
	int errno_value;        /* 0 when not an OS error */
	unsigned retry_after_s; /* > 0: when a retry may succeed (the API's Retry-After) */
	char message[1024];
};

/* Records a new error in *err (when err is non-NULL and *err is NULL) and returns -1, so a failure
 * site reads `return ember_error_set(err, EMBER_E_INVALID, 0, "bad %s", x);`. */
int ember_error_set(struct ember_error **err, enum ember_error_kind kind, int errno_value,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Same, with errno_value = errno and the strerror text appended. */
int ember_error_sys(struct ember_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Says when a retry of the failed call may succeed (seconds, the HTTP Retry-After), on the error
 * *err already holds (the shared out-of-memory error is left alone); returns -1. */
int ember_error_retry_after(struct ember_error **err, unsigned seconds);

/* Prefixes context to an existing error ("boot sandbox sb_x: <old message>"); returns -1. */
int ember_error_wrap(struct ember_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Records the shared out-of-memory error (no allocation, so it cannot fail itself); returns -1.
 * For failure sites whose own allocation failed. */
int ember_error_oom(struct ember_error **err);

/* Frees *err and sets it to NULL. The shared out-of-memory error is left alone. */
void ember_error_free(struct ember_error **err);

/* Whether e is the shared, read-only out-of-memory error that a failure site records when it
 * cannot allocate one (so `err->message` is always readable after a failed call). Never freed,
 * never rewritten by ember_error_wrap. */
bool ember_error_is_static(const struct ember_error *e);

/* Moves a caught error into err (or frees it when err is NULL or already set); returns -1. */
int ember_error_propagate(struct ember_error **err, struct ember_error *caught);

/* A short stable name for a kind ("invalid_argument", ...), used as the API's error code. */
const char *ember_error_kind_name(enum ember_error_kind kind);

#endif
