/* SPDX-License-Identifier: MIT */
/*
 * Adversarial review of producer marks and session ends (issue 15, the
 * NATS bridge's exactly-once across crashes): commits d3309ff, b8624db.
 *
 * The contract under attack (include/shmq.h): a writer that marks every
 * publish with the number of its last record, then reads back
 * shmq_producer_last_mark() after a crash, gets VALUE and AFTER such that
 * VALUE + AFTER is the number of the last record the queue holds. The
 * importer skips every stream message up to that number: a mark that
 * claims a record the queue does not hold loses that message for ever;
 * a mark lost while its records survived duplicates them.
 *
 * The tests about marks and the hostile header failed on b8624db and
 * pass since the fix in lib/producer.c; the named-consumer tests held up,
 * Producers die by _exit() or SIGKILL in fork()ed children
 * (the producer role is an OFD lock: a child's exit frees it as a death
 * does); every child has an alarm() watchdog and every wait is bounded.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "format.h"
#include "harness.h"

#define WAIT_NS		(500 * 1000000LL)

TestSuite(marks_adv, .init = h_setup, .fini = h_teardown, .timeout = 60);

static void mkq_at(const char *name, uint64_t cap)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = 4096 };

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0);
}

static struct shmq *openq(const char *name)
{
	struct shmq *q;

	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	return q;
}

static struct shmq_producer *prod(struct shmq *q)
{
	struct shmq_producer_opts o = { .flags = SHMQ_PRODUCER_ACCEPT_LOSS };
	struct shmq_producer *p;
	int ret = shmq_producer_open(q, &o, &p);

	cr_assert_eq(ret, 0, "producer open: %s (%s)", shmq_strerror(ret),
		     shmq_errdetail());
	return p;
}

static struct shmq_consumer *named(struct shmq *q, const char *name)
{
	struct shmq_consumer_opts o = { .name = name };
	struct shmq_consumer *c;
	int ret = shmq_consumer_open(q, &o, &c);

	cr_assert_eq(ret, 0, "consumer open: %s (%s)", shmq_strerror(ret),
		     shmq_errdetail());
	return c;
}

static int send_len(struct shmq_producer *p, size_t len, int64_t timeout)
{
	static char buf[4096];

	memset(buf, 'a', len);
	return shmq_send(p, buf, len, timeout);
}

/* What a new producer's open finds: the return, and VALUE, AFTER. */
static int last_mark(struct shmq *q, uint64_t *v, uint64_t *a)
{
	struct shmq_producer *p = prod(q);
	int ret;

	*v = *a = 12345;
	ret = shmq_producer_last_mark(p, v, a);
	shmq_producer_close(p);
	return ret;
}

static void expect_mark(struct shmq *q, int ret_want, uint64_t val_want,
			uint64_t after_want)
{
	uint64_t v, a;
	int ret = last_mark(q, &v, &a);

	cr_assert_eq(ret, ret_want, "last_mark: %d (%s), want %d; value %llu after %llu",
		     ret, shmq_errdetail(), ret_want, (unsigned long long)v,
		     (unsigned long long)a);
	if (ret == 0) {
		cr_assert_eq(v, val_want, "mark value %llu, want %llu (after %llu)",
			     (unsigned long long)v, (unsigned long long)val_want,
			     (unsigned long long)a);
		cr_assert_eq(a, after_want, "records after the mark %llu, want %llu",
			     (unsigned long long)a, (unsigned long long)after_want);
	}
}

static int wait_child(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

/*
 * Defect 1: the END a producer owes a dead session (no room for it at
 * open) is written before our first record, by a publish of its own, and
 * a pending mark rode on it: the mark then stood before the record it
 * was made for. Here the writer marks 1 on its first message and closes:
 * the queue holds message 1 and the close's END, so value 1, after 1;
 * b8624db said value 1, after 2 (the importer would skip stream message
 * 2, never written).
 */
Test(marks_adv, an_owed_end_does_not_carry_the_mark)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq_msg m;
	pid_t pid;
	int st, ret;

	mkq_at("q", 65536);
	q = openq("q");
	c = named(q, "hold");	/* at 0: the ring fills */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq *cq;
		struct shmq_producer *cp;

		alarm(20);
		if (shmq_open(h_path("q"), 0, NULL, &cq) ||
		    shmq_producer_open(cq, NULL, &cp))
			_exit(10);
		while ((ret = send_len(cp, 1000, SHMQ_NOWAIT)) == 0)
			;
		_exit(ret == -EAGAIN ? 0 : 11);	/* dies: no END */
	}
	st = wait_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %#x", st);
	p = prod(q);		/* no room: its predecessor's END is owed */
	while ((ret = shmq_peek(c, &m, SHMQ_NOWAIT)) == 0)
		cr_assert_eq(shmq_release(c), 0);
	shmq_consumer_close(c);
	cr_assert_eq(shmq_producer_mark(p, 1), 0);
	cr_assert_eq(send_len(p, 10, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_producer_close(p), 0);
	expect_mark(q, 0, 1, 1);
	shmq_close(q);
}

/*
 * Defect 2: a send_batch() (or a reserve) that waits for room publishes
 * what it committed so far, and the pending mark rode on that partial
 * publish. A writer marks 64 (the number of the batch's last record)
 * and sends a batch of 64 that does not fit; killed while it waits, the
 * queue holds the first part only, with no other mark: no mark is the
 * truth. b8624db said value 64, after 0: the importer would skip the
 * messages that never reached the queue.
 */
Test(marks_adv, a_batch_cut_short_by_a_wait_does_not_carry_the_mark)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct shmq_msg m;
	pid_t pid;
	int st, ret = -EAGAIN;

	mkq_at("q", 65536);
	q = openq("q");
	c = named(q, "hold");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		static char buf[2000];
		struct iovec iov[64];
		struct shmq *cq;
		struct shmq_producer *cp;

		alarm(20);
		for (int i = 0; i < 64; i++)
			iov[i] = (struct iovec){ buf, sizeof(buf) };
		if (shmq_open(h_path("q"), 0, NULL, &cq) ||
		    shmq_producer_open(cq, NULL, &cp))
			_exit(10);
		shmq_producer_mark(cp, 64);
		shmq_send_batch(cp, iov, 64, SHMQ_FOREVER);	/* waits */
		_exit(11);
	}
	/* The first part is published once the batch waits for room. */
	for (int i = 0; i < 400 && ret == -EAGAIN; i++) {
		ret = shmq_peek(c, &m, SHMQ_NOWAIT);
		if (ret == -EAGAIN)
			h_sleep_ms(10);
	}
	cr_assert_eq(ret, 0, "nothing published: %d", ret);
	h_sleep_ms(50);
	kill(pid, SIGKILL);
	st = wait_child(pid);
	cr_assert(WIFSIGNALED(st), "child %#x", st);
	shmq_consumer_close(c);
	shmq_consumer_remove(q, "hold");
	expect_mark(q, -ENOENT, 0, 0);
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

/*
 * Defect 3: sync mode batch (the importer's default) makes a publish
 * durable every N messages or T ms, so several marks are published per
 * sync; the file keeps the last two, and after them both overwrote the
 * last durable one, a power loss that keeps the header page (written
 * back at any moment) and not the pages of the records after the sync
 * cuts both: no mark at all, while the marked, synced records survived.
 * Records: 0 A (mark 1, synced), 1 B (mark 2), 2 C (mark 3); B is lost.
 * Value 1, after 0 is the truth; b8624db said -ENOENT.
 */
Test(marks_adv, a_durable_mark_survives_later_unsynced_ones)
{
	struct shmq *q;
	pid_t pid;
	int st;

	mkq_at("q", 65536);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq *cq;
		struct shmq_producer *cp;
		struct shmq_producer_opts o = { .sync_mode = SHMQ_SYNC_BATCH,
			.sync_every_n = 1000, .sync_every_ms = 60000 };

		alarm(20);
		if (shmq_open(h_path("q"), 0, NULL, &cq) ||
		    shmq_producer_open(cq, &o, &cp))
			_exit(10);
		shmq_producer_mark(cp, 1);
		send_len(cp, 16, SHMQ_NOWAIT);
		if (shmq_sync(cq))
			_exit(12);
		shmq_producer_mark(cp, 2);
		send_len(cp, 24, SHMQ_NOWAIT);
		shmq_producer_mark(cp, 3);
		send_len(cp, 32, SHMQ_NOWAIT);
		_exit(0);	/* dies holding the role */
	}
	st = wait_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %#x", st);
	scribble(h_path("q"), 1);
	q = openq("q");
	expect_mark(q, 0, 1, 0);
	shmq_close(q);
}

/*
 * Defect 4: a hostile header with both entries at the same valid
 * position (no writer ever leaves that: each mark lies past the other)
 * made last_mark() return entry 0's value as if it were the truth. One
 * of the two values is wrong and nothing tells which: a clear error.
 */
Test(marks_adv, two_marks_at_one_position_are_an_error)
{
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_hdr h;
	uint64_t v, a;
	int ret;

	mkq_at("q", 65536);
	q = openq("q");
	p = prod(q);
	shmq_producer_mark(p, 5);
	cr_assert_eq(send_len(p, 8, SHMQ_NOWAIT), 0);
	shmq_producer_mark(p, 6);
	cr_assert_eq(send_len(p, 8, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_producer_close(p), 0);
	expect_mark(q, 0, 6, 1);	/* 6, then the close's END */
	cr_assert_eq(h_peek_file(h_path("q"), 0, &h, sizeof(h)), 0);
	for (int i = 0; i < 2; i++) {
		uint64_t pos = h.mark_pos[0] > h.mark_pos[1] ?
			       h.mark_pos[0] : h.mark_pos[1];

		cr_assert_eq(h_poke(h_path("q"), offsetof(struct shmq_hdr, mark_pos) +
				    (off_t)(i * sizeof(uint64_t)), &pos, sizeof(pos)), 0);
	}
	ret = last_mark(q, &v, &a);
	cr_assert_eq(ret, -EBADMSG, "last_mark: %d, value %llu after %llu",
		     ret, (unsigned long long)v, (unsigned long long)a);
	shmq_close(q);
}

/* A child producer: N messages of LEN bytes, then END as HOW says. */
static void child_session(const char *name, int n, int how)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq *cq;
		struct shmq_producer *cp;

		alarm(20);
		if (shmq_open(h_path(name), 0, NULL, &cq) ||
		    shmq_producer_open(cq, NULL, &cp))
			_exit(10);
		for (int i = 0; i < n; i++)
			if (send_len(cp, 8, SHMQ_NOWAIT))
				_exit(11);
		if (how < 0)
			_exit(0);	/* a real death: no END record */
		_exit(shmq_producer_end(cp, how) ? 12 : 0);
	}
	st = wait_child(pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %#x", st);
}

/*
 * Named consumer C: the next status, the message's incarnation in *INC.
 * Waits (bounded) so that a dead producer is noticed.
 */
static int next_status(struct shmq_consumer *c, uint32_t *inc)
{
	struct shmq_msg m;
	int ret = shmq_peek(c, &m, 3 * WAIT_NS);

	if (ret == 0) {
		*inc = m.inc;
		cr_assert_eq(shmq_release(c), 0);
	}
	return ret;
}

/*
 * A named consumer that got a session's end and closed at once has dealt
 * with it: its next session starts after it, whether the producer died
 * for real or said so with shmq_producer_end(DIED) (the brief: consumers
 * see exactly the same thing). The second session's message comes next,
 * never the first session's end again.
 */
static void end_then_close(int how)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint32_t inc1 = 0, inc2 = 0, inc;
	int ret;

	mkq_at("q", 65536);
	q = openq("q");
	c = named(q, "n");
	child_session("q", 1, how);
	cr_assert_eq(next_status(c, &inc1), 0);
	ret = next_status(c, &inc);
	cr_assert_eq(ret, SHMQ_EDIED, "first session's end: %d", ret);
	cr_assert_eq(shmq_consumer_last_end(c, &inc), 0);
	cr_assert_eq(inc, inc1);
	shmq_consumer_close(c);
	child_session("q", 1, SHMQ_PRODUCER_CLOSED);
	c = named(q, "n");
	ret = next_status(c, &inc2);
	cr_assert_eq(ret, 0, "after a closed-over end: %d (%s), want the next session's message",
		     ret, shmq_errdetail());
	cr_assert_neq(inc2, inc1);
	cr_assert_eq(next_status(c, &inc), SHMQ_EOF);
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(marks_adv, closed_after_an_end_of_died_starts_after_it)
{
	end_then_close(SHMQ_PRODUCER_DIED);
}

/*
 * Was a DEFECT (fixed by slot.ended_inc, format 3): a real death's end is returned
 * from the state (no END record yet), so the named consumer's position
 * stays before the END record the next producer writes; a consumer that
 * closed after that end reopens with "resumed" set and returns the
 * record's end a second time, before the next session's messages. With
 * shmq_producer_end(DIED) the record exists and it does not. Fails on
 * b8624db; the slot now remembers the end a named consumer passed.
 */
Test(marks_adv, closed_after_a_real_death_starts_after_it)
{
	end_then_close(-1);
}

/*
 * Killed after an end, with the next session already in the ring: the
 * resumed consumer gets that end once, then the next session's messages
 * once each, then its end; nothing twice.
 */
Test(marks_adv, killed_after_an_end_resumes_once)
{
	struct shmq *q;
	struct shmq_consumer *c;
	uint32_t inc1 = 0, inc2 = 0, inc;
	pid_t pid;
	int st, ret;

	mkq_at("q", 65536);
	q = openq("q");
	c = named(q, "n");
	shmq_consumer_close(c);
	child_session("q", 2, SHMQ_PRODUCER_CLOSED);
	child_session("q", 2, SHMQ_PRODUCER_ABORTED);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq *cq;
		struct shmq_consumer *cc;
		struct shmq_consumer_opts o = { .name = "n" };
		struct shmq_msg m;

		alarm(20);
		if (shmq_open(h_path("q"), 0, NULL, &cq) ||
		    shmq_consumer_open(cq, &o, &cc))
			_exit(10);
		for (int i = 0; i < 2; i++)
			if (shmq_peek(cc, &m, SHMQ_NOWAIT) || shmq_release(cc))
				_exit(11);
		if (shmq_peek(cc, &m, SHMQ_NOWAIT) != SHMQ_EOF)
			_exit(12);
		kill(getpid(), SIGKILL);
	}
	st = wait_child(pid);
	cr_assert(WIFSIGNALED(st), "child %#x", st);
	c = named(q, "n");
	ret = next_status(c, &inc);
	cr_assert_eq(ret, SHMQ_EOF, "the end again: %d", ret);
	cr_assert_eq(shmq_consumer_last_end(c, &inc1), 0);
	for (int i = 0; i < 2; i++) {
		ret = next_status(c, &inc2);
		cr_assert_eq(ret, 0, "message %d of session 2: %d", i, ret);
		cr_assert_eq(inc2, inc1 + 1);
	}
	cr_assert_eq(next_status(c, &inc), SHMQ_EABORTED);
	cr_assert_eq(next_status(c, &inc), -ETIMEDOUT);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * Held up: killed at every store of every mark (and just after a
 * publish), in sync mode batch with the second record synced, a writer
 * that marks record K with K finds VALUE + AFTER = the records the queue
 * holds, or no mark when it holds none.
 */
Test(marks_adv, every_kill_point_of_every_mark_adds_up)
{
	static const char *const kps[] = { "mark:invalid", "mark:value",
					   "mark:pos", "publish:after" };

	for (unsigned k = 0; k < 4; k++) {
		for (int n = 1; n <= 5; n++) {
			char name[32], kp[32];
			struct shmq *q;
			uint64_t v, a, held = strcmp(kps[k], "publish:after") ? n - 1 : n;
			pid_t pid;
			int st, ret;

			snprintf(name, sizeof(name), "q%u_%d", k, n);
			snprintf(kp, sizeof(kp), "%s:%d", kps[k], n);
			mkq_at(name, 65536);
			fflush(NULL);
			pid = fork();
			cr_assert_geq(pid, 0);
			if (pid == 0) {
				struct shmq *cq;
				struct shmq_producer *cp;
				struct shmq_producer_opts o = {
					.sync_mode = SHMQ_SYNC_BATCH,
					.sync_every_n = 1000, .sync_every_ms = 60000 };

				alarm(20);
				setenv("SHMQ_KILL_AT", kp, 1);
				if (shmq_open(h_path(name), 0, NULL, &cq) ||
				    shmq_producer_open(cq, &o, &cp))
					_exit(10);
				for (int i = 1; i <= 5; i++) {
					shmq_producer_mark(cp, (uint64_t)i);
					send_len(cp, 8 * (size_t)i, SHMQ_NOWAIT);
					if (i == 2 && shmq_sync(cq))
						_exit(12);
				}
				_exit(11);
			}
			st = wait_child(pid);
			cr_assert(WIFSIGNALED(st), "%s: child %#x", kp, st);
			q = openq(name);
			ret = last_mark(q, &v, &a);
			if (held == 0) {
				cr_assert_eq(ret, -ENOENT, "%s: %d", kp, ret);
			} else {
				cr_assert_eq(ret, 0, "%s: %d (%s)", kp, ret, shmq_errdetail());
				cr_assert_eq(v + a, held, "%s: value %llu after %llu, %llu held",
					     kp, (unsigned long long)v, (unsigned long long)a,
					     (unsigned long long)held);
			}
			shmq_close(q);
		}
	}
}
