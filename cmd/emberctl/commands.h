/* commands.h - what each emberctl command does, once its flags are parsed into the ctl.
 * Called by main through the command table (cli.c); argv holds the command's operands only.
 * Each returns the process's exit status; none parses flags or exits by itself. */
#ifndef EMBERCTL_COMMANDS_H
#define EMBERCTL_COMMANDS_H

#include "ctl.h"

int cmd_create(struct ctl *c, int argc, char **argv);
int cmd_exec(struct ctl *c, int argc, char **argv);
int cmd_ls(struct ctl *c, int argc, char **argv);
int cmd_inspect(struct ctl *c, int argc, char **argv);
int cmd_rm(struct ctl *c, int argc, char **argv);
int cmd_timeout(struct ctl *c, int argc, char **argv);
/* snapshots.c: pause, resume, fork and snapshots (docs/snapshots.md "Pause, fork and
 * snapshots"). */
int cmd_pause(struct ctl *c, int argc, char **argv);
int cmd_resume(struct ctl *c, int argc, char **argv);
int cmd_fork(struct ctl *c, int argc, char **argv);
int cmd_snapshot(struct ctl *c, int argc, char **argv);
int cmd_snapshots(struct ctl *c, int argc, char **argv);
int cmd_rm_snapshot(struct ctl *c, int argc, char **argv);
int cmd_network(struct ctl *c, int argc, char **argv);
int cmd_packs(struct ctl *c, int argc, char **argv);
int cmd_reload(struct ctl *c, int argc, char **argv);
int cmd_health(struct ctl *c, int argc, char **argv);
/* procs.c: background processes. */
int cmd_run(struct ctl *c, int argc, char **argv);
int cmd_logs(struct ctl *c, int argc, char **argv);
int cmd_kill(struct ctl *c, int argc, char **argv);
/* selftest.c: create -> inspect -> exec -> delete, with an assertion on each answer. */
int cmd_test(struct ctl *c, int argc, char **argv);
/* mcp.c: the MCP stdio transport, bridged to POST /mcp. */
int cmd_mcp(struct ctl *c, int argc, char **argv);

#endif
