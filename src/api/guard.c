/* guard.c - Host, Origin, Sec-Fetch-Site and bearer-token checks for the TCP listener. */
#include "api/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/hostport.h"

static bool sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static bool sockaddr_is_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* Resolves the bind host once: loopback when every address is, wildcard when one is. */
static int classify_bind(struct api_guard *g, struct ember_error **err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	int rc = getaddrinfo(g->bind_host, NULL, &hints, &res);

	if (rc != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "--addr host `%s`: %s",
				       g->bind_host, gai_strerror(rc));
	g->bind_is_loopback = true;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		g->bind_is_loopback &= sockaddr_is_loopback(ai->ai_addr);
		g->bind_is_wildcard |= sockaddr_is_wildcard(ai->ai_addr);
	}
	freeaddrinfo(res);
	return 0;
}

int api_guard_init(struct api_guard *g, const char *addr, const char *const *origins,
		   size_t norigins, struct ember_error **err)
{
	struct hostport bind;
	size_t i;

	memset(g, 0, sizeof(*g));
	if (hostport_parse(addr, HOSTPORT_ZERO_PORT, &bind, err) < 0)
		return ember_error_wrap(err, "--addr `%.300s`", addr);
	snprintf(g->bind_host, sizeof(g->bind_host), "%s", bind.host);
	if (norigins > API_ALLOW_ORIGINS_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0, "at most %d --allow-origin values",
				       API_ALLOW_ORIGINS_MAX);
	for (i = 0; i < norigins; i++) {
		if (strncmp(origins[i], "http://", 7) != 0 && strncmp(origins[i], "https://", 8) != 0)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "--allow-origin `%s` must be an origin like "
					       "http://localhost:3000", origins[i]);
		g->allow_origins[i] = origins[i];
	}
	g->nallow_origins = norigins;
	return classify_bind(g, err);
}

/* The token's characters: printable ASCII without space, as an HTTP token68 allows more. */
static int check_token_text(const char *text, size_t len, struct ember_error **err)
{
	size_t i;

	if (len < API_TOKEN_MIN || len > API_TOKEN_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "the auth token must be %d to %d characters (it has %zu)",
				       API_TOKEN_MIN, API_TOKEN_MAX, len);
	for (i = 0; i < len; i++) {
		if (text[i] < 0x21 || text[i] > 0x7e)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "the auth token has a character that is not printable "
					       "ASCII (at byte %zu)", i);
	}
	return 0;
}

int api_guard_load_token(struct api_guard *g, const char *path, struct ember_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char text[API_TOKEN_MAX + 3];
	struct stat st;
	ssize_t n;
	size_t len;

	if (fd < 0)
		return ember_error_set(err, EMBER_E_INVALID, errno, "--auth-token-file `%s`: %s",
				       path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--auth-token-file `%s` is not a regular file", path);
	if (st.st_uid != geteuid() || (st.st_mode & 077) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--auth-token-file `%s` must be owned by the daemon's user and "
				       "readable by it alone (chmod 600)", path);
	n = read(fd, text, sizeof(text) - 1);
	if (n < 0)
		return ember_error_sys(err, "read --auth-token-file `%s`", path);
	len = (size_t)n;
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len > 0 && text[len - 1] == '\r')
		len--;
	text[len] = '\0';
	if (check_token_text(text, len, err) < 0)
		return ember_error_wrap(err, "--auth-token-file `%s`", path);
	memcpy(g->token, text, len + 1);
	memset(text, 0, sizeof(text));
	return 0;
}

int api_guard_check_config(const struct api_guard *g, struct ember_error **err)
{
	if (!g->bind_is_loopback && g->token[0] == '\0')
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "--addr `%s` is not a loopback address: anyone who reaches "
				       "it could run code here, so it needs --auth-token-file",
				       g->bind_host);
	return 0;
}

static bool host_allowed(const struct api_guard *g, const char *host_header)
{
	struct hostport named;
	struct in_addr v4;

	if (g->bind_is_wildcard)
		return true; /* any name may reach a wildcard bind; the token decides */
	if (host_header == NULL)
		return true; /* HTTP/1.0 without Host: not a browser, which always sends one */
	if (hostport_parse(host_header, HOSTPORT_PORT_OPTIONAL, &named, NULL) < 0)
		return false;
	if (strcasecmp(named.host, g->bind_host) == 0 || strcasecmp(named.host, "localhost") == 0 ||
	    strcmp(named.host, "::1") == 0)
		return true;
	return inet_pton(AF_INET, named.host, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

static bool origin_allowed(const struct api_guard *g, const char *origin)
{
	size_t i;

	for (i = 0; i < g->nallow_origins; i++) {
		if (strcmp(origin, g->allow_origins[i]) == 0)
			return true;
	}
	return false;
}

/* Compares without an early exit, so the time taken does not tell how much matched. */
bool api_guard_token_matches(const char *want, const char *got)
{
	size_t wlen = strlen(want), glen = strlen(got), i;
	unsigned diff = wlen != glen;

	for (i = 0; i < wlen; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? got[i] : 0);
	return diff == 0;
}

static bool authorized(const struct api_guard *g, const char *authorization)
{
	if (g->token[0] == '\0')
		return true;
	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	return api_guard_token_matches(g->token, authorization + 7);
}

int api_guard_check(const struct api_guard *g, const struct api_guard_request *req,
		    struct ember_error **err)
{
	if (!host_allowed(g, req->host))
		return ember_error_set(err, EMBER_E_MISDIRECTED, 0,
				       "Host `%.200s` does not name this daemon (use localhost or "
				       "the address it listens on)",
				       req->host != NULL ? req->host : "");
	if (req->origin != NULL && !origin_allowed(g, req->origin))
		return ember_error_set(err, EMBER_E_FORBIDDEN, 0,
				       "requests from web pages (Origin `%.200s`) are refused; "
				       "start the daemon with --allow-origin to allow one",
				       req->origin);
	if (req->origin == NULL && req->sec_fetch_site != NULL &&
	    (strcmp(req->sec_fetch_site, "cross-site") == 0 ||
	     strcmp(req->sec_fetch_site, "same-site") == 0))
		return ember_error_set(err, EMBER_E_FORBIDDEN, 0,
				       "requests from other sites (Sec-Fetch-Site: %s) are refused",
				       req->sec_fetch_site);
	if (!req->token_checked_elsewhere && !authorized(g, req->authorization))
		return ember_error_set(err, EMBER_E_UNAUTHORIZED, 0,
				       "this daemon needs `Authorization: Bearer <token>` (the "
				       "token in its --auth-token-file)");
	return 0;
}
