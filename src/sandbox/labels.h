/* labels.h - a sandbox's labels (key=value pairs a client attaches at create and filters the
 * list by): their bounds, the one validator every way in uses (the create body, the list
 * query, the on-disk record), their JSON form, and matching. Called by the API decoders and
 * encoder, the record and the list handler. Labels are fixed arrays, so a struct sandbox_info
 * stays a plain copy; only the JSON conversions allocate. Never accepts a label it did not check. */
#ifndef EMBER_SANDBOX_LABELS_H
#define EMBER_SANDBOX_LABELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* The bounds (docs/api.md "Labels"): enough to name an owner, a task and a few tags, small
 * enough that every sandbox's labels fit in its record and a list copy (about 10 KiB each). The
 * key shape is the DNS-label-like one Kubernetes uses, so labels can be copied either way. */
#define SANDBOX_LABELS_MAX 32
#define SANDBOX_LABEL_KEY_MAX 63
#define SANDBOX_LABEL_VALUE_MAX 256

struct sandbox_label {
	char key[SANDBOX_LABEL_KEY_MAX + 1];
	char value[SANDBOX_LABEL_VALUE_MAX + 1];
};

struct sandbox_labels {
	size_t count;
	struct sandbox_label items[SANDBOX_LABELS_MAX];
};

/* A label filter's term: key present (value NULL) or key equal to value. */
struct sandbox_label_term {
	const char *key;
	const char *value;
};

/* Checks one key (NUL-terminated): 1-63 bytes of [A-Za-z0-9._/-], the first alphanumeric. */
int sandbox_label_check_key(const char *key, struct ember_error **err);
/* Checks one value of len bytes: 0-256 bytes of UTF-8 without control characters (C0, DEL,
 * C1) or NUL. key only names the label in the error. */
int sandbox_label_check_value(const char *key, const char *value, size_t len,
			      struct ember_error **err);
/* Checks and appends key=value; refuses a 33rd label and a duplicate key. */
int sandbox_labels_add(struct sandbox_labels *labels, const char *key, const char *value,
		       size_t value_len, struct ember_error **err);
/* Reads obj[field] (absent or null: no labels) as an object of string values into labels (which
 * it clears first), checking each; errors name field and the label. */
int sandbox_labels_from_json(json_t *obj, const char *field, struct sandbox_labels *labels,
			     struct ember_error **err);
/* A new JSON object of the labels (NULL when out of memory). */
json_t *sandbox_labels_to_json(const struct sandbox_labels *labels);
/* NULL when key is absent. */
const char *sandbox_labels_get(const struct sandbox_labels *labels, const char *key);
/* Whether labels satisfy every term (AND). */
bool sandbox_labels_match(const struct sandbox_labels *labels,
			  const struct sandbox_label_term *terms, size_t nterms);

#endif
