/* hostport.h - the one parser of "HOST:PORT" and "[V6]:PORT": the daemon's --addr (and
 * EMBERD_ADDR) and its listener, the Host header the API guard checks, emberctl's --addr.
 * Never resolves a name and never accepts a port outside 0-65535 (a port is decimal digits
 * only: no sign, no blanks, no wrap-around). */
#ifndef EMBER_UTIL_HOSTPORT_H
#define EMBER_UTIL_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* A DNS name is at most 253 characters; an IPv6 literal with a zone fits too. */
#define HOSTPORT_HOST_MAX 256

struct hostport {
	char host[HOSTPORT_HOST_MAX]; /* without the brackets of an IPv6 literal */
	unsigned port;                /* 0 only with HOSTPORT_ZERO_PORT or HOSTPORT_PORT_OPTIONAL */
	bool has_port;
};

/* hostport_parse's flags. */
#define HOSTPORT_ZERO_PORT 1u      /* port 0 is accepted (a listener: the kernel picks one) */
#define HOSTPORT_PORT_OPTIONAL 2u  /* "HOST" or "[V6]" alone is accepted (a Host header) */

/* Parses text into *out. A refused text leaves an EMBER_E_INVALID error saying what is wrong
 * ("port `99999` is not a number between 0 and 65535"); the caller wraps it with where the text
 * came from and the text itself ("--addr `127.0.0.1:99999`: ..."). */
int hostport_parse(const char *text, unsigned flags, struct hostport *out,
		   struct ember_error **err);

#endif
