/* SPDX-License-Identifier: MIT */
/*
 * Adversarial review of the wait for a session's end (lib/consumer.c
 * wait_data(), S1): a producer that ends its session without room for
 * its END record (a lagging consumer holds the ring full) is told by
 * prod_state alone. The kill-point build runs the close, the abort, or
 * a whole new session exactly between the waiting consumer's spin and
 * its load of data_futex ("consumer:wait-before-futex-load", through the
 * test hook in this process, or SIGSTOP from the environment in a peer),
 * and the tests require the right end, once, for the right session,
 * with nothing lost, and without a sleep ("consumer:wait-sleep") where
 * the state already tells. No timed assertion: whether it slept is read
 * from the hook.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

/* Test-only, defined by the kill-point build (lib/killpoint.c). */
extern void (*shmqi_kill_hook)(const char *name);

TestSuite(wait_adv, .init = h_setup, .fini = h_teardown, .timeout = 60);

#define MSG 256

/* The hook: ACTION at the AT_NTH pass through "wait-before-futex-load". */
static void (*action)(void);
static int at_nth, loads, acted, sleeps_after;

static void hook(const char *name)
{
	if (!strcmp(name, "consumer:wait-sleep") && acted)
		sleeps_after++;
	if (strcmp(name, "consumer:wait-before-futex-load") || !action)
		return;
	if (++loads != at_nth)
		return;
	acted = 1;
	action();
	action = NULL;
}

static void arm(void (*fn)(void), int nth)
{
	action = fn;
	at_nth = nth;
	loads = acted = sleeps_after = 0;
	shmqi_kill_hook = hook;
}

static void disarm(void)
{
	shmqi_kill_hook = NULL;
	action = NULL;
}

static const struct shmq_config cfg = {
	.capacity = 4096, .max_message = MSG,
	.when_full = SHMQ_WHEN_FULL_BLOCK,
};

struct fixture {
	struct shmq *q;
	struct shmq_consumer *a;	/* the waiter */
	struct shmq_consumer *b;	/* holds the ring: never reads */
	struct shmq_producer *p;
	int sent;
	uint32_t inc;		/* the producer's session */
};

static struct fixture fx;

/*
 * A queue whose ring B holds full, every message read by A: a close now
 * finds no room for its END record. A's last call probed liveness, so
 * within LIVE_CHECK_NS only the state tells of an end.
 */
static void fill(const struct shmq_consumer_opts *ao,
		 const struct shmq_consumer_opts *bo)
{
	struct shmq_msg m;
	char buf[MSG];
	int got = 0;

	memset(buf, 'x', sizeof(buf));
	memset(&fx, 0, sizeof(fx));
	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &fx.q), 0);
	cr_assert_eq(shmq_consumer_open(fx.q, ao, &fx.a), 0);
	cr_assert_eq(shmq_consumer_open(fx.q, bo, &fx.b), 0);
	cr_assert_eq(shmq_producer_open(fx.q, NULL, &fx.p), 0);
	while (shmq_send(fx.p, buf, sizeof(buf), SHMQ_NOWAIT) == 0)
		fx.sent++;
	cr_assert_gt(fx.sent, 4);
	while (got < fx.sent &&
	       shmq_recv(fx.a, buf, sizeof(buf), &m, SHMQ_NOWAIT) >= 0)
		got++;
	cr_assert_eq(got, fx.sent);
	fx.inc = m.inc;
	cr_assert_eq(shmq_recv(fx.a, buf, sizeof(buf), &m, 1000000),
		     -ETIMEDOUT);
}

static void unfill(void)
{
	disarm();
	shmq_consumer_close(fx.a);
	shmq_consumer_close(fx.b);
	if (fx.p)
		shmq_producer_close(fx.p);
	shmq_close(fx.q);
}

static void do_close(void)
{
	cr_assert_eq(shmq_producer_close(fx.p), 0);
	fx.p = NULL;
}

static void do_abort(void)
{
	cr_assert_eq(shmq_producer_abort(fx.p), 0);
	fx.p = NULL;
}

static ssize_t recv_a(int64_t timeout)
{
	struct shmq_msg m;
	char buf[MSG];

	return shmq_recv(fx.a, buf, sizeof(buf), &m, timeout);
}

static uint32_t last_end(struct shmq_consumer *c)
{
	uint32_t inc = 0;

	cr_assert_eq(shmq_consumer_last_end(c, &inc), 0);
	return inc;
}

/*
 * An abort is a close for the consumer (shmq.h: SHMQ_EABORTED instead of
 * SHMQ_EOF). One that found no room for its END record between the two
 * loads: told by the state, at once, as a close is.
 */
Test(wait_adv, abort_without_end_between_the_loads)
{
	ssize_t n;

	fill(NULL, NULL);
	arm(do_abort, 1);
	n = recv_a(50 * 1000000LL);
	disarm();
	cr_assert_eq(acted, 1, "the wait did not reach its futex load");
	cr_assert_eq(n, SHMQ_EABORTED, "a wait across the abort: %zd (%s)",
		     n, shmq_strerror((int)n));
	cr_assert_eq(sleeps_after, 0, "the consumer slept %d times on an "
		     "aborted queue", sleeps_after);
	unfill();
}

/* The same, polled: SHMQ_NOWAIT right after the abort. */
Test(wait_adv, abort_without_end_then_nowait)
{
	ssize_t n;

	fill(NULL, NULL);
	cr_assert_eq(recv_a(SHMQ_NOWAIT), -EAGAIN);	/* probes liveness */
	do_abort();
	n = recv_a(SHMQ_NOWAIT);
	cr_assert_eq(n, SHMQ_EABORTED, "a poll after the abort: %zd (%s)",
		     n, shmq_strerror((int)n));
	unfill();
}

/* A close, polled: the baseline of the test above. */
Test(wait_adv, close_without_end_then_nowait)
{
	ssize_t n;

	fill(NULL, NULL);
	cr_assert_eq(recv_a(SHMQ_NOWAIT), -EAGAIN);
	do_close();
	n = recv_a(SHMQ_NOWAIT);
	cr_assert_eq(n, SHMQ_EOF, "a poll after the close: %zd (%s)",
		     n, shmq_strerror((int)n));
	unfill();
}

/*
 * Two whole sessions end between the loads, neither with room for its
 * END: two ends, in order, each for its own session, not one.
 */
static uint32_t inc1, inc2;

static void two_sessions(void)
{
	cr_assert_eq(shmq_producer_close(fx.p), 0);
	cr_assert_eq(shmq_producer_open(fx.q, NULL, &fx.p), 0);
	cr_assert_eq(shmq_producer_close(fx.p), 0);
	fx.p = NULL;
}

Test(wait_adv, two_sessions_end_between_the_loads)
{
	ssize_t n;

	fill(NULL, NULL);
	inc1 = fx.inc;
	inc2 = inc1 + 1;
	arm(two_sessions, 1);
	n = recv_a(50 * 1000000LL);
	disarm();
	cr_assert_eq(acted, 1);
	cr_assert_eq(n, SHMQ_EOF, "first: %zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(last_end(fx.a), inc1, "the first end is of session %u, "
		     "not %u: the end of %u was lost", last_end(fx.a), inc1,
		     inc1);
	n = recv_a(50 * 1000000LL);
	cr_assert_eq(n, SHMQ_EOF, "second: %zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(last_end(fx.a), inc2);
	n = recv_a(1000000);
	cr_assert_eq(n, -ETIMEDOUT, "third: %zd (%s)", n, shmq_strerror((int)n));
	unfill();
}

/*
 * A close without room, then B reads on and a new session opens (its
 * open writes the owed END) and sends, all between the loads: the old
 * end once, then every new message, and no end of the new session.
 */
#define NEW_MSGS 5

static void close_drain_reopen(void)
{
	struct shmq_msg m;
	char buf[MSG];
	int i;

	cr_assert_eq(shmq_producer_close(fx.p), 0);
	while (shmq_recv(fx.b, buf, sizeof(buf), &m, SHMQ_NOWAIT) >= 0)
		;
	cr_assert_eq(shmq_producer_open(fx.q, NULL, &fx.p), 0);
	for (i = 0; i < NEW_MSGS; i++) {
		snprintf(buf, sizeof(buf), "new %d", i);
		cr_assert_eq(shmq_send(fx.p, buf, strlen(buf) + 1,
				       SHMQ_NOWAIT), 0);
	}
}

Test(wait_adv, new_session_between_the_loads)
{
	struct shmq_msg m;
	char buf[MSG], want[32];
	ssize_t n;
	int i;

	fill(NULL, NULL);
	arm(close_drain_reopen, 1);
	n = recv_a(50 * 1000000LL);
	disarm();
	cr_assert_eq(acted, 1);
	cr_assert_eq(n, SHMQ_EOF, "first: %zd (%s)", n, shmq_strerror((int)n));
	for (i = 0; i < NEW_MSGS; i++) {
		n = shmq_recv(fx.a, buf, sizeof(buf), &m, 50 * 1000000LL);
		cr_assert_geq(n, 0, "message %d of the new session: %zd (%s)",
			      i, n, shmq_strerror((int)n));
		snprintf(want, sizeof(want), "new %d", i);
		cr_assert_str_eq(buf, want);
	}
	n = recv_a(1000000);
	cr_assert_eq(n, -ETIMEDOUT, "after the new session's messages: %zd "
		     "(%s)", n, shmq_strerror((int)n));
	unfill();
}

/*
 * F2 re-sleep: the consumer slept out a slice (100 ms) and comes back to
 * sleep on the same value without the handshake; the close comes then.
 */
Test(wait_adv, close_at_the_resleep)
{
	ssize_t n;

	fill(NULL, NULL);
	arm(do_close, 2);
	n = recv_a(400 * 1000000LL);
	disarm();
	cr_assert_eq(acted, 1, "no second pass: %d", loads);
	cr_assert_eq(n, SHMQ_EOF, "%zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(sleeps_after, 0);
	unfill();
}

Test(wait_adv, abort_at_the_resleep)
{
	ssize_t n;

	fill(NULL, NULL);
	arm(do_abort, 2);
	n = recv_a(400 * 1000000LL);
	disarm();
	cr_assert_eq(acted, 1, "no second pass: %d", loads);
	cr_assert_eq(n, SHMQ_EABORTED, "%zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(sleeps_after, 0);
	unfill();
}

/*
 * Both ends told by the state (two sessions without room for their END
 * records), then the ring frees and a third session writes the two owed
 * END records before its messages: they were returned already, so the
 * third session's messages come next, and no end a second time.
 */
Test(wait_adv, owed_ends_after_state_ends_are_not_returned_again)
{
	struct shmq_msg m;
	char buf[MSG];
	ssize_t n;
	int i;

	fill(NULL, NULL);
	two_sessions();
	n = recv_a(50 * 1000000LL);
	cr_assert_eq(n, SHMQ_EOF, "first: %zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(last_end(fx.a), fx.inc);
	n = recv_a(50 * 1000000LL);
	cr_assert_eq(n, SHMQ_EOF, "second: %zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(last_end(fx.a), fx.inc + 1);
	while (shmq_recv(fx.b, buf, sizeof(buf), &m, SHMQ_NOWAIT) >= 0)
		;
	cr_assert_eq(shmq_producer_open(fx.q, NULL, &fx.p), 0);
	for (i = 0; i < NEW_MSGS; i++)
		cr_assert_eq(shmq_send(fx.p, "m", 2, SHMQ_NOWAIT), 0);
	for (i = 0; i < NEW_MSGS; i++) {
		n = shmq_recv(fx.a, buf, sizeof(buf), &m, 50 * 1000000LL);
		cr_assert_geq(n, 0, "message %d of the third session: %zd (%s)"
			      " (last end %u)", i, n, shmq_strerror((int)n),
			      last_end(fx.a));
		cr_assert_eq(m.inc, fx.inc + 2);
	}
	n = recv_a(1000000);
	cr_assert_eq(n, -ETIMEDOUT, "%zd (%s)", n, shmq_strerror((int)n));
	unfill();
}

/* ---- real processes: a consumer stopped in its wait, a producer peer -- */

enum kind { K_ANON, K_NAMED, K_MEMBER, K_OBSERVER, K_FD };
enum op { OP_RECV, OP_PEEK, OP_PEEK_MANY };
enum scen { S_CLOSE, S_ABORT, S_KILL, S_REOPEN };

#define REOPEN_MSGS 7

static void wr_all(int fd, const void *b, size_t n)
{
	cr_assert_eq(write(fd, b, n), (ssize_t)n);
}

static int rd_all(int fd, void *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, 10000) <= 0)
			return -1;
		r = read(fd, (char *)b + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* The consumer's blocking call: 0 or > 0 (messages), or the status. */
static ssize_t c_wait(struct shmq_consumer *c, enum op op, int fd,
		      struct shmq_msg *m, int64_t timeout)
{
	char buf[MSG];
	ssize_t n;

	if (fd >= 0) {
		for (;;) {
			struct pollfd pf = { .fd = fd, .events = POLLIN };

			n = shmq_recv(c, buf, sizeof(buf), m, SHMQ_NOWAIT);
			if (n != -EAGAIN)
				return n;
			if (poll(&pf, 1, 10000) <= 0)
				return -ETIME;
		}
	}
	if (op == OP_PEEK) {
		n = shmq_peek(c, m, timeout);
		if (n == 0 && shmq_release(c) != 0)
			return -EPROTO;
		return n == 0 ? (ssize_t)m->len : n;
	}
	if (op == OP_PEEK_MANY) {
		struct shmq_msg ms[1];

		n = shmq_peek_many(c, ms, 1, timeout);
		if (n == 1) {
			*m = ms[0];
			if (shmq_release(c) != 0)
				return -EPROTO;
			return (ssize_t)m->len;
		}
		return n;
	}
	return shmq_recv(c, buf, sizeof(buf), m, timeout);
}

/*
 * The consumer peer: attach (kind), read the N messages the ring holds
 * (N from the parent), then one blocking call, stopped in it by
 * SHMQ_STOP_AT (the parent acts, then SIGCONT). Exit 0 when it got the
 * scenario's end, once, and (S_REOPEN) every new message and no end of
 * the new session; else a code that says what went wrong.
 */
static int consumer_peer(enum kind k, enum op op, enum scen s,
			 const char *stop_at, int rd, int wr)
{
	struct shmq_consumer_opts o = { 0 };
	struct shmq_consumer *c;
	struct shmq_msg m;
	struct shmq *q;
	char buf[MSG];
	int fd = -1, n, i;
	uint64_t seq = 0;
	uint32_t inc = 0;
	ssize_t r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(30);
	/*
	 * Before any kill point (the first reads the environment): the
	 * NOWAIT reads below pass neither point, the blocking call both.
	 */
	if (stop_at && k != K_FD)
		setenv("SHMQ_STOP_AT", stop_at, 1);
	if (k == K_NAMED)
		o.name = "named";
	if (k == K_MEMBER) {
		o.kind = SHMQ_CONSUMER_GROUP;
		o.name = "grp";
	}
	if (k == K_OBSERVER)
		o.kind = SHMQ_CONSUMER_OBSERVER;
	if (shmq_open(h_path("q"), 0, NULL, &q) ||
	    shmq_consumer_open(q, &o, &c))
		return 10;
	if (k == K_FD && (fd = shmq_consumer_fd(c)) < 0)
		return 11;
	wr_all(wr, "A", 1);
	if (rd_all(rd, &n, sizeof(n)))
		return 12;
	for (i = 0; i < n; i++) {
		r = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		if (r < 0) {
			fprintf(stderr, "peer: message %d of %d: %zd\n", i, n, r);
			return 13;
		}
		if (i && m.seq != seq + 1)
			return 14;	/* lost or duplicated */
		seq = m.seq;
		inc = m.inc;
	}
	if (k == K_FD) {
		/* Armed: the -EAGAIN. The parent acts, then we look. */
		if (shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT) != -EAGAIN)
			return 15;
		wr_all(wr, "W", 1);
		if (rd_all(rd, buf, 1))
			return 16;
	}
	r = c_wait(c, op, fd, &m, 10 * 1000000000LL);
	/*
	 * docs/decisions.md, known limitation: a member learns an end from
	 * the state only, and one that finds the next session open reads
	 * on into it. Then nothing may be lost: the new session follows.
	 */
	if (k == K_MEMBER && s == S_REOPEN && r >= 0) {
		if (m.inc == inc)
			return 25;
		seq = m.seq;
		i = 1;
		goto reopen;
	}
	{
		ssize_t want = s == S_CLOSE || s == S_REOPEN ? SHMQ_EOF :
			       s == S_ABORT ? SHMQ_EABORTED : SHMQ_EDIED;
		uint32_t e = 0;

		if (r != want) {
			fprintf(stderr, "peer: %zd (%s), not %zd\n", r,
				shmq_strerror((int)r), want);
			return 20;
		}
		if (shmq_consumer_last_end(c, &e) || e != inc) {
			fprintf(stderr, "peer: end of %u, not %u\n", e, inc);
			return 21;
		}
	}
	if (s == S_REOPEN) {
		i = 0;
		seq = 0;
reopen:
		for (; i < REOPEN_MSGS; i++) {
			r = c_wait(c, op, fd, &m, 10 * 1000000000LL);
			if (r < 0) {
				fprintf(stderr, "peer: new message %d: %zd (%s)\n",
					i, r, shmq_strerror((int)r));
				return 22;
			}
			if (m.inc == inc || (seq && m.seq != seq + 1))
				return 23;
			seq = m.seq;
		}
	}
	/* Nothing more: no second end, no end of the new session. */
	r = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
	if (r != -EAGAIN) {
		fprintf(stderr, "peer: after all: %zd (%s)\n", r,
			shmq_strerror((int)r));
		return 24;
	}
	shmq_consumer_close(c);
	shmq_close(q);
	return 0;
}

/* The producer peer: fill the ring (reply: how many), then c/a on command. */
static int producer_peer(int rd, int wr)
{
	struct shmq_producer *p;
	struct shmq *q;
	char buf[MSG] = "p", cmd;
	int n = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(30);
	if (shmq_open(h_path("q"), 0, NULL, &q) ||
	    shmq_producer_open(q, NULL, &p))
		return 10;
	while (shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT) == 0)
		n++;
	wr_all(wr, &n, sizeof(n));
	if (rd_all(rd, &cmd, 1))
		return 11;
	if (cmd == 'c' && shmq_producer_close(p))
		return 12;
	if (cmd == 'a' && shmq_producer_abort(p))
		return 13;
	if (cmd == 'k')
		pause();	/* the parent kills us */
	shmq_close(q);
	return 0;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

/* Reap PID within TIMEOUT_MS (or kill it): its wait status. */
static int reap(pid_t pid, int timeout_ms, int flags)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ms * 1000000;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG | flags);

		if (r == pid)
			return st;
		cr_assert_eq(r, 0);
		if (h_now_ns() > end) {
			kill(pid, SIGKILL);
			kill(pid, SIGCONT);
			waitpid(pid, &st, 0);
			cr_assert_fail("peer %d did not %s in time", (int)pid,
				       flags ? "stop" : "exit");
		}
		h_sleep_ms(2);
	}
}

struct pargs {
	enum kind k;
	enum op op;
	enum scen s;
	const char *stop_at;
	int c_rd, c_wr, p_rd, p_wr;
};

static int run_consumer(void *a)
{
	struct pargs *pa = a;

	return consumer_peer(pa->k, pa->op, pa->s, pa->stop_at, pa->c_rd,
			     pa->c_wr);
}

static int run_producer(void *a)
{
	struct pargs *pa = a;

	return producer_peer(pa->p_rd, pa->p_wr);
}

static void xproc(enum kind k, enum op op, enum scen s, const char *stop_at)
{
	int to_c[2], from_c[2], to_p[2], from_p[2], n, st, i;
	struct shmq_consumer *b;
	struct shmq_producer *p2 = NULL;
	struct shmq_msg m;
	struct shmq *q;
	struct pargs pa;
	pid_t cpid, ppid;
	char ch, buf[MSG];

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &b), 0);	/* holds it */
	cr_assert_eq(pipe(to_c) | pipe(from_c) | pipe(to_p) | pipe(from_p), 0);
	pa = (struct pargs){ k, op, s, stop_at, to_c[0], from_c[1],
			     to_p[0], from_p[1] };
	cpid = spawn(run_consumer, &pa);
	cr_assert_eq(rd_all(from_c[0], &ch, 1), 0, "consumer peer: no attach");
	ppid = spawn(run_producer, &pa);
	cr_assert_eq(rd_all(from_p[0], &n, sizeof(n)), 0);
	cr_assert_gt(n, 4);
	wr_all(to_c[1], &n, sizeof(n));
	if (k == K_FD)
		cr_assert_eq(rd_all(from_c[0], &ch, 1), 0);
	else if (stop_at)
		cr_assert(WIFSTOPPED(reap(cpid, 10000, WUNTRACED)),
			  "the consumer did not stop at %s", stop_at);
	/* The consumer is in its wait: end the session (no room for END). */
	if (s == S_KILL) {
		wr_all(to_p[1], "k", 1);
		h_sleep_ms(1);
		kill(ppid, SIGKILL);
		st = reap(ppid, 10000, 0);
	} else {
		wr_all(to_p[1], s == S_ABORT ? "a" : "c", 1);
		st = reap(ppid, 10000, 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "producer peer: %#x", st);
	}
	if (s == S_REOPEN) {
		while (shmq_recv(b, buf, sizeof(buf), &m, SHMQ_NOWAIT) >= 0)
			;
		cr_assert_eq(shmq_producer_open(q, NULL, &p2), 0);
		for (i = 0; i < REOPEN_MSGS; i++)
			cr_assert_eq(shmq_send(p2, "n", 2, SHMQ_NOWAIT), 0);
	}
	if (k == K_FD)
		wr_all(to_c[1], "G", 1);
	else if (stop_at)
		kill(cpid, SIGCONT);
	st = reap(cpid, 20000, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "consumer peer (kind %d, op %d, scenario %d, stop at %s): "
		  "status %#x (exit %d)", k, op, s, stop_at ? stop_at : "-",
		  st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	if (p2)
		shmq_producer_close(p2);
	shmq_consumer_close(b);
	shmq_close(q);
	close(to_c[0]); close(to_c[1]); close(from_c[0]); close(from_c[1]);
	close(to_p[0]); close(to_p[1]); close(from_p[0]); close(from_p[1]);
}

#define LOAD "consumer:wait-before-futex-load"
#define SLEEP "consumer:wait-sleep"

#define XTEST(name, k, op, s, at) \
	Test(wait_adv, name) { xproc(k, op, s, at); }

XTEST(x_close_load_recv, K_ANON, OP_RECV, S_CLOSE, LOAD)
XTEST(x_close_sleep_recv, K_ANON, OP_RECV, S_CLOSE, SLEEP)
XTEST(x_abort_load_recv, K_ANON, OP_RECV, S_ABORT, LOAD)
XTEST(x_abort_sleep_recv, K_ANON, OP_RECV, S_ABORT, SLEEP)
XTEST(x_kill_load_recv, K_ANON, OP_RECV, S_KILL, LOAD)
XTEST(x_kill_sleep_recv, K_ANON, OP_RECV, S_KILL, SLEEP)
XTEST(x_reopen_load_recv, K_ANON, OP_RECV, S_REOPEN, LOAD)
XTEST(x_reopen_sleep_recv, K_ANON, OP_RECV, S_REOPEN, SLEEP)
XTEST(x_close_load_peek, K_ANON, OP_PEEK, S_CLOSE, LOAD)
XTEST(x_reopen_load_peek, K_ANON, OP_PEEK, S_REOPEN, LOAD)
XTEST(x_abort_load_peek_many, K_ANON, OP_PEEK_MANY, S_ABORT, LOAD)
XTEST(x_reopen_sleep_peek_many, K_ANON, OP_PEEK_MANY, S_REOPEN, SLEEP)
XTEST(x_close_load_named, K_NAMED, OP_RECV, S_CLOSE, LOAD)
XTEST(x_reopen_load_named, K_NAMED, OP_RECV, S_REOPEN, LOAD)
XTEST(x_abort_sleep_named, K_NAMED, OP_RECV, S_ABORT, SLEEP)
XTEST(x_close_load_member, K_MEMBER, OP_RECV, S_CLOSE, LOAD)
XTEST(x_abort_load_member, K_MEMBER, OP_RECV, S_ABORT, LOAD)
XTEST(x_kill_sleep_member, K_MEMBER, OP_RECV, S_KILL, SLEEP)
XTEST(x_reopen_load_member, K_MEMBER, OP_RECV, S_REOPEN, LOAD)
XTEST(x_close_load_observer, K_OBSERVER, OP_RECV, S_CLOSE, LOAD)
XTEST(x_abort_sleep_observer, K_OBSERVER, OP_RECV, S_ABORT, SLEEP)
XTEST(x_reopen_load_observer, K_OBSERVER, OP_RECV, S_REOPEN, LOAD)
XTEST(x_close_fd, K_FD, OP_RECV, S_CLOSE, NULL)
XTEST(x_abort_fd, K_FD, OP_RECV, S_ABORT, NULL)
XTEST(x_kill_fd, K_FD, OP_RECV, S_KILL, NULL)
XTEST(x_reopen_fd, K_FD, OP_RECV, S_REOPEN, NULL)

/*
 * A close without room, then a new session opens (no room for the owed
 * END either), between the loads: the old session's end once, no end of
 * the new one while it is open; then its messages (the owed END skipped)
 * and its own end, once.
 */
static void close_reopen(void)
{
	cr_assert_eq(shmq_producer_close(fx.p), 0);
	cr_assert_eq(shmq_producer_open(fx.q, NULL, &fx.p), 0);
}

Test(wait_adv, close_and_reopen_without_room_between_the_loads)
{
	struct shmq_msg m;
	char buf[MSG];
	ssize_t n;
	int i;

	fill(NULL, NULL);
	arm(close_reopen, 1);
	n = recv_a(50 * 1000000LL);
	disarm();
	cr_assert_eq(acted, 1);
	cr_assert_eq(n, SHMQ_EOF, "first: %zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(last_end(fx.a), fx.inc);
	n = recv_a(20 * 1000000LL);
	cr_assert_eq(n, -ETIMEDOUT, "an end of the open session: %zd (%s)",
		     n, shmq_strerror((int)n));
	cr_assert_eq(recv_a(SHMQ_NOWAIT), -EAGAIN);
	while (shmq_recv(fx.b, buf, sizeof(buf), &m, SHMQ_NOWAIT) >= 0)
		;
	for (i = 0; i < NEW_MSGS; i++)
		cr_assert_eq(shmq_send(fx.p, "m", 2, SHMQ_NOWAIT), 0);
	for (i = 0; i < NEW_MSGS; i++) {
		n = shmq_recv(fx.a, buf, sizeof(buf), &m, 50 * 1000000LL);
		cr_assert_eq(n, 2, "message %d: %zd (%s)", i, n,
			     shmq_strerror((int)n));
		cr_assert_eq(m.inc, fx.inc + 1);
	}
	cr_assert_eq(shmq_producer_close(fx.p), 0);
	fx.p = NULL;
	n = recv_a(50 * 1000000LL);
	cr_assert_eq(n, SHMQ_EOF, "%zd (%s)", n, shmq_strerror((int)n));
	cr_assert_eq(last_end(fx.a), fx.inc + 1);
	n = recv_a(1000000);
	cr_assert_eq(n, -ETIMEDOUT, "%zd (%s)", n, shmq_strerror((int)n));
	unfill();
}
