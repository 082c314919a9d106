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

/* Reads messages until one that is not an asynchronous event; returns it. */
static int read_reply(struct qmp *q, json_t **out, int64_t deadline_ms, struct ember_error **err)
{
	size_t consumed = 0;
	int ret = -1;

	for (;;) {
		char *line = NULL;
		json_t *msg;

		if (read_line(q, &consumed, &line, deadline_ms, err) < 0)
			break;
		if (line[0] == '\0' || (line[0] == '\r' && line[1] == '\0'))
			continue;
		if (json_parse_object(line, strlen(line), &msg, EMBER_E_GUEST, err) < 0) {
			ember_error_wrap(err, "QMP");
			break;
		}
		if (json_object_get(msg, "event") != NULL) {
			json_decref(msg);
			continue;
		}
		*out = msg;
		ret = 0;
		break;
	}
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
	json_t *req = json_pack("{s:s}", "execute", command);
	json_t *reply = NULL, *ret_value, *error;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int ret = -1;

	if (req == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (args != NULL)
		json_object_set(req, "arguments", args);
	text = json_dump_compact(req, &len, err);
	json_decref(req);
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

		ember_error_set(err, EMBER_E_GUEST, 0, "QMP %s failed: %s", command,
				desc != NULL ? desc : "(no description)");
	} else if (ret_value == NULL) {
		ember_error_set(err, EMBER_E_GUEST, 0, "QMP %s: reply has neither return nor error",
				command);
	} else {
		if (result != NULL)
			*result = json_incref(ret_value);
		ret = 0;
	}
	json_decref(reply);
	return ret;
}

int qmp_connect(const char *path, int64_t deadline_ms, struct qmp **out, struct ember_error **err)
{
	struct qmp *q;
	json_t *greeting = NULL;
	int fd;

	for (;;) {
		struct ember_error *connect_err = NULL;

		fd = unix_connect(path, &connect_err);
		if (fd >= 0)
			break;
		if ((connect_err->errno_value != ENOENT &&
		     connect_err->errno_value != ECONNREFUSED) ||
		    time_ms_until(deadline_ms) == 0) {
			ember_error_propagate(err, connect_err);
			return ember_error_wrap(err, "QMP");
		}
		ember_error_free(&connect_err);
		usleep(5000);
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		close(fd);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	q->fd = fd;
	if (read_reply(q, &greeting, deadline_ms, err) < 0)
		goto fail;
	if (json_object_get(greeting, "QMP") == NULL) {
		ember_error_set(err, EMBER_E_GUEST, 0, "QMP greeting missing");
		goto fail;
	}
	json_decref(greeting);
	greeting = NULL;
	if (qmp_execute(q, "qmp_capabilities", NULL, NULL, deadline_ms, err) < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	json_decref(greeting);
	qmp_close(q);
	return -1;
}

void qmp_close(struct qmp *q)
{
	if (q == NULL)
		return;
	close(q->fd);
	free(q);
}
