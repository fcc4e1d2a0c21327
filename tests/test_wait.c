/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the blocking paths, one process: a second thread sleeps in
 * a call with SHMQ_FOREVER or a bound while the main thread does what must
 * wake it. A lost wake-up shows up as the criterion timeout. Also FIFO
 * (EPIPE) semantics and racing creators.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

struct fx {
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_consumer *c;
};

static void fx_open(struct fx *f, uint32_t pflags)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 1024 };
	struct shmq_producer_opts po = { .flags = pflags };
	int err;

	memset(f, 0, sizeof(*f));
	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &f->q), 0);
	err = shmq_consumer_open(f->q, NULL, &f->c);
	cr_assert_eq(err, 0, "consumer_open: %s", shmq_strerror(err));
	err = shmq_producer_open(f->q, &po, &f->p);
	cr_assert_eq(err, 0, "producer_open: %s", shmq_strerror(err));
}

static void fx_close(struct fx *f)
{
	shmq_consumer_close(f->c);
	shmq_producer_close(f->p);
	shmq_close(f->q);
}

/* The other thread: one blocking call, its result and when it returned. */
struct call {
	struct fx *f;
	int64_t timeout;
	int ret;
	uint64_t seq;
	uint64_t done_ns;
};

static void *peek_thread(void *arg)
{
	struct call *k = arg;
	struct shmq_msg m = { 0 };

	k->ret = shmq_peek(k->f->c, &m, k->timeout);
	k->seq = m.seq;
	k->done_ns = h_now_ns();
	return NULL;
}

static void *send_thread(void *arg)
{
	struct call *k = arg;
	uint8_t b[992] = { 0 };

	k->ret = shmq_send(k->f->p, b, sizeof(b), k->timeout);
	k->done_ns = h_now_ns();
	return NULL;
}

TestSuite(wait, .init = h_setup, .fini = h_teardown, .timeout = 15);

Test(wait, a_consumer_sleeping_forever_wakes_for_a_message_sent_later,
     .timeout = 10)
{
	struct fx f;
	struct call k = { .f = &f, .timeout = SHMQ_FOREVER };
	uint8_t b[8] = "payload";
	pthread_t t;
	uint64_t sent;

	fx_open(&f, 0);
	cr_assert_eq(pthread_create(&t, NULL, peek_thread, &k), 0);
	/* Long enough for it to pass the spin and sleep on the futex. */
	h_sleep_ms(200);
	sent = h_now_ns();
	cr_assert_eq(shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT), 0);
	pthread_join(t, NULL);
	cr_assert_eq(k.ret, 0, "peek: %d (%s)", k.ret, shmq_strerror(k.ret));
	cr_assert_eq(k.seq, 0);
	cr_assert_lt(k.done_ns - sent, 1000000000ull,
		     "woke %llu ms after the send",
		     (unsigned long long)((k.done_ns - sent) / 1000000));
	cr_assert_eq(shmq_release(f.c), 0);
	fx_close(&f);
}

Test(wait, a_consumer_sleeping_forever_wakes_with_eof_when_the_producer_closes,
     .timeout = 10)
{
	struct fx f;
	struct call k = { .f = &f, .timeout = SHMQ_FOREVER };
	pthread_t t;

	fx_open(&f, 0);
	cr_assert_eq(pthread_create(&t, NULL, peek_thread, &k), 0);
	h_sleep_ms(200);
	cr_assert_eq(shmq_producer_close(f.p), 0);
	f.p = NULL;
	pthread_join(t, NULL);
	cr_assert_eq(k.ret, SHMQ_EOF, "peek: %d (%s)", k.ret,
		     shmq_strerror(k.ret));
	fx_close(&f);
}

Test(wait, a_producer_sleeping_on_a_full_ring_wakes_when_the_consumer_releases,
     .timeout = 10)
{
	struct fx f;
	struct call k = { .f = &f, .timeout = SHMQ_FOREVER };
	uint8_t b[992] = { 0 };
	uint64_t freed;
	pthread_t t;

	fx_open(&f, 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &k), 0);
	h_sleep_ms(200);
	cr_assert_eq(k.done_ns, 0, "send returned %d into a full ring", k.ret);
	freed = h_now_ns();
	cr_assert_eq(shmq_recv(f.c, b, sizeof(b), NULL, SHMQ_NOWAIT), 992);
	pthread_join(t, NULL);
	cr_assert_eq(k.ret, 0, "send: %d (%s)", k.ret, shmq_strerror(k.ret));
	cr_assert_lt(k.done_ns - freed, 1000000000ull,
		     "woke %llu ms after the release",
		     (unsigned long long)((k.done_ns - freed) / 1000000));
	fx_close(&f);
}

Test(wait, a_waiting_consumer_reports_estale_when_the_file_is_deleted,
     .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	int err;

	fx_open(&f, 0);
	cr_assert_eq(unlink(h_path("q")), 0);
	err = shmq_peek(f.c, &m, 500000000);
	cr_assert_eq(err, SHMQ_ESTALE, "peek after unlink: %d (%s)", err,
		     shmq_strerror(err));
	fx_close(&f);
}

Test(wait, a_fifo_producer_gets_epipe_once_its_only_consumer_closed,
     .timeout = 10)
{
	struct fx f;
	uint8_t b[10] = { 0 };
	int err;

	fx_open(&f, SHMQ_PRODUCER_FIFO);
	cr_assert_eq(shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT), 0);
	shmq_consumer_close(f.c);
	f.c = NULL;
	/* Like write(2) to a pipe without readers: at once, not when full. */
	err = shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT);
	cr_assert_eq(err, -EPIPE, "send: %d (%s)", err, shmq_strerror(err));
	err = shmq_send(f.p, b, sizeof(b), SHMQ_FOREVER);
	cr_assert_eq(err, -EPIPE, "blocking send: %d (%s)", err,
		     shmq_strerror(err));
	fx_close(&f);
}

Test(wait, a_fifo_producer_without_any_consumer_yet_keeps_the_data,
     .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 1024 };
	struct shmq_producer_opts po = { .flags = SHMQ_PRODUCER_FIFO };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_msg m;
	struct shmq *q;
	uint8_t b[10] = { 0 };

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	cr_assert_eq(shmq_send(p, b, sizeof(b), SHMQ_NOWAIT), 0,
		     "a FIFO producer with no consumer yet must not get EPIPE");
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_recv(c, b, sizeof(b), &m, SHMQ_NOWAIT), 10);
	cr_assert_eq(m.seq, 0);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

struct racer {
	const char *path;
	int ret;
	uint64_t created_ns;
};

static pthread_barrier_t start_line;

static void *open_create(void *arg)
{
	struct racer *r = arg;
	struct shmq_stat *st;
	struct shmq *q;

	pthread_barrier_wait(&start_line);
	r->ret = shmq_open(r->path, SHMQ_OPEN_CREATE, NULL, &q);
	if (r->ret == 0) {
		if (shmq_stat_get(q, &st) == 0) {
			r->created_ns = st->created_ns;
			shmq_stat_free(st);
		}
		shmq_close(q);
	}
	return NULL;
}

Test(wait, racing_open_create_calls_end_up_on_the_same_queue, .timeout = 30)
{
	enum { N = 4, ROUNDS = 20 };

	for (int round = 0; round < ROUNDS; round++) {
		struct racer r[N];
		pthread_t t[N];
		char name[16];

		snprintf(name, sizeof(name), "q%d", round);
		cr_assert_eq(pthread_barrier_init(&start_line, NULL, N), 0);
		for (int i = 0; i < N; i++) {
			r[i] = (struct racer){ .path = h_path(name) };
			cr_assert_eq(pthread_create(&t[i], NULL, open_create,
						    &r[i]), 0);
		}
		for (int i = 0; i < N; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&start_line);
		for (int i = 0; i < N; i++) {
			cr_assert_eq(r[i].ret, 0, "round %d racer %d: %d (%s)",
				     round, i, r[i].ret,
				     shmq_strerror(r[i].ret));
			cr_assert_eq(r[i].created_ns, r[0].created_ns,
				     "round %d: racers on different queues",
				     round);
		}
	}
}

/* Drain N messages with unbounded waits, checking their order. */
struct drain {
	struct fx *f;
	int n;
	int got;
	int ret;
};

static void *drain_thread(void *arg)
{
	struct drain *d = arg;
	uint8_t b[1024];
	struct shmq_msg m;

	for (d->got = 0; d->got < d->n; d->got++) {
		ssize_t r = shmq_recv(d->f->c, b, sizeof(b), &m, SHMQ_FOREVER);

		if (r < 0) {
			d->ret = (int)r;
			return NULL;
		}
		if (m.seq != (uint64_t)d->got) {
			d->ret = -EBADMSG;
			return NULL;
		}
	}
	return NULL;
}

Test(wait, a_producer_that_must_wait_for_room_publishes_its_deferred_records,
     .timeout = 10)
{
	struct fx f;
	struct drain d = { .f = &f, .n = 6 };
	pthread_t t;
	void *b;

	fx_open(&f, 0);
	cr_assert_eq(pthread_create(&t, NULL, drain_thread, &d), 0);
	/*
	 * Six deferred 992-byte records in a 4 KiB ring: the fifth cannot
	 * fit until the reader has the first ones, which it can only have
	 * once they are published. Waiting without publishing deadlocks.
	 */
	for (int i = 0; i < 6; i++) {
		int err = shmq_reserve(f.p, 992, &b, SHMQ_FOREVER);

		cr_assert_eq(err, 0, "reserve %d: %s", i, shmq_strerror(err));
		memset(b, i, 992);
		cr_assert_eq(shmq_commit(f.p, SHMQ_COMMIT_DEFER), 0);
	}
	cr_assert_eq(shmq_publish(f.p), 0);
	pthread_join(t, NULL);
	cr_assert_eq(d.ret, 0, "reader: %d (%s) after %d", d.ret,
		     shmq_strerror(d.ret), d.got);
	cr_assert_eq(d.got, 6);
	fx_close(&f);
}

Test(wait, a_blocking_batch_larger_than_the_ring_is_sent_whole, .timeout = 10)
{
	struct fx f;
	struct drain d = { .f = &f, .n = 12 };
	static uint8_t bufs[12][992];
	struct iovec iov[12];
	pthread_t t;
	ssize_t r;

	fx_open(&f, 0);
	for (int i = 0; i < 12; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
	}
	cr_assert_eq(pthread_create(&t, NULL, drain_thread, &d), 0);
	r = shmq_send_batch(f.p, iov, 12, SHMQ_FOREVER);
	pthread_join(t, NULL);
	cr_assert_eq(r, 12, "send_batch: %zd", r);
	cr_assert_eq(d.ret, 0, "reader: %d (%s) after %d", d.ret,
		     shmq_strerror(d.ret), d.got);
	fx_close(&f);
}

/*
 * Issue 17 #1: only SHMQ_FOREVER waits without a bound. The thread's
 * call must come back at once (a hang is the criterion timeout).
 */
Test(wait, negative_timeouts_other_than_forever_are_nowait, .timeout = 10)
{
	static const int64_t bad[] = { -2, -5, -1000000000ll, INT64_MIN };
	struct fx f;
	struct shmq_msg m;
	uint8_t b[1000] = { 0 };
	int err;

	fx_open(&f, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(shmq_peek(f.c, &m, bad[i]), -EAGAIN, "peek(%lld)",
			     (long long)bad[i]);
		cr_assert_eq(shmq_recv(f.c, b, sizeof(b), &m, bad[i]), -EAGAIN);
		cr_assert_eq(shmq_peek_many(f.c, &m, 1, bad[i]), -EAGAIN);
		cr_assert_eq(shmq_peek_until(f.c, &m, bad[i]), -EAGAIN);
	}
	while ((err = shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT)) == 0)
		;
	cr_assert_eq(err, -EAGAIN);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *dst;

		cr_assert_eq(shmq_send(f.p, b, sizeof(b), bad[i]), -EAGAIN,
			     "send(%lld)", (long long)bad[i]);
		cr_assert_eq(shmq_reserve(f.p, 10, &dst, bad[i]), -EAGAIN);
		cr_assert_eq(shmq_send_until(f.p, b, sizeof(b), bad[i]), -EAGAIN);
		cr_assert_eq(shmq_send_until(f.p, b, sizeof(b),
					     shmq_now_ns() - 1), -EAGAIN);
	}
	fx_close(&f);
}

/* A bound too large to add to the clock must not overflow (UBSan). */
Test(wait, the_largest_timeout_waits_until_woken, .timeout = 10)
{
	struct fx f;
	struct call k = { .f = &f, .timeout = INT64_MAX };
	uint8_t b[8] = "payload";
	pthread_t t;

	fx_open(&f, 0);
	cr_assert_eq(pthread_create(&t, NULL, peek_thread, &k), 0);
	h_sleep_ms(200);
	cr_assert_eq(k.done_ns, 0, "returned %d before the send", k.ret);
	cr_assert_eq(shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT), 0);
	pthread_join(t, NULL);
	cr_assert_eq(k.ret, 0, "peek: %s", shmq_strerror(k.ret));
	fx_close(&f);
}

/* The absolute-deadline calls: wait until the deadline, not past it. */
Test(wait, until_calls_wait_for_their_deadline_and_no_longer, .timeout = 10)
{
	struct fx f;
	struct shmq_msg m;
	uint8_t b[1000] = { 0 };
	int64_t t0, dl;
	int err;

	fx_open(&f, 0);
	t0 = shmq_now_ns();
	dl = t0 + 50000000;
	cr_assert_eq(shmq_recv_until(f.c, b, sizeof(b), &m, dl), -ETIMEDOUT);
	cr_assert_geq(shmq_now_ns(), dl, "returned before its deadline");
	cr_assert_eq(shmq_send_until(f.p, b, 10, shmq_now_ns() + 1000000000), 0);
	cr_assert_eq(shmq_peek_until(f.c, &m, SHMQ_FOREVER), 0);
	cr_assert_eq(m.len, 10);
	cr_assert_eq(shmq_release(f.c), 0);
	while ((err = shmq_send(f.p, b, sizeof(b), SHMQ_NOWAIT)) == 0)
		;
	dl = shmq_now_ns() + 30000000;
	cr_assert_eq(shmq_send_until(f.p, b, sizeof(b), dl), -ETIMEDOUT);
	cr_assert_geq(shmq_now_ns(), dl);
	fx_close(&f);
}
