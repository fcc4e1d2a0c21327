/* SPDX-License-Identifier: MIT */
/*
 * bench_sync: the cost of each sync mode. Sends N messages of SIZE bytes
 * through a queue file in DIR (a disk filesystem or tmpfs) with a consumer
 * draining in the same thread, and prints one line per mode: messages per
 * second and nanoseconds per message. Never asserts on time.
 *   bench_sync [DIR] [N] [SIZE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run(const char *dir, const char *name, uint32_t mode, uint32_t n_batch,
	       long n, size_t size)
{
	struct shmq_producer_opts po = { .sync_mode = mode, .sync_every_n = n_batch };
	struct shmq_config cfg = { .capacity = 1 << 22 };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq *q;
	char path[4096], buf[65536];
	double t0, t;

	snprintf(path, sizeof(path), "%s/bench_sync.%d.q", dir, (int)getpid());
	unlink(path);
	if (shmq_create(path, &cfg) || shmq_open(path, 0, NULL, &q) ||
	    shmq_producer_open(q, &po, &p) || shmq_consumer_open(q, NULL, &c)) {
		fprintf(stderr, "bench_sync: %s\n", shmq_errdetail());
		return 1;
	}
	memset(buf, 'x', size);
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		if (shmq_send(p, buf, size, SHMQ_FOREVER) < 0)
			return 1;
		if (shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_FOREVER) < 0)
			return 1;
	}
	t = now_s() - t0;
	printf("%-12s %-10s %8ld msgs %6zu B  %12.0f msg/s  %10.0f ns/msg\n",
	       dir, name, n, size, n / t, t * 1e9 / n);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	long n = argc > 2 ? atol(argv[2]) : 20000;
	size_t size = argc > 3 ? (size_t)atol(argv[3]) : 64;
	struct utsname u;

	uname(&u);
	printf("# bench_sync on %s %s %s, %ld CPUs\n", u.nodename, u.sysname,
	       u.release, sysconf(_SC_NPROCESSORS_ONLN));
	return run(dir, "none", SHMQ_SYNC_NONE, 0, n * 10, size) ||
	       run(dir, "batch/1024", SHMQ_SYNC_BATCH, 1024, n, size) ||
	       run(dir, "batch/64", SHMQ_SYNC_BATCH, 64, n, size) ||
	       run(dir, "every", SHMQ_SYNC_EVERY, 0, n / 10 ? n / 10 : 1, size);
}
