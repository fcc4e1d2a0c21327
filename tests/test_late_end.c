/* SPDX-License-Identifier: MIT */
/*
 * A close without room for its END record (a lagging consumer holds the
 * ring full) is told by prod_state alone (S1). A consumer about to sleep
 * read prod_state before data_futex: a close between the two loads left
 * it asleep on the new futex value for a whole slice (100 ms), so a wait
 * shorter than that timed out on a closed queue. The kill-point build
 * runs the close exactly there, in this process, through the test hook
 * at "consumer:wait-before-futex-load" (the load of data_futex); the wait
 * must end with SHMQ_EOF without sleeping ("consumer:wait-sleep"). With
 * the prod_state check before that point, it slept until its deadline.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "shmq.h"
#include "harness.h"

/* Test-only, defined by the kill-point build (lib/killpoint.c). */
extern void (*shmqi_kill_hook)(const char *name);

TestSuite(late_end, .init = h_setup, .fini = h_teardown, .timeout = 60);

static struct shmq_producer *closing;
static int hook_calls, sleeps_after;

static void close_here(const char *name)
{
	if (!strcmp(name, "consumer:wait-sleep") && hook_calls)
		sleeps_after++;
	if (strcmp(name, "consumer:wait-before-futex-load") || !closing)
		return;
	hook_calls++;
	cr_assert_eq(shmq_producer_close(closing), 0);
	closing = NULL;
}

Test(late_end, close_without_end_between_state_and_futex_loads)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 256,
				   .when_full = SHMQ_WHEN_FULL_BLOCK };
	struct shmq_consumer *a, *b;
	struct shmq_producer *p;
	struct shmq_msg m;
	struct shmq *q;
	char buf[256] = "x";
	int sent = 0, got = 0;
	ssize_t n;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &a), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &b), 0);	/* never reads */
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	/* Fill the ring: B holds it, so the close finds no room for END. */
	while (shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT) == 0)
		sent++;
	cr_assert_gt(sent, 4);
	while (got < sent &&
	       shmq_recv(a, buf, sizeof(buf), &m, SHMQ_NOWAIT) >= 0)
		got++;
	cr_assert_eq(got, sent);
	/*
	 * A short wait probes liveness; within LIVE_CHECK_NS (10 ms) the
	 * next wait skips that probe, so only the state tells of the close.
	 * 50 ms: less than the 100 ms slice the old order slept.
	 */
	n = shmq_recv(a, buf, sizeof(buf), &m, 1000000);
	cr_assert_eq(n, -ETIMEDOUT);
	closing = p;
	shmqi_kill_hook = close_here;
	n = shmq_recv(a, buf, sizeof(buf), &m, 50 * 1000000LL);
	shmqi_kill_hook = NULL;
	cr_assert_eq(hook_calls, 1, "the wait did not reach its futex load");
	cr_assert_eq(n, SHMQ_EOF, "a wait across the close: %zd (%s), not EOF",
		     n, shmq_strerror((int)n));
	/* Not by a sleep to the deadline: it knew at once. */
	cr_assert_eq(sleeps_after, 0, "the consumer slept %d times on a "
		     "closed queue", sleeps_after);
	shmq_consumer_close(a);
	shmq_consumer_close(b);
	shmq_close(q);
}
