/* libFuzzer target: the API request decoders (create, exec, timeout, background process,
 * signal), the list's query parser, the sandbox id check and the pid segment. The first byte
 * picks the decoder. For the query, the rest is split like the HTTP layer splits one (at `&`,
 * then at the first `=`). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/requests.h"

static void fuzz_exec(const uint8_t *data, size_t size)
{
	struct api_exec_body body;
	size_t i;

	if (api_parse_exec((const char *)data, size, &body, NULL) < 0)
		return;
	/* Every accepted env entry is NAME=value with a non-empty name. */
	for (i = 0; i < body.envc; i++) {
		if (strchr(body.env[i], '=') == NULL || body.env[i][0] == '=')
			abort();
	}
	if (body.code == NULL || strlen(body.code) != body.code_len)
		abort();
	api_exec_body_release(&body);
}

/* Whatever the parser accepts holds only checked terms, at most SANDBOX_LABELS_MAX. */
static void fuzz_query(const uint8_t *data, size_t size)
{
	struct api_query q = { .count = 0 };
	struct api_list_filter f;
	char *text = malloc(size + 1), *save = NULL, *part;
	size_t i;

	if (text == NULL)
		return;
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
	if (api_parse_list_query(&q, &f, NULL) == 0) {
		if (f.nterms > SANDBOX_LABELS_MAX)
			abort();
		for (i = 0; i < f.nterms; i++) {
			if (sandbox_label_check_key(f.terms[i].key, NULL) < 0 ||
			    (f.terms[i].value != NULL &&
			     sandbox_label_check_value(f.terms[i].key, f.terms[i].value,
						       strlen(f.terms[i].value), NULL) < 0))
				abort();
		}
	}
	free(text);
}

/* A background process body: exactly one of code and cmd, bounded argv without empty entries. */
static void fuzz_process(const uint8_t *data, size_t size)
{
	struct api_process_body body;
	size_t i;

	if (api_parse_process((const char *)data, size, &body, NULL) < 0)
		return;
	if ((body.code != NULL) == (body.cmdc > 0) || body.cmdc > PROTO_ARGV_MAX ||
	    body.cmd[body.cmdc] != NULL)
		abort();
	for (i = 0; i < body.cmdc; i++) {
		if (body.cmd[i][0] == '\0')
			abort();
	}
	api_process_body_release(&body);
}

/* The signal body and the {pid} segment: only 1..64 and 1..INT32_MAX come out. */
static void fuzz_signal_and_pid(const uint8_t *data, size_t size)
{
	char text[32];
	int32_t pid;
	size_t n;
	int sig;

	if (api_parse_signal((const char *)data, size, &sig, NULL) == 0 && (sig < 1 || sig > 64))
		abort();
	n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	if (api_parse_pid(text, &pid, NULL) == 0 && pid < 1)
		abort();
}

/* POST .../fork and .../snapshots bodies: whatever parses is within bounds. */
static void fuzz_fork_and_snapshot(const uint8_t *data, size_t size)
{
	struct api_fork_body *fork = malloc(sizeof(*fork));
	struct sandbox_labels *labels = malloc(sizeof(*labels));

	if (fork != NULL && api_parse_fork((const char *)data, size, fork, NULL) == 0 &&
	    (fork->count < 1 || fork->count > 64 || fork->labels.count > SANDBOX_LABELS_MAX ||
	     fork->timeout_s > 30u * 24 * 3600))
		abort();
	if (labels != NULL && api_parse_snapshot((const char *)data, size, labels, NULL) == 0 &&
	    labels->count > SANDBOX_LABELS_MAX)
		abort();
	free(fork);
	free(labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_create_body *create;
	unsigned timeout_s;
	char id[64];
	size_t n;

	if (size < 1)
		return 0;
	switch (data[0] % 9) {
	case 0:
		create = malloc(sizeof(*create));
		if (create != NULL &&
		    api_parse_create((const char *)data + 1, size - 1, create, NULL) == 0 &&
		    (create->labels.count > SANDBOX_LABELS_MAX ||
		     create->network.nallow > NET_RULES_MAX || create->network.ndeny > NET_RULES_MAX))
			abort();
		if (create != NULL)
			api_create_body_release(create);
		free(create);
		break;
	case 1:
		fuzz_exec(data + 1, size - 1);
		break;
	case 2:
		n = size - 1 < sizeof(id) - 1 ? size - 1 : sizeof(id) - 1;
		memcpy(id, data + 1, n);
		id[n] = '\0';
		api_valid_sandbox_id(id);
		break;
	case 3:
		if (api_parse_timeout((const char *)data + 1, size - 1, &timeout_s, NULL) == 0 &&
		    timeout_s == 0)
			abort();
		break;
	case 5:
		fuzz_process(data + 1, size - 1);
		break;
	case 6:
		fuzz_signal_and_pid(data + 1, size - 1);
		break;
	case 7:
		fuzz_fork_and_snapshot(data + 1, size - 1);
		break;
	default:
		fuzz_query(data + 1, size - 1);
		break;
	}
	return 0;
}
