/* SPDX-License-Identifier: MIT */
/*
 * shmq: the command-line front end. This file dispatches to the
 * subcommands and holds the small ones (create, sync, rm); put, get and
 * stat have a file each.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmq.h>

#include "cmds.h"
#include "common.h"

static const char usage_text[] =
"Usage: shmq COMMAND PATH [OPTIONS]\n"
"A message queue that lives in a file (see shmq(1)).\n"
"\n"
"Commands:\n"
"  create PATH [--size BYTES] [--max-message BYTES] [--slots N]\n"
"              [--mode OCTAL] [--when-full block|overwrite]\n"
"              [--evict-after SECONDS|never] [--checksum full|header]\n"
"  put PATH [--create [GEOMETRY]] [-l | -0] [--sync none|batch|every]\n"
"           [--timeout SECONDS] [--wait] [--progress] [--stats]\n"
"  get PATH [--create] [--name NAME | --group NAME | --observe]\n"
"           [--from oldest|latest] [-l | -0] [-n N] [-f]\n"
"           [--timeout SECONDS] [--durable] [--progress] [--stats]\n"
"  stat PATH [--json | --prometheus] [--watch SECONDS]\n"
"  ls [DIR]\n"
"  policy PATH [--evict-after SECONDS|never]\n"
"  drop PATH NAME\n"
"  sync PATH\n"
"  rm PATH [--force]\n"
"  bench [DIR] [--size BYTES[,BYTES...]] [--consumers N | --group N]\n"
"        [--seconds S] [--json] [--progress]\n"
"\n"
"Every command that attaches takes --any-owner: accept a queue file that\n"
"another user owns (shared through its group; trust that user first).\n"
"Sizes accept K, M and G (powers of 1024). 'shmq COMMAND --help' (-h)\n"
"shows one command. Exit statuses: 0 ok, 1 error, 2 usage, 3 producer died,\n"
"4 timeout, 5 overrun, 6 evicted, 7 queue file truncated,\n"
"8 busy, 9 producer aborted, 141 the other end is gone.\n";

const char *one_path(int argc, char **argv, int optind_after)
{
	if (optind_after >= argc) {
		tool_usage_error("missing PATH");
		return NULL;
	}
	if (optind_after + 1 < argc) {
		tool_usage_error("unexpected argument '%s'",
				 argv[optind_after + 1]);
		return NULL;
	}
	return argv[optind_after];
}

static const char create_usage[] =
"Usage: shmq create PATH [--size BYTES] [--max-message BYTES] [--slots N]\n"
"                        [--mode OCTAL] [--when-full block|overwrite]\n"
"                        [--evict-after SECONDS|never] [--checksum full|header]\n"
"Create the queue file PATH; fails if PATH exists. Defaults: a 1M ring,\n"
"64K max message (at most a quarter of the ring), 64 consumer slots,\n"
"mode 0600 (at most 0664), block when full, never evict. --evict-after:\n"
"a consumer that holds the full ring without progress for SECONDS is\n"
"evicted (it exits with status 6) and the producer goes on; 'shmq\n"
"policy' changes it later.\n"
"--checksum header: record checksums cover headers only (faster; a\n"
"damaged payload is then delivered as it is); full: headers and payloads.\n"
"Default: header on tmpfs (/dev/shm), where nothing survives a power loss\n"
"to be torn; full on a disk filesystem.\n"
"A file larger than the free space of its filesystem is refused; when the\n"
"ring was rounded up or the file takes 1 GiB or more, create says on\n"
"stderr what it allocated.\n";

#define SHMQ_MAX_RING	(1ull << 40)	/* lib/format.h SHMQ_MAX_CAPACITY */

static int parse_mode(const char *s, uint32_t *mode)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 8);
	/* 0 would silently mean the default 0600 (issue 10, as --size 0). */
	if (!*s || *s < '0' || *s > '7' || *end || errno || v > 07777 || v == 0) {
		tool_usage_error("--mode: invalid value '%s': not an octal mode",
				 s);
		return -EINVAL;
	}
	*mode = v;
	return 0;
}

int parse_create_opt(int c, struct shmq_config *cfg)
{
	uint64_t v;

	switch (c) {
	case 's':
		if (parse_size("--size", optarg, &cfg->capacity))
			return -EINVAL;
		/* 0 would silently mean the default (issue 10). */
		if (cfg->capacity == 0)
			return tool_usage_error("--size: invalid value '%s': "
						"not a positive size", optarg),
			       -EINVAL;
		if (cfg->capacity > SHMQ_MAX_RING)
			return tool_usage_error("--size: invalid value '%s': "
						"at most 1T", optarg),
			       -EINVAL;
		return 0;
	case 'm':
		if (parse_size("--max-message", optarg, &v))
			return -EINVAL;
		if (v == 0 || v > UINT32_MAX)
			return tool_usage_error("--max-message: out of range"),
			       -EINVAL;
		cfg->max_message = v;
		return 0;
	case 'n':
		if (parse_u32("--slots", optarg, &cfg->slots))
			return -EINVAL;
		if (cfg->slots == 0 || cfg->slots > SHMQ_MAX_SLOTS)
			return tool_usage_error("--slots: invalid value '%s': "
						"1 to %u", optarg,
						SHMQ_MAX_SLOTS), -EINVAL;
		return 0;
	case 'o':
		return parse_mode(optarg, &cfg->mode);
	case 'w':
		if (!strcmp(optarg, "block"))
			cfg->when_full = SHMQ_WHEN_FULL_BLOCK;
		else if (!strcmp(optarg, "overwrite"))
			cfg->when_full = SHMQ_WHEN_FULL_OVERWRITE;
		else
			return tool_usage_error("--when-full: expected block or "
						"overwrite, not '%s'", optarg),
			       -EINVAL;
		return 0;
	case 'e':
		return parse_evict_after("--evict-after", optarg,
					 &cfg->evict_after_ms);
	case 'c':
		if (!strcmp(optarg, "full"))
			cfg->checksum = SHMQ_CHECKSUM_FULL;
		else if (!strcmp(optarg, "header"))
			cfg->checksum = SHMQ_CHECKSUM_HEADER;
		else
			return tool_usage_error("--checksum: expected full or "
						"header, not '%s'", optarg),
			       -EINVAL;
		return 0;
	}
	return -EINVAL;
}

/* BYTES in the largest binary unit that keeps it at 1 or more. */
static const char *human(uint64_t bytes, char *buf, size_t cap)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	unsigned int u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " bytes", bytes);
	else
		snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

/*
 * Say what create made when it is not what one would guess (issue 10): a
 * ring rounded up to a power of two, or a file of 1 GiB or more, which
 * posix_fallocate() reserved on disk (or in memory on tmpfs) at once.
 */
static void report_created(const char *path, uint64_t asked)
{
	struct shmq_info info = { 0 };
	char ring[32], file[32], disk[32];
	struct shmq *q;
	struct stat st;

	if (tool_try_open(path, path, SHMQ_OPEN_RDONLY, &q) < 0)
		return;
	shmq_info(q, &info, sizeof(info));
	shmq_close(q);
	if (stat(path, &st) < 0)
		return;
	if ((!asked || info.capacity == asked) && info.file_size < (1ull << 30))
		return;
	human(info.capacity, ring, sizeof(ring));
	human(info.file_size, file, sizeof(file));
	human((uint64_t)st.st_blocks * 512, disk, sizeof(disk));
	if (asked && info.capacity != asked)
		tool_msg("%s: a %s ring (rounded up from %" PRIu64 " bytes to a "
			 "power of two); the file is %s, %s allocated", path,
			 ring, asked, file, disk);
	else
		tool_msg("%s: a %s ring; the file is %s, %s allocated", path,
			 ring, file, disk);
}

/* create on a name that exists: say what is there (issue 10). */
static int create_exists(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		tool_msg("%s: cannot create queue: it is a directory", path);
	else
		tool_msg("%s: cannot create queue: the file exists ('shmq rm' "
			 "removes a queue)", path);
	return EXIT_ERROR;
}

int cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "max-message", required_argument, NULL, 'm' },
		{ "slots", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, 'o' },
		{ "when-full", required_argument, NULL, 'w' },
		{ "evict-after", required_argument, NULL, 'e' },
		{ "checksum", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct shmq_config cfg = { 0 };
	const char *path;
	struct stat st;
	int c, r;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h')
			return fputs(create_usage, stdout), EXIT_OK;
		if (c == 'V')
			return cmd_version();
		if (c == '?' || c == ':')
			return tool_getopt_error(c, argv);
		if (parse_create_opt(c, &cfg))
			return EXIT_USAGE;
	}
	path = one_path(argc, argv, optind);
	if (!path)
		return EXIT_USAGE;
	/* Checked again by the library's O_EXCL: this only words it. */
	if (lstat(path, &st) == 0)
		return create_exists(path);
	r = tool_create(path, &cfg);
	if (r)
		return r;
	report_created(path, cfg.capacity);
	return EXIT_OK;
}

static const char sync_usage[] =
"Usage: shmq sync PATH [--any-owner]\n"
"Make every message committed to PATH so far durable on disk. Needs write\n"
"access to PATH. --any-owner: PATH may belong to another user.\n";

int cmd_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		TOOL_OPT_ANY_OWNER,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct shmq *q;
	const char *path;
	int c, r;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(sync_usage, stdout), EXIT_OK;
		if (c == 'V')
			return cmd_version();
		return tool_getopt_error(c, argv);
	}
	path = one_path(argc, argv, optind);
	if (!path)
		return EXIT_USAGE;
	/*
	 * Never with a read-only handle: Linux treats a shared mapping of a
	 * file opened read-only like a private one for msync, which then
	 * returns 0 and writes nothing. The check here only chooses the
	 * message; the read-write open below is what enforces it.
	 */
	if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) < 0 &&
	    (errno == EACCES || errno == EPERM || errno == EROFS)) {
		tool_msg("%s: sync needs write access: %s", path,
			 strerror(errno));
		return EXIT_ERROR;
	}
	r = tool_open(path, 0, &q);
	if (r)
		return r;
	r = shmq_sync(q);
	if (r < 0)
		r = tool_fail(path, "sync failed", r);
	shmq_close(q);
	return r;
}

static const char rm_usage[] =
"Usage: shmq rm PATH [--force] [--any-owner]\n"
"Remove the queue file PATH. Refuses while a live producer or consumer\n"
"is attached, unless --force is given; --force also removes a damaged\n"
"queue (truncated, corrupt, or of another format version). A file that\n"
"is no queue at all is never removed: use rm(1). The directory of PATH\n"
"must not be a symbolic link. --any-owner: PATH may belong to another\n"
"user (the directory's permissions decide whether it can be removed).\n";

/* Who is still attached and alive; the message names the producer's pid. */
static int queue_in_use(const char *path, struct shmq *q, int force,
			int *busy)
{
	struct shmq_stat *st;
	uint32_t live = 0;
	int r;

	r = shmq_stat_get(q, &st);
	if (r < 0)
		return tool_fail(path, "cannot read queue state", r);
	for (uint32_t i = 0; i < st->nconsumers; i++)
		live += !!st->consumers[i].alive;
	*busy = st->producer_state == SHMQ_PRODUCER_OPEN || live;
	if (*busy && !force && st->producer_state == SHMQ_PRODUCER_OPEN)
		tool_msg("%s: queue in use: producer pid %u, %u live consumer%s "
			 "(use --force)", path, st->producer_pid, live,
			 live == 1 ? "" : "s");
	else if (*busy && !force)
		tool_msg("%s: queue in use: %u live consumer%s (use --force)",
			 path, live, live == 1 ? "" : "s");
	shmq_stat_free(st);
	return 0;
}

/*
 * Open the directory of PATH as an O_PATH descriptor and find its last
 * component, so that rm checks and removes a name in one directory that
 * cannot be swapped under it (a rename or a symlink put in its place
 * between the check and the unlink). The directory's own name must not
 * be a symbolic link. Returns the descriptor, or -1 after reporting.
 */
static int open_parent(const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	struct stat st;
	char *dir;
	size_t n;
	int dfd;

	*base = slash ? slash + 1 : path;
	if (!**base || !strcmp(*base, ".") || !strcmp(*base, "..")) {
		tool_msg("%s: not a queue file name", path);
		return -1;
	}
	/* "a//q" names the directory "a": no trailing slash, which follows. */
	for (n = slash ? (size_t)(slash - path) : 0; n > 0 && path[n - 1] == '/';
	     n--)
		;
	dir = n ? strndup(path, n) : strdup(slash ? "/" : ".");
	if (!dir) {
		tool_msg("out of memory");
		return -1;
	}
	dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* O_NOFOLLOW|O_DIRECTORY on a symlink fails with ENOTDIR or ELOOP. */
	if (dfd < 0 && (errno == ELOOP || errno == ENOTDIR) &&
	    lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
		tool_msg("%s: the directory %s is a symbolic link; name the "
			 "directory it points to", path, dir);
	else if (dfd < 0)
		tool_msg("%s: cannot open its directory: %s", path,
			 strerror(errno));
	free(dir);
	return dfd;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * BASE failed validation with R. A file with our magic that is damaged
 * (truncated, corrupt, never finished: -EBADMSG) or of another format
 * (-EPROTO) is a queue nobody can use: --force removes it without the
 * liveness check, which needs a valid header. Anything else is refused,
 * a file that is no queue with a pointer to rm(1) (issue 10).
 */
static int rm_unopenable(const char *path, int r, int force, int *remove)
{
	const char *detail = shmq_errdetail();

	*remove = 0;
	if (r == SHMQ_ENOTQUEUE) {
		tool_msg("%s: not removed: not a queue file%s%s; shmq rm removes "
			 "only queues (use rm(1))", path, detail ? ": " : "",
			 detail ? detail : "");
		return EXIT_ERROR;
	}
	if ((r == -EBADMSG || r == -EPROTO) && force) {
		*remove = 1;
		return 0;
	}
	if (r == -EBADMSG || r == -EPROTO) {
		tool_msg("%s: not removed: %s%s%s; 'shmq rm --force' removes a "
			 "damaged queue", path, shmq_strerror(r),
			 detail ? ": " : "", detail ? detail : "");
		return EXIT_ERROR;
	}
	return tool_fail(path, "cannot open queue", r);
}

/*
 * Check and remove BASE inside the directory DFD. The queue is validated
 * through the same directory (fchdir, then a one-component path) and the
 * name is removed there only if it is still the file it was before the
 * validation. A rename inside that directory can still swap the name
 * between the last look and unlinkat(); only someone who may rename or
 * remove entries of the directory anyway can do it, and in a sticky
 * directory not with another user's file.
 */
static int rm_at(const char *path, int dfd, const char *base, int force)
{
	struct stat before, after;
	struct shmq *q;
	int r, busy = 0;

	if (fstatat(dfd, base, &before, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			tool_msg("%s: no such queue", path);
		else
			tool_msg("%s: cannot remove: %s", path, strerror(errno));
		return EXIT_ERROR;
	}
	if (fchdir(dfd) < 0) {
		tool_msg("%s: cannot enter its directory: %s", path,
			 strerror(errno));
		return EXIT_ERROR;
	}
	/* Validating first means rm never deletes a file that is no queue. */
	r = tool_try_open(base, path, SHMQ_OPEN_RDONLY, &q);
	if (r == -ENOENT) {
		tool_msg("%s: no such queue", path);
		return EXIT_ERROR;
	}
	if (r < 0) {
		int damaged;

		/* --force on a damaged queue goes on to the removal. */
		r = rm_unopenable(path, r, force, &damaged);
		if (!damaged)
			return r;
	} else {
		r = queue_in_use(path, q, force, &busy);
		shmq_close(q);
		if (r)
			return r;
	}
	if (busy && !force)
		return EXIT_BUSY;
	if (fstatat(dfd, base, &after, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !same_file(&before, &after)) {
		tool_msg("%s: the file changed while rm checked it; nothing "
			 "removed", path);
		return EXIT_ERROR;
	}
	if (unlinkat(dfd, base, 0) < 0) {
		tool_msg("%s: cannot remove: %s", path, strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

int cmd_rm(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		TOOL_OPT_ANY_OWNER,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path, *base;
	int c, r, dfd, force = 0;

	while ((c = getopt_long(argc, argv, ":fh", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(rm_usage, stdout), EXIT_OK;
		if (c == 'V')
			return cmd_version();
		if (c != 'f')
			return tool_getopt_error(c, argv);
		force = 1;
	}
	path = one_path(argc, argv, optind);
	if (!path)
		return EXIT_USAGE;
	dfd = open_parent(path, &base);
	if (dfd < 0)
		return EXIT_ERROR;
	r = rm_at(path, dfd, base, force);
	close(dfd);
	return r;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	unsigned int traits;	/* TOOL_NEEDS_*, TOOL_TAKES_CREATE */
} commands[] = {
	{ "create", cmd_create, 0 },
	{ "put", cmd_put, TOOL_NEEDS_STDIN | TOOL_TAKES_CREATE },
	{ "get", cmd_get, TOOL_NEEDS_STDOUT | TOOL_TAKES_CREATE },
	{ "stat", cmd_stat, TOOL_NEEDS_STDOUT },
	{ "policy", cmd_policy, 0 },
	{ "drop", cmd_drop, 0 },
	{ "sync", cmd_sync, 0 },
	{ "rm", cmd_rm, 0 },
	{ "ls", cmd_ls, TOOL_NEEDS_STDOUT },
	{ "bench", cmd_bench, TOOL_NEEDS_STDOUT },
};

int cmd_version(void)
{
	printf("shmq %s\n", SHMQ_VERSION_STRING);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static char name[64];
	int r;

	tool_init("shmq");
	if (argc < 2)
		return tool_usage_error("missing COMMAND");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return tool_flush_stdout(fputs(usage_text, stdout) == EOF ?
					 EXIT_ERROR : EXIT_OK);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return tool_flush_stdout(printf("shmq %s\n", SHMQ_VERSION_STRING) < 0 ?
					 EXIT_ERROR : EXIT_OK);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		snprintf(name, sizeof(name), "shmq %s", commands[i].name);
		tool_init(name);
		tool_traits(commands[i].traits);
		/* Subcommands parse argv[1..] as their own command line. */
		r = commands[i].fn(argc - 1, argv + 1);
		return tool_flush_stdout(r);
	}
	return tool_usage_error("unknown command '%s'", argv[1]);
}
