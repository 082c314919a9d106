/* controlreq.c - the E2B control plane's request decoders (see controlreq.h). */
#include "e2b/controlreq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox/snapshots.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"

#define KIND EMBER_E_INVALID

/* autoPause: true, at create or resume. */
#define E2B_NO_AUTO_PAUSE                                                                     \
	"pausing when the timeout ends is not supported by emberd (the sandbox is killed "     \
	"then); pause it yourself with Sandbox.pause() (POST /sandboxes/{id}/pause)"

/* 30 days: the longest lifetime any request may name (the manager holds --max-timeout-s). */
#define E2B_TIMEOUT_MAX (30u * 24 * 3600)

/* A field that must ask for nothing: absent, null, false, {} or []. */
static bool asks_nothing(json_t *v)
{
	return v == NULL || json_is_null(v) || json_is_false(v) ||
	       (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

static int refuse_unless_empty(json_t *root, const char *field, const char *why,
			       struct ember_error **err)
{
	if (asks_nothing(json_object_get(root, field)))
		return 0;
	return ember_error_set(err, KIND, 0, "field `%s`: %s", field, why);
}

/* iam: {"tokens": {}} asks for nothing too. */
static int check_iam(json_t *root, struct ember_error **err)
{
	json_t *iam = json_object_get(root, "iam");

	if (json_is_object(iam) && json_object_size(iam) == 1 &&
	    asks_nothing(json_object_get(iam, "tokens")))
		return 0;
	return refuse_unless_empty(root, "iam",
				   "workload identity tokens are not supported by emberd", err);
}

/* autoResume: {"enabled": false} asks for nothing. */
static int check_auto_resume(json_t *root, struct ember_error **err)
{
	json_t *ar = json_object_get(root, "autoResume");

	if (json_is_object(ar) && json_object_size(ar) == 1 &&
	    json_is_false(json_object_get(ar, "enabled")))
		return 0;
	return refuse_unless_empty(root, "autoResume",
				   "emberd has no auto-pause, so nothing auto-resumes: resume a "
				   "paused sandbox with Sandbox.connect() (POST "
				   "/v2/sandboxes/{id}/connect)", err);
}

static int parse_metadata(json_t *root, struct sandbox_labels *labels, struct ember_error **err)
{
	json_t *map = json_object_get(root, "metadata"), *value;
	const char *key;

	labels->count = 0;
	if (map == NULL || json_is_null(map))
		return 0;
	if (!json_is_object(map))
		return ember_error_set(err, KIND, 0, "field `metadata` must be an object of strings");
	json_object_foreach(map, key, value) {
		if (strncmp(key, E2B_LABEL_PREFIX, strlen(E2B_LABEL_PREFIX)) == 0)
			return ember_error_set(err, KIND, 0,
					       "field `metadata`: keys starting with `%s` are "
					       "reserved for emberd", E2B_LABEL_PREFIX);
		if (!json_is_string(value))
			return ember_error_set(err, KIND, 0,
					       "field `metadata`: the value of `%.63s` must be a "
					       "string", key);
		/* One slot stays free for the template label. */
		if (labels->count >= SANDBOX_LABELS_MAX - 1)
			return ember_error_set(err, KIND, 0, "field `metadata`: at most %d keys",
					       SANDBOX_LABELS_MAX - 1);
		if (sandbox_labels_add(labels, key, json_string_value(value),
				       json_string_length(value), err) < 0)
			return ember_error_wrap(err, "field `metadata` (emberd keeps metadata as "
						     "labels, docs/e2b.md)");
	}
	return 0;
}

int e2b_parse_create(const char *body, size_t len, struct e2b_create_body *out,
		     struct ember_error **err)
{
	static const char *const keys[] = {
		"templateID", "timeout", "metadata", "envVars", "secure", "allow_internet_access",
		"autoPause", "autoPauseMemory", "autoResume", "mcp", "network", "iam",
		"volumeMounts", NULL
	};
	_cleanup_json_ json_t *root = NULL;
	const char *template_id;
	size_t template_len;
	uint64_t timeout = 0;
	bool flag = false;

	memset(out, 0, sizeof(*out));
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_string(root, "templateID", true, E2B_TEMPLATE_MAX, &template_id, &template_len,
			    KIND, err) < 0 ||
	    json_get_uint(root, "timeout", false, 1, E2B_TIMEOUT_MAX, &timeout, KIND, err) < 0 ||
	    json_get_bool(root, "secure", false, &flag, KIND, err) < 0 ||
	    json_get_bool(root, "autoPauseMemory", false, &flag, KIND, err) < 0)
		return -1;
	if (template_len == 0)
		return ember_error_set(err, KIND, 0, "field `templateID` is empty");
	memcpy(out->template_id, template_id, template_len + 1);
	out->timeout_s = (unsigned)timeout;
	flag = false;
	if (json_get_bool(root, "allow_internet_access", false, &flag, KIND, err) < 0)
		return -1;
	out->allow_internet = flag;
	flag = false;
	if (json_get_bool(root, "autoPause", false, &flag, KIND, err) < 0)
		return -1;
	if (flag)
		return ember_error_set(err, KIND, 0, "field `autoPause`: %s", E2B_NO_AUTO_PAUSE);
	if (check_auto_resume(root, err) < 0 || check_iam(root, err) < 0 ||
	    refuse_unless_empty(root, "mcp", "the MCP gateway is not part of emberd's templates; "
					     "emberd serves MCP itself (docs/mcp.md)", err) < 0 ||
	    refuse_unless_empty(root, "network",
				"network rules are not mapped yet: use allow_internet_access "
				"(allowInternetAccess), or emberd's native API for allow lists",
				err) < 0 ||
	    refuse_unless_empty(root, "volumeMounts", "volumes are not supported by emberd",
				err) < 0 ||
	    sandbox_env_from_json(root, "envVars", &out->env, err) < 0)
		return -1;
	return parse_metadata(root, &out->labels, err);
}

int e2b_parse_timeout(const char *body, size_t len, unsigned *timeout_s,
		      struct ember_error **err)
{
	static const char *const keys[] = { "timeout", NULL };
	_cleanup_json_ json_t *root = NULL;
	uint64_t v;

	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "timeout", true, 1, E2B_TIMEOUT_MAX, &v, KIND, err) < 0)
		return -1;
	*timeout_s = (unsigned)v;
	return 0;
}

int e2b_parse_pause(const char *body, size_t len, struct ember_error **err)
{
	static const char *const keys[] = { "memory", NULL };
	_cleanup_json_ json_t *root = NULL;
	bool memory = true;

	if (len == 0)
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_bool(root, "memory", false, &memory, KIND, err) < 0)
		return -1;
	if (!memory)
		return ember_error_set(err, KIND, 0,
				       "field `memory`: emberd pauses with the memory only (a "
				       "filesystem-only pause is not supported); leave keepMemory "
				       "out or true");
	return 0;
}

/* The body of a connect or resume; keys lists what this one takes. */
static int parse_resume_body(const char *body, size_t len, const char *const *keys,
			     struct e2b_resume_body *out, struct ember_error **err)
{
	_cleanup_json_ json_t *root = NULL;
	uint64_t v = 0;
	bool memory = true, auto_pause = false;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "timeout", false, 1, E2B_TIMEOUT_MAX, &v, KIND, err) < 0 ||
	    json_get_bool(root, "memory", false, &memory, KIND, err) < 0 ||
	    json_get_bool(root, "autoPause", false, &auto_pause, KIND, err) < 0)
		return -1;
	if (auto_pause)
		return ember_error_set(err, KIND, 0, "field `autoPause`: %s", E2B_NO_AUTO_PAUSE);
	out->timeout_s = (unsigned)v;
	out->reboot = !memory;
	return 0;
}

int e2b_parse_connect(const char *body, size_t len, struct e2b_resume_body *out,
		      struct ember_error **err)
{
	static const char *const keys[] = { "timeout", "memory", NULL };

	return parse_resume_body(body, len, keys, out, err);
}

int e2b_parse_resume(const char *body, size_t len, struct e2b_resume_body *out,
		     struct ember_error **err)
{
	static const char *const keys[] = { "timeout", "autoPause", "memory", NULL };

	return parse_resume_body(body, len, keys, out, err);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes in[0..len) into out (room for max bytes and a NUL); form: '+' is a space.
 * -1 on a bad escape, a NUL byte or a result longer than max. */
static int url_decode(const char *in, size_t len, bool form, char *out, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = hex_value(in[i + 1]);
			lo = hex_value(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		if (c == 0 || n >= max)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* A metadata key or value: form-decoded (the URLSearchParams layer), then percent-decoded again
 * (the SDK's own encodeURIComponent). A client that encoded once and sent a literal `%` leaves
 * a text the second pass cannot decode: then the once-decoded text is meant. */
static int metadata_decode(const char *in, size_t len, char *out, size_t max)
{
	char once[3 * SANDBOX_LABEL_VALUE_MAX + 1];

	if (url_decode(in, len, true, once, sizeof(once) - 1) < 0)
		return -1;
	if (url_decode(once, strlen(once), false, out, max) == 0)
		return 0;
	if (strlen(once) > max)
		return -1;
	memcpy(out, once, strlen(once) + 1);
	return 0;
}

static int parse_metadata_query(const char *text, struct e2b_list_query *out,
				struct ember_error **err)
{
	const char *p = text;

	if (strlen(text) > 16384)
		return ember_error_set(err, KIND, 0, "query `metadata` is too long");
	while (*p != '\0') {
		const char *end = strchr(p, '&'), *eq;
		size_t n;
		char *key, *value;

		if (end == NULL)
			end = p + strlen(p);
		n = (size_t)(end - p);
		eq = memchr(p, '=', n);
		if (n > 0) {
			if (out->nterms >= SANDBOX_LABELS_MAX)
				return ember_error_set(err, KIND, 0,
						       "query `metadata`: at most %d keys",
						       SANDBOX_LABELS_MAX);
			key = out->keys[out->nterms];
			value = out->values[out->nterms];
			if (eq == NULL ||
			    metadata_decode(p, (size_t)(eq - p), key, SANDBOX_LABEL_KEY_MAX) < 0 ||
			    metadata_decode(eq + 1, (size_t)(end - eq - 1), value,
					    SANDBOX_LABEL_VALUE_MAX) < 0)
				return ember_error_set(err, KIND, 0,
						       "query `metadata` must be `key=value&...` "
						       "with URL-encoded keys and values of at most "
						       "%d and %d bytes",
						       SANDBOX_LABEL_KEY_MAX, SANDBOX_LABEL_VALUE_MAX);
			if (sandbox_label_check_key(key, err) < 0 ||
			    sandbox_label_check_value(key, value, strlen(value), err) < 0)
				return ember_error_wrap(err, "query `metadata`");
			out->terms[out->nterms].key = key;
			out->terms[out->nterms].value = value;
			out->nterms++;
		}
		p = *end == '&' ? end + 1 : end;
	}
	return 0;
}

/* state=running,paused (the SDK's form style without explode) or repeated. */
static int parse_state(const char *text, struct e2b_list_query *out, struct ember_error **err)
{
	const char *p = text;

	while (true) {
		size_t n = strcspn(p, ",");

		if (n == 7 && strncmp(p, "running", 7) == 0)
			out->running = true;
		else if (n == 6 && strncmp(p, "paused", 6) == 0)
			out->paused = true;
		else
			return ember_error_set(err, KIND, 0,
					       "query `state`: each state must be running or paused");
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

/* The ISO 8601 form Date.toISOString() writes: YYYY-MM-DDTHH:MM:SS[.fff...]Z. */
static int parse_time(const char *text, int64_t *ns, struct ember_error **err)
{
	struct tm tm = { 0 };
	const char *rest;
	int64_t frac = 0, scale = 100000000;
	time_t secs;

	rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL)
		goto bad;
	if (*rest == '.') {
		rest++;
		if (*rest < '0' || *rest > '9')
			goto bad;
		for (; *rest >= '0' && *rest <= '9'; rest++) {
			frac += (*rest - '0') * scale;
			scale /= 10;
		}
	}
	if (strcmp(rest, "Z") != 0)
		goto bad;
	secs = timegm(&tm);
	if (secs < 0)
		goto bad;
	*ns = (int64_t)secs * 1000000000 + frac;
	return 0;
bad:
	return ember_error_set(err, KIND, 0,
			       "query `startedAfter` must be an RFC 3339 UTC time "
			       "(2025-01-31T12:00:00.000Z)");
}

/* "<created>_<id>" into *created and id (room for E2B_NEXT_TOKEN_ID_MAX bytes); the id is
 * only ever compared, valid(id) says whether it can be one. */
static int parse_next_token(const char *text, bool (*valid)(const char *id), int64_t *created,
			    char id[E2B_NEXT_TOKEN_ID_MAX + 1], struct ember_error **err)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno != 0 || end == text || n < 0 || *end != '_' ||
	    strlen(end + 1) > E2B_NEXT_TOKEN_ID_MAX || !valid(end + 1))
		return ember_error_set(err, KIND, 0,
				       "query `nextToken` is not one this daemon handed out");
	*created = n;
	memcpy(id, end + 1, strlen(end + 1) + 1);
	return 0;
}

static bool snapshot_id_shaped(const char *id)
{
	return strlen(id) == SNAPSHOT_ID_LEN &&
	       strncmp(id, SNAPSHOT_ID_PREFIX, strlen(SNAPSHOT_ID_PREFIX)) == 0;
}

static int parse_limit(const char *value, unsigned *limit, struct ember_error **err)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || value[0] == '-' || n < 1 ||
	    n > E2B_LIST_LIMIT_MAX)
		return ember_error_set(err, KIND, 0, "query `limit` must be 1 to %d",
				       E2B_LIST_LIMIT_MAX);
	*limit = (unsigned)n;
	return 0;
}

static int parse_list_pair(const char *key, const char *value, bool v2,
			   struct e2b_list_query *out, struct ember_error **err)
{
	if (value == NULL)
		return ember_error_set(err, KIND, 0, "query `%.40s` needs a value", key);
	if (strcmp(key, "metadata") == 0)
		return parse_metadata_query(value, out, err);
	if (!v2)
		return ember_error_set(err, KIND, 0,
				       "unknown query parameter `%.40s` (GET /sandboxes takes "
				       "metadata; GET /v2/sandboxes more)", key);
	if (strcmp(key, "state") == 0)
		return parse_state(value, out, err);
	if (strcmp(key, "limit") == 0)
		return parse_limit(value, &out->limit, err);
	if (strcmp(key, "order") == 0) {
		if (strcmp(value, "asc") != 0 && strcmp(value, "desc") != 0)
			return ember_error_set(err, KIND, 0, "query `order` must be asc or desc");
		out->ascending = strcmp(value, "asc") == 0;
		return 0;
	}
	if (strcmp(key, "startedAfter") == 0) {
		out->has_started_after = true;
		return parse_time(value, &out->started_after_ns, err);
	}
	if (strcmp(key, "template") == 0) {
		if (strlen(value) > E2B_TEMPLATE_MAX)
			return ember_error_set(err, KIND, 0, "query `template` is too long");
		memcpy(out->template_id, value, strlen(value) + 1);
		return 0;
	}
	if (strcmp(key, "nextToken") == 0) {
		out->has_next = true;
		return parse_next_token(value, api_valid_sandbox_id, &out->next_created_ns,
					out->next_id, err);
	}
	return ember_error_set(err, KIND, 0, "unknown query parameter `%.40s`", key);
}

int e2b_parse_list_query(const struct api_query *query, bool v2, struct e2b_list_query *out,
			 struct ember_error **err)
{
	bool state_given = false;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (query->too_many || query->has_nul)
		return ember_error_set(err, KIND, 0, "too many or malformed query parameters");
	out->limit = v2 ? E2B_LIST_LIMIT_MAX : 0;
	for (i = 0; i < query->count; i++) {
		if (strcmp(query->pairs[i].key, "state") == 0)
			state_given = true;
		if (parse_list_pair(query->pairs[i].key, query->pairs[i].value, v2, out, err) < 0)
			return -1;
	}
	/* E2B's v1 list is of running sandboxes; v2's of both unless state says */
	if (!state_given) {
		out->running = true;
		out->paused = v2;
	}
	return 0;
}

int e2b_parse_snapshot_query(const struct api_query *query, struct e2b_snapshot_query *out,
			     struct ember_error **err)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (query->too_many || query->has_nul)
		return ember_error_set(err, KIND, 0, "too many or malformed query parameters");
	for (i = 0; i < query->count; i++) {
		const char *key = query->pairs[i].key, *value = query->pairs[i].value;
		int ret;

		if (value == NULL)
			return ember_error_set(err, KIND, 0, "query `%.40s` needs a value", key);
		if (strcmp(key, "sandboxID") == 0) {
			if (!api_valid_sandbox_id(value))
				return ember_error_set(err, KIND, 0,
						       "query `sandboxID` is not a sandbox id");
			memcpy(out->sandbox_id, value, strlen(value) + 1);
			ret = 0;
		} else if (strcmp(key, "name") == 0) {
			if (strlen(value) > SANDBOX_LABEL_VALUE_MAX)
				return ember_error_set(err, KIND, 0, "query `name` is too long");
			memcpy(out->name, value, strlen(value) + 1);
			ret = 0;
		} else if (strcmp(key, "limit") == 0) {
			ret = parse_limit(value, &out->limit, err);
		} else if (strcmp(key, "nextToken") == 0) {
			out->has_next = true;
			ret = parse_next_token(value, snapshot_id_shaped, &out->next_created_ns,
					       out->next_id, err);
		} else {
			ret = ember_error_set(err, KIND, 0, "unknown query parameter `%.40s`", key);
		}
		if (ret < 0)
			return -1;
	}
	return 0;
}

int e2b_parse_fork(const char *body, size_t len, unsigned *count, unsigned *timeout_s,
		   struct ember_error **err)
{
	static const char *const keys[] = { "count", "timeout", NULL };
	_cleanup_json_ json_t *root = NULL;
	uint64_t n = 1, t = E2B_FORK_TIMEOUT_DEFAULT;

	*count = (unsigned)n;
	*timeout_s = (unsigned)t;
	if (len == 0)
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "count", false, 1, E2B_FORK_MAX, &n, KIND, err) < 0 ||
	    json_get_uint(root, "timeout", false, 1, E2B_TIMEOUT_MAX, &t, KIND, err) < 0)
		return -1;
	*count = (unsigned)n;
	*timeout_s = (unsigned)t;
	return 0;
}

int e2b_parse_snapshot(const char *body, size_t len, char name[SANDBOX_LABEL_VALUE_MAX + 1],
		       struct ember_error **err)
{
	static const char *const keys[] = { "name", NULL };
	_cleanup_json_ json_t *root = NULL;
	const char *text = NULL;
	size_t n = 0;

	name[0] = '\0';
	if (len == 0)
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_string(root, "name", false, SANDBOX_LABEL_VALUE_MAX, &text, &n, KIND, err) < 0)
		return -1;
	if (text == NULL)
		return 0;
	if (n == 0)
		return ember_error_set(err, KIND, 0, "field `name` is empty");
	memcpy(name, text, n);
	name[n] = '\0';
	return 0;
}

void e2b_next_token(int64_t created_ns, const char *id, char out[E2B_NEXT_TOKEN_MAX + 1])
{
	snprintf(out, E2B_NEXT_TOKEN_MAX + 1, "%lld_%s", (long long)created_ns, id);
}
