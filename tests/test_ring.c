/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the ring, one process: producer and consumer handles side
 * by side, SHMQ_NOWAIT calls, so that every outcome is deterministic.
 * Record geometry (24-byte header, 8-byte alignment, PAD at the wrap) comes
 * from lib/format.h: these tests place records at the ring's edges on
 * purpose, which needs to know how big a record is.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq.h"
#include "harness.h"
#include "../lib/format.h"

#define SEED 0x5eedull
#define REC(len) (((uint64_t)(len) + SHMQ_REC_HDR + SHMQ_REC_ALIGN - 1) & \
		  ~(uint64_t)(SHMQ_REC_ALIGN - 1))

struct fx {
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_consumer *c;
};

static void fx_open(struct fx *f, uint64_t cap, uint32_t max, uint64_t initial)
{
	struct shmq_config cfg = {
		.capacity = cap, .max_message = max, .initial_pos = initial,
	};
	const char *path = h_path("q");
	int err;

	memset(f, 0, sizeof(*f));
	err = shmq_create(path, &cfg);
	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	err = shmq_open(path, 0, NULL, &f->q);
	cr_assert_eq(err, 0, "open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	/* The consumer first, so that it holds everything from seq 0. */
	err = shmq_consumer_open(f->q, NULL, &f->c);
	cr_assert_eq(err, 0, "consumer_open: %s", shmq_strerror(err));
	err = shmq_producer_open(f->q, NULL, &f->p);
	cr_assert_eq(err, 0, "producer_open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

static void fx_close(struct fx *f)
{
	shmq_consumer_close(f->c);
	shmq_producer_close(f->p);
	shmq_close(f->q);
}

static void send_msg(struct fx *f, uint64_t seq, size_t len)
{
	uint8_t *b = malloc(len + 1);
	int err;

	h_msg_fill(b, len, SEED, seq);
	err = shmq_send(f->p, b, len, SHMQ_NOWAIT);
	free(b);
	cr_assert_eq(err, 0, "send of seq %llu (%zu bytes): %s (%s)",
		     (unsigned long long)seq, len, shmq_strerror(err),
		     shmq_errdetail());
}

static void recv_msg(struct fx *f, uint64_t seq, size_t len)
{
	uint8_t *b = malloc(len + 1), *exp = malloc(len + 1);
	struct shmq_msg m;
	ssize_t r;

	r = shmq_recv(f->c, b, len + 1, &m, SHMQ_NOWAIT);
	cr_assert_eq(r, (ssize_t)len, "recv of seq %llu: got %zd (%s), want %zu",
		     (unsigned long long)seq, r,
		     r < 0 ? shmq_strerror((int)r) : "a length", len);
	cr_assert_eq(m.seq, seq, "seq %llu, want %llu",
		     (unsigned long long)m.seq, (unsigned long long)seq);
	cr_assert_eq(m.len, len);
	h_msg_fill(exp, len, SEED, seq);
	cr_assert(memcmp(b, exp, len) == 0, "payload of seq %llu differs",
		  (unsigned long long)seq);
	free(b);
	free(exp);
}

static struct shmq_stat *stat_of(struct shmq *q)
{
	struct shmq_stat *st;
	int err = shmq_stat_get(q, &st);

	cr_assert_eq(err, 0, "stat_get: %s", shmq_strerror(err));
	return st;
}

static uint64_t write_pos(struct shmq *q)
{
	struct shmq_stat *st = stat_of(q);
	uint64_t w = st->write_pos;

	shmq_stat_free(st);
	return w;
}

static void expect_empty(struct fx *f)
{
	struct shmq_msg m;
	int err = shmq_peek(f->c, &m, SHMQ_NOWAIT);

	cr_assert_eq(err, -EAGAIN, "peek on an empty ring: %d (%s), seq %llu",
		     err, shmq_strerror(err), (unsigned long long)m.seq);
}

TestSuite(ring, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(ring, starts_writing_at_the_configured_initial_position, .timeout = 10)
{
	struct fx f;

	fx_open(&f, 4096, 1024, 4096 * 3 + 512);
	cr_assert_eq(write_pos(f.q), 4096 * 3 + 512);
	send_msg(&f, 0, 10);
	cr_assert_eq(write_pos(f.q), 4096 * 3 + 512 + REC(10));
	recv_msg(&f, 0, 10);
	fx_close(&f);
}

Test(ring, wraps_with_a_padding_record_when_the_next_record_does_not_fit,
     .timeout = 10)
{
	struct fx f;
	uint64_t start = 4096 - 64;

	/* 64 bytes to the end: room for a PAD header, not for 100 bytes. */
	fx_open(&f, 4096, 1024, start);
	send_msg(&f, 0, 100);
	cr_assert_eq(write_pos(f.q), start + 64 + REC(100),
		     "write_pos %llu, want the 64-byte pad plus the record",
		     (unsigned long long)write_pos(f.q));
	recv_msg(&f, 0, 100);
	/* The padding is not a message. */
	expect_empty(&f);
	send_msg(&f, 1, 7);
	recv_msg(&f, 1, 7);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, wraps_to_the_start_when_less_than_a_record_header_remains,
     .timeout = 10)
{
	struct fx f;
	uint64_t start = 4096 - 16;

	/* 16 bytes left: too short even for a PAD header. */
	fx_open(&f, 4096, 1024, start);
	send_msg(&f, 0, 1);
	cr_assert_eq(write_pos(f.q), start + 16 + REC(1));
	recv_msg(&f, 0, 1);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, places_a_record_that_exactly_fills_the_space_to_the_end,
     .timeout = 10)
{
	struct fx f;
	uint64_t start = 2 * 4096 - 128;
	size_t len = 128 - SHMQ_REC_HDR;	/* REC(len) == 128 */

	fx_open(&f, 4096, 1024, start);
	send_msg(&f, 0, len);
	cr_assert_eq(write_pos(f.q), 2 * 4096,
		     "no padding expected: write_pos %llu",
		     (unsigned long long)write_pos(f.q));
	send_msg(&f, 1, 33);
	cr_assert_eq(write_pos(f.q), 2 * 4096 + REC(33));
	recv_msg(&f, 0, len);
	recv_msg(&f, 1, 33);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, accepts_records_that_fill_the_whole_ring_and_refuses_one_byte_more,
     .timeout = 10)
{
	struct fx f;
	size_t len = 1024 - SHMQ_REC_HDR;	/* four of them fill 4096 */
	uint8_t b[1024];
	int err;

	fx_open(&f, 4096, 1024, 0);
	for (uint64_t s = 0; s < 4; s++)
		send_msg(&f, s, len);
	err = shmq_send(f.p, b, 0, SHMQ_NOWAIT);
	cr_assert_eq(err, -EAGAIN, "send into a full ring: %d (%s)", err,
		     shmq_strerror(err));
	recv_msg(&f, 0, len);
	/* One record freed: exactly one more of the same size fits. */
	send_msg(&f, 4, len);
	err = shmq_send(f.p, b, 0, SHMQ_NOWAIT);
	cr_assert_eq(err, -EAGAIN, "send into a full ring: %d", err);
	for (uint64_t s = 1; s < 5; s++)
		recv_msg(&f, s, len);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, carries_zero_length_and_maximum_size_messages, .timeout = 10)
{
	struct fx f;
	struct shmq_stat *st;
	struct shmq_msg m;
	size_t max;
	int err;

	/* max_message 0: the default, capped to a quarter of the ring. */
	fx_open(&f, 16384, 0, 0);
	st = stat_of(f.q);
	max = st->max_message;
	shmq_stat_free(st);
	cr_assert_eq(max, 4096, "default max_message on a 16 KiB ring: %zu",
		     max);

	send_msg(&f, 0, 0);
	send_msg(&f, 1, max);
	err = shmq_peek(f.c, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, 0);
	cr_assert_eq(m.len, 0);
	cr_assert_eq(m.seq, 0);
	cr_assert_eq(shmq_release(f.c), 0);
	recv_msg(&f, 1, max);
	send_msg(&f, 2, 0);
	recv_msg(&f, 2, 0);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, refuses_a_message_one_byte_over_the_maximum_with_emsgsize,
     .timeout = 10)
{
	struct fx f;
	uint8_t *b = calloc(1, 2048);
	struct iovec iov[2] = { { b, 1025 }, { b, 1 } };
	void *r;
	int err;

	fx_open(&f, 4096, 1024, 0);
	err = shmq_send(f.p, b, 1025, SHMQ_NOWAIT);
	cr_assert_eq(err, -EMSGSIZE, "send: %d (%s)", err, shmq_strerror(err));
	err = shmq_reserve(f.p, 1025, &r, SHMQ_NOWAIT);
	cr_assert_eq(err, -EMSGSIZE, "reserve: %d (%s)", err,
		     shmq_strerror(err));
	err = (int)shmq_send_batch(f.p, iov, 2, SHMQ_NOWAIT);
	cr_assert_eq(err, -EMSGSIZE, "send_batch: %d (%s)", err,
		     shmq_strerror(err));
	/* None of the refused ones took a sequence number. */
	send_msg(&f, 0, 1024);
	recv_msg(&f, 0, 1024);
	expect_empty(&f);
	free(b);
	fx_close(&f);
}

/*
 * Run messages of many sizes through a small ring that starts at START,
 * reading as we go, so that the positions cross 2^64 and the ring's end
 * many times.
 */
static void run_across(uint64_t start)
{
	struct fx f;
	struct shmq_stat *st;
	uint64_t seq = 0, rseq = 0;
	int crossed = 0;

	/* 8 KiB: three max-size records plus a padding always fit. */
	fx_open(&f, 8192, 1024, start);
	cr_assert_eq(write_pos(f.q), start);
	for (int round = 0; round < 200; round++) {
		/* A few in flight at once, so lag spans the wrap too. */
		int k = 1 + round % 3;

		for (int i = 0; i < k; i++, seq++)
			send_msg(&f, seq, h_msg_len(SEED, seq, 1024));
		st = stat_of(f.q);
		cr_assert_eq(st->nconsumers, 1);
		cr_assert_eq(st->consumers[0].lag_messages, (uint64_t)k,
			     "lag %llu messages, want %d at write_pos %llu",
			     (unsigned long long)st->consumers[0].lag_messages,
			     k, (unsigned long long)st->write_pos);
		cr_assert_eq(st->consumers[0].lag_bytes,
			     st->write_pos - st->consumers[0].position,
			     "lag_bytes across 2^64");
		if (st->write_pos < start)
			crossed = 1;
		shmq_stat_free(st);
		for (int i = 0; i < k; i++, rseq++)
			recv_msg(&f, rseq, h_msg_len(SEED, rseq, 1024));
		expect_empty(&f);
	}
	cr_assert(crossed, "write_pos never wrapped past 2^64");
	fx_close(&f);
}

Test(ring, crosses_the_wrap_of_the_64_bit_position_4096_bytes_before_it,
     .timeout = 20)
{
	run_across(UINT64_MAX - 4095);
}

Test(ring, crosses_the_wrap_of_the_64_bit_position_64_bytes_before_it,
     .timeout = 20)
{
	run_across(UINT64_MAX - 63);
}

Test(ring, crosses_the_wrap_of_the_64_bit_position_8_bytes_before_it,
     .timeout = 20)
{
	run_across(UINT64_MAX - 7);
}

Test(ring, survives_a_hundred_thousand_random_messages_through_a_small_ring,
     .timeout = 60)
{
	struct fx f;
	uint64_t seq = 0, rseq = 0, x = 12345;

	fx_open(&f, 8192, 2048, 0);
	while (rseq < 100000) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		int burst = (int)((x >> 33) % 8);

		/* Fill until full or the burst ends, then drain a part. */
		for (int i = 0; i < burst; i++) {
			size_t len = h_msg_len(SEED, seq, 2048);
			uint8_t b[2048];
			int err;

			h_msg_fill(b, len, SEED, seq);
			err = shmq_send(f.p, b, len, SHMQ_NOWAIT);
			if (err == -EAGAIN)
				break;
			cr_assert_eq(err, 0, "send: %s", shmq_strerror(err));
			seq++;
		}
		int drain = (int)((x >> 40) % 8);

		for (int i = 0; i < drain && rseq < seq; i++, rseq++)
			recv_msg(&f, rseq, h_msg_len(SEED, rseq, 2048));
	}
	fx_close(&f);
}

Test(ring, hands_out_a_zero_copy_reservation_that_commit_publishes,
     .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	void *b;
	int err;

	fx_open(&f, 4096, 1024, 0);
	cr_assert_eq(shmq_commit(f.p, 0), -EINVAL,
		     "commit with nothing reserved");
	err = shmq_reserve(f.p, 300, &b, SHMQ_NOWAIT);
	cr_assert_eq(err, 0, "reserve: %s", shmq_strerror(err));
	cr_assert_not_null(b);
	h_msg_fill(b, 300, SEED, 0);
	/* Reserved is not published. */
	expect_empty(&f);
	cr_assert_eq(shmq_commit(f.p, 0), 0);
	err = shmq_peek(f.c, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, 0, "peek: %s", shmq_strerror(err));
	cr_assert_eq(m.len, 300);
	cr_assert_eq(m.seq, 0);
	{
		uint8_t exp[300];

		h_msg_fill(exp, 300, SEED, 0);
		cr_assert(memcmp(m.data, exp, 300) == 0, "payload differs");
	}
	cr_assert_eq(shmq_release(f.c), 0);
	/* A zero-length reservation is a zero-length message. */
	cr_assert_eq(shmq_reserve(f.p, 0, &b, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_commit(f.p, 0), 0);
	recv_msg(&f, 1, 0);
	cr_assert_eq(shmq_commit(f.p, 0), -EINVAL, "commit twice");
	fx_close(&f);
}

Test(ring, refuses_a_reservation_with_eagain_when_the_ring_is_full,
     .timeout = 10)
{
	struct fx f;
	void *b;
	int err;

	fx_open(&f, 4096, 1024, 0);
	for (uint64_t s = 0; s < 4; s++)
		send_msg(&f, s, 1024 - SHMQ_REC_HDR);
	err = shmq_reserve(f.p, 0, &b, SHMQ_NOWAIT);
	cr_assert_eq(err, -EAGAIN, "reserve: %d (%s)", err,
		     shmq_strerror(err));
	recv_msg(&f, 0, 1024 - SHMQ_REC_HDR);
	err = shmq_reserve(f.p, 10, &b, SHMQ_NOWAIT);
	cr_assert_eq(err, 0, "reserve after a release: %s",
		     shmq_strerror(err));
	h_msg_fill(b, 10, SEED, 4);
	cr_assert_eq(shmq_commit(f.p, 0), 0);
	for (uint64_t s = 1; s < 4; s++)
		recv_msg(&f, s, 1024 - SHMQ_REC_HDR);
	recv_msg(&f, 4, 10);
	fx_close(&f);
}

Test(ring, sends_a_batch_in_order_with_consecutive_sequence_numbers,
     .timeout = 10)
{
	struct fx f;
	uint8_t bufs[10][200];
	struct iovec iov[10];
	ssize_t r;

	fx_open(&f, 16384, 1024, 0);
	for (int i = 0; i < 10; i++) {
		size_t len = (size_t)i * 20;

		h_msg_fill(bufs[i], len, SEED, (uint64_t)i);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = len;
	}
	r = shmq_send_batch(f.p, iov, 10, SHMQ_NOWAIT);
	cr_assert_eq(r, 10, "send_batch: %zd", r);
	for (int i = 0; i < 10; i++)
		recv_msg(&f, (uint64_t)i, (size_t)i * 20);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, sends_as_much_of_a_batch_as_fits_without_waiting, .timeout = 10)
{
	struct fx f;
	size_t len = 1024 - SHMQ_REC_HDR;
	uint8_t bufs[8][1024];
	struct iovec iov[8];
	ssize_t r;

	fx_open(&f, 4096, 1024, 0);
	for (int i = 0; i < 8; i++) {
		h_msg_fill(bufs[i], len, SEED, (uint64_t)i);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = len;
	}
	r = shmq_send_batch(f.p, iov, 8, SHMQ_NOWAIT);
	cr_assert_eq(r, 4, "a 4096-byte ring takes 4 of 8: got %zd", r);
	r = shmq_send_batch(f.p, iov + 4, 4, SHMQ_NOWAIT);
	cr_assert_eq(r, -EAGAIN, "then the ring is full: %zd", r);
	recv_msg(&f, 0, len);
	recv_msg(&f, 1, len);
	r = shmq_send_batch(f.p, iov + 4, 4, SHMQ_NOWAIT);
	cr_assert_eq(r, 2, "two freed, two sent: %zd", r);
	for (uint64_t s = 2; s < 6; s++)
		recv_msg(&f, s, len);
	expect_empty(&f);
	fx_close(&f);
}

static void reserve_defer(struct fx *f, uint64_t seq, size_t len,
			  unsigned int flags)
{
	void *b;
	int err = shmq_reserve(f->p, len, &b, SHMQ_NOWAIT);

	cr_assert_eq(err, 0, "reserve: %s", shmq_strerror(err));
	h_msg_fill(b, len, SEED, seq);
	cr_assert_eq(shmq_commit(f->p, flags), 0);
}

Test(ring, hides_deferred_commits_until_publish, .timeout = 10)
{
	struct fx f;

	fx_open(&f, 4096, 1024, 0);
	for (uint64_t s = 0; s < 3; s++)
		reserve_defer(&f, s, 50 + s, SHMQ_COMMIT_DEFER);
	expect_empty(&f);
	cr_assert_eq(shmq_publish(f.p), 0);
	for (uint64_t s = 0; s < 3; s++)
		recv_msg(&f, s, 50 + s);
	expect_empty(&f);
	/* Publishing with nothing sealed is harmless. */
	cr_assert_eq(shmq_publish(f.p), 0);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, publishes_deferred_commits_with_the_next_plain_commit,
     .timeout = 10)
{
	struct fx f;

	fx_open(&f, 4096, 1024, 0);
	reserve_defer(&f, 0, 10, SHMQ_COMMIT_DEFER);
	reserve_defer(&f, 1, 20, SHMQ_COMMIT_DEFER);
	expect_empty(&f);
	reserve_defer(&f, 2, 30, 0);
	recv_msg(&f, 0, 10);
	recv_msg(&f, 1, 20);
	recv_msg(&f, 2, 30);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, publishes_deferred_commits_when_the_producer_closes,
     .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	int err;

	fx_open(&f, 4096, 1024, 0);
	reserve_defer(&f, 0, 10, SHMQ_COMMIT_DEFER);
	expect_empty(&f);
	cr_assert_eq(shmq_producer_close(f.p), 0);
	f.p = NULL;
	recv_msg(&f, 0, 10);
	err = shmq_peek(f.c, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, SHMQ_EOF, "after the close: %d (%s)", err,
		     shmq_strerror(err));
	fx_close(&f);
}

Test(ring, returns_eagain_without_waiting_on_an_empty_ring, .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 4096 };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq *q;
	struct shmq_msg m;
	uint8_t b[16];
	uint64_t t0;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	/* No producer yet: nothing to read, not end of stream. */
	t0 = h_now_ns();
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_recv(c, b, sizeof(b), &m, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_recv(c, b, sizeof(b), &m, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_lt(h_now_ns() - t0, 500000000ull,
		     "SHMQ_NOWAIT calls took %llu ns",
		     (unsigned long long)(h_now_ns() - t0));
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(ring, keeps_data_for_a_later_consumer_when_full_with_none_attached,
     .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 1024 };
	struct fx f = { 0 };
	uint8_t b[100];
	uint64_t n = 0;
	int err;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &f.q), 0);
	cr_assert_eq(shmq_producer_open(f.q, NULL, &f.p), 0);
	for (;;) {
		h_msg_fill(b, 100, SEED, n);
		err = shmq_send(f.p, b, 100, SHMQ_NOWAIT);
		if (err)
			break;
		cr_assert_lt(n, 4096, "a 4 KiB ring never filled");
		n++;
	}
	cr_assert_eq(err, -EAGAIN, "full ring: %d (%s)", err,
		     shmq_strerror(err));
	cr_assert_eq(n, 4096 / REC(100), "messages that fit: %llu",
		     (unsigned long long)n);
	cr_assert_eq(shmq_consumer_open(f.q, NULL, &f.c), 0);
	for (uint64_t s = 0; s < n; s++)
		recv_msg(&f, s, 100);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, times_out_a_send_on_a_full_ring_and_a_recv_on_an_empty_one,
     .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	uint8_t b[1024];
	uint64_t t0, dt;
	void *r;
	int err;

	fx_open(&f, 4096, 1024, 0);
	t0 = h_now_ns();
	err = shmq_peek(f.c, &m, 100000000);
	dt = h_now_ns() - t0;
	cr_assert_eq(err, -ETIMEDOUT, "peek: %d (%s)", err, shmq_strerror(err));
	cr_assert_geq(dt, 90000000ull, "peek returned after %llu ns",
		      (unsigned long long)dt);
	cr_assert_lt(dt, 2000000000ull, "peek returned after %llu ns",
		     (unsigned long long)dt);

	for (uint64_t s = 0; s < 4; s++)
		send_msg(&f, s, 1024 - SHMQ_REC_HDR);
	t0 = h_now_ns();
	err = shmq_send(f.p, b, 1, 100000000);
	dt = h_now_ns() - t0;
	cr_assert_eq(err, -ETIMEDOUT, "send: %d (%s)", err, shmq_strerror(err));
	cr_assert_geq(dt, 90000000ull, "send returned after %llu ns",
		      (unsigned long long)dt);
	cr_assert_lt(dt, 2000000000ull, "send returned after %llu ns",
		     (unsigned long long)dt);
	err = shmq_reserve(f.p, 1, &r, 50000000);
	cr_assert_eq(err, -ETIMEDOUT, "reserve: %d (%s)", err,
		     shmq_strerror(err));
	fx_close(&f);
}

Test(ring, reports_eof_after_the_producer_closes_and_the_ring_is_drained,
     .timeout = 10)
{
	struct fx f;
	struct shmq_consumer *late;
	struct shmq_msg m;
	uint8_t b[64];
	int err;

	fx_open(&f, 4096, 1024, 0);
	for (uint64_t s = 0; s < 3; s++)
		send_msg(&f, s, 40);
	cr_assert_eq(shmq_producer_close(f.p), 0);
	f.p = NULL;
	/* Data first, then EOF; EOF even with an unbounded wait. */
	for (uint64_t s = 0; s < 3; s++)
		recv_msg(&f, s, 40);
	err = (int)shmq_recv(f.c, b, sizeof(b), &m, SHMQ_FOREVER);
	cr_assert_eq(err, SHMQ_EOF, "recv: %d (%s)", err, shmq_strerror(err));
	/* Once per session: then the handle waits for the next one. */
	err = shmq_peek(f.c, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, -EAGAIN, "peek again: %d (%s)", err,
		     shmq_strerror(err));

	/*
	 * A consumer that attaches after the close starts after what the
	 * attached one released: that session ended and was read, so it
	 * waits for the next producer, as a FIFO reader waits for a writer.
	 */
	err = shmq_consumer_open(f.q, NULL, &late);
	cr_assert_eq(err, 0, "consumer_open after close: %s",
		     shmq_strerror(err));
	err = shmq_peek(late, &m, 100000000);
	cr_assert_eq(err, -ETIMEDOUT, "late peek: %d (%s)", err,
		     shmq_strerror(err));
	/* The next session: both get its message and its end. */
	cr_assert_eq(shmq_producer_open(f.q, NULL, &f.p), 0);
	send_msg(&f, 3, 40);
	cr_assert_eq(shmq_producer_close(f.p), 0);
	f.p = NULL;
	recv_msg(&f, 3, 40);
	err = (int)shmq_recv(f.c, b, sizeof(b), &m, SHMQ_FOREVER);
	cr_assert_eq(err, SHMQ_EOF, "second session: %d (%s)", err, shmq_strerror(err));
	cr_assert_eq(shmq_peek(late, &m, SHMQ_FOREVER), 0);
	cr_assert_eq(m.seq, 3);
	cr_assert_eq(shmq_release(late), 0);
	err = shmq_peek(late, &m, SHMQ_FOREVER);
	cr_assert_eq(err, SHMQ_EOF, "late: %d (%s)", err, shmq_strerror(err));
	shmq_consumer_close(late);
	fx_close(&f);
}

Test(ring, refuses_a_too_small_buffer_with_emsgsize_and_consumes_nothing,
     .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	uint8_t b[100];
	ssize_t r;

	fx_open(&f, 4096, 1024, 0);
	send_msg(&f, 0, 100);
	send_msg(&f, 1, 5);
	r = shmq_recv(f.c, b, 99, &m, SHMQ_NOWAIT);
	cr_assert_eq(r, -EMSGSIZE, "recv into 99 bytes: %zd", r);
	r = shmq_recv(f.c, b, 0, NULL, SHMQ_NOWAIT);
	cr_assert_eq(r, -EMSGSIZE, "recv into 0 bytes: %zd", r);
	recv_msg(&f, 0, 100);
	recv_msg(&f, 1, 5);
	expect_empty(&f);
	fx_close(&f);
}

Test(ring, peeks_in_place_and_advances_only_on_release, .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	uint8_t exp[64];
	int err;

	fx_open(&f, 4096, 1024, 0);
	cr_assert_eq(shmq_release(f.c), -EINVAL, "release without a peek");
	send_msg(&f, 0, 64);
	send_msg(&f, 1, 3);
	err = shmq_peek(f.c, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, 0, "peek: %s", shmq_strerror(err));
	cr_assert_eq(m.seq, 0);
	cr_assert_eq(m.len, 64);
	cr_assert_eq(m.lost, 0);
	h_msg_fill(exp, 64, SEED, 0);
	cr_assert(memcmp(m.data, exp, 64) == 0);
	cr_assert_eq(shmq_release(f.c), 0);
	cr_assert_eq(shmq_release(f.c), -EINVAL, "release twice");
	err = shmq_peek(f.c, &m, SHMQ_NOWAIT);
	cr_assert_eq(err, 0);
	cr_assert_eq(m.seq, 1);
	cr_assert_eq(m.len, 3);
	cr_assert_eq(shmq_release(f.c), 0);
	expect_empty(&f);
	fx_close(&f);
}
