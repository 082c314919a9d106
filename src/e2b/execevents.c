/* execevents.c - the code interpreter's /execute NDJSON lines (what @e2b/code-interpreter's
 * parseOutput reads): "stdout"/"stderr" {text, timestamp} while the code runs; at its end the
 * main "result" (is_main_result true: the final expression's text and its other renderings),
 * one "result" per figure (is_main_result false), the "error" {name, value, traceback} and
 * "end_of_execution". The exec's own "exit" event members (api/encode.h api_encode_exit) are
 * what the end is made from; an "error" event (the exec broke off) becomes an "error" line
 * without end_of_execution, as E2B's server ends a stream whose kernel went away. */
#include "e2b/streamfmt.h"

#include <errno.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"
#include "util/timeutil.h"

/* A native rich result's MIME type and the E2B result member that carries it (E2B's server
 * names them so, from the Jupyter MIME bundle). Other types keep their MIME type as the member
 * name (the SDK puts those into Result.extra). */
static const struct {
	const char *mime;
	const char *member;
} mime_members[] = {
	{ "text/html", "html" },          { "text/markdown", "markdown" },
	{ "image/svg+xml", "svg" },       { "image/png", "png" },
	{ "image/jpeg", "jpeg" },         { "application/pdf", "pdf" },
	{ "text/latex", "latex" },        { "application/json", "json" },
	{ "application/javascript", "javascript" },
};

static const char *member_for_mime(const char *mime)
{
	size_t i;

	for (i = 0; i < sizeof(mime_members) / sizeof(mime_members[0]); i++) {
		if (strcmp(mime_members[i].mime, mime) == 0)
			return mime_members[i].member;
	}
	return mime;
}

static int oom(struct ember_error **err)
{
	return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
}

/* One line: obj as compact JSON and "\n". Takes obj. */
static int append_line(struct buf *out, json_t *obj, struct ember_error **err)
{
	_cleanup_json_ json_t *owned = obj;
	_cleanup_free_ char *text = owned != NULL ? json_dumps(owned, JSON_COMPACT) : NULL;

	if (text == NULL || buf_append(out, text, strlen(text)) < 0 || buf_append(out, "\n", 1) < 0)
		return oom(err);
	return 0;
}

int e2b_execute_events_output(struct buf *out, const char *type, const uint8_t *data, size_t len,
			      struct ember_error **err)
{
	/* The SDK wants text: bytes that are not UTF-8 (or hold a NUL) become U+FFFD, as
	 * Jupyter's own stream decoding does. */
	_cleanup_free_ char *text = utf8_lossy((const char *)data, len);
	char stamp[40];

	if (text == NULL)
		return oom(err);
	time_format_rfc3339(time_wall_ns(), stamp, sizeof(stamp));
	return append_line(out, json_pack("{s:s, s:s, s:s}", "type", type, "text", text,
					  "timestamp", stamp),
			   err);
}

/* A rich result's data as the E2B member holds it: application/json is a JSON value (E2B's
 * server passes the kernel's dict on), everything else the text (base64 for images). */
static json_t *member_value(const char *mime, const char *data)
{
	json_t *value;

	if (strcmp(mime, "application/json") == 0) {
		value = json_loads(data, JSON_DECODE_ANY, NULL);
		if (value != NULL)
			return value;
	}
	return json_string(data);
}

/* The final expression's result: its repr as text (a str's repr without its quotes, as E2B's
 * server strips them) and, from results, every rendering but PNGs. A PNG is a figure (the
 * native context renders each open matplotlib figure as one): a result of its own, as
 * Jupyter's display_data makes it. A value's own _repr_png_ comes that way too. */
static int main_result(struct buf *out, json_t *exit_members, struct ember_error **err)
{
	json_t *repr = json_object_get(exit_members, "result");
	json_t *results = json_object_get(exit_members, "results");
	_cleanup_json_ json_t *line = NULL;
	const char *text;
	size_t n, i;
	json_t *item;

	if (!json_is_string(repr))
		return 0;
	text = json_string_value(repr);
	n = json_string_length(repr);
	if (n >= 2 && text[0] == '\'' && text[n - 1] == '\'')
		line = json_pack("{s:s, s:s%, s:b}", "type", "result", "text", text + 1, n - 2,
				 "is_main_result", 1);
	else
		line = json_pack("{s:s, s:O, s:b}", "type", "result", "text", repr,
				 "is_main_result", 1);
	if (line == NULL)
		return oom(err);
	json_array_foreach(results, i, item) {
		const char *mime = json_string_value(json_object_get(item, "mime"));
		const char *data = json_string_value(json_object_get(item, "data"));

		if (mime == NULL || data == NULL || strcmp(mime, "image/png") == 0)
			continue;
		if (json_object_set_new(line, member_for_mime(mime), member_value(mime, data)) < 0)
			return oom(err);
	}
	return append_line(out, steal_pointer(&line), err);
}

static int figure_results(struct buf *out, json_t *exit_members, struct ember_error **err)
{
	json_t *results = json_object_get(exit_members, "results");
	size_t i;
	json_t *item;

	json_array_foreach(results, i, item) {
		const char *mime = json_string_value(json_object_get(item, "mime"));
		const char *data = json_string_value(json_object_get(item, "data"));

		if (mime == NULL || data == NULL || strcmp(mime, "image/png") != 0)
			continue;
		if (append_line(out, json_pack("{s:s, s:s, s:b}", "type", "result", "png", data,
					       "is_main_result", 0),
				err) < 0)
			return -1;
	}
	return 0;
}

/* The exception the code raised; or, when the interpreter was killed and replaced (a timeout
 * the code ignored, an OOM kill) without one, the error E2B's server reports for a kernel
 * restart. */
static int error_line(struct buf *out, json_t *exit_members, struct ember_error **err)
{
	json_t *error = json_object_get(exit_members, "error");

	if (json_is_object(error))
		return append_line(out, json_pack("{s:s, s:O?, s:O?, s:O?}", "type", "error",
						  "name", json_object_get(error, "name"),
						  "value", json_object_get(error, "value"),
						  "traceback", json_object_get(error, "traceback")),
				   err);
	if (json_is_true(json_object_get(exit_members, "context_restarted")))
		return append_line(out, json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "name",
						  "ContextRestarting", "value",
						  json_is_true(json_object_get(exit_members,
									       "oom_killed"))
							  ? "Context was restarted: it ran out of "
							    "memory"
							  : "Context was restarted",
						  "traceback", ""),
				   err);
	return 0;
}

/* The exec broke off (the sandbox went away, the guest failed): E2B's server says so with an
 * UnexpectedEndOfExecution error and ends the stream. */
static int broken_off(struct buf *out, json_t *members, struct ember_error **err)
{
	json_t *message = json_object_get(json_object_get(members, "error"), "message");

	return append_line(out, json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "name",
					  "UnexpectedEndOfExecution", "value",
					  json_is_string(message) ? json_string_value(message)
								  : "the execution broke off",
					  "traceback", ""),
			   err);
}

int e2b_execute_events_object(struct buf *out, const char *type, json_t *members,
			      struct ember_error **err)
{
	if (strcmp(type, "exit") == 0) {
		if (main_result(out, members, err) < 0 || figure_results(out, members, err) < 0 ||
		    error_line(out, members, err) < 0)
			return -1;
		return append_line(out, json_pack("{s:s}", "type", "end_of_execution"), err);
	}
	if (strcmp(type, "error") == 0)
		return broken_off(out, members, err);
	return 0; /* nothing else has an E2B line ("running" is a follower's) */
}
