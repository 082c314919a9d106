/* fsmsg.h - the JSON of file-system requests (FS frames) and their outcomes (FS_REPLY), protocol
 * version 3 (docs/protocol.md "Files").
 * Used by the host channel (encodes requests, decodes replies) and the guest agent (the reverse).
 * Never interprets a path (the guest resolves it as the sandbox user); every decoder is strict:
 * known op, bounded strings without NUL, no unknown fields, fields only where the op allows them. */
#ifndef EMBER_PROTO_FSMSG_H
#define EMBER_PROTO_FSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PROTO_PATH_MAX 4096     /* bytes of a path, as Linux's PATH_MAX */
#define PROTO_FS_NAME_MAX 255   /* bytes of one directory entry's name */
#define PROTO_FS_LIST_MAX 2048  /* entries in one LIST reply (then "truncated") */
#define PROTO_FS_MODE_MAX 07777u

enum proto_fs_op {
	PROTO_FS_STAT = 1, /* -> {"entry"} */
	PROTO_FS_LIST,     /* -> {"entries","truncated"} */
	PROTO_FS_MKDIR,    /* -> {} */
	PROTO_FS_MOVE,     /* -> {} */
	PROTO_FS_REMOVE,   /* -> {} */
	PROTO_FS_READ,     /* -> {"entry"}, then DATA frames (host credit), the last with FIN */
	PROTO_FS_WRITE,    /* DATA frames follow (guest credit), the last with FIN -> {"written"} */
};

struct proto_fs_request {
	enum proto_fs_op op;
	char path[PROTO_PATH_MAX + 1];  /* non-empty; relative means under the sandbox home */
	char to[PROTO_PATH_MAX + 1];    /* MOVE only: the destination */
	bool recursive;                 /* REMOVE only */
	bool parents;                   /* MKDIR and WRITE only: create missing parents (0755) */
	bool has_mode;                  /* MKDIR and WRITE only */
	uint32_t mode;                  /* <= PROTO_FS_MODE_MAX */
};

enum proto_fs_type {
	PROTO_FS_TYPE_FILE,
	PROTO_FS_TYPE_DIR,
	PROTO_FS_TYPE_SYMLINK,
	PROTO_FS_TYPE_OTHER, /* device, fifo, socket */
};

struct proto_fs_entry {
	char name[PROTO_FS_NAME_MAX + 1]; /* valid UTF-8, no '/'; names that are not are skipped */
	enum proto_fs_type type;
	uint64_t size;
	uint32_t mode;                    /* permission bits only (<= 07777) */
	int64_t mtime_s;                  /* seconds since the epoch */
};

enum proto_fs_reply_kind {
	PROTO_FS_REPLY_NONE,    /* {} */
	PROTO_FS_REPLY_ENTRY,   /* {"entry":{...}} */
	PROTO_FS_REPLY_LIST,    /* {"entries":[...],"truncated":bool} */
	PROTO_FS_REPLY_WRITTEN, /* {"written":{"path","size","sha256"}} */
};

struct proto_fs_reply {
	enum proto_fs_reply_kind kind;
	struct proto_fs_entry entry;      /* ENTRY */
	struct proto_fs_entry *entries;   /* LIST: malloc'd, count of them */
	size_t count;
	bool truncated;
	char path[PROTO_PATH_MAX + 1];    /* WRITTEN: the absolute path written */
	uint64_t size;                    /* WRITTEN */
	char sha256[65];                  /* WRITTEN: lowercase hex */
};

const char *proto_fs_op_name(enum proto_fs_op op);
const char *proto_fs_type_name(enum proto_fs_type type);

/* Each encoder returns a malloc'd JSON text (no NUL counted in *len) or NULL with an error. */
char *proto_fs_request_encode(const struct proto_fs_request *req, size_t *len,
			      struct ember_error **err);
int proto_fs_request_decode(const uint8_t *buf, size_t len, struct proto_fs_request *req,
			    struct ember_error **err);

char *proto_fs_reply_encode(const struct proto_fs_reply *reply, size_t *len,
			    struct ember_error **err);
/* On success reply may own entries: release with proto_fs_reply_release(). */
int proto_fs_reply_decode(const uint8_t *buf, size_t len, struct proto_fs_reply *reply,
			  struct ember_error **err);
void proto_fs_reply_release(struct proto_fs_reply *reply);

#endif
