/* SPDX-License-Identifier: MIT */
/*
 * Adversarial tests of the pollable descriptors (issue 14 review):
 * shmq_consumer_fd() must become readable whenever a blocking shmq_recv()
 * would return, whatever the producer does (exec, an idle batch-mode
 * producer with durable readers) and whatever the header says (a prod_pid
 * naming another process). Every child has a watchdog (alarm and
 * PR_SET_PDEATHSIG); every wait is bounded, so a lost wake-up fails the
 * test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"
#include "format.h"

static char qpath[4096];

TestSuite(pollfd_adv, .init = h_setup, .fini = h_teardown, .timeout = 60);

static void mkq(uint64_t cap)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = 1024 };
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
	pid_t pid;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(watchdog);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static int wait_readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms);
}

/* Read with SHMQ_NOWAIT until -EAGAIN or an end; counts messages. */
static ssize_t drain(struct shmq_consumer *c, unsigned int *got)
{
	uint64_t v;
	ssize_t n;

	while ((n = shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT)) >= 0)
		(*got)++;
	return n;
}

/*
 * Poll FD and drain C until STATUS comes (for -EAGAIN: WANT messages
 * counted in GOT) or MS pass, as an event loop does: C is read only
 * after FD polled readable. Returns the status that ended it, or
 * -ETIMEDOUT.
 */
static ssize_t loop_until(struct shmq_consumer *c, int fd, ssize_t status,
			  unsigned int *got, unsigned int want, int ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000;
	ssize_t st;

	for (;;) {
		st = drain(c, got);
		if (st != -EAGAIN || (status == -EAGAIN && *got >= want))
			return st;
		/* Only what the descriptor tells: no read after the time. */
		if (h_now_ns() >= end ||
		    wait_readable(fd, (int)((end - h_now_ns()) / 1000000) + 1) == 0)
			return -ETIMEDOUT;
	}
}

static void send_u64(struct shmq_producer *p, uint64_t v)
{
	if (shmq_send(p, &v, sizeof(v), SHMQ_FOREVER) < 0)
		_exit(11);
}

/*
 * Defect 1: a producer that exec()s gives up its role (the locks are on
 * close-on-exec descriptors: a blocking reader reports SHMQ_EDIED within
 * its 100 ms slice), but its pid lives on, so a pidfd never fires. The
 * descriptor must still become readable within 200 ms.
 */
Test(pollfd_adv, producer_exec_seen_within_200ms)
{
	struct shmq *q;
	struct shmq_consumer *c;
	unsigned int got = 0;
	int ready[2], fd;
	uint64_t t0;
	ssize_t st;
	pid_t pid;
	char b;

	mkq(1 << 16);
	cr_assert_eq(pipe(ready), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3);
	pid = child(30);
	if (pid == 0) {
		struct shmq_producer *p;
		char *argv[] = { "sleep", "20", NULL };

		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		send_u64(p, 0);
		(void)!read(ready[0], &b, 1);	/* the consumer is armed */
		execvp("sleep", argv);
		_exit(12);
	}
	cr_assert_eq(loop_until(c, fd, -EAGAIN, &got, 1, 2000), -EAGAIN);
	cr_assert_eq(got, 1);
	cr_assert_eq(drain(c, &got), -EAGAIN);	/* armed, the pidfd watched */
	t0 = h_now_ns();
	(void)!write(ready[1], "x", 1);
	st = loop_until(c, fd, SHMQ_EDIED, &got, 0, 1000);
	cr_log_info("%s after %.1f ms", shmq_strerror((int)st),
		    (h_now_ns() - t0) / 1e6);
	reap(pid);
	cr_assert_eq(st, SHMQ_EDIED,
		     "a producer that exec()ed: %s after 1 s, not SHMQ_EDIED",
		     shmq_strerror((int)st));
	/* exec() itself takes a few ms: the bound is the death's 200 ms. */
	cr_assert_lt(h_now_ns() - t0, 300000000ull,
		     "SHMQ_EDIED %.1f ms after the exec",
		     (h_now_ns() - t0) / 1e6);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * Defect 2: the header is untrusted, and prod_pid is "display only"
 * (format.h). A prod_pid that names another live process (pid 1 here)
 * while a real producer holds the session must not make the descriptor
 * deaf to that producer's death.
 */
Test(pollfd_adv, hostile_prod_pid_does_not_hide_the_death)
{
	struct shmq *q;
	struct shmq_consumer *c;
	unsigned int got = 0;
	uint32_t one = 1;
	int ready[2], fd;
	uint64_t t0;
	ssize_t st;
	pid_t pid;
	char b;

	mkq(1 << 16);
	cr_assert_eq(pipe(ready), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3);
	pid = child(30);
	if (pid == 0) {
		struct shmq_producer *p;

		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		send_u64(p, 0);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	cr_assert_eq(h_poke(qpath, offsetof(struct shmq_hdr, prod_pid), &one,
			    sizeof(one)), 0);
	cr_assert_eq(loop_until(c, fd, -EAGAIN, &got, 1, 2000), -EAGAIN);
	cr_assert_eq(drain(c, &got), -EAGAIN);	/* armed: watches "pid 1" */
	t0 = h_now_ns();
	kill(pid, SIGKILL);
	st = loop_until(c, fd, SHMQ_EDIED, &got, 0, 1000);
	cr_log_info("%s after %.1f ms", shmq_strerror((int)st),
		    (h_now_ns() - t0) / 1e6);
	reap(pid);
	cr_assert_eq(st, SHMQ_EDIED, "the death unseen after 1 s: %s",
		     shmq_strerror((int)st));
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * Defect 3: prod_pid naming a zombie (an exited, unreaped process) while
 * the real producer lives: its pidfd is readable at once and for good.
 * The descriptor must not stay readable, making an event loop spin.
 */
Test(pollfd_adv, hostile_prod_pid_zombie_no_busy_loop)
{
	struct shmq *q;
	struct shmq_consumer *c;
	unsigned int got = 0, wakes = 0;
	uint32_t zpid;
	int ready[2], fd;
	uint64_t end;
	pid_t pid, z;
	char b;

	mkq(1 << 16);
	cr_assert_eq(pipe(ready), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3);
	pid = child(30);
	if (pid == 0) {
		struct shmq_producer *p;

		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		send_u64(p, 0);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	z = fork();
	cr_assert_geq(z, 0);
	if (z == 0)
		_exit(0);
	h_sleep_ms(20);		/* a zombie until we reap it */
	zpid = (uint32_t)z;
	cr_assert_eq(h_poke(qpath, offsetof(struct shmq_hdr, prod_pid), &zpid,
			    sizeof(zpid)), 0);
	cr_assert_eq(loop_until(c, fd, -EAGAIN, &got, 1, 2000), -EAGAIN);
	end = h_now_ns() + 500000000ull;
	while (h_now_ns() < end) {
		if (wait_readable(fd, 50) == 1) {
			wakes++;
			cr_assert_eq(drain(c, &got), -EAGAIN);
		}
		if (wakes > 1000)
			break;
	}
	cr_log_info("%u wakes in 500 ms", wakes);
	waitpid(z, NULL, 0);
	reap(pid);
	/* A timer of 100 ms: 5 or 6. A spin: thousands. */
	cr_assert_leq(wakes, 20, "%u wakes in 500 ms of an idle queue", wakes);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * Defect 4: a durable reader of a batch-mode producer (every N messages
 * or T ms) that goes idle: "checked at each send, and by durable
 * consumers while the producer idles" (shmq.h). A blocking reader syncs
 * after T and gets the message; a poller must too.
 */
Test(pollfd_adv, durable_poller_of_an_idle_batch_producer)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct shmq_consumer_opts co = { .flags = SHMQ_CONSUMER_DURABLE };
	unsigned int got = 0;
	int ready[2], fd;
	ssize_t st;
	pid_t pid;
	char b;

	mkq(1 << 16);
	cr_assert_eq(pipe(ready), 0);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	fd = shmq_consumer_fd(c);
	cr_assert_geq(fd, 3);
	cr_assert_eq(drain(c, &got), -EAGAIN);
	pid = child(30);
	if (pid == 0) {
		struct shmq_producer_opts po = {
			.sync_mode = SHMQ_SYNC_BATCH, .sync_every_n = 1000,
			.sync_every_ms = 50 };
		struct shmq_producer *p;

		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, &po, &p) < 0)
			_exit(10);
		send_u64(p, 0);
		(void)!write(ready[1], "x", 1);
		pause();	/* idle, alive: nobody else syncs */
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	st = loop_until(c, fd, -EAGAIN, &got, 1, 2000);
	reap(pid);
	cr_assert_eq(got, 1, "the durable poller got %u messages in 2 s (%s)",
		     got, shmq_strerror((int)st));
	shmq_consumer_close(c);
	shmq_close(q);
}

/* Descriptors open in this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own */
}

/* Make both descriptors, arm both (a pidfd of ourselves), close all. */
static int cycle_once(void)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq_consumer_opts co = { .start = SHMQ_START_LATEST };
	uint64_t v = 7;
	unsigned int got = 0;
	int fd, pfd, ret = 0;

	if (shmq_open(qpath, 0, NULL, &q) < 0)
		return -1;
	if (shmq_consumer_open(q, &co, &c) < 0) {
		shmq_close(q);
		return -1;
	}
	if (shmq_producer_open(q, NULL, &p) < 0) {
		shmq_consumer_close(c);
		shmq_close(q);
		return -1;
	}
	fd = shmq_consumer_fd(c);
	pfd = shmq_producer_fd(p);
	if (fd < 3 || pfd < 3)
		ret = -1;
	if (shmq_send(p, &v, sizeof(v), SHMQ_NOWAIT) < 0 ||
	    drain(c, &got) != -EAGAIN || got != 1)
		ret = -1;
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
	return ret;
}

/*
 * Nothing lands on 0-2 when they are closed: the epoll set, inotify,
 * eventfd, timerfd and pidfd (all made here, in a child whose 0-2 are
 * closed).
 */
Test(pollfd_adv, no_descriptor_on_0_to_2)
{
	pid_t pid;
	int st;

	mkq(1 << 16);
	pid = child(30);
	if (pid == 0) {
		struct shmq *q;
		struct shmq_consumer *c;
		struct shmq_producer *p;
		unsigned int got = 0;
		uint64_t v = 1;

		close(0);
		close(1);
		close(2);
		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_consumer_open(q, NULL, &c) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		if (shmq_consumer_fd(c) < 3 || shmq_producer_fd(p) < 3)
			_exit(11);
		/* Armed with a live producer: the pidfd is made too. */
		if (shmq_send(p, &v, sizeof(v), SHMQ_NOWAIT) < 0 ||
		    drain(c, &got) != -EAGAIN || got != 1)
			_exit(12);
		for (int i = 0; i < 3; i++)
			if (fcntl(i, F_GETFD) >= 0)
				_exit(20 + i);
		shmq_producer_close(p);
		shmq_consumer_close(c);
		shmq_close(q);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "status %#x (2x: a descriptor landed on x)", st);
}

/*
 * No descriptor leaks: 200 cycles of open, both descriptors, arm, close;
 * then the same with RLIMIT_NOFILE so tight that each step of making the
 * set fails in turn (the error paths close what they made).
 */
Test(pollfd_adv, no_descriptor_leak_on_success_or_error)
{
	struct rlimit old, lim;
	int before, after, fails = 0, n;

	mkq(1 << 16);
	before = count_fds();
	for (int i = 0; i < 200; i++)
		cr_assert_eq(cycle_once(), 0, "cycle %d", i);
	after = count_fds();
	cr_assert_eq(after, before, "%d descriptors before, %d after",
		     before, after);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	for (int k = 0; k < 7; k++) {
		struct shmq *q;
		struct shmq_consumer *c;
		int fill[1024], nfill = 0, top = 0, d;

		cr_assert_eq(shmq_open(qpath, 0, NULL, &q), 0);
		cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
		for (int fd = 0; fd < 1024; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				top = fd;
		/* Exactly K descriptors free: the holes below TOP filled. */
		while ((d = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 &&
		       d < top && nfill < 1024)
			fill[nfill++] = d;
		if (d >= 0)
			close(d);
		lim = old;
		lim.rlim_cur = (rlim_t)top + 1 + (rlim_t)k;
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
		n = shmq_consumer_fd(c);
		if (n < 0) {
			fails++;
			cr_assert_eq(n, -EMFILE, "%s", shmq_strerror(n));
		}
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
		while (nfill)
			close(fill[--nfill]);
		shmq_consumer_close(c);
		shmq_close(q);
		cr_assert_eq(count_fds(), before, "%d free: leaked", k);
	}
	/* epoll, inotify, eventfd, timerfd: each step's failure was met. */
	cr_assert_eq(fails, 4, "%d of 7 tight limits failed", fails);
}

/*
 * inotify instances exhausted (fs.inotify.max_user_instances, per user:
 * done as an unusual uid so that nobody else's watches are touched):
 * shmq_consumer_fd fails with a clear error, and the consumer still
 * works (blocking recv); with an instance free again, it works.
 */
Test(pollfd_adv, inotify_exhausted_clear_error_consumer_still_works)
{
	pid_t pid;
	int st;

	if (geteuid() != 0)
		cr_skip_test("needs root to act as another user");
	mkq(1 << 16);
	cr_assert_eq(chown(qpath, 65531, 65531), 0);
	cr_assert_eq(chmod(h_dir(), 0755), 0);
	pid = child(30);
	if (pid == 0) {
		struct shmq *q;
		struct shmq_consumer *c;
		struct shmq_producer *p;
		uint64_t v = 5, r = 0;
		int last = -1, fd, n = 0;

		if (setgroups(0, NULL) < 0 || setgid(65531) < 0 ||
		    setuid(65531) < 0)
			_exit(40);
		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_consumer_open(q, NULL, &c) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(41);
		while ((fd = inotify_init1(IN_CLOEXEC)) >= 0 && n < 100000) {
			last = fd;
			n++;
		}
		if (errno != EMFILE || last < 0)
			_exit(42);
		fd = shmq_consumer_fd(c);
		if (fd != -EMFILE || !strstr(shmq_errdetail(), "inotify"))
			_exit(43);
		if (shmq_send(p, &v, sizeof(v), SHMQ_NOWAIT) < 0 ||
		    shmq_recv(c, &r, sizeof(r), NULL, 100000000) != sizeof(r) ||
		    r != 5)
			_exit(44);
		close(last);
		fd = shmq_consumer_fd(c);
		if (fd < 3 || shmq_recv(c, &r, sizeof(r), NULL, SHMQ_NOWAIT) != -EAGAIN)
			_exit(45);
		v = 6;
		if (shmq_send(p, &v, sizeof(v), SHMQ_NOWAIT) < 0 ||
		    wait_readable(fd, 5000) != 1 ||
		    shmq_recv(c, &r, sizeof(r), NULL, SHMQ_NOWAIT) != sizeof(r) ||
		    r != 6)
			_exit(46);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

/*
 * A producer SIGKILLed inside shmq_producer_open (stopped at a kill point
 * with SHMQ_STOP_AT, then killed), while a poller and a blocking reader
 * wait for the next session: the poller must learn, within the bound of a
 * death, whatever the blocking reader learns. Before the fix, a producer
 * killed after storing OPEN and before its ring left the poller asleep
 * (nothing watched with no session open, and nobody rang).
 */
static void killed_in_open(const char *point, const char *kill_at,
			   bool fresh)
{
	struct shmq *q;
	struct shmq_consumer *cp, *cb;
	unsigned int got = 0;
	uint64_t v;
	ssize_t sp, sb;
	int fd, st, ready[2], go[2];
	pid_t pid;
	char b;

	mkq(1 << 16);
	q = attach();
	cr_assert_eq(shmq_consumer_open(q, NULL, &cp), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &cb), 0);
	fd = shmq_consumer_fd(cp);
	cr_assert_geq(fd, 3);
	/*
	 * Session 1: one message, closed; both consumers read it all. Not
	 * on a FRESH queue: then no END is owed, and nothing the open
	 * publishes rings the poller.
	 */
	pid = fresh ? 0 : child(30);
	if (fresh)
		goto armed;
	if (pid == 0) {
		struct shmq_producer *p;

		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		send_u64(p, 0);
		_exit(shmq_producer_close(p) == 0 ? 0 : 11);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(loop_until(cp, fd, SHMQ_EOF, &got, 0, 2000), SHMQ_EOF);
	cr_assert_eq(got, 1);
	cr_assert_eq(shmq_recv(cb, &v, sizeof(v), NULL, 1000000000), sizeof(v));
	cr_assert_eq(shmq_recv(cb, &v, sizeof(v), NULL, 1000000000), SHMQ_EOF);
armed:
	/* Armed, idle, nothing to watch. */
	cr_assert_eq(drain(cp, &got), -EAGAIN);
	while (wait_readable(fd, 50) == 1)
		cr_assert_eq(drain(cp, &got), -EAGAIN);
	/*
	 * Session 2's producer, stopped at POINT inside its open, killed.
	 * It attaches first: reading the header is an IN_ACCESS too, which
	 * would wake the poller; that wake is read before the open.
	 */
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid = child(30);
	if (pid == 0) {
		struct shmq_producer *p;

		setenv("SHMQ_STOP_AT", point, 1);
		if (kill_at)
			setenv("SHMQ_KILL_AT", kill_at, 1);
		if (shmq_open(qpath, 0, NULL, &q) < 0)
			_exit(10);
		(void)!write(ready[1], "a", 1);
		if (read(go[0], &b, 1) != 1 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(11);
		_exit(12);	/* never stopped: the point is missing */
	}
	cr_assert_eq(read(ready[0], &b, 1), 1);
	while (wait_readable(fd, 50) == 1)
		cr_assert_eq(drain(cp, &got), -EAGAIN);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
	cr_assert(WIFSTOPPED(st), "the producer did not stop at %s (%#x)",
		  point, st);
	if (kill_at) {
		/*
		 * Let the poller re-arm here (the open's END bookkeeping may
		 * have rung), then let the producer run on to KILL_AT.
		 */
		while (wait_readable(fd, 50) == 1)
			cr_assert_eq(drain(cp, &got), -EAGAIN);
		kill(pid, SIGCONT);
	} else {
		kill(pid, SIGKILL);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%#x", st);
	sb = shmq_recv(cb, &v, sizeof(v), NULL, 1000000000);
	/* The poller reads only once its descriptor says so. */
	sp = wait_readable(fd, 1000) == 1 ?
	     loop_until(cp, fd, sb, &got, 0, 1000) : -ETIMEDOUT;
	cr_log_info("%s: blocking %s, poller %s", point,
		    shmq_strerror((int)sb), shmq_strerror((int)sp));
	if (sb == -ETIMEDOUT)
		cr_assert_eq(sp, -ETIMEDOUT, "%s: the poller got %s", point,
			     shmq_strerror((int)sp));
	else
		cr_assert_eq(sp, sb, "%s: blocking %s, the poller %s", point,
			     shmq_strerror((int)sb), shmq_strerror((int)sp));
	shmq_consumer_close(cp);
	shmq_consumer_close(cb);
	shmq_close(q);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

Test(pollfd_adv, producer_killed_in_open_after_taking_the_role)
{
	killed_in_open("producer-open:role", NULL, false);
}

Test(pollfd_adv, producer_killed_in_open_after_the_incarnation)
{
	killed_in_open("producer-open:incarnation", NULL, false);
}

Test(pollfd_adv, producer_killed_in_open_before_the_session_lock)
{
	killed_in_open("producer-open:session-lock", NULL, false);
}

Test(pollfd_adv, producer_killed_in_open_before_its_ring)
{
	killed_in_open("producer-open:before-ring", NULL, false);
}

/* The poller re-armed at "session-lock" (state NONE), then OPEN, killed. */
Test(pollfd_adv, producer_killed_in_open_after_open_before_its_ring)
{
	killed_in_open("producer-open:session-lock",
		       "producer-open:before-ring", false);
}

/* A fresh queue (no END owed): only the open's own rings wake us. */
Test(pollfd_adv, producer_killed_in_open_of_a_fresh_queue_before_its_ring)
{
	killed_in_open("producer-open:before-ring", NULL, true);
}
