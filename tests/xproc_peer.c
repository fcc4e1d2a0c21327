/* SPDX-License-Identifier: MIT */
/*
 * xproc_peer: the other process of the cross-process tests. It produces or
 * consumes tagged messages (harness.h) and reports on stdout, one line per
 * event, so that the test can synchronise on what it has really done.
 *
 *   produce PATH N SEED [--fifo] [--max M] [--api send|batch|reserve|mix]
 *           [--pause-after K]
 *   consume PATH [--name NAME] [--from oldest|latest] [--count N]
 *           [--seed S] [--max M] [--expect-first SEQ|any] [--hold]
 *           [--pause] [--api peek|recv] [--slow-us U]
 *           [--group NAME | --observe] [--log FILE] [--hold-us U] [--ends N]
 *           [--slow-every K]
 *
 * --group: a member of group NAME; order is not checked (other members
 * take the gaps), and each message goes to --log, if given, before it is
 * released, as a u64: seq | SHMQ_MSG_REDELIVERED << 63. --observe: an
 * observer (copy only); each message must be the expected one plus the
 * lost count it carries. Both end with "end HOW count=N next=S lost=L
 * redelivered=R". --ends N: read across N-1 session ends ("session HOW
 * count=N" each) before the end that stops it. --hold-us: sleep holding each peeked message;
 * --slow-every: sleep --slow-us only after every K-th message.
 *
 * Exit: 0 done, 1 unexpected error, 2 a message failed verification,
 * 3 -EPIPE, 4 -EBUSY. The watchdog is the alarm() set by the harness.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define EXIT_ERR	1
#define EXIT_BAD	2
#define EXIT_PIPE	3
#define EXIT_BUSY	4

/*
 * Whatever path ends the process closes what it opened: the sanitizer
 * builds count a handle left open at exit as a leak.
 */
static struct shmq *g_q;
static struct shmq_producer *g_p;
static struct shmq_consumer *g_c;
static void *g_buf;

static void cleanup(void)
{
	shmq_consumer_close(g_c);
	shmq_producer_close(g_p);
	shmq_close(g_q);
	free(g_buf);
}

/* Every report goes out at once: the test acts on it while we run on. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr, "usage: xproc_peer produce|consume PATH ...\n");
	exit(EXIT_ERR);
}

/* Stay attached, doing nothing, until the test kills us. */
static void __attribute__((noreturn)) park(void)
{
	for (;;)
		pause();
}

static uint32_t queue_max(struct shmq *q)
{
	struct shmq_stat *st;
	uint32_t max;

	if (shmq_stat_get(q, &st) < 0)
		return 0;
	max = st->max_message;
	shmq_stat_free(st);
	return max;
}

static uint64_t queue_next_seq(struct shmq *q)
{
	struct shmq_stat *st;
	uint64_t seq;

	if (shmq_stat_get(q, &st) < 0)
		return 0;
	seq = st->next_seq;
	shmq_stat_free(st);
	return seq;
}

enum api { API_SEND, API_BATCH, API_RESERVE, API_MIX };

static int produce(int argc, char **argv)
{
	struct shmq_producer_opts po = { 0 };
	struct shmq_producer *p;
	struct shmq *q;
	uint8_t *bufs;
	uint64_t n, seed, pause_after = UINT64_MAX, first, i;
	size_t max = 0;
	enum api api = API_MIX;
	int err;

	if (argc < 5)
		usage();
	n = strtoull(argv[3], NULL, 0);
	seed = strtoull(argv[4], NULL, 0);
	for (int a = 5; a < argc; a++) {
		if (!strcmp(argv[a], "--fifo")) {
			po.flags |= SHMQ_PRODUCER_FIFO;
		} else if (!strcmp(argv[a], "--max") && a + 1 < argc) {
			max = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--pause-after") && a + 1 < argc) {
			pause_after = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--api") && a + 1 < argc) {
			const char *s = argv[++a];

			api = !strcmp(s, "send") ? API_SEND :
			      !strcmp(s, "batch") ? API_BATCH :
			      !strcmp(s, "reserve") ? API_RESERVE : API_MIX;
		} else {
			usage();
		}
	}

	err = shmq_open(argv[2], 0, NULL, &q);
	if (err < 0) {
		say("error open %d %s", err, shmq_errdetail());
		return EXIT_ERR;
	}
	g_q = q;
	err = shmq_producer_open(q, &po, &p);
	if (err == -EBUSY) {
		say("busy %s", shmq_errdetail());
		return EXIT_BUSY;
	}
	if (err < 0) {
		say("error producer_open %d %s", err, shmq_errdetail());
		return EXIT_ERR;
	}
	g_p = p;
	if (!max)
		max = queue_max(q);
	first = queue_next_seq(q);
	say("ready pid=%d first=%" PRIu64, (int)getpid(), first);

	/* Eight buffers: the most one send_batch() call takes here. */
	struct iovec iov[8];

	bufs = g_buf = malloc(8 * (max + 1));
	if (!bufs)
		return EXIT_ERR;
	for (i = 0; i < n;) {
		uint64_t seq = first + i;
		enum api a = api;

		if (i == pause_after) {
			say("paused sent=%" PRIu64, i);
			park();
		}
		if (a == API_MIX)
			a = (enum api)(seq % 3);
		if (a == API_BATCH) {
			uint64_t k = n - i;

			if (k > 8)
				k = 8;
			if (pause_after > i && k > pause_after - i)
				k = pause_after - i;
			for (uint64_t j = 0; j < k; j++) {
				uint8_t *b = bufs + j * (max + 1);
				size_t len = h_msg_len(seed, seq + j, max);

				h_msg_fill(b, len, seed, seq + j);
				iov[j].iov_base = b;
				iov[j].iov_len = len;
			}
			ssize_t r = shmq_send_batch(p, iov, k, SHMQ_FOREVER);

			if (r > (ssize_t)k || r == 0) {
				say("error send_batch returned %zd for %" PRIu64,
				    r, k);
				return EXIT_ERR;
			}
			err = r < 0 ? (int)r : 0;
			if (!err)
				i += (uint64_t)r;
		} else if (a == API_RESERVE) {
			size_t len = h_msg_len(seed, seq, max);
			void *b;

			err = shmq_reserve(p, len, &b, SHMQ_FOREVER);
			if (!err) {
				h_msg_fill(b, len, seed, seq);
				err = shmq_commit(p, 0);
			}
			if (!err)
				i++;
		} else {
			size_t len = h_msg_len(seed, seq, max);

			h_msg_fill(bufs, len, seed, seq);
			err = shmq_send(p, bufs, len, SHMQ_FOREVER);
			if (!err)
				i++;
		}
		if (err == -EPIPE) {
			say("epipe sent=%" PRIu64, i);
			return EXIT_PIPE;
		}
		if (err < 0) {
			say("error send %d (%s) at %" PRIu64 " %s", err,
			    shmq_strerror(err), i, shmq_errdetail());
			return EXIT_ERR;
		}
	}
	say("sent n=%" PRIu64, n);
	g_p = NULL;
	err = shmq_producer_close(p);
	if (err < 0) {
		say("error producer_close %d", err);
		return EXIT_ERR;
	}
	say("closed");
	return 0;
}

static int consume(int argc, char **argv)
{
	struct shmq_consumer_opts co = { 0 };
	struct shmq_consumer *c;
	struct shmq *q;
	uint64_t count = UINT64_MAX, seed = 0, expect = 0, got = 0, ends = 1;
	uint64_t slow_us = 0, hold_us = 0, slow_every = 1;
	uint64_t lost = 0, redelivered = 0;
	int any_first = 0, hold = 0, do_pause = 0, use_recv = 0, err;
	int group = 0, observe = 0, log_fd = -1;
	size_t max = 0;

	if (argc < 3)
		usage();
	for (int a = 3; a < argc; a++) {
		if (!strcmp(argv[a], "--name") && a + 1 < argc) {
			co.name = argv[++a];
		} else if (!strcmp(argv[a], "--from") && a + 1 < argc) {
			co.start = !strcmp(argv[++a], "latest") ?
				   SHMQ_START_LATEST : SHMQ_START_OLDEST;
		} else if (!strcmp(argv[a], "--count") && a + 1 < argc) {
			count = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--seed") && a + 1 < argc) {
			seed = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--max") && a + 1 < argc) {
			max = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--expect-first") && a + 1 < argc) {
			a++;
			if (!strcmp(argv[a], "any"))
				any_first = 1;
			else
				expect = strtoull(argv[a], NULL, 0);
		} else if (!strcmp(argv[a], "--ends") && a + 1 < argc) {
			ends = strtoull(argv[++a], NULL, 0);	/* sessions */
		} else if (!strcmp(argv[a], "--hold")) {
			hold = 1;
		} else if (!strcmp(argv[a], "--pause")) {
			do_pause = 1;
		} else if (!strcmp(argv[a], "--api") && a + 1 < argc) {
			use_recv = !strcmp(argv[++a], "recv");
		} else if (!strcmp(argv[a], "--slow-us") && a + 1 < argc) {
			slow_us = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--slow-every") && a + 1 < argc) {
			slow_every = strtoull(argv[++a], NULL, 0);
			if (!slow_every)
				slow_every = 1;
		} else if (!strcmp(argv[a], "--hold-us") && a + 1 < argc) {
			hold_us = strtoull(argv[++a], NULL, 0);
		} else if (!strcmp(argv[a], "--group") && a + 1 < argc) {
			co.kind = SHMQ_CONSUMER_GROUP;
			co.name = argv[++a];
			group = 1;
		} else if (!strcmp(argv[a], "--observe")) {
			co.kind = SHMQ_CONSUMER_OBSERVER;
			observe = 1;
			use_recv = 1;	/* observers receive by copy only */
		} else if (!strcmp(argv[a], "--log") && a + 1 < argc) {
			/* Never closed: the kernel closes it, even on SIGKILL. */
			log_fd = open(argv[++a], O_WRONLY | O_CREAT | O_APPEND |
				      O_CLOEXEC, 0600);
			if (log_fd < 0) {
				say("error log %s", strerror(errno));
				return EXIT_ERR;
			}
		} else {
			usage();
		}
	}

	err = shmq_open(argv[2], 0, NULL, &q);
	if (err < 0) {
		say("error open %d %s", err, shmq_errdetail());
		return EXIT_ERR;
	}
	g_q = q;
	err = shmq_consumer_open(q, &co, &c);
	if (err == -EBUSY) {
		say("busy %s", shmq_errdetail());
		return EXIT_BUSY;
	}
	if (err < 0) {
		say("error consumer_open %d %s", err, shmq_errdetail());
		return EXIT_ERR;
	}
	g_c = c;
	if (!max)
		max = queue_max(q);

	uint8_t *buf = g_buf = malloc(max + 1);

	if (!buf)
		return EXIT_ERR;
	{
		/* "ended=1": no live producer when we attached (sessions). */
		struct shmq_stat *st;
		int ended = 0;

		if (shmq_stat_get(q, &st) == 0) {
			ended = st->producer_state != SHMQ_PRODUCER_OPEN;
			shmq_stat_free(st);
		}
		say("ready pid=%d ended=%d", (int)getpid(), ended);
	}

	for (;;) {
		struct shmq_msg m;
		const void *data;

		if (got == count && !hold)
			break;
		if (use_recv && !(got == count)) {
			ssize_t r = shmq_recv(c, buf, max + 1, &m,
					      SHMQ_FOREVER);

			err = r < 0 ? (int)r : 0;
			if (r >= 0 && (size_t)r != m.len) {
				say("bad recv returned %zd, msg.len %zu", r,
				    m.len);
				return EXIT_BAD;
			}
			data = buf;
		} else {
			err = shmq_peek(c, &m, SHMQ_FOREVER);
			data = m.data;
		}
		if ((err == SHMQ_EOF || err == SHMQ_EDIED) && ends > 1) {
			ends--;		/* read on into the next session */
			say("session %s count=%" PRIu64, err == SHMQ_EOF ?
			    "eof" : "died", got);
			continue;
		}
		if ((err == SHMQ_EOF || err == SHMQ_EDIED) &&
		    (group || observe)) {
			say("end %s count=%" PRIu64 " next=%" PRIu64
			    " lost=%" PRIu64 " redelivered=%" PRIu64,
			    err == SHMQ_EOF ? "eof" : "died", got, expect, lost,
			    redelivered);
			return 0;
		}
		if (err == SHMQ_EOF || err == SHMQ_EDIED) {
			say("end %s count=%" PRIu64 " next=%" PRIu64,
			    err == SHMQ_EOF ? "eof" : "died", got, expect);
			return 0;
		}
		if (err < 0) {
			say("end error=%d (%s) count=%" PRIu64 " next=%" PRIu64
			    " %s", err, shmq_strerror(err), got, expect,
			    shmq_errdetail());
			return EXIT_ERR;
		}
		if (any_first) {
			expect = m.seq;
			any_first = 0;
		}
		if (observe) {
			/* Exact loss: the gap is what it says it lost. */
			if (m.seq != expect + m.lost) {
				say("bad seq %" PRIu64 " with lost=%" PRIu64
				    ", expected %" PRIu64 " after %" PRIu64
				    " messages", m.seq, m.lost, expect + m.lost,
				    got);
				return EXIT_BAD;
			}
			lost += m.lost;
			expect = m.seq;
		} else if (group) {
			if (m.flags & SHMQ_MSG_REDELIVERED)
				redelivered++;
			expect = m.seq;
		}
		if (m.seq != expect) {
			say("bad seq %" PRIu64 ", expected %" PRIu64
			    " after %" PRIu64 " messages", m.seq, expect, got);
			return EXIT_BAD;
		}

		const char *why = h_msg_check(data, m.len, seed, m.seq, max);

		if (why) {
			say("bad %s", why);
			return EXIT_BAD;
		}
		if (got == count) {
			/* --hold: keep this one peeked, unreleased, and stop. */
			say("holding seq=%" PRIu64 " next=%" PRIu64, m.seq,
			    expect);
			park();
		}
		if (log_fd >= 0) {
			uint64_t rec = m.seq;

			if (m.flags & SHMQ_MSG_REDELIVERED)
				rec |= 1ull << 63;
			/* Logged before the release: a kill between the two
			 * makes a flagged redelivery, never a silent loss. */
			if (write(log_fd, &rec, sizeof(rec)) != sizeof(rec)) {
				say("error log write %s", strerror(errno));
				return EXIT_ERR;
			}
		}
		if (hold_us && !use_recv)
			usleep((useconds_t)hold_us);
		if (!use_recv) {
			err = shmq_release(c);
			if (err < 0) {
				say("end error=%d release", err);
				return EXIT_ERR;
			}
		}
		got++;
		expect++;
		if (slow_us && got % slow_every == 0)
			usleep((useconds_t)slow_us);
	}
	if (do_pause) {
		say("paused count=%" PRIu64 " next=%" PRIu64, got, expect);
		park();
	}
	g_c = NULL;
	shmq_consumer_close(c);
	if (group || observe)
		say("end count count=%" PRIu64 " next=%" PRIu64 " lost=%" PRIu64
		    " redelivered=%" PRIu64, got, expect, lost, redelivered);
	else
		say("end count count=%" PRIu64 " next=%" PRIu64, got, expect);
	return 0;
}

int main(int argc, char **argv)
{
	/* A test that stopped reading must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	if (!strcmp(argv[1], "produce"))
		return produce(argc, argv);
	if (!strcmp(argv[1], "consume"))
		return consume(argc, argv);
	usage();
	return EXIT_ERR;
}
