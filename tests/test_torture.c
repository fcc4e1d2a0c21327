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

#define WATCHDOG_S	240
#define LINE		256

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

static void expect_line(struct h_peer *p, const char *prefix, char *line)
{
	int r = h_expect(p, prefix, line, LINE, 20000);

	cr_assert_geq(r, 0, "peer %d: no \"%s\" line (%s)", (int)p->pid, prefix,
		      r == -ETIMEDOUT ? "timed out: a hang" : "output ended");
}

static void spawn_consumers(struct h_peer *c, int n)
{
	char seedbuf[32], line[LINE];

	snprintf(seedbuf, sizeof(seedbuf), "%" PRIu64, seed);
	for (int i = 0; i < n; i++) {
		const char *argv[] = { "consume", qpath, seedbuf, NULL };

		cr_assert_eq(h_spawn(&c[i], WATCHDOG_S, argv), 0);
		expect_line(&c[i], "ready", line);
	}
}

/*
 * One producer life: recover, report where it starts, send. Returns the
 * peer still running (or, with KILL_AT set, killed at that point).
 */
static uint64_t start_producer(struct h_peer *p, int mode, const char *count)
{
	char seedbuf[32], modebuf[8], line[LINE];
	const char *argv[] = { "produce", qpath, seedbuf, modebuf, ppath, count,
			       NULL };
	uint64_t start, acked = __atomic_load_n(progress, __ATOMIC_ACQUIRE);

	snprintf(seedbuf, sizeof(seedbuf), "%" PRIu64, seed);
	snprintf(modebuf, sizeof(modebuf), "%d", mode);
	cr_assert_eq(h_spawn(p, WATCHDOG_S, argv), 0);
	expect_line(p, "start ", line);
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
	return start;
}

static void finish(struct h_peer *c, int n, unsigned long cycles)
{
	struct h_peer p;
	char line[LINE], count[32];
	uint64_t total = __atomic_load_n(progress, __ATOMIC_ACQUIRE) + 1000;

	snprintf(count, sizeof(count), "%" PRIu64, total);
	start_producer(&p, SHMQ_SYNC_NONE, count);
	expect_line(&p, "done", line);
	cr_assert_eq(h_wait(&p, 20000), 0);
	for (int i = 0; i < n; i++) {
		unsigned long got, dup, gap, bad;

		expect_line(&c[i], "consumed ", line);
		cr_assert_eq(sscanf(line, "consumed %lu dup %lu gap %lu corrupt %lu",
				    &got, &dup, &gap, &bad), 4, "%s", line);
		cr_assert_eq(dup + gap + bad, 0, "consumer %d: %s", i, line);
		cr_assert_eq(got, total, "consumer %d: %lu of %" PRIu64, i, got,
			     total);
		cr_assert_eq(h_wait(&c[i], 20000), 0, "consumer %d hangs", i);
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
		start_producer(&p, (int)(i % 3), NULL);
		h_sleep_ms((unsigned)(rnd() % 12));
		h_kill(&p, SIGKILL);
		cr_assert_eq(h_wait(&p, 10000), 0);
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
	unsigned long rounds = scaled(8), kills = 0;
	size_t np = sizeof(points) / sizeof(points[0]);
	struct h_peer c[2], p;
	char at[64];

	setup_queue();
	spawn_consumers(c, 2);
	for (unsigned long r = 0; r < rounds; r++) {
		for (size_t i = 0; i < np; i++) {
			bool rec = !strncmp(points[i], "recover:", 8);
			int mode = 1 + (int)(rnd() % 2);	/* syncs happen */

			snprintf(at, sizeof(at), "%s:%u", points[i],
				 rec ? 1u : 1u + (unsigned)(rnd() % 200));
			setenv("SHMQ_KILL_AT", at, 1);
			if (rec) {
				char seedbuf[32], modebuf[8];
				const char *argv[] = { "produce", qpath, seedbuf,
						       modebuf, ppath, NULL };

				snprintf(seedbuf, sizeof(seedbuf), "%" PRIu64, seed);
				snprintf(modebuf, sizeof(modebuf), "%d", mode);
				cr_assert_eq(h_spawn(&p, WATCHDOG_S, argv), 0);
			} else {
				start_producer(&p, mode, NULL);
			}
			unsetenv("SHMQ_KILL_AT");
			cr_assert_eq(h_wait(&p, 20000), 0, "%s: no kill", at);
			cr_assert_eq(h_exit_code(&p), 128 + SIGKILL,
				     "%s never reached: exit %d", at,
				     h_exit_code(&p));
			kills++;
		}
	}
	finish(c, 2, kills);
}

/* F8: a creator killed before "ready" leaves a file nobody accepts. */
Test(torture, f8_a_creator_killed_before_ready_leaves_a_file_every_attacher_refuses,
     .timeout = 30)
{
	const char *path = h_path("half");
	const char *argv[] = { "create", path, NULL };
	struct shmq *q;
	struct h_peer p;
	uint64_t t0;

	setenv("SHMQ_KILL_AT", "create:before-ready", 1);
	cr_assert_eq(h_spawn(&p, 30, argv), 0);
	unsetenv("SHMQ_KILL_AT");
	cr_assert_eq(h_wait(&p, 10000), 0);
	cr_assert_eq(h_exit_code(&p), 128 + SIGKILL);
	cr_assert_eq(access(path, F_OK), 0, "the half-made file is there");
	t0 = h_now_ns();
	cr_assert_eq(shmq_open(path, 0, NULL, &q), -EBADMSG);
	cr_assert_lt(h_now_ns() - t0, 5000000000ull, "bounded wait");
	cr_assert(strstr(shmq_errdetail(), "ready") != NULL, "%s",
		  shmq_errdetail());
}
