/* SPDX-License-Identifier: MIT */
/*
 * --progress and --stats for put and get: what went through the tool
 * (messages, and the bytes of the pipe it reads or writes), shown on
 * stderr like pv(1) while it runs and summed up in one line at the end.
 */
#ifndef SHMQ_TOOLS_PROGRESS_H
#define SHMQ_TOOLS_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Updates at most this often (ns): a few times a second, as pv. */
#define PROGRESS_INTERVAL_NS	500000000LL

struct progress {
	int show;		/* --progress: a line every interval and at the end */
	int stats;		/* --stats: one summary line at the end */
	/*
	 * Written by the tool's thread only, read by the progress thread.
	 * Display values: relaxed loads and stores (one writer, so a store of
	 * the incremented value is enough), no ordering with anything else.
	 */
	_Atomic uint64_t msgs;
	_Atomic uint64_t bytes;
	int64_t start_ns;	/* CLOCK_MONOTONIC */
	int tty;		/* stderr is a terminal: one line, redrawn */
	int running;		/* the progress thread was started */
	int stop;		/* under mu: the thread should end */
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* Start counting (and, with --progress, the thread that prints). */
void progress_start(struct progress *p);

/* Count N messages and BYTES bytes that went through. */
static inline void progress_add(struct progress *p, uint64_t n,
				uint64_t bytes)
{
	/* One writer: a plain relaxed store of the new sum (no lock prefix). */
	atomic_store_explicit(&p->msgs,
			      atomic_load_explicit(&p->msgs,
						   memory_order_relaxed) + n,
			      memory_order_relaxed);
	atomic_store_explicit(&p->bytes,
			      atomic_load_explicit(&p->bytes,
						   memory_order_relaxed) + bytes,
			      memory_order_relaxed);
}

/* B bytes for people: "512 B", "1.5 KiB", "3.0 MiB" (powers of 1024). */
const char *fmt_bytes(double b, char *buf, size_t len);

/* Stop the thread and print the final --progress line and the --stats. */
void progress_end(struct progress *p);

#endif /* SHMQ_TOOLS_PROGRESS_H */
