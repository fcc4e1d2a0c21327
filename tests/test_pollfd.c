/* SPDX-License-Identifier: MIT */
/*
 * Pollable descriptors (issue 14): shmq_consumer_fd() and
 * shmq_producer_fd() across real processes (fork, each side attaching by
 * path afresh), with poll and epoll, level and edge triggered: readable
 * on data, on the end of a session, on the producer's death (SIGKILL,
 * pidfd and the fallback timer), on eviction; no lost wake-up over
 * 100,000 sleeps and wakes; a SIGKILLed poller costs the producer at most
 * one ring; inherited across fork() it is inert; a second Unix user who
 * shares the queue by group. Every child has a watchdog (alarm and
 * PR_SET_PDEATHSIG); every wait in the parent is bounded, so a lost
 * wake-up fails the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

/* In the static library (tests link it): test hooks of lib/pollfd.c. */
extern uint64_t shmqi_ring_count;
extern int shmqi_no_pidfd;

#define WAIT_MS		5000	/* a wake-up later than this is lost */

static char qpath[4096];

static void setup(void)
{
	h_setup();
}

static void teardown(void)
{
	h_teardown();
}

TestSuite(pollfd, .init = setup, .fini = teardown, .timeout = 240);

static void mkq(uint64_t cap, uint32_t evict_ms)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = 1024,
				   .evict_after_ms = evict_ms };
	int err;

	snprintf(qpath, sizeof(qpath), "%s", h_path("q"));
	unlink(qpath);
	err = shmq_create(qpath, &cfg);
	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

static struct shmq *attach(void)
{
	struct shmq *q;
	int err = shmq_open(qpath, 0, NULL, &q);

	cr_assert_eq(err, 0, "open: %s (%s)", shmq_strerror(err), shmq_errdetail());
	return q;
}

/* A child: dies with us, and on its own after WATCHDOG seconds. */
static pid_t child(unsigned int watchdog)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(watchdog);
	}
	return pid;
}

static int reap(pid_t pid)
{
	int st;

	for (int i = 0; i < 3000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		h_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Child side: a producer by path that sends N tagged messages. */
static struct shmq_producer *child_producer(struct shmq **qp)
{
	struct shmq_producer *p;

	if (shmq_open(qpath, 0, NULL, qp) < 0 ||
	    shmq_producer_open(*qp, NULL, &p) < 0)
		_exit(10);
	return p;
}

static void send_u64(struct shmq_producer *p, uint64_t v)
{
	if (shmq_send(p, &v, sizeof(v), SHMQ_FOREVER) < 0)
		_exit(11);
}

static int wait_readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms);
}

/*
 * Read with SHMQ_NOWAIT until -EAGAIN or an end; check the sequence.
 * Returns the status that stopped it.
 */
static ssize_t drain(struct shmq_consumer *c, uint64_t *next)
{
	uint64_t v;
	ssize_t n;

	while ((n = shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT)) >= 0) {
		cr_assert_eq(n, sizeof(v));
		cr_assert_eq(v, *next, "got %llu, expected %llu",
			     (unsigned long long)v, (unsigned long long)*next);
		(*next)++;
	}
	return n;
}

/* Producer child: N messages, a pause every EVERY of them, then close. */
static void produce(unsigned int n, unsigned int every, unsigned int pause_us)
{
	struct shmq *q;
	struct shmq_producer *p = child_producer(&q);

	for (unsigned int i = 0; i < n; i++) {
		send_u64(p, i);
		if (every && (i + 1) % every == 0)
			usleep(pause_us);
	}
	_exit(shmq_producer_close(p) == 0 ? 0 : 12);
}

Test(pollfd, poll_level_triggered_across_processes_to_the_end)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint64_t next = 0;
	ssize_t st;
	pid_t pid;
	int fd;

	mkq(1 << 16, 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3, "fd %d: %s", fd, shmq_errdetail());
	cr_assert_eq(shmq_consumer_fd(c), fd, "one descriptor per consumer");
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	pid = child(60);
	if (pid == 0)
		produce(20000, 100, 2000);
	for (;;) {
		cr_assert_eq(wait_readable(fd, WAIT_MS), 1,
			     "lost wake-up at message %llu", (unsigned long long)next);
		st = drain(c, &next);
		if (st != -EAGAIN)
			break;
	}
	cr_assert_eq(st, SHMQ_EOF, "%s", shmq_strerror((int)st));
	cr_assert_eq(next, 20000);
	cr_assert_eq(reap(pid), 0);
	/* The end was returned: idle again, not readable for ever. */
	cr_assert_eq(drain(c, &next), -EAGAIN);
	cr_assert_eq(wait_readable(fd, 50), 0, "readable with nothing to say");
	shmq_consumer_close(c);
	shmq_close(q);
}

/* One epoll loop, the consumer's descriptor added with FLAGS. */
static void epoll_run(uint32_t flags, unsigned int n, unsigned int every,
		      unsigned int pause_us, uint64_t *wakes)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct epoll_event ev = { .events = EPOLLIN | flags };
	uint64_t next = 0;
	ssize_t st;
	pid_t pid;
	int ep;

	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, shmq_consumer_fd(c), &ev), 0);
	pid = child(200);
	if (pid == 0)
		produce(n, every, pause_us);
	*wakes = 0;
	for (;;) {
		int r = epoll_wait(ep, &ev, 1, WAIT_MS);

		cr_assert_eq(r, 1, "lost wake-up at message %llu of %u",
			     (unsigned long long)next, n);
		++*wakes;
		st = drain(c, &next);
		if (st != -EAGAIN)
			break;
	}
	cr_assert_eq(st, SHMQ_EOF, "%s", shmq_strerror((int)st));
	cr_assert_eq(next, n);
	cr_assert_eq(reap(pid), 0);
	close(ep);
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(pollfd, epoll_level_and_edge_triggered)
{
	uint64_t wakes;

	mkq(1 << 16, 0);
	epoll_run(0, 20000, 50, 1000, &wakes);
	mkq(1 << 16, 0);
	epoll_run(EPOLLET, 20000, 50, 1000, &wakes);
}

/*
 * No lost wake-up: 100,000 messages, each sent after the consumer said
 * it is about to wait (a pipe), so that the consumer sleeps and is woken
 * 100,000 times; then 100,000 more, each sent as soon as the last was
 * received, which races the publish against the consumer's arming. A
 * lost wake-up is a 5 s timeout.
 */
Test(pollfd, no_lost_wakeup_over_100000_sleeps, .timeout = 600)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	uint64_t next = 0, wakes = 0;
	const unsigned int n = 100000;
	int ack[2], ep;
	ssize_t st;
	pid_t pid;

	mkq(1 << 16, 0);
	cr_assert_eq(pipe(ack), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, shmq_consumer_fd(c), &ev), 0);
	pid = child(500);
	if (pid == 0) {
		struct shmq_producer *p;
		char b;

		close(ack[1]);
		p = child_producer(&q);
		for (unsigned int i = 0; i < n; i++) {
			if (read(ack[0], &b, 1) != 1)
				_exit(13);
			send_u64(p, i);
		}
		/* Phase 2: the next as soon as one is received, racing
		 * the consumer's arming. */
		for (unsigned int i = n; i < 2 * n; i++) {
			if (i > n && read(ack[0], &b, 1) != 1)
				_exit(13);
			send_u64(p, i);
		}
		_exit(shmq_producer_close(p) == 0 ? 0 : 12);
	}
	close(ack[0]);
	for (;;) {
		uint64_t v;

		while ((st = shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT)) >= 0) {
			cr_assert_eq(v, next);
			next++;
			/* Phase 2: received, let the next go at once. */
			if (next > n && next < 2 * n)
				cr_assert_eq(write(ack[1], "x", 1), 1);
		}
		if (st != -EAGAIN)
			break;
		/* Armed (the -EAGAIN): now let the next message go. */
		if (next < n)
			cr_assert_eq(write(ack[1], "x", 1), 1);
		cr_assert_eq(epoll_wait(ep, &ev, 1, WAIT_MS), 1,
			     "lost wake-up at message %llu", (unsigned long long)next);
		wakes++;
	}
	cr_assert_eq(st, SHMQ_EOF, "%s", shmq_strerror((int)st));
	cr_assert_eq(next, 2 * n);
	cr_assert_geq(wakes, n, "only %llu wakes", (unsigned long long)wakes);
	cr_log_info("%llu wakes for %u messages", (unsigned long long)wakes, 2 * n);
	cr_assert_eq(reap(pid), 0);
	close(ack[1]);
	close(ep);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * The producer SIGKILLed while we wait: nobody rings, yet the descriptor
 * is readable within 200 ms (a pidfd; with NO_PIDFD the fallback timer),
 * and the next read returns SHMQ_EDIED.
 */
static void producer_death(bool no_pidfd)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint64_t next = 0, t0, dt;
	int ready[2], fd;
	char b;
	pid_t pid;

	mkq(1 << 16, 0);
	shmqi_no_pidfd = no_pidfd;
	cr_assert_eq(pipe(ready), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3);
	pid = child(60);
	if (pid == 0) {
		struct shmq_producer *p = child_producer(&q);

		send_u64(p, 0);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	/* Read what is there, until armed and idle (not readable). */
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(drain(c, &next), -EAGAIN);
		if (wait_readable(fd, 20) == 0)
			break;
	}
	cr_assert_eq(next, 1);
	/*
	 * The timer wakes us every 100 ms, with a pidfd too (the backstop
	 * for a lock gone while the pid lives: test_pollfd_adv.c); the pidfd
	 * tells the death at once, and the timer within its period.
	 */
	t0 = h_now_ns();
	kill(pid, SIGKILL);
	cr_assert_eq(wait_readable(fd, 200), 1,
		     "not readable within 200 ms of the producer's death");
	dt = h_now_ns() - t0;
	cr_log_info("readable %.2f ms after SIGKILL (%s)", dt / 1e6,
		    no_pidfd ? "timer" : "pidfd");
	for (int i = 0; i < 50; i++) {
		ssize_t st = drain(c, &next);

		if (st == SHMQ_EDIED)
			goto died;
		cr_assert_eq(st, -EAGAIN, "%s", shmq_strerror((int)st));
		cr_assert_eq(wait_readable(fd, 300), 1, "no end after the death");
	}
	cr_assert_fail("SHMQ_EDIED never came");
died:
	/* Reported: the dead session is not watched again (no busy loop). */
	cr_assert_eq(drain(c, &next), -EAGAIN);
	cr_assert_eq(wait_readable(fd, 150), 0, "still readable after the end");
	reap(pid);
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(pollfd, producer_sigkilled_readable_within_200ms_pidfd)
{
	producer_death(false);
}

Test(pollfd, producer_sigkilled_readable_within_200ms_timer_fallback)
{
	producer_death(true);
}

/*
 * A consumer waiting for the next session is woken by its first message;
 * before that, the new producer's open rings it so that it watches the
 * new producer: its death is seen too.
 */
Test(pollfd, next_session_is_watched)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint64_t next = 0;
	ssize_t st;
	int fd, ready[2], go[2];
	char b;
	pid_t pid;

	mkq(1 << 16, 0);
	cr_assert_eq(pipe(ready), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_eq(drain(c, &next), -EAGAIN);
	cr_assert_eq(pipe(go), 0);
	pid = child(60);
	if (pid == 0) {
		struct shmq_producer *p;

		/* Attach first (reading the header is an IN_ACCESS too). */
		if (shmq_open(qpath, 0, NULL, &q) < 0)
			_exit(10);
		(void)!write(ready[1], "a", 1);
		if (read(go[0], &b, 1) != 1 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(11);
		(void)!write(ready[1], "o", 1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	/*
	 * Whatever its attach rang is read; armed again, idle (50 ms: the
	 * backstop timer fires every 100 ms while a session is open).
	 */
	while (wait_readable(fd, 50) == 1)
		cr_assert_eq(drain(c, &next), -EAGAIN);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(read(ready[0], &b, 1), 1);
	/* The open rang: read (nothing), armed again, now watching. */
	cr_assert_eq(wait_readable(fd, WAIT_MS), 1);
	do
		cr_assert_eq(drain(c, &next), -EAGAIN);
	while (wait_readable(fd, 50) == 1);
	kill(pid, SIGKILL);
	cr_assert_eq(wait_readable(fd, 200), 1);
	do {
		st = drain(c, &next);
	} while (st == -EAGAIN && wait_readable(fd, 300) == 1);
	cr_assert_eq(st, SHMQ_EDIED, "%s", shmq_strerror((int)st));
	reap(pid);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * Eviction wakes an idle member: the group is pinned by another member
 * that holds a message, the producer blocks on it and evicts the group;
 * the idle member, armed, must be told.
 */
Test(pollfd, eviction_makes_an_idle_member_readable)
{
	struct shmq_consumer_opts go = { .kind = SHMQ_CONSUMER_GROUP,
					 .name = "g" };
	struct shmq *q;
	struct shmq_consumer *m1, *m2;
	struct shmq_msg msg;
	uint64_t next = 0, v;
	ssize_t st;
	int fd;
	pid_t pid;

	mkq(4096, 100);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, &go, &m1), 0);
	cr_assert_eq(shmq_consumer_open(q, &go, &m2), 0);
	fd = shmq_consumer_fd(m2);
	pid = child(60);
	if (pid == 0) {
		struct shmq_producer *p = child_producer(&q);

		for (uint64_t i = 0; i < 1000; i++)
			if (shmq_send(p, &i, sizeof(i), 3000000000ll) < 0)
				break;
		pause();
		_exit(0);
	}
	/* m1 takes the first message and holds it. */
	cr_assert_eq(shmq_peek(m1, &msg, 5000000000ll), 0);
	/* m2 takes all the rest it can, until it is armed and idle. */
	for (;;) {
		while ((st = shmq_recv(m2, &v, sizeof(v), NULL, SHMQ_NOWAIT)) >= 0)
			next++;
		if (st != -EAGAIN)
			break;
		cr_assert_eq(wait_readable(fd, WAIT_MS), 1,
			     "the evicted member was never told (after %llu)",
			     (unsigned long long)next);
	}
	cr_assert_eq(st, SHMQ_EVICTED, "%s", shmq_strerror((int)st));
	kill(pid, SIGKILL);
	reap(pid);
	shmq_consumer_close(m1);
	shmq_consumer_close(m2);
	shmq_close(q);
}

/*
 * A futex sleeper (a blocking reader in another process) and a poller on
 * one queue: the sleeper's bit must not erase the poller's (an OR, not a
 * store), nor the poller's wake skip the sleeper.
 */
Test(pollfd, futex_sleeper_and_poller_together)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint64_t next = 0;
	ssize_t st;
	pid_t prod, sleeper;
	int fd;

	mkq(1 << 16, 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	sleeper = child(120);
	if (sleeper == 0) {
		struct shmq *sq = attach();
		struct shmq_consumer *sc;
		uint64_t v, n = 0;

		if (shmq_consumer_open(sq, NULL, &sc) < 0)
			_exit(50);
		while ((st = shmq_recv(sc, &v, sizeof(v), NULL, 10000000000ll)) >= 0)
			if (v != n++)
				_exit(51);
		_exit(st == SHMQ_EOF && n == 5000 ? 0 : 52);
	}
	h_sleep_ms(50);	/* the sleeper attaches (from the oldest anyway) */
	prod = child(120);
	if (prod == 0)
		produce(5000, 1, 300);	/* everyone sleeps between messages */
	for (;;) {
		cr_assert_eq(wait_readable(fd, WAIT_MS), 1,
			     "poller lost at %llu", (unsigned long long)next);
		st = drain(c, &next);
		if (st != -EAGAIN)
			break;
	}
	cr_assert_eq(st, SHMQ_EOF);
	cr_assert_eq(next, 5000);
	cr_assert_eq(reap(prod), 0);
	cr_assert_eq(reap(sleeper), 0, "the futex sleeper failed");
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * A poller SIGKILLed while armed leaves its bit set: the producer's next
 * publish takes it with one ring, and the rest cost nothing.
 */
Test(pollfd, sigkilled_poller_costs_at_most_one_ring)
{
	struct shmq *q;
	struct shmq_producer *p;
	int ready[2];
	uint64_t before;
	char b;
	pid_t pid;

	mkq(1 << 20, 0);	/* room for all: block mode keeps them */
	cr_assert_eq(pipe(ready), 0);
	pid = child(60);
	if (pid == 0) {
		struct shmq_consumer *c;
		uint64_t next = 0;

		q = attach();
		if (shmq_consumer_open(q, NULL, &c) < 0 ||
		    shmq_consumer_fd(c) < 0 || drain(c, &next) != -EAGAIN)
			_exit(20);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	kill(pid, SIGKILL);
	reap(pid);
	q = attach();
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	before = shmqi_ring_count;
	for (uint64_t i = 0; i < 10000; i++) {
		int err = shmq_send(p, &i, sizeof(i), 5000000000ll);

		cr_assert_eq(err, 0, "send %llu: %s (%s)", (unsigned long long)i,
			     shmq_strerror(err), shmq_errdetail());
	}
	cr_assert_leq(shmqi_ring_count - before, 1,
		      "%llu rings for 10000 messages",
		      (unsigned long long)(shmqi_ring_count - before));
	shmq_producer_close(p);
	shmq_close(q);
}

/* A consumer that never asks for a descriptor costs no ring either. */
Test(pollfd, no_ring_without_a_poller)
{
	struct shmq *q = (mkq(1 << 16, 0), attach());
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t before, v;

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	before = shmqi_ring_count;
	for (uint64_t i = 0; i < 1000; i++) {
		cr_assert_eq(shmq_send(p, &i, sizeof(i), SHMQ_NOWAIT), 0);
		cr_assert_eq(shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT), sizeof(v));
		cr_assert_eq(shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT), -EAGAIN);
	}
	cr_assert_eq(shmqi_ring_count, before);
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* Inherited across fork(): inert in the child; the parent's still works. */
Test(pollfd, inherited_across_fork)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint64_t next = 0;
	int fd;
	pid_t pid;

	mkq(1 << 16, 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_eq(drain(c, &next), -EAGAIN);
	pid = child(30);
	if (pid == 0) {
		uint64_t v;

		if (shmq_consumer_fd(c) != -EBADFD)
			_exit(30);
		if (shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT) != -EBADFD)
			_exit(31);
		shmq_consumer_close(c);
		_exit(0);
	}
	cr_assert_eq(reap(pid), 0);
	pid = child(30);
	if (pid == 0)
		produce(10, 0, 0);
	while (next < 10) {
		cr_assert_eq(wait_readable(fd, WAIT_MS), 1);
		drain(c, &next);
	}
	cr_assert_eq(reap(pid), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* A queue without a path (a memfd): the doorbell watches its inode. */
Test(pollfd, memfd_queue)
{
	struct shmq_config cfg = { .capacity = 1 << 16, .max_message = 64 };
	struct shmq *q;
	struct shmq_consumer *c;
	uint64_t next = 0;
	ssize_t st;
	int fd;
	pid_t pid;

	cr_assert_eq(shmq_create_anon(&cfg, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3, "%s", shmq_errdetail());
	pid = child(60);
	if (pid == 0) {
		struct shmq *cq;
		struct shmq_producer *p;

		if (shmq_open_fd(shmq_fd(q), 0, &cq) < 0 ||
		    shmq_producer_open(cq, NULL, &p) < 0)
			_exit(10);
		for (uint64_t i = 0; i < 5000; i++) {
			send_u64(p, i);
			if (i % 100 == 99)
				usleep(1000);
		}
		_exit(shmq_producer_close(p) == 0 ? 0 : 12);
	}
	for (;;) {
		cr_assert_eq(wait_readable(fd, WAIT_MS), 1, "lost at %llu",
			     (unsigned long long)next);
		st = drain(c, &next);
		if (st != -EAGAIN)
			break;
	}
	cr_assert_eq(st, SHMQ_EOF);
	cr_assert_eq(next, 5000);
	cr_assert_eq(reap(pid), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * The producer's descriptor: a small ring, sends with SHMQ_NOWAIT, poll
 * on -EAGAIN; a slow consumer in another process releases space.
 */
Test(pollfd, producer_fd_readable_when_room)
{
	struct shmq *q;
	struct shmq_producer *p;
	uint64_t i = 0, waits = 0;
	int fd, err;
	pid_t pid;

	mkq(4096, 0);
	q = attach();
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	fd = shmq_producer_fd(p);
	cr_assert_geq(fd, 3);
	pid = child(60);
	if (pid == 0) {
		struct shmq_consumer *c;
		uint64_t v, n = 0;
		ssize_t st;

		q = attach();
		if (shmq_consumer_open(q, NULL, &c) < 0)
			_exit(20);
		while ((st = shmq_recv(c, &v, sizeof(v), NULL, 10000000000ll)) >= 0) {
			if (v != n++)
				_exit(21);
			if (n % 64 == 0)
				usleep(500);
		}
		/* It rang for the producer (not only its timer woke it). */
		_exit(st == SHMQ_EOF && n == 20000 && shmqi_ring_count ? 0 : 22);
	}
	/* Wait for the consumer to attach (else the ring is not held). */
	for (int k = 0; k < 500; k++) {
		struct shmq_stat *s;

		cr_assert_eq(shmq_stat_get(q, &s), 0);
		err = s->nconsumers;
		shmq_stat_free(s);
		if (err > 0)
			break;
		h_sleep_ms(10);
	}
	while (i < 20000) {
		err = shmq_send(p, &i, sizeof(i), SHMQ_NOWAIT);
		if (err == 0) {
			i++;
			continue;
		}
		cr_assert_eq(err, -EAGAIN, "%s", shmq_strerror(err));
		waits++;
		cr_assert_eq(wait_readable(fd, WAIT_MS), 1,
			     "producer never woken at %llu", (unsigned long long)i);
	}
	cr_log_info("%llu waits for room", (unsigned long long)waits);
	cr_assert_gt(waits, 0, "the ring never filled: nothing tested");
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(reap(pid), 0);
	shmq_close(q);
}

/*
 * Two Unix users sharing the queue by group: the producer root, the
 * consumer uid 65533 in the file's group. Needs root.
 */
Test(pollfd, second_user_by_group)
{
	struct shmq_config cfg = { .capacity = 1 << 16, .max_message = 64,
				   .mode = 0660 };
	int ready[2], err;
	char b;
	pid_t pid, pp;
	struct shmq *q;

	if (geteuid() != 0)
		cr_skip_test("needs root to act as another user");
	snprintf(qpath, sizeof(qpath), "%s", h_path("gq"));
	err = shmq_create(qpath, &cfg);
	cr_assert_eq(err, 0, "%s", shmq_errdetail());
	cr_assert_eq(chown(qpath, 0, 65533), 0);
	cr_assert_eq(chmod(h_dir(), 0755), 0);
	cr_assert_eq(pipe(ready), 0);
	pid = child(60);
	if (pid == 0) {
		gid_t g = 65533;
		struct shmq_consumer *c;
		uint64_t next = 0;
		ssize_t st;
		int fd;

		if (setgroups(1, &g) < 0 || setgid(65534) < 0 ||
		    setuid(65533) < 0)
			_exit(40);
		if (shmq_open(qpath, SHMQ_OPEN_ANY_OWNER, NULL, &q) < 0 ||
		    shmq_consumer_open(q, NULL, &c) < 0)
			_exit(41);
		fd = shmq_consumer_fd(c);
		if (fd < 0 || drain(c, &next) != -EAGAIN)
			_exit(42);
		(void)!write(ready[1], "x", 1);
		for (;;) {
			if (wait_readable(fd, WAIT_MS) != 1)
				_exit(43);
			st = drain(c, &next);
			if (st != -EAGAIN)
				break;
		}
		_exit(st == SHMQ_EDIED && next == 100 ? 0 : 44);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	pp = child(30);
	if (pp == 0) {
		struct shmq_producer *p = child_producer(&q);

		for (uint64_t i = 0; i < 100; i++) {
			send_u64(p, i);
			if (i % 10 == 9)
				usleep(5000);
		}
		(void)!write(ready[1], "y", 1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	h_sleep_ms(50);
	/* Its death, seen by the other user's pidfd within the bound. */
	kill(pp, SIGKILL);
	reap(pp);
	cr_assert_eq(reap(pid), 0, "the other user's consumer failed");
	close(ready[0]);
	close(ready[1]);
}

/* The examples (examples/): built by meson, run here, output checked. */
static void run_example(const char *cmd, const char *const *want)
{
	char line[512], out[4096] = "";
	FILE *f = popen(cmd, "r");
	int st;

	cr_assert(f, "popen %s", cmd);
	while (fgets(line, sizeof(line), f))
		strncat(out, line, sizeof(out) - strlen(out) - 1);
	st = pclose(f);
	cr_assert_eq(st, 0, "%s exited with %d:\n%s", cmd, st, out);
	for (; *want; want++)
		cr_assert(strstr(out, *want), "%s: no \"%s\" in:\n%s", cmd,
			  *want, out);
}

Test(pollfd, example_epoll_loop)
{
	char cmd[8192];
	const char *want[] = { "a: 3000 messages, end of stream",
			       "b: 3000 messages, end of stream",
			       "ticks: yes", NULL };

	snprintf(cmd, sizeof(cmd), "timeout 60 %s %s 3000", EXAMPLE_EPOLL_LOOP,
		 h_dir());
	run_example(cmd, want);
}

Test(pollfd, example_uv_consumer)
{
	char cmd[8192];
	const char *want[] = { "got 3000 messages, end of stream",
			       "timer: ran", NULL };

	snprintf(cmd, sizeof(cmd), "timeout 60 %s %s 3000",
		 EXAMPLE_UV_CONSUMER, h_path("uvq"));
	run_example(cmd, want);
}
