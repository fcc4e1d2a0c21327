/* SPDX-License-Identifier: MIT */
/*
 * Cross-process tests: real producer and consumer processes (xproc_peer,
 * fork+exec) on one queue file. Every message is tagged with its sequence
 * number and a checksum; each consumer checks no gap, no duplicate, no
 * corruption and the order, and reports how its stream ended. Every peer
 * has a watchdog (harness.c) and every test a criterion timeout.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define WATCHDOG_S	150	/* no peer outlives a broken test by more */
#define LINE		512

#include "peer_test.h"

static char qpath[4096];

static void mkq(uint64_t cap, uint32_t max)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = max };
	int err;

	snprintf(qpath, sizeof(qpath), "%s", h_path("q"));
	err = shmq_create(qpath, &cfg);
	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

static void expect_exit(struct h_peer *p, int code, int timeout_ms)
{
	int r = h_wait(p, timeout_ms);

	cr_assert_eq(r, 0, "peer %d did not exit within %d ms", (int)p->pid,
		     timeout_ms);
	cr_assert_eq(h_exit_code(p), code, "peer %d exited %d, want %d",
		     (int)p->pid, h_exit_code(p), code);
}

/* A consumer's last line: "end eof|died|count count=N next=S". */
struct end {
	char how[16];
	uint64_t count;
	uint64_t next;
};

static struct end expect_end(struct h_peer *p, int timeout_ms)
{
	char line[LINE] = "";
	struct end e;
	int r;

	memset(&e, 0, sizeof(e));
	/* "bad ..." and "end error=..." lines fail the test with their text. */
	for (;;) {
		r = h_readline(p, line, sizeof(line), timeout_ms);
		cr_assert_geq(r, 0, "consumer %d: no end line within %d ms (%s)",
			      (int)p->pid, timeout_ms,
			      r == -ETIMEDOUT ? "timed out" : "output ended");
		cr_assert(strncmp(line, "bad", 3) != 0, "consumer %d: %s",
			  (int)p->pid, line);
		if (!strncmp(line, "end", 3))
			break;
		fprintf(stderr, "[consumer %d] %s\n", (int)p->pid, line);
	}
	r = sscanf(line, "end %15s count=%" SCNu64 " next=%" SCNu64, e.how,
		   &e.count, &e.next);
	cr_assert_eq(r, 3, "consumer %d: \"%s\"", (int)p->pid, line);
	return e;
}

/* Start a consumer and wait until it is attached. */
static void start_consumer(struct h_peer *p, const char *const *extra,
			   uint64_t seed, uint32_t max)
{
	char s[32], m[32], line[LINE];
	const char *argv[32] = { "consume", qpath, "--seed", num(s, seed),
				 "--max", num(m, max) };
	int n = 6;

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	spawn(p, argv);
	expect_line(p, "ready", line, 10000);
}

static void start_producer(struct h_peer *p, uint64_t n, uint64_t seed,
			   uint32_t max, const char *const *extra)
{
	char ns[32], s[32], m[32];
	const char *argv[32] = { "produce", qpath, num(ns, n), num(s, seed),
				 "--max", num(m, max) };
	int k = 6;

	for (int i = 0; extra && extra[i]; i++)
		argv[k++] = extra[i];
	argv[k] = NULL;
	spawn(p, argv);
}

static struct shmq_stat *queue_stat(struct shmq **q)
{
	struct shmq_stat *st;
	int err = shmq_open(qpath, 0, NULL, q);

	cr_assert_eq(err, 0, "open: %s", shmq_strerror(err));
	err = shmq_stat_get(*q, &st);
	cr_assert_eq(err, 0, "stat_get: %s", shmq_strerror(err));
	return st;
}

TestSuite(xproc, .init = h_setup, .fini = h_teardown, .timeout = 120);

static void stream(int nconsumers, uint64_t n, uint64_t cap, uint32_t max,
		   uint64_t seed, const char *api)
{
	const char *pargs[] = { "--api", api, NULL };
	const char *cargs[3][3] = {
		{ "--api", "peek", NULL },
		{ "--api", "recv", NULL },
		{ "--api", "peek", NULL },
	};
	struct h_peer c[3], p;
	char line[LINE];

	mkq(cap, max);
	for (int i = 0; i < nconsumers; i++)
		start_consumer(&c[i], cargs[i], seed, max);
	start_producer(&p, n, seed, max, pargs);
	expect_line(&p, "ready", line, 10000);
	for (int i = 0; i < nconsumers; i++) {
		struct end e = expect_end(&c[i], 100000);

		cr_assert_str_eq(e.how, "eof", "consumer %d ended with %s", i,
				 e.how);
		cr_assert_eq(e.count, n, "consumer %d got %" PRIu64, i,
			     e.count);
		cr_assert_eq(e.next, n);
		expect_exit(&c[i], 0, 5000);
	}
	expect_line(&p, "closed", line, 5000);
	expect_exit(&p, 0, 5000);
}

Test(xproc, one_consumer_gets_a_million_random_size_messages_intact_in_order,
     .timeout = 120)
{
	stream(1, 1000000, 256 << 10, 256, 101, "mix");
}

Test(xproc, three_broadcast_consumers_each_get_a_million_messages_intact,
     .timeout = 150)
{
	stream(3, 1000000, 256 << 10, 256, 202, "mix");
}

Test(xproc, large_messages_up_to_the_maximum_cross_intact, .timeout = 90)
{
	stream(2, 6000, 1 << 20, 64 << 10, 303, "mix");
}

Test(xproc, consumers_drain_then_get_edied_when_the_producer_is_sigkilled,
     .timeout = 60)
{
	const char *pargs[] = { "--pause-after", "5000", NULL };
	struct h_peer c[2], p;
	struct shmq_stat *st;
	struct shmq *q;
	char line[LINE];
	uint64_t t0;

	mkq(64 << 10, 256);
	for (int i = 0; i < 2; i++)
		start_consumer(&c[i], NULL, 404, 256);
	start_producer(&p, 1000000, 404, 256, pargs);
	expect_line(&p, "paused sent=5000", line, 30000);
	t0 = h_now_ns();
	h_kill(&p, SIGKILL);
	expect_exit(&p, 128 + SIGKILL, 5000);
	for (int i = 0; i < 2; i++) {
		struct end e = expect_end(&c[i], 10000);

		cr_assert_str_eq(e.how, "died", "consumer %d ended with %s", i,
				 e.how);
		cr_assert_eq(e.count, 5000, "consumer %d got %" PRIu64, i,
			     e.count);
		expect_exit(&c[i], 0, 5000);
	}
	cr_assert_lt(h_now_ns() - t0, 5000000000ull,
		     "consumers took %" PRIu64 " ms to notice the death",
		     (h_now_ns() - t0) / 1000000);

	st = queue_stat(&q);
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_DIED,
		     "producer_state %u", st->producer_state);
	cr_assert_eq(st->next_seq, 5000);
	shmq_stat_free(st);
	shmq_close(q);
}

Test(xproc, consumers_get_a_clean_prefix_when_the_producer_dies_mid_stream,
     .timeout = 60)
{
	/* Three kills at different moments: mid-record is likely in one. */
	for (int round = 0; round < 3; round++) {
		const char *pargs[] = { "--api", "mix", NULL };
		struct h_peer c, p;
		char line[LINE], name[16];
		struct end e;
		uint64_t t0;

		snprintf(name, sizeof(name), "q%d", round);
		snprintf(qpath, sizeof(qpath), "%s", h_path(name));
		{
			struct shmq_config cfg = { .capacity = 64 << 10,
						   .max_message = 4096 };

			cr_assert_eq(shmq_create(qpath, &cfg), 0);
		}
		start_consumer(&c, NULL, 505 + round, 4096);
		start_producer(&p, 1000000000, 505 + round, 4096, pargs);
		expect_line(&p, "ready", line, 10000);
		h_sleep_ms(100 + 97 * round);
		t0 = h_now_ns();
		h_kill(&p, SIGKILL);
		expect_exit(&p, 128 + SIGKILL, 5000);
		e = expect_end(&c, 10000);
		cr_assert_str_eq(e.how, "died", "round %d: ended with %s",
				 round, e.how);
		cr_assert_gt(e.count, 0, "round %d: nothing got through",
			     round);
		cr_assert_lt(h_now_ns() - t0, 5000000000ull,
			     "round %d: %" PRIu64 " ms to notice the death",
			     round, (h_now_ns() - t0) / 1000000);
		expect_exit(&c, 0, 5000);
	}
}

Test(xproc, a_second_producer_process_is_refused_with_ebusy_naming_the_first,
     .timeout = 30)
{
	const char *pargs[] = { "--pause-after", "0", NULL };
	struct h_peer a, b;
	char line[LINE], pid[32];

	mkq(64 << 10, 256);
	start_producer(&a, 10, 606, 256, pargs);
	expect_line(&a, "paused", line, 10000);
	start_producer(&b, 10, 606, 256, NULL);
	expect_line(&b, "busy", line, 10000);
	snprintf(pid, sizeof(pid), "%d", (int)a.pid);
	cr_assert(strstr(line, pid) != NULL,
		  "refusal \"%s\" does not name pid %s", line, pid);
	expect_exit(&b, 4, 5000);
	h_kill(&a, SIGKILL);
	expect_exit(&a, 128 + SIGKILL, 5000);
}

Test(xproc, a_new_producer_takes_over_at_once_after_the_first_is_sigkilled,
     .timeout = 30)
{
	const char *pargs[] = { "--pause-after", "100", NULL };
	/* Across the first session's end (died), into the second. */
	const char *cargs[] = { "--expect-first", "0", "--ends", "2", NULL };
	struct h_peer a, b, c;
	char line[LINE];
	struct end e;

	mkq(64 << 10, 256);
	start_producer(&a, 1000, 707, 256, pargs);
	expect_line(&a, "paused sent=100", line, 10000);
	h_kill(&a, SIGKILL);
	expect_exit(&a, 128 + SIGKILL, 5000);
	/* No wait, no cleanup: the kernel dropped the dead one's lock. */
	start_producer(&b, 50, 707, 256, NULL);
	expect_line(&b, "ready", line, 5000);
	cr_assert(strstr(line, "first=100") != NULL,
		  "the new producer does not continue at 100: \"%s\"", line);
	expect_line(&b, "closed", line, 10000);
	expect_exit(&b, 0, 5000);
	start_consumer(&c, cargs, 707, 256);
	expect_line(&c, "session died count=100", line, 10000);
	e = expect_end(&c, 10000);
	cr_assert_str_eq(e.how, "eof");
	cr_assert_eq(e.count, 150);
	expect_exit(&c, 0, 5000);
}

Test(xproc, a_sigkilled_anonymous_consumer_stops_holding_the_producer_back,
     .timeout = 60)
{
	const char *held[] = { "--count", "10", "--hold", NULL };
	struct h_peer slow, fast, p;
	struct shmq_stat *st;
	struct shmq *q;
	char line[LINE];
	struct end e;

	mkq(16 << 10, 256);
	start_consumer(&slow, held, 808, 256);
	start_consumer(&fast, NULL, 808, 256);
	start_producer(&p, 200000, 808, 256, NULL);
	expect_line(&slow, "holding seq=10", line, 10000);
	/* While it lives it holds: the producer cannot get far. */
	h_sleep_ms(300);
	st = queue_stat(&q);
	cr_assert_lt(st->next_seq, 1000, "the producer passed a live holder "
		     "(next_seq %" PRIu64 ")", st->next_seq);
	shmq_stat_free(st);
	shmq_close(q);

	h_kill(&slow, SIGKILL);
	expect_exit(&slow, 128 + SIGKILL, 5000);
	expect_line(&p, "closed", line, 60000);
	expect_exit(&p, 0, 5000);
	e = expect_end(&fast, 10000);
	cr_assert_str_eq(e.how, "eof");
	cr_assert_eq(e.count, 200000);
	expect_exit(&fast, 0, 5000);
}

Test(xproc, a_sigkilled_named_consumer_resumes_right_after_its_last_release,
     .timeout = 60)
{
	const char *run1[] = { "--name", "n1", "--count", "3000", "--hold",
			       NULL };
	const char *run2[] = { "--name", "n1", "--count", "5000", "--pause",
			       "--expect-first", "3000", NULL };
	const char *run3[] = { "--name", "n1", "--expect-first", "8000",
			       NULL };
	const struct shmq_consumer_stat *cs = NULL;
	struct h_peer c, p;
	struct shmq_stat *st;
	struct shmq *q;
	char line[LINE];
	struct end e;

	mkq(16 << 10, 256);
	start_consumer(&c, run1, 909, 256);
	start_producer(&p, 20000, 909, 256, NULL);
	/* Released 0..2999, holds 3000 peeked and unreleased. */
	expect_line(&c, "holding seq=3000", line, 20000);
	h_kill(&c, SIGKILL);
	expect_exit(&c, 128 + SIGKILL, 5000);

	st = queue_stat(&q);
	for (uint32_t i = 0; i < st->nconsumers; i++)
		if (!strcmp(st->consumers[i].name, "n1"))
			cs = &st->consumers[i];
	cr_assert_not_null(cs, "the dead named consumer is not listed");
	cr_assert_eq(cs->alive, 0, "a SIGKILLed consumer shows alive");
	cr_assert_eq(cs->next_seq, 3000, "stat next_seq %" PRIu64,
		     cs->next_seq);
	shmq_stat_free(st);
	shmq_close(q);

	/* Released 3000..7999 and holds nothing. */
	start_consumer(&c, run2, 909, 256);
	expect_line(&c, "paused count=5000 next=8000", line, 20000);
	h_kill(&c, SIGKILL);
	expect_exit(&c, 128 + SIGKILL, 5000);

	start_consumer(&c, run3, 909, 256);
	e = expect_end(&c, 30000);
	cr_assert_str_eq(e.how, "eof");
	cr_assert_eq(e.count, 12000, "got %" PRIu64, e.count);
	cr_assert_eq(e.next, 20000);
	expect_exit(&c, 0, 5000);
	expect_line(&p, "closed", line, 5000);
	expect_exit(&p, 0, 5000);
}

static void fifo_epipe(int kill_it)
{
	const char *exits[] = { "--count", "100", NULL };
	const char *stays[] = { "--count", "100", "--pause", NULL };
	const char *pargs[] = { "--fifo", NULL };
	struct h_peer c, p;
	char line[LINE];
	uint64_t sent;

	mkq(16 << 10, 256);
	start_consumer(&c, kill_it ? stays : exits, 1010, 256);
	start_producer(&p, 1000000000, 1010, 256, pargs);
	expect_line(&p, "ready", line, 10000);
	if (kill_it) {
		expect_line(&c, "paused count=100", line, 10000);
		h_kill(&c, SIGKILL);
		expect_exit(&c, 128 + SIGKILL, 5000);
	} else {
		struct end e = expect_end(&c, 10000);

		cr_assert_str_eq(e.how, "count");
		expect_exit(&c, 0, 5000);
	}
	expect_line(&p, "epipe", line, 5000);
	cr_assert_eq(sscanf(line, "epipe sent=%" SCNu64, &sent), 1);
	cr_assert_geq(sent, 100, "EPIPE after only %" PRIu64 " messages",
		      sent);
	expect_exit(&p, 3, 5000);
}

Test(xproc, a_fifo_producer_gets_epipe_after_its_only_consumer_exits,
     .timeout = 30)
{
	fifo_epipe(0);
}

Test(xproc, a_fifo_producer_gets_epipe_after_its_only_consumer_is_sigkilled,
     .timeout = 30)
{
	fifo_epipe(1);
}

/* utime + stime of PID in clock ticks, from /proc/PID/stat. */
static uint64_t cpu_ticks(pid_t pid)
{
	unsigned long long ut = 0, stt = 0;
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	/* Fields after the ")" of comm: state is 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	cr_assert_not_null(p);
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			    "%*u %llu %llu", &ut, &stt), 2);
	return ut + stt;
}

static void expect_idle(struct h_peer *p, const char *who)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t t0 = cpu_ticks(p->pid), used;

	h_sleep_ms(1000);
	used = cpu_ticks(p->pid) - t0;
	cr_assert_lt(used, (uint64_t)hz / 5, "the %s used %" PRIu64 " of %ld "
		     "ticks in one second: it spins instead of sleeping", who,
		     used, hz);
}

Test(xproc, a_waiting_consumer_and_a_blocked_producer_sleep_instead_of_spinning,
     .timeout = 30)
{
	const char *pargs[] = { "--pause-after", "0", NULL };
	const char *held[] = { "--count", "0", "--hold", NULL };
	struct h_peer c, p, h, p2;
	char line[LINE];

	/* A consumer waiting on an empty ring with a live producer. */
	mkq(16 << 10, 256);
	start_producer(&p, 10, 1111, 256, pargs);
	expect_line(&p, "paused", line, 10000);
	start_consumer(&c, NULL, 1111, 256);
	h_sleep_ms(100);
	expect_idle(&c, "consumer waiting for data");
	h_kill(&c, SIGKILL);
	h_kill(&p, SIGKILL);
	expect_exit(&c, 128 + SIGKILL, 5000);
	expect_exit(&p, 128 + SIGKILL, 5000);

	/* A producer waiting for room behind a consumer that holds. */
	snprintf(qpath, sizeof(qpath), "%s", h_path("q2"));
	{
		struct shmq_config cfg = { .capacity = 16 << 10,
					   .max_message = 256 };

		cr_assert_eq(shmq_create(qpath, &cfg), 0);
	}
	start_consumer(&h, held, 1112, 256);
	start_producer(&p2, 100000, 1112, 256, NULL);
	expect_line(&h, "holding seq=0", line, 10000);
	h_sleep_ms(100);
	expect_idle(&p2, "producer waiting for room");
}
