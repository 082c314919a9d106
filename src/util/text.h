/* text.h - UTF-8 validation and base64, for putting guest bytes into JSON losslessly.
 * Used by the API encoder and tools; never assumes guest output is text. */
#ifndef EMBER_UTIL_TEXT_H
#define EMBER_UTIL_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). NUL bytes are valid UTF-8 but not
 * allowed here, because JSON consumers often treat them as string ends. */
bool utf8_valid_text(const uint8_t *s, size_t len);

/* Standard base64 with padding; returns a malloc'd NUL-terminated string or NULL. */
char *base64_encode(const uint8_t *in, size_t len);
/* Decodes strict standard base64 (padding required, no whitespace); malloc'd *out. -1 if bad. */
int base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

#endif
