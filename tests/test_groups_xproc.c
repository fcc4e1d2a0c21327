/* SPDX-License-Identifier: MIT */
/*
 * Cross-process tests of issue 4: a group of real member processes, a
 * broadcast consumer and an observer on one stream; members SIGKILLed at
 * random moments; a slow observer lapped by the producer; eviction of a
 * SIGSTOPped consumer. Members log every message they got (seq and the
 * redelivered flag) to a file before releasing it, so that a kill can
 * only turn a message into a flagged redelivery, never hide a loss.
 * Every peer has a watchdog (harness.c) and every test a timeout.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define WATCHDOG_S	150
#define LINE		512

#include "peer_test.h"

#define REDELIVERED_BIT	(1ull << 63)

static char qpath[4096];

static void mkq(uint64_t cap, uint32_t max, uint32_t when_full,
		uint32_t evict_ms)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = max,
				   .when_full = when_full,
				   .evict_after_ms = evict_ms };
	int err;

	snprintf(qpath, sizeof(qpath), "%s", h_path("q"));
	unlink(qpath);
	err = shmq_create(qpath, &cfg);
	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

/* "end HOW count=N next=S [lost=L redelivered=R]" or "end error=...". */
struct end {
	char line[LINE];
	char how[32];
	uint64_t count, next, lost, redelivered;
};

static struct end read_end(struct h_peer *p, int timeout_ms)
{
	struct end e;

	memset(&e, 0, sizeof(e));
	expect_line(p, "end", e.line, timeout_ms);
	sscanf(e.line, "end %31s count=%" SCNu64 " next=%" SCNu64 " lost=%"
	       SCNu64 " redelivered=%" SCNu64, e.how, &e.count, &e.next,
	       &e.lost, &e.redelivered);
	return e;
}

static void start_consumer(struct h_peer *p, uint64_t seed, uint32_t max,
			   const char *const *extra)
{
	char s[32], m[32], line[LINE];
	const char *argv[40] = { "consume", qpath, "--seed", num(s, seed),
				 "--max", num(m, max) };
	int n = 6;

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	spawn(p, argv);
	expect_line(p, "ready", line, 10000);
}

static void start_producer(struct h_peer *p, uint64_t n, uint64_t seed,
			   uint32_t max)
{
	char ns[32], s[32], m[32], line[LINE];
	const char *argv[] = { "produce", qpath, num(ns, n), num(s, seed),
			       "--max", num(m, max), NULL };

	spawn(p, argv);
	expect_line(p, "ready", line, 10000);
}

static void expect_exit_ok(struct h_peer *p, int timeout_ms)
{
	int r = h_wait(p, timeout_ms);

	cr_assert_eq(r, 0, "peer %d did not exit within %d ms", (int)p->pid,
		     timeout_ms);
	cr_assert_eq(h_exit_code(p), 0, "peer %d exited %d", (int)p->pid,
		     h_exit_code(p));
}

/* What the slot table says, for the message of a failed test. */
static void describe_queue(char *buf, size_t cap)
{
	struct shmq_stat *st;
	struct shmq *q;
	size_t off = 0;

	buf[0] = '\0';
	if (shmq_open(qpath, 0, NULL, &q) < 0)
		return;
	if (shmq_stat_get(q, &st) == 0) {
		off += (size_t)snprintf(buf + off, cap - off,
			"sent %" PRIu64 ", write_pos %" PRIu64 ";",
			st->messages, st->write_pos);
		for (uint32_t i = 0; i < st->nconsumers && off < cap; i++) {
			const struct shmq_consumer_stat *c = &st->consumers[i];

			off += (size_t)snprintf(buf + off, cap - off,
				" [slot %u kind %u alive %d holding %d claimed %d"
				" pos %" PRIu64 " next_seq %" PRIu64 "]",
				c->slot, c->kind, c->alive, c->holding,
				c->claimed, c->position, c->next_seq);
		}
		shmq_stat_free(st);
	}
	shmq_close(q);
}

static uint64_t messages_sent(void)
{
	struct shmq_stat *st;
	struct shmq *q;
	uint64_t n = 0;

	if (shmq_open(qpath, 0, NULL, &q) < 0)
		return 0;
	if (shmq_stat_get(q, &st) == 0) {
		n = st->messages;
		shmq_stat_free(st);
	}
	shmq_close(q);
	return n;
}

/*
 * Wait for the producer's "closed" line. A producer that sends nothing
 * for STALL_MS while its consumers are alive is stuck: fail at once with
 * the slot table, rather than at the end of a long timeout.
 */
static void wait_producer(struct h_peer *p, int total_ms, int stall_ms,
			  const char *what)
{
	uint64_t deadline = h_now_ns() + (uint64_t)total_ms * 1000000u;
	uint64_t last = messages_sent(), since = h_now_ns();
	char line[LINE], desc[2048];

	while (h_now_ns() < deadline) {
		int r = h_expect(p, "closed", line, LINE, 250);
		uint64_t now_sent;

		if (r >= 0)
			return;
		cr_assert_eq(r, -ETIMEDOUT, "%s: the producer's output ended "
			     "without \"closed\"", what);
		now_sent = messages_sent();
		if (now_sent != last) {
			last = now_sent;
			since = h_now_ns();
		} else if (h_now_ns() - since > (uint64_t)stall_ms * 1000000u) {
			describe_queue(desc, sizeof(desc));
			cr_assert_fail("%s: the producer is stuck: no message "
				       "sent for %d ms. %s", what, stall_ms,
				       desc);
		}
	}
	describe_queue(desc, sizeof(desc));
	cr_assert_fail("%s: the producer did not finish within %d ms. %s",
		       what, total_ms, desc);
}

/*
 * Add the log of one member to COUNT/FLAGGED (per sequence number).
 * Returns how many records it held.
 */
static uint64_t read_log(const char *path, uint64_t n, uint8_t *count,
			 uint8_t *flagged)
{
	uint64_t rec[4096], total = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;	/* killed before its first message */
	while ((r = read(fd, rec, sizeof(rec))) > 0) {
		cr_assert_eq(r % 8, 0, "%s: torn record", path);
		for (ssize_t i = 0; i < r / 8; i++) {
			uint64_t seq = rec[i] & ~REDELIVERED_BIT;

			cr_assert_lt(seq, n, "%s: seq %" PRIu64 " never sent",
				     path, seq);
			if (count[seq] < 255)
				count[seq]++;
			if ((rec[i] & REDELIVERED_BIT) && flagged[seq] < 255)
				flagged[seq]++;
			total++;
		}
	}
	close(fd);
	return total;
}

/*
 * The group's contract: every message at least once; a message delivered
 * more than once was flagged redelivered every time but (at most) once.
 */
static void check_union(const char *what, uint64_t n, const uint8_t *count,
			const uint8_t *flagged, uint64_t *dups)
{
	uint64_t missing = 0, unflagged = 0, first_missing = 0, bad = 0;

	for (uint64_t s = 0; s < n; s++) {
		if (!count[s] && !missing++)
			first_missing = s;
		if (count[s] - flagged[s] > 1 && !unflagged++)
			bad = s;
		*dups += count[s] > 1 ? count[s] - 1u : 0u;
	}
	cr_assert_eq(missing, 0, "%s: %" PRIu64 " messages never delivered, "
		     "the first is seq %" PRIu64, what, missing, first_missing);
	cr_assert_eq(unflagged, 0, "%s: %" PRIu64 " messages delivered twice "
		     "without the redelivered flag, the first is seq %" PRIu64
		     " (%u times, %u flagged)", what, unflagged, bad,
		     count[bad], flagged[bad]);
}

TestSuite(gxproc, .init = h_setup, .fini = h_teardown, .timeout = 120);

Test(gxproc, a_group_of_three_a_broadcast_consumer_and_an_observer_share_a_million_messages,
     .timeout = 150)
{
	const uint64_t n = 1000000, seed = 0x6ab;
	const uint32_t max = 200;
	struct h_peer prod, bc, obs, mem[3];
	const char *api[3] = { "peek", "recv", "peek" };
	char logs[3][4096];
	uint8_t *count = calloc(n, 1), *flagged = calloc(n, 1);
	uint64_t logged = 0, reported = 0, dups = 0, redelivered = 0;
	struct end e;

	cr_assert(count && flagged);
	/* 64 KiB holds about 500 messages: the observer gets lapped. */
	mkq(1 << 16, max, SHMQ_WHEN_FULL_BLOCK, 0);
	for (int i = 0; i < 3; i++) {
		snprintf(logs[i], sizeof(logs[i]), "%s", h_path("m0.log"));
		logs[i][strlen(logs[i]) - 5] = (char)('0' + i);
		const char *extra[] = { "--group", "g", "--log", logs[i],
					"--api", api[i], NULL };

		start_consumer(&mem[i], seed, max, extra);
	}
	start_consumer(&bc, seed, max, NULL);
	const char *oextra[] = { "--observe", "--slow-us", "3000",
				 "--slow-every", "5000", NULL };

	start_consumer(&obs, seed, max, oextra);
	start_producer(&prod, n, seed, max);

	wait_producer(&prod, 90000, 5000, "a million messages");
	expect_exit_ok(&prod, 5000);

	e = read_end(&bc, 30000);
	cr_assert_str_eq(e.how, "eof", "broadcast: %s", e.line);
	cr_assert_eq(e.count, n, "broadcast got %" PRIu64, e.count);

	e = read_end(&obs, 30000);
	cr_assert_str_eq(e.how, "eof", "observer: %s", e.line);
	cr_log_info("observer: received %" PRIu64 ", lost %" PRIu64,
		    e.count, e.lost);
	cr_assert_eq(e.count + e.lost, n, "observer: received %" PRIu64
		     " + lost %" PRIu64 " != %" PRIu64, e.count, e.lost, n);
	cr_expect_gt(e.lost, 0, "the observer was never lapped");

	for (int i = 0; i < 3; i++) {
		e = read_end(&mem[i], 30000);
		cr_assert_str_eq(e.how, "eof", "member %d: %s", i, e.line);
		reported += e.count;
		redelivered += e.redelivered;
		logged += read_log(logs[i], n, count, flagged);
		expect_exit_ok(&mem[i], 5000);
	}
	expect_exit_ok(&bc, 5000);
	expect_exit_ok(&obs, 5000);
	cr_assert_eq(logged, reported);
	check_union("group g", n, count, flagged, &dups);
	cr_expect_eq(redelivered, 0, "no member died, yet %" PRIu64
		     " were redelivered", redelivered);
	cr_assert_eq(logged, n, "%" PRIu64 " deliveries for %" PRIu64
		     " messages", logged, n);
	free(count);
	free(flagged);
}

/* Poll until the file holds at least BYTES, the peer ends, or MS pass. */
static int wait_log(const char *path, off_t bytes, struct h_peer *p, int ms)
{
	uint64_t deadline = h_now_ns() + (uint64_t)ms * 1000000u;
	struct stat sb;

	while (h_now_ns() < deadline) {
		if (stat(path, &sb) == 0 && sb.st_size >= bytes)
			return 1;
		siginfo_t si = { 0 };

		/* Ended on its own? Look without reaping it. */
		if (waitid(P_PID, (id_t)p->pid, &si,
			   WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
			return 0;
		usleep(100);
	}
	return 0;
}

/* Any claims left in the group after every member ended, for diagnosis. */
static uint64_t drain_leftovers(uint64_t n, uint8_t *count, uint8_t *flagged)
{
	struct shmq_consumer_opts o = { .kind = SHMQ_CONSUMER_GROUP,
					.name = "g" };
	struct shmq_consumer *c;
	struct shmq *q;
	struct shmq_msg m;
	uint8_t buf[256];
	uint64_t got = 0;

	if (shmq_open(qpath, 0, NULL, &q) < 0)
		return 0;
	if (shmq_consumer_open(q, &o, &c) == 0) {
		while (shmq_recv(c, buf, sizeof(buf), &m, 200000000ll) >= 0) {
			if (m.seq < n) {
				count[m.seq]++;
				flagged[m.seq] += !!(m.flags & SHMQ_MSG_REDELIVERED);
			}
			got++;
		}
		shmq_consumer_close(c);
	}
	shmq_close(q);
	return got;
}

Test(gxproc, a_member_sigkilled_at_a_random_moment_loses_nothing_fifty_times,
     .timeout = 150)
{
	const uint64_t n = 3000;
	const uint32_t max = 64;
	uint64_t kills = 0, dups = 0, t0 = h_now_ns();
	unsigned int rnd = (unsigned int)getpid() * 2654435761u;

	cr_log_info("random seed %u", rnd);
	for (int round = 0; round < 50; round++) {
		struct h_peer prod, mem[3];
		char logs[3][4096], what[64], hold[3][16];
		uint8_t count[n], flagged[n];
		uint64_t seed = 0x1000 + (uint64_t)round, leftovers;
		int victim, killed = 0;
		off_t at;

		memset(count, 0, sizeof(count));
		memset(flagged, 0, sizeof(flagged));
		/* 8 KiB: the producer wraps many times and waits on the group. */
		mkq(8192, max, SHMQ_WHEN_FULL_BLOCK, 0);
		rnd = rnd * 1103515245u + 12345u;
		victim = (int)((rnd >> 16) % 3);
		for (int i = 0; i < 3; i++) {
			snprintf(logs[i], sizeof(logs[i]), "%s/r%d-m%d.log",
				 h_dir(), round, i);
			rnd = rnd * 1103515245u + 12345u;
			snprintf(hold[i], sizeof(hold[i]), "%u", (rnd >> 16) % 150);
			const char *extra[] = { "--group", "g", "--log", logs[i],
						"--hold-us", hold[i], NULL };

			start_consumer(&mem[i], seed, max, extra);
		}
		start_producer(&prod, n, seed, max);
		/* Somewhere in its first third: while holding or idle. */
		rnd = rnd * 1103515245u + 12345u;
		at = (off_t)(1 + (rnd >> 16) % 300) * 8;
		if (wait_log(logs[victim], at, &mem[victim], 10000)) {
			rnd = rnd * 1103515245u + 12345u;
			usleep((rnd >> 16) % 300);
			h_kill(&mem[victim], SIGKILL);
			killed = 1;
			kills++;
		}
		snprintf(what, sizeof(what), "round %d", round);
		wait_producer(&prod, 20000, 3000, what);
		expect_exit_ok(&prod, 5000);
		for (int i = 0; i < 3; i++) {
			if (i == victim && killed) {
				h_wait(&mem[i], 5000);
				cr_assert_eq(h_exit_code(&mem[i]), 128 + SIGKILL);
				continue;
			}
			struct end e = read_end(&mem[i], 20000);

			cr_assert_str_eq(e.how, "eof", "round %d member %d: %s",
					 round, i, e.line);
			expect_exit_ok(&mem[i], 5000);
		}
		for (int i = 0; i < 3; i++)
			read_log(logs[i], n, count, flagged);
		/*
		 * The victim died long before the end of the stream, so a
		 * survivor went idle after its death and should have adopted
		 * its claim. A claim still in the group now was stranded.
		 */
		leftovers = drain_leftovers(n, count, flagged);
		cr_expect_eq(leftovers, 0, "round %d: %" PRIu64 " messages were "
			     "left claimed by the dead member after every "
			     "survivor got EOF", round, leftovers);
		snprintf(what, sizeof(what), "round %d (victim %d%s)", round,
			 victim, killed ? ", killed" : ", not killed");
		check_union(what, n, count, flagged, &dups);
		for (int i = 0; i < 3; i++)
			unlink(logs[i]);
	}
	cr_log_info("%" PRIu64 " kills, %" PRIu64 " redeliveries, %" PRIu64
		    " ms", kills, dups, (h_now_ns() - t0) / 1000000);
	cr_assert_geq(kills, 40, "only %" PRIu64 " of 50 rounds killed a member",
		      kills);
}

Test(gxproc, a_slow_observer_on_an_overwrite_queue_counts_every_lost_message)
{
	const uint64_t n = 30000, seed = 0x0b5;
	const uint32_t max = 100;
	struct h_peer prod, obs;
	char line[LINE];
	const char *extra[] = { "--observe", "--slow-us", "200", NULL };
	struct end e;

	mkq(8192, max, SHMQ_WHEN_FULL_OVERWRITE, 0);
	start_consumer(&obs, seed, max, extra);
	start_producer(&prod, n, seed, max);
	expect_line(&prod, "closed", line, 30000);
	expect_exit_ok(&prod, 5000);
	e = read_end(&obs, 30000);
	cr_assert_str_eq(e.how, "eof", "observer: %s", e.line);
	cr_log_info("observer: received %" PRIu64 ", lost %" PRIu64,
		    e.count, e.lost);
	cr_assert_gt(e.lost, 0, "a producer that never waits lapped nobody");
	cr_assert_eq(e.count + e.lost, n, "received %" PRIu64 " + lost %"
		     PRIu64 " != %" PRIu64, e.count, e.lost, n);
	expect_exit_ok(&obs, 5000);
}

/* Wait until the producer has sent a ring's worth of records more. */
static int resumed_past_a_ring(int timeout_ms)
{
	struct shmq *q;
	struct shmq_stat *st;
	uint64_t start = 0, need = 0, now;
	int ret = -ETIMEDOUT;

	if (shmq_open(qpath, SHMQ_OPEN_RDONLY, NULL, &q) < 0)
		return -EIO;
	for (int ms = 0; ms < timeout_ms; ms += 10) {
		if (shmq_stat_get(q, &st) < 0)
			break;
		now = st->messages;
		if (!need) {
			start = now;
			/* Records of at most max + header bytes: a ring's worth. */
			need = st->capacity / (st->max_message + 24) + 1;
		}
		shmq_stat_free(st);
		if (now - start >= need) {
			ret = 0;
			break;
		}
		h_sleep_ms(10);
	}
	shmq_close(q);
	return ret;
}

/*
 * Eviction: a consumer is SIGSTOPped with the ring full behind it. After
 * evict_after_ms the producer must carry on to the end; after SIGCONT the
 * consumer's next call says SHMQ_EVICTED (-ECONNRESET), never garbage.
 * WITH_FAST adds a consumer that keeps up; IDLE stops the victim while it
 * waits for data in a blocking peek instead of between two messages.
 */
static void evict_scenario(int with_fast, int idle)
{
	const uint64_t n = 5000, seed = 0xe71;
	const uint32_t max = 64;
	struct h_peer prod, slow, fast;
	const char *sextra[] = { "--slow-us", "1000", NULL };
	char line[LINE], want[32];
	uint64_t t0;
	struct end e;

	mkq(8192, max, SHMQ_WHEN_FULL_BLOCK, 300);
	start_consumer(&slow, seed, max, idle ? NULL : sextra);
	if (with_fast)
		start_consumer(&fast, seed, max, NULL);
	if (idle) {
		h_sleep_ms(50);		/* asleep in shmq_peek(FOREVER) */
		h_kill(&slow, SIGSTOP);
	}
	start_producer(&prod, n, seed, max);
	if (!idle) {
		h_sleep_ms(100);	/* it has read a few, the ring is full */
		h_kill(&slow, SIGSTOP);
	}
	t0 = h_now_ns();
	line[0] = '\0';
	int r;

	if (with_fast) {
		r = h_expect(&prod, "closed", line, LINE, 10000);
		cr_expect_geq(r, 0, "the producer did not finish within 10 s of "
			      "SIGSTOPping its slow consumer (eviction after 300 ms)");
		cr_log_info("producer finished %" PRIu64 " ms after the SIGSTOP",
			    (h_now_ns() - t0) / 1000000);
	} else {
		/*
		 * Its only holder evicted, a block-policy queue is like one
		 * whose last consumer left: the producer resumes and keeps up
		 * to a ring for the next consumer (docs/concurrency.md), so
		 * "resumes" means: sends more than a whole ring past the stop.
		 */
		r = resumed_past_a_ring(10000);
		cr_expect_geq(r, 0, "the producer did not resume within 10 s of "
			      "SIGSTOPping its only consumer (eviction after 300 ms)");
	}
	h_kill(&slow, SIGCONT);
	e = read_end(&slow, 10000);
	snprintf(want, sizeof(want), "error=%d", SHMQ_EVICTED);
	cr_expect_str_eq(e.how, want, "the evicted consumer ended with \"%s\"",
			 e.line);
	if (with_fast) {
		e = read_end(&fast, 20000);
		cr_expect_str_eq(e.how, "eof", "the fast consumer: %s", e.line);
		cr_expect_eq(e.count, n);
	}
	cr_assert_geq(r, 0);
}

Test(gxproc, a_sigstopped_sole_consumer_is_evicted_and_the_producer_finishes,
     .timeout = 60)
{
	evict_scenario(0, 0);
}

Test(gxproc, a_sigstopped_slow_consumer_is_evicted_while_a_fast_one_gets_all,
     .timeout = 60)
{
	evict_scenario(1, 0);
}

Test(gxproc, a_consumer_sigstopped_inside_a_blocking_peek_is_told_it_was_evicted,
     .timeout = 60)
{
	evict_scenario(1, 1);
}
