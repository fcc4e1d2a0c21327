/* SPDX-License-Identifier: MIT */
/*
 * Adversarial review of issue 16 (queues without a path, fork() rules).
 * Each test named "defect_*" reproduces a defect found in review and
 * FAILS on the code it was written against; the comment above it says
 * why and what would fix it. The others are attacks that held up, kept
 * because they are cheap.
 *
 * Real processes, each with a watchdog (alarm) and every wait bounded;
 * the fork races are bounded by time and stop at the first hit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "harness.h"

#define WATCHDOG_S	15	/* no process of ours outlives this */
#define RACE_NS		3500000000ll	/* bound on each fork race */

TestSuite(anon_adv, .init = h_setup, .fini = h_teardown, .timeout = 60);

static void must(int r, const char *what)
{
	cr_assert_geq(r, 0, "%s: %s (%s)", what, shmq_strerror(r),
		      shmq_errdetail());
}

static struct shmq *anon(uint64_t capacity, uint32_t checksum)
{
	struct shmq_config cfg = { .capacity = capacity, .checksum = checksum,
				   .max_message = 16384 };
	struct shmq *q;

	must(shmq_create_anon(&cfg, &q), "shmq_create_anon");
	return q;
}

/* Reap PID within MS ms: exit code, 128 + signal, -1 after a SIGKILL. */
static int reap(pid_t pid, int ms)
{
	struct timespec nap = { 0, 2000000 };
	int status;

	for (int i = 0; i < ms / 2; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			       128 + WTERMSIG(status);
		nanosleep(&nap, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/*
 * Descriptors of Q's file in this process other than shmq_fd(Q). After
 * fork() a child must have none: every role descriptor is closed by the
 * atfork handler, only the queue's own (probe) descriptor is kept
 * (docs/concurrency.md, "fork()").
 */
static int stray_queue_fds(struct shmq *q)
{
	struct stat qs, s;
	int n = 0;

	if (fstat(shmq_fd(q), &qs) < 0)
		return -1;
	for (int fd = 0; fd < 256; fd++)	/* ours are all low */
		if (fd != shmq_fd(q) && fstat(fd, &s) == 0 &&
		    s.st_dev == qs.st_dev && s.st_ino == qs.st_ino)
			n++;
	return n;
}

/* ---- fork() racing a role's open or close (defect 1) ---------------- */

struct churn {
	struct shmq *q;
	volatile int stop;
};

static void *named_churn(void *arg)
{
	struct churn *ch = arg;
	struct shmq_consumer_opts o = { .name = "n" };
	struct shmq_consumer *c;

	while (!ch->stop)
		if (shmq_consumer_open(ch->q, &o, &c) == 0)
			shmq_consumer_close(c);
	return NULL;
}

/*
 * DEFECT 1: a fork() in one thread while another opens or closes a role
 * gives the child an untracked copy of the role's lock descriptor.
 *
 * shmq_producer_open / shmq_consumer_open open the role's description
 * (shmqi_reopen) and only then put it on the atfork list
 * (shmqi_role_track); shmq_consumer_close takes it off the list
 * (shmqi_role_untrack) and only then closes it. A fork() between the two
 * steps copies a descriptor the child handler does not know. Worse, the
 * prepare handler makes the race likely: it holds roles_lock during the
 * whole fork, so the opening thread, back from open(), blocks in
 * shmqi_role_track with its descriptor already in the table that fork()
 * copies (thousands of hits per second in review). The child then holds
 * the role's lock for as long as it lives: here the named consumer "n",
 * closed by its owner, stays "already attached" (-EBUSY); with a
 * producer, a SIGKILLed parent stays alive (next test).
 *
 * Fix: make "descriptor exists" and "descriptor on the list" atomic with
 * respect to fork(): open (and dup above 2) under roles_lock, e.g. a
 * shmqi_reopen_tracked() that takes the lock, opens, links and unlocks;
 * and unlink + close under it too (close is cheap and cannot block on a
 * regular file). Alternatively, in roles_child, close every descriptor
 * of the queue's inode that is not a queue's own descriptor.
 */
Test(anon_adv, defect_fork_during_role_open_or_close_leaks_its_lock)
{
	struct churn ch = { .q = anon(1 << 16, 0) };
	struct shmq_consumer_opts o = { .name = "n" };
	struct shmq_consumer *c;
	pthread_t t;
	pid_t leaker = 0;
	int64_t end = (int64_t)h_now_ns() + RACE_NS;
	int forks = 0, r;

	cr_assert_eq(pthread_create(&t, NULL, named_churn, &ch), 0);
	while (!leaker && (int64_t)h_now_ns() < end) {
		int pp[2];
		char b = 0;
		pid_t pid;

		cr_assert_eq(pipe(pp), 0);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(WATCHDOG_S);
			b = stray_queue_fds(ch.q) ? 'L' : 'N';
			if (write(pp[1], &b, 1) != 1 || b == 'N')
				_exit(0);
			for (;;)	/* keep what we inherited */
				pause();
		}
		close(pp[1]);
		if (read(pp[0], &b, 1) != 1)
			b = '?';
		close(pp[0]);
		forks++;
		if (b == 'L')
			leaker = pid;
		else
			cr_assert_eq(reap(pid, 5000), 0);
	}
	ch.stop = 1;
	pthread_join(t, NULL);
	/* Every consumer of ours is closed: "n" is free to attach. */
	r = shmq_consumer_open(ch.q, &o, &c);
	if (leaker) {
		kill(leaker, SIGKILL);
		reap(leaker, 5000);
	}
	cr_assert_eq(leaker, 0, "after %d forks, child %d inherited a role descriptor not on the atfork list; consumer \"n\" reopens with %d (%s: %s) while it lives",
		     forks, (int)leaker, r, shmq_strerror(r), shmq_errdetail());
	must(r, "reopening consumer n");
	shmq_consumer_close(c);
	shmq_close(ch.q);
}

/*
 * The same race with a producer, end to end: process P opens its
 * producer once while its main thread forks; P is then SIGKILLed. A
 * child that inherited the producer's lock descriptor keeps the dead
 * producer looking alive: a new producer gets -EBUSY, consumers never
 * see SHMQ_EDIED. This is exactly the promise of issue 16 ("Role
 * descriptors inherited across fork() must not keep a dead parent
 * looking alive"). Same fix as above.
 */
struct prod_race {
	struct shmq *q;
	struct shmq_producer *p;
	volatile int done;
	volatile int forking;	/* the main thread is in its fork loop */
	unsigned int delay_ns;	/* then wait this long: a varying phase */
};

static void *open_producer(void *arg)
{
	struct prod_race *pr = arg;
	struct timespec d = { 0, (long)pr->delay_ns };

	while (!__atomic_load_n(&pr->forking, __ATOMIC_ACQUIRE))
		;
	nanosleep(&d, NULL);
	if (shmq_producer_open(pr->q, NULL, &pr->p) < 0)
		pr->p = NULL;
	__atomic_store_n(&pr->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * P: forks children while a thread opens the producer. Writes to REPORT
 * the pids of children that kept a stray descriptor, then 0, then waits
 * to be killed.
 */
static int racing_parent(struct shmq *q, int report)
{
	struct prod_race pr = { .q = q,
				.delay_ns = (unsigned int)(h_now_ns() % 400000) };
	pthread_t t;
	pid_t zero = 0;

	if (pthread_create(&t, NULL, open_producer, &pr))
		return 60;
	while (!__atomic_load_n(&pr.done, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&pr.forking, 1, __ATOMIC_RELEASE);
		int pp[2];
		char b = 0;
		pid_t pid;

		if (pipe(pp) < 0)
			return 61;
		pid = fork();
		if (pid < 0)
			return 62;
		if (pid == 0) {
			/* No PDEATHSIG: it must outlive P; the test kills it. */
			alarm(WATCHDOG_S);
			b = stray_queue_fds(q) ? 'L' : 'N';
			if (write(pp[1], &b, 1) != 1 || b == 'N')
				_exit(0);
			for (;;)
				pause();
		}
		close(pp[1]);
		if (read(pp[0], &b, 1) != 1)
			b = '?';
		close(pp[0]);
		if (b == 'L') {
			if (write(report, &pid, sizeof(pid)) != sizeof(pid))
				return 63;
		} else {
			waitpid(pid, NULL, 0);
		}
	}
	pthread_join(t, NULL);
	if (!pr.p)
		return 64;
	if (write(report, &zero, sizeof(zero)) != sizeof(zero))
		return 65;
	for (;;)
		pause();
}

Test(anon_adv, defect_fork_during_producer_open_keeps_a_dead_producer_alive)
{
	struct shmq *q = anon(1 << 16, 0);
	struct shmq_producer *p;
	int64_t end = (int64_t)h_now_ns() + RACE_NS;
	pid_t leakers[64];
	int nleak = 0, trials = 0, r = 0;

	/* Orphaned grandchildren come back to us, to be reaped. */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	while (!nleak && (int64_t)h_now_ns() < end) {
		int rp[2];
		pid_t parent, got;

		cr_assert_eq(pipe(rp), 0);
		fflush(stdout);
		parent = fork();
		cr_assert_geq(parent, 0);
		if (parent == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(WATCHDOG_S);
			close(rp[0]);
			_exit(racing_parent(q, rp[1]));
		}
		close(rp[1]);
		for (;;) {
			struct pollfd pf = { .fd = rp[0], .events = POLLIN };

			if (poll(&pf, 1, 5000) != 1 ||
			    read(rp[0], &got, sizeof(got)) != sizeof(got)) {
				got = -1;
				break;
			}
			if (got == 0)
				break;
			if (nleak < 64)
				leakers[nleak++] = got;
		}
		close(rp[0]);
		kill(parent, SIGKILL);
		cr_assert_eq(reap(parent, 5000), 128 + SIGKILL,
			     "the racing parent failed (got %d)", (int)got);
		trials++;
		/* P is dead: its producer with it. */
		r = shmq_producer_open(q, NULL, &p);
		if (r == 0)
			must(shmq_producer_close(p), "close");
	}
	for (int i = 0; i < nleak; i++) {
		kill(leakers[i], SIGKILL);
		reap(leakers[i], 5000);
	}
	cr_assert_eq(r, 0, "after a SIGKILLed producer (trial %d), a new producer gets %d (%s: %s): a forked child that inherited its lock descriptor keeps it alive",
		     trials, r, shmq_strerror(r), shmq_errdetail());
	cr_assert_eq(nleak, 0, "%d children inherited a role descriptor not on the atfork list (%d trials)",
		     nleak, trials);
	shmq_close(q);
}

/* ---- punched holes (defect 2) ---------------------------------------- */

/*
 * DEFECT 2: a hole punched into the payload of a record is delivered as
 * a valid message of zeros, on an anonymous queue with its default
 * checksum coverage.
 *
 * include/shmq.h, docs/security.md ("Holes": "punched pages read back as
 * zeros. Zeros are a scribble like any other ... nobody crashes"; "a
 * punched hole is zeros, a validation error") and issue 16 promise a
 * validation error. shmq_create_anon defaults to SHMQ_CHECKSUM_HEADER
 * (tmpfs coverage): only the record header is covered, so a hole that
 * spares the header page (any record longer than a page, or one that
 * straddles a page boundary) passes validation and shmq_recv returns
 * 4096 zero bytes inside the producer's message. In review, punching
 * random pages while a producer and two consumers ran delivered
 * hundreds of such messages per second ("msg-3543-" followed by 93
 * zeros instead of 'x').
 *
 * Fix: either default anonymous queues to SHMQ_CHECKSUM_FULL (any holder
 * of the descriptor can punch; the CRC is the only thing that sees it),
 * or correct the promise: with header-only coverage a hole inside a
 * payload is delivered as zeros; ask for SHMQ_CHECKSUM_FULL to have it
 * refused (the second half of this test shows FULL does refuse it).
 */
static ssize_t recv_after_payload_hole(uint32_t checksum, int *zeros)
{
	struct shmq *q = anon(1 << 16, checksum);
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_info info;
	static char big[12288], got[16384];
	ssize_t n;

	must(shmq_info(q, &info, sizeof(info)), "info");
	must(shmq_consumer_open(q, NULL, &c), "consumer");
	must(shmq_producer_open(q, NULL, &p), "producer");
	memset(big, 'A', sizeof(big));
	must(shmq_send(p, big, sizeof(big), SHMQ_NOWAIT), "send");
	/* The first record starts the ring; its second page is payload. */
	cr_assert_eq(fallocate(shmq_fd(q), FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE,
			       (off_t)(info.file_size - info.capacity) + 4096,
			       4096), 0, "punch: %s", strerror(errno));
	n = shmq_recv(c, got, sizeof(got), NULL, SHMQ_NOWAIT);
	*zeros = 0;
	for (ssize_t i = 0; i < n; i++)
		*zeros += got[i] == 0;
	shmq_consumer_close(c);
	must(shmq_producer_close(p), "close");
	shmq_close(q);
	return n;
}

/*
 * Resolved by the contract (PRODUCT.md, "Integrity"): an anonymous queue
 * checksums headers only by default, like tmpfs, so a hole punched into a
 * payload (a scribble by a holder of the descriptor) is delivered as the
 * zeros it reads; docs/security.md says so. With SHMQ_CHECKSUM_FULL the
 * record is refused. Both halves are checked.
 */
Test(anon_adv, a_hole_in_a_payload_is_refused_with_full_checksums_only)
{
	int zeros;
	ssize_t n;

	n = recv_after_payload_hole(SHMQ_CHECKSUM_FULL, &zeros);
	cr_assert_eq(n, -EBADMSG, "full coverage: %zd", n);
	n = recv_after_payload_hole(SHMQ_CHECKSUM_AUTO, &zeros);
	cr_assert(n == 12288 && zeros == 4096,
		  "header-only default: %zd bytes, %d zeros", n, zeros);
}

/* ---- attacks that held up -------------------------------------------- */

static void refused(int fd, int flags, int want)
{
	struct shmq *q = (struct shmq *)&q;
	int r = shmq_open_fd(fd, flags, &q);

	cr_assert_eq(r, want, "descriptor %d: %d (%s: %s), want %d", fd, r,
		     shmq_strerror(r), shmq_errdetail(), want);
	cr_assert_null(q);
	cr_assert_neq(shmq_errdetail()[0], '\0');
}

/* A memfd holding a copy of Q's image, sealed with SEALS after the copy. */
static int memfd_image(struct shmq *q, size_t len, unsigned int seals)
{
	struct shmq_info info;
	int fd = memfd_create("adv", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char *buf;

	cr_assert_geq(fd, 0);
	must(shmq_info(q, &info, sizeof(info)), "info");
	buf = calloc(1, info.file_size);
	cr_assert_eq(pread(shmq_fd(q), buf, info.file_size, 0),
		     (ssize_t)info.file_size);
	cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	free(buf);
	cr_assert_eq(fchmod(fd, 0600), 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0, "%s", strerror(errno));
	return fd;
}

Test(anon_adv, more_descriptors_that_are_not_usable_queues)
{
	struct shmq *q = anon(1 << 16, 0), *q2;
	struct shmq_info info;
	int fd;

	must(shmq_info(q, &info, sizeof(info)), "info");
	fd = eventfd(0, EFD_CLOEXEC);
	refused(fd, 0, -EINVAL);
	close(fd);
	/* Sealed, but shorter than its header says. */
	fd = memfd_image(q, 8192, F_SEAL_SHRINK | F_SEAL_GROW);
	refused(fd, 0, -EBADMSG);
	close(fd);
	/* Sealed against writes: no writable mapping, a clean -EPERM. */
	fd = memfd_image(q, info.file_size, F_SEAL_SHRINK | F_SEAL_WRITE);
	refused(fd, 0, -EPERM);
	must(shmq_open_fd(fd, SHMQ_OPEN_RDONLY, &q2), "read-only attach");
	shmq_close(q2);
	close(fd);
	fd = memfd_image(q, info.file_size, F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE);
	refused(fd, 0, -EPERM);
	close(fd);
	/* A deleted queue file: no name, no seal. */
	must(shmq_create(h_path("q"), NULL), "create");
	fd = open(h_path("q"), O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(unlink(h_path("q")), 0);
	refused(fd, 0, -EINVAL);
	close(fd);
	/* COLLAPSE_RANGE, ZERO_RANGE, growing and shrinking: all refused. */
	cr_assert_neq(fallocate(shmq_fd(q), FALLOC_FL_COLLAPSE_RANGE, 0, 4096), 0);
	cr_assert_neq(fallocate(shmq_fd(q), FALLOC_FL_ZERO_RANGE, 0, 4096), 0);
	cr_assert_neq(ftruncate(shmq_fd(q), 4096), 0);
	cr_assert_eq(errno, EPERM);
	must(shmq_open_fd(shmq_fd(q), 0, &q2), "the queue itself, after all that");
	shmq_close(q2);
	shmq_close(q);
}

/* Out of descriptors: every call fails cleanly, and nothing leaks. */
Test(anon_adv, descriptor_exhaustion_is_a_clean_error)
{
	struct shmq *q = anon(1 << 16, 0), *q2;
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct rlimit old, rl;
	int fds[256], n = 0, r;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = 64;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (n < 256 && (fds[n] = dup(0)) >= 0)
		n++;
	cr_assert_eq(errno, EMFILE);
	cr_assert_eq(shmq_open_fd(shmq_fd(q), 0, &q2), -EMFILE);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), -EMFILE);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), -EMFILE);
	cr_assert_eq(shmq_create_anon(NULL, &q2), -EMFILE);
	/* One free: the producer takes it, the consumer finds none. */
	close(fds[--n]);
	must(shmq_producer_open(q, NULL, &p), "producer with one descriptor");
	r = shmq_consumer_open(q, NULL, &c);
	cr_assert_eq(r, -EMFILE, "%d", r);
	must(shmq_producer_close(p), "close");
	while (n)
		close(fds[--n]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	shmq_close(q);
}

/*
 * SCM_RIGHTS-like handover to another uid (a fork() that changes its
 * uid has the descriptor as a receiver would): mode 0600 is refused
 * with -EACCES, as docs/security.md says; a group mode lets the group
 * in. Needs root to change uid; skipped otherwise.
 */
static int other_uid(struct shmq *q, int flags)
{
	struct shmq *q2;
	struct shmq_consumer *c;
	int r;

	if (setresuid(65534, 65534, 65534) < 0)
		return 90;
	r = shmq_open_fd(shmq_fd(q), flags | SHMQ_OPEN_ANY_OWNER, &q2);
	if (r == -EACCES)
		return 1;
	if (r < 0)
		return 91;
	if (!(flags & SHMQ_OPEN_RDONLY) && shmq_consumer_open(q2, NULL, &c) < 0)
		return 92;
	return 0;
}

Test(anon_adv, another_uid_gets_only_what_the_mode_gives)
{
	static const struct {
		unsigned int mode;
		int flags, want;
	} cases[] = {
		{ 0600, 0, 1 }, { 0600, SHMQ_OPEN_RDONLY, 1 },
		{ 0640, 0, 1 }, { 0640, SHMQ_OPEN_RDONLY, 0 },
		{ 0660, 0, 0 },
	};

	if (geteuid() != 0)
		cr_skip_test("needs root to change uid");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shmq_config cfg = { .capacity = 1 << 16,
					   .mode = cases[i].mode };
		struct shmq *q;
		pid_t pid;

		must(shmq_create_anon(&cfg, &q), "create");
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(WATCHDOG_S);
			/* Our gid stays 0: the group bits are ours. */
			_exit(other_uid(q, cases[i].flags));
		}
		cr_assert_eq(reap(pid, 10000), cases[i].want, "mode %04o flags %#x",
			     cases[i].mode, cases[i].flags);
		shmq_close(q);
	}
}

/* Many processes attach through /proc/self/fd at once; all get a message. */
Test(anon_adv, many_processes_attach_by_descriptor_at_once)
{
	struct shmq_config cfg = { .capacity = 1 << 16, .slots = 48 };
	struct shmq *q;
	struct shmq_producer *p;
	pid_t pids[40];
	int bad = 0, ready[2];
	char b[40];
	size_t got = 0;

	must(shmq_create_anon(&cfg, &q), "create");
	must(shmq_producer_open(q, NULL, &p), "producer");
	cr_assert_eq(pipe(ready), 0);
	for (int i = 0; i < 40; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			struct shmq *q2;
			struct shmq_consumer *c;
			char b[8];

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			alarm(WATCHDOG_S);
			if (shmq_open_fd(shmq_fd(q), 0, &q2) < 0)
				_exit(1);
			if (shmq_consumer_open(q2, NULL, &c) < 0 ||
			    write(ready[1], "r", 1) != 1)
				_exit(2);
			/* Attached before the send: sees "hi". */
			_exit(shmq_recv(c, b, sizeof(b), NULL, 5000000000ll) == 2 ?
			      0 : 3);
		}
	}
	close(ready[1]);
	while (got < sizeof(b)) {
		struct pollfd pf = { .fd = ready[0], .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, 10000) != 1 ||
		    (n = read(ready[0], b, sizeof(b) - got)) <= 0)
			break;
		got += (size_t)n;
	}
	close(ready[0]);
	must(shmq_send(p, "hi", 2, SHMQ_FOREVER), "send");
	for (int i = 0; i < 40; i++)
		bad += reap(pids[i], 10000) != 0;
	cr_assert_eq(bad, 0, "%d of 40 attachers failed", bad);
	must(shmq_producer_close(p), "close");
	shmq_close(q);
}
