/* digest.c - SHA-256 via EVP (host only: the guest binary does not link libcrypto). */
#include "sandbox/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/hex.h"

void digest_buffer(const void *data, size_t len, char hex[DIGEST_HEX_LEN + 1])
{
	uint8_t md[32];
	unsigned int md_len = sizeof(md);

	EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
	hex_encode(md, sizeof(md), hex);
}

static void cleanup_md_ctxp(EVP_MD_CTX **ctx)
{
	EVP_MD_CTX_free(*ctx); /* NULL-safe */
}

int digest_file(const char *path, char hex[DIGEST_HEX_LEN + 1], struct ember_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	__attribute__((cleanup(cleanup_md_ctxp))) EVP_MD_CTX *ctx = NULL;
	uint8_t buf[1 << 16], md[32];
	unsigned int md_len = sizeof(md);

	if (fd < 0)
		return ember_error_sys(err, "open `%s`", path);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "cannot start a SHA-256");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ember_error_sys(err, "read `%s`", path);
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	EVP_DigestFinal_ex(ctx, md, &md_len);
	hex_encode(md, sizeof(md), hex);
	return 0;
}
