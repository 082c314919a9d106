/* deadline.h - a whole-request deadline for HTTP connections: each request (headers and body)
 * must arrive within a bound, however slowly its bytes trickle in (slowloris), because the HTTP
 * library's own timeout only counts inactivity.
 * Used by server.c: a connection is registered when it opens, its clock restarts when a
 * response has gone out, and stops while a received request is being served (an exec may run
 * for minutes). A watcher thread shuts down the socket of a connection past its deadline. Owns
 * a duplicate of each registered socket, so it never acts on a number the library has closed
 * and reused. */
#ifndef EMBER_API_DEADLINE_H
#define EMBER_API_DEADLINE_H

#include <stdint.h>

#include "util/error.h"

struct deadline_registry;
struct deadline_conn;

int deadline_registry_start(unsigned timeout_ms, struct deadline_registry **out,
			    struct ember_error **err);
/* Stops the watcher and frees what is left (after the server stopped). */
void deadline_registry_stop(struct deadline_registry *r);

/* A new connection on socket fd; its first request must arrive within the timeout. NULL when
 * out of resources (the connection is then simply not watched: logged once by the caller). */
struct deadline_conn *deadline_conn_add(struct deadline_registry *r, int fd);
/* The request is all in: no deadline while it is served. */
void deadline_conn_received(struct deadline_conn *c);
/* The response has gone out: the next request's clock starts now. */
void deadline_conn_rearm(struct deadline_conn *c);
/* The connection is closed: forget it (closes the duplicate). */
void deadline_conn_remove(struct deadline_conn *c);

/* Connections shut down for missing their deadline so far (for logs and tests). */
uint64_t deadline_registry_expired(struct deadline_registry *r);

#endif
