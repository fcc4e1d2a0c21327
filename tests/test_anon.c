/* SPDX-License-Identifier: MIT */
/*
 * Queues without a path (issue 16): shmq_create_anon, shmq_fd,
 * shmq_open_fd. Real processes: across fork() (the parent's handles dead
 * in the child, a dead parent seen dead, a SIGKILLed child seen dead,
 * groups), across exec() (the tools' --fd, stat of /proc/PID/fd/N) and
 * across SCM_RIGHTS; truncation refused with EPERM while a producer and
 * a consumer run, punched holes, descriptors that are not queues; the
 * examples. Every child has a watchdog (alarm, and it dies with the
 * test), and every wait for one is bounded.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "harness.h"

#define WATCHDOG_S	20	/* a child never outlives this */
#define WAIT_MS		15000	/* the test's bound on any child */

TestSuite(anon, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* ---- processes ------------------------------------------------------ */

/* Fork a child that runs FN(ARG) and exits with its value. */
static pid_t kid(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		alarm(WATCHDOG_S);
		_exit(fn(arg));
	}
	return pid;
}

/*
 * Reap PID within MS milliseconds: its exit code, 128 + signal, or -1
 * when it had to be killed (a hang).
 */
static int reap(pid_t pid, int ms)
{
	struct timespec nap = { 0, 2000000 };
	int status;

	for (int i = 0; i < ms / 2; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			       128 + WTERMSIG(status);
		nanosleep(&nap, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/*
 * Run ARGV (exec), with FD at TARGET in the child when FD >= 0, its
 * close-on-exec flag cleared (dup2 clears it on TARGET), IN on its
 * stdin, its stdout into OUT (CAP bytes, NUL-terminated). Returns as
 * reap().
 */
static int run(const char *const *argv, int fd, int target, const char *in,
	       char *out, size_t cap)
{
	pid_t parent = getpid();
	int ip[2], op[2];
	size_t len = 0;
	pid_t pid;

	cr_assert_eq(pipe2(ip, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(op, O_CLOEXEC), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		alarm(WATCHDOG_S);
		dup2(ip[0], STDIN_FILENO);
		dup2(op[1], STDOUT_FILENO);
		if (fd >= 0 && fd != target)
			dup2(fd, target);
		else if (fd >= 0)
			fcntl(fd, F_SETFD, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(ip[0]);
	close(op[1]);
	if (in && *in)
		cr_assert_eq(write(ip[1], in, strlen(in)), (ssize_t)strlen(in));
	close(ip[1]);
	for (;;) {
		struct pollfd p = { .fd = op[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, WAIT_MS) != 1)
			break;
		n = read(op[0], out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap - 1)
			break;
	}
	out[len] = '\0';
	close(op[0]);
	return reap(pid, WAIT_MS);
}

static void must(int r, const char *what)
{
	cr_assert_geq(r, 0, "%s: %s (%s)", what, shmq_strerror(r),
		      shmq_errdetail());
}

static struct shmq *anon(uint64_t capacity)
{
	struct shmq_config cfg = { .capacity = capacity };
	struct shmq *q;

	must(shmq_create_anon(&cfg, &q), "shmq_create_anon");
	return q;
}

static void send_n(struct shmq_producer *p, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		char m[32];

		snprintf(m, sizeof(m), "message %d", i);
		must(shmq_send(p, m, strlen(m), SHMQ_FOREVER), "send");
	}
}

/* Receive message I ("message I") within a bound. */
static void expect_msg(struct shmq_consumer *c, int i)
{
	char buf[64], want[32];
	ssize_t n = shmq_recv(c, buf, sizeof(buf) - 1, NULL,
			      (int64_t)5000000000);

	must((int)n, "recv");
	buf[n] = '\0';
	snprintf(want, sizeof(want), "message %d", i);
	cr_assert_str_eq(buf, want);
}

/* A child's side of expect_msg: 0 or an exit code. */
static int got_msg(struct shmq_consumer *c, int i)
{
	char buf[64], want[32];
	ssize_t n = shmq_recv(c, buf, sizeof(buf) - 1, NULL,
			      (int64_t)5000000000);

	if (n < 0)
		return 10;
	buf[n] = '\0';
	snprintf(want, sizeof(want), "message %d", i);
	return strcmp(buf, want) ? 11 : 0;
}

/* ---- the queue itself ----------------------------------------------- */

Test(anon, a_memfd_sealed_mode_0600_close_on_exec_that_works)
{
	struct shmq_config cfg = { .capacity = 1 << 16, .mode = 0640,
				   .checksum = SHMQ_CHECKSUM_FULL };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_info info;
	struct shmq_stat *st;
	struct shmq *q, *q2;
	struct stat sb;
	int fd, seals;

	q = anon(1 << 16);
	fd = shmq_fd(q);
	cr_assert_geq(fd, 0);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "shmq_fd is not close-on-exec");
	cr_assert_eq(fstat(fd, &sb), 0);
	cr_assert(S_ISREG(sb.st_mode));
	cr_assert_eq(sb.st_nlink, 0, "a memfd has no link");
	cr_assert_eq(sb.st_mode & 07777, 0600);
	seals = fcntl(fd, F_GET_SEALS);
	cr_assert_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
		     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, "seals %#x", seals);
	/* F_SEAL_SEAL: nobody adds F_SEAL_WRITE under the attached ones. */
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
	cr_assert_eq(errno, EPERM);

	must(shmq_info(q, &info, sizeof(info)), "info");
	cr_assert(info.flags & SHMQ_INFO_CREATED);
	cr_assert_eq(info.checksum, SHMQ_CHECKSUM_HEADER,
		     "default: headers only, as on tmpfs");
	cr_assert_eq((uint64_t)sb.st_size, info.file_size);

	must(shmq_consumer_open(q, NULL, &c), "consumer");
	must(shmq_producer_open(q, NULL, &p), "producer");
	send_n(p, 0, 10);
	for (int i = 0; i < 10; i++)
		expect_msg(c, i);
	/* In memory only: nothing to write, and it succeeds. */
	cr_assert_eq(shmq_sync(q), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_sync_error(q), 0);
	must(shmq_stat_get(q, &st), "stat");
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_OPEN);
	cr_assert_eq(st->nconsumers, 1);
	shmq_stat_free(st);
	must(shmq_producer_close(p), "close");
	cr_assert_eq(shmq_recv(c, NULL, 0, NULL, SHMQ_NOWAIT), SHMQ_EOF);
	shmq_consumer_close(c);
	/* The watermark moves: sync-every producers, durable consumers. */
	{
		struct shmq_consumer_opts od = { .flags = SHMQ_CONSUMER_DURABLE };
		struct shmq_producer_opts po = { .sync_mode = SHMQ_SYNC_EVERY };

		must(shmq_consumer_open(q, &od, &c), "durable consumer");
		must(shmq_producer_open(q, &po, &p), "sync-every producer");
		send_n(p, 10, 2);
		expect_msg(c, 10);
		expect_msg(c, 11);
		must(shmq_producer_close(p), "close");
		shmq_consumer_close(c);
	}
	shmq_close(q);

	/* CFG as for a file: mode and checksum coverage; bad modes refused. */
	must(shmq_create_anon(&cfg, &q2), "create with cfg");
	cr_assert_eq(fstat(shmq_fd(q2), &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0640);
	must(shmq_info(q2, &info, sizeof(info)), "info");
	cr_assert_eq(info.checksum, SHMQ_CHECKSUM_FULL);
	cr_assert_eq(info.capacity, 1 << 16);
	shmq_close(q2);
	cfg.mode = 0666;
	cr_assert_eq(shmq_create_anon(&cfg, &q2), -EINVAL);
	cr_assert(q2 == NULL);
	cfg.mode = 0700;
	cr_assert_eq(shmq_create_anon(&cfg, &q2), -EINVAL);
}

/* ---- truncation: EPERM for everyone, SIGBUS for nobody --------------- */

#define TRUNC_MSGS	20000

static int trunc_producer(void *arg)
{
	struct shmq_producer *p;
	struct shmq *q;
	char m[200];

	if (shmq_open_fd(*(int *)arg, 0, &q) < 0 ||
	    shmq_producer_open(q, NULL, &p) < 0)
		return 2;
	for (int i = 0; i < TRUNC_MSGS; i++) {
		h_msg_fill(m, h_msg_len(7, (uint64_t)i, sizeof(m)), 7, (uint64_t)i);
		if (shmq_send(p, m, h_msg_len(7, (uint64_t)i, sizeof(m)),
			      SHMQ_FOREVER) < 0)
			return 3;
	}
	return shmq_producer_close(p) < 0 ? 4 : 0;
}

static int trunc_consumer(void *arg)
{
	struct shmq_consumer *c;
	struct shmq *q;
	char m[200];
	ssize_t n;
	uint64_t i = 0;

	if (shmq_open_fd(*(int *)arg, 0, &q) < 0 ||
	    shmq_consumer_open(q, NULL, &c) < 0)
		return 2;
	/* Attached: the producer may start (a byte on fd 1 of the pipe). */
	if (write(((int *)arg)[1], "a", 1) != 1)
		return 5;
	while ((n = shmq_recv(c, m, sizeof(m), NULL, (int64_t)10000000000)) >= 0) {
		if (h_msg_check(m, (size_t)n, 7, i, sizeof(m)))
			return 6;
		i++;
	}
	return n == SHMQ_EOF && i == TRUNC_MSGS ? 0 : 7;
}

/* Every way to change the size fails with EPERM; returns how many did not. */
static int try_resize(int fd, off_t size)
{
	char proc[64];
	int bad = 0, fd2;

	bad += !(ftruncate(fd, 0) < 0 && errno == EPERM);
	bad += !(ftruncate(fd, size - 4096) < 0 && errno == EPERM);
	bad += !(ftruncate(fd, size + 4096) < 0 && errno == EPERM);
	bad += !(fallocate(fd, 0, size, 4096) < 0 && errno == EPERM);
	/* Through a description of its own, and by name through /proc. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	fd2 = open(proc, O_RDWR | O_CLOEXEC);
	bad += fd2 < 0;
	if (fd2 >= 0) {
		bad += !(ftruncate(fd2, 4096) < 0 && errno == EPERM);
		close(fd2);
	}
	bad += !(truncate(proc, 0) < 0 && errno == EPERM);
	return bad;
}

Test(anon, truncation_fails_with_eperm_and_nobody_gets_sigbus)
{
	struct shmq *q = anon(1 << 16);
	int args[2], pp[2], bad = 0, rounds = 0, status = 0, code;
	struct shmq_info info;
	pid_t prod, cons;
	char b;

	must(shmq_info(q, &info, sizeof(info)), "info");
	args[0] = shmq_fd(q);
	cr_assert_eq(pipe(pp), 0);
	args[1] = pp[1];
	cons = kid(trunc_consumer, args);
	close(pp[1]);	/* a child that fails ends our read */
	cr_assert_eq(read(pp[0], &b, 1), 1, "the consumer never attached");
	prod = kid(trunc_producer, args);
	/* While they run, an attacker holding the descriptor tries its worst. */
	while (waitpid(prod, &status, WNOHANG) == 0 && rounds < 100000) {
		bad += try_resize(args[0], (off_t)info.file_size);
		rounds++;
	}
	cr_assert_eq(bad, 0, "%d resize attempts did not fail with EPERM", bad);
	cr_assert_gt(rounds, 0);
	/* prod was reaped by waitpid above unless the rounds ran out. */
	if (rounds == 100000)
		code = reap(prod, WAIT_MS);
	else
		code = WIFEXITED(status) ? WEXITSTATUS(status) :
		       128 + WTERMSIG(status);
	cr_assert_eq(code, 0, "producer: %d (128 + 7: SIGBUS)", code);
	code = reap(cons, WAIT_MS);
	cr_assert_eq(code, 0, "consumer: %d (128 + 7: SIGBUS)", code);
	cr_assert_eq(try_resize(args[0], (off_t)info.file_size), 0);
	shmq_close(q);
}

/* ---- holes read back as zeros: validation errors, never a crash ----- */

Test(anon, a_punched_hole_is_a_validation_error_not_a_crash)
{
	struct shmq *q = anon(1 << 16), *q2;
	struct shmq_producer *p;
	struct shmq_consumer *c, *c2;
	struct shmq_info info;
	struct shmq_stat *st;
	char buf[64];
	ssize_t n;
	int fd = shmq_fd(q);

	must(shmq_info(q, &info, sizeof(info)), "info");
	must(shmq_consumer_open(q, NULL, &c), "consumer");
	must(shmq_producer_open(q, NULL, &p), "producer");
	send_n(p, 0, 5);
	expect_msg(c, 0);
	/* The ring's pages: the next record's header is now zeros. */
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       (off_t)(info.file_size - info.capacity),
			       (off_t)info.capacity), 0, "punch: %s", strerror(errno));
	n = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT);
	cr_assert_eq(n, -EBADMSG, "recv after the hole: %zd (%s)", n,
		     shmq_strerror((int)n));
	cr_assert_neq(shmq_errdetail()[0], '\0');
	/* A newcomer starting at the oldest record: the same. */
	must(shmq_consumer_open(q, NULL, &c2), "a second consumer");
	n = shmq_recv(c2, buf, sizeof(buf), NULL, SHMQ_NOWAIT);
	cr_assert_eq(n, -EBADMSG, "%zd", n);
	shmq_consumer_close(c2);

	/* The header and the slots: zeros everywhere. */
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			       (off_t)(info.file_size - info.capacity)), 0);
	n = shmq_recv(c, buf, sizeof(buf), NULL, 200000000);
	cr_assert_lt(n, 0, "a message out of zeros: %zd bytes", n);
	n = shmq_send(p, "x", 1, 200000000);
	(void)n;	/* any outcome but a crash */
	if (shmq_stat_get(q, &st) == 0)
		shmq_stat_free(st);
	cr_assert_eq(shmq_open_fd(fd, 0, &q2), SHMQ_ENOTQUEUE, "%s",
		     shmq_errdetail());
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* ---- descriptors that are not queues -------------------------------- */

static int memfd_copy(struct shmq *q, unsigned int flags)
{
	struct shmq_info info;
	int fd = memfd_create("copy", MFD_CLOEXEC | flags);
	char *buf;

	cr_assert_geq(fd, 0);
	must(shmq_info(q, &info, sizeof(info)), "info");
	buf = malloc(info.file_size);
	cr_assert_eq(pread(shmq_fd(q), buf, info.file_size, 0),
		     (ssize_t)info.file_size);
	cr_assert_eq(pwrite(fd, buf, info.file_size, 0), (ssize_t)info.file_size);
	free(buf);
	cr_assert_eq(fchmod(fd, 0600), 0);
	return fd;
}

static void refused(int fd, int flags, int want, const char *needle)
{
	struct shmq *q = (struct shmq *)&q;
	int r = shmq_open_fd(fd, flags, &q);

	cr_assert_eq(r, want, "descriptor %d: %d (%s: %s), want %d", fd, r,
		     shmq_strerror(r), shmq_errdetail(), want);
	cr_assert_null(q);
	cr_assert(strstr(shmq_errdetail(), needle), "detail \"%s\" lacks \"%s\"",
		  shmq_errdetail(), needle);
}

Test(anon, descriptors_that_are_not_queues_get_a_clear_error)
{
	struct shmq *q = anon(1 << 16), *q2;
	struct shmq_producer *p;
	int pfd[2], sv[2], fd, closed;
	char proc[64];

	refused(-1, 0, -EBADF, "nothing is open");
	closed = dup(0);
	close(closed);
	refused(closed, 0, -EBADF, "nothing is open");
	cr_assert_eq(pipe(pfd), 0);
	refused(pfd[0], SHMQ_OPEN_RDONLY, -EINVAL, "pipe");
	refused(pfd[1], 0, -EINVAL, "pipe");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	refused(sv[0], 0, -EINVAL, "socket");
	fd = open("/dev/null", O_RDWR);
	refused(fd, 0, -EINVAL, "device");
	close(fd);
	fd = open(h_dir(), O_RDONLY | O_DIRECTORY);
	refused(fd, SHMQ_OPEN_RDONLY, -EINVAL, "directory");
	close(fd);
	/* A plain file that is not a queue. */
	fd = open(h_path("plain"), O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_eq(write(fd, "just some text, not a queue at all\n", 35), 35);
	refused(fd, 0, SHMQ_ENOTQUEUE, "not a queue");
	close(fd);
	/* A valid queue image in a memfd nobody sealed: anyone may cut it. */
	fd = memfd_copy(q, MFD_ALLOW_SEALING);
	refused(fd, 0, -EINVAL, "F_SEAL_SHRINK");
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	must(shmq_open_fd(fd, 0, &q2), "the same image once sealed");
	shmq_close(q2);
	close(fd);
	fd = memfd_copy(q, 0);	/* F_SEAL_SEAL alone: can never be sealed */
	refused(fd, 0, -EINVAL, "F_SEAL_SHRINK");
	close(fd);
	/* Access: the descriptor is the capability. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", shmq_fd(q));
	fd = open(proc, O_PATH | O_CLOEXEC);
	refused(fd, SHMQ_OPEN_RDONLY, -EBADF, "O_PATH");
	close(fd);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	refused(fd, 0, -EACCES, "read-only");
	must(shmq_open_fd(fd, SHMQ_OPEN_RDONLY, &q2), "read-only attach");
	cr_assert_eq(shmq_producer_open(q2, NULL, &p), -EROFS);
	shmq_close(q2);
	close(fd);
	refused(shmq_fd(q), SHMQ_OPEN_CREATE, -EINVAL, "flags");
	/* Mode bits: what shmq_open refuses, shmq_open_fd refuses. */
	cr_assert_eq(fchmod(shmq_fd(q), 0666), 0);
	refused(shmq_fd(q), 0, -EACCES, "world-writable");
	shmq_close(q);
}

/* A queue file handed over as a descriptor: no name to check (F18). */
Test(anon, a_queue_file_by_descriptor_outlives_its_name)
{
	struct shmq_config cfg = { .capacity = 1 << 16 };
	const char *path = h_path("q");
	struct shmq_consumer *cp, *cf;
	struct shmq *qp, *qf;
	char buf[16];
	int fd;

	must(shmq_create(path, &cfg), "create");
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	must(shmq_open(path, 0, NULL, &qp), "open by path");
	must(shmq_open_fd(fd, 0, &qf), "open by descriptor");
	close(fd);
	must(shmq_consumer_open(qp, NULL, &cp), "consumer by path");
	must(shmq_consumer_open(qf, NULL, &cf), "consumer by descriptor");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(shmq_recv(cp, buf, sizeof(buf), NULL, 300000000), -ESTALE,
		     "by path: the file was deleted");
	cr_assert_eq(shmq_recv(cf, buf, sizeof(buf), NULL, 300000000), -ETIMEDOUT,
		     "by descriptor: %s", shmq_errdetail());
	shmq_consumer_close(cp);
	shmq_consumer_close(cf);
	shmq_close(qp);
	shmq_close(qf);
}

/* ---- fork() --------------------------------------------------------- */

struct fork_arg {
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_consumer *c;
	int pipe_w;
	int pipe_r;
};

/* In the child: the parent's handles are dead; a fresh attach works. */
static int inherited_child(void *arg)
{
	struct fork_arg *a = arg;
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq_msg m;
	struct shmq *q;
	char buf[64];

	if (shmq_send(a->p, "x", 1, SHMQ_NOWAIT) != -EBADFD ||
	    !strstr(shmq_errdetail(), "fork"))
		return 20;
	if (shmq_recv(a->c, buf, sizeof(buf), NULL, SHMQ_NOWAIT) != -EBADFD ||
	    shmq_peek(a->c, &m, SHMQ_NOWAIT) != -EBADFD ||
	    shmq_release(a->c) != -EBADFD ||
	    shmq_commit(a->p, 0) != -EBADFD || shmq_publish(a->p) != -EBADFD)
		return 21;
	if (shmq_open_fd(shmq_fd(a->q), 0, &q) < 0)
		return 22;
	/* The parent's producer is alive: its lock is seen from here. */
	if (shmq_producer_open(q, NULL, &p) != -EBUSY)
		return 23;
	if (shmq_consumer_open(q, NULL, &c) < 0)
		return 24;
	for (int i = 0; i < 3; i++)
		if (got_msg(c, i))
			return 25;
	/* The parent's: freed here, the session and the slot stay theirs. */
	if (shmq_producer_close(a->p) != -EBADFD)
		return 26;
	shmq_consumer_close(a->c);
	shmq_consumer_close(c);
	shmq_close(q);
	shmq_close(a->q);	/* the inherited attachment: unmapped here */
	return 0;
}

Test(anon, after_fork_the_parents_handles_are_dead_in_the_child)
{
	struct fork_arg a = { .q = anon(1 << 16) };
	struct shmq_stat *st;
	pid_t pid;
	int code;

	must(shmq_producer_open(a.q, NULL, &a.p), "producer");
	must(shmq_consumer_open(a.q, NULL, &a.c), "consumer");
	send_n(a.p, 0, 3);
	pid = kid(inherited_child, &a);
	code = reap(pid, WAIT_MS);
	cr_assert_eq(code, 0, "the child's exit %d (see inherited_child)", code);
	/* Ours still work, and nothing the child did ended them. */
	send_n(a.p, 3, 1);
	for (int i = 0; i < 4; i++)
		expect_msg(a.c, i);
	must(shmq_stat_get(a.q, &st), "stat");
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_OPEN);
	cr_assert_eq(st->nconsumers, 1, "the child's consumer left, ours stays");
	cr_assert(st->consumers[0].alive);
	shmq_stat_free(st);
	must(shmq_producer_close(a.p), "close");
	shmq_consumer_close(a.c);
	shmq_close(a.q);
}

/*
 * The grandchild attaches, reads, then waits for the end: its parent, the
 * producer, is SIGKILLed. The roles it inherited must not keep that
 * parent looking alive.
 */
static int orphan(void *arg)
{
	struct fork_arg *a = arg;
	struct shmq_consumer *c;
	struct shmq_stat *st;
	struct shmq *q;
	char buf[64];
	ssize_t n;
	int dead_slots = 0;

	if (shmq_open_fd(shmq_fd(a->q), 0, &q) < 0 ||
	    shmq_consumer_open(q, NULL, &c) < 0)
		return 30;
	if (write(a->pipe_w, "r", 1) != 1)
		return 31;
	for (int i = 0; i < 3; i++)
		if (got_msg(c, i))
			return 32;
	n = shmq_recv(c, buf, sizeof(buf), NULL, (int64_t)8000000000);
	if (n != SHMQ_EDIED)
		return n == -ETIMEDOUT ? 33 : 34;
	/* The dead parent's consumer is dead too. */
	if (shmq_stat_get(q, &st) < 0)
		return 35;
	for (uint32_t i = 0; i < st->nconsumers; i++)
		dead_slots += !st->consumers[i].alive;
	shmq_stat_free(st);
	if (dead_slots != 1)
		return 36;
	shmq_consumer_close(c);
	shmq_close(q);
	return 0;
}

static int doomed_parent(void *arg)
{
	struct fork_arg *a = arg;
	struct shmq_producer *p;
	struct shmq_consumer *c;
	pid_t child;
	int pp[2];
	char b;

	if (shmq_create_anon(NULL, &a->q) < 0 ||
	    shmq_producer_open(a->q, NULL, &p) < 0 ||
	    shmq_consumer_open(a->q, NULL, &c) < 0)
		return 40;
	for (int i = 0; i < 3; i++) {
		char m[32];

		snprintf(m, sizeof(m), "message %d", i);
		if (shmq_send(p, m, strlen(m), SHMQ_NOWAIT) < 0)
			return 41;
	}
	if (pipe(pp) < 0)
		return 42;
	a->pipe_w = pp[1];
	fflush(stdout);
	child = fork();
	if (child == 0) {
		/* Not PR_SET_PDEATHSIG: it must outlive us; the test reaps it. */
		alarm(WATCHDOG_S);
		_exit(orphan(a));
	}
	/* Tell the test which pid to reap, once the child has attached. */
	if (read(pp[0], &b, 1) != 1 ||
	    write(a->pipe_r, &child, sizeof(child)) != sizeof(child))
		return 43;
	raise(SIGKILL);
	return 44;
}

/*
 * The test is a subreaper: the orphaned grandchild is reparented to it,
 * and its exit code says what it saw.
 */
Test(anon, a_dead_parent_is_seen_dead_by_the_child_that_inherited_its_roles)
{
	struct fork_arg a = { 0 };
	pid_t parent, child = 0;
	int pp[2], code;

	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe(pp), 0);
	a.pipe_r = pp[1];
	parent = kid(doomed_parent, &a);
	close(pp[1]);	/* a child that fails ends our read */
	cr_assert_eq(read(pp[0], &child, sizeof(child)), sizeof(child),
		     "the parent never forked its child");
	cr_assert_eq(reap(parent, WAIT_MS), 128 + SIGKILL);
	code = reap(child, WAIT_MS);
	cr_assert_eq(code, 0, "the child's exit %d (33: it waited in vain for the producer's death)",
		     code);
}

static int killed_producer(void *arg)
{
	struct fork_arg *a = arg;
	struct shmq_producer *p;
	struct shmq *q;

	if (shmq_open_fd(shmq_fd(a->q), 0, &q) < 0 ||
	    shmq_producer_open(q, NULL, &p) < 0)
		return 50;
	for (int i = 0; i < 5; i++) {
		char m[32];

		snprintf(m, sizeof(m), "message %d", i);
		if (shmq_send(p, m, strlen(m), SHMQ_NOWAIT) < 0)
			return 51;
	}
	if (write(a->pipe_w, "s", 1) != 1)
		return 52;
	for (;;)
		pause();
}

Test(anon, a_sigkilled_child_is_seen_dead_by_the_parent)
{
	struct fork_arg a = { .q = anon(1 << 16) };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	char buf[64];
	pid_t pid;
	int pp[2];
	char b;

	must(shmq_consumer_open(a.q, NULL, &c), "consumer");
	cr_assert_eq(pipe(pp), 0);
	a.pipe_w = pp[1];
	pid = kid(killed_producer, &a);
	close(pp[1]);	/* a child that fails ends our read */
	cr_assert_eq(read(pp[0], &b, 1), 1, "the child never sent");
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(reap(pid, WAIT_MS), 128 + SIGKILL);
	for (int i = 0; i < 5; i++)
		expect_msg(c, i);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, (int64_t)5000000000),
		     SHMQ_EDIED, "%s", shmq_errdetail());
	/* Its role is free at once; the next session follows. */
	must(shmq_producer_open(a.q, NULL, &p), "the next producer");
	send_n(p, 5, 1);
	expect_msg(c, 5);
	must(shmq_producer_close(p), "close");
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), SHMQ_EOF);
	shmq_consumer_close(c);
	shmq_close(a.q);
}

/* A group member in a child claims a message and is killed with it. */
static int doomed_member(void *arg)
{
	struct shmq_consumer_opts o = { .kind = SHMQ_CONSUMER_GROUP, .name = "g" };
	struct fork_arg *a = arg;
	struct shmq_consumer *c;
	struct shmq_msg m;
	struct shmq *q;

	if (shmq_open_fd(shmq_fd(a->q), 0, &q) < 0 ||
	    shmq_consumer_open(q, &o, &c) < 0)
		return 60;
	if (shmq_peek(c, &m, (int64_t)5000000000) < 0)
		return 61;
	if (write(a->pipe_w, "c", 1) != 1)
		return 62;
	for (;;)
		pause();
}

Test(anon, groups_and_observers_across_fork)
{
	struct shmq_consumer_opts og = { .kind = SHMQ_CONSUMER_GROUP, .name = "g" };
	struct shmq_consumer_opts oo = { .kind = SHMQ_CONSUMER_OBSERVER };
	struct fork_arg a = { .q = anon(1 << 16) };
	struct shmq_consumer *member, *obs;
	struct shmq_producer *p;
	int pp[2], seen[10] = { 0 }, redelivered = 0;
	struct shmq_msg m;
	char buf[64], b;
	pid_t pid;
	ssize_t n;

	must(shmq_producer_open(a.q, NULL, &p), "producer");
	must(shmq_consumer_open(a.q, &oo, &obs), "observer");
	send_n(p, 0, 10);
	cr_assert_eq(pipe(pp), 0);
	a.pipe_w = pp[1];
	pid = kid(doomed_member, &a);
	close(pp[1]);	/* a child that fails ends our read */
	cr_assert_eq(read(pp[0], &b, 1), 1, "the child member never claimed");
	must(shmq_consumer_open(a.q, &og, &member), "member");
	kill(pid, SIGKILL);
	cr_assert_eq(reap(pid, WAIT_MS), 128 + SIGKILL);
	must(shmq_producer_close(p), "close");
	while ((n = shmq_recv(member, buf, sizeof(buf) - 1, &m,
			      (int64_t)5000000000)) >= 0) {
		int i;

		buf[n] = '\0';
		cr_assert_eq(sscanf(buf, "message %d", &i), 1);
		cr_assert(i >= 0 && i < 10 && !seen[i]++, "message %d twice", i);
		redelivered += !!(m.flags & SHMQ_MSG_REDELIVERED);
	}
	cr_assert_eq(n, SHMQ_EOF, "%s", shmq_strerror((int)n));
	for (int i = 0; i < 10; i++)
		cr_assert_eq(seen[i], 1, "message %d lost", i);
	cr_assert_eq(redelivered, 1, "the dead member's claim comes back once");
	for (int i = 0; i < 10; i++)
		expect_msg(obs, i);
	cr_assert_eq(shmq_recv(obs, buf, sizeof(buf), NULL, SHMQ_NOWAIT), SHMQ_EOF);
	shmq_consumer_close(member);
	shmq_consumer_close(obs);
	shmq_close(a.q);
}

/* ---- exec(): the tools' --fd, stat of /proc/PID/fd/N ---------------- */

Test(anon, across_exec_with_the_tools)
{
	struct shmq *q = anon(1 << 16);
	struct shmq_producer *p;
	struct shmq_consumer *c;
	char out[4096], arg[64];
	char buf[64];
	int fd = shmq_fd(q);

	/* get: the queue as descriptor 10, dup2 cleared close-on-exec. */
	must(shmq_producer_open(q, NULL, &p), "producer");
	send_n(p, 0, 3);
	must(shmq_producer_close(p), "close");
	{
		const char *argv[] = { SHMQ_TOOL, "get", "--fd", "10", "--lines", NULL };

		cr_assert_eq(run(argv, fd, 10, NULL, out, sizeof(out)), 0, "get: %s", out);
		cr_assert_str_eq(out, "message 0\nmessage 1\nmessage 2\n");
	}
	/* put: lines from stdin; we read them and its end. */
	must(shmq_consumer_open(q, NULL, &c), "consumer");
	{
		const char *argv[] = { SHMQ_TOOL, "put", "--fd", "9", "--lines", NULL };

		cr_assert_eq(run(argv, fd, 9, "message 3\nmessage 4\n", out,
				 sizeof(out)), 0);
	}
	expect_msg(c, 3);
	expect_msg(c, 4);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), SHMQ_EOF);
	/* shmq_fd() is close-on-exec: passed as it is, it is not there. */
	snprintf(arg, sizeof(arg), "%d", fd);
	{
		const char *argv[] = { SHMQ_TOOL, "get", "--fd", arg, NULL };

		cr_assert_eq(run(argv, -1, -1, NULL, out, sizeof(out)), 1);
	}
	/* stat follows /proc/PID/fd/N to a queue without a path. */
	snprintf(arg, sizeof(arg), "/proc/%d/fd/%d", (int)getpid(), fd);
	{
		const char *argv[] = { SHMQ_TOOL, "stat", arg, "--json", NULL };

		cr_assert_eq(run(argv, -1, -1, NULL, out, sizeof(out)), 0, "%s", out);
		cr_assert(strstr(out, "\"capacity\":65536"), "%s", out);
	}
	/* ... and to nothing else: a queue file has a path of its own. */
	{
		struct shmq_config cfg = { .capacity = 1 << 16 };
		const char *argv[] = { SHMQ_TOOL, "stat", arg, NULL };
		int ffd;

		must(shmq_create(h_path("named.q"), &cfg), "create");
		ffd = open(h_path("named.q"), O_RDWR | O_CLOEXEC);
		snprintf(arg, sizeof(arg), "/proc/%d/fd/%d", (int)getpid(), ffd);
		cr_assert_eq(run(argv, -1, -1, NULL, out, sizeof(out)), 1);
		close(ffd);
	}
	/* Usage: 0-2 are the data streams; --fd excludes PATH and --create. */
	{
		const char *a1[] = { SHMQ_TOOL, "get", "--fd", "2", NULL };
		const char *a2[] = { SHMQ_TOOL, "get", "--fd", "10", "x.q", NULL };
		const char *a3[] = { SHMQ_TOOL, "put", "--fd", "10", "--create", NULL };

		cr_assert_eq(run(a1, fd, 10, NULL, out, sizeof(out)), 2);
		cr_assert_eq(run(a2, fd, 10, NULL, out, sizeof(out)), 2);
		cr_assert_eq(run(a3, fd, 10, NULL, out, sizeof(out)), 2);
	}
	shmq_consumer_close(c);
	shmq_close(q);
}

/* ---- SCM_RIGHTS ----------------------------------------------------- */

static int send_fd(int sock, int fd)
{
	char byte = 'q';
	struct iovec iov = { &byte, 1 };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fd = -1;

	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* The sender makes its own queue after the fork: we share nothing else. */
static int sender(void *arg)
{
	int sock = *(int *)arg;
	struct shmq_producer *p;
	struct shmq *q;
	char b;

	if (shmq_create_anon(NULL, &q) < 0 || send_fd(sock, shmq_fd(q)) < 0)
		return 70;
	if (read(sock, &b, 1) != 1 || shmq_producer_open(q, NULL, &p) < 0)
		return 71;
	for (int i = 0; i < 100; i++) {
		char m[32];

		snprintf(m, sizeof(m), "message %d", i);
		if (shmq_send(p, m, strlen(m), SHMQ_FOREVER) < 0)
			return 72;
	}
	return shmq_producer_close(p) < 0 ? 73 : 0;
}

Test(anon, across_scm_rights)
{
	struct shmq_consumer *c;
	struct shmq *q;
	char buf[64];
	int sv[2], fd;
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = kid(sender, &sv[1]);
	close(sv[1]);
	fd = recv_fd(sv[0]);
	cr_assert_geq(fd, 0, "no descriptor received");
	must(shmq_open_fd(fd, 0, &q), "open_fd");
	close(fd);	/* ours now, through our own description */
	must(shmq_consumer_open(q, NULL, &c), "consumer");
	cr_assert_eq(write(sv[0], "k", 1), 1);
	for (int i = 0; i < 100; i++)
		expect_msg(c, i);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, (int64_t)5000000000),
		     SHMQ_EOF);
	cr_assert_eq(reap(pid, WAIT_MS), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* ---- the examples --------------------------------------------------- */

Test(anon, example_parent_child_prints_the_students)
{
	const char *argv[] = { EXAMPLE_PARENT_CHILD, "3", NULL };
	char out[4096];

	cr_assert_eq(run(argv, -1, -1, NULL, out, sizeof(out)), 0, "%s", out);
	cr_assert_str_eq(out,
			 "id = 1, name = wangrui, age = 18\n"
			 "id = 2, name = wangrui, age = 18\n"
			 "id = 3, name = wangrui, age = 18\n");
}

Test(anon, example_pass_fd_hands_the_queue_to_another_program)
{
	const char *argv[] = { EXAMPLE_PASS_FD, NULL };
	char out[4096];

	cr_assert_eq(run(argv, -1, -1, NULL, out, sizeof(out)), 0, "%s", out);
	cr_assert_str_eq(out,
			 "received: hello 1\nreceived: hello 2\nreceived: hello 3\n"
			 "received: hello 4\nreceived: hello 5\nend of stream\n");
}
