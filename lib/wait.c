/* SPDX-License-Identifier: MIT */
/*
 * Waiting: clocks, deadlines and the shared futex. Futex words live in the
 * queue file, so the futexes are shared (no FUTEX_PRIVATE_FLAG), and every
 * wait is bounded by a slice so that a waiter re-checks liveness: a dead
 * peer cannot wake anyone.
 */
#include <limits.h>
#include <stdint.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>
#include <urcu/futex.h>

#include "internal.h"

int64_t shmqi_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint32_t shmqi_now_ms_coarse(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * Only SHMQ_FOREVER waits without a bound. Any other negative timeout is
 * SHMQ_NOWAIT: it is what the natural loop shmq_recv(c, ..., deadline -
 * now) passes once its deadline has passed, and it must not hang.
 */
int64_t shmqi_timeout(int64_t timeout_ns)
{
	return timeout_ns < 0 && timeout_ns != SHMQ_FOREVER ? 0 : timeout_ns;
}

/*
 * An absolute CLOCK_MONOTONIC deadline, or -1 for none (SHMQ_FOREVER, or
 * a bound so far away that now + bound does not fit in 63 bits: 292
 * years). A timeout that is not positive gives a deadline already due.
 */
int64_t shmqi_deadline(int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns == SHMQ_FOREVER)
		return -1;
	now = shmqi_now_ns();
	if (timeout_ns <= 0)
		return now;
	if (timeout_ns > INT64_MAX - now)
		return -1;
	return now + timeout_ns;
}

/*
 * The absolute-deadline calls: DEADLINE_NS on CLOCK_MONOTONIC, or
 * SHMQ_FOREVER. A deadline that is not in the future (any other negative
 * value too) is SHMQ_NOWAIT, as a negative relative timeout is.
 */
static int64_t until(int64_t deadline_ns)
{
	int64_t left;

	if (deadline_ns == SHMQ_FOREVER)
		return SHMQ_FOREVER;
	if (deadline_ns <= 0)
		return SHMQ_NOWAIT;
	left = deadline_ns - shmqi_now_ns();
	return left > 0 ? left : SHMQ_NOWAIT;
}

int64_t shmq_now_ns(void)
{
	return shmqi_now_ns();
}

int shmq_send_until(struct shmq_producer *p, const void *buf, size_t len,
		    int64_t deadline_ns)
{
	return shmq_send(p, buf, len, until(deadline_ns));
}

int shmq_peek_until(struct shmq_consumer *c, struct shmq_msg *msg,
		    int64_t deadline_ns)
{
	return shmq_peek(c, msg, until(deadline_ns));
}

ssize_t shmq_recv_until(struct shmq_consumer *c, void *buf, size_t cap,
			struct shmq_msg *msg, int64_t deadline_ns)
{
	return shmq_recv(c, buf, cap, msg, until(deadline_ns));
}

/*
 * Sleep while *WORD == VAL, until woken, the deadline, or one slice.
 * Returns 0 (woken or changed), 1 (the slice ran out: time for the slow
 * checks), or -ETIMEDOUT, -EINTR.
 */
int shmqi_futex_wait(uint32_t *word, uint32_t val, int64_t deadline_ns,
		     int64_t slice_ns)
{
	int64_t left = slice_ns;
	struct timespec ts;

	if (deadline_ns >= 0) {
		int64_t now = shmqi_now_ns();

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		if (deadline_ns - now < left)
			left = deadline_ns - now;
	}
	ts.tv_sec = left / 1000000000;
	ts.tv_nsec = left % 1000000000;
	if (futex_noasync((int32_t *)word, FUTEX_WAIT, (int32_t)val, &ts,
			  NULL, 0) < 0) {
		if (errno == EINTR)
			return -EINTR;
		if (errno == ETIMEDOUT)
			return 1;
		/* EAGAIN: the word changed before we slept. */
	}
	return 0;
}

/*
 * Asymmetric fences (as liburcu's memb flavour): the data paths publish
 * with plain release stores, and whoever is about to sleep pays for the
 * store-load fence on everyone's behalf with membarrier(GLOBAL_EXPEDITED),
 * which runs a full barrier on every CPU running a registered process.
 * Registration is per process; 0 when registered, -errno when the kernel
 * or a seccomp policy refuses.
 */
int shmqi_membarrier_register(void)
{
	static int state = 1;	/* 1 unknown, 0 registered, < 0 refused */
	int s = load_relaxed(&state);

	if (s == 1) {
		s = syscall(__NR_membarrier,
			    MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) ?
		    -errno : 0;
		if (s == 0 && shmqi_membarrier() < 0)
			s = -ENOSYS;
		store_relaxed(&state, s);
	}
	return s;
}

int shmqi_membarrier(void)
{
	return syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) ?
	       -errno : 0;
}

void shmqi_futex_wake(uint32_t *word)
{
	futex_noasync((int32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * Slow-path check that the file is still the one we mapped and still long
 * enough (F9, F18). Returns 0 or -ESTALE. A queue attached by descriptor
 * (shmq_create_anon, shmq_open_fd) has no name to lose or replace: a
 * memfd never has a link, and a queue file handed over as a descriptor
 * is used through that descriptor whatever happens to its name. Only
 * the size is checked for those (a sealed memfd cannot shrink).
 */
int shmqi_check_file(struct shmq *q)
{
	struct stat st;

	if (fstat(q->fd, &st) < 0)
		return shmqi_fail(-ESTALE, "fstat of the queue file: %m");
	if ((uint64_t)st.st_size < q->g.file_size)
		return shmqi_fail(-ESTALE, "queue file truncated to %lld bytes",
				  (long long)st.st_size);
	if (st.st_nlink == 0 && !q->by_fd)
		return shmqi_fail(-ESTALE, "queue file was deleted");
	return 0;
}
