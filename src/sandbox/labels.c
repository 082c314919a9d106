/* labels.c - label bounds, validation and matching (interface: labels.h). */
#include "sandbox/labels.h"

#include <string.h>

#include "util/text.h"

#define KIND EMBER_E_INVALID

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int sandbox_label_check_key(const char *key, struct ember_error **err)
{
	size_t len = strnlen(key, SANDBOX_LABEL_KEY_MAX + 1), i;

	if (len == 0 || len > SANDBOX_LABEL_KEY_MAX)
		return ember_error_set(err, KIND, 0,
				       "label key `%.64s` must be 1 to %d bytes", key,
				       SANDBOX_LABEL_KEY_MAX);
	if (!is_alnum(key[0]))
		return ember_error_set(err, KIND, 0,
				       "label key `%.64s` must start with a letter or digit", key);
	for (i = 1; i < len; i++) {
		if (!is_alnum(key[i]) && key[i] != '.' && key[i] != '_' && key[i] != '/' &&
		    key[i] != '-')
			return ember_error_set(err, KIND, 0,
					       "label key `%.64s` may contain only letters, digits "
					       "and . _ / -", key);
	}
	return 0;
}

/* Control characters: C0 (including NUL), DEL and C1 (U+0080-U+009F, 0xC2 0x80-0x9F). */
static bool has_control(const unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return true;
		if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			return true;
	}
	return false;
}

int sandbox_label_check_value(const char *key, const char *value, size_t len,
			      struct ember_error **err)
{
	if (len > SANDBOX_LABEL_VALUE_MAX)
		return ember_error_set(err, KIND, 0, "label `%.64s`: value must be at most %d bytes",
				       key, SANDBOX_LABEL_VALUE_MAX);
	if (!utf8_valid_text((const unsigned char *)value, len) ||
	    has_control((const unsigned char *)value, len))
		return ember_error_set(err, KIND, 0,
				       "label `%.64s`: value must be UTF-8 text without control "
				       "characters", key);
	return 0;
}

int sandbox_labels_add(struct sandbox_labels *labels, const char *key, const char *value,
		       size_t value_len, struct ember_error **err)
{
	struct sandbox_label *label;

	if (sandbox_label_check_key(key, err) < 0 ||
	    sandbox_label_check_value(key, value, value_len, err) < 0)
		return -1;
	if (sandbox_labels_get(labels, key) != NULL)
		return ember_error_set(err, KIND, 0, "label `%s` is given twice", key);
	if (labels->count >= SANDBOX_LABELS_MAX)
		return ember_error_set(err, KIND, 0, "at most %d labels per sandbox",
				       SANDBOX_LABELS_MAX);
	label = &labels->items[labels->count++];
	memcpy(label->key, key, strlen(key) + 1);
	memcpy(label->value, value, value_len);
	label->value[value_len] = '\0';
	return 0;
}

int sandbox_labels_from_json(json_t *obj, const char *field, struct sandbox_labels *labels,
			     struct ember_error **err)
{
	json_t *map = json_object_get(obj, field), *value;
	const char *key;

	memset(labels, 0, sizeof(*labels));
	if (map == NULL || json_is_null(map))
		return 0;
	if (!json_is_object(map))
		return ember_error_set(err, KIND, 0, "field `%s` must be an object of strings", field);
	if (json_object_size(map) > SANDBOX_LABELS_MAX)
		return ember_error_set(err, KIND, 0, "field `%s` has more than %d labels", field,
				       SANDBOX_LABELS_MAX);
	json_object_foreach(map, key, value) {
		if (!json_is_string(value))
			return ember_error_set(err, KIND, 0, "field `%s`: label `%.64s` must be a string",
					       field, key);
		if (sandbox_labels_add(labels, key, json_string_value(value),
				       json_string_length(value), err) < 0)
			return ember_error_wrap(err, "field `%s`", field);
	}
	return 0;
}

json_t *sandbox_labels_to_json(const struct sandbox_labels *labels)
{
	json_t *obj = json_object();
	size_t i;

	for (i = 0; obj != NULL && i < labels->count; i++) {
		if (json_object_set_new(obj, labels->items[i].key,
					json_string(labels->items[i].value)) < 0) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

const char *sandbox_labels_get(const struct sandbox_labels *labels, const char *key)
{
	size_t i;

	for (i = 0; i < labels->count; i++) {
		if (strcmp(labels->items[i].key, key) == 0)
			return labels->items[i].value;
	}
	return NULL;
}

bool sandbox_labels_match(const struct sandbox_labels *labels,
			  const struct sandbox_label_term *terms, size_t nterms)
{
	size_t i;

	for (i = 0; i < nterms; i++) {
		const char *have = sandbox_labels_get(labels, terms[i].key);

		if (have == NULL || (terms[i].value != NULL && strcmp(have, terms[i].value) != 0))
			return false;
	}
	return true;
}
