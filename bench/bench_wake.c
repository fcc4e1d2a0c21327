/* SPDX-License-Identifier: MIT */
/*
 * Wake-up latency (issue 14): how long from a producer's shmq_send() to
 * a sleeping consumer having the message, by the futex path (a blocking
 * shmq_recv) and by the descriptor path (epoll_wait on shmq_consumer_fd,
 * then shmq_recv with SHMQ_NOWAIT), in the same run, alternating rounds.
 * The producer (a forked process) sends its CLOCK_MONOTONIC time every
 * GAP_US microseconds, long enough for the consumer to be asleep (the
 * futex path spins 50 µs first); the consumer subtracts it on receipt.
 * Also the producer's cost per send with an armed poller (the doorbell)
 * against none.
 *
 *   bench_wake [samples per round (2000)] [rounds (5)] [gap_us (500)]
 *
 * Prints per round the median and 99th percentile of each path, then the
 * median of the rounds' medians with their min-max.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_wake: %s: %s (%s)\n", what, shmq_strerror(err),
		shmq_errdetail());
	exit(1);
}

/* The producer: N timestamps, GAP_US apart, then close. */
static pid_t producer(const char *path, int n, int gap_us)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	struct shmq *q;
	struct shmq_producer *p;
	int err;

	if ((err = shmq_open(path, 0, NULL, &q)) < 0 ||
	    (err = shmq_producer_open(q, NULL, &p)) < 0)
		die("producer", err);
	usleep(20000);	/* the consumer settles into its wait */
	for (int i = 0; i < n; i++) {
		uint64_t t = now_ns();

		if ((err = shmq_send(p, &t, sizeof(t), SHMQ_FOREVER)) < 0)
			die("send", err);
		usleep(gap_us);
	}
	shmq_producer_close(p);
	_exit(0);
}

/* One round of one path; fills LAT[0..n-1]. */
static void round_path(const char *path, bool by_fd, int n, int gap_us,
		       uint64_t *lat)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct epoll_event ev = { .events = EPOLLIN };
	int err, ep = -1, k = 0;
	uint64_t t;
	ssize_t r;
	pid_t pid;

	if ((err = shmq_open(path, 0, NULL, &q)) < 0 ||
	    (err = shmq_consumer_open(q, &(struct shmq_consumer_opts){
			.start = SHMQ_START_LATEST }, &c)) < 0)
		die("consumer", err);
	if (by_fd) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		epoll_ctl(ep, EPOLL_CTL_ADD, shmq_consumer_fd(c), &ev);
	}
	pid = producer(path, n, gap_us);
	while (k < n) {
		if (by_fd) {
			r = shmq_recv(c, &t, sizeof(t), NULL, SHMQ_NOWAIT);
			if (r == -EAGAIN) {
				epoll_wait(ep, &ev, 1, 5000);
				continue;
			}
		} else {
			r = shmq_recv(c, &t, sizeof(t), NULL, 5000000000ll);
		}
		if (r < 0)
			die("recv", (int)r);
		lat[k++] = now_ns() - t;
	}
	while (shmq_recv(c, &t, sizeof(t), NULL, 5000000000ll) >= 0)
		;
	waitpid(pid, NULL, 0);
	if (ep >= 0)
		close(ep);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* ns per send: with an armed poller that never reads, and with none. */
static double send_cost(const char *path, bool armed)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct shmq_producer *p;
	uint64_t t0, v = 0;
	const int n = 200000;
	int err;

	if ((err = shmq_open(path, 0, NULL, &q)) < 0 ||
	    (err = shmq_consumer_open(q, &(struct shmq_consumer_opts){
			.kind = SHMQ_CONSUMER_OBSERVER }, &c)) < 0 ||
	    (err = shmq_producer_open(q, NULL, &p)) < 0)
		die("send_cost", err);
	if (armed)
		shmq_consumer_fd(c);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		/* Re-arm as a poller does after each wake (-EAGAIN). */
		if (armed)
			while (shmq_recv(c, &v, sizeof(v), NULL, SHMQ_NOWAIT) >= 0)
				;
		shmq_send(p, &v, sizeof(v), SHMQ_NOWAIT);
	}
	t0 = now_ns() - t0;
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
	return (double)t0 / n;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	int gap = argc > 3 ? atoi(argv[3]) : 500;
	char path[] = "/dev/shm/bench_wake.XXXXXX";
	struct shmq_config cfg = { .capacity = 1 << 20, .max_message = 64,
				   .when_full = SHMQ_WHEN_FULL_OVERWRITE };
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	double med[2][64], p99[2][64];
	int fd, err;

	if (rounds > 64)
		rounds = 64;
	if (rounds < 1 || n < 100)
		return 2;
	fd = mkstemp(path);
	if (fd < 0 || !lat)
		return 1;
	close(fd);
	unlink(path);
	if ((err = shmq_create(path, &cfg)) < 0)
		die("create", err);
	printf("round  futex_med_us futex_p99_us  fd_med_us fd_p99_us\n");
	for (int r = 0; r < rounds; r++) {
		for (int m = 0; m < 2; m++) {
			round_path(path, m == 1, n, gap, lat);
			qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
			med[m][r] = lat[n / 2] / 1e3;
			p99[m][r] = lat[n * 99 / 100] / 1e3;
		}
		printf("%5d  %12.1f %12.1f  %9.1f %9.1f\n", r + 1, med[0][r],
		       p99[0][r], med[1][r], p99[1][r]);
	}
	for (int m = 0; m < 2; m++) {
		double s[64], lo, hi;

		for (int r = 0; r < rounds; r++)
			s[r] = med[m][r];
		lo = hi = s[0];
		for (int r = 1; r < rounds; r++) {
			lo = s[r] < lo ? s[r] : lo;
			hi = s[r] > hi ? s[r] : hi;
		}
		for (int i = 0; i < rounds; i++)
			for (int j = i + 1; j < rounds; j++)
				if (s[j] < s[i]) {
					double x = s[i]; s[i] = s[j]; s[j] = x;
				}
		printf("%s wake-up: median of %d rounds %.1f us (min %.1f, max %.1f)\n",
		       m ? "descriptor" : "futex     ", rounds, s[rounds / 2], lo, hi);
	}
	printf("send, no poller: %.0f ns; send + re-arm + ring per message (worst case): %.0f ns\n",
	       send_cost(path, false), send_cost(path, true));
	unlink(path);
	free(lat);
	return 0;
}
