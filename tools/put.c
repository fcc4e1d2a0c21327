/* SPDX-License-Identifier: MIT */
/*
 * shmq put: stdin -> queue until EOF, then close the producer so that
 * consumers see EOF. A byte stream by default, forwarded unchanged; one
 * message per line or per NUL-terminated item with --lines / --null.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "cmds.h"
#include "common.h"
#include "progress.h"

/* Messages handed to shmq_send_batch() at once in --lines / --null mode. */
#define PUT_BATCH		256
/* Stream mode: publish at least this often (bytes) while stdin flows. */
#define PUT_PUBLISH_BYTES	(256u << 10)
/* Stream mode: the stdin pipe size we ask for (the default max is 1 MiB). */
#define PUT_PIPE_BYTES		(1 << 20)
/* Blocked this long on a full ring, put says who holds it (once). */
#define PUT_TELL_NS		1000000000ll

struct put {
	const char *path;
	struct shmq *q;
	struct shmq_producer *p;
	int delim;		/* -1: byte stream; else '\n' or '\0' */
	uint32_t sync;		/* enum shmq_sync_mode */
	uint32_t pflags;	/* SHMQ_PRODUCER_* beyond FIFO */
	int abort;		/* end the session as aborted, not closed */
	size_t max_message;
	int64_t timeout_ns;	/* --timeout; SHMQ_FOREVER without it */
	const char *timeout_arg;
	int64_t wait_start;	/* when the current send began; 0: none */
	int told;		/* the holder was named on stderr */
	int wait;		/* --wait: queue for the producer role */
	int geometry;		/* create options were given (need --create) */
	struct shmq_config cfg;	/* --create's geometry */
	struct progress prog;	/* --progress, --stats */
};

static const char put_usage[] =
"Usage: shmq put PATH|--fd N [--create [GEOMETRY]] [-l | -0] [--sync none|batch|every]\n"
"                [--accept-loss] [--timeout SECONDS] [--any-owner] [--wait]\n"
"                [--progress] [--stats]\n"
"Copy stdin into the queue PATH until EOF, then close the producer.\n"
"\n"
"  --fd N           the queue is open as descriptor N (3 or above), handed\n"
"                   down by the parent (a queue without a path)\n"
"  --create         create PATH if it is missing, with the default geometry\n"
"                   or create's options: --size, --max-message, --slots,\n"
"                   --mode, --when-full, --evict-after, --checksum\n"
"  -l, --lines      one message per line (the newline is not sent)\n"
"  -0, --null       one message per NUL-terminated item\n"
"  --sync MODE      none (default); batch: every 1024 messages or 100 ms;\n"
"                   every: each message is durable before the next\n"
"  --accept-loss    let recovery cut messages that a sync acknowledged as\n"
"                   durable (after a power loss damaged them); without it\n"
"                   put refuses to start and says how much would go\n"
"  --timeout SECS   give up (status 4) when the ring stayed full for SECS\n"
"  --any-owner      accept a queue file that another user owns\n"
"  --wait           wait for the producer role while another put holds it\n"
"                   (instead of status 8; --timeout bounds the wait): each\n"
"                   stream goes in whole, one after the other\n"
"  --progress       bytes, messages and rate on stderr while it runs\n"
"  --stats          one line on stderr at the end: messages, bytes, time\n"
"\n"
"Without --lines/--null the bytes are forwarded unchanged, in messages of\n"
"at most the queue's max message size. When every consumer that attached\n"
"has gone, put stops quietly with status 141, like a writer to a closed\n"
"pipe. After a second blocked on a full ring, put says once on stderr\n"
"which consumer holds it and how to release it.\n";

/*
 * The library syncs as the mode asks while sending; this makes the tail of
 * a batch durable too before the producer closes.
 */
static int final_sync(struct put *pt)
{
	int r;

	if (pt->sync == SHMQ_SYNC_NONE)
		return 0;
	r = shmq_sync(pt->q);
	if (r < 0)
		return tool_fail(pt->path, "sync failed", r);
	return 0;
}

/* Library status -> exit status; EPIPE is the quiet end of a pipeline. */
static int send_failed(struct put *pt, int r)
{
	if (r == -EPIPE)
		return EXIT_PIPE;
	return tool_fail(pt->path, "send failed", r);
}

/*
 * The timeout of one send or reserve (issue 10): until put has waited a
 * second for room, so that it can say who holds the ring (put_blocked),
 * and until --timeout, both counted from when this wait began.
 */
static int64_t put_wait_ns(struct put *pt)
{
	int64_t now = now_mono_ns(), t = SHMQ_FOREVER, left;

	if (!pt->wait_start)
		pt->wait_start = now;
	if (!pt->told)
		t = pt->wait_start + PUT_TELL_NS - now;
	if (pt->timeout_ns != SHMQ_FOREVER) {
		left = pt->wait_start + pt->timeout_ns - now;
		if (t == SHMQ_FOREVER || left < t)
			t = left;
	}
	return t == SHMQ_FOREVER ? t : t > 0 ? t : SHMQ_NOWAIT;
}

/*
 * A send or reserve came back -ETIMEDOUT or -EAGAIN: the ring is full.
 * After a second, say once who holds it; after --timeout, give up with
 * status 4, saying the same. Returns 0 to try again, or the exit status.
 */
static int put_blocked(struct put *pt)
{
	int64_t waited = now_mono_ns() - pt->wait_start;
	char held[768];

	if (pt->timeout_ns != SHMQ_FOREVER && waited >= pt->timeout_ns) {
		tool_msg("%s: timed out after %s s waiting for room in the "
			 "ring, %s", pt->path, pt->timeout_arg,
			 tool_holder_text(pt->path, pt->q, held, sizeof(held)));
		return EXIT_TIMEOUT;
	}
	if (!pt->told && waited >= PUT_TELL_NS) {
		pt->told = 1;
		tool_msg("%s: waiting %.1f s for room in the ring, %s", pt->path,
			 waited / 1e9,
			 tool_holder_text(pt->path, pt->q, held, sizeof(held)));
	}
	return 0;
}

static int send_msgs(struct put *pt, struct iovec *iov, size_t n)
{
	while (n) {
		int64_t t = put_wait_ns(pt);
		ssize_t r = shmq_send_batch(pt->p, iov, n, t);

		if (r == -EINTR)
			continue;
		if (r == -ETIMEDOUT || r == -EAGAIN) {
			r = put_blocked(pt);
			if (r)
				return r;
			continue;
		}
		if (r < 0)
			return send_failed(pt, r);
		progress_add(&pt->prog, r, 0);
		iov += r;
		n -= r;
		pt->wait_start = 0;
		if (!n)
			break;
		/*
		 * Part of the batch: the next call's own result decides (a
		 * full ring waits again and is told after T; the last reader
		 * gone is EPIPE, quiet). Nothing is assumed about the wait.
		 */
	}
	return 0;
}

/*
 * A stdin left O_NONBLOCK by whoever shares it (EAGAIN): wait until it
 * has data or hangs up, then read again, as on a blocking descriptor.
 * True when it is worth reading again.
 */
static bool stdin_wait(void)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

	if (errno != EAGAIN && errno != EWOULDBLOCK)
		return false;
	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			return false;
	return true;
}

static int read_some(struct put *pt, char *buf, size_t cap, size_t *got)
{
	ssize_t n;

	do {
		n = read(STDIN_FILENO, buf, cap);
	} while (n < 0 && (errno == EINTR || stdin_wait()));
	if (n < 0) {
		tool_msg("%s: reading stdin: %s", pt->path, strerror(errno));
		pt->abort = 1;	/* the consumers must know it was cut */
		return EXIT_ERROR;
	}
	*got = n;
	return 0;
}

/*
 * Whether a read() of stdin would block now. Unpublished messages must be
 * published before such a read, or consumers would wait on data we hold.
 * poll() costs a system call, so it is asked only after a full read: a
 * short one already says the pipe was drained.
 */
static int stdin_would_block(void)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

	return poll(&pfd, 1, 0) != 1;
}

/*
 * A pipe on stdin holds 64 KiB by default, so the writer and we take turns
 * every 64 KiB, two context switches each time: on two cores that, not the
 * copying, bounds the stream (docs/tools.md). A larger pipe lets the writer
 * run ahead. Best effort: the limit is /proc/sys/fs/pipe-max-size, and
 * stdin may be no pipe at all.
 */
static void grow_stdin_pipe(void)
{
	if (fcntl(STDIN_FILENO, F_GETPIPE_SZ) >= 0)
		(void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, PUT_PIPE_BYTES);
}

/* Publish what is sealed; only the sync modes can fail (-EIO). */
static int publish(struct put *pt, size_t *unpub)
{
	int r;

	*unpub = 0;
	r = shmq_publish(pt->p);
	if (r < 0)
		return tool_fail(pt->path, "sync failed", r);
	return 0;
}

/*
 * read() straight into a reservation, so that each byte is copied once
 * (pipe -> ring). Returns the byte count, 0 at EOF, or -exit status.
 */
static ssize_t read_into(struct put *pt, void *dst, size_t cap)
{
	ssize_t n;

	do {
		n = read(STDIN_FILENO, dst, cap);
	} while (n < 0 && (errno == EINTR || stdin_wait()));
	if (n >= 0)
		return n;
	/* The kernel reports a vanished destination page as EFAULT. */
	if (errno == EFAULT) {
		tool_msg("%s: queue file truncated", pt->path);
		return -EXIT_TRUNCATED;
	}
	tool_msg("%s: reading stdin: %s", pt->path, strerror(errno));
	pt->abort = 1;		/* the consumers must know it was cut */
	return -EXIT_ERROR;
}

/*
 * A byte stream: each read() becomes one message, read into a reservation
 * of the max message size and committed with its real length. Messages
 * are sealed without publishing and published in one store when stdin
 * runs dry (so data moves as soon as it arrives, as through a pipe),
 * every PUT_PUBLISH_BYTES (so consumers work while we read), and by the
 * library itself before it waits for room. At EOF the reservation is left
 * unused: shmq_producer_close() drops it.
 */
static int put_stream(struct put *pt)
{
	unsigned int defer = pt->sync == SHMQ_SYNC_EVERY ? 0 : SHMQ_COMMIT_DEFER;
	size_t chunk = pt->max_message, unpub = 0;
	void *dst;
	ssize_t n;
	int r;

	grow_stdin_pipe();

	for (;;) {
		r = shmq_reserve(pt->p, chunk, &dst, put_wait_ns(pt));
		if (r == -EINTR)
			continue;
		if ((r == -ETIMEDOUT || r == -EAGAIN) && !(r = put_blocked(pt)))
			continue;
		if (r > 0)
			return r;
		pt->wait_start = 0;
		if (r < 0)
			return send_failed(pt, r);
		n = read_into(pt, dst, chunk);
		if (n <= 0)
			break;
		r = shmq_commit_len(pt->p, n, defer);
		if (r < 0)
			return tool_fail(pt->path, "commit failed", r);
		unpub += n;
		progress_add(&pt->prog, 1, n);
		if (unpub >= PUT_PUBLISH_BYTES ||
		    ((size_t)n < chunk || stdin_would_block())) {
			r = publish(pt, &unpub);
			if (r)
				return r;
		}
	}
	if (n < 0)
		return -n;
	return unpub ? publish(pt, &unpub) : 0;
}

static int send_unterminated(struct put *pt, const char *item, size_t len)
{
	void *dst;
	int r;

	do {
		r = shmq_reserve(pt->p, len, &dst, put_wait_ns(pt));
		/* Full: put_blocked's status, or -EINTR to try again. */
		if ((r == -ETIMEDOUT || r == -EAGAIN) && !(r = put_blocked(pt)))
			r = -EINTR;
	} while (r == -EINTR);
	if (r > 0)
		return r;	/* put_blocked's status */
	pt->wait_start = 0;
	if (r < 0)
		return send_failed(pt, r);
	memcpy(dst, item, len);
	r = shmq_commit(pt->p, SHMQ_COMMIT_UNTERMINATED);
	if (r < 0)
		return tool_fail(pt->path, "commit failed", r);
	progress_add(&pt->prog, 1, 0);
	return 0;
}

static int item_too_long(struct put *pt)
{
	tool_msg("%s: %s longer than the max message size (%zu bytes): the items before it were sent, the stream ends here as aborted",
		 pt->path, pt->delim == '\n' ? "line" : "item", pt->max_message);
	pt->abort = 1;
	return EXIT_ERROR;
}

/*
 * Send every complete item in BUF[0..HAVE) in batches and return in *USED
 * how many bytes they took; a trailing partial item stays in the buffer.
 * At EOF the partial item is sent too, as `read -r` and awk do.
 */
static int send_items(struct put *pt, char *buf, size_t have, int eof,
		      size_t *used)
{
	struct iovec iov[PUT_BATCH];
	size_t start = 0, nio = 0, batch = PUT_BATCH;
	char *d;
	int r;

	while ((d = memchr(buf + start, pt->delim, have - start))) {
		size_t len = d - (buf + start);

		/* Everything before the bad item is delivered first. */
		if (len > pt->max_message)
			return (r = send_msgs(pt, iov, nio)) ? r : item_too_long(pt);
		iov[nio].iov_base = buf + start;
		iov[nio++].iov_len = len;
		start += len + 1;
		if (nio == batch) {
			r = send_msgs(pt, iov, nio);
			if (r)
				return r;
			nio = 0;
		}
	}
	if (have - start > pt->max_message)
		return (r = send_msgs(pt, iov, nio)) ? r : item_too_long(pt);
	r = send_msgs(pt, iov, nio);
	if (r)
		return r;
	/*
	 * At EOF a last item without its delimiter is sent flagged as such
	 * (SHMQ_COMMIT_UNTERMINATED), so that get writes it back byte for
	 * byte, as it came.
	 */
	if (eof && have > start) {
		r = send_unterminated(pt, buf + start, have - start);
		if (r)
			return r;
		start = have;
	}
	*used = start;
	return 0;
}

static int put_items(struct put *pt)
{
	size_t cap = 2 * pt->max_message + (1 << 20);
	size_t have = 0, n, used;
	char *buf = malloc(cap);
	int r;

	if (!buf)
		return tool_msg("out of memory"), EXIT_ERROR;
	do {
		r = read_some(pt, buf + have, cap - have, &n);
		if (r)
			break;
		progress_add(&pt->prog, 0, n);
		have += n;
		r = send_items(pt, buf, have, n == 0, &used);
		if (r)
			break;
		/* The partial item is at most max_message: room stays. */
		memmove(buf, buf + used, have - used);
		have -= used;
	} while (n);
	free(buf);
	return r;
}

static int parse_put_opts(int argc, char **argv, struct put *pt, int *create)
{
	static const struct option longopts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "lines", no_argument, NULL, 'l' },
		{ "null", no_argument, NULL, '0' },
		{ "sync", required_argument, NULL, 's' },
		{ "accept-loss", no_argument, NULL, 'A' },
		{ "timeout", required_argument, NULL, 't' },
		TOOL_OPT_ANY_OWNER,
		{ "wait", no_argument, NULL, 'W' },
		{ "progress", no_argument, NULL, 'P' },
		{ "stats", no_argument, NULL, 'S' },
		CREATE_LONGOPTS,
		{ "fd", required_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, framings = 0;

	while ((c = getopt_long(argc, argv, ":l0h", longopts, NULL)) != -1) {
		if (c >= CREATE_OPT) {
			if (parse_create_opt(c - CREATE_OPT, &pt->cfg))
				return EXIT_USAGE;
			pt->geometry = 1;
			continue;
		}
		switch (c) {
		case 0:		/* a flag option: --any-owner */
			break;
		case 't':
			pt->timeout_arg = optarg;
			if (parse_seconds("--timeout", optarg, &pt->timeout_ns))
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(put_usage, stdout);
			return -1;
		case 'V':
			cmd_version();
			return -1;
		case 'W':
			pt->wait = 1;
			break;
		case 'P':
			pt->prog.show = 1;
			break;
		case 'S':
			pt->prog.stats = 1;
			break;
		case 'c':
			*create = 1;
			break;
		case 'A':
			pt->pflags |= SHMQ_PRODUCER_ACCEPT_LOSS;
			break;
		case 'Q':
			if (tool_parse_fd("--fd", optarg, &pt->path))
				return EXIT_USAGE;
			break;
		case 'l':
		case '0':
			pt->delim = c == 'l' ? '\n' : '\0';
			framings++;
			break;
		case 's':
			if (!strcmp(optarg, "none"))
				pt->sync = SHMQ_SYNC_NONE;
			else if (!strcmp(optarg, "batch"))
				pt->sync = SHMQ_SYNC_BATCH;
			else if (!strcmp(optarg, "every"))
				pt->sync = SHMQ_SYNC_EVERY;
			else
				return tool_usage_error("--sync: expected none, "
							"batch or every, not '%s'",
							optarg);
			break;
		default:
			return tool_getopt_error(c, argv);
		}
	}
	if (framings > 1)
		return tool_usage_error("--lines and --null exclude each other");
	if (pt->geometry && !*create)
		return tool_usage_error("--size, --max-message, --slots, --mode, "
					"--when-full, --evict-after and "
					"--checksum need --create");
	if (tool_queue_fd >= 0)
		return tool_fd_only(argc, argv, optind, *create);
	pt->path = one_path(argc, argv, optind);
	return pt->path ? 0 : EXIT_USAGE;
}

/*
 * shmq_producer_open(), and with --wait again every PUT_WAIT_NS while
 * another live producer holds the role (-EBUSY), for at most --timeout
 * (status 4). The role is a kernel lock that the library only tries;
 * polling it is cheap (an open, a failed F_OFD_SETLK and a close) and
 * leaves no trace in the file. The waiters are not ordered: whichever
 * tries first after the holder closes gets the role. stdin is not read
 * before, so each stream goes in whole, as one session.
 */
#define PUT_WAIT_NS	20000000L
static int producer_open(struct put *pt,
			 const struct shmq_producer_opts *popts)
{
	struct timespec ts = { 0, PUT_WAIT_NS };
	int64_t start = now_mono_ns();
	int r;

	while ((r = shmq_producer_open(pt->q, popts, &pt->p)) == -EBUSY &&
	       pt->wait) {
		if (pt->timeout_ns >= 0 &&
		    now_mono_ns() - start >= pt->timeout_ns) {
			tool_msg("%s: no producer role within %s seconds: %s",
				 pt->path, pt->timeout_arg, shmq_errdetail());
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
	if (r < 0)
		r = tool_fail(pt->path, "cannot become the producer", r);
	return r;
}

static int put_attach(struct put *pt, int create)
{
	struct shmq_producer_opts popts = {
		/* The session records how we frame it; get follows it. */
		.flags = SHMQ_PRODUCER_FIFO | pt->pflags |
			 SHMQ_PRODUCER_FRAMING(pt->delim < 0 ? SHMQ_FRAMING_STREAM :
					       pt->delim == '\n' ? SHMQ_FRAMING_LINES :
					       SHMQ_FRAMING_NUL),
		.sync_mode = pt->sync,	/* batch: the library's 1024 / 100 ms */
	};
	struct shmq_stat *st;
	int r;

	r = tool_open_cfg(pt->path, create ? SHMQ_OPEN_CREATE : 0,
			  pt->geometry ? &pt->cfg : NULL, &pt->q);
	if (r)
		return r;
	/* The queue existed, unlike the options: used as it is (shmq_open). */
	if (pt->geometry && *shmq_errdetail())
		tool_msg("%s: %s", pt->path, shmq_errdetail());
	r = shmq_stat_get(pt->q, &st);
	if (r < 0)
		return tool_fail(pt->path, "cannot read queue geometry", r);
	pt->max_message = st->max_message;
	shmq_stat_free(st);
	if (pt->max_message == 0)
		return tool_msg("%s: queue has a max message size of 0",
				pt->path), EXIT_ERROR;
	r = producer_open(pt, &popts);
	if (r == -ETIMEDOUT)
		return EXIT_TIMEOUT;
	return r;
}

int cmd_put(int argc, char **argv)
{
	struct put pt = { .delim = -1, .sync = SHMQ_SYNC_NONE,
			  .timeout_ns = SHMQ_FOREVER };
	int create = 0, r, rc;

	r = parse_put_opts(argc, argv, &pt, &create);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = put_attach(&pt, create);
	if (!r)
		progress_start(&pt.prog);
	if (!r)
		r = pt.delim < 0 ? put_stream(&pt) : put_items(&pt);
	if (!r)
		r = final_sync(&pt);
	/*
	 * Close even after a failure, as a pipe writer's exit does, but as
	 * aborted when we gave up on the input: the consumers then know the
	 * stream was cut (get exits 9), and our status says why.
	 */
	rc = pt.abort ? shmq_producer_abort(pt.p) : shmq_producer_close(pt.p);
	if (rc < 0 && !r && pt.p)
		r = tool_fail(pt.path, "close failed", rc);
	if (pt.p)
		progress_end(&pt.prog);
	shmq_close(pt.q);
	return r;
}
