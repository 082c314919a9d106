/* uidrange.c - a locked bitmap over [base, base + size) (interface: uidrange.h). */
#include "vmm/uidrange.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

struct uid_range {
	uid_t base;
	unsigned size;
	pthread_mutex_t lock;
	unsigned next;     /* where the next search starts */
	unsigned used;
	uint64_t bits[];   /* guarded by lock */
};

int uid_range_create(uid_t base, unsigned size, struct uid_range **out,
		     struct ember_error **err)
{
	struct uid_range *r;

	if (base == 0 || size == 0 || (uint64_t)base + size - 1 >= (uint64_t)UINT32_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "VMM uid range %u+%u: must be above 0 and below 2^32-1",
				       (unsigned)base, size);
	r = calloc(1, sizeof(*r) + (size + 63) / 64 * sizeof(uint64_t));
	if (r == NULL)
		return ember_error_oom(err);
	r->base = base;
	r->size = size;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

void uid_range_free(struct uid_range *r)
{
	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static bool test_bit(const struct uid_range *r, unsigned i)
{
	return (r->bits[i / 64] >> (i % 64)) & 1;
}

int uid_range_alloc(struct uid_range *r, uid_t *uid, struct ember_error **err)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	for (n = 0; n < r->size; n++) {
		unsigned i = (r->next + n) % r->size;

		if (!test_bit(r, i)) {
			r->bits[i / 64] |= UINT64_C(1) << (i % 64);
			r->used++;
			r->next = (i + 1) % r->size;
			*uid = r->base + i;
			pthread_mutex_unlock(&r->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ember_error_set(err, EMBER_E_UNAVAILABLE, 0,
			       "all %u VMM uids (from %u) are in use", r->size, (unsigned)r->base);
}

int uid_range_claim(struct uid_range *r, uid_t uid)
{
	unsigned i;
	int ret = -1;

	if (!uid_range_contains(r, uid))
		return -1;
	i = uid - r->base;
	pthread_mutex_lock(&r->lock);
	if (!test_bit(r, i)) {
		r->bits[i / 64] |= UINT64_C(1) << (i % 64);
		r->used++;
		ret = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void uid_range_release(struct uid_range *r, uid_t uid)
{
	unsigned i;

	if (!uid_range_contains(r, uid))
		return;
	i = uid - r->base;
	pthread_mutex_lock(&r->lock);
	if (test_bit(r, i)) {
		r->bits[i / 64] &= ~(UINT64_C(1) << (i % 64));
		r->used--;
	}
	pthread_mutex_unlock(&r->lock);
}

bool uid_range_contains(const struct uid_range *r, uid_t uid)
{
	return uid >= r->base && uid - r->base < r->size;
}

uid_t uid_range_base(const struct uid_range *r)
{
	return r->base;
}

unsigned uid_range_size(const struct uid_range *r)
{
	return r->size;
}

unsigned uid_range_in_use(struct uid_range *r)
{
	unsigned used;

	pthread_mutex_lock(&r->lock);
	used = r->used;
	pthread_mutex_unlock(&r->lock);
	return used;
}
