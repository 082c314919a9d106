/* jsonutil.c - strict jansson accessors. */
#include "util/jsonutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

int json_parse_object(const void *buf, size_t len, json_t **out, enum ember_error_kind kind,
		      struct ember_error **err)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL)
		return ember_error_set(err, kind, 0, "malformed JSON at byte %d: %s", jerr.position,
				       jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return ember_error_set(err, kind, 0, "JSON body must be an object");
	}
	*out = root;
	return 0;
}

int json_check_keys(json_t *obj, const char *const *allowed, enum ember_error_kind kind,
		    struct ember_error **err)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value) {
		const char *const *a;
		bool known = false;

		(void)value;
		for (a = allowed; *a != NULL; a++) {
			if (strcmp(*a, key) == 0) {
				known = true;
				break;
			}
		}
		if (!known)
			return ember_error_set(err, kind, 0, "unknown field `%.64s`", key);
	}
	return 0;
}

static json_t *lookup(json_t *obj, const char *key, bool required, enum ember_error_kind kind,
		      struct ember_error **err, int *status)
{
	json_t *v = json_object_get(obj, key);

	*status = 1;
	if (v == NULL || json_is_null(v)) {
		if (required) {
			*status = ember_error_set(err, kind, 0, "field `%s` is required", key);
			return NULL;
		}
		*status = 0;
		return NULL;
	}
	return v;
}

int json_get_uint(json_t *obj, const char *key, bool required, uint64_t min, uint64_t max,
		  uint64_t *out, enum ember_error_kind kind, struct ember_error **err)
{
	int status;
	json_t *v = lookup(obj, key, required, kind, err, &status);
	json_int_t n;

	if (v == NULL)
		return status;
	if (!json_is_integer(v))
		return ember_error_set(err, kind, 0, "field `%s` must be an integer", key);
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return ember_error_set(err, kind, 0,
				       "field `%s` must be between %llu and %llu (got %lld)", key,
				       (unsigned long long)min, (unsigned long long)max,
				       (long long)n);
	*out = (uint64_t)n;
	return 1;
}

int json_get_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
		 int64_t *out, enum ember_error_kind kind, struct ember_error **err)
{
	int status;
	json_t *v = lookup(obj, key, required, kind, err, &status);
	json_int_t n;

	if (v == NULL)
		return status;
	if (!json_is_integer(v))
		return ember_error_set(err, kind, 0, "field `%s` must be an integer", key);
	n = json_integer_value(v);
	if (n < min || n > max)
		return ember_error_set(err, kind, 0,
				       "field `%s` must be between %lld and %lld (got %lld)", key,
				       (long long)min, (long long)max, (long long)n);
	*out = n;
	return 1;
}

int json_get_bool(json_t *obj, const char *key, bool required, bool *out,
		  enum ember_error_kind kind, struct ember_error **err)
{
	int status;
	json_t *v = lookup(obj, key, required, kind, err, &status);

	if (v == NULL)
		return status;
	if (!json_is_boolean(v))
		return ember_error_set(err, kind, 0, "field `%s` must be true or false", key);
	*out = json_is_true(v);
	return 1;
}

int json_get_string(json_t *obj, const char *key, bool required, size_t max_len,
		    const char **out, size_t *out_len, enum ember_error_kind kind,
		    struct ember_error **err)
{
	int status;
	json_t *v = lookup(obj, key, required, kind, err, &status);
	const char *s;
	size_t len;

	if (v == NULL)
		return status;
	if (!json_is_string(v))
		return ember_error_set(err, kind, 0, "field `%s` must be a string", key);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len > max_len)
		return ember_error_set(err, kind, 0, "field `%s` is longer than %zu bytes", key,
				       max_len);
	if (strlen(s) != len)
		return ember_error_set(err, kind, 0, "field `%s` must not contain NUL characters",
				       key);
	*out = s;
	if (out_len != NULL)
		*out_len = len;
	return 1;
}

int json_copy_string(json_t *obj, const char *key, char *out, size_t size,
		     enum ember_error_kind kind, struct ember_error **err)
{
	const char *s;
	size_t n;

	if (json_get_string(obj, key, true, size - 1, &s, &n, kind, err) < 0)
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

char *json_dump_compact(json_t *value, size_t *len, struct ember_error **err)
{
	char *text = json_dumps(value, JSON_COMPACT);

	if (text == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory encoding JSON");
		return NULL;
	}
	if (len != NULL)
		*len = strlen(text);
	return text;
}

int json_set_bytes(json_t *obj, const char *key, const uint8_t *data, size_t len,
		   struct ember_error **err)
{
	char enc_key[64];
	json_t *value;
	const char *encoding = "utf-8";

	snprintf(enc_key, sizeof(enc_key), "%s_encoding", key);
	if (utf8_valid_text(data, len)) {
		value = json_stringn((const char *)data, len);
	} else {
		char *b64 = base64_encode(data, len);

		value = b64 != NULL ? json_string(b64) : NULL;
		free(b64);
		encoding = "base64";
	}
	if (value == NULL || json_object_set_new(obj, key, value) < 0 ||
	    json_object_set_new(obj, enc_key, json_string(encoding)) < 0)
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory encoding `%s`", key);
	return 0;
}
