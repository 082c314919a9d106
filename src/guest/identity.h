/* identity.h - applies a HELLO's identity to the guest: wall clock and kernel RNG reseed.
 * Called by session.c on HELLO, in PID 1 mode only (agent-only mode must not touch the host).
 * Never leaves the RNG unseeded silently: any failure is reported so the session can refuse. */
#ifndef EMBER_GUEST_IDENTITY_H
#define EMBER_GUEST_IDENTITY_H

#include "proto/messages.h"
#include "util/error.h"

/* Sets CLOCK_REALTIME (when time_unix_ns != 0), credits the entropy to the kernel pool
 * (RNDADDENTROPY) and forces a CRNG reseed (RNDRESEEDCRNG). */
int guest_identity_apply(const struct proto_hello *hello, struct ember_error **err);

#endif
