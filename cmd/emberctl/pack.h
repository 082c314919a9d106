/* pack.h - `emberctl pack import|list|remove`: user packs from OCI images (docs/packs.md).
 * Called by main through the command table (cli.c). Only checks the flags' shape and runs
 * rootfs/lib/packctl.py, which does the work; never writes an image or the catalog itself. */
#ifndef EMBERCTL_PACK_H
#define EMBERCTL_PACK_H

#include "ctl.h"

/* argv[0] is the subcommand; returns the exit status (2 for bad usage). */
int cmd_pack(struct ctl *c, int argc, char **argv);

#endif
