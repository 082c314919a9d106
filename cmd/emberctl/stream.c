/* stream.c - a streamed exec's ndjson events, read line by line as they arrive. */
#include "stream.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "util/buf.h"
#include "util/text.h"

/* An event line holds at most 16 KiB of output, escaped: far below this. */
#define STREAM_LINE_MAX (1024u * 1024u)

struct reader {
	struct buf line;      /* the current line (for a non-200: the whole error body) */
	long status;          /* read after the transfer */
	json_t *exit;         /* the exit event */
	json_t *error;        /* the error event, or the error body of a non-200 */
	bool broken;          /* a line too long or not JSON */
};

static void print_output(json_t *ev)
{
	const char *data = json_string_value(json_object_get(ev, "data"));
	FILE *f = strcmp(json_string_value(json_object_get(ev, "type")), "stdout") == 0 ? stdout
										  : stderr;
	uint8_t *raw = NULL;
	size_t len;

	if (data == NULL)
		return;
	if (json_object_get(ev, "encoding") == NULL) {
		fwrite(data, 1, json_string_length(json_object_get(ev, "data")), f);
	} else if (base64_decode(data, strlen(data), &raw, &len) == 0) {
		fwrite(raw, 1, len, f);
		free(raw);
	}
	fflush(f);
}

static void handle_line(struct reader *r, const char *text, size_t len)
{
	json_t *ev = json_loadb(text, len, 0, NULL);
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (type == NULL) {
		r->broken = true;
	} else if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
		print_output(ev);
	} else if ((strcmp(type, "exit") == 0 || strcmp(type, "running") == 0) &&
		   r->exit == NULL) {
		r->exit = json_incref(ev);
	} else if (strcmp(type, "error") == 0 && r->error == NULL) {
		r->error = json_incref(json_object_get(ev, "error"));
	}
	json_decref(ev);
}

static bool on_body(void *ctx, const char *data, size_t n)
{
	struct reader *r = ctx;
	size_t i;

	for (i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (r->line.len >= STREAM_LINE_MAX || buf_append(&r->line, &data[i], 1) < 0) {
				r->broken = true;
				return false; /* aborts the transfer */
			}
			continue;
		}
		handle_line(r, (const char *)r->line.data, r->line.len);
		r->line.len = 0;
	}
	return true;
}

/* One event stream to its end: output printed as it comes; 0 with *last (the exit or running
 * event, the caller's to release), or 1 after printing what failed. */
static int run_stream(struct ctl *c, const char *method, const char *path, json_t *body,
		      json_t **last)
{
	struct ember_error *err = NULL;
	struct reader r = { 0 };
	int rc, ret = 1;

	rc = http_client_stream(c->http, method, path, body, "application/x-ndjson", on_body, &r,
				&r.status, &err);
	if (r.status != 200 && r.line.len > 0) { /* a JSON error body, without a newline */
		json_t *e = json_loadb((const char *)r.line.data, r.line.len, 0, NULL);

		r.error = json_incref(json_object_get(e, "error"));
		json_decref(e);
	}
	if (rc < 0 && !r.broken)
		fprintf(stderr, "emberctl: %s (is emberd running on %s?)\n", err->message,
			c->addr);
	else if (r.error != NULL || r.status != 200)
		fprintf(stderr, "emberctl: %s %s: HTTP %ld %s: %s\n", method, path, r.status,
			json_string_value(json_object_get(r.error, "code")) ?: "",
			json_string_value(json_object_get(r.error, "message")) ?: "(no error body)");
	else if (r.broken || r.exit == NULL)
		fprintf(stderr, "emberctl: %s %s: the event stream ended without an exit event\n",
			method, path);
	else
		ret = 0;
	*last = ret == 0 ? json_incref(r.exit) : NULL;
	json_decref(r.exit);
	json_decref(r.error);
	buf_release(&r.line);
	ember_error_free(&err);
	return ret;
}

int stream_exec(struct ctl *c, const char *path, json_t *body)
{
	json_t *exit = NULL;
	int ret = run_stream(c, "POST", path, body, &exit);

	if (ret == 0)
		ret = output_exec_result(exit); /* no stdout/stderr members: prints the rest */
	json_decref(exit);
	return ret;
}

int stream_process_output(struct ctl *c, const char *path)
{
	json_t *last = NULL;
	int ret = run_stream(c, "GET", path, NULL, &last);

	json_decref(last);
	return ret;
}
