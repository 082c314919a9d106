/* hostport.c - HOST:PORT parsing. */
#include "util/hostport.h"

#include <string.h>

/* Decimal digits only, 0-65535. strtoul would take blanks and a sign (negating "-1" into a huge
 * number), and getaddrinfo takes a numeric service modulo 65536: 99999 became port 34463. */
static int parse_port(const char *text, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (text[0] == '\0')
		return -1;
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(text[i] - '0');
		if (v > 65535)
			return -1;
	}
	*out = v;
	return 0;
}

/* Splits text into its host (brackets removed) and what follows it: "" or ":PORT". */
static int split(const char *text, const char **host, size_t *host_len, const char **rest)
{
	const char *end;

	if (text[0] == '[') {
		end = strchr(text, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		*host = text + 1;
		*host_len = (size_t)(end - text - 1);
		*rest = end + 1;
		return 0;
	}
	end = strchr(text, ':');
	if (end != NULL && strchr(end + 1, ':') != NULL)
		return -1; /* an IPv6 literal needs its brackets, or where would the port be? */
	*host = text;
	*host_len = end != NULL ? (size_t)(end - text) : strlen(text);
	*rest = text + *host_len;
	return 0;
}

int hostport_parse(const char *text, unsigned flags, struct hostport *out,
		   struct ember_error **err)
{
	const char *host, *rest;
	size_t host_len;
	unsigned port = 0;

	if (split(text, &host, &host_len, &rest) < 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "must be HOST:PORT or [IPV6]:PORT (e.g. 127.0.0.1:7777)");
	if (host_len == 0 || host_len >= sizeof(out->host))
		return ember_error_set(err, EMBER_E_INVALID, 0, "the host is %s",
				       host_len == 0 ? "empty" : "too long");
	if (rest[0] == '\0' && !(flags & HOSTPORT_PORT_OPTIONAL))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "no port (HOST:PORT, e.g. 127.0.0.1:7777)");
	if (rest[0] == ':' && parse_port(rest + 1, &port) < 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "port `%.40s` is not a number between %d and 65535", rest + 1,
				       (flags & HOSTPORT_ZERO_PORT) ? 0 : 1);
	if (rest[0] == ':' && port == 0 && !(flags & HOSTPORT_ZERO_PORT))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "port 0 names no server (1 to 65535)");
	memcpy(out->host, host, host_len);
	out->host[host_len] = '\0';
	out->port = port;
	out->has_port = rest[0] == ':';
	return 0;
}
