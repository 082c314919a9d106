/* hostcmd.c - ip/tc child processes and the libnftables context (see hostcmd.h). */
#include "net/hostcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/timeutil.h"

extern char **environ;

#define STDERR_KEEP 512

/* Reads the child's stderr until EOF or the deadline; keeps the first STDERR_KEEP bytes. */
static bool read_stderr(int fd, char *out, size_t size, int64_t deadline_ms)
{
	size_t used = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char buf[256];
		ssize_t n;
		int ret = poll(&pfd, 1, time_ms_until(deadline_ms));

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return false;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		if (used + 1 < size) {
			size_t take = (size_t)n < size - 1 - used ? (size_t)n : size - 1 - used;

			memcpy(out + used, buf, take);
			used += take;
			out[used] = '\0';
		}
	}
}

static void first_line(char *text)
{
	char *nl = strchr(text, '\n');

	if (nl != NULL)
		*nl = '\0';
}

int hostcmd_run(char *const argv[], struct ember_error **err)
{
	struct hostcmd_options opts = { .cwd_fd = -1, .fd3 = -1,
					.deadline_ms = time_mono_ms() + HOSTCMD_TIMEOUT_MS };

	return hostcmd_run_in(argv, &opts, err);
}

int hostcmd_run_in(char *const argv[], const struct hostcmd_options *opts,
		   struct ember_error **err)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2], status = 0;
	char errtext[STDERR_KEEP + 1] = "", name[128];
	int64_t started_ms = time_mono_ms();
	bool finished;
	pid_t pid;
	int ret;

	if (opts->name != NULL)
		snprintf(name, sizeof(name), "%s", opts->name);
	else
		snprintf(name, sizeof(name), "%s%s%s%s%s", argv[0], argv[1] != NULL ? " " : "",
			 argv[1] != NULL ? argv[1] : "",
			 argv[1] != NULL && argv[2] != NULL ? " " : "",
			 argv[1] != NULL && argv[2] != NULL ? argv[2] : "");
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return ember_error_sys(err, "pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	/* The working directory first: cwd_fd may be the number fd3 is about to take. dup2
	 * clears close-on-exec on the copy (and glibc's spawn does it when fd3 already is 3). */
	if (opts->cwd_fd >= 0)
		posix_spawn_file_actions_addfchdir_np(&fa, opts->cwd_fd);
	if (opts->fd3 >= 0)
		posix_spawn_file_actions_adddup2(&fa, opts->fd3, 3);
	/* Nothing else of the daemon's: a command may run as another user, who could reach what
	 * it holds through /proc/<pid>/fd. */
	posix_spawn_file_actions_addclosefrom_np(&fa, opts->fd3 >= 0 ? 4 : 3);
	ret = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (ret != 0) {
		close(pipefd[0]);
		return ember_error_set(err, EMBER_E_INTERNAL, ret, "run `%s`: %s", argv[0],
				       strerror(ret));
	}
	finished = read_stderr(pipefd[0], errtext, sizeof(errtext), opts->deadline_ms);
	close(pipefd[0]);
	if (!finished)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!finished)
		return ember_error_set(err, EMBER_E_INTERNAL, ETIMEDOUT, "`%s` did not finish in "
				       "%lld ms", name, (long long)(time_mono_ms() - started_ms));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	first_line(errtext);
	if (errtext[0] == '\0' && WIFSIGNALED(status))
		snprintf(errtext, sizeof(errtext), "killed by signal %d", WTERMSIG(status));
	return ember_error_set(err, EMBER_E_INTERNAL, 0, "`%s` failed: %s", name,
			       errtext[0] != '\0' ? errtext : "no message");
}

static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nft_ctx *nft_json;   /* [nft_lock] JSON output */
static struct nft_ctx *nft_plain;  /* [nft_lock] */

static struct nft_ctx *nft_context_locked(bool json)
{
	struct nft_ctx **slot = json ? &nft_json : &nft_plain;

	if (*slot == NULL) {
		*slot = nft_ctx_new(NFT_CTX_DEFAULT);
		if (*slot == NULL)
			return NULL;
		if (nft_ctx_buffer_output(*slot) != 0 || nft_ctx_buffer_error(*slot) != 0) {
			nft_ctx_free(*slot);
			*slot = NULL;
			return NULL;
		}
		if (json)
			nft_ctx_output_set_flags(*slot, NFT_CTX_OUTPUT_JSON);
	}
	return *slot;
}

int hostcmd_nft(const char *script, char **out, struct ember_error **err)
{
	struct nft_ctx *ctx;
	int ret = 0;

	pthread_mutex_lock(&nft_lock);
	ctx = nft_context_locked(out != NULL);
	if (ctx == NULL) {
		ret = ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "libnftables context");
	} else if (nft_run_cmd_from_buffer(ctx, script) != 0) {
		char text[STDERR_KEEP + 1];

		snprintf(text, sizeof(text), "%s", nft_ctx_get_error_buffer(ctx));
		first_line(text);
		ret = ember_error_set(err, EMBER_E_INTERNAL, 0, "nftables: %s",
				      text[0] != '\0' ? text : "command failed");
	} else if (out != NULL) {
		*out = strdup(nft_ctx_get_output_buffer(ctx));
		if (*out == NULL)
			ret = ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	/* Reading the buffers resets them for the next command. */
	if (ctx != NULL) {
		nft_ctx_get_output_buffer(ctx);
		nft_ctx_get_error_buffer(ctx);
	}
	pthread_mutex_unlock(&nft_lock);
	return ret;
}

bool hostcmd_nft_usable(char *why, size_t size)
{
	struct ember_error *err = NULL;
	_cleanup_free_ char *out = NULL;

	if (hostcmd_nft("list tables", &out, &err) == 0)
		return true;
	snprintf(why, size, "%s", err->message);
	ember_error_free(&err);
	return false;
}
