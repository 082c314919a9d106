/* files.c - file operations and transfers as the sandbox user (docs/protocol.md "Files"). */
#include "guest/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest/limits.h"
#include "guest/log.h"
#include "proto/credit.h"
#include "proto/frame.h"
#include "proto/fsmsg.h"
#include "proto/messages.h"
#include "util/cleanup.h"
#include "util/sha256.h"
#include "util/text.h"

struct guest_transfer {
	struct guest_transfer *next;
	uint32_t id;
	enum proto_fs_op op;          /* PROTO_FS_READ or PROTO_FS_WRITE */
	int fd;
	char path[PROTO_PATH_MAX + 1]; /* as the host named it, for messages */

	/* read: the host's credit, what is still to send, one chunk of memory */
	uint64_t credit;
	uint64_t remaining;
	uint8_t *chunk;

	/* write: the temp file next to the target, the guest's credit, the digest so far */
	int dirfd;
	char tmp_name[NAME_MAX + 1];
	char name[NAME_MAX + 1];
	char target[PATH_MAX];        /* absolute, symlinks resolved: what "written" reports */
	uint32_t mode;
	struct proto_credit_window window;
	struct sha256_ctx sha;
	uint64_t size;
};

void guest_files_init(struct guest_files *fs, const struct guest_exec_config *cfg,
		      unsigned *running, const struct guest_files_ops *ops, void *ctx)
{
	memset(fs, 0, sizeof(*fs));
	fs->cfg = cfg;
	fs->running = running;
	fs->ops = ops;
	fs->ctx = ctx;
}

const char *guest_files_error_code(int errnum)
{
	switch (errnum) {
	case ENOENT:
		return "not_found";
	case EISDIR:
		return "is_directory";
	case ENOTDIR:
		return "not_directory";
	case EEXIST:
		return "exists";
	case ENOTEMPTY:
		return "not_empty";
	case EACCES:
	case EPERM:
	case EROFS:
		return "permission_denied";
	case ENOSPC:
	case EDQUOT:
		return "no_space";
	case ENAMETOOLONG:
	case EINVAL:
	case EXDEV: /* a move across file systems: the caller must copy */
		return "bad_request";
	default:
		return "io_error";
	}
}

/* --- acting as the sandbox user ---
 * The agent is root; file-system checks use the fsuid/fsgid alone, and while the fsuid is not 0
 * the kernel clears CAP_DAC_OVERRIDE, CAP_FOWNER and the other file capabilities from the
 * effective set. So between these two calls every path lookup, open, create and rename is the
 * sandbox user's (supplementary groups are cleared at agent start), whatever a guest program
 * does to the paths meanwhile. The agent is single-threaded: nothing else runs in between. */
static int become_user(const struct guest_exec_config *cfg, struct ember_error **err)
{
	if (!cfg->change_ids)
		return 0;
	setfsgid(cfg->gid);
	setfsuid(cfg->uid);
	/* An invalid id changes nothing and returns the current one: verify both took. */
	if ((uid_t)setfsuid((uid_t)-1) != cfg->uid || (gid_t)setfsgid((gid_t)-1) != cfg->gid) {
		setfsuid(geteuid());
		setfsgid(getegid());
		return ember_error_set(err, EMBER_E_INTERNAL, 0,
				       "cannot take the sandbox user's file-system ids");
	}
	return 0;
}

static void become_agent(const struct guest_exec_config *cfg)
{
	if (!cfg->change_ids)
		return;
	setfsuid(geteuid());
	setfsgid(getegid());
}

/* open(2) that refuses /proc/<pid>/fd-style magic links on the way (the agent's /proc/self is
 * PID 1's, whose fds are not the user's); plain openat where openat2 is missing. */
static int open_user(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = { .flags = (uint64_t)flags, .mode = (flags & O_CREAT) ? mode : 0,
				.resolve = RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	if (fd < 0 && (errno == ENOSYS || errno == E2BIG))
		return openat(dirfd, path, flags, mode);
	return (int)fd;
}

/* --- replies --- */

static void send_error(struct guest_files *fs, uint32_t id, const char *code, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

static void send_error(struct guest_files *fs, uint32_t id, const char *code, const char *fmt,
		       ...)
{
	struct ember_error *err = NULL;
	va_list ap;
	size_t len;
	char *json;

	va_start(ap, fmt);
	json = proto_error_encodev(code, &len, &err, fmt, ap);
	va_end(ap);
	if (json == NULL) {
		guest_log_error(&err, "encode ERROR");
		return;
	}
	fs->ops->emit(fs->ctx, PROTO_ERROR, 0, id, json, len);
	free(json);
}

/* ERROR for a failed operation: the code follows the errno the failure recorded. */
static void send_failure(struct guest_files *fs, uint32_t id, struct ember_error **err)
{
	send_error(fs, id, guest_files_error_code((*err)->errno_value), "%s", (*err)->message);
	ember_error_free(err);
}

static void send_reply(struct guest_files *fs, uint32_t id, const struct proto_fs_reply *reply)
{
	struct ember_error *err = NULL;
	size_t len;
	char *json = proto_fs_reply_encode(reply, &len, &err);

	if (json == NULL) {
		send_error(fs, id, "io_error", "encode the reply: %s", err->message);
		ember_error_free(&err);
		return;
	}
	fs->ops->emit(fs->ctx, PROTO_FS_REPLY, 0, id, json, len);
	free(json);
}

/* --- paths --- */

/* Relative paths are under the sandbox home; the result fits a kernel path (PATH_MAX). */
static int resolve(const struct guest_files *fs, const char *path, char out[PATH_MAX],
		   struct ember_error **err)
{
	int n = path[0] == '/' ? snprintf(out, PATH_MAX, "%s", path) :
				 snprintf(out, PATH_MAX, "%s/%s", fs->cfg->home, path);

#ifdef EMBER_FUZZING
	/* fuzz_guest_session runs as whoever runs the fuzzer, often root: requests made of random
	 * bytes must never reach that machine's files. */
	(void)n;
	return ember_error_set(err, EMBER_E_INVALID, EACCES, "no files while fuzzing");
#endif
	if (n < 0 || n >= PATH_MAX)
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG, "path `%.200s` is too long",
				       path);
	return 0;
}

/* The last component of path (trailing slashes ignored); "/" for the root. */
static void base_name(const char *path, char out[PROTO_FS_NAME_MAX + 1])
{
	size_t end = strlen(path), start;

	while (end > 1 && path[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	if (start == end) { /* only slashes */
		snprintf(out, PROTO_FS_NAME_MAX + 1, "/");
		return;
	}
	if (end - start > PROTO_FS_NAME_MAX)
		end = start + PROTO_FS_NAME_MAX;
	memcpy(out, path + start, end - start);
	out[end - start] = '\0';
	utf8_truncate(out, end - start);
}

/* Splits an absolute path into its directory and a final name (not "", "." or ".."). */
static int split_path(const char *abs, char dir[PATH_MAX], char name[NAME_MAX + 1],
		      const char *shown, struct ember_error **err)
{
	const char *slash = strrchr(abs, '/');
	size_t dir_len = slash == abs ? 1 : (size_t)(slash - abs);
	const char *base = slash + 1;

	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return ember_error_set(err, EMBER_E_INVALID, EISDIR, "`%.200s` names a directory",
				       shown);
	if (strlen(base) > NAME_MAX)
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG,
				       "`%.200s`: file name too long", shown);
	memcpy(dir, abs, dir_len);
	dir[dir_len] = '\0';
	memcpy(name, base, strlen(base) + 1);
	return 0;
}

static void fill_entry(struct proto_fs_entry *e, const char *name, const struct stat *st)
{
	if (name != e->name)
		snprintf(e->name, sizeof(e->name), "%s", name);
	if (S_ISREG(st->st_mode))
		e->type = PROTO_FS_TYPE_FILE;
	else if (S_ISDIR(st->st_mode))
		e->type = PROTO_FS_TYPE_DIR;
	else if (S_ISLNK(st->st_mode))
		e->type = PROTO_FS_TYPE_SYMLINK;
	else
		e->type = PROTO_FS_TYPE_OTHER;
	e->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
	e->mode = st->st_mode & PROTO_FS_MODE_MAX;
	e->mtime_s = (int64_t)st->st_mtim.tv_sec;
}

/* mkdir -p of every component of abs before its last (0755); an existing one is fine. */
static int make_parents(const char *abs, const char *shown, struct ember_error **err)
{
	char buf[PATH_MAX];
	char *p;

	snprintf(buf, sizeof(buf), "%s", abs);
	for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return ember_error_sys(err, "mkdir `%.200s` for `%.200s`", buf, shown);
		*p = '/';
	}
	return 0;
}

/* --- stat, list, mkdir, move, remove --- */

static int do_stat(const char *abs, const struct proto_fs_request *req,
		   struct proto_fs_reply *reply, struct ember_error **err)
{
	struct stat st;

	if (lstat(abs, &st) < 0)
		return ember_error_sys(err, "stat `%.200s`", req->path);
	reply->kind = PROTO_FS_REPLY_ENTRY;
	base_name(req->path, reply->entry.name);
	fill_entry(&reply->entry, reply->entry.name, &st);
	return 0;
}

/* What an entry costs in the reply's JSON at most: the reply must fit one frame. */
static size_t entry_json_cost(const char *name)
{
	size_t cost = 112; /* {"name":"","type":"symlink","size":...,"mode":...,"mtime":...}, */
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p != '\0'; p++)
		cost += *p < 0x20 ? 6 : (*p == '"' || *p == '\\') ? 2 : 1;
	return cost;
}

static int compare_entries(const void *a, const void *b)
{
	return strcmp(((const struct proto_fs_entry *)a)->name,
		      ((const struct proto_fs_entry *)b)->name);
}

/* Reads up to PROTO_FS_LIST_MAX entries that fit one frame; the rest makes "truncated". */
static int read_entries(DIR *dir, struct proto_fs_reply *reply, const char *shown,
			struct ember_error **err)
{
	size_t budget = PROTO_MAX_PAYLOAD - 64;
	struct dirent *de;

	for (;;) {
		struct stat st;
		size_t cost;

		errno = 0;
		de = readdir(dir);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    !utf8_valid_text((const uint8_t *)de->d_name, strlen(de->d_name)))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone since readdir */
		cost = entry_json_cost(de->d_name);
		if (reply->count == PROTO_FS_LIST_MAX || cost > budget) {
			reply->truncated = true;
			return 0;
		}
		budget -= cost;
		fill_entry(&reply->entries[reply->count++], de->d_name, &st);
	}
	if (errno != 0)
		return ember_error_sys(err, "read directory `%.200s`", shown);
	return 0;
}

static int do_list(const char *abs, const struct proto_fs_request *req,
		   struct proto_fs_reply *reply, struct ember_error **err)
{
	int fd = open_user(AT_FDCWD, abs, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC, 0);
	DIR *dir;
	int ret;

	if (fd < 0)
		return ember_error_sys(err, "list `%.200s`", req->path);
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return ember_error_sys(err, "list `%.200s`", req->path);
	}
	reply->kind = PROTO_FS_REPLY_LIST;
	reply->entries = calloc(PROTO_FS_LIST_MAX, sizeof(*reply->entries));
	if (reply->entries == NULL) {
		closedir(dir);
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	ret = read_entries(dir, reply, req->path, err);
	closedir(dir);
	if (ret == 0)
		qsort(reply->entries, reply->count, sizeof(*reply->entries), compare_entries);
	return ret;
}

static int do_mkdir(const char *abs, const struct proto_fs_request *req,
		    struct ember_error **err)
{
	mode_t mode = req->has_mode ? (mode_t)req->mode : 0755;
	struct stat st;

	if (req->parents && make_parents(abs, req->path, err) < 0)
		return -1;
	if (mkdir(abs, mode) < 0) {
		/* mkdir -p: a directory that is already there is what was asked for */
		if (errno == EEXIST && req->parents && stat(abs, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		return ember_error_sys(err, "mkdir `%.200s`", req->path);
	}
	/* mkdir(2) applies the umask: an explicit mode is meant exactly */
	if (req->has_mode && chmod(abs, mode) < 0)
		return ember_error_sys(err, "chmod `%.200s`", req->path);
	return 0;
}

static int do_move(const struct guest_files *fs, const char *abs,
		   const struct proto_fs_request *req, struct ember_error **err)
{
	char to[PATH_MAX];

	if (resolve(fs, req->to, to, err) < 0)
		return -1;
	if (rename(abs, to) < 0) {
		if (errno == EXDEV)
			return ember_error_set(err, EMBER_E_INVALID, EXDEV,
					       "move `%.200s` to `%.200s`: not on one file system",
					       req->path, req->to);
		return ember_error_sys(err, "move `%.200s` to `%.200s`", req->path, req->to);
	}
	return 0;
}

/* Empties and removes the directory name in parent (which is on device dev), without following
 * a symlink or entering another file system; depth bounds the agent's stack and open fds. */
static int remove_tree(int parent, const char *name, dev_t dev, unsigned depth, const char *shown,
		       struct ember_error **err)
{
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd, pass;

	if (depth > GUEST_FS_REMOVE_DEPTH_MAX)
		return ember_error_set(err, EMBER_E_INVALID, ELOOP,
				       "remove `%.200s`: more than %u directory levels", shown,
				       GUEST_FS_REMOVE_DEPTH_MAX);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ember_error_sys(err, "remove `%.200s`: open `%.200s`", shown, name);
	if (fstat(fd, &st) < 0 || st.st_dev != dev) {
		close(fd);
		return ember_error_set(err, EMBER_E_INVALID, EBUSY,
				       "remove `%.200s`: `%.200s` is a mount point", shown, name);
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return ember_error_sys(err, "remove `%.200s`", shown);
	}
	/* Entries removed while reading may make readdir skip others: a second pass finds them. */
	for (pass = 0; pass < 2; pass++) {
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (S_ISDIR(st.st_mode) ?
				    remove_tree(dirfd(dir), de->d_name, dev, depth + 1, shown, err) < 0 :
				    unlinkat(dirfd(dir), de->d_name, 0) < 0 &&
					    ember_error_sys(err, "remove `%.200s`: `%.200s`", shown,
							    de->d_name) < 0) {
				closedir(dir);
				return -1;
			}
		}
	}
	closedir(dir);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0)
		return ember_error_sys(err, "remove `%.200s`", shown);
	return 0;
}

static int do_remove(const char *abs, const struct proto_fs_request *req,
		     struct ember_error **err)
{
	char dir[PATH_MAX], trimmed[PATH_MAX], name[NAME_MAX + 1];
	_cleanup_close_ int parent = -1;
	struct stat st;
	size_t len;

	if (lstat(abs, &st) < 0)
		return ember_error_sys(err, "remove `%.200s`", req->path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(abs) < 0)
			return ember_error_sys(err, "remove `%.200s`", req->path);
		return 0;
	}
	if (!req->recursive) {
		if (rmdir(abs) < 0)
			return ember_error_sys(err, "remove `%.200s`", req->path);
		return 0;
	}
	len = strlen(abs);
	while (len > 1 && abs[len - 1] == '/') /* "d/" names d itself */
		len--;
	snprintf(trimmed, sizeof(trimmed), "%.*s", (int)len, abs);
	if (split_path(trimmed, dir, name, req->path, err) < 0)
		return -1;
	parent = open_user(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (parent < 0)
		return ember_error_sys(err, "remove `%.200s`", req->path);
	return remove_tree(parent, name, st.st_dev, 1, req->path, err);
}

/* --- transfers --- */

static struct guest_transfer *find_transfer(const struct guest_files *fs, uint32_t id)
{
	struct guest_transfer *t;

	for (t = fs->transfers; t != NULL; t = t->next) {
		if (t->id == id)
			return t;
	}
	return NULL;
}

bool guest_files_busy(const struct guest_files *fs, uint32_t id)
{
	return find_transfer(fs, id) != NULL;
}

static struct guest_transfer *transfer_new(uint32_t id, const struct proto_fs_request *req,
					   struct ember_error **err)
{
	struct guest_transfer *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	t->id = id;
	t->op = req->op;
	t->fd = -1;
	t->dirfd = -1;
	memcpy(t->path, req->path, sizeof(t->path));
	return t;
}

static void transfer_add(struct guest_files *fs, struct guest_transfer *t)
{
	t->next = fs->transfers;
	fs->transfers = t;
	(*fs->running)++;
}

/* Unlinks t from the list and frees it; a write's temp file goes too unless it was renamed.
 * Called as the agent (it takes the user's ids for the unlink itself). */
static void transfer_end(struct guest_files *fs, struct guest_transfer *t)
{
	struct guest_transfer **pp;

	for (pp = &fs->transfers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			(*fs->running)--;
			break;
		}
	}
	if (t->fd >= 0)
		close(t->fd);
	if (t->dirfd >= 0) {
		if (t->tmp_name[0] != '\0' && become_user(fs->cfg, NULL) == 0) {
			unlinkat(t->dirfd, t->tmp_name, 0);
			become_agent(fs->cfg);
		}
		close(t->dirfd);
	}
	free(t->chunk);
	free(t);
}

/* Sends what the host's credit and the session's queue allow; ends t once all was sent (the
 * last DATA carries FIN) or the file turned out shorter than announced. */
static void read_pump(struct guest_files *fs, struct guest_transfer *t)
{
	for (;;) {
		size_t want = PROTO_MAX_DATA_CHUNK;
		ssize_t n;

		if (fs->ops->congested(fs->ctx))
			return;
		if (t->remaining == 0) {
			fs->ops->emit(fs->ctx, PROTO_DATA, PROTO_FLAG_FIN, t->id, NULL, 0);
			transfer_end(fs, t);
			return;
		}
		if (want > t->remaining)
			want = (size_t)t->remaining;
		if (want > t->credit)
			want = (size_t)t->credit;
		if (want == 0)
			return; /* until the host sends CREDIT */
		do {
			n = read(t->fd, t->chunk, want);
		} while (n < 0 && errno == EINTR);
		if (n <= 0) {
			send_error(fs, t->id, "io_error", "read `%.200s`: %s", t->path,
				   n == 0 ? "the file shrank while being read" : strerror(errno));
			transfer_end(fs, t);
			return;
		}
		t->remaining -= (uint64_t)n;
		t->credit -= (uint64_t)n;
		if (fs->ops->emit(fs->ctx, PROTO_DATA, t->remaining == 0 ? PROTO_FLAG_FIN : 0, t->id,
				  t->chunk, (size_t)n) < 0)
			return; /* the session is ending: it discards every transfer */
		if (t->remaining == 0) {
			transfer_end(fs, t);
			return;
		}
	}
}

/* read: the file's entry first (FS_REPLY), then its bytes as DATA paced by host credit. */
static int start_read(struct guest_files *fs, uint32_t id, const char *abs,
		      const struct proto_fs_request *req, struct ember_error **err)
{
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_ENTRY };
	struct guest_transfer *t;
	struct stat st;

	t = transfer_new(id, req, err);
	if (t == NULL)
		return -1;
	/* O_NONBLOCK: opening a FIFO must not block the agent; it is refused below anyway. */
	t->fd = open_user(AT_FDCWD, abs, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0);
	if (t->fd < 0 || fstat(t->fd, &st) < 0) {
		ember_error_sys(err, "read `%.200s`", req->path);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		ember_error_set(err, EMBER_E_INVALID, EISDIR, "read `%.200s`: is a directory",
				req->path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ember_error_set(err, EMBER_E_INVALID, EINVAL, "read `%.200s`: not a regular file",
				req->path);
		goto fail;
	}
	t->chunk = malloc(PROTO_MAX_DATA_CHUNK);
	if (t->chunk == NULL) {
		ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		goto fail;
	}
	base_name(req->path, reply.entry.name);
	fill_entry(&reply.entry, reply.entry.name, &st);
	t->remaining = reply.entry.size;
	t->credit = PROTO_CREDIT_WINDOW;
	transfer_add(fs, t);
	send_reply(fs, id, &reply);
	read_pump(fs, t);
	return 0;
fail:
	if (t->fd >= 0)
		close(t->fd);
	free(t);
	return -1;
}

/* Where a write lands: the target with its symlinks resolved (a write follows them, as a shell
 * redirection does), or, for a new file, its resolved directory and name. */
static int write_target(struct guest_transfer *t, const char *abs, const char *shown,
			struct ember_error **err)
{
	char real[PATH_MAX], dir[PATH_MAX];
	struct stat st;

	if (realpath(abs, real) != NULL) {
		if (stat(real, &st) == 0 && S_ISDIR(st.st_mode))
			return ember_error_set(err, EMBER_E_INVALID, EISDIR,
					       "write `%.200s`: is a directory", shown);
		if (split_path(real, dir, t->name, shown, err) < 0)
			return -1;
	} else if (errno == ENOENT) {
		if (split_path(abs, dir, t->name, shown, err) < 0)
			return -1;
		if (realpath(dir, real) == NULL)
			return ember_error_sys(err, "write `%.200s`", shown);
		snprintf(dir, sizeof(dir), "%s", real);
	} else {
		return ember_error_sys(err, "write `%.200s`", shown);
	}
	if (snprintf(t->target, sizeof(t->target), "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/",
		     t->name) >= (int)sizeof(t->target))
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG,
				       "write `%.200s`: path too long", shown);
	t->dirfd = open_user(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (t->dirfd < 0)
		return ember_error_sys(err, "write `%.200s`", shown);
	return 0;
}

/* write: the temp file is created now (failures answer at once); DATA follows. */
static int start_write(struct guest_files *fs, uint32_t id, const char *abs,
		       const struct proto_fs_request *req, struct ember_error **err)
{
	struct guest_transfer *t = transfer_new(id, req, err);

	if (t == NULL)
		return -1;
	if ((req->parents && make_parents(abs, req->path, err) < 0) ||
	    write_target(t, abs, req->path, err) < 0)
		goto fail;
	/* The name is cut so the temp name fits NAME_MAX whatever the target's length. */
	snprintf(t->tmp_name, sizeof(t->tmp_name), ".%.200s.ember-upload-%u", t->name, id);
	t->fd = open_user(t->dirfd, t->tmp_name,
			  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (t->fd < 0) {
		t->tmp_name[0] = '\0'; /* not ours to unlink */
		ember_error_sys(err, "write `%.200s`", req->path);
		goto fail;
	}
	t->mode = req->has_mode ? req->mode : 0644;
	proto_credit_window_init(&t->window, PROTO_CREDIT_WINDOW);
	sha256_init(&t->sha);
	transfer_add(fs, t);
	return 0;
fail:
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t);
	return -1;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* FIN: mode, close (which may still report ENOSPC), rename over the target, "written". */
static int finish_write(struct guest_files *fs, struct guest_transfer *t,
			struct ember_error **err)
{
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_WRITTEN, .size = t->size };
	int fd = steal_fd(&t->fd);

	if (fchmod(fd, (mode_t)t->mode) < 0) {
		close(fd);
		return ember_error_sys(err, "write `%.200s`: chmod", t->path);
	}
	if (close(fd) < 0)
		return ember_error_sys(err, "write `%.200s`", t->path);
	if (renameat(t->dirfd, t->tmp_name, t->dirfd, t->name) < 0)
		return ember_error_sys(err, "write `%.200s`", t->path);
	t->tmp_name[0] = '\0';
	snprintf(reply.path, sizeof(reply.path), "%s", t->target);
	sha256_final_hex(&t->sha, reply.sha256);
	send_reply(fs, t->id, &reply);
	return 0;
}

static int write_data(struct guest_files *fs, struct guest_transfer *t, const uint8_t *data,
		      size_t len, bool fin, struct ember_error **err)
{
	uint32_t grant;

	if (write_all(t->fd, data, len) < 0)
		return ember_error_sys(err, "write `%.200s`", t->path);
	sha256_update(&t->sha, data, len);
	t->size += len;
	proto_credit_window_consumed(&t->window, len);
	if (fin)
		return finish_write(fs, t, err);
	grant = proto_credit_window_grant(&t->window);
	if (grant > 0) {
		uint8_t payload[PROTO_CREDIT_PAYLOAD];

		proto_credit_encode(payload, grant);
		fs->ops->emit(fs->ctx, PROTO_CREDIT, 0, t->id, payload, sizeof(payload));
	}
	return 0;
}

int guest_files_data(struct guest_files *fs, uint32_t id, const uint8_t *data, size_t len,
		     bool fin, struct ember_error **err)
{
	struct guest_transfer *t = find_transfer(fs, id);
	struct ember_error *op_err = NULL;
	int ret;

	if (t == NULL)
		return 0; /* it crossed our ERROR, or the host's CANCEL */
	if (t->op != PROTO_FS_WRITE)
		return ember_error_set(err, EMBER_E_PROTOCOL, 0, "DATA from the host for read %u",
				       id);
	if (proto_credit_window_received(&t->window, len, err) < 0)
		return -1;
	if (become_user(fs->cfg, &op_err) < 0) {
		ret = -1;
	} else {
		ret = write_data(fs, t, data, len, fin, &op_err);
		become_agent(fs->cfg);
	}
	if (ret < 0)
		send_failure(fs, id, &op_err);
	if (ret < 0 || fin)
		transfer_end(fs, t);
	return 0;
}

bool guest_files_credit(struct guest_files *fs, uint32_t id, uint32_t bytes)
{
	struct guest_transfer *t = find_transfer(fs, id);

	if (t == NULL || t->op != PROTO_FS_READ)
		return false;
	t->credit += bytes;
	if (t->credit > PROTO_CREDIT_MAX)
		t->credit = PROTO_CREDIT_MAX;
	read_pump(fs, t);
	return true;
}

bool guest_files_cancel(struct guest_files *fs, uint32_t id)
{
	struct guest_transfer *t = find_transfer(fs, id);

	if (t == NULL)
		return false;
	transfer_end(fs, t);
	return true;
}

void guest_files_resume(struct guest_files *fs)
{
	struct guest_transfer *t, *next;

	for (t = fs->transfers; t != NULL; t = next) {
		next = t->next;
		if (t->op == PROTO_FS_READ)
			read_pump(fs, t);
	}
}

void guest_files_discard(struct guest_files *fs)
{
	while (fs->transfers != NULL)
		transfer_end(fs, fs->transfers);
}

/* --- requests --- */

static int run_request(struct guest_files *fs, uint32_t id, const struct proto_fs_request *req,
		       struct ember_error **err)
{
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_NONE };
	char abs[PATH_MAX];
	int ret;

	if (resolve(fs, req->path, abs, err) < 0)
		return -1;
	switch (req->op) {
	case PROTO_FS_READ:
		return start_read(fs, id, abs, req, err);
	case PROTO_FS_WRITE:
		return start_write(fs, id, abs, req, err);
	case PROTO_FS_STAT:
		ret = do_stat(abs, req, &reply, err);
		break;
	case PROTO_FS_LIST:
		ret = do_list(abs, req, &reply, err);
		break;
	case PROTO_FS_MKDIR:
		ret = do_mkdir(abs, req, err);
		break;
	case PROTO_FS_MOVE:
		ret = do_move(fs, abs, req, err);
		break;
	case PROTO_FS_REMOVE:
		ret = do_remove(abs, req, err);
		break;
	default:
		return ember_error_set(err, EMBER_E_INVALID, EINVAL, "unknown operation");
	}
	if (ret == 0)
		send_reply(fs, id, &reply);
	proto_fs_reply_release(&reply);
	return ret;
}

void guest_files_request(struct guest_files *fs, uint32_t id, const uint8_t *payload, size_t len)
{
	struct ember_error *err = NULL;
	struct proto_fs_request *req = malloc(sizeof(*req)); /* two paths: 8 KiB */
	int ret;

	if (req == NULL) {
		send_error(fs, id, "io_error", "out of memory");
		return;
	}
	if (proto_fs_request_decode(payload, len, req, &err) < 0) {
		send_error(fs, id, "bad_request", "%s", err->message);
		ember_error_free(&err);
		free(req);
		return;
	}
	if ((req->op == PROTO_FS_READ || req->op == PROTO_FS_WRITE) &&
	    *fs->running >= GUEST_MAX_TRANSFERS) {
		send_error(fs, id, "too_many_transfers", "%u file transfers already running",
			   GUEST_MAX_TRANSFERS);
		free(req);
		return;
	}
	ret = become_user(fs->cfg, &err);
	if (ret == 0) {
		ret = run_request(fs, id, req, &err);
		become_agent(fs->cfg);
	}
	if (ret < 0)
		send_failure(fs, id, &err);
	free(req);
}
