/* files.h - emberctl's file commands: cp (either way, streamed) and ls ID [PATH].
 * Called through the command table (cli.c) and by cmd_ls when it is given a sandbox id. */
#ifndef EMBERCTL_FILES_H
#define EMBERCTL_FILES_H

#include "ctl.h"

/* cp LOCAL ID:PATH or cp ID:PATH LOCAL ("-": stdin / stdout). */
int cmd_cp(struct ctl *c, int argc, char **argv);
/* A directory's entries, or one entry (GET /fs). */
int cmd_ls_files(struct ctl *c, const char *id, const char *path);

#endif
