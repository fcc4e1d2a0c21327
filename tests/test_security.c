/* SPDX-License-Identifier: MIT */
/*
 * Planted paths, permissions and a file that changes under its users: the
 * field notes' F9 (truncation), F16 (what may sit at the path), F17 (PIDs
 * lie) and F18 (deleted or replaced), and the read-only ring mapping.
 * docs/security.md says what each of these defends and what it does not.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"
#include "../lib/format.h"

TestSuite(security, .init = h_setup, .fini = h_teardown, .timeout = 20);

#define CAP 16384u

static void make_queue(const char *name, uint32_t slots)
{
	struct shmq_config cfg = { .capacity = CAP, .slots = slots };
	int err = shmq_create(h_path(name), &cfg);

	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

static struct shmq *attach(const char *name, int flags)
{
	struct shmq *q = NULL;
	int err = shmq_open(h_path(name), flags, NULL, &q);

	cr_assert_eq(err, 0, "open %s: %s (%s)", name, shmq_strerror(err),
		     shmq_errdetail());
	return q;
}

/* Opening PATH must fail with WANT, at once, with a detail line. */
static void expect_refused_path(const char *path, int flags, int want)
{
	struct shmq *q = NULL;
	uint64_t t0 = h_now_ns();
	int err = shmq_open(path, flags, NULL, &q);

	if (err == 0)
		shmq_close(q);
	cr_assert_eq(err, want, "open %s: %d (%s), want %d (%s); \"%s\"", path,
		     err, shmq_strerror(err), want, shmq_strerror(want),
		     shmq_errdetail());
	cr_assert_neq(shmq_errdetail()[0], '\0', "no detail for %s", path);
	cr_assert_lt(h_now_ns() - t0, 1000000000ull, "open %s was slow", path);
}

Test(security, f16_refuses_a_hard_linked_queue_file_with_emlink)
{
	make_queue("q", 4);
	cr_assert_eq(link(h_path("q"), h_path("other-name")), 0);
	expect_refused_path(h_path("q"), 0, -EMLINK);
	expect_refused_path(h_path("other-name"), SHMQ_OPEN_RDONLY, -EMLINK);
	cr_assert(strstr(shmq_errdetail(), "hard link"), "%s", shmq_errdetail());
	/* Once the second name is gone, the file is acceptable again. */
	cr_assert_eq(unlink(h_path("other-name")), 0);
	shmq_close(attach("q", 0));
}

Test(security, f16_refuses_a_world_writable_queue_file_with_eacces)
{
	make_queue("q", 4);
	cr_assert_eq(chmod(h_path("q"), 0666), 0);
	expect_refused_path(h_path("q"), 0, -EACCES);
	cr_assert(strstr(shmq_errdetail(), "world-writable"), "%s",
		  shmq_errdetail());
	/* Not even for a reader, nor with ANY_OWNER: anyone could scribble. */
	expect_refused_path(h_path("q"), SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER,
			    -EACCES);
	cr_assert_eq(chmod(h_path("q"), 0660), 0);
	shmq_close(attach("q", 0));
}

Test(security, f16_create_refuses_a_world_writable_mode_and_leaves_nothing)
{
	struct shmq_config cfg = { .capacity = CAP, .mode = 0662 };
	struct stat sb;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), -EINVAL);
	cr_assert_eq(stat(h_path("q"), &sb), -1, "a file was left behind");
	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &cfg,
			       &(struct shmq *){ NULL }), -EINVAL);
	cr_assert_eq(stat(h_path("q"), &sb), -1, "a file was left behind");
}

Test(security, f16_refuses_another_users_file_unless_any_owner_is_given)
{
	struct shmq *q;

	if (geteuid() != 0)
		cr_skip_test("needs root to give a file to another user");
	make_queue("q", 4);
	cr_assert_eq(chown(h_path("q"), 65534, 65534), 0);
	expect_refused_path(h_path("q"), 0, -EACCES);
	cr_assert(strstr(shmq_errdetail(), "owned by uid 65534"), "%s",
		  shmq_errdetail());
	expect_refused_path(h_path("q"), SHMQ_OPEN_RDONLY, -EACCES);
	q = attach("q", SHMQ_OPEN_ANY_OWNER);
	shmq_close(q);
}

Test(security, f16_refuses_symlinks_fifos_devices_and_directories)
{
	make_queue("q", 4);
	cr_assert_eq(symlink(h_path("q"), h_path("link")), 0);
	expect_refused_path(h_path("link"), 0, -ELOOP);
	cr_assert_eq(symlink("/nonexistent", h_path("dangling")), 0);
	expect_refused_path(h_path("dangling"), SHMQ_OPEN_CREATE, -ELOOP);
	/* A FIFO with no writer would block a plain open forever. */
	cr_assert_eq(mkfifo(h_path("fifo"), 0600), 0);
	expect_refused_path(h_path("fifo"), 0, -EINVAL);
	expect_refused_path(h_path("fifo"), SHMQ_OPEN_CREATE, -EINVAL);
	expect_refused_path("/dev/null", SHMQ_OPEN_ANY_OWNER, -EINVAL);
	expect_refused_path(h_dir(), SHMQ_OPEN_RDONLY, -EINVAL);
}

Test(security, f16_refuses_unknown_open_flags)
{
	make_queue("q", 4);
	expect_refused_path(h_path("q"), 0x100, -EINVAL);
}

/* A thread that waits in shmq_recv() and reports what it returned. */
struct waiter {
	struct shmq_consumer *c;
	int64_t timeout_ns;
	int ret;
};

static void *recv_thread(void *arg)
{
	struct waiter *w = arg;
	char buf[64];

	w->ret = (int)shmq_recv(w->c, buf, sizeof(buf), NULL, w->timeout_ns);
	return NULL;
}

struct sender {
	struct shmq_producer *p;
	int ret;
};

/* Sends until the ring is full, then waits in shmq_send() for room. */
static void *send_thread(void *arg)
{
	struct sender *s = arg;
	char buf[1000] = { 0 };

	do
		s->ret = shmq_send(s->p, buf, sizeof(buf), 5000000000ll);
	while (s->ret == 0);
	return NULL;
}

/* What a file operation does to the queue file under its users. */
enum change { TRUNCATE, DELETE, REPLACE };

static void change_file(enum change how)
{
	switch (how) {
	case TRUNCATE:
		/* Keep the header and slot pages: only the ring goes. */
		cr_assert_eq(truncate(h_path("q"), 4096), 0);
		break;
	case DELETE:
		cr_assert_eq(unlink(h_path("q")), 0);
		break;
	case REPLACE:
		make_queue("new", 4);
		cr_assert_eq(rename(h_path("new"), h_path("q")), 0);
		break;
	}
}

/* A blocked consumer and a blocked producer both notice HOW, with ESTALE. */
static void check_waiters_notice(enum change how)
{
	struct shmq_consumer *c, *slow;
	struct shmq_producer *p;
	struct waiter w = { .timeout_ns = 5000000000ll };
	struct sender s;
	pthread_t tw, ts;
	struct shmq *q;
	uint64_t t0;

	make_queue("q", 4);
	q = attach("q", 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &w.c), 0);
	cr_assert_eq(pthread_create(&tw, NULL, recv_thread, &w), 0);
	h_sleep_ms(150);	/* past the spin: asleep on the futex */
	t0 = h_now_ns();
	change_file(how);
	cr_assert_eq(pthread_join(tw, NULL), 0);
	cr_assert_eq(w.ret, SHMQ_ESTALE, "waiting consumer: %d (%s) \"%s\"",
		     w.ret, shmq_strerror(w.ret), shmq_errdetail());
	cr_assert_lt(h_now_ns() - t0, 1000000000ull, "noticed too late");
	shmq_consumer_close(w.c);
	shmq_close(q);

	/* Again with the producer blocked on a full ring. */
	unlink(h_path("q"));
	make_queue("q", 4);
	q = attach("q", 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &slow), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	s.p = p;
	cr_assert_eq(pthread_create(&ts, NULL, send_thread, &s), 0);
	h_sleep_ms(150);
	t0 = h_now_ns();
	change_file(how);
	cr_assert_eq(pthread_join(ts, NULL), 0);
	cr_assert_eq(s.ret, SHMQ_ESTALE, "blocked producer: %d (%s) \"%s\"",
		     s.ret, shmq_strerror(s.ret), shmq_errdetail());
	cr_assert_lt(h_now_ns() - t0, 1000000000ull, "noticed too late");

	/* A consumer that polls without waiting notices as well. */
	cr_assert_eq(shmq_consumer_open(q, &(struct shmq_consumer_opts){
		.start = SHMQ_START_LATEST }, &c), 0);
	{
		char buf[8];
		ssize_t r;
		uint64_t until = h_now_ns() + 1000000000ull;

		do
			r = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT);
		while (r == -EAGAIN && h_now_ns() < until);
		cr_assert_eq(r, SHMQ_ESTALE, "polling consumer: %zd (%s)", r,
			     shmq_strerror((int)r));
	}
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_consumer_close(slow);
	shmq_close(q);
}

Test(security, f9_a_truncated_file_is_reported_as_estale_not_sigbus)
{
	check_waiters_notice(TRUNCATE);
}

Test(security, f9_attach_refuses_a_truncated_file_without_sigbus)
{
	struct stat sb;

	make_queue("q", 4);
	cr_assert_eq(stat(h_path("q"), &sb), 0);
	cr_assert_eq(truncate(h_path("q"), sb.st_size - 1), 0);
	expect_refused_path(h_path("q"), 0, -EBADMSG);
	cr_assert(strstr(shmq_errdetail(), "truncated"), "%s", shmq_errdetail());
	expect_refused_path(h_path("q"), SHMQ_OPEN_RDONLY, -EBADMSG);
}

Test(security, f18_a_deleted_file_is_reported_as_estale)
{
	check_waiters_notice(DELETE);
}

Test(security, f18_a_replaced_file_is_reported_as_estale)
{
	check_waiters_notice(REPLACE);
}

Test(security, f18_roles_opened_after_a_replace_still_use_the_mapped_file)
{
	struct shmq_consumer *c;
	struct shmq *q;
	char buf[8];

	make_queue("q", 4);
	q = attach("q", 0);
	change_file(REPLACE);
	/* Role locks go through /proc/self/fd, never through the path. */
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, 200000000ll),
		     SHMQ_ESTALE);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* Attach N anonymous consumers in a child that then dies without closing. */
static void consumers_die_in_child(const char *name, int n)
{
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq_consumer *c;
		struct shmq *q;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(10);
		if (shmq_open(h_path(name), 0, NULL, &q))
			_exit(1);
		for (int i = 0; i < n; i++)
			if (shmq_consumer_open(q, NULL, &c))
				_exit(1);
		raise(SIGKILL);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status), "child failed to attach: %d", status);
}

Test(security, f17_a_dead_slot_is_reclaimed_when_its_pid_is_a_live_process)
{
	struct shmq_consumer *c;
	struct shmq_stat *st;
	uint32_t pid = 1;	/* init: alive, and certainly not a consumer */
	struct shmq *q;
	int err;

	make_queue("q", 1);
	consumers_die_in_child("q", 1);
	cr_assert_eq(h_poke(h_path("q"), SHMQ_HDR_SIZE +
			    offsetof(struct shmq_slot, pid), &pid, 4), 0);
	q = attach("q", 0);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->nconsumers, 1);
	cr_assert_eq(st->consumers[0].pid, 1);
	cr_assert_eq(st->consumers[0].alive, 0, "liveness came from the pid");
	shmq_stat_free(st);
	/* The only slot is the dead one: attaching must reclaim it. */
	err = shmq_consumer_open(q, NULL, &c);
	cr_assert_eq(err, 0, "attach: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	shmq_consumer_close(c);

	/* Our own pid in the slot does not keep it alive either. */
	consumers_die_in_child("q", 1);
	pid = (uint32_t)getpid();
	cr_assert_eq(h_poke(h_path("q"), SHMQ_HDR_SIZE +
			    offsetof(struct shmq_slot, pid), &pid, 4), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* Drains messages until EOF. */
static void *drain_thread(void *arg)
{
	struct waiter *w = arg;
	char buf[1024];

	while ((w->ret = (int)shmq_recv(w->c, buf, sizeof(buf), NULL,
					 5000000000ll)) >= 0)
		;
	return NULL;
}

Test(security, f17_a_producer_blocked_by_a_dead_consumer_reclaims_its_slot)
{
	struct shmq_producer *p;
	struct waiter w = { 0 };
	uint32_t pid = 1;
	char buf[1000] = { 0 };
	struct shmq *q;
	pthread_t t;
	int i, err = 0;

	make_queue("q", 2);
	consumers_die_in_child("q", 2);
	cr_assert_eq(h_poke(h_path("q"), SHMQ_HDR_SIZE + SHMQ_SLOT_SIZE +
			    offsetof(struct shmq_slot, pid), &pid, 4), 0);
	q = attach("q", 0);
	/* This reclaims slot 0; slot 1 stays dead, "owned" by pid 1. */
	cr_assert_eq(shmq_consumer_open(q, NULL, &w.c), 0);
	cr_assert_eq(pthread_create(&t, NULL, drain_thread, &w), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	/* Three rings' worth: only possible once the dead slot is freed. */
	for (i = 0; i < 3 * (int)(CAP / sizeof(buf)) && !err; i++)
		err = shmq_send(p, buf, sizeof(buf), 2000000000ll);
	cr_assert_eq(err, 0, "send %d: %s (%s)", i, shmq_strerror(err),
		     shmq_errdetail());
	shmq_producer_close(p);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(w.ret, SHMQ_EOF, "reader: %s", shmq_strerror(w.ret));
	shmq_consumer_close(w.c);
	shmq_close(q);
}

Test(security, the_ring_is_read_only_for_consumers, .signal = SIGSEGV)
{
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_msg m;
	struct shmq *q, *qc;

	make_queue("q", 4);
	q = attach("q", 0);
	qc = attach("q", 0);
	cr_assert_eq(shmq_consumer_open(qc, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_send(p, "hello", 5, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	cr_assert_eq(m.len, 5);
	/* A consumer that casts const away faults instead of corrupting. */
	((char *)m.data)[0] = 'J';
	cr_assert_fail("a write into the ring through a peeked message succeeded");
}

Test(security, a_producer_handle_makes_the_ring_writable_only_while_open,
     .signal = SIGSEGV)
{
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_msg m;
	struct shmq *q;

	make_queue("q", 4);
	q = attach("q", 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_send(p, "hello", 5, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	((char *)m.data)[0] = 'J';
	cr_assert_fail("the ring stayed writable after the producer closed");
}

Test(security, a_read_only_handle_can_stat_but_not_sync_a_live_queue)
{
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq *q, *ro;

	make_queue("q", 4);
	cr_assert_eq(chmod(h_path("q"), 0640), 0);
	q = attach("q", 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_send(p, "x", 1, SHMQ_NOWAIT), 0);
	ro = attach("q", SHMQ_OPEN_RDONLY);
	cr_assert_eq(shmq_stat_get(ro, &st), 0);
	cr_assert_eq(st->messages, 1);
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_OPEN);
	shmq_stat_free(st);
	/* Its msync would write nothing and return 0: refused (issue 12). */
	cr_assert_eq(shmq_sync(ro), -EROFS);
	cr_assert_str_eq(shmq_errdetail(), "sync needs write access");
	cr_assert_eq(shmq_consumer_open(ro, NULL, &(struct shmq_consumer *){ 0 }),
		     -EROFS);
	shmq_close(ro);
	shmq_producer_close(p);
	shmq_close(q);
}

/* ---- issue 12: file modes, create and rm against swaps, truncation ---- */

/*
 * Link-time hooks (tests/meson.build wraps getrandom and posix_fallocate
 * for this binary): shmq_create calls posix_fallocate once the file
 * exists and getrandom while it builds the header, so a test can act at
 * those two moments.
 */
static const char *hook_truncate;	/* truncate this file in getrandom */
static const char *hook_swap_dir;	/* rename it away and put ... */
static const char *hook_swap_to;	/* ... a symlink to this in its place */
static int hook_fallocate_err;		/* then fail posix_fallocate so */

ssize_t __real_getrandom(void *buf, size_t len, unsigned int flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags)
{
	if (hook_truncate)
		cr_assert_eq(truncate(hook_truncate, 0), 0);
	return __real_getrandom(buf, len, flags);
}

static int fallocate_hook(void)
{
	char moved[PATH_MAX];

	if (!hook_swap_dir)
		return 0;
	snprintf(moved, sizeof(moved), "%s.moved", hook_swap_dir);
	cr_assert_eq(rename(hook_swap_dir, moved), 0);
	cr_assert_eq(symlink(hook_swap_to, hook_swap_dir), 0);
	return hook_fallocate_err;
}

int __real_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len)
{
	int err = fallocate_hook();

	return err ? err : __real_posix_fallocate64(fd, off, len);
}

int __real_posix_fallocate(int fd, off_t off, off_t len);
int __wrap_posix_fallocate(int fd, off_t off, off_t len);
int __wrap_posix_fallocate(int fd, off_t off, off_t len)
{
	int err = fallocate_hook();

	return err ? err : __real_posix_fallocate(fd, off, len);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static bool exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

static const struct {
	unsigned int bit;
	const char *name;
} bad_bits[] = {
	{ S_ISUID, "setuid" },
	{ S_ISGID, "setgid" },
	{ S_ISVTX, "sticky" },
	{ S_IXUSR, "execute" },
	{ S_IXGRP, "execute" },
	{ S_IXOTH, "execute" },
};

Test(security, create_refuses_setuid_setgid_sticky_and_execute_bits)
{
	for (size_t i = 0; i < sizeof(bad_bits) / sizeof(bad_bits[0]); i++) {
		struct shmq_config cfg = { .capacity = CAP,
					   .mode = 0660 | bad_bits[i].bit };
		struct shmq *q = NULL;

		cr_assert_eq(shmq_create(h_path("q"), &cfg), -EINVAL,
			     "mode %o accepted", cfg.mode);
		cr_assert(strstr(shmq_errdetail(), bad_bits[i].name),
			  "mode %o: \"%s\"", cfg.mode, shmq_errdetail());
		cr_assert_not(exists(h_path("q")), "a file was left behind");
		cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &cfg, &q),
			     -EINVAL);
		cr_assert_not(exists(h_path("q")), "a file was left behind");
	}
	/* The most a queue file may have. */
	cr_assert_eq(shmq_create(h_path("q"),
				 &(struct shmq_config){ .capacity = CAP,
							.mode = 0664 }), 0);
}

Test(security, attach_refuses_a_file_with_setuid_setgid_sticky_or_execute_bits)
{
	make_queue("q", 4);
	for (size_t i = 0; i < sizeof(bad_bits) / sizeof(bad_bits[0]); i++) {
		cr_assert_eq(chmod(h_path("q"), 0600 | bad_bits[i].bit), 0);
		expect_refused_path(h_path("q"), 0, -EACCES);
		cr_assert(strstr(shmq_errdetail(), bad_bits[i].name), "%s",
			  shmq_errdetail());
		/* Not even to look: the bit is the attack, not the bytes. */
		expect_refused_path(h_path("q"),
				    SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER,
				    -EACCES);
	}
	cr_assert_eq(chmod(h_path("q"), 0664), 0);
	shmq_close(attach("q", 0));
}

Test(security, create_reports_a_file_truncated_under_it_and_leaves_nothing)
{
	struct shmq_config cfg = { .capacity = CAP };

	/* Cut to 0 bytes just before the header is written. */
	hook_truncate = h_path("q");
	cr_assert_eq(shmq_create(h_path("q"), &cfg), -ESTALE, "%s",
		     shmq_errdetail());
	cr_assert(strstr(shmq_errdetail(), "truncated"), "%s",
		  shmq_errdetail());
	cr_assert_not(exists(h_path("q")), "the half-made file was left");
	hook_truncate = NULL;
	make_queue("q", 4);
}

Test(security, a_failed_create_removes_its_own_file_not_one_a_swap_put_there)
{
	char victim[PATH_MAX];
	struct shmq_config cfg = { .capacity = CAP };

	cr_assert_eq(mkdir(h_path("d"), 0700), 0);
	cr_assert_eq(mkdir(h_path("victim"), 0700), 0);
	write_file(h_path("victim/q"), "precious\n");
	snprintf(victim, sizeof(victim), "%s", h_path("victim"));
	/*
	 * Once d/q exists, d is renamed away and a symlink to victim put in
	 * its place; then the allocation fails and create cleans up.
	 */
	hook_swap_dir = h_path("d");
	hook_swap_to = victim;
	hook_fallocate_err = ENOSPC;
	cr_assert_eq(shmq_create(h_path("d/q"), &cfg), -ENOSPC);
	cr_assert(exists(h_path("victim/q")),
		  "create's cleanup removed a file in another directory");
	cr_assert_not(exists(h_path("d.moved/q")),
		      "create left its half-made file");
}

/* ---- shmq rm (tools/shmq.c) against a directory swapped under it ---- */

static const char *tool_path(void)
{
	const char *t = getenv("SHMQ_TOOL");

	if (!t || access(t, X_OK) < 0)
		cr_skip_test("SHMQ_TOOL does not name the shmq binary");
	return t;
}

/* Start `shmq rm PATH`, with a watchdog; QUIET: no output. */
static pid_t spawn_rm(const char *tool, const char *path, bool quiet)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(20);
		if (quiet) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execl(tool, tool, "rm", path, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int wait_status(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether process PID has the file PATH open (its /proc fd links). */
static bool has_open(pid_t pid, const char *path)
{
	char link[64], target[PATH_MAX];

	for (int fd = 0; fd < 64; fd++) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (!strcmp(target, path))
			return true;
	}
	return false;
}

/*
 * Deterministic: rm has opened d/q and waits for it to become ready (a
 * creator still at work, F8) when d is renamed away and a symlink to
 * another directory takes its name; then d/q becomes ready. rm must
 * remove the queue it validated, in the directory it validated it in,
 * and nothing in the other directory.
 */
Test(security, rm_removes_in_the_directory_it_checked_not_through_a_swapped_name)
{
	const char *tool = tool_path();
	uint32_t zero = 0, ready = SHMQ_READY;
	char path[PATH_MAX], victim[PATH_MAX];
	uint64_t t0;
	pid_t pid;

	cr_assert_eq(mkdir(h_path("d"), 0700), 0);
	cr_assert_eq(mkdir(h_path("victim"), 0700), 0);
	write_file(h_path("victim/q"), "precious\n");
	snprintf(victim, sizeof(victim), "%s", h_path("victim"));
	snprintf(path, sizeof(path), "%s", h_path("d/q"));
	make_queue("d/q", 4);
	cr_assert_eq(h_poke(path, offsetof(struct shmq_hdr, ready), &zero,
			    sizeof(zero)), 0);

	pid = spawn_rm(tool, path, false);
	for (t0 = h_now_ns(); !has_open(pid, path); h_sleep_ms(1))
		cr_assert_lt(h_now_ns() - t0, 10000000000ull,
			     "rm never opened %s", path);
	cr_assert_eq(rename(h_path("d"), h_path("d.moved")), 0);
	cr_assert_eq(symlink(victim, h_path("d")), 0);
	cr_assert_eq(h_poke(h_path("d.moved/q"), offsetof(struct shmq_hdr, ready),
			    &ready, sizeof(ready)), 0);

	cr_assert_eq(wait_status(pid), 0, "rm failed");
	cr_assert(exists(h_path("victim/q")),
		  "rm removed a file in another directory");
	cr_assert_not(exists(h_path("d.moved/q")),
		      "rm did not remove the queue it checked");
}

/*
 * The race of issue 12, for real: an attacker (uid 65534 when we are
 * root) owns the directory holding d and exchanges d with a symlink to
 * a directory it cannot write, in a loop, while rm runs again and again
 * on d/q. The victim's file of the same name must never go.
 */
Test(security, rm_never_removes_a_file_outside_the_queue_directory_in_a_swap_race,
     .timeout = 90)
{
	const char *tool = tool_path();
	char qpath[PATH_MAX], proc_q[64];
	int afd, rdfd, removed = 0, tries;
	pid_t swapper;
	uint64_t t0;

	cr_assert_eq(mkdir(h_path("attack"), 0755), 0);
	cr_assert_eq(mkdir(h_path("attack/d"), 0755), 0);
	cr_assert_eq(mkdir(h_path("victim"), 0700), 0);
	write_file(h_path("victim/q"), "precious\n");
	cr_assert_eq(symlink(h_path("victim"), h_path("attack/s")), 0);
	if (geteuid() == 0) {
		cr_assert_eq(chown(h_path("attack"), 65534, 65534), 0);
		cr_assert_eq(chown(h_path("attack/d"), 65534, 65534), 0);
		cr_assert_eq(lchown(h_path("attack/s"), 65534, 65534), 0);
	}
	afd = open(h_path("attack"), O_PATH | O_DIRECTORY | O_CLOEXEC);
	rdfd = open(h_path("attack/d"), O_PATH | O_DIRECTORY | O_CLOEXEC);
	cr_assert(afd >= 0 && rdfd >= 0);
	snprintf(qpath, sizeof(qpath), "%s", h_path("attack/d/q"));
	/* The real directory by its descriptor, whichever name it has. */
	snprintf(proc_q, sizeof(proc_q), "/proc/self/fd/%d/q", rdfd);

	swapper = fork();
	cr_assert_geq(swapper, 0);
	if (swapper == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(120);
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 ||
				       setgid(65534) < 0 || setuid(65534) < 0))
			_exit(3);
		for (;;)
			if (renameat2(afd, "d", afd, "s", RENAME_EXCHANGE) < 0)
				_exit(errno == EINVAL || errno == ENOSYS ? 2 : 1);
	}

	/* A bound on work, not an assertion on speed. */
	t0 = h_now_ns();
	for (tries = 0; tries < 400 && h_now_ns() - t0 < 30000000000ull;
	     tries++) {
		struct stat sb;
		int st;

		if (fstatat(rdfd, "q", &sb, AT_SYMLINK_NOFOLLOW) < 0)
			cr_assert_eq(shmq_create(proc_q,
				&(struct shmq_config){ .capacity = CAP }), 0,
				"%s", shmq_errdetail());
		st = wait_status(spawn_rm(tool, qpath, true));
		removed += st == 0;
		cr_assert(exists(h_path("victim/q")),
			  "try %d: rm removed the victim's file", tries + 1);
		if (waitpid(swapper, &st, WNOHANG) == swapper) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
				cr_skip_test("no RENAME_EXCHANGE on this filesystem");
			cr_assert_fail("the swapper stopped: status %#x", st);
		}
	}
	kill(swapper, SIGKILL);
	waitpid(swapper, NULL, 0);
	cr_log_info("%d tries, %d removals of the real queue", tries, removed);
	/* Else the race never let rm get as far as removing anything. */
	cr_assert_gt(removed, 0, "rm never removed the real queue in %d tries",
		     tries);
	close(afd);
	close(rdfd);
}
