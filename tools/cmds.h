/* SPDX-License-Identifier: MIT */
/*
 * The subcommands of `shmq`. Each takes the arguments after the command
 * word (argv[0] is the command word) and returns the process exit status.
 */
#ifndef SHMQ_TOOLS_CMDS_H
#define SHMQ_TOOLS_CMDS_H

int cmd_create(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_drop(int argc, char **argv);

/*
 * Take exactly one positional PATH left after getopt; report and return
 * NULL when there is none or more than one.
 */
const char *one_path(int argc, char **argv, int optind_after);

#endif /* SHMQ_TOOLS_CMDS_H */
