/* main.c - emberd-init: the guest's PID 1 and exec agent (or, with --agent-only, the same agent
 * on the host for tests). Parses flags, picks the mode, and in PID 1 mode never exits: every
 * path ends in guest_power_off(). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/agent.h"
#include "guest/boot.h"
#include "guest/cgroup.h"
#include "guest/log.h"

#ifndef EMBER_VERSION
#define EMBER_VERSION "0.0.0"
#endif

/* The pack's unprivileged user (docs/protocol.md). */
#define SANDBOX_UID 1000
#define SANDBOX_GID 1000

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: emberd-init                      (as PID 1 inside an emberd guest)\n"
		"       emberd-init --agent-only (--listen-unix PATH | --channel-fd N)\n"
		"                   [--exec-uid UID --exec-gid GID] [--work-dir DIR]\n"
		"\n"
		"The guest init of emberd: as PID 1 it mounts the language pack as an overlay root,\n"
		"switches into it and serves the host<->guest protocol (docs/protocol.md) on the\n"
		"virtio-serial port org.emberd.agent and on vsock port 52.\n"
		"\n"
		"  --agent-only        skip the boot steps; serve the protocol on this host (tests)\n"
		"  --listen-unix PATH  serve one connection at a time on a Unix socket (a new\n"
		"                      connection replaces the current session)\n"
		"  --channel-fd N      serve an inherited, connected fd; exit when it closes\n"
		"  --exec-uid UID      run execs as this user (PID 1 default: %d; agent-only\n"
		"  --exec-gid GID      default: unchanged) and group\n"
		"  --work-dir DIR      agent-only: execs' cwd and HOME, code files under\n"
		"                      DIR/.emberd-exec (default: a new /tmp/emberd-init.XXXXXX)\n"
		"  --help, --version\n",
		SANDBOX_UID);
}

static int parse_id(const char *text, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > 0xfffffffeUL)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Execs get fds 0-2 by dup2 from pipes: the agent's own 0-2 must be taken, or a pipe could land
 * there (the kernel leaves them closed when the initramfs has no /dev/console). */
static void ensure_std_fds(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int nfd = open("/dev/null", O_RDWR);

			if (nfd >= 0 && nfd != fd) {
				dup2(nfd, fd);
				close(nfd);
			}
		}
	}
}

static void __attribute__((noreturn)) run_pid1(unsigned uid, unsigned gid)
{
	struct ember_error *err = NULL;
	struct guest_agent_config cfg = {
		.pid1 = true,
		.channel_fd = -1,
		.exec = {
			.code_root = "/run/emberd/exec",
			.cwd = "/home/sandbox",
			.home = "/home/sandbox",
			.change_ids = true,
			.uid = uid,
			.gid = gid,
		},
	};

	if (guest_boot(&err) < 0) {
		guest_log_error(&err, "boot failed");
		guest_power_off();
	}
	if (guest_cgroup_setup(GUEST_CGROUP_ROOT))
		cfg.exec.cgroup_root = GUEST_CGROUP_ROOT;
	ensure_std_fds();
	guest_log("boot done, starting the agent");
	if (guest_agent_run(&cfg, &err) < 0)
		guest_log_error(&err, "agent failed");
	guest_power_off();
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "agent-only", no_argument, NULL, 'a' },
		{ "listen-unix", required_argument, NULL, 'l' },
		{ "channel-fd", required_argument, NULL, 'c' },
		{ "exec-uid", required_argument, NULL, 'u' },
		{ "exec-gid", required_argument, NULL, 'g' },
		{ "work-dir", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct guest_agent_config cfg = { .channel_fd = -1 };
	struct ember_error *err = NULL;
	bool agent_only = false, have_uid = false, have_gid = false, made_work_dir = false;
	unsigned uid = SANDBOX_UID, gid = SANDBOX_GID, fd_num;
	char work_dir[PATH_MAX] = "", code_root[PATH_MAX + 16];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			agent_only = true;
			break;
		case 'l':
			cfg.listen_unix = optarg;
			break;
		case 'c':
			if (parse_id(optarg, &fd_num) < 0 || fd_num > INT_MAX) {
				fprintf(stderr, "emberd-init: bad --channel-fd `%s`\n", optarg);
				return 2;
			}
			cfg.channel_fd = (int)fd_num;
			break;
		case 'u':
		case 'g':
			if (parse_id(optarg, opt == 'u' ? &uid : &gid) < 0) {
				fprintf(stderr, "emberd-init: bad --exec-%s `%s`\n",
					opt == 'u' ? "uid" : "gid", optarg);
				return 2;
			}
			*(opt == 'u' ? &have_uid : &have_gid) = true;
			break;
		case 'w':
			if (snprintf(work_dir, sizeof(work_dir), "%s", optarg) >=
			    (int)sizeof(work_dir)) {
				fprintf(stderr, "emberd-init: --work-dir too long\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("emberd-init %s\n", EMBER_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!agent_only) {
		if (getpid() != 1) {
			fprintf(stderr, "emberd-init: not PID 1; use --agent-only to run the agent "
				"on this host (see --help)\n");
			return 2;
		}
		ensure_std_fds();
		run_pid1(uid, gid);
	}

	if ((cfg.listen_unix == NULL) == (cfg.channel_fd < 0)) {
		fprintf(stderr, "emberd-init: --agent-only needs exactly one of --listen-unix and "
			"--channel-fd\n");
		return 2;
	}
	ensure_std_fds();
	if (work_dir[0] == '\0') {
		strcpy(work_dir, "/tmp/emberd-init.XXXXXX");
		if (mkdtemp(work_dir) == NULL || chmod(work_dir, 0755) < 0) {
			fprintf(stderr, "emberd-init: create a work directory: %s\n",
				strerror(errno));
			return 1;
		}
		made_work_dir = true;
	}
	snprintf(code_root, sizeof(code_root), "%s/.emberd-exec", work_dir);
	if ((mkdir(code_root, 0711) < 0 && errno != EEXIST) || chmod(code_root, 0711) < 0) {
		fprintf(stderr, "emberd-init: create `%s`: %s\n", code_root, strerror(errno));
		return 1;
	}
	cfg.exec.code_root = code_root;
	cfg.exec.cwd = work_dir;
	cfg.exec.home = work_dir;
	cfg.exec.change_ids = have_uid || have_gid;
	cfg.exec.uid = have_uid ? uid : getuid();
	cfg.exec.gid = have_gid ? gid : getgid();
	ret = guest_agent_run(&cfg, &err);
	if (ret < 0)
		fprintf(stderr, "emberd-init: %s\n", err->message);
	ember_error_free(&err);
	rmdir(code_root);
	if (made_work_dir)
		rmdir(work_dir);
	return ret < 0 ? 1 : 0;
}
