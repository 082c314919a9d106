/* qmp.c - QMP over a Unix socket, line-delimited JSON. */
#include "vmm/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

#define QMP_LINE_MAX (64 * 1024)

struct qmp {
	int fd;
	char buf[QMP_LINE_MAX];
	size_t len;
};

/* Reads one '\n'-terminated line into *line (NUL-terminated, inside q->buf, valid until the next
 * call). Consumed bytes are dropped at the next call. */
static int read_line(struct qmp *q, size_t *consumed, char **line, int64_t deadline_ms,
		     struct ember_error **err)
{
	if (*consumed > 0) {
		memmove(q->buf, q->buf + *consumed, q->len - *consumed);
		q->len -= *consumed;
		*consumed = 0;
	}
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		ssize_t n;
		int ready;

		if (nl != NULL) {
			*nl = '\0';
			*consumed = (size_t)(nl - q->buf) + 1;
			*line = q->buf;
			return 0;
		}
		if (q->len == sizeof(q->buf))
			return ember_error_set(err, EMBER_E_GUEST, 0, "QMP line longer than %d bytes",
					       QMP_LINE_MAX);
		ready = fd_wait(q->fd, POLLIN, deadline_ms, err);
		if (ready < 0)
			return -1;
		if (ready == 0)
			return ember_error_set(err, EMBER_E_GUEST_TIMEOUT, ETIMEDOUT,
					       "QMP did not answer in time");
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (n == 0)
			return ember_error_set(err, EMBER_E_GUEST, 0, "QMP connection closed");
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return ember_error_sys(err, "read QMP");
		}
		q->len += (size_t)n;
	}
}

/* Reads messages until one that is not an asynchronous event; returns it. *consumed counts
 * the bytes of q->buf already used (the caller drops them). */
static int read_message(struct qmp *q, size_t *consumed, json_t **out, int64_t deadline_ms,
			struct ember_error **err)
{
	for (;;) {
		_cleanup_json_ json_t *msg = NULL;
		char *line = NULL;

		if (read_line(q, consumed, &line, deadline_ms, err) < 0)
			return -1;
		if (line[0] == '\0' || (line[0] == '\r' && line[1] == '\0'))
			continue;
		if (json_parse_object(line, strlen(line), &msg, EMBER_E_GUEST, err) < 0)
			return ember_error_wrap(err, "QMP");
		if (json_object_get(msg, "event") == NULL) {
			*out = steal_pointer(&msg);
			return 0;
		}
	}
}

static int read_reply(struct qmp *q, json_t **out, int64_t deadline_ms, struct ember_error **err)
{
	size_t consumed = 0;
	int ret = read_message(q, &consumed, out, deadline_ms, err);

	/* Keep any bytes after the reply for the next call. */
	if (consumed > 0) {
		memmove(q->buf, q->buf + consumed, q->len - consumed);
		q->len -= consumed;
	}
	return ret;
}

int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **result,
		int64_t deadline_ms, struct ember_error **err)
{
	_cleanup_json_ json_t *req = json_pack("{s:s}", "execute", command);
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *text = NULL;
	json_t *ret_value, *error;
	size_t len;

	if (req == NULL || (args != NULL && json_object_set(req, "arguments", args) < 0))
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	text = json_dump_compact(req, &len, err);
	if (text == NULL)
		return -1;
	if (fd_write_all(q->fd, text, len, deadline_ms, err) < 0 ||
	    fd_write_all(q->fd, "\n", 1, deadline_ms, err) < 0 ||
	    read_reply(q, &reply, deadline_ms, err) < 0)
		return ember_error_wrap(err, "QMP %s", command);
	error = json_object_get(reply, "error");
	ret_value = json_object_get(reply, "return");
	if (error != NULL) {
		const char *desc = json_string_value(json_object_get(error, "desc"));

		return ember_error_set(err, EMBER_E_GUEST, 0, "QMP %s failed: %s", command,
				       desc != NULL ? desc : "(no description)");
	}
	if (ret_value == NULL)
		return ember_error_set(err, EMBER_E_GUEST, 0,
				       "QMP %s: reply has neither return nor error", command);
	if (result != NULL)
		*result = json_incref(ret_value);
	return 0;
}

int qmp_connect(const char *path, int64_t deadline_ms, bool (*alive)(void *ctx), void *ctx,
		struct qmp **out, struct ember_error **err)
{
	_cleanup_close_ int fd = unix_connect_until(path, deadline_ms, alive, ctx, err);
	_cleanup_qmp_ struct qmp *q = NULL;
	_cleanup_json_ json_t *greeting = NULL;

	if (fd < 0)
		return ember_error_wrap(err, "QMP");
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	q->fd = steal_fd(&fd);
	if (read_reply(q, &greeting, deadline_ms, err) < 0)
		return -1;
	if (json_object_get(greeting, "QMP") == NULL)
		return ember_error_set(err, EMBER_E_GUEST, 0, "QMP greeting missing");
	if (qmp_execute(q, "qmp_capabilities", NULL, NULL, deadline_ms, err) < 0)
		return -1;
	*out = steal_pointer(&q);
	return 0;
}

void qmp_close(struct qmp *q)
{
	if (q == NULL)
		return;
	close(q->fd);
	free(q);
}
