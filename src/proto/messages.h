/* messages.h - the JSON control messages carried in HELLO/READY/EXEC/EXIT/PS_REPLY/ERROR frames.
 * Used by the host's agent client and the guest agent; each decoder is strict (types, ranges,
 * required fields, no unknown fields) because each side treats the other as hostile. */
#ifndef EMBER_PROTO_MESSAGES_H
#define EMBER_PROTO_MESSAGES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/ctxmsg.h"
#include "util/error.h"

#define PROTO_ID_MAX 64          /* sandbox ids: "sb_" + hex, well under this */
#define PROTO_ENTROPY_MAX 64     /* bytes of host entropy per HELLO */
#define PROTO_ARGV_MAX 16        /* interpreter argv entries */
#define PROTO_ENV_MAX 64         /* user environment entries */
#define PROTO_STRING_MAX 4096    /* any one argv/env string */
#define PROTO_CODE_MAX (256u * 1024u) /* program text per exec */
/* Program text passed as one argv string (`code_argument`): Linux's MAX_ARG_STRLEN less the NUL. */
#define PROTO_CODE_ARG_MAX (128u * 1024u - 1u)
#define PROTO_PS_MAX 1024        /* processes in a PS_REPLY */
/* Bounds a host may ask of the guest per exec (the daemon applies its own, lower defaults). */
#define PROTO_TIMEOUT_MS_MAX (24u * 3600u * 1000u)
#define PROTO_OUTPUT_LIMIT_MAX (64u * 1024u * 1024u)
#define PROTO_MAX_PROCESSES_MAX 65536u

/* HELLO's `net` (version 5): how the guest configures its NIC (docs/protocol.md "Network").
 * Addresses are IPv4 in host byte order. proto_hello_decode accepts only what
 * proto_hello_net_check does; the encoder refuses the same. */
struct proto_hello_net {
	bool present;         /* false: no "net" key; the agent leaves any NIC down */
	uint8_t mac[6];
	uint32_t address;     /* host byte order */
	uint8_t prefix;       /* 8-30 */
	uint32_t gateway;     /* host byte order, inside address/prefix, != address */
	uint32_t dns;         /* host byte order */
};

#define PROTO_NET_PREFIX_MIN 8
#define PROTO_NET_PREFIX_MAX 30

/* Not a frame: the words emberd-init's console line starts with when its kernel has no timer
 * (src/guest/clock.h). The daemon boots such a guest once more (docs/images.md). */
#define PROTO_CONSOLE_NO_TIMER "the guest kernel has no timer"

/* HELLO's `mounts` (version 7): host directories the guest mounts before READY, once per boot
 * (a later session's HELLO never carries them: the guest keeps what it mounted). Strict:
 * proto_hello_decode accepts only what proto_hello_mounts_check does (docs/protocol.md
 * "Mounts"). */
#define PROTO_MOUNTS_MAX 8
#define PROTO_MOUNT_PATH_MAX 255
enum proto_mount_fs {
	PROTO_MOUNT_9P = 1,     /* "9p": virtio-9p, source is the mount tag "emberd0".."emberd7" */
	PROTO_MOUNT_SQUASHFS,   /* "squashfs": a read-only disk, source "vdb".."vdi" */
};
struct proto_hello_mount {
	enum proto_mount_fs fs;
	char source[16];
	/* Absolute, normalized (no "//", "." or ".." component, no trailing "/"), not "/", only
	 * [A-Za-z0-9._@+=,-] in components (none starting with "-"), not equal to or under a
	 * system directory (/proc, /sys, /dev, /etc, /usr, /bin, /sbin, /lib, /lib32, /lib64,
	 * /libx32, /boot, /run, /var/run), not starting with "/emberd"; /tmp is allowed. */
	char path[PROTO_MOUNT_PATH_MAX + 1];
	bool readonly;                  /* squashfs: always */
};
struct proto_hello_mounts {
	struct proto_hello_mount m[PROTO_MOUNTS_MAX];
	size_t n;
};

/* HELLO: the host opens every session with this. Time and entropy let a restored clone make
 * itself unique and correct before it reports ready (see docs/protocol.md). */
struct proto_hello {
	uint32_t version;                    /* highest version the host speaks */
	char sandbox_id[PROTO_ID_MAX + 1];
	int64_t time_unix_ns;                /* host wall clock; 0 = leave the guest clock alone */
	uint8_t entropy[PROTO_ENTROPY_MAX];
	size_t entropy_len;                  /* 0 = none */
	/* Version 5, optional (encoded only when net.present): */
	struct proto_hello_net net;
	/* Version 7, optional (encoded only when mounts.n > 0): */
	struct proto_hello_mounts mounts;
};

/* READY: the guest's answer once it applied the HELLO. */
struct proto_ready {
	uint32_t version;                    /* the version both will speak */
	char agent[64];                      /* agent name and version */
	char sandbox_id[PROTO_ID_MAX + 1];   /* echoed: proves the identity took */
	uint64_t uptime_ms;                  /* guest CLOCK_BOOTTIME, for boot-time figures */
};

/* EXEC: run argv[] followed by the path of a file holding code. */
struct proto_exec {
	char *argv[PROTO_ARGV_MAX + 1];      /* NULL-terminated */
	size_t argc;
	char *env[PROTO_ENV_MAX + 1];        /* "NAME=value", NULL-terminated */
	size_t envc;
	char *code;                          /* NUL-terminated; may not contain NUL */
	size_t code_len;
	uint32_t timeout_ms;                 /* >= 1 */
	uint64_t output_limit;               /* bytes kept per stream, the rest dropped and flagged */
	uint32_t max_processes;              /* RLIMIT_NPROC of the sandbox user (>= 1) */
	bool stdin_follows;                  /* STDIN frames follow, ending with FIN */
	/* Version 3, all optional (absent = false / ""): */
	bool background;                     /* STARTED after spawn; no timeout, no output limit
					      * in the guest (the host keeps a ring) */
	bool command;                        /* argv is the whole command: no code file (code
					      * must then be empty) */
	char *cwd;                           /* NULL: the home directory; relative: under it */
	/* Version 4, optional: */
	char *context;                       /* run code in this context (ctxmsg.h); NULL: none */
	bool fresh_interpreter;              /* never through the guest's fork server */
	/* Version 6, optional: */
	bool code_argument;                  /* argv + [code] itself, no code file (at most
					      * PROTO_CODE_ARG_MAX bytes; not with command or context) */
};

struct proto_exit {
	int32_t exit_code;                   /* -1 when killed by a signal */
	int32_t signal;                      /* 0 unless killed by a signal */
	bool timed_out;
	bool oom_killed;                     /* the guest's OOM killer ended one of its processes */
	uint64_t duration_ms;
	bool stdout_truncated;
	bool stderr_truncated;
	/* Version 4, where the guest's time went (microseconds): from the EXEC's arrival to the
	 * program's start (code file, cgroup), the start itself (fork to execve, or handing the
	 * run to a context), and from there to the exit. has_timing false: an older agent. */
	bool has_timing;
	uint64_t queued_us;
	uint64_t spawn_us;
	uint64_t run_us;
	/* Version 4: the outcome of an exec in a context (ctxmsg.h); .present false otherwise.
	 * Owns heap strings: proto_exit_release(). */
	struct proto_outcome context;
};

struct proto_error_msg {
	char code[32];
	char message[512];
};

/* STARTED: the guest pid of a background exec's main process. */
struct proto_started {
	int32_t pid;                         /* >= 1 */
};

struct proto_process {
	int32_t pid;
	int32_t ppid;
	uint32_t uid;
	char state;                          /* as in /proc/<pid>/stat: R S D Z T ... */
	char comm[17];
};

/* Shared by the encoders and decoders here and in ctxmsg.c: a JSON array of the strings (NULL when one is
 * not UTF-8), and the strings of root[key] (at most max_count, each 1..PROTO_STRING_MAX bytes
 * without NUL; env_style: NAME=value) strdup'd into out[] (NULL-terminated, *count of them). */
json_t *proto_json_strings(char *const *items, size_t count);
/* obj (consumed, NULL meaning out of memory) as compact JSON text (malloc'd). */
char *proto_json_dump(json_t *obj, size_t *len, struct ember_error **err);
int proto_json_copy_strings(json_t *root, const char *key, size_t max_count, bool need_one,
			    bool env_style, char **out, size_t *count, struct ember_error **err);

/* Whether a present net is one the guest can apply: a unicast, non-zero MAC; a prefix of
 * PROTO_NET_PREFIX_MIN..MAX; address and gateway distinct hosts of the same subnet (neither its
 * network nor its broadcast address); dns neither 0.0.0.0 nor 255.255.255.255. The error
 * (EMBER_E_PROTOCOL) names the field ("net.gateway"). */
int proto_hello_net_check(const struct proto_hello_net *net, struct ember_error **err);

/* Whether mounts are ones the guest may apply: n <= PROTO_MOUNTS_MAX; each fs known, source
 * of its form, path as described at struct proto_hello_mount; no two the same path or source,
 * and no path under another's. The error (EMBER_E_PROTOCOL) names the field ("mounts[1].path"). */
int proto_hello_mounts_check(const struct proto_hello_mounts *mounts, struct ember_error **err);

/* Whether path is a guest mount path as struct proto_hello_mount describes (shared by the host's
 * request validation and the guest). On false, *why (static) says what is wrong. */
bool proto_mount_path_valid(const char *path, const char **why);

/* Whether the absolute path is dir or lies under it ("/a/b" is under "/a", "/ab" is not;
 * everything is under "/"). Compares text only: both must be normalized. */
bool proto_path_within(const char *path, const char *dir);

/* Each encoder returns a malloc'd JSON text (no NUL counted in *len) or NULL with an error. */
char *proto_hello_encode(const struct proto_hello *msg, size_t *len, struct ember_error **err);
int proto_hello_decode(const uint8_t *buf, size_t len, struct proto_hello *msg,
		       struct ember_error **err);

char *proto_ready_encode(const struct proto_ready *msg, size_t *len, struct ember_error **err);
int proto_ready_decode(const uint8_t *buf, size_t len, struct proto_ready *msg,
		       struct ember_error **err);

char *proto_exec_encode(const struct proto_exec *msg, size_t *len, struct ember_error **err);
/* On success msg owns heap strings: release with proto_exec_release(). */
int proto_exec_decode(const uint8_t *buf, size_t len, struct proto_exec *msg,
		      struct ember_error **err);
void proto_exec_release(struct proto_exec *msg);

char *proto_exit_encode(const struct proto_exit *msg, size_t *len, struct ember_error **err);
/* On success msg may own heap strings: release with proto_exit_release(). */
int proto_exit_decode(const uint8_t *buf, size_t len, struct proto_exit *msg,
		      struct ember_error **err);
void proto_exit_release(struct proto_exit *msg);

/* The same, the message printf-formatted from fmt and ap (cut to fit ERROR's message). */
char *proto_error_encodev(const char *code, size_t *len, struct ember_error **err,
			  const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
char *proto_error_encode(const char *code, const char *message, size_t *len,
			 struct ember_error **err);
int proto_error_decode(const uint8_t *buf, size_t len, struct proto_error_msg *msg,
		       struct ember_error **err);

char *proto_started_encode(const struct proto_started *msg, size_t *len,
			   struct ember_error **err);
int proto_started_decode(const uint8_t *buf, size_t len, struct proto_started *msg,
			 struct ember_error **err);

char *proto_ps_encode(const struct proto_process *procs, size_t count, size_t *len,
		      struct ember_error **err);
/* *procs is malloc'd (free() it); *count entries. */
int proto_ps_decode(const uint8_t *buf, size_t len, struct proto_process **procs, size_t *count,
		    struct ember_error **err);

#endif
