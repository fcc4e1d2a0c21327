/* SPDX-License-Identifier: MIT */
/*
 * Adversarial review of the fast paths (issue 13: lib/producer.c
 * append_fast, send_fast, publish_now, seal_hw, the cached durable claim;
 * lib/consumer.c recv_fast; the adaptive waits). Each test states the
 * guarantee it guards. Cross-process parts use fork() with alarm() as the
 * watchdog; every recv that must not block is bounded.
 *
 * The differential test forges record headers (with valid checksums: the
 * salt is in the file) at the position where shmq_recv's fast path looks,
 * and asks shmq_recv (fast path, then slow) and shmq_peek (slow path
 * only) of two consumers at the same position: they must agree on the
 * status and on every field of what they hand out.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"
#include "internal.h"	/* struct shmq_hdr, struct shmq_rec, shmqi_rec_crc */

#define WAIT_NS	(500 * 1000000LL)

TestSuite(fastpath_adv, .init = h_setup, .fini = h_teardown, .timeout = 120);

static struct shmq *mkopen(const char *name, uint64_t cap, uint32_t max,
			   uint32_t checksum)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = max,
				   .checksum = checksum };
	struct shmq *q;

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0, "%s",
		     shmq_errdetail());
	return q;
}

/*
 * shmq_msg.inc is the sending producer's incarnation on every path
 * (include/shmq.h; the NATS bridge names a message by (inc, seq)). The
 * fast path of shmq_recv must fill it as the slow path and shmq_peek do.
 */
Test(fastpath_adv, recv_fast_path_reports_the_incarnation)
{
	struct shmq *q = mkopen("inc.q", 4096, 64, SHMQ_CHECKSUM_AUTO);
	struct shmq_consumer *c, *c2;
	struct shmq_producer *p;
	struct shmq_msg m, m2;
	char buf[64];

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c2), 0);
	/* A second session: its incarnation is 2, never 0. */
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, WAIT_NS), SHMQ_EOF);
	cr_assert_eq(shmq_recv(c2, buf, sizeof(buf), NULL, WAIT_NS), SHMQ_EOF);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(shmq_send(p, "abcdefgh", 8, SHMQ_NOWAIT), 0);
	for (int i = 0; i < 10; i++) {
		memset(&m, 0xa5, sizeof(m));
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT), 8);
		cr_assert_eq(shmq_peek(c2, &m2, SHMQ_NOWAIT), 0);
		cr_assert_neq(m2.inc, 0u);
		cr_expect_eq(m.inc, m2.inc, "message %d: shmq_recv says inc %u, shmq_peek %u",
			     i, m.inc, m2.inc);
		cr_assert_eq(m.seq, m2.seq);
		cr_assert_eq(m.reserved[0] | m.reserved[1] | m.reserved[2], 0u);
		cr_assert_eq(shmq_release(c2), 0);
	}
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_consumer_close(c);
	shmq_consumer_close(c2);
	shmq_close(q);
}

/* A small deterministic PRNG (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* The outcome of one read, to compare the two paths. */
struct outcome {
	int ret;
	size_t len;
	uint64_t seq;
	uint32_t flags, inc;
	uint64_t lost;
	char data[1024];
};

static void take_recv(struct shmq_consumer *c, struct outcome *o)
{
	struct shmq_msg m;
	ssize_t n;

	memset(o, 0, sizeof(*o));
	memset(&m, 0, sizeof(m));
	n = shmq_recv(c, o->data, sizeof(o->data), &m, SHMQ_NOWAIT);
	o->ret = n < 0 ? (int)n : 0;
	if (n >= 0) {
		cr_assert_eq((size_t)n, m.len);
		o->len = m.len;
		o->seq = m.seq;
		o->flags = m.flags;
		o->inc = m.inc;
		o->lost = m.lost;
	}
}

static void take_peek(struct shmq_consumer *c, struct outcome *o)
{
	struct shmq_msg m;

	memset(o, 0, sizeof(*o));
	o->ret = shmq_peek(c, &m, SHMQ_NOWAIT);
	if (o->ret == 0) {
		cr_assert_leq(m.len, sizeof(o->data));
		o->len = m.len;
		o->seq = m.seq;
		o->flags = m.flags;
		o->inc = m.inc;
		o->lost = m.lost;
		memcpy(o->data, m.data, m.len);
		cr_assert_eq(shmq_release(c), 0);
	}
}

/*
 * Forge the header of the record at ring offset OFF (a copy in R), with a
 * valid checksum as the queue's mode computes it, unless BADCRC.
 */
static void forge(const char *path, const struct shmq_hdr *h, uint64_t off,
		  struct shmq_rec *r, bool badcrc)
{
	uint32_t base = r->type & SHMQ_REC_TYPE_MASK;
	bool whole = base == SHMQ_REC_END ||
		     (base == SHMQ_REC_DATA && !(h->flags & SHMQ_FLAG_HDR_CRC));
	static char pay[1 << 16];
	size_t n = 0;

	if (whole) {
		n = r->len;
		if (off + SHMQ_REC_HDR + n > h->capacity || n > sizeof(pay))
			n = 0;	/* fails its length checks anyway */
		else
			cr_assert_eq(h_peek_file(path, (off_t)(h->data_off + off +
					SHMQ_REC_HDR), pay, n), 0);
	}
	r->crc = 0;
	r->crc = shmqi_rec_crc(h->salt, r, pay, n);
	if (badcrc)
		r->crc ^= 1u << (rnd() % 32);
	cr_assert_eq(h_poke(path, (off_t)(h->data_off + off), r, sizeof(*r)), 0);
}

/* Change one or two fields of R, as a hostile writer would. */
static void mutate(struct shmq_rec *r, uint64_t room, uint32_t max)
{
	int k = 1 + (int)(rnd() % 2);

	while (k--) {
		switch (rnd() % 12) {
		case 0: r->seq += (rnd() % 5) - 2; break;
		case 1: r->lap += (rnd() % 2) ? 1 : -1; break;
		case 2: r->inc += (rnd() % 3) - 1; break;
		case 3: r->type = (r->type & ~SHMQ_REC_TYPE_MASK) |
				  (uint32_t)(rnd() % 5); break;
		case 4: r->type |= 1u << (16 + rnd() % 16); break;
		case 5: r->len = (uint32_t)(rnd() % (max + 8)); break;
		case 6: r->len = max + (uint32_t)(rnd() % 3); break;
		case 7: r->len = (uint32_t)(room - SHMQ_REC_HDR) +
				 (uint32_t)(rnd() % 3) - 1; break;
		case 8: r->len = 0; break;
		case 9: r->len = (uint32_t)rnd(); break;
		case 10: r->type = (r->type & ~SHMQ_REC_TYPE_MASK) |
				   SHMQ_REC_PAD;
			 r->len = (uint32_t)(room - SHMQ_REC_HDR); break;
		default: r->type = (r->type & ~SHMQ_REC_TYPE_MASK) |
				   SHMQ_REC_END;
			 r->len = (uint32_t)sizeof(struct shmq_end); break;
		}
	}
}

static void differential(uint32_t checksum, int trials)
{
	for (int t = 0; t < trials; t++) {
		struct shmq_consumer *c, *c2;
		struct shmq_producer *p;
		struct outcome a, b;
		struct shmq_hdr h;
		struct shmq_rec r;
		struct shmq *q;
		char name[32], msg[256];
		uint64_t off, room, tpos;
		int fill = (int)(rnd() % 40);
		size_t len;

		snprintf(name, sizeof(name), "d%u-%d.q", checksum, t);
		q = mkopen(name, 4096, 200, checksum);
		cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
		cr_assert_eq(shmq_consumer_open(q, NULL, &c2), 0);
		cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
		/* Move the target around the ring, the ring end included. */
		for (int i = 0; i < fill; i++) {
			len = 1 + rnd() % 200;
			memset(msg, 'a' + i % 26, len);
			cr_assert_eq(shmq_send(p, msg, len, SHMQ_NOWAIT), 0);
			take_recv(c, &a);
			take_peek(c2, &b);
			cr_assert_eq(a.ret, 0);
			cr_assert_eq(b.ret, 0);
		}
		/* c is now on the fast path (it knows the sequence). */
		len = 1 + rnd() % 200;
		memset(msg, 'A' + t % 26, len);
		cr_assert_eq(shmq_send(p, msg, len, SHMQ_NOWAIT), 0);
		/*
		 * Records after it: a short len lands inside them, and a long
		 * one (past the ring's end too) still ends below write_pos.
		 */
		cr_assert_eq(shmq_send(p, "tail....", 8, SHMQ_NOWAIT), 0);
		for (int i = (int)(rnd() % 30); i > 0; i--) {
			int ret = shmq_send(p, msg, 1 + rnd() % 200, SHMQ_NOWAIT);

			if (ret == -EAGAIN)
				break;
			cr_assert_eq(ret, 0);
		}
		cr_assert_eq(h_peek_file(h_path(name), 0, &h, sizeof(h)), 0);
		/* The target: the record at the consumers' position. */
		tpos = c->pos;
		cr_assert_eq(c2->pos, tpos);
		off = tpos & (h.capacity - 1);
		room = h.capacity - off;
		if (room >= SHMQ_REC_HDR)
			cr_assert_eq(h_peek_file(h_path(name),
						 (off_t)(h.data_off + off),
						 &r, sizeof(r)), 0);
		if (room < SHMQ_REC_HDR ||
		    (r.type & SHMQ_REC_TYPE_MASK) == SHMQ_REC_PAD) {
			off = 0;	/* the target was padded to the start */
			room = h.capacity;
			cr_assert_eq(h_peek_file(h_path(name), (off_t)h.data_off,
						 &r, sizeof(r)), 0);
		}
		mutate(&r, room, h.max_message);
		forge(h_path(name), &h, off, &r, rnd() % 8 == 0);
		/* Up to three reads each: they must agree at every step. */
		for (int step = 0; step < 3; step++) {
			take_recv(c, &a);
			take_peek(c2, &b);
			cr_assert_eq(a.ret, b.ret,
				     "trial %d step %d (len %u type %#x seq %llu lap %u inc %u): recv %d, peek %d",
				     t, step, r.len, r.type,
				     (unsigned long long)r.seq, r.lap, r.inc,
				     a.ret, b.ret);
			if (a.ret < 0)
				break;
			cr_assert_eq(a.len, b.len, "trial %d step %d", t, step);
			cr_assert_eq(a.seq, b.seq, "trial %d step %d", t, step);
			cr_assert_eq(a.flags, b.flags, "trial %d step %d", t, step);
			cr_assert_eq(a.inc, b.inc, "trial %d step %d: inc %u vs %u",
				     t, step, a.inc, b.inc);
			cr_assert_eq(a.lost, b.lost, "trial %d step %d", t, step);
			cr_assert_eq(memcmp(a.data, b.data, a.len), 0,
				     "trial %d step %d", t, step);
		}
		(void)shmq_producer_close(p);	/* may find no room: fine */
		shmq_consumer_close(c);
		shmq_consumer_close(c2);
		shmq_close(q);
	}
}

Test(fastpath_adv, forged_headers_recv_agrees_with_peek_header_crc)
{
	rng_state = 0x1234567ull;
	differential(SHMQ_CHECKSUM_HEADER, 300);
}

Test(fastpath_adv, forged_headers_recv_agrees_with_peek_full_crc)
{
	rng_state = 0x7654321ull;
	differential(SHMQ_CHECKSUM_FULL, 300);
}

/*
 * A record whose forged length runs past the ring's end, while write_pos
 * lies far enough ahead that "runs past write_pos" does not catch it:
 * refused (the slow path's "bad length"), never read past the ring.
 */
Test(fastpath_adv, record_running_past_the_ring_end_is_refused)
{
	const uint32_t modes[2] = { SHMQ_CHECKSUM_HEADER, SHMQ_CHECKSUM_FULL };

	for (int k = 0; k < 2; k++) {
		char name[16], big[1024];
		struct shmq *q;
		struct shmq_consumer *c, *c2;
		struct shmq_producer *p;
		struct outcome a, b;
		struct shmq_hdr h;
		struct shmq_rec r;
		uint64_t off;

		snprintf(name, sizeof(name), "end%d.q", k);
		q = mkopen(name, 4096, 1024, modes[k]);
		cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
		cr_assert_eq(shmq_consumer_open(q, NULL, &c2), 0);
		cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
		memset(big, 'b', sizeof(big));
		/* 4 x 1008 bytes: the consumers end 64 bytes before the end. */
		for (int i = 0; i < 4; i++) {
			cr_assert_eq(shmq_send(p, big, 976, SHMQ_NOWAIT), 0);
			take_recv(c, &a);
			take_peek(c2, &b);
			cr_assert_eq(a.ret, 0);
			cr_assert_eq(b.ret, 0);
		}
		cr_assert_eq(c->pos & 4095, 4032u);
		cr_assert_eq(shmq_send(p, big, 24, SHMQ_NOWAIT), 0);
		for (int i = 0; i < 6; i++)
			cr_assert_eq(shmq_send(p, big, 400, SHMQ_NOWAIT), 0);
		cr_assert_eq(h_peek_file(h_path(name), 0, &h, sizeof(h)), 0);
		off = 4032;
		cr_assert_eq(h_peek_file(h_path(name), (off_t)(h.data_off + off),
					 &r, sizeof(r)), 0);
		cr_assert_eq(r.len, 24u);
		r.len = 100;	/* 32 + 100 > 64 bytes of room; below max */
		forge(h_path(name), &h, off, &r, false);
		take_recv(c, &a);
		take_peek(c2, &b);
		cr_expect_eq(b.ret, -EBADMSG);
		cr_expect_eq(a.ret, b.ret, "checksum mode %u: recv %d, peek %d",
			     modes[k], a.ret, b.ret);
		(void)shmq_producer_close(p);
		shmq_consumer_close(c);
		shmq_consumer_close(c2);
		shmq_close(q);
	}
}

/*
 * The fast path writes below limit + capacity only: a burst into a ring
 * whose consumer reads nothing stops with -EAGAIN, and the consumer then
 * gets every message sent, in order, none overwritten.
 */
Test(fastpath_adv, fast_sends_never_overwrite_unread_records)
{
	struct shmq *q = mkopen("full.q", 4096, 256, SHMQ_CHECKSUM_AUTO);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t buf[32], src[32] = { 0 }, i, n = 0;
	int ret;

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	/* The consumer reads half of what is there each time: it lags. */
	for (int lap = 0, next = 0; lap < 12; lap++) {
		uint64_t first = n;

		while ((src[0] = n,
			ret = shmq_send(p, src, 8 + (n % 5) * 40, SHMQ_NOWAIT)) == 0)
			n++;
		cr_assert_eq(ret, -EAGAIN);
		cr_assert_lt(n - first, 4096 / 40);
		for (i = next; i < (lap == 11 ? n : next + (n - next) / 2); i++) {
			cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL,
					       SHMQ_NOWAIT),
				     (ssize_t)(8 + (i % 5) * 40));
			cr_assert_eq(buf[0], i, "lap %d: message %llu, expected %llu",
				     lap, (unsigned long long)buf[0],
				     (unsigned long long)i);
		}
		next = (int)i;
	}
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * A handle inherited across fork() is the parent's: in the child, send,
 * send_batch, commit, publish and recv return -EBADFD and write nothing.
 */
Test(fastpath_adv, inherited_handles_write_nothing)
{
	struct shmq *q = mkopen("fork.q", 4096, 64, SHMQ_CHECKSUM_AUTO);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	char buf[64];
	pid_t pid;
	int st;

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_send(p, "warm....", 8, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 8);
	cr_assert_eq(shmq_send(p, "next....", 8, SHMQ_NOWAIT), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		uint64_t w = load_acquire(&q->hdr->write_pos);
		uint64_t pos = load_relaxed(&c->slot->position);
		struct iovec iov = { .iov_base = "x", .iov_len = 1 };
		int bad = 0;

		alarm(10);
		bad |= shmq_send(p, "child...", 8, SHMQ_NOWAIT) != -EBADFD;
		bad |= (shmq_send_batch(p, &iov, 1, SHMQ_NOWAIT) != -EBADFD) << 1;
		bad |= (shmq_publish(p) != -EBADFD) << 2;
		bad |= (shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT) !=
			-EBADFD) << 3;
		bad |= (load_acquire(&q->hdr->write_pos) != w) << 4;
		bad |= (load_relaxed(&c->slot->position) != pos) << 5;
		_exit(bad);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died");
	cr_assert_eq(WEXITSTATUS(st), 0, "child: failures %#x", WEXITSTATUS(st));
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 8);
	cr_assert_eq(memcmp(buf, "next....", 8), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * A mark rides on the caller's fast-path publishes (shmq_send,
 * shmq_send_batch): after a kill, shmq_producer_last_mark finds the last
 * one, with no record after it.
 */
Test(fastpath_adv, marks_ride_on_fast_sends_across_a_kill)
{
	struct shmq *q = mkopen("mark.q", 1 << 16, 256, SHMQ_CHECKSUM_AUTO);
	struct shmq_producer *p;
	uint64_t v = 0, after = 99;
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct iovec iov[3] = {
			{ "a", 1 }, { "bb", 2 }, { "ccc", 3 } };

		alarm(10);
		if (shmq_producer_open(q, NULL, &p) != 0)
			_exit(1);
		for (int i = 0; i < 50; i++) {
			shmq_producer_mark(p, 1000 + (uint64_t)i);
			if (shmq_send(p, "m.......", 8, SHMQ_NOWAIT) != 0)
				_exit(2);
		}
		shmq_producer_mark(p, 7777);
		if (shmq_send_batch(p, iov, 3, SHMQ_NOWAIT) != 3)
			_exit(3);
		shmq_producer_mark(p, 8888);
		if (shmq_send(p, "last....", 8, SHMQ_NOWAIT) != 0)
			_exit(5);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child: %#x", st);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_producer_last_mark(p, &v, &after), 0, "%s",
		     shmq_errdetail());
	cr_expect_eq(v, 8888u);
	cr_expect_eq(after, 0u);
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_close(q);
}

/*
 * Sync mode every: a send returns once its message is durable. The fast
 * path (which syncs nothing) must not be taken: after each send the
 * durable watermark is at write_pos.
 */
Test(fastpath_adv, sync_every_is_never_fast)
{
	struct shmq *q = mkopen("sync.q", 4096, 64, SHMQ_CHECKSUM_AUTO);
	struct shmq_producer_opts po = { .sync_mode = SHMQ_SYNC_EVERY };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	char buf[64];

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	for (int i = 0; i < 300; i++) {	/* several laps */
		cr_assert_eq(shmq_send(p, "durable.", 8, SHMQ_NOWAIT), 0);
		cr_assert_eq(load_acquire(&q->hdr->durable_pos),
			     load_acquire(&q->hdr->write_pos), "send %d", i);
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 8);
	}
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * A named consumer that received on the fast path and was killed resumes
 * exactly after the last message it received (its position is stored
 * with each message).
 */
Test(fastpath_adv, named_consumer_resumes_exactly_after_a_kill)
{
	struct shmq *q = mkopen("named.q", 1 << 16, 64, SHMQ_CHECKSUM_AUTO);
	struct shmq_consumer_opts co = { .name = "n1" };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq_msg m;
	char buf[64];
	pid_t pid;
	int st;

	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	shmq_consumer_close(c);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	for (uint64_t i = 0; i < 1000; i++)
		cr_assert_eq(shmq_send(p, &i, sizeof(i), SHMQ_NOWAIT), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		alarm(10);
		if (shmq_consumer_open(q, &co, &c) != 0)
			_exit(1);
		for (int i = 0; i < 617; i++)
			if (shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT) != 8)
				_exit(2);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st), "child: %#x", st);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), &m, WAIT_NS), 8);
	cr_assert_eq(*(uint64_t *)buf, 617u);
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * An evicted consumer gets SHMQ_EVICTED, never the message at its
 * position, on the fast path too (E1 after the copy).
 */
Test(fastpath_adv, evicted_consumer_gets_no_message_from_the_fast_path)
{
	struct shmq *q = mkopen("evict.q", 4096, 64, SHMQ_CHECKSUM_AUTO);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	char buf[64];

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_send(p, "one.....", 8, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 8);
	cr_assert_eq(shmq_send(p, "two.....", 8, SHMQ_NOWAIT), 0);
	store_fenced(&c->slot->state, SHMQ_SLOT_EVICTED);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT),
		     SHMQ_EVICTED);
	cr_assert_eq(shmq_producer_close(p), 0);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * FIFO mode: once every reader has gone, fast-path sends fail with
 * -EPIPE (a clean close bumps slot_gen: at once; a killed reader within
 * the probe interval), and it sticks.
 */
Test(fastpath_adv, fifo_epipe_on_the_fast_path)
{
	struct shmq *q = mkopen("fifo.q", 1 << 20, 64, SHMQ_CHECKSUM_AUTO);
	struct shmq_producer_opts po = { .flags = SHMQ_PRODUCER_FIFO };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t t0;
	pid_t pid;
	int st, ret = 0, n = 0;

	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	/* A clean close. */
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_send(p, "x", 1, SHMQ_NOWAIT), 0);
	shmq_consumer_close(c);
	cr_assert_eq(shmq_send(p, "x", 1, SHMQ_NOWAIT), -EPIPE);
	cr_assert_eq(shmq_send(p, "x", 1, SHMQ_NOWAIT), -EPIPE);
	cr_assert_eq(shmq_producer_close(p), 0);
	/* A killed reader. */
	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		alarm(10);
		if (shmq_consumer_open(q, NULL, &c) != 0)
			_exit(1);
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	t0 = h_now_ns();
	while (h_now_ns() - t0 < 2000000000ull) {
		ret = shmq_send(p, "y", 1, SHMQ_NOWAIT);
		if (ret == -EPIPE)
			break;
		cr_assert(ret == 0 || ret == -EAGAIN, "send: %d", ret);
		n++;
	}
	cr_assert_eq(ret, -EPIPE, "no EPIPE after %d sends", n);
	cr_assert_eq(shmq_send(p, "y", 1, SHMQ_NOWAIT), -EPIPE);
	(void)shmq_producer_close(p);
	shmq_close(q);
}

/*
 * A second process scribbles random bytes over the ring (full checksums)
 * while messages flow through the fast paths: the consumer may stop with
 * -EBADMSG, but it never crashes or hangs, and every message it hands out
 * is exactly one the producer sent, in order. The scribbler and the
 * producer take turns (a process-shared mutex): a byte written between
 * the producer's copy and its seal would be sealed with it, a valid
 * checksum over a forged payload, which no checksum can tell (a writer
 * of the file can forge checksums anyway: docs/decisions.md). The
 * consumer reads at any time, so its copies race the scribbles.
 */
Test(fastpath_adv, scribbler_never_gets_a_torn_message_delivered)
{
	pthread_mutex_t *mu = mmap(NULL, sizeof(*mu), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_mutexattr_t ma;

	cr_assert_neq(mu, MAP_FAILED);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	for (int run = 0; run < 12; run++) {
		struct shmq *q;
		struct shmq_consumer *c;
		struct shmq_producer *p;
		struct shmq_hdr h;
		char name[16], buf[512];
		pid_t prod, scrib;
		uint64_t seq = 0;
		int st, bad = 0;

		pthread_mutex_init(mu, &ma);
		snprintf(name, sizeof(name), "s%d.q", run);
		q = mkopen(name, 1 << 14, 500, SHMQ_CHECKSUM_FULL);
		cr_assert_eq(h_peek_file(h_path(name), 0, &h, sizeof(h)), 0);
		cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
		fflush(NULL);
		prod = fork();
		cr_assert_geq(prod, 0);
		if (prod == 0) {
			alarm(30);
			if (shmq_producer_open(q, NULL, &p) != 0)
				_exit(1);
			for (uint64_t i = 0; i < 200000; i++) {
				size_t len = h_msg_len(run, i, 500);
				int ret;

				h_msg_fill(buf, len, run, i);
				pthread_mutex_lock(mu);
				ret = shmq_send(p, buf, len, SHMQ_NOWAIT);
				pthread_mutex_unlock(mu);
				if (ret == -EAGAIN) {
					i--;
					usleep(50);
					continue;
				}
				if (ret != 0)
					_exit(0);	/* the reader stopped */
			}
			_exit(0);
		}
		scrib = fork();
		cr_assert_geq(scrib, 0);
		if (scrib == 0) {
			alarm(30);
			rng_state += (uint64_t)run * 7919;
			for (;;) {
				/* Where the producer writes and the consumer reads. */
				uint64_t off = (load_relaxed(&q->hdr->write_pos) +
						rnd() % 1024 - 512) & (h.capacity - 1);
				uint8_t b = (uint8_t)rnd();
				struct timespec ts = { 0, 200000 };

				pthread_mutex_lock(mu);
				h_poke(h_path(name), (off_t)(h.data_off + off), &b, 1);
				pthread_mutex_unlock(mu);
				nanosleep(&ts, NULL);
			}
		}
		for (;;) {
			ssize_t n = shmq_recv(c, buf, sizeof(buf), NULL, 2000000000ll);
			const char *why;

			if (n < 0) {
				cr_assert(n == -EBADMSG || n == SHMQ_EOF ||
					  n == SHMQ_EDIED || n == -ETIMEDOUT,
					  "run %d: recv %zd", run, n);
				break;
			}
			why = h_msg_check(buf, (size_t)n, run, seq, 500);
			if (why)
				bad++;
			cr_expect_null(why, "run %d message %llu: %s", run,
				       (unsigned long long)seq, why);
			seq++;
		}
		/* Either may hold the mutex: both go, it is made again. */
		kill(prod, SIGKILL);
		kill(scrib, SIGKILL);
		cr_assert_eq(waitpid(prod, &st, 0), prod);
		cr_assert_eq(waitpid(scrib, &st, 0), scrib);
		shmq_consumer_close(c);
		cr_assert_eq(bad, 0);
		shmq_close(q);
	}
}

/*
 * No lost wake-up: a producer that sleeps between messages (so that the
 * consumer sleeps too, on the futex or on its descriptor) and one that
 * does not; every message arrives, in order. Messages noticed after
 * more than 90 ms (a wake-up caught only by a slice) are reported.
 */
static void wake_stress(bool pollable)
{
	struct shmq *q = mkopen(pollable ? "wp.q" : "wf.q", 1 << 16, 64,
				SHMQ_CHECKSUM_AUTO);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	const int N = 4000;
	int late = 0, st;
	pid_t pid;

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		alarm(100);
		if (shmq_producer_open(q, NULL, &p) != 0)
			_exit(1);
		for (int i = 0; i < N; i++) {
			uint64_t t[2] = { (uint64_t)i, h_now_ns() };
			struct timespec ts = { 0, (long)(rnd() % 400) * 1000 };

			if (shmq_send(p, t, sizeof(t), SHMQ_FOREVER) != 0)
				_exit(2);
			if (i % 3)
				nanosleep(&ts, NULL);
		}
		_exit(shmq_producer_close(p) == 0 ? 0 : 3);
	}
	for (int i = 0; i < N; i++) {
		uint64_t t[2];
		ssize_t n;

		if (pollable) {
			int fd = shmq_consumer_fd(c);

			cr_assert_geq(fd, 0);
			for (;;) {
				struct pollfd pfd = { .fd = fd, .events = POLLIN };

				n = shmq_recv(c, t, sizeof(t), NULL, SHMQ_NOWAIT);
				if (n != -EAGAIN)
					break;
				cr_assert_eq(poll(&pfd, 1, 10000), 1,
					     "message %d: poll timed out", i);
			}
		} else {
			n = shmq_recv(c, t, sizeof(t), NULL, 10000000000ll);
		}
		cr_assert_eq(n, (ssize_t)sizeof(t), "message %d: %zd", i, n);
		cr_assert_eq(t[0], (uint64_t)i);
		if (h_now_ns() - t[1] > 90000000ull)
			late++;
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer: %#x", st);
	/*
	 * Reported, not asserted: a shared CI machine can deschedule the
	 * consumer for longer than that (no timed assertions in tests);
	 * test_pollfd's 100,000-round stress is the lost-wake-up check.
	 */
	if (late > 3)
		cr_log_warn("%d of %d messages noticed after more than 90 ms",
			    late, N);
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(fastpath_adv, no_lost_wakeups_futex)
{
	wake_stress(false);
}

Test(fastpath_adv, no_lost_wakeups_pollable)
{
	wake_stress(true);
}
