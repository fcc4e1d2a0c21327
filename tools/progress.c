/* SPDX-License-Identifier: MIT */
/*
 * --progress and --stats (progress.h). The counting is two relaxed stores
 * in the tool's loop; a second thread wakes every PROGRESS_INTERVAL_NS,
 * reads the counters and prints, so that the line moves (and the rate
 * falls) while the tool itself waits in read(), in the library or in
 * write(). Lines go to stderr: redrawn in place on a terminal, one per
 * update otherwise (a log file, a test).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "progress.h"

const char *fmt_bytes(double b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", b);
	else
		snprintf(buf, len, "%.1f %s", b, units[u]);
	return buf;
}

/*
 * "shmq get: 12.3 MiB, 1234 messages, 2.0 s, 6.1 MiB/s": the total, the
 * time since the start and the rate of the last interval (the whole run's
 * average on the final line). FINAL ends a redrawn line.
 */
static void print_line(struct progress *p, uint64_t msgs, uint64_t bytes,
		       double secs, double rate, int final)
{
	char total[32], r[32];

	fprintf(stderr, "%s%s: %s, %llu message%s, %.1f s, %s/s%s",
		p->tty ? "\r" : "", tool_name,
		fmt_bytes((double)bytes, total, sizeof(total)),
		(unsigned long long)msgs, msgs == 1 ? "" : "s", secs,
		fmt_bytes(rate, r, sizeof(r)),
		p->tty ? (final ? "\033[K\n" : "\033[K") : "\n");
	fflush(stderr);
}

static void *progress_thread(void *arg)
{
	struct progress *p = arg;
	int64_t last_ns = p->start_ns, now;
	uint64_t last_bytes = 0, bytes, msgs;
	struct timespec until;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		/*
		 * From now, not from the last deadline: a late wake-up never
		 * makes a burst of lines to catch up.
		 */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += PROGRESS_INTERVAL_NS % 1000000000;
		until.tv_sec += PROGRESS_INTERVAL_NS / 1000000000 +
				until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		while (!p->stop &&
		       pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT)
			;
		if (p->stop)
			break;
		now = now_mono_ns();
		msgs = atomic_load_explicit(&p->msgs, memory_order_relaxed);
		bytes = atomic_load_explicit(&p->bytes, memory_order_relaxed);
		print_line(p, msgs, bytes, (now - p->start_ns) / 1e9,
			   now > last_ns ?
			   (bytes - last_bytes) / ((now - last_ns) / 1e9) : 0,
			   0);
		last_ns = now;
		last_bytes = bytes;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void progress_start(struct progress *p)
{
	pthread_condattr_t ca;

	p->start_ns = now_mono_ns();
	atomic_store_explicit(&p->msgs, 0, memory_order_relaxed);
	atomic_store_explicit(&p->bytes, 0, memory_order_relaxed);
	if (!p->show)
		return;
	p->tty = isatty(STDERR_FILENO);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->stop = 0;
	/* Without the thread only the final line is printed. */
	p->running = pthread_create(&p->thr, NULL, progress_thread, p) == 0;
}

void progress_end(struct progress *p)
{
	uint64_t msgs, bytes;
	double secs;
	char r[32];

	if (!p->show && !p->stats)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thr, NULL);
		p->running = 0;
	}
	/* The join orders the thread's last line before ours. */
	msgs = atomic_load_explicit(&p->msgs, memory_order_relaxed);
	bytes = atomic_load_explicit(&p->bytes, memory_order_relaxed);
	secs = (now_mono_ns() - p->start_ns) / 1e9;
	if (p->show)
		print_line(p, msgs, bytes, secs, secs > 0 ? bytes / secs : 0, 1);
	if (p->stats)
		fprintf(stderr, "%s: %llu message%s, %llu bytes in %.3f s: "
			"%.0f messages/s, %s/s\n", tool_name,
			(unsigned long long)msgs, msgs == 1 ? "" : "s",
			(unsigned long long)bytes, secs,
			secs > 0 ? msgs / secs : 0.0,
			fmt_bytes(secs > 0 ? bytes / secs : 0.0, r, sizeof(r)));
}
