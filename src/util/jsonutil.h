/* jsonutil.h - strict field access on jansson objects: exact types, ranges, bounded strings and
 * no unknown keys. Used by the API request decoders, the wire-protocol messages and the pack
 * manifest; every error names the offending field. Never accepts a value it did not range-check. */
#ifndef EMBER_UTIL_JSONUTIL_H
#define EMBER_UTIL_JSONUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

static inline void cleanup_jsonp(json_t **v)
{
	json_decref(*v); /* NULL-safe */
}
/* Releases a jansson value at the end of its scope; hand ownership on with steal_pointer(). */
#define _cleanup_json_ __attribute__((cleanup(cleanup_jsonp)))

/* Parses exactly len bytes as one JSON object (duplicate keys rejected). */
int json_parse_object(const void *buf, size_t len, json_t **out, enum ember_error_kind kind,
		      struct ember_error **err);

/* Fails naming the first key of obj that is not in allowed[] (NULL-terminated). */
int json_check_keys(json_t *obj, const char *const *allowed, enum ember_error_kind kind,
		    struct ember_error **err);

/* Each getter returns 1 when the key is present and valid, 0 when absent and !required,
 * -1 (with err) otherwise. */
int json_get_uint(json_t *obj, const char *key, bool required, uint64_t min, uint64_t max,
		  uint64_t *out, enum ember_error_kind kind, struct ember_error **err);
int json_get_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
		 int64_t *out, enum ember_error_kind kind, struct ember_error **err);
int json_get_bool(json_t *obj, const char *key, bool required, bool *out,
		  enum ember_error_kind kind, struct ember_error **err);
/* Strings: at most max_len bytes, no NUL inside; *out points into obj (valid while obj lives). */
int json_get_string(json_t *obj, const char *key, bool required, size_t max_len,
		    const char **out, size_t *out_len, enum ember_error_kind kind,
		    struct ember_error **err);

/* A required string of at most size - 1 bytes (json_get_string's checks) copied into out,
 * NUL-terminated. */
int json_copy_string(json_t *obj, const char *key, char *out, size_t size,
		     enum ember_error_kind kind, struct ember_error **err);

/* Serialises compactly; returns a malloc'd text (NUL-terminated) and its length. */
char *json_dump_compact(json_t *value, size_t *len, struct ember_error **err);

/* Stores guest bytes losslessly: obj[key] = the text when it is valid UTF-8 without NUL and
 * obj[key_encoding] = "utf-8"; otherwise obj[key] = base64 of the bytes and "base64". */
int json_set_bytes(json_t *obj, const char *key, const uint8_t *data, size_t len,
		   struct ember_error **err);

#endif
