/* SPDX-License-Identifier: MIT */
/*
 * shmq_peek_many, one process: a batch is what was published, in order,
 * whole; one release releases it all; nothing is released before that.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "shmq.h"
#include "harness.h"

TestSuite(peek_many, .init = h_setup, .fini = h_teardown, .timeout = 10);

static struct shmq *q;
static struct shmq_producer *p;

static void setup_sent(unsigned int n)
{
	struct shmq_config cfg = { .capacity = 1 << 16, .max_message = 256 };
	char buf[32];

	cr_assert_eq(shmq_open(h_path("b.q"), SHMQ_OPEN_CREATE, &cfg, &q), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	for (unsigned int i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), "message %u", i);

		cr_assert_eq(shmq_send(p, buf, (size_t)len, SHMQ_NOWAIT), 0);
	}
}

static struct shmq_consumer *consumer(const char *name, uint32_t kind)
{
	struct shmq_consumer_opts o = { .kind = kind, .name = name };
	struct shmq_consumer *c;

	cr_assert_eq(shmq_consumer_open(q, &o, &c), 0, "%s", shmq_errdetail());
	return c;
}

static void expect_msg(const struct shmq_msg *m, uint64_t seq)
{
	char want[32];
	int len = snprintf(want, sizeof(want), "message %llu",
			   (unsigned long long)seq);

	cr_assert_eq(m->seq, seq);
	cr_assert_eq(m->len, (size_t)len);
	cr_assert_eq(memcmp(m->data, want, (size_t)len), 0);
}

Test(peek_many, returns_what_was_published_in_order_up_to_n)
{
	struct shmq_msg ms[8];
	struct shmq_consumer *c;

	setup_sent(20);
	c = consumer(NULL, SHMQ_CONSUMER_BROADCAST);
	cr_assert_eq(shmq_peek_many(c, ms, 8, SHMQ_NOWAIT), 8);
	for (int i = 0; i < 8; i++)
		expect_msg(&ms[i], (uint64_t)i);
	cr_assert_eq(shmq_release(c), 0);
	cr_assert_eq(shmq_peek_many(c, ms, 8, SHMQ_NOWAIT), 8);
	expect_msg(&ms[0], 8);
	cr_assert_eq(shmq_release(c), 0);
	/* Only four are left: a batch never waits for more. */
	cr_assert_eq(shmq_peek_many(c, ms, 8, SHMQ_NOWAIT), 4);
	expect_msg(&ms[3], 19);
	cr_assert_eq(shmq_release(c), 0);
	cr_assert_eq(shmq_peek_many(c, ms, 8, SHMQ_NOWAIT), -EAGAIN);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek_many, a_named_consumer_resumes_after_the_last_released_batch)
{
	struct shmq_msg ms[8];
	struct shmq_consumer *c;

	setup_sent(20);
	c = consumer("batcher", SHMQ_CONSUMER_BROADCAST);
	cr_assert_eq(shmq_peek_many(c, ms, 5, SHMQ_NOWAIT), 5);
	cr_assert_eq(shmq_release(c), 0);
	/* Peeked but not released: it comes again after a restart. */
	cr_assert_eq(shmq_peek_many(c, ms, 5, SHMQ_NOWAIT), 5);
	shmq_consumer_close(c);
	c = consumer("batcher", SHMQ_CONSUMER_BROADCAST);
	cr_assert_eq(shmq_peek_many(c, ms, 8, SHMQ_NOWAIT), 8);
	expect_msg(&ms[0], 5);
	cr_assert_eq(shmq_release(c), 0);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek_many, refuses_n_zero_and_a_second_batch_before_the_release)
{
	struct shmq_msg ms[4];
	struct shmq_consumer *c;

	setup_sent(10);
	c = consumer(NULL, SHMQ_CONSUMER_BROADCAST);
	cr_assert_eq(shmq_peek_many(c, ms, 0, SHMQ_NOWAIT), -EINVAL);
	cr_assert_eq(shmq_peek_many(c, ms, 4, SHMQ_NOWAIT), 4);
	cr_assert_eq(shmq_peek_many(c, ms, 4, SHMQ_NOWAIT), -EINVAL);
	cr_assert_eq(shmq_release(c), 0);
	cr_assert_eq(shmq_peek_many(c, ms, 4, SHMQ_NOWAIT), 4);
	expect_msg(&ms[0], 4);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek_many, gives_a_group_member_one_message_at_a_time)
{
	struct shmq_msg ms[4];
	struct shmq_consumer *c;

	setup_sent(10);
	c = consumer("team", SHMQ_CONSUMER_GROUP);
	cr_assert_eq(shmq_peek_many(c, ms, 4, SHMQ_NOWAIT), 1);
	expect_msg(&ms[0], 0);
	cr_assert_eq(shmq_release(c), 0);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek_many, holds_the_producer_until_the_whole_batch_is_released)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 64 };
	struct shmq_consumer *c;
	struct shmq_msg ms[64];
	char buf[64] = { 0 };
	ssize_t n;
	int sent = 0;

	cr_assert_eq(shmq_open(h_path("s.q"), SHMQ_OPEN_CREATE, &cfg, &q), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	c = consumer(NULL, SHMQ_CONSUMER_BROADCAST);
	while (shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT) == 0)
		sent++;
	n = shmq_peek_many(c, ms, 64, SHMQ_NOWAIT);
	cr_assert_eq(n, sent);
	cr_assert_eq(shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_release(c), 0);
	cr_assert_eq(shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT), 0);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}
