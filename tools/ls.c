/* SPDX-License-Identifier: MIT */
/*
 * shmq ls: the queues in a directory, one line each, with their producer
 * and consumers. Everything else in the directory is skipped without
 * being waited on: FIFOs, devices, sockets, directories and symbolic
 * links are never opened, and a file is attached only when its header
 * already says "queue, ready" (a half-created queue would make
 * shmq_open() wait up to two seconds for its creator).
 */
#include <dirent.h>
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

#include "format.h"	/* the magic and "ready" words: see is_ready_queue() */

#include "cmds.h"
#include "common.h"
#include "progress.h"

static const char ls_usage[] =
"Usage: shmq ls [DIR]\n"
"List the queues in DIR (default: the current directory): producer state\n"
"and pid, consumers (live of all; a group counts once), fill and ring\n"
"size, name. Files that are not ready queues (FIFOs, devices,\n"
"directories, other files, queues still being created) are skipped\n"
"without waiting on them.\n";

/*
 * Whether the regular file NAME in DFD starts with a queue header that
 * its creator has finished. Opened O_NONBLOCK (should it have become a
 * FIFO since the fstatat: an open never waits for a writer) and
 * O_NOFOLLOW, checked to be a regular file again with fstat, then two
 * words read with pread: no mapping, so nothing can fault. The words are
 * untrusted: they only decide whether shmq_open(), which validates the
 * whole header, is worth calling. A queue of the other byte order passes
 * too, so that shmq_open() says what it is.
 */
static int is_ready_queue(int dfd, const char *name)
{
	struct shmq_hdr h;
	struct stat st;
	ssize_t n;
	int fd, ok;

	fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY |
		    O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < (off_t)offsetof(struct shmq_hdr, ready) +
			 (off_t)sizeof(h.ready)) {
		close(fd);
		return 0;
	}
	n = pread(fd, &h, offsetof(struct shmq_hdr, ready) + sizeof(h.ready),
		  0);
	close(fd);
	if (n != (ssize_t)(offsetof(struct shmq_hdr, ready) + sizeof(h.ready)))
		return 0;
	ok = (h.magic == SHMQ_MAGIC && h.ready == SHMQ_READY) ||
	     (h.magic == SHMQ_MAGIC_SWAPPED &&
	      h.ready == __builtin_bswap32(SHMQ_READY));
	return ok;
}

static const char *producer_state_name(uint32_t s)
{
	static const char *const names[] = { "none", "open", "closed", "died",
					     "aborted" };

	return s < 5 ? names[s] : "unknown";
}

static void print_row(const char *name, const struct shmq_stat *st)
{
	uint32_t consumers = 0, live = 0;
	char pid[16], fill[32], ring[32];

	for (uint32_t i = 0; i < st->nconsumers; i++) {
		const struct shmq_consumer_stat *c = &st->consumers[i];

		/* A member is part of its group, which is listed itself. */
		if (c->kind == SHMQ_CONSUMER_MEMBER)
			continue;
		consumers++;
		live += c->alive && !c->evicted;
	}
	if (st->producer_state == SHMQ_PRODUCER_NONE)
		strcpy(pid, "-");
	else
		snprintf(pid, sizeof(pid), "%" PRIu32, st->producer_pid);
	printf("%-8s %7s %5" PRIu32 " %5" PRIu32 " %10s %10s  ",
	       producer_state_name(st->producer_state), pid, live, consumers,
	       fmt_bytes(st->fill_bytes, fill, sizeof(fill)),
	       fmt_bytes(st->capacity, ring, sizeof(ring)));
	/* A file name is anyone's bytes: escaped, as everything we print. */
	tool_fputs_escaped(name, TOOL_ESC_TEXT, stdout);
	putchar('\n');
}

/* List NAME if it is a ready queue; 0, or 1 after reporting a failure. */
static int ls_one(int dfd, const char *dir, const char *name)
{
	struct shmq_stat *st;
	struct stat sb;
	struct shmq *q;
	char *shown;
	int r;

	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(sb.st_mode))
		return 0;
	r = is_ready_queue(dfd, name);
	if (r == -EACCES || r == -EPERM)
		return 0;	/* not ours to read: nothing to say about it */
	if (r <= 0)
		return 0;
	if (asprintf(&shown, "%s/%s", dir, name) < 0)
		return tool_msg("out of memory"), 1;
	/* Relative to DIR, entered with fchdir: it cannot be swapped. */
	r = tool_open_as(name, shown, SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER,
			 &q);
	if (!r) {
		r = shmq_stat_get(q, &st);
		if (r < 0) {
			r = tool_fail(shown, "cannot read queue state", r);
		} else {
			print_row(name, st);
			shmq_stat_free(st);
			r = 0;
		}
		shmq_close(q);
	}
	free(shown);
	return r ? 1 : 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entry names of DFD, sorted; NULL after reporting a failure. */
static char **read_names(int dfd, const char *dir, size_t *count)
{
	char **names = NULL, **grown;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int fd;

	fd = dup(dfd);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		tool_msg("%s: cannot read the directory: %s", dir,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown)
				goto oom;
			names = grown;
		}
		names[n] = strdup(e->d_name);
		if (!names[n])
			goto oom;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	*count = n;
	return names ? names : calloc(1, sizeof(*names));
oom:
	closedir(d);
	while (n)
		free(names[--n]);
	free(names);
	tool_msg("out of memory");
	return NULL;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = ".";
	char **names;
	size_t n = 0;
	int c, dfd, failed = 0;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h')
			return fputs(ls_usage, stdout), EXIT_OK;
		if (c == 'V')
			return cmd_version();
		return tool_getopt_error(c, argv);
	}
	if (optind + 1 < argc)
		return tool_usage_error("unexpected argument '%s'",
					argv[optind + 1]);
	if (optind < argc)
		dir = argv[optind];
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		tool_msg("%s: cannot open the directory: %s", dir,
			 strerror(errno));
		return EXIT_ERROR;
	}
	names = read_names(dfd, dir, &n);
	if (!names || fchdir(dfd) < 0) {
		if (names)
			tool_msg("%s: cannot enter the directory: %s", dir,
				 strerror(errno));
		close(dfd);
		return EXIT_ERROR;
	}
	printf("%-8s %7s %5s %5s %10s %10s  %s\n", "PRODUCER", "PID", "LIVE",
	       "CONS", "FILL", "RING", "NAME");
	for (size_t i = 0; i < n; i++) {
		failed |= ls_one(dfd, dir, names[i]);
		free(names[i]);
	}
	free(names);
	close(dfd);
	return failed ? EXIT_ERROR : EXIT_OK;
}
