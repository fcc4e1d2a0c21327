/* SPDX-License-Identifier: MIT */
/*
 * kill -9 torture and white-box kill points. A producer process
 * (torture_peer, kill-point build) is SIGKILLed at a random moment, or at
 * an exact KILL_POINT, under load, and restarted; two consumer processes
 * check every message's sequence and content across all the restarts.
 * Each restart must continue at or after the last message a send
 * acknowledged (nothing committed cut); at the end the consumers must
 * report 0 lost, 0 duplicated, 0 corrupt, and exit (0 hangs).
 * SHMQ_TEST_SCALE multiplies the cycles (soak: 50 for 10,000).
 * No wait here has a deadline of its own: each ends with the peer's line,
 * its exit, or its watchdog (WATCHDOG_S, 16 times what the longest test
 * takes under ASan on a loaded 2-core machine), so load makes a test
 * slower, not failed.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define WATCHDOG_S	240	/* no peer outlives a broken test by more */
#define LINE		256
#include "peer_test.h"

/* Longer than any peer lives: a wait ends by the peer, not the clock. */
#define HANG_MS		((WATCHDOG_S + 30) * 1000)

static uint64_t *progress;
static char qpath[4096], ppath[4096];
static uint64_t seed;
static uint64_t rng;
static uint64_t last_start;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned long scaled(unsigned long n)
{
	const char *s = getenv("SHMQ_TEST_SCALE");
	double v = s ? atof(s) : 1.0;

	return v > 0 ? (unsigned long)(n * v) : n;
}

static void setup_queue(void)
{
	struct shmq_config cfg = { .capacity = 65536, .max_message = 256 };
	int fd;

	rng = h_now_ns() | 1;
	seed = rnd();
	fprintf(stderr, "torture seed %#" PRIx64 "\n", rng);
	snprintf(qpath, sizeof(qpath), "%s", h_path("q"));
	snprintf(ppath, sizeof(ppath), "%s", h_path("progress"));
	cr_assert_eq(shmq_create(qpath, &cfg), 0);
	fd = open(ppath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(progress, MAP_FAILED);
	close(fd);
}

static void spawn_consumers(struct h_peer *c, int n)
{
	char seedbuf[32], line[LINE];

	num(seedbuf, seed);
	for (int i = 0; i < n; i++) {
		const char *argv[] = { "consume", qpath, seedbuf, NULL };

		spawn(&c[i], argv);
		expect_line(&c[i], "ready", line, HANG_MS);
	}
}

/*
 * One producer life: recover, report where it starts, send. Returns true
 * with the peer still running once it printed "start SEQ" and SEQ kept
 * every acknowledged message. With KILL_POINT_ARMED (SHMQ_KILL_AT set) the
 * peer may die before that line: shmq_producer_open syncs once in sync
 * modes 1 and 2, so "sync:after-data:1" and "sync:before-header:1" kill
 * it inside the open. Then this returns false and the caller checks that
 * SIGKILL, not an error, ended the peer.
 */
static bool start_producer(struct h_peer *p, int mode, const char *count,
			   bool kill_point_armed)
{
	char seedbuf[32], modebuf[8], line[LINE];
	const char *argv[] = { "produce", qpath, seedbuf, modebuf, ppath, count,
			       NULL };
	uint64_t start, acked = __atomic_load_n(progress, __ATOMIC_ACQUIRE);
	int r;

	num(seedbuf, seed);
	num(modebuf, (uint64_t)mode);
	spawn(p, argv);
	line[0] = '\0';
	r = h_expect(p, "start ", line, LINE, HANG_MS);
	if (r == -EPIPE && kill_point_armed)
		return false;
	cr_assert_geq(r, 0, "peer %d: no \"start \" line (%s); last line \"%s\"",
		      (int)p->pid, r == -ETIMEDOUT ? "a hang" : "its output ended",
		      line);
	start = strtoull(line + 6, NULL, 10);
	/*
	 * Every acknowledged send survived the crash. Each life may also
	 * have published one message whose send never returned.
	 */
	cr_assert_geq(start, acked, "restart at %" PRIu64 " but %" PRIu64
		      " were acknowledged: committed messages were cut",
		      start, acked);
	if (acked > last_start)
		last_start = acked;
	cr_assert_leq(start, last_start + 1, "restart at %" PRIu64 " after %"
		      PRIu64 " acknowledged", start, last_start);
	last_start = start;
	return true;
}

static void finish(struct h_peer *c, int n, unsigned long cycles)
{
	struct h_peer p;
	char line[LINE], count[32];
	uint64_t total = __atomic_load_n(progress, __ATOMIC_ACQUIRE) + 1000;

	num(count, total);
	start_producer(&p, SHMQ_SYNC_NONE, count, false);
	expect_line(&p, "done", line, HANG_MS);
	cr_assert_eq(h_wait(&p, HANG_MS), 0);
	for (int i = 0; i < n; i++) {
		unsigned long got, dup, gap, bad;

		expect_line(&c[i], "consumed ", line, HANG_MS);
		cr_assert_eq(sscanf(line, "consumed %lu dup %lu gap %lu corrupt %lu",
				    &got, &dup, &gap, &bad), 4, "%s", line);
		cr_assert_eq(dup + gap + bad, 0, "consumer %d: %s", i, line);
		cr_assert_eq(got, total, "consumer %d: %lu of %" PRIu64, i, got,
			     total);
		cr_assert_eq(h_wait(&c[i], HANG_MS), 0, "consumer %d hangs", i);
		cr_assert_eq(h_exit_code(&c[i]), 0);
	}
	printf("torture: %lu producer kills, %" PRIu64 " messages, 0 lost "
	       "committed, 0 dup, 0 corrupt, 0 hangs\n", cycles, total);
	fflush(stdout);
}

TestSuite(torture, .init = h_setup, .fini = h_teardown, .timeout = 300);

Test(torture, producer_sigkilled_at_random_moments_loses_and_duplicates_nothing)
{
	unsigned long cycles = scaled(200);
	struct h_peer c[2], p;

	setup_queue();
	spawn_consumers(c, 2);
	for (unsigned long i = 0; i < cycles; i++) {
		start_producer(&p, (int)(i % 3), NULL, false);
		h_sleep_ms((unsigned)(rnd() % 12));
		h_kill(&p, SIGKILL);
		cr_assert_eq(h_wait(&p, HANG_MS), 0);
	}
	finish(c, 2, cycles);
}

/* Every white-box kill point of send, commit, publish, sync and recovery. */
static const char *const points[] = {
	"send:after-payload", "commit:before-seal", "publish:before",
	"publish:after", "sync:after-data", "sync:before-header",
	"recover:after-walk", "recover:after-cut", "recover:after-clamp",
};

Test(torture, producer_killed_at_every_kill_point_loses_and_duplicates_nothing)
{
	unsigned long rounds = scaled(8), kills = 0, in_open = 0;
	size_t np = sizeof(points) / sizeof(points[0]);
	struct h_peer c[2], p;
	char at[64];

	setup_queue();
	spawn_consumers(c, 2);
	for (unsigned long r = 0; r < rounds; r++) {
		for (size_t i = 0; i < np; i++) {
			bool rec = !strncmp(points[i], "recover:", 8);
			int mode = 1 + (int)(rnd() % 2);	/* syncs happen */

			/*
			 * Round 0 kills at the first pass: for the sync
			 * points that is the sync inside shmq_producer_open.
			 */
			snprintf(at, sizeof(at), "%s:%u", points[i],
				 rec || r == 0 ? 1u : 1u + (unsigned)(rnd() % 200));
			setenv("SHMQ_KILL_AT", at, 1);
			if (rec) {
				char seedbuf[32], modebuf[8];
				const char *argv[] = { "produce", qpath, seedbuf,
						       modebuf, ppath, NULL };

				num(seedbuf, seed);
				num(modebuf, (uint64_t)mode);
				spawn(&p, argv);
			} else if (!start_producer(&p, mode, NULL, true)) {
				in_open++;
			}
			unsetenv("SHMQ_KILL_AT");
			cr_assert_eq(h_wait(&p, HANG_MS), 0, "%s: no kill", at);
			cr_assert_eq(h_exit_code(&p), 128 + SIGKILL,
				     "%s never reached: exit %d", at,
				     h_exit_code(&p));
			kills++;
		}
	}
	printf("torture: %lu of %lu kill-point kills inside shmq_producer_open\n",
	       in_open, kills);
	finish(c, 2, kills);
}

/* F8: a creator killed before "ready" leaves a file nobody accepts. */
Test(torture, f8_a_creator_killed_before_ready_leaves_a_file_every_attacher_refuses,
     .timeout = 120)
{
	const char *path = h_path("half");
	const char *argv[] = { "create", path, NULL };
	struct shmq *q;
	struct h_peer p;
	uint64_t t0;

	setenv("SHMQ_KILL_AT", "create:before-ready", 1);
	spawn(&p, argv);
	unsetenv("SHMQ_KILL_AT");
	cr_assert_eq(h_wait(&p, HANG_MS), 0);
	cr_assert_eq(h_exit_code(&p), 128 + SIGKILL);
	cr_assert_eq(access(path, F_OK), 0, "the half-made file is there");
	t0 = h_now_ns();
	cr_assert_eq(shmq_open(path, 0, NULL, &q), -EBADMSG);
	/* Attach gives up after 2 s; this only tells that wait from a hang. */
	cr_assert_lt(h_now_ns() - t0, 60000000000ull, "bounded wait");
	cr_assert(strstr(shmq_errdetail(), "ready") != NULL, "%s",
		  shmq_errdetail());
}
