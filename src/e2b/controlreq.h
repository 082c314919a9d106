/* controlreq.h - decoding of the E2B control plane's requests as the pinned SDKs send them: the
 * create body (POST /sandboxes, /v2/sandboxes), the timeout and connect bodies, and the list's
 * query (GET /sandboxes, /v2/sandboxes: metadata, state, limit, order, nextToken, ...).
 * Used by control.c; pure functions over bytes, fuzzed by tests/fuzz/fuzz_e2b_control.c.
 * Strict: exact types, bounded strings, unknown fields refused, every error names its field. */
#ifndef EMBER_E2B_CONTROLREQ_H
#define EMBER_E2B_CONTROLREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/requests.h"
#include "sandbox/labels.h"
#include "sandbox/manager.h"
#include "sandbox/sandboxenv.h"
#include "util/error.h"

/* Metadata keys under this prefix are emberd's own labels (the template the SDK asked for),
 * refused in a create's metadata and left out of the metadata the SDK gets back. */
#define E2B_LABEL_PREFIX "e2b.dev/"
#define E2B_TEMPLATE_LABEL "e2b.dev/template"
/* A template name: E2B's ids are 20 characters, its aliases shorter than a label value. */
#define E2B_TEMPLATE_MAX 128
/* E2B's page size bounds for GET /v2/sandboxes (its default is the maximum). */
#define E2B_LIST_LIMIT_MAX 100
/* "<created_wall_ns>_<id>": where the next page starts; the id a sandbox's (35 bytes) or a
 * snapshot's (37). */
#define E2B_NEXT_TOKEN_ID_MAX 40
#define E2B_NEXT_TOKEN_MAX (20 + 1 + E2B_NEXT_TOKEN_ID_MAX)

struct e2b_create_body {
	char template_id[E2B_TEMPLATE_MAX + 1];
	unsigned timeout_s;            /* 0 when absent */
	struct sandbox_labels labels;  /* the metadata (template label not added yet) */
	struct sandbox_env env;        /* envVars: every program of the sandbox starts with them */
	bool allow_internet;           /* allow_internet_access: true */
};

/* Every field NewSandbox and NewSandboxV2 have is known; those emberd cannot honour (autoPause,
 * autoResume, mcp, network rules, iam, volume mounts) are refused with EMBER_E_INVALID
 * naming the field and what to do instead, when they ask for something (false, null, {} and []
 * are accepted). */
int e2b_parse_create(const char *body, size_t len, struct e2b_create_body *out,
		     struct ember_error **err);

/* POST /sandboxes/{id}/timeout: {"timeout": seconds}, 1 to 30 days (the manager applies
 * --max-timeout-s). */
int e2b_parse_timeout(const char *body, size_t len, unsigned *timeout_s,
		      struct ember_error **err);

/* POST /sandboxes/{id}/pause: {"memory"?: bool}; an empty body is fine. `memory: false` (a
 * filesystem-only pause, rebooted on resume) is refused: emberd's pause always keeps the memory,
 * and E2B never downgrades what was asked for silently. */
int e2b_parse_pause(const char *body, size_t len, struct ember_error **err);

/* What a connect or resume asks of a (paused) sandbox. */
struct e2b_resume_body {
	unsigned timeout_s;            /* 0 when absent */
	bool reboot;                   /* memory: false, a resume from disk only (emberd resumes
					* with the memory: refused for a paused sandbox) */
};

/* POST /v2/sandboxes/{id}/connect (and v1's): {"timeout"?: seconds, "memory"?: bool}; an empty
 * body is fine. */
int e2b_parse_connect(const char *body, size_t len, struct e2b_resume_body *out,
		      struct ember_error **err);

/* POST /sandboxes/{id}/resume (deprecated): {"timeout"?, "autoPause"?, "memory"?}; an empty body
 * is fine; autoPause: true is refused (emberd has no auto-pause). */
int e2b_parse_resume(const char *body, size_t len, struct e2b_resume_body *out,
		     struct ember_error **err);

/* POST /sandboxes/{id}/fork: {"count"?: 1..E2B_FORK_MAX (default 1; the manager holds
 * --max-fork), "timeout"?: seconds (E2B's default: 15)}; an empty body is fine. */
#define E2B_FORK_MAX 1024
#define E2B_FORK_TIMEOUT_DEFAULT 15
int e2b_parse_fork(const char *body, size_t len, unsigned *count, unsigned *timeout_s,
		   struct ember_error **err);

/* A snapshot's name (createSnapshot's `name`) is kept as this label of the snapshot. */
#define E2B_SNAPSHOT_NAME_LABEL "e2b.dev/snapshot-name"

/* POST /sandboxes/{id}/snapshots: {"name"?: 1..SANDBOX_LABEL_VALUE_MAX bytes}; *name is "" when
 * absent. */
int e2b_parse_snapshot(const char *body, size_t len, char name[SANDBOX_LABEL_VALUE_MAX + 1],
		       struct ember_error **err);

/* GET /snapshots: sandboxID, name, limit (1-100, none by default), nextToken. */
struct e2b_snapshot_query {
	char sandbox_id[SANDBOX_ID_LEN + 1];   /* "": any */
	char name[SANDBOX_LABEL_VALUE_MAX + 1]; /* "": any; else the name or the id */
	unsigned limit;                        /* 0: no page limit */
	bool has_next;                         /* nextToken: start after this snapshot */
	int64_t next_created_ns;
	char next_id[E2B_NEXT_TOKEN_ID_MAX + 1];
};
int e2b_parse_snapshot_query(const struct api_query *query, struct e2b_snapshot_query *out,
			     struct ember_error **err);

struct e2b_list_query {
	/* metadata terms (all must match); terms[] point into keys[] and values[] */
	struct sandbox_label_term terms[SANDBOX_LABELS_MAX];
	char keys[SANDBOX_LABELS_MAX][SANDBOX_LABEL_KEY_MAX + 1];
	char values[SANDBOX_LABELS_MAX][SANDBOX_LABEL_VALUE_MAX + 1];
	size_t nterms;
	bool running;                  /* state names running (v2: or is absent; v1: always) */
	bool paused;                   /* state names paused (v2: or is absent) */
	unsigned limit;                /* 0: no page limit (v1) */
	bool ascending;                /* order=asc (default: newest first) */
	bool has_started_after;
	int64_t started_after_ns;
	char template_id[E2B_TEMPLATE_MAX + 1]; /* "" : any */
	bool has_next;                 /* nextToken: start after this sandbox */
	int64_t next_created_ns;
	char next_id[E2B_NEXT_TOKEN_ID_MAX + 1]; /* a sandbox id */
};

/* v1 takes only metadata and lists running sandboxes; v2 also state (absent: running and
 * paused), limit (1-100, default 100), order, startedAfter
 * (RFC 3339), template and nextToken. metadata is `k=v&k2=v2` whose keys and values the SDK
 * URL-encoded (the JS SDK twice: encodeURIComponent, then URLSearchParams). */
int e2b_parse_list_query(const struct api_query *query, bool v2, struct e2b_list_query *out,
			 struct ember_error **err);

/* The nextToken after a page ending with this sandbox (or snapshot). */
void e2b_next_token(int64_t created_ns, const char *id, char out[E2B_NEXT_TOKEN_MAX + 1]);

#endif
