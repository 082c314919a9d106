/* ctxmsg.c - strict JSON encoders/decoders of the context messages. */
#include "proto/ctxmsg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/messages.h"
#include "util/jsonutil.h"

#define KIND EMBER_E_PROTOCOL

static const char *const op_names[] = { [PROTO_CONTEXT_OPEN] = "open",
					[PROTO_CONTEXT_CLOSE] = "close",
					[PROTO_CONTEXT_RESTART] = "restart" };

static const char *const language_names[] = { [PROTO_LANG_PYTHON] = "python",
					      [PROTO_LANG_SHELL] = "shell",
					      [PROTO_LANG_NODE] = "node" };

const char *proto_context_language_name(enum proto_context_language language)
{
	if (language < PROTO_LANG_PYTHON || language > PROTO_LANG_NODE)
		return "python"; /* impossible by construction: every decoder checks */
	return language_names[language];
}

enum proto_context_language proto_context_language_parse(const char *name)
{
	int i;

	for (i = PROTO_LANG_PYTHON; i <= PROTO_LANG_NODE; i++) {
		if (strcmp(name, language_names[i]) == 0)
			return (enum proto_context_language)i;
	}
	return PROTO_LANG_NONE;
}

bool proto_context_id_valid(const char *id)
{
	size_t n = strlen(id), i;

	if (n < 5 || n > 4 + 32 || strncmp(id, "ctx_", 4) != 0)
		return false;
	for (i = 4; i < n; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return true;
}

char *proto_context_encode(const struct proto_context *msg, size_t *len,
			   struct ember_error **err)
{
	json_t *obj = json_pack("{s:s, s:s}", "op", op_names[msg->op], "id", msg->id);

	if (obj != NULL && msg->op == PROTO_CONTEXT_OPEN) {
		/* set_new takes each value even when it fails (a NULL one included) */
		if (json_object_set_new(obj, "argv", proto_json_strings(msg->argv, msg->argc)) < 0 ||
		    json_object_set_new(obj, "env", proto_json_strings(msg->env, msg->envc)) < 0 ||
		    json_object_set_new(obj, "language",
					json_string(proto_context_language_name(msg->language))) < 0 ||
		    json_object_set_new(obj, "max_processes",
					json_integer((json_int_t)msg->max_processes)) < 0 ||
		    (msg->cwd != NULL && json_object_set_new(obj, "cwd", json_string(msg->cwd)) < 0)) {
			json_decref(obj);
			ember_error_set(err, EMBER_E_INVALID, 0,
					"context request has a string that is not valid UTF-8");
			return NULL;
		}
	}
	return proto_json_dump(obj, len, err);
}

void proto_context_release(struct proto_context *msg)
{
	size_t i;

	for (i = 0; i < msg->argc; i++)
		free(msg->argv[i]);
	for (i = 0; i < msg->envc; i++)
		free(msg->env[i]);
	free(msg->cwd);
	memset(msg, 0, sizeof(*msg));
}

static int decode_open(json_t *root, struct proto_context *msg, struct ember_error **err)
{
	const char *language, *cwd = NULL;
	size_t language_len, cwd_len = 0;
	uint64_t nproc;

	if (json_get_string(root, "language", true, 16, &language, &language_len, KIND, err) < 0 ||
	    proto_json_copy_strings(root, "argv", PROTO_CONTEXT_ARGV_MAX, false, false, msg->argv,
				    &msg->argc, err) < 0 ||
	    proto_json_copy_strings(root, "env", PROTO_CONTEXT_ENV_MAX, false, true, msg->env,
				    &msg->envc, err) < 0 ||
	    json_get_string(root, "cwd", false, PROTO_STRING_MAX, &cwd, &cwd_len, KIND, err) < 0 ||
	    json_get_uint(root, "max_processes", true, 1, 65536, &nproc, KIND, err) < 0)
		return -1;
	msg->language = proto_context_language_parse(language);
	if (msg->language == PROTO_LANG_NONE)
		return ember_error_set(err, KIND, 0, "field `language` must be python, node or shell");
	if (msg->language != PROTO_LANG_SHELL && msg->argc == 0)
		return ember_error_set(err, KIND, 0, "a %s context needs `argv`", language);
	if (cwd != NULL && cwd_len == 0)
		return ember_error_set(err, KIND, 0, "field `cwd` must not be empty");
	if (cwd != NULL && (msg->cwd = strdup(cwd)) == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
	msg->max_processes = (uint32_t)nproc;
	return 0;
}

int proto_context_decode(const uint8_t *buf, size_t len, struct proto_context *msg,
			 struct ember_error **err)
{
	static const char *const open_keys[] = { "op", "id", "language", "argv", "env", "cwd",
						 "max_processes", NULL };
	static const char *const other_keys[] = { "op", "id", NULL };
	json_t *root = NULL;
	const char *op, *id;
	size_t op_len, id_len;
	int i;

	memset(msg, 0, sizeof(*msg));
	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_get_string(root, "op", true, 16, &op, &op_len, KIND, err) < 0 ||
	    json_get_string(root, "id", true, PROTO_CONTEXT_ID_MAX, &id, &id_len, KIND, err) < 0)
		goto fail;
	for (i = PROTO_CONTEXT_OPEN; i <= PROTO_CONTEXT_RESTART; i++) {
		if (strcmp(op, op_names[i]) == 0)
			msg->op = (enum proto_context_op)i;
	}
	if (msg->op == 0) {
		ember_error_set(err, KIND, 0, "field `op` must be open, close or restart");
		goto fail;
	}
	if (!proto_context_id_valid(id)) {
		ember_error_set(err, KIND, 0, "field `id` is not a context id");
		goto fail;
	}
	memcpy(msg->id, id, id_len + 1);
	if (json_check_keys(root, msg->op == PROTO_CONTEXT_OPEN ? open_keys : other_keys, KIND,
			    err) < 0 ||
	    (msg->op == PROTO_CONTEXT_OPEN && decode_open(root, msg, err) < 0))
		goto fail;
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	proto_context_release(msg);
	return -1;
}

char *proto_context_reply_encode(int32_t pid, size_t *len, struct ember_error **err)
{
	return proto_json_dump(json_pack("{s:i}", "pid", (int)pid), len, err);
}

int proto_context_reply_decode(const uint8_t *buf, size_t len, int32_t *pid,
			       struct ember_error **err)
{
	static const char *const keys[] = { "pid", NULL };
	json_t *root = NULL;
	uint64_t value;
	int ret = -1;

	if (json_parse_object(buf, len, &root, KIND, err) < 0)
		return -1;
	if (json_check_keys(root, keys, KIND, err) == 0 &&
	    json_get_uint(root, "pid", true, 0, INT32_MAX, &value, KIND, err) == 1) {
		*pid = (int32_t)value;
		ret = 0;
	}
	json_decref(root);
	return ret;
}

/* --- the outcome --- */

json_t *proto_outcome_to_json(const struct proto_outcome *o, struct ember_error **err)
{
	json_t *obj = json_object(), *results = json_array(), *error = json_null();
	size_t i;
	int bad = obj == NULL || results == NULL;

	if (!bad && o->has_error) {
		json_decref(error);
		error = json_pack("{s:s, s:s, s:s}", "name", o->error_name, "value", o->error_value,
				  "traceback", o->error_traceback);
	}
	for (i = 0; !bad && i < o->nresults; i++)
		bad = json_array_append_new(results, json_pack("{s:s, s:s}", "mime",
							       o->results[i].mime, "data",
							       o->results[i].data)) < 0;
	if (bad || error == NULL ||
	    json_object_set_new(obj, "restarted", json_boolean(o->restarted)) < 0 ||
	    json_object_set_new(obj, "result", o->result != NULL ? json_string(o->result) :
				json_null()) < 0 ||
	    json_object_set_new(obj, "error", error) < 0 ||
	    json_object_set_new(obj, "results", results) < 0) {
		if (error != NULL && json_object_get(obj, "error") != error)
			json_decref(error);
		if (json_object_get(obj, "results") != results)
			json_decref(results);
		json_decref(obj);
		ember_error_set(err, EMBER_E_INTERNAL, 0,
				"an exec outcome with text that is not UTF-8, or out of memory");
		return NULL;
	}
	return obj;
}

void proto_outcome_release(struct proto_outcome *o)
{
	size_t i;

	free(o->result);
	free(o->error_name);
	free(o->error_value);
	free(o->error_traceback);
	for (i = 0; i < o->nresults; i++)
		free(o->results[i].data);
	memset(o, 0, sizeof(*o));
}

static int dup_string(json_t *obj, const char *key, bool required, size_t max, char **out,
		      const char *what, struct ember_error **err)
{
	const char *s;
	size_t n;
	int got = json_get_string(obj, key, required, max, &s, &n, KIND, err);

	if (got < 0)
		return ember_error_set(err, KIND, 0, "%s: field `%s` must be a string of at most "
				       "%zu bytes", what, key, max);
	if (got == 0)
		return 0;
	*out = strdup(s);
	return *out == NULL ? ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory") : 0;
}

static bool mime_valid(const char *mime)
{
	const char *p;
	size_t slashes = 0;

	for (p = mime; *p != '\0'; p++) {
		if (*p == '/')
			slashes++;
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
			   *p == '+' || *p == '-'))
			return false;
	}
	return slashes == 1 && mime[0] != '/' && p[-1] != '/';
}

static int decode_results(json_t *arr, struct proto_outcome *o, struct ember_error **err)
{
	static const char *const keys[] = { "mime", "data", NULL };
	size_t i, total = 0;

	if (!json_is_array(arr) || json_array_size(arr) > PROTO_RESULTS_MAX)
		return ember_error_set(err, KIND, 0, "field `results` must be an array of at most "
				       "%d objects", PROTO_RESULTS_MAX);
	for (i = 0; i < json_array_size(arr); i++) {
		json_t *r = json_array_get(arr, i);
		const char *mime;
		size_t mime_len;

		if (!json_is_object(r) || json_check_keys(r, keys, KIND, err) < 0 ||
		    json_get_string(r, "mime", true, PROTO_MIME_MAX, &mime, &mime_len, KIND,
				    err) < 0 || !mime_valid(mime))
			return ember_error_set(err, KIND, 0, "results entry %zu: `mime` must be a "
					       "media type like image/png", i);
		memcpy(o->results[i].mime, mime, mime_len + 1);
		if (dup_string(r, "data", true, PROTO_RESULTS_BYTES_MAX, &o->results[i].data,
			       "results", err) < 0)
			return -1;
		o->nresults = i + 1;
		total += strlen(o->results[i].data);
		if (total > PROTO_RESULTS_BYTES_MAX)
			return ember_error_set(err, KIND, 0, "results hold more than %u bytes",
					       PROTO_RESULTS_BYTES_MAX);
	}
	return 0;
}

int proto_outcome_from_json(json_t *obj, bool with_restarted, struct proto_outcome *o,
			    struct ember_error **err)
{
	static const char *const keys[] = { "restarted", "result", "error", "results", NULL };
	static const char *const error_keys[] = { "name", "value", "traceback", NULL };
	json_t *error, *result, *results;

	memset(o, 0, sizeof(*o));
	if (!json_is_object(obj) || json_check_keys(obj, keys + (with_restarted ? 0 : 1), KIND,
						    err) < 0)
		return ember_error_set(err, KIND, 0, "an exec outcome must be an object with "
				       "result, error and results");
	if (with_restarted && json_get_bool(obj, "restarted", true, &o->restarted, KIND, err) < 0)
		goto fail;
	result = json_object_get(obj, "result");
	if (result != NULL && !json_is_null(result) &&
	    dup_string(obj, "result", true, PROTO_RESULT_TEXT_MAX, &o->result, "outcome", err) < 0)
		goto fail;
	error = json_object_get(obj, "error");
	if (error != NULL && !json_is_null(error)) {
		if (!json_is_object(error) || json_check_keys(error, error_keys, KIND, err) < 0 ||
		    dup_string(error, "name", true, 256, &o->error_name, "error", err) < 0 ||
		    dup_string(error, "value", true, PROTO_ERROR_TEXT_MAX, &o->error_value, "error",
			       err) < 0 ||
		    dup_string(error, "traceback", true, PROTO_ERROR_TEXT_MAX, &o->error_traceback,
			       "error", err) < 0) {
			ember_error_set(err, KIND, 0, "field `error` must be {name, value, "
					"traceback}");
			goto fail;
		}
		o->has_error = true;
	}
	results = json_object_get(obj, "results");
	if (results != NULL && decode_results(results, o, err) < 0)
		goto fail;
	o->present = true;
	return 0;
fail:
	proto_outcome_release(o);
	return -1;
}
