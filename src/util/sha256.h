/* sha256.h - SHA-256 (FIPS 180-4), incremental, with no library behind it.
 * Used by the guest agent (static, without libcrypto) to report the digest of uploaded files.
 * Never allocates; a context is plain memory the caller owns. */
#ifndef EMBER_UTIL_SHA256_H
#define EMBER_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32u

struct sha256_ctx {
	uint32_t state[8];
	uint64_t bytes;      /* message length so far */
	uint8_t block[64];
	size_t used;         /* bytes waiting in block */
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_SIZE]);
/* The digest as 64 lowercase hex digits and a NUL. */
void sha256_final_hex(struct sha256_ctx *ctx, char out[2 * SHA256_DIGEST_SIZE + 1]);

#endif
