/* digest.h - SHA-256 (OpenSSL libcrypto) of buffers and files, as lowercase hex.
 * Used by the template store to key VM templates by the content of their inputs.
 * Files are streamed, never loaded whole; the caller owns the hex buffer it passes. */
#ifndef EMBER_SANDBOX_DIGEST_H
#define EMBER_SANDBOX_DIGEST_H

#include <stddef.h>

#include "util/error.h"

#define DIGEST_HEX_LEN 64

void digest_buffer(const void *data, size_t len, char hex[DIGEST_HEX_LEN + 1]);
int digest_file(const char *path, char hex[DIGEST_HEX_LEN + 1], struct ember_error **err);

#endif
