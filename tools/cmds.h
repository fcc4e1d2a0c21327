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
int cmd_ls(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Print "shmq VERSION" for --version; returns EXIT_OK. */
int cmd_version(void);

struct shmq_config;

/*
 * create's geometry options, shared with put --create: getopt_long()
 * values CREATE_OPT + the letter that parse_create_opt() takes ('s' for
 * --size ...), so that they never collide with a command's own letters.
 */
#define CREATE_OPT 0x100
#define CREATE_LONGOPTS							\
	{ "size", required_argument, NULL, CREATE_OPT + 's' },		\
	{ "max-message", required_argument, NULL, CREATE_OPT + 'm' },	\
	{ "slots", required_argument, NULL, CREATE_OPT + 'n' },		\
	{ "mode", required_argument, NULL, CREATE_OPT + 'o' },		\
	{ "when-full", required_argument, NULL, CREATE_OPT + 'w' },	\
	{ "evict-after", required_argument, NULL, CREATE_OPT + 'e' },	\
	{ "checksum", required_argument, NULL, CREATE_OPT + 'c' }

/* One of create's options (its letter, as above) into CFG; 0 or -EINVAL. */
int parse_create_opt(int c, struct shmq_config *cfg);

/*
 * Take exactly one positional PATH left after getopt; report and return
 * NULL when there is none or more than one.
 */
const char *one_path(int argc, char **argv, int optind_after);

#endif /* SHMQ_TOOLS_CMDS_H */
