/* libFuzzer target: the E2B control plane's decoders (src/e2b/controlreq.c): the create,
 * timeout, connect, pause, resume, fork and snapshot bodies, the v1/v2 list queries and the
 * snapshot list's. The first byte, '0' to '9' (the seeds are text), picks create, timeout,
 * connect, the v1 list, the v2 list, pause, resume, fork, snapshot or the snapshot list. For a query, the rest
 * is split like the HTTP layer splits one (at `&`, then at the first `=`). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/controlreq.h"

/* Whatever the create decoder accepts has a template and only checked labels. */
static void fuzz_create(const uint8_t *data, size_t size)
{
	struct e2b_create_body body;
	size_t i;

	if (e2b_parse_create((const char *)data, size, &body, NULL) < 0)
		return;
	if (body.template_id[0] == '\0' || strlen(body.template_id) > E2B_TEMPLATE_MAX ||
	    body.labels.count >= SANDBOX_LABELS_MAX)
		abort();
	for (i = 0; i < body.labels.count; i++) {
		const struct sandbox_label *l = &body.labels.items[i];

		if (sandbox_label_check_key(l->key, NULL) < 0 ||
		    sandbox_label_check_value(l->key, l->value, strlen(l->value), NULL) < 0 ||
		    strncmp(l->key, E2B_LABEL_PREFIX, strlen(E2B_LABEL_PREFIX)) == 0)
			abort();
	}
}

/* Whatever the snapshot list's decoder accepts is bounded. */
static void check_snapshot_query(const struct api_query *q)
{
	struct e2b_snapshot_query out;

	if (e2b_parse_snapshot_query(q, &out, NULL) < 0)
		return;
	if (out.limit > E2B_LIST_LIMIT_MAX || strlen(out.name) > SANDBOX_LABEL_VALUE_MAX ||
	    (out.sandbox_id[0] != '\0' && !api_valid_sandbox_id(out.sandbox_id)) ||
	    strlen(out.next_id) > E2B_NEXT_TOKEN_ID_MAX)
		abort();
}

/* mode 0: the v1 list, 1: the v2 list, 2: the snapshot list. */
static void fuzz_query(const uint8_t *data, size_t size, int mode)
{
	struct api_query q = { .count = 0 };
	struct e2b_list_query *out = malloc(sizeof(*out));
	bool v2 = mode == 1;
	char *text = malloc(size + 1), *save = NULL, *part, token[E2B_NEXT_TOKEN_MAX + 1];
	size_t i;

	if (text == NULL || out == NULL)
		goto out;
	memcpy(text, data, size);
	text[size] = '\0';
	for (part = strtok_r(text, "&", &save); part != NULL; part = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(part, '=');

		if (q.count == API_QUERY_PAIRS_MAX) {
			q.too_many = true;
			break;
		}
		if (eq != NULL)
			*eq = '\0';
		q.pairs[q.count].key = part;
		q.pairs[q.count++].value = eq != NULL ? eq + 1 : NULL;
	}
	if (mode == 2) {
		check_snapshot_query(&q);
	} else if (e2b_parse_list_query(&q, v2, out, NULL) == 0) {
		if (out->nterms > SANDBOX_LABELS_MAX || out->limit > E2B_LIST_LIMIT_MAX ||
		    (!v2 && out->limit != 0))
			abort();
		for (i = 0; i < out->nterms; i++) {
			if (sandbox_label_check_key(out->terms[i].key, NULL) < 0 ||
			    sandbox_label_check_value(out->terms[i].key, out->terms[i].value,
						      strlen(out->terms[i].value), NULL) < 0)
				abort();
		}
		/* a token handed out reads back as itself */
		if (out->has_next) {
			e2b_next_token(out->next_created_ns, out->next_id, token);
			if (strlen(token) > E2B_NEXT_TOKEN_MAX || !api_valid_sandbox_id(out->next_id))
				abort();
		}
	}
out:
	free(text);
	free(out);
}

/* A connect or resume body that is accepted names a timeout in range, or none. */
static void fuzz_resume(const uint8_t *data, size_t size, bool resume)
{
	struct e2b_resume_body body;
	int ret = resume ? e2b_parse_resume((const char *)data, size, &body, NULL)
			 : e2b_parse_connect((const char *)data, size, &body, NULL);

	if (ret == 0 && body.timeout_s > 30u * 24 * 3600)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[SANDBOX_LABEL_VALUE_MAX + 1];
	unsigned timeout_s, count;

	if (size == 0)
		return 0;
	switch ((uint8_t)(data[0] - (uint8_t)'0') % 10) {
	case 0:
		fuzz_create(data + 1, size - 1);
		break;
	case 1:
		if (e2b_parse_timeout((const char *)data + 1, size - 1, &timeout_s, NULL) == 0 &&
		    timeout_s == 0)
			abort();
		break;
	case 2:
		fuzz_resume(data + 1, size - 1, false);
		break;
	case 3:
		fuzz_query(data + 1, size - 1, 0);
		break;
	case 4:
		fuzz_query(data + 1, size - 1, 1);
		break;
	case 5:
		(void)e2b_parse_pause((const char *)data + 1, size - 1, NULL);
		break;
	case 6:
		fuzz_resume(data + 1, size - 1, true);
		break;
	case 7:
		if (e2b_parse_fork((const char *)data + 1, size - 1, &count, &timeout_s, NULL) == 0 &&
		    (count == 0 || count > E2B_FORK_MAX || timeout_s == 0))
			abort();
		break;
	case 8:
		if (e2b_parse_snapshot((const char *)data + 1, size - 1, name, NULL) == 0 &&
		    strlen(name) > SANDBOX_LABEL_VALUE_MAX)
			abort();
		break;
	default:
		fuzz_query(data + 1, size - 1, 2);
		break;
	}
	return 0;
}
