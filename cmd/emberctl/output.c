/* output.c - emberctl's printing of replies. */
#include "output.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/text.h"

void output_json(json_t *v)
{
	_cleanup_free_ char *text = json_dumps(v, JSON_COMPACT);

	printf("%s\n", text != NULL ? text : "null");
}

void output_json_indented(json_t *v)
{
	_cleanup_free_ char *text = json_dumps(v, JSON_INDENT(2));

	printf("%s\n", text != NULL ? text : "");
}

/* A text-or-base64 field (see docs/api.md) as its raw bytes (malloc'd); -1 when absent. */
static int read_bytes_field(json_t *obj, const char *key, uint8_t **out, size_t *len)
{
	char enc_key[64];
	json_t *v = json_object_get(obj, key);
	const char *value = json_string_value(v), *enc;

	snprintf(enc_key, sizeof(enc_key), "%s_encoding", key);
	enc = json_string_value(json_object_get(obj, enc_key));
	if (value == NULL)
		return -1;
	if (enc != NULL && strcmp(enc, "base64") == 0)
		return base64_decode(value, strlen(value), out, len);
	*len = json_string_length(v);
	*out = malloc(*len + 1);
	if (*out == NULL)
		return -1;
	memcpy(*out, value, *len);
	return 0;
}

/* Writes a text-or-base64 field to f as raw bytes: a program's output, the user's to see. */
static void write_bytes_field(FILE *f, json_t *obj, const char *key)
{
	_cleanup_free_ uint8_t *raw = NULL;
	size_t len = 0;

	if (read_bytes_field(obj, key, &raw, &len) == 0)
		fwrite(raw, 1, len, f);
	fflush(f);
}

int output_exec_result(json_t *reply)
{
	int code;

	write_bytes_field(stdout, reply, "stdout");
	write_bytes_field(stderr, reply, "stderr");
	if (json_is_true(json_object_get(reply, "timed_out")))
		fprintf(stderr, "emberctl: exec timed out\n");
	if (json_is_true(json_object_get(reply, "oom_killed")))
		fprintf(stderr, "emberctl: the sandbox ran out of memory: its OOM killer "
				"ended a process of this exec\n");
	if (json_is_true(json_object_get(reply, "truncated")))
		fprintf(stderr, "emberctl: output was truncated\n");
	code = (int)json_integer_value(json_object_get(reply, "exit_code"));
	if (code < 0)
		code = 128 + (int)json_integer_value(json_object_get(reply, "signal"));
	return code;
}

/* K=V,K=V (labels have no control characters: the daemon refuses them). */
static void print_labels(json_t *labels)
{
	const char *key;
	json_t *value;
	bool first = true;

	json_object_foreach(labels, key, value) {
		printf("%s%s=%s", first ? "" : ",", key, json_string_value(value));
		first = false;
	}
}

void output_sandbox_list(json_t *reply)
{
	json_t *item;
	size_t i;

	printf("%-36s %-8s %-11s %6s %8s %8s  %s\n", "ID", "PACK", "STATE", "EXECS", "AGE_S", "PID",
	       "LABELS");
	json_array_foreach(json_object_get(reply, "sandboxes"), i, item) {
		printf("%-36s %-8s %-11s %6lld %8lld %8lld  ",
		       json_string_value(json_object_get(item, "id")),
		       json_string_value(json_object_get(item, "language_pack")),
		       json_string_value(json_object_get(item, "state")),
		       json_integer_value(json_object_get(item, "execs_run")),
		       json_integer_value(json_object_get(item, "age_ms")) / 1000,
		       json_integer_value(json_object_get(item, "vmm_pid")));
		print_labels(json_object_get(item, "labels"));
		putchar('\n');
	}
}

/* Guest console bytes for a terminal: lines as they are, everything a terminal would act on
 * (escape sequences, other controls, bytes that are not UTF-8) shown escaped. */
static void write_console_safely(FILE *f, const uint8_t *data, size_t len)
{
	char piece[256], escaped[4 * sizeof(piece)];
	size_t i = 0, n = 0;

	while (i <= len) {
		bool flush = i == len || data[i] == '\n' || data[i] == '\0' ||
			     (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') ||
			     n == sizeof(piece) - 1;

		if (flush) {
			piece[n] = '\0';
			text_escape_log(piece, escaped, sizeof(escaped));
			fputs(escaped, f);
			n = 0;
		}
		if (i < len && data[i] == '\n')
			fputc('\n', f);
		else if (i + 1 < len && data[i] == '\r' && data[i + 1] == '\n')
			; /* a serial console's line end: the \n that follows is the newline */
		else if (i < len && data[i] == '\0')
			fputs("\\x00", f);
		else if (i < len)
			piece[n++] = (char)data[i];
		i++;
	}
}

void output_inspect(json_t *info, json_t *console)
{
	const char *key;
	json_t *value;

	json_object_foreach(info, key, value) {
		_cleanup_free_ char *text = json_dumps(value, JSON_ENCODE_ANY);

		printf("%-14s %s\n", key, text != NULL ? text : "?");
	}
	_cleanup_free_ uint8_t *bytes = NULL;
	size_t len = 0;

	printf("--- guest console (tail) ---\n");
	if (read_bytes_field(console, "console", &bytes, &len) == 0)
		write_console_safely(stdout, bytes, len);
	printf("\n");
}
