/* SPDX-License-Identifier: MIT */
/*
 * shmq get: queue -> stdout. A message is released only after it has been
 * written out in full, so a get killed at any point loses nothing that a
 * named consumer (or, later, a group) would not be given again.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "cmds.h"
#include "common.h"
#include "progress.h"

struct get {
	const char *path;
	const char *name;	/* --name or --group */
	int kind;		/* enum tool_consumer_kind */
	uint32_t start;		/* enum shmq_start */
	int delim;		/* -1: none; else '\n' or '\0' after each */
	int create;
	uint64_t count;		/* stop after this many; 0 with !has_count */
	int has_count;
	uint32_t flags;		/* SHMQ_CONSUMER_*: --durable */
	int64_t timeout_ns;
	const char *timeout_arg;
	int follow;		/* --follow: read on across session ends */
	uint64_t lost;		/* messages the queue reported lost */
	char *buf;		/* observers: they receive by copy */
	size_t cap;
	struct shmq *q;
	struct shmq_consumer *c;
	struct progress prog;	/* --progress, --stats */
};

static const char get_usage[] =
"Usage: shmq get PATH|--fd N [--create] [--name NAME | --group NAME | --observe]\n"
"                     [--from oldest|latest] [--lines | --null] [--count N]\n"
"                     [--timeout SECONDS] [--durable] [--follow]\n"
"                     [--progress] [--stats]\n"
"Copy messages from the queue PATH to stdout until the end of the producer's\n"
"session (its close, death or abort), or with --follow across sessions.\n"
"\n"
"  --fd N           the queue is open as descriptor N (3 or above), handed\n"
"                   down by the parent (a queue without a path)\n"
"  --create         create PATH with the default geometry if it is missing\n"
"  --any-owner      accept a queue file that another user owns\n"
"  --name NAME      a named consumer: resumes where it stopped\n"
"  --group NAME     share the messages with the group's other members\n"
"  --observe        never hold the producer back; report what was lost\n"
"  --from WHERE     oldest (default) or latest\n"
"  -l, --lines      write a newline after each message\n"
"  -0, --null       write a NUL after each message\n"
"  -n, --count N    exit 0 after N messages\n"
"  --timeout SECS   give up when no message came for SECS seconds\n"
"  --durable        read only messages already synced to disk\n"
"  -f, --follow     read on across session ends (until --count, --timeout\n"
"                   or a signal), as tail -f\n"
"  --progress       bytes, messages and rate on stderr while it runs\n"
"  --stats          one line on stderr at the end: messages, bytes, time\n"
"\n"
"A reader that starts after a session ended and was read waits for the\n"
"next producer, as a FIFO reader waits for a writer.\n"
"\n"
"Exit status: 0 at the producer's close or after --count messages, 3 if\n"
"the producer died, 4 on timeout, 5 if messages were lost (overrun), 6 if\n"
"evicted, 9 if the producer aborted, 141 if stdout closed.\n";

static int parse_get_opt(int c, struct get *g, int *kinds, int *framings)
{
	switch (c) {
	case 'c':
		g->create = 1;
		return 0;
	case 'A':
	case 'g':
		(*kinds)++;
		g->kind = c == 'A' ? TOOL_BROADCAST : TOOL_GROUP;
		g->name = optarg;
		return tool_check_name(c == 'A' ? "--name" : "--group", optarg);
	case 'o':
		(*kinds)++;
		g->kind = TOOL_OBSERVER;
		return 0;
	case 'f':
		g->follow = 1;
		return 0;
	case 'F':
		if (!strcmp(optarg, "oldest"))
			g->start = SHMQ_START_OLDEST;
		else if (!strcmp(optarg, "latest"))
			g->start = SHMQ_START_LATEST;
		else
			return tool_usage_error("--from: expected oldest or "
						"latest, not '%s'", optarg);
		return 0;
	case 'l':
	case '0':
		(*framings)++;
		g->delim = c == 'l' ? '\n' : '\0';
		return 0;
	case 'n':
		g->has_count = 1;
		return parse_u64("--count", optarg, &g->count) ? EXIT_USAGE : 0;
	case 'd':
		g->flags |= SHMQ_CONSUMER_DURABLE;
		return 0;
	case 'P':
		g->prog.show = 1;
		return 0;
	case 'S':
		g->prog.stats = 1;
		return 0;
	case 'Q':
		return tool_parse_fd("--fd", optarg, &g->path);
	case 't':
		g->timeout_arg = optarg;
		return parse_seconds("--timeout", optarg, &g->timeout_ns) ?
		       EXIT_USAGE : 0;
	}
	return EXIT_USAGE;
}

static int parse_get_opts(int argc, char **argv, struct get *g)
{
	static const struct option longopts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'A' },
		{ "group", required_argument, NULL, 'g' },
		{ "observe", no_argument, NULL, 'o' },
		{ "from", required_argument, NULL, 'F' },
		{ "follow", no_argument, NULL, 'f' },
		{ "lines", no_argument, NULL, 'l' },
		{ "null", no_argument, NULL, '0' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "durable", no_argument, NULL, 'd' },
		{ "progress", no_argument, NULL, 'P' },
		{ "stats", no_argument, NULL, 'S' },
		TOOL_OPT_ANY_OWNER,
		{ "fd", required_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, r, kinds = 0, framings = 0;

	while ((c = getopt_long(argc, argv, ":l0n:fh", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(get_usage, stdout), -1;
		if (c == 'V')
			return cmd_version(), -1;
		if (c == '?' || c == ':')
			return tool_getopt_error(c, argv);
		r = parse_get_opt(c, g, &kinds, &framings);
		if (r)
			return r;
	}
	if (kinds > 1)
		return tool_usage_error("--name, --group and --observe exclude "
					"each other");
	if (framings > 1)
		return tool_usage_error("--lines and --null exclude each other");
	/* A member cannot wait for the watermark without stalling its group. */
	if ((g->flags & SHMQ_CONSUMER_DURABLE) && g->kind == TOOL_GROUP)
		return tool_usage_error("--durable does not combine with --group");
	if (tool_queue_fd >= 0)
		return tool_fd_only(argc, argv, optind, g->create);
	g->path = one_path(argc, argv, optind);
	return g->path ? 0 : EXIT_USAGE;
}

static bool session_end(ssize_t r)
{
	return r == SHMQ_EOF || r == SHMQ_EDIED || r == SHMQ_EABORTED;
}

/*
 * --follow reads on across session ends; one that cut its stream (the
 * producer died or aborted) is said on stderr, so that the reader knows
 * the data before it may be incomplete.
 */
static void follow_note(struct get *g, int r)
{
	if (r == SHMQ_EDIED)
		tool_msg("%s: a session ended without its close (the producer died); reading on", g->path);
	else if (r == SHMQ_EABORTED)
		tool_msg("%s: a session ended aborted by its producer; reading on", g->path);
}

/* The end of the stream, or why it could not be read; an exit status. */
static int get_end(struct get *g, int r)
{
	switch (r) {
	case SHMQ_EOF:
		return g->lost ? EXIT_OVERRUN : EXIT_OK;
	case SHMQ_EDIED:
		tool_msg("%s: producer died without closing the queue", g->path);
		return EXIT_DIED;
	case SHMQ_EABORTED:
		tool_msg("%s: the producer aborted its stream", g->path);
		return EXIT_ABORTED;
	case -EAGAIN:
	case -ETIMEDOUT:
		tool_msg("%s: no message within %s seconds", g->path,
			 g->timeout_arg);
		return EXIT_TIMEOUT;
	}
	return tool_fail(g->path, "receive failed", r);
}

static void note_lost(struct get *g, const struct shmq_msg *m)
{
	g->lost += m->lost;
	tool_msg("%s: observer overrun: %" PRIu64 " message%s lost before seq "
		 "%" PRIu64 " (observers never hold the producer back; use a "
		 "named consumer to keep every message)",
		 g->path, m->lost, m->lost == 1 ? "" : "s", m->seq);
}

/*
 * The byte written after message M, or -1 for none: the framing its
 * session's producer recorded (put --lines/--null; none after a last
 * item that had none, nor in a byte stream), unless --lines/--null was
 * given for messages sent by a C program (framing "messages"). A flag
 * that contradicts the recorded framing is an error: -2, reported.
 */
static int msg_delim(struct get *g, const struct shmq_msg *m)
{
	static const char *const names[] = { "messages", "a byte stream",
					     "lines", "NUL-terminated items" };
	unsigned int f = SHMQ_MSG_FRAMING(m->flags);
	int rec = f == SHMQ_FRAMING_LINES ? '\n' :
		  f == SHMQ_FRAMING_NUL ? '\0' : -1;

	if (g->delim >= 0 && f != SHMQ_FRAMING_MESSAGES && rec != g->delim) {
		tool_msg("%s: %s given, but this session was sent as %s: "
			 "leave the option out to follow it", g->path,
			 g->delim == '\n' ? "--lines" : "--null", names[f]);
		return -2;
	}
	if (m->flags & SHMQ_MSG_UNTERMINATED)
		return -1;
	return f == SHMQ_FRAMING_MESSAGES ? g->delim : rec;
}

/*
 * Write one peeked message (and its delimiter) to stdout, then release it.
 * Returns 0, or the exit status: EXIT_PIPE, quietly, when stdout closed.
 */
static int get_write(struct get *g, const struct shmq_msg *m)
{
	int d = msg_delim(g, m);
	char delim = (char)d;
	struct iovec iov[2] = {
		{ .iov_base = (void *)m->data, .iov_len = m->len },
		{ .iov_base = &delim, .iov_len = 1 },
	};
	int r;

	if (d == -2)
		return EXIT_ERROR;
	r = writev_all(STDOUT_FILENO, iov, d < 0 ? 1 : 2);
	if (r == -EPIPE)
		return EXIT_PIPE;
	/* write() reports a vanished source page as EFAULT, not SIGBUS. */
	if (r == -EFAULT && !g->buf) {
		tool_msg("%s: queue file truncated", g->path);
		return EXIT_TRUNCATED;
	}
	if (r < 0) {
		tool_msg("%s: writing stdout: %s", g->path, strerror(-r));
		return EXIT_ERROR;
	}
	progress_add(&g->prog, 1, m->len + (d >= 0));
	if (g->buf)		/* a copy: already released */
		return 0;
	r = shmq_release(g->c);
	if (r < 0)
		return tool_fail(g->path, "release failed", r);
	return 0;
}

/*
 * The next message, in place (released by get_write() once written) or,
 * for an observer, copied: the producer may overwrite what an observer is
 * looking at, so the library only hands observers copies.
 */
static int get_next(struct get *g, struct shmq_msg *m)
{
	ssize_t n;

	if (!g->buf)
		return tool_peek(g->c, m, g->timeout_ns);
	n = shmq_recv(g->c, g->buf, g->cap, m, g->timeout_ns);
	if (n < 0)
		return n;
	m->data = g->buf;
	m->len = n;
	return 0;
}

static int get_observer_buffer(struct get *g)
{
	struct shmq_stat *st;
	int r;

	r = shmq_stat_get(g->q, &st);
	if (r < 0)
		return tool_fail(g->path, "cannot read queue geometry", r);
	g->cap = st->max_message ? st->max_message : 1;
	shmq_stat_free(st);
	g->buf = malloc(g->cap);
	if (!g->buf)
		return tool_msg("out of memory"), EXIT_ERROR;
	return 0;
}

/*
 * Peek the messages already published (up to GET_BATCH), write them all
 * with one writev, then release them: one position store per batch, and
 * still nothing released before it is written. Returns the number of
 * messages handled (>= 0), or -1 with the exit status in *STATUS.
 */
#define GET_BATCH 512	/* two iovecs each: within IOV_MAX */
static int get_batch(struct get *g, uint64_t room, int *status)
{
	static struct shmq_msg ms[GET_BATCH];
	static struct iovec iov[2 * GET_BATCH];
	static const char delims[2] = { '\n', '\0' };
	uint64_t out = 0;	/* bytes for stdout: --progress, --stats */
	ssize_t n, i;
	int r, k = 0, bad = 0;

	n = shmq_peek_many(g->c, ms, room < GET_BATCH ? room : GET_BATCH,
			   g->timeout_ns);
	if (n == -EBADMSG) {
		/* As tool_peek(): an eviction can surface as a bad record. */
		struct shmq_msg m;

		if (shmq_peek(g->c, &m, SHMQ_NOWAIT) == SHMQ_EVICTED)
			n = SHMQ_EVICTED;
	}
	if (n == -EINTR)
		return 0;
	if (g->follow && session_end(n))
		return follow_note(g, (int)n), 0;
	if (n < 0)
		return *status = get_end(g, (int)n), -1;
	for (i = 0; i < n; i++) {
		int d = msg_delim(g, &ms[i]);

		if (d == -2) {
			bad = 1;	/* write and release those before it */
			break;
		}
		iov[k].iov_base = (void *)ms[i].data;
		iov[k++].iov_len = ms[i].len;
		out += ms[i].len + (d >= 0);
		if (d >= 0) {
			iov[k].iov_base = (void *)&delims[d == '\n' ? 0 : 1];
			iov[k++].iov_len = 1;
		}
	}
	r = k ? writev_all(STDOUT_FILENO, iov, k) : 0;
	if (r == -EPIPE)
		return *status = EXIT_PIPE, -1;
	if (r == -EFAULT) {
		tool_msg("%s: queue file truncated", g->path);
		return *status = EXIT_TRUNCATED, -1;
	}
	if (r < 0) {
		tool_msg("%s: writing stdout: %s", g->path, strerror(-r));
		return *status = EXIT_ERROR, -1;
	}
	r = bad ? (i ? shmq_release_n(g->c, (size_t)i) : 0) : shmq_release(g->c);
	if (r < 0)
		return *status = tool_fail(g->path, "release failed", r), -1;
	progress_add(&g->prog, i, out);
	if (bad)
		return *status = EXIT_ERROR, -1;
	return (int)n;
}

static int get_loop(struct get *g)
{
	struct shmq_msg m;
	uint64_t got = 0;
	int r = 0;

	while (!g->buf && (!g->has_count || got < g->count)) {
		int status = EXIT_ERROR;

		r = get_batch(g, g->has_count ? g->count - got : GET_BATCH,
			      &status);
		if (r < 0)
			return status;
		got += (uint64_t)r;
	}
	while (!g->has_count || got < g->count) {
		r = get_next(g, &m);
		if (r == -EINTR)
			continue;
		if (g->follow && session_end(r)) {
			follow_note(g, r);
			continue;
		}
		if (r < 0)
			return get_end(g, r);
		if (m.lost)
			note_lost(g, &m);
		r = get_write(g, &m);
		if (r)
			return r;
		got++;
	}
	return g->lost ? EXIT_OVERRUN : EXIT_OK;
}

int cmd_get(int argc, char **argv)
{
	struct get g = {
		.kind = TOOL_BROADCAST,
		.start = SHMQ_START_OLDEST,
		.delim = -1,
		.timeout_ns = SHMQ_FOREVER,
	};
	int r;

	r = parse_get_opts(argc, argv, &g);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_open(g.path, g.create ? SHMQ_OPEN_CREATE : 0, &g.q);
	if (r)
		return r;
	if (g.kind == TOOL_OBSERVER)
		r = get_observer_buffer(&g);
	if (!r)
		r = tool_consumer_open(g.q, g.path, g.kind, g.name, g.start,
				       g.flags, &g.c);
	if (!r) {
		progress_start(&g.prog);
		r = get_loop(&g);
		progress_end(&g.prog);
	}
	/* Closing frees an anonymous slot: the producer may see EPIPE. */
	shmq_consumer_close(g.c);
	shmq_close(g.q);
	free(g.buf);
	return r;
}
