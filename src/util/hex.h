/* hex.h - lowercase hex encoding, used for sandbox ids and entropy on the wire.
 * Decoding is strict: even length, [0-9a-f] only. */
#ifndef EMBER_UTIL_HEX_H
#define EMBER_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* out must hold 2*len+1 bytes. */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Returns the decoded length, or -1 when the text is not lowercase hex or does not fit. */
long hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap);

#endif
