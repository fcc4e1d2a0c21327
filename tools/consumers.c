/* SPDX-License-Identifier: MIT */
/*
 * shmq policy and shmq drop: what happens to consumers that hold the
 * producer back. policy shows or changes the queue's eviction delay; drop
 * removes a dead named consumer or group that would otherwise hold the
 * ring for ever.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <shmq.h>

#include "cmds.h"
#include "common.h"

static const char policy_usage[] =
"Usage: shmq policy PATH [--evict-after SECONDS|never] [--any-owner]\n"
"Show the queue's policies for consumers that hold the producer back, or\n"
"change the eviction delay. With --evict-after, a broadcast consumer or\n"
"group that makes no progress for SECONDS while the producer waits on it\n"
"is evicted: the producer goes on, and the consumer gets 'evicted'\n"
"(status 6 for get) on its next call. never (or 0): wait for ever, lose\n"
"nothing (the default). --any-owner: change the policy of a queue file\n"
"that another user owns (showing it accepts any owner already).\n";

static void print_policy(const struct shmq_stat *st)
{
	printf("when full    %s\n", st->when_full ? "overwrite" : "block");
	if (st->evict_after_ms)
		printf("evict after  %" PRIu32 ".%03" PRIu32 " s\n",
		       st->evict_after_ms / 1000, st->evict_after_ms % 1000);
	else
		printf("evict after  never\n");
}

static int show_policy(const char *path)
{
	struct shmq_stat *st;
	struct shmq *q;
	int r;

	/* Looking never writes: another user's queue may be inspected. */
	r = tool_open(path, SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER, &q);
	if (r)
		return r;
	r = shmq_stat_get(q, &st);
	if (r < 0) {
		r = tool_fail(path, "cannot read queue state", r);
	} else {
		print_policy(st);
		shmq_stat_free(st);
		r = EXIT_OK;
	}
	shmq_close(q);
	return r;
}

int cmd_policy(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "evict-after", required_argument, NULL, 'e' },
		TOOL_OPT_ANY_OWNER,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path;
	struct shmq *q;
	uint32_t ms = 0;
	int c, r, set = 0;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(policy_usage, stdout), EXIT_OK;
		if (c == 'V')
			return cmd_version();
		if (c != 'e')
			return tool_getopt_error(c, argv);
		if (parse_evict_after("--evict-after", optarg, &ms))
			return EXIT_USAGE;
		set = 1;
	}
	path = one_path(argc, argv, optind);
	if (!path)
		return EXIT_USAGE;
	if (!set)
		return show_policy(path);
	r = tool_open(path, 0, &q);
	if (r)
		return r;
	/* The producer reads the delay each time it waits: no restart. */
	r = shmq_set_evict_after(q, ms);
	if (r < 0)
		r = tool_fail(path, "cannot change the policy", r);
	shmq_close(q);
	return r;
}

static const char drop_usage[] =
"Usage: shmq drop PATH NAME [--any-owner]\n"
"Remove the named consumer or group NAME from the queue PATH, so that it\n"
"stops holding the producer back; its position is forgotten (a consumer\n"
"of that name starts afresh). Refuses with status 8 while NAME is\n"
"attached and alive (for a group: while a member is). --any-owner: PATH\n"
"may belong to another user.\n";

int cmd_drop(int argc, char **argv)
{
	static const struct option longopts[] = {
		TOOL_OPT_ANY_OWNER,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path, *name;
	struct shmq *q;
	int c, r;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(drop_usage, stdout), EXIT_OK;
		if (c == 'V')
			return cmd_version();
		return tool_getopt_error(c, argv);
	}
	if (argc - optind < 2)
		return tool_usage_error("expected PATH and NAME");
	if (argc - optind > 2)
		return tool_usage_error("unexpected argument '%s'",
					argv[optind + 2]);
	path = argv[optind];
	name = argv[optind + 1];
	if (tool_check_name("NAME", name))
		return EXIT_USAGE;
	r = tool_open(path, 0, &q);
	if (r)
		return r;
	r = shmq_consumer_remove(q, name);
	if (r == -EBUSY) {
		/* The library's detail names the pid that is still alive. */
		tool_msg("%s: cannot drop %s: it is alive (%s); stop it first",
			 path, name, shmq_errdetail());
		r = EXIT_BUSY;
	} else if (r == -ENOENT) {
		tool_msg("%s: cannot drop %s: no named consumer or group of "
			 "that name", path, name);
		r = EXIT_ERROR;
	} else if (r < 0) {
		r = tool_fail(path, "cannot drop consumer", r);
	}
	shmq_close(q);
	return r;
}
