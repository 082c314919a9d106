/* uidrange.h - the uids (each also the gid) the daemon gives its jailed VMMs, one per VMM: a
 * range of VMM_UID_RANGE_SIZE ids from --vmm-uid-base that the daemon owns alone.
 * Used by vmm.c (allocate at start, free once the VMM is reaped, claim a re-attached VMM's id)
 * and by the stray sweep (an id in the range names a VMM of this daemon). Never hands out an id
 * that is in use, nor 0. Thread-safe: one lock around a bitmap. */
#ifndef EMBER_VMM_UIDRANGE_H
#define EMBER_VMM_UIDRANGE_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

struct uid_range;

int uid_range_create(uid_t base, unsigned size, struct uid_range **out,
		     struct ember_error **err);
void uid_range_free(struct uid_range *r);

/* The next free id after the last one handed out (so an id just released is not reused at
 * once); EMBER_E_UNAVAILABLE when all are in use. */
int uid_range_alloc(struct uid_range *r, uid_t *uid, struct ember_error **err);
/* Marks uid used (a VMM an earlier daemon started); -1 when outside the range or taken. */
int uid_range_claim(struct uid_range *r, uid_t uid);
void uid_range_release(struct uid_range *r, uid_t uid);

bool uid_range_contains(const struct uid_range *r, uid_t uid);
uid_t uid_range_base(const struct uid_range *r);
unsigned uid_range_size(const struct uid_range *r);
unsigned uid_range_in_use(struct uid_range *r);

#endif
