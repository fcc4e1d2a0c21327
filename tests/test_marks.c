/* SPDX-License-Identifier: MIT */
/*
 * Producer marks (issue 15, the NATS importer's last stream sequence):
 * shmq_producer_mark() rides on the next publish, shmq_producer_last_mark()
 * finds the last one that survived and counts the records after it. The
 * crash points are real: a child process is SIGKILLed at the kill points
 * between the mark's stores and W1 (lib/killpoint.c); a recovery's cut is
 * made by scribbling a record's checksum, as a power loss that kept some
 * pages and not others leaves the ring. Also shmq_producer_end(DIED),
 * shmq_msg.inc and shmq_consumer_last_end(), which the bridge relies on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "format.h"
#include "harness.h"

TestSuite(marks, .init = h_setup, .fini = h_teardown, .timeout = 60);

static struct shmq *mkq(const char *name)
{
	struct shmq_config cfg = { .capacity = 65536, .max_message = 4096 };
	struct shmq *q;

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0);
	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	return q;
}

static struct shmq_producer *prod(struct shmq *q, uint32_t flags)
{
	struct shmq_producer_opts o = { .flags = flags };
	struct shmq_producer *p;
	int ret = shmq_producer_open(q, &o, &p);

	cr_assert_eq(ret, 0, "producer open: %s (%s)", shmq_strerror(ret),
		     shmq_errdetail());
	return p;
}

static void send_len(struct shmq_producer *p, size_t len)
{
	char buf[4096];

	memset(buf, 'm', len);
	cr_assert_eq(shmq_send(p, buf, len, SHMQ_NOWAIT), 0);
}

static void expect_mark(struct shmq *q, int ret_want, uint64_t val_want,
			uint64_t after_want)
{
	struct shmq_producer *p = prod(q, SHMQ_PRODUCER_ACCEPT_LOSS);
	uint64_t v = 12345, a = 12345;
	int ret = shmq_producer_last_mark(p, &v, &a);

	cr_assert_eq(ret, ret_want, "last_mark: %d (%s), want %d", ret,
		     shmq_errdetail(), ret_want);
	if (ret == 0) {
		cr_assert_eq(v, val_want, "mark value %llu, want %llu",
			     (unsigned long long)v, (unsigned long long)val_want);
		cr_assert_eq(a, after_want, "records after the mark %llu, want %llu",
			     (unsigned long long)a, (unsigned long long)after_want);
	}
	shmq_producer_close(p);
}

Test(marks, rides_on_the_next_publish_and_counts_what_follows)
{
	struct shmq *q = mkq("q");
	struct shmq_producer *p = prod(q, 0);
	uint64_t v;

	cr_assert_eq(shmq_producer_last_mark(p, &v, NULL), -ENOENT);
	cr_assert_eq(shmq_producer_mark(p, 7), 0);
	send_len(p, 10);
	shmq_producer_close(p);
	/* 7 rode on the send; the close's END (its own session) follows. */
	expect_mark(q, 0, 7, 1);
	/* The END a new open writes for a dead session is not counted. */
	p = prod(q, 0);
	send_len(p, 3);
	send_len(p, 0);
	shmq_producer_end(p, SHMQ_PRODUCER_DIED);
	/*
	 * The first close's END, expect_mark()'s session's END, 2 messages,
	 * the END of shmq_producer_end(DIED) (its own session's).
	 */
	expect_mark(q, 0, 7, 5);
	/* The last of two marks wins; a mark on a batch publish. */
	p = prod(q, 0);
	cr_assert_eq(shmq_producer_mark(p, 8), 0);
	send_len(p, 1);
	shmq_reserve(p, 5, &(void *){ 0 }, SHMQ_NOWAIT);
	shmq_commit(p, SHMQ_COMMIT_DEFER);
	send_len(p, 2);			/* no mark: publishes both */
	cr_assert_eq(shmq_producer_mark(p, 9), 0);
	cr_assert_eq(shmq_producer_end(p, 42), -EINVAL);
	shmq_producer_close(p);		/* 9 rides on the END */
	expect_mark(q, 0, 9, 0);
	shmq_close(q);
}

/*
 * Child: mark 1 on A, then mark 2 on B (LEN_B bytes), SIGKILLed at the
 * kill point KP (SHMQ_KILL_AT) inside B's publish, or not at all.
 */
static void child_marks(const char *path, const char *kp, size_t len_b)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq *q;
		struct shmq_producer *p;

		if (kp)
			setenv("SHMQ_KILL_AT", kp, 1);
		if (shmq_open(path, 0, NULL, &q) || shmq_producer_open(q, NULL, &p))
			_exit(10);
		shmq_producer_mark(p, 1);
		send_len(p, 16);
		shmq_producer_mark(p, 2);
		send_len(p, len_b);
		_exit(kp ? 11 : 0);	/* not killed: the test fails */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	if (kp)
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
			  "child not killed at %s (status %#x)", kp, st);
}

/* Killed between the mark's value and its position: the other entry. */
Test(marks, killed_between_value_and_position)
{
	struct shmq *q = mkq("q");

	child_marks(h_path("q"), "mark:value:2", 48);
	expect_mark(q, 0, 1, 0);
	shmq_close(q);
}

/*
 * Killed after the position, before W1: the entry lies past the end and
 * is ignored, and forgotten: B's record was 80 bytes; the next open's
 * END (40) and an 8-byte message (40) end exactly where B's mark said,
 * and a stale entry would then read as mark 2.
 */
Test(marks, killed_before_the_publish)
{
	struct shmq *q = mkq("q");
	struct shmq_producer *p;

	child_marks(h_path("q"), "mark:pos:2", 48);
	expect_mark(q, 0, 1, 0);	/* its open wrote B's session's END */
	p = prod(q, 0);
	send_len(p, 8);
	shmq_producer_close(p);
	/* after mark 1: [END died], END closed, 8-byte message, END closed */
	expect_mark(q, 0, 1, 3);
	shmq_close(q);
}

/* The file offset of the Nth record (0-based) of the ring. */
static off_t record_off(const char *path, unsigned n)
{
	struct shmq_hdr h;
	struct shmq_rec r;
	uint64_t pos;

	cr_assert_eq(h_peek_file(path, 0, &h, sizeof(h)), 0);
	pos = h.initial_pos;
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(h_peek_file(path, (off_t)(h.data_off + (pos & (h.capacity - 1))),
					 &r, sizeof(r)), 0);
		pos += (sizeof(r) + r.len + 7) & ~7ull;
	}
	return (off_t)(h.data_off + (pos & (h.capacity - 1)));
}

/* A power loss that kept the header and not record N: recovery cuts there. */
static void scribble(const char *path, unsigned n)
{
	uint32_t bad = 0xdeadbeef;

	cr_assert_eq(h_poke(path, record_off(path, n) + offsetof(struct shmq_rec, crc),
			    &bad, sizeof(bad)), 0);
}

/* Records: 0 A (mark 1), 1 B1, 2 B2 (mark 2 rides on B1+B2), 3 C. */
static void batch_file(const char *name)
{
	struct shmq *q = mkq(name);
	struct shmq_producer *p = prod(q, 0);
	void *buf;

	shmq_producer_mark(p, 1);
	send_len(p, 16);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(shmq_reserve(p, 24, &buf, SHMQ_NOWAIT), 0);
		memset(buf, 'b', 24);
		shmq_commit(p, SHMQ_COMMIT_DEFER);
	}
	shmq_producer_mark(p, 2);
	cr_assert_eq(shmq_publish(p), 0);
	send_len(p, 8);
	/* The caller exits holding the role: no close, no END. */
}

Test(marks, a_cut_takes_the_marks_it_passes)
{
	struct shmq *q;
	pid_t pid;
	int st;
	const struct { unsigned cut; uint64_t val, after; } cases[] = {
		{ 3, 2, 0 },	/* C cut: mark 2 stands */
		{ 2, 1, 1 },	/* B2 cut: B1 survived after mark 1 */
		{ 1, 1, 0 },	/* B1 cut */
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[16];

		snprintf(name, sizeof(name), "cut%u", i);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			batch_file(name);
			_exit(0);	/* dies holding the role */
		}
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		scribble(h_path(name), cases[i].cut);
		cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
		expect_mark(q, 0, cases[i].val, cases[i].after);
		shmq_close(q);
	}
	/* Cut below both marks: none survives. */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		batch_file("cutall");
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	scribble(h_path("cutall"), 0);
	cr_assert_eq(shmq_open(h_path("cutall"), 0, NULL, &q), 0);
	expect_mark(q, -ENOENT, 0, 0);
	shmq_close(q);
}

/* What the bridge reads: incarnations and the end it passed. */
Test(marks, ends_and_incarnations_for_the_bridge)
{
	struct shmq *q = mkq("q");
	struct shmq_consumer_opts co = { .name = "n" };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq_info in;
	struct shmq_msg m;
	uint32_t inc, inc1;

	cr_assert_eq(shmq_info(q, &in, sizeof(in)), 0);
	cr_assert_eq(in.size, 88);
	cr_assert_neq(in.created_ns, 0);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	cr_assert_eq(shmq_consumer_last_end(c, &inc), -ENOENT);
	p = prod(q, 0);
	send_len(p, 4);
	shmq_producer_end(p, SHMQ_PRODUCER_DIED);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	inc1 = m.inc;
	cr_assert_neq(inc1, 0);
	cr_assert_eq(shmq_release(c), 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), SHMQ_EDIED);
	cr_assert_eq(shmq_consumer_last_end(c, &inc), 0);
	cr_assert_eq(inc, inc1);
	/* Closed without another call: the position passed the END. */
	shmq_consumer_close(c);
	p = prod(q, 0);
	send_len(p, 4);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	cr_assert_eq(m.inc, inc1 + 1);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

/* A named consumer killed right after it got an end gets it again. */
Test(marks, a_named_consumer_killed_after_an_end_gets_it_again)
{
	struct shmq *q = mkq("q");
	struct shmq_consumer_opts co = { .name = "n" };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq_msg m;
	pid_t pid;
	int st;

	p = prod(q, 0);
	send_len(p, 4);
	shmq_producer_close(p);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq *cq;

		if (shmq_open(h_path("q"), 0, NULL, &cq) ||
		    shmq_consumer_open(cq, &co, &c) ||
		    shmq_peek(c, &m, SHMQ_NOWAIT) || shmq_release(c))
			_exit(10);
		if (shmq_peek(c, &m, SHMQ_NOWAIT) != SHMQ_EOF)
			_exit(11);
		kill(getpid(), SIGKILL);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st), "child status %#x", st);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), SHMQ_EOF);
	shmq_consumer_close(c);
	shmq_close(q);
}
