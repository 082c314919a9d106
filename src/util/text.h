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

/* Writes in (a C string) into out as one safe logfmt/terminal value: C0/C1 controls, DEL,
 * U+2028/U+2029 and bytes of invalid UTF-8 become \xNN, a backslash or quote gets a backslash.
 * Stops before a character that would not fit whole; returns the length written (out is
 * always NUL-terminated). */
size_t text_escape_log(const char *in, char *out, size_t out_size);

/* Cuts s to at most max bytes at a character boundary (never inside a UTF-8 sequence);
 * returns the new length. */
size_t utf8_truncate(char *s, size_t max);

/* For text cut at len bytes (a file's or a stream's first len): len less the 1-3 bytes of a
 * UTF-8 sequence the cut split, when what is before them is valid text; else len. So a cut
 * text stays text. */
size_t utf8_trim_cut(const uint8_t *s, size_t len);

/* A malloc'd copy of len bytes with every byte that is not part of valid UTF-8 (and every NUL)
 * replaced by U+FFFD: guest text made fit for a JSON string without losing the rest. */
char *utf8_lossy(const char *in, size_t len);

/* Standard base64 with padding; returns a malloc'd NUL-terminated string or NULL. */
char *base64_encode(const uint8_t *in, size_t len);
/* Decodes strict standard base64 (padding required, no whitespace); malloc'd *out. -1 if bad. */
int base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

#endif
