/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the consumer kinds of issue 4, in one process with
 * non-blocking handles: groups (claim order, exactly-once, redelivery,
 * a position that outlives the members), observers (copy only, never
 * holding the producer, exact loss counts), the overwrite policy, eviction,
 * shmq_consumer_remove() and what shmq_stat_get() shows of all of them.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define SEED	0x4a11ull
#define MAXMSG	64u

static struct shmq *mkq(uint64_t cap, uint32_t when_full, uint32_t evict_ms)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = MAXMSG,
				   .slots = 16, .when_full = when_full,
				   .evict_after_ms = evict_ms };
	struct shmq *q;
	int err;

	err = shmq_create(h_path("q"), &cfg);
	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	err = shmq_open(h_path("q"), 0, NULL, &q);
	cr_assert_eq(err, 0, "open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return q;
}

static struct shmq_producer *prod(struct shmq *q)
{
	struct shmq_producer *p;
	int err = shmq_producer_open(q, NULL, &p);

	cr_assert_eq(err, 0, "producer_open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return p;
}

static int open_kind(struct shmq *q, uint32_t kind, const char *name,
		     struct shmq_consumer **c)
{
	struct shmq_consumer_opts o = { .kind = kind, .name = name };

	return shmq_consumer_open(q, &o, c);
}

static struct shmq_consumer *cons(struct shmq *q, uint32_t kind,
				  const char *name)
{
	struct shmq_consumer *c;
	int err = open_kind(q, kind, name, &c);

	cr_assert_eq(err, 0, "consumer_open kind %u %s: %s (%s)", kind,
		     name ? name : "", shmq_strerror(err), shmq_errdetail());
	return c;
}

/* The harness's tagged message SEQ: 0..MAXMSG bytes, edges often. */
static size_t msg_len(uint64_t seq)
{
	return h_msg_len(SEED, seq, MAXMSG);
}

/* Send message SEQ; returns 0 or the error. */
static int send_one(struct shmq_producer *p, uint64_t seq, int64_t timeout)
{
	uint8_t b[MAXMSG];

	h_msg_fill(b, msg_len(seq), SEED, seq);
	return shmq_send(p, b, msg_len(seq), timeout);
}

static void send_range(struct shmq_producer *p, uint64_t first, uint64_t n)
{
	for (uint64_t s = first; s < first + n; s++) {
		int err = send_one(p, s, SHMQ_NOWAIT);

		cr_assert_eq(err, 0, "send %llu: %s (%s)",
			     (unsigned long long)s, shmq_strerror(err),
			     shmq_errdetail());
	}
}

/* Send until the ring is full; returns how many were sent. */
static uint64_t send_until_full(struct shmq_producer *p, uint64_t first)
{
	uint64_t s = first;
	int err;

	while ((err = send_one(p, s, SHMQ_NOWAIT)) == 0)
		s++;
	cr_assert_eq(err, -EAGAIN, "send %llu: %s (%s)", (unsigned long long)s,
		     shmq_strerror(err), shmq_errdetail());
	return s - first;
}

/* Receive by copy; checks the payload against its sequence number. */
static int get(struct shmq_consumer *c, struct shmq_msg *m)
{
	uint8_t b[MAXMSG];
	const char *why;
	ssize_t r = shmq_recv(c, b, sizeof(b), m, SHMQ_NOWAIT);

	if (r < 0)
		return (int)r;
	why = h_msg_check(b, (size_t)r, SEED, m->seq, MAXMSG);
	cr_assert_null(why, "seq %llu: %s", (unsigned long long)m->seq, why);
	cr_assert_eq((size_t)r, msg_len(m->seq));
	return 0;
}

static void get_ok(struct shmq_consumer *c, struct shmq_msg *m)
{
	int err = get(c, m);

	cr_assert_eq(err, 0, "recv: %d %s (%s)", err, shmq_strerror(err),
		     shmq_errdetail());
}

static void expect_seq(struct shmq_consumer *c, uint64_t seq)
{
	struct shmq_msg m;

	get_ok(c, &m);
	cr_assert_eq(m.seq, seq, "got seq %llu, want %llu",
		     (unsigned long long)m.seq, (unsigned long long)seq);
	cr_assert_eq(m.flags, 0, "seq %llu: unexpected flags %u",
		     (unsigned long long)seq, m.flags);
	cr_assert_eq(m.lost, 0, "seq %llu: unexpected lost %llu",
		     (unsigned long long)seq, (unsigned long long)m.lost);
}

static void expect_none(struct shmq_consumer *c)
{
	struct shmq_msg m;
	int err = get(c, &m);

	cr_assert_eq(err, -EAGAIN, "expected nothing, got %d (%s) seq %llu",
		     err, shmq_strerror(err),
		     err == 0 ? (unsigned long long)m.seq : 0ull);
}

/* Drain C into SEEN (counts per sequence); returns how many it got. */
static uint64_t drain(struct shmq_consumer *c, uint8_t *seen, uint64_t n,
		      uint64_t *flagged)
{
	struct shmq_msg m;
	uint64_t got = 0;
	int err;

	while ((err = get(c, &m)) == 0) {
		cr_assert_lt(m.seq, n, "seq %llu was never sent",
			     (unsigned long long)m.seq);
		seen[m.seq]++;
		if (m.flags & SHMQ_MSG_REDELIVERED)
			(*flagged)++;
		got++;
	}
	cr_assert_eq(err, -EAGAIN, "recv: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return got;
}

static const struct shmq_consumer_stat *
find_stat(const struct shmq_stat *st, uint32_t kind, const char *name)
{
	for (uint32_t i = 0; i < st->nconsumers; i++)
		if (st->consumers[i].kind == kind &&
		    (!name || !strcmp(st->consumers[i].name, name)))
			return &st->consumers[i];
	return NULL;
}

static uint32_t count_kind(const struct shmq_stat *st, uint32_t kind)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < st->nconsumers; i++)
		n += st->consumers[i].kind == kind;
	return n;
}

TestSuite(groups, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(groups, members_claim_in_sequence_order_and_get_each_message_exactly_once)
{
	struct shmq *q = mkq(1 << 16, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *m[3];
	struct shmq_producer *p;
	enum { N = 600 };
	uint8_t seen[N] = { 0 };
	uint64_t next = 0, got = 0;
	unsigned int rnd = 12345;

	for (int i = 0; i < 3; i++)
		m[i] = cons(q, SHMQ_CONSUMER_GROUP, "workers");
	p = prod(q);
	send_range(p, 0, N);
	/* Members take turns at random, by peek or by copy. */
	while (got < N) {
		int i = (int)((rnd = rnd * 1103515245u + 12345u) >> 16) % 3;
		struct shmq_msg msg;

		if (rnd & 0x100) {
			int err = shmq_peek(m[i], &msg, SHMQ_NOWAIT);

			cr_assert_eq(err, 0, "peek: %s", shmq_strerror(err));
			cr_assert_null(h_msg_check(msg.data, msg.len, SEED,
						   msg.seq, MAXMSG));
			cr_assert_eq(shmq_release(m[i]), 0);
		} else {
			get_ok(m[i], &msg);
		}
		/* One claim word: the group hands messages out in order. */
		cr_assert_eq(msg.seq, next, "claim %llu got seq %llu",
			     (unsigned long long)next,
			     (unsigned long long)msg.seq);
		cr_assert_eq(msg.flags, 0, "seq %llu flagged %u without any death",
			     (unsigned long long)msg.seq, msg.flags);
		seen[msg.seq]++;
		next++;
		got++;
	}
	for (int i = 0; i < 3; i++)
		expect_none(m[i]);
	for (uint64_t s = 0; s < N; s++)
		cr_assert_eq(seen[s], 1, "seq %llu delivered %u times",
			     (unsigned long long)s, seen[s]);
	for (int i = 0; i < 3; i++)
		shmq_consumer_close(m[i]);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(groups, two_groups_and_a_broadcast_consumer_each_see_every_message)
{
	struct shmq *q = mkq(1 << 16, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a[2], *b[2], *bc;
	struct shmq_producer *p;
	enum { N = 500 };
	uint8_t sa[N] = { 0 }, sb[N] = { 0 };
	uint64_t fl = 0, ga = 0, gb = 0;

	for (int i = 0; i < 2; i++) {
		a[i] = cons(q, SHMQ_CONSUMER_GROUP, "alpha");
		b[i] = cons(q, SHMQ_CONSUMER_GROUP, "beta");
	}
	bc = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	p = prod(q);
	send_range(p, 0, N);
	for (uint64_t s = 0; s < N; s++)
		expect_seq(bc, s);
	/* Interleave the members a little: a takes 7, then the other. */
	for (int round = 0; round < 200 && ga + gb < 2 * N; round++) {
		for (int k = 0; k < 7; k++) {
			struct shmq_msg m;

			if (get(a[round & 1], &m) == 0) {
				sa[m.seq]++;
				ga++;
			}
			if (get(b[(round >> 1) & 1], &m) == 0) {
				sb[m.seq]++;
				gb++;
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		ga += drain(a[i], sa, N, &fl);
		gb += drain(b[i], sb, N, &fl);
	}
	cr_assert_eq(fl, 0);
	cr_assert_eq(ga, N);
	cr_assert_eq(gb, N);
	for (uint64_t s = 0; s < N; s++) {
		cr_assert_eq(sa[s], 1, "group alpha: seq %llu seen %u times",
			     (unsigned long long)s, sa[s]);
		cr_assert_eq(sb[s], 1, "group beta: seq %llu seen %u times",
			     (unsigned long long)s, sb[s]);
	}
	for (int i = 0; i < 2; i++) {
		shmq_consumer_close(a[i]);
		shmq_consumer_close(b[i]);
	}
	shmq_consumer_close(bc);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(groups, a_group_continues_where_it_stopped_after_every_member_left)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a, *b;
	struct shmq_producer *p;
	uint64_t n;

	a = cons(q, SHMQ_CONSUMER_GROUP, "keep");
	b = cons(q, SHMQ_CONSUMER_GROUP, "keep");
	p = prod(q);
	send_range(p, 0, 10);
	expect_seq(a, 0);
	expect_seq(b, 1);
	expect_seq(a, 2);
	shmq_consumer_close(a);
	shmq_consumer_close(b);

	/* Nobody attached, and still the group holds its messages. */
	n = send_until_full(p, 10);
	cr_assert_gt(n, 0);

	a = cons(q, SHMQ_CONSUMER_GROUP, "keep");
	for (uint64_t s = 3; s < 10 + n; s++)
		expect_seq(a, s);
	expect_none(a);
	/* Released by the group: room again. */
	send_range(p, 10 + n, 5);
	shmq_consumer_close(a);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(groups, a_member_closed_holding_a_peek_leaves_it_to_another_member_flagged)
{
	struct shmq *q = mkq(1 << 16, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a, *b;
	struct shmq_producer *p;
	struct shmq_msg m;
	int err;

	a = cons(q, SHMQ_CONSUMER_GROUP, "g");
	b = cons(q, SHMQ_CONSUMER_GROUP, "g");
	p = prod(q);
	send_range(p, 0, 10);
	err = shmq_peek(a, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, 0);
	cr_assert_eq(m.seq, 0);
	expect_seq(b, 1);
	shmq_consumer_close(a);		/* seq 0 is claimed, never released */

	/*
	 * B adopts what A left when it finds nothing new to claim, or
	 * sooner: members look for dead claims every few ms however busy.
	 */
	uint64_t next = 2;
	bool adopted = false;

	for (int i = 0; i < 9; i++) {
		get_ok(b, &m);
		if (m.seq == 0) {
			cr_assert(!adopted, "seq 0 twice");
			cr_assert(m.flags & SHMQ_MSG_REDELIVERED, "seq 0 is not flagged");
			adopted = true;
			continue;
		}
		cr_assert_eq(m.seq, next, "seq %llu, want %llu",
			     (unsigned long long)m.seq, (unsigned long long)next);
		next++;
	}
	cr_assert(adopted);
	expect_none(b);

	/* The frontier moved past it: all ten can be overwritten now. */
	shmq_consumer_close(b);
	a = cons(q, SHMQ_CONSUMER_GROUP, "g");
	send_range(p, 10, 1);
	expect_seq(a, 10);
	expect_none(a);
	shmq_consumer_close(a);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(groups, a_member_peeking_by_zero_copy_gets_the_adopted_message_flagged)
{
	struct shmq *q = mkq(1 << 16, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a, *b;
	struct shmq_producer *p;
	struct shmq_msg m;

	a = cons(q, SHMQ_CONSUMER_GROUP, "g");
	b = cons(q, SHMQ_CONSUMER_GROUP, "g");
	p = prod(q);
	send_range(p, 0, 2);
	cr_assert_eq(shmq_peek(a, &m, SHMQ_NOWAIT), 0);
	cr_assert_eq(m.seq, 0);
	shmq_consumer_close(a);
	/* The adopted one may come first (b looks for it when it starts). */
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(shmq_peek(b, &m, SHMQ_NOWAIT), 0);
		if (m.seq == 1) {
			cr_assert_eq(m.flags & SHMQ_MSG_REDELIVERED, 0);
		} else {
			cr_assert_eq(m.seq, 0);
			cr_assert(m.flags & SHMQ_MSG_REDELIVERED);
		}
		cr_assert_null(h_msg_check(m.data, m.len, SEED, m.seq, MAXMSG));
		cr_assert_eq(shmq_release(b), 0);
	}
	expect_none(b);
	shmq_consumer_close(b);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(groups, a_group_member_needs_a_name_and_an_observer_must_not_have_one)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *c;

	cr_assert_eq(open_kind(q, SHMQ_CONSUMER_GROUP, NULL, &c), -EINVAL);
	cr_assert_eq(open_kind(q, SHMQ_CONSUMER_OBSERVER, "x", &c), -EINVAL);
	cr_assert_eq(open_kind(q, SHMQ_CONSUMER_MEMBER, "x", &c), -EINVAL);
	shmq_close(q);
}

TestSuite(observer, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(observer, peek_is_refused_with_einval_and_recv_works)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *o;
	struct shmq_producer *p;
	struct shmq_msg m;

	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	p = prod(q);
	send_range(p, 0, 3);
	cr_assert_eq(shmq_peek(o, &m, SHMQ_NOWAIT), -EINVAL);
	cr_assert_eq(shmq_release(o), -EINVAL, "nothing was peeked");
	expect_seq(o, 0);
	expect_seq(o, 1);
	expect_seq(o, 2);
	expect_none(o);
	shmq_consumer_close(o);
	shmq_producer_close(p);
	shmq_close(q);
}

/*
 * What the header and README promise for a `block` queue: with no holding
 * consumer the data is kept for the next one, so the producer blocks when
 * the ring is full. An observer is no holder: it changes nothing to that,
 * in either direction; reading does not make room.
 */
Test(observer, alone_on_a_block_queue_it_neither_holds_nor_frees_the_ring)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *o, *late;
	struct shmq_producer *p;
	struct shmq_stat *st;
	uint64_t n;

	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	p = prod(q);
	n = send_until_full(p, 0);
	for (uint64_t s = 0; s < n; s++)
		expect_seq(o, s);
	expect_none(o);
	cr_assert_eq(send_one(p, n, SHMQ_NOWAIT), -EAGAIN,
		     "an observer's reads must not release anything");
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->consumers[0].kind, SHMQ_CONSUMER_OBSERVER);
	cr_assert_eq(st->consumers[0].holding, 0, "an observer never holds");
	shmq_stat_free(st);

	/* The data waited for the first real consumer. */
	late = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	for (uint64_t s = 0; s < n; s++)
		expect_seq(late, s);
	send_range(p, n, 3);
	shmq_consumer_close(late);
	shmq_consumer_close(o);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(observer, never_holds_back_the_producer_and_counts_exactly_what_it_lost)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *o, *bc;
	struct shmq_producer *p;
	struct shmq_msg m;
	uint64_t got = 0, lost = 0, expect = 0, total = 3000;

	bc = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	p = prod(q);
	expect_none(o);
	for (uint64_t s = 0; s < total; s++) {
		/* The broadcast consumer keeps up; the observer sleeps. */
		cr_assert_eq(send_one(p, s, SHMQ_NOWAIT), 0,
			     "the observer held the producer at %llu",
			     (unsigned long long)s);
		expect_seq(bc, s);
		if (s == 10) {
			expect_seq(o, 0);
			got++;
			expect = 1;
		}
	}
	while (get(o, &m) == 0) {
		cr_assert_eq(m.seq, expect + m.lost,
			     "seq %llu with lost %llu, expected %llu + lost",
			     (unsigned long long)m.seq,
			     (unsigned long long)m.lost,
			     (unsigned long long)expect);
		lost += m.lost;
		expect = m.seq + 1;
		got++;
	}
	cr_assert_gt(lost, 0, "the observer was never lapped");
	cr_assert_eq(got + lost, total, "received %llu + lost %llu != %llu",
		     (unsigned long long)got, (unsigned long long)lost,
		     (unsigned long long)total);
	shmq_consumer_close(o);
	shmq_consumer_close(bc);
	shmq_producer_close(p);
	shmq_close(q);
}

/* The deterministic slow observer: lost == sent - received, exactly. */
Test(observer, lapped_on_an_overwrite_queue_reports_sent_minus_received_as_lost)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_OVERWRITE, 0);
	struct shmq_consumer *o;
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq_msg m;
	uint64_t got = 0, lost = 0, expect = 5, total = 0, tail_seq;

	p = prod(q);
	send_range(p, 0, 5);
	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	for (uint64_t s = 0; s < 5; s++)
		expect_seq(o, s);
	got = 5;
	for (int lap = 0; lap < 4; lap++) {
		send_range(p, 5 + total, 1000);
		total += 1000;
		cr_assert_eq(shmq_stat_get(q, &st), 0);
		tail_seq = st->tail_seq;
		shmq_stat_free(st);
		/* The first message after a lap says exactly how many. */
		get_ok(o, &m);
		cr_assert_eq(m.seq, tail_seq,
			     "lap %d: resynced to %llu, oldest intact is %llu",
			     lap, (unsigned long long)m.seq,
			     (unsigned long long)tail_seq);
		cr_assert_eq(m.lost, m.seq - expect,
			     "lap %d: lost %llu, expected %llu", lap,
			     (unsigned long long)m.lost,
			     (unsigned long long)(m.seq - expect));
		lost += m.lost;
		got++;
		expect = m.seq + 1;
		/* Read half of what is left, then lap it again. */
		for (int k = 0; k < 20 && get(o, &m) == 0; k++) {
			cr_assert_eq(m.lost, 0);
			cr_assert_eq(m.seq, expect);
			expect++;
			got++;
		}
	}
	while (get(o, &m) == 0) {
		cr_assert_eq(m.seq, expect + m.lost);
		lost += m.lost;
		expect = m.seq + 1;
		got++;
	}
	cr_assert_eq(expect, 5 + total);
	cr_assert_eq(lost, 5 + total - got,
		     "lost %llu, sent %llu, received %llu",
		     (unsigned long long)lost, (unsigned long long)(5 + total),
		     (unsigned long long)got);
	shmq_consumer_close(o);
	shmq_producer_close(p);
	shmq_close(q);
}

/*
 * The observer attaches before anything was sent, so it has not seen a
 * single sequence number when the producer laps it: it must still know
 * that it expected seq 0 and count every message it missed.
 */
Test(observer, attached_to_an_empty_queue_and_lapped_at_once_counts_every_loss)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_OVERWRITE, 0);
	struct shmq_consumer *o;
	struct shmq_producer *p;
	struct shmq_msg m;

	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	p = prod(q);
	send_range(p, 0, 1000);
	get_ok(o, &m);
	cr_assert_gt(m.seq, 0, "the ring holds about 100 messages");
	cr_assert_eq(m.lost, m.seq,
		     "first message seq %llu reports lost=%llu, but seqs 0..%llu were missed",
		     (unsigned long long)m.seq, (unsigned long long)m.lost,
		     (unsigned long long)(m.seq - 1));
	shmq_consumer_close(o);
	shmq_producer_close(p);
	shmq_close(q);
}

TestSuite(overwrite, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(overwrite, with_no_holder_the_producer_never_blocks)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_OVERWRITE, 0);
	struct shmq_consumer *o, *late;
	struct shmq_producer *p;
	struct shmq_stat *st;

	p = prod(q);
	send_range(p, 0, 20000);
	/* An observer is no holder either. */
	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	send_range(p, 20000, 20000);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->when_full, SHMQ_WHEN_FULL_OVERWRITE);
	cr_assert_eq(st->messages, 40000);
	cr_assert_gt(st->tail_seq, 39000, "the oldest intact is %llu",
		     (unsigned long long)st->tail_seq);
	cr_assert_leq(st->write_pos - st->tail_pos, st->capacity);
	uint64_t tail = st->tail_seq;

	shmq_stat_free(st);
	/* A consumer that comes later starts at the oldest intact one. */
	late = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	expect_seq(late, tail);
	shmq_consumer_close(late);
	shmq_consumer_close(o);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(overwrite, with_a_broadcast_holder_the_producer_still_blocks)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_OVERWRITE, 0);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t n;

	c = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	p = prod(q);
	n = send_until_full(p, 0);
	cr_assert_lt(n, 4096 / 24, "sent %llu into 4 KiB",
		     (unsigned long long)n);
	for (uint64_t s = 0; s < n; s++)
		expect_seq(c, s);
	send_range(p, n, 10);
	/* Gone: nobody holds any more, it overwrites again. */
	shmq_consumer_close(c);
	send_range(p, n + 10, 1000);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(overwrite, with_a_group_whose_members_left_the_producer_still_blocks)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_OVERWRITE, 0);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t n;

	c = cons(q, SHMQ_CONSUMER_GROUP, "g");
	shmq_consumer_close(c);
	p = prod(q);
	n = send_until_full(p, 0);
	cr_assert_gt(n, 0);
	cr_assert_eq(shmq_consumer_remove(q, "g"), 0);
	send_range(p, n, 1000);
	shmq_producer_close(p);
	shmq_close(q);
}

TestSuite(evict, .init = h_setup, .fini = h_teardown, .timeout = 20);

/* Fill the ring behind a stalled holder and send one more, with a bound. */
static int send_past_stall(struct shmq_producer *p, uint64_t *next)
{
	uint64_t t0 = h_now_ns();
	int err;

	*next += send_until_full(p, *next);
	err = send_one(p, *next, 3000000000ll);
	if (err == 0)
		(*next)++;
	cr_log_info("send past the stalled holder: %s after %llu ms",
		    shmq_strerror(err),
		    (unsigned long long)((h_now_ns() - t0) / 1000000));
	return err;
}

Test(evict, a_stalled_named_consumer_is_evicted_and_must_be_removed_to_return)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 100);
	struct shmq_consumer *slow, *fast, *again;
	const struct shmq_consumer_stat *cs;
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq_msg m;
	uint64_t next = 0;

	slow = cons(q, SHMQ_CONSUMER_BROADCAST, "slow");
	fast = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	p = prod(q);
	send_range(p, 0, 3);
	expect_seq(slow, 0);
	next = 3;
	next += send_until_full(p, next);
	for (uint64_t s = 0; s < next; s++)
		expect_seq(fast, s);
	/* Only "slow" holds now; after 100 ms of waiting it is evicted. */
	cr_assert_eq(send_past_stall(p, &next), 0);
	expect_seq(fast, next - 1);

	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cs = find_stat(st, SHMQ_CONSUMER_BROADCAST, "slow");
	cr_assert_not_null(cs);
	cr_assert(cs->evicted, "stat does not show the eviction");
	cr_assert(cs->alive);
	cr_assert_eq(cs->holding, 0);
	shmq_stat_free(st);

	cr_assert_eq(get(slow, &m), SHMQ_EVICTED);
	cr_assert_eq(shmq_peek(slow, &m, SHMQ_NOWAIT), SHMQ_EVICTED,
		     "eviction sticks");
	/* While it is attached, its name is taken. */
	cr_assert_eq(shmq_consumer_remove(q, "slow"), -EBUSY);
	shmq_consumer_close(slow);
	cr_assert_eq(open_kind(q, SHMQ_CONSUMER_BROADCAST, "slow", &again),
		     SHMQ_EVICTED);
	cr_assert_eq(open_kind(q, SHMQ_CONSUMER_BROADCAST, "slow", &again),
		     SHMQ_EVICTED, "until it is removed");
	cr_assert_eq(shmq_consumer_remove(q, "slow"), 0);
	again = cons(q, SHMQ_CONSUMER_BROADCAST, "slow");
	shmq_consumer_close(again);
	shmq_consumer_close(fast);
	shmq_producer_close(p);
	shmq_close(q);
}

/*
 * The policy's promise: after T the producer continues. Here the stalled
 * consumer is the only one attached, which is the xproc SIGSTOP scenario.
 */
Test(evict, the_producer_continues_after_evicting_its_only_holder)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 100);
	struct shmq_consumer *slow;
	struct shmq_producer *p;
	struct shmq_msg m;
	uint64_t next = 0;
	int err;

	slow = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	p = prod(q);
	err = send_past_stall(p, &next);
	cr_expect_eq(err, 0, "the producer is still blocked after evicting "
		     "its only holder: %s", shmq_strerror(err));
	cr_assert_eq(get(slow, &m), SHMQ_EVICTED);
	shmq_consumer_close(slow);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(evict, a_stalled_group_is_evicted_and_its_members_are_told)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a, *b, *fast, *c;
	const struct shmq_consumer_stat *cs;
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq_msg m;
	uint64_t next = 0;

	cr_assert_eq(shmq_set_evict_after(q, 100), 0);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->evict_after_ms, 100);
	shmq_stat_free(st);

	a = cons(q, SHMQ_CONSUMER_GROUP, "g");
	b = cons(q, SHMQ_CONSUMER_GROUP, "g");
	fast = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	p = prod(q);
	next = send_until_full(p, 0);
	for (uint64_t s = 0; s < next; s++)
		expect_seq(fast, s);
	cr_assert_eq(send_past_stall(p, &next), 0);

	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cs = find_stat(st, SHMQ_CONSUMER_GROUP, "g");
	cr_assert_not_null(cs);
	cr_assert(cs->evicted, "the group is not shown evicted");
	shmq_stat_free(st);
	cr_assert_eq(get(a, &m), SHMQ_EVICTED);
	cr_assert_eq(get(b, &m), SHMQ_EVICTED);
	cr_assert_eq(open_kind(q, SHMQ_CONSUMER_GROUP, "g", &c), SHMQ_EVICTED);
	cr_assert_eq(shmq_consumer_remove(q, "g"), -EBUSY,
		     "its members are alive");
	shmq_consumer_close(a);
	shmq_consumer_close(b);
	cr_assert_eq(shmq_consumer_remove(q, "g"), 0);
	c = cons(q, SHMQ_CONSUMER_GROUP, "g");
	shmq_consumer_close(c);
	shmq_consumer_close(fast);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(evict, never_happens_with_the_default_policy)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *slow;
	struct shmq_producer *p;
	uint64_t n;

	slow = cons(q, SHMQ_CONSUMER_BROADCAST, NULL);
	p = prod(q);
	n = send_until_full(p, 0);
	cr_assert_eq(send_one(p, n, 400000000ll), -ETIMEDOUT);
	expect_seq(slow, 0);
	shmq_consumer_close(slow);
	shmq_producer_close(p);
	shmq_close(q);
}

TestSuite(remove, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(remove, a_group_with_a_live_member_is_busy_and_removable_once_it_died)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a;
	struct shmq_producer *p;
	int pfd[2], st;
	char ok;
	pid_t pid;

	p = prod(q);
	send_range(p, 0, 5);
	a = cons(q, SHMQ_CONSUMER_GROUP, "g");
	cr_assert_eq(shmq_consumer_remove(q, "g"), -EBUSY);
	shmq_consumer_close(a);

	/* A member in another process that dies holding a peeked message. */
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq_consumer *c;
		struct shmq *cq;
		struct shmq_msg m;

		alarm(10);
		close(pfd[0]);
		if (shmq_open(h_path("q"), 0, NULL, &cq) < 0 ||
		    open_kind(cq, SHMQ_CONSUMER_GROUP, "g", &c) < 0 ||
		    shmq_peek(c, &m, SHMQ_NOWAIT) < 0)
			_exit(1);
		if (write(pfd[1], "k", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &ok, 1), 1, "the child did not attach");
	close(pfd[0]);
	cr_assert_eq(shmq_consumer_remove(q, "g"), -EBUSY, "the member lives");
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert_eq(shmq_consumer_remove(q, "g"), 0);
	cr_assert_eq(shmq_consumer_remove(q, "g"), -ENOENT);
	/* Removed with its dead member and its claim: a new group afresh. */
	a = cons(q, SHMQ_CONSUMER_GROUP, "g");
	for (uint64_t s = 0; s < 5; s++)
		expect_seq(a, s);
	expect_none(a);
	shmq_consumer_close(a);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(remove, a_dead_named_consumer_is_removed_and_stops_holding)
{
	struct shmq *q = mkq(4096, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t n;

	c = cons(q, SHMQ_CONSUMER_BROADCAST, "n");
	p = prod(q);
	n = send_until_full(p, 0);
	cr_assert_eq(shmq_consumer_remove(q, "n"), -EBUSY);
	shmq_consumer_close(c);
	cr_assert_eq(send_one(p, n, SHMQ_NOWAIT), -EAGAIN, "it still holds");
	cr_assert_eq(shmq_consumer_remove(q, "n"), 0);
	cr_assert_eq(shmq_consumer_remove(q, "nope"), -ENOENT);
	shmq_producer_close(p);
	shmq_close(q);
}

TestSuite(gstat, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(gstat, shows_groups_members_observers_and_claims)
{
	struct shmq *q = mkq(1 << 16, SHMQ_WHEN_FULL_BLOCK, 0);
	struct shmq_consumer *a, *b, *o, *bc;
	const struct shmq_consumer_stat *g, *ma, *mb, *os, *bs;
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq_msg m;

	a = cons(q, SHMQ_CONSUMER_GROUP, "crew");
	b = cons(q, SHMQ_CONSUMER_GROUP, "crew");
	o = cons(q, SHMQ_CONSUMER_OBSERVER, NULL);
	bc = cons(q, SHMQ_CONSUMER_BROADCAST, "bee");
	p = prod(q);
	send_range(p, 0, 10);
	cr_assert_eq(shmq_peek(a, &m, SHMQ_NOWAIT), 0);
	expect_seq(b, 1);
	expect_seq(o, 0);

	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->nconsumers, 5, "group + 2 members + observer + bee: %u",
		     st->nconsumers);
	cr_assert_eq(count_kind(st, SHMQ_CONSUMER_GROUP), 1);
	cr_assert_eq(count_kind(st, SHMQ_CONSUMER_MEMBER), 2);
	cr_assert_eq(count_kind(st, SHMQ_CONSUMER_OBSERVER), 1);
	cr_assert_eq(count_kind(st, SHMQ_CONSUMER_BROADCAST), 1);
	g = find_stat(st, SHMQ_CONSUMER_GROUP, "crew");
	cr_assert_not_null(g);
	cr_assert(g->alive, "a group is alive while a member is");
	cr_assert_eq(g->evicted, 0);
	ma = mb = NULL;
	for (uint32_t i = 0; i < st->nconsumers; i++) {
		const struct shmq_consumer_stat *cs = &st->consumers[i];

		if (cs->kind != SHMQ_CONSUMER_MEMBER)
			continue;
		cr_assert_eq(cs->group_slot, g->slot);
		cr_assert(cs->alive);
		cr_assert_eq(cs->pid, (uint32_t)getpid());
		if (cs->claimed)
			ma = cs;
		else
			mb = cs;
	}
	cr_assert_not_null(ma, "no member shows its claim");
	cr_assert_not_null(mb, "both members show a claim");
	os = find_stat(st, SHMQ_CONSUMER_OBSERVER, NULL);
	cr_assert_not_null(os);
	cr_assert_str_empty(os->name);
	cr_assert(os->alive);
	cr_assert_eq(os->holding, 0);
	bs = find_stat(st, SHMQ_CONSUMER_BROADCAST, "bee");
	cr_assert_not_null(bs);
	/* The group, stuck at seq 0, and "bee" hold the producer together. */
	cr_assert(g->holding, "the group (at seq 0) holds");
	cr_assert(bs->holding, "bee (at seq 0) holds");
	cr_assert_eq(g->lag_messages, 10, "the group lag is %llu",
		     (unsigned long long)g->lag_messages);
	shmq_stat_free(st);

	cr_assert_eq(shmq_release(a), 0);
	/* Seqs 0 and 1 released: the group's frontier is at seq 2. */
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	g = find_stat(st, SHMQ_CONSUMER_GROUP, "crew");
	cr_assert_not_null(g);
	cr_expect_eq(g->next_seq, 2, "the group's next_seq is %llu",
		     (unsigned long long)g->next_seq);
	cr_expect_eq(g->lag_messages, 8, "the group's lag is %llu messages",
		     (unsigned long long)g->lag_messages);
	shmq_stat_free(st);
	shmq_consumer_close(a);
	shmq_consumer_close(b);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	g = find_stat(st, SHMQ_CONSUMER_GROUP, "crew");
	cr_assert_not_null(g, "the group outlives its members");
	cr_assert_eq(g->alive, 0);
	cr_assert_eq(count_kind(st, SHMQ_CONSUMER_MEMBER), 0);
	shmq_stat_free(st);
	shmq_consumer_close(o);
	shmq_consumer_close(bc);
	shmq_producer_close(p);
	shmq_close(q);
}
