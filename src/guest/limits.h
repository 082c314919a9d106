/* limits.h - every bound the guest agent enforces on its own, each with the reason for its value.
 * Included by the src/guest modules; the wire protocol's own bounds live in proto/ instead.
 * Must never hold state or code: constants only, so a reviewer can audit all limits in one place. */
#ifndef EMBER_GUEST_LIMITS_H
#define EMBER_GUEST_LIMITS_H

/* docs/protocol.md: at most 64 execs run at once per guest (not per session). */
#define GUEST_MAX_EXECS 64u

/* docs/protocol.md "Files": at most 16 file transfers (reads and writes) at once per guest. Each
 * holds two fds and a read at most one 64 KiB chunk, so the agent's memory for them is bounded. */
#define GUEST_MAX_TRANSFERS 16u
/* A recursive remove descends this deep at most: each level holds an fd and a stack frame of the
 * agent (PID 1), so a program cannot exhaust either by nesting directories. */
#define GUEST_FS_REMOVE_DEPTH_MAX 128u

/* Outgoing queue per session. Above the high-water mark the agent stops reading exec pipes and
 * the channel (backpressure on both producers); below the low-water mark it resumes. The hard
 * cap is never reached by a well-behaved loop (one 64 KiB chunk or one 1 MiB PS_REPLY past the
 * high-water mark at most); hitting it ends the session instead of growing memory. */
#define GUEST_OUTQ_HIGH_WATER (1024u * 1024u)
#define GUEST_OUTQ_LOW_WATER (256u * 1024u)
#define GUEST_OUTQ_MAX (4u * 1024u * 1024u)

/* Stdin the host may have in flight beyond what the program consumed (per exec). */
#define GUEST_STDIN_PENDING_MAX (1024u * 1024u)

/* docs/protocol.md: an exec ends 250 ms after its main process exited even if something it left
 * behind still holds a pipe. While the session is congested the grace is re-checked this often. */
#define GUEST_EXEC_GRACE_MS 250
#define GUEST_EXEC_GRACE_RECHECK_MS 50
/* When the grace ends, what is already in the pipes is still read, up to this much per stream:
 * enough for a full pipe buffer, bounded against a writer that never stops. */
#define GUEST_EXEC_FINAL_DRAIN (256u * 1024u)
/* A context's outcome whose EXIT would not fit one frame loses its rich results, then has its
 * result and exception texts cut to this many bytes (escaped, three of them fit with room). */
#define GUEST_EXIT_TEXT_CUT (16u * 1024u)

/* Resource limits of every exec (RLIMIT_NPROC, which stops fork bombs, comes from the host in
 * each EXEC as max_processes). FSIZE keeps one file from eating the whole overlay tmpfs. */
#define GUEST_RLIMIT_NOFILE 1024
/* User programs run at this niceness, the agent at 0. CFS weights are 1024 (nice 0) against 15
 * (nice 19): the agent keeps ~58% of a vCPU against 49 busy loops, where nice 10 (weight 110)
 * left it ~16% and starting the 50th exec took seconds. (The minimal kernel has no cgroup cpu
 * controller to do this per group.) */
#define GUEST_EXEC_NICE 19
#define GUEST_RLIMIT_FSIZE (256ull * 1024 * 1024)

/* modules.dep comes from the image: the trimmed file is < 2 KiB and a full Debian one ~400 KiB
 * with ~4000 modules. The guest loads a handful; anything near these caps is a broken image. */
#define GUEST_MODULES_DEP_MAX_BYTES (256u * 1024u)
#define GUEST_MODULES_DEP_MAX_LINE 4096u
#define GUEST_MODULES_MAX 256u
#define GUEST_MODULE_PATH_MAX 255u

/* The pack disk normally appears within ~100 ms of virtio_blk loading; 10 s covers a slow TCG
 * boot on a loaded host without letting a missing disk hang the VM. */
#define GUEST_DISK_WAIT_MS 10000
#define GUEST_DISK_POLL_MS 5

/* Overlay upper layer (tmpfs) size, from emberd.overlay_mib= on the kernel command line. */
#define GUEST_OVERLAY_MIB_DEFAULT 128u
#define GUEST_OVERLAY_MIB_MIN 8u
#define GUEST_OVERLAY_MIB_MAX 65536u
#define GUEST_SHM_MIB 64u

/* /proc/cmdline is at most a few KiB (COMMAND_LINE_SIZE is 2048 on x86). */
#define GUEST_CMDLINE_MAX 4096u

/* virtio-serial: reopen the port this long after the host went away (a closed port reports
 * POLLHUP at once, so reopening immediately would spin). Short, because a clone restored from a
 * template resumes in exactly this state and its first host is already waiting: the interval is
 * paid on every clone's handshake. ~200 cheap wakeups a second while no host is connected. A port not yet present (ports are
 * added asynchronously after the driver loads) is looked for every RESCAN ms during the first
 * RESCAN_FAST_FOR ms of the agent (the host waits on it for READY), then every RESCAN_SLOW ms
 * (a Firecracker guest has no port at all; a readdir per second costs nothing). */
#define GUEST_PORT_REOPEN_MS 5
#define GUEST_PORT_RESCAN_MS 10
#define GUEST_PORT_RESCAN_FAST_FOR_MS 10000
#define GUEST_PORT_RESCAN_SLOW_MS 1000
/* No port this long after the agent started: say on the console what there is instead. */
#define GUEST_PORT_LATE_MS 3000

/* docs/protocol.md: the Firecracker transport. A privileged port (< 1024): binding it needs
 * CAP_NET_BIND_SERVICE, so code running as the sandbox user cannot listen in the agent's place
 * (e.g. after making the agent's listener fail). */
#define GUEST_VSOCK_PORT 52u

/* /proc/<pid>/status is ~1.5 KiB; stat is < 1 KiB. */
#define GUEST_PROC_FILE_MAX 8192u

/* The fork server (guest/forkserver.c). Starting it costs one interpreter start plus its
 * imports (~0.3 s under TCG): ready within 10 s or it is given up (a loaded TCG host). A reply is
 * one fork and the child's set-up (milliseconds): 3 s covers a host starved by other guests.
 * The agent (PID 1) waits for both, so they are bounds, not expectations. After 3 starts that
 * failed or died, plain execs start python3 the old way for the rest of the agent's life. */
#define GUEST_FORKSERVER_READY_MS 10000
#define GUEST_FORKSERVER_REPLY_MS 3000
#define GUEST_FORKSERVER_STARTS_MAX 3u

#endif
