/* SPDX-License-Identifier: MIT */
/*
 * Pollable descriptors (issue 14): shmq_consumer_fd() and
 * shmq_producer_fd(). Each is an epoll instance, made on first request
 * (a handle that never asks pays nothing), holding:
 *  - an inotify descriptor watching the queue file's inode for IN_ACCESS:
 *    the doorbell. The other side rings it with one pread(2) of one byte
 *    of the file (shmqi_ring), which the kernel reports to every watcher;
 *  - an eventfd, for wakes the handle gives itself;
 *  - for a consumer, a pidfd of the live producer, so that its death
 *    (SIGKILL included) makes the descriptor readable with nobody ringing;
 *    where no pidfd can be trusted, a periodic timerfd instead (100 ms);
 *  - for a producer, a one-shot timerfd that brings it back for the slow
 *    checks (dead consumers, eviction) a sleeping send makes every slice.
 * Ringing is armed by the waiter's bit in hdr.data_waiters (consumers) or
 * hdr.prod_waiting (the producer), set with a full fence before the
 * waiter looks once more (F2, F3): docs/concurrency.md, "Descriptors".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

enum { TAG_INO = 1, TAG_EV, TAG_PID, TAG_TIMER };

/* Test hooks: rings this process made; pretend pidfds do not exist. */
uint64_t shmqi_ring_count;
int shmqi_no_pidfd;

/*
 * The doorbell: one byte read from the queue file. IN_ACCESS goes to every
 * inotify watch of the inode, in any process; nothing is written, and a
 * failed read (EINTR) costs only a wake that the waiter's slow path
 * (pidfd, timer, its next call) covers.
 */
void shmqi_ring(struct shmq *q)
{
	uint8_t b;

	__atomic_fetch_add(&shmqi_ring_count, 1, __ATOMIC_RELAXED);
	(void)!pread(q->fd, &b, 1, 0);
}

/*
 * Wake the consumers that wait: one xchg clears every bit (self-clearing:
 * a poller or sleeper that died costs at most one wake), then the futex
 * when a sleeper set its bit (or FUTEX_ANYWAY), the doorbell when a
 * poller did. The caller's store that the waiters look for is ordered
 * before the load of the bits by the caller's fence (F2).
 */
void shmqi_wake_consumers(struct shmq *q, bool futex_anyway)
{
	struct shmq_hdr *h = q->hdr;
	uint32_t old = 0;

	if (load_relaxed(&h->data_waiters))
		old = rmw_xchg(&h->data_waiters, 0);
	if ((old & SHMQ_WAIT_FUTEX) || futex_anyway) {
		rmw_add(&h->data_futex, 1);
		shmqi_futex_wake(&h->data_futex);
	}
	if (old & SHMQ_WAIT_POLL)
		shmqi_ring(q);
}

static int ps_add(struct shmqi_pollset *ps, int fd, uint32_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tag };

	return epoll_ctl(ps->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int above(int fd)
{
	return fd < 0 ? -errno : shmqi_fd_above_std(fd);
}

void shmqi_pollset_free(struct shmqi_pollset *ps)
{
	if (!ps)
		return;
	if (ps->epfd >= 0)
		close(ps->epfd);
	if (ps->ino >= 0)
		close(ps->ino);
	if (ps->ev >= 0)
		close(ps->ev);
	if (ps->pidfd >= 0)
		close(ps->pidfd);
	if (ps->tfd >= 0)
		close(ps->tfd);
	free(ps);
}

/* The inode of a pid namespace (0: unknown, e.g. no /proc). */
uint64_t shmqi_pidns(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

int shmqi_pollset_new(struct shmq *q, struct shmqi_pollset **out)
{
	struct shmqi_pollset *ps = calloc(1, sizeof(*ps));
	char p[64];
	int ret;

	if (!ps)
		return shmqi_fail(-ENOMEM, "no memory for a descriptor set");
	ps->ino = ps->ev = ps->pidfd = ps->tfd = -1;
	ps->epfd = above(epoll_create1(EPOLL_CLOEXEC));
	if (ps->epfd < 0) {
		ret = shmqi_fail(ps->epfd, "epoll_create1: %s", strerror(-ps->epfd));
		goto fail;
	}
	ps->ino = above(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
	if (ps->ino < 0) {
		ret = shmqi_fail(ps->ino, "inotify_init1: %s (fs.inotify.max_user_instances?)",
				 strerror(-ps->ino));
		goto fail;
	}
	/*
	 * The inode we mapped, through /proc (a path replaced since attach,
	 * F18, must not hand us another file; a memfd has no path at all).
	 */
	snprintf(p, sizeof(p), "/proc/self/fd/%d", q->fd);
	if (inotify_add_watch(ps->ino, p, IN_ACCESS) < 0 &&
	    (!q->path || inotify_add_watch(ps->ino, q->path, IN_ACCESS) < 0)) {
		ret = shmqi_fail(-errno, "inotify watch of the queue file: %m");
		goto fail;
	}
	ps->ev = above(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	if (ps->ev < 0) {
		ret = shmqi_fail(ps->ev, "eventfd: %s", strerror(-ps->ev));
		goto fail;
	}
	ps->tfd = above(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
	if (ps->tfd < 0) {
		ret = shmqi_fail(ps->tfd, "timerfd_create: %s", strerror(-ps->tfd));
		goto fail;
	}
	if ((ret = ps_add(ps, ps->ino, TAG_INO)) < 0 ||
	    (ret = ps_add(ps, ps->ev, TAG_EV)) < 0 ||
	    (ret = ps_add(ps, ps->tfd, TAG_TIMER)) < 0) {
		ret = shmqi_fail(ret, "epoll_ctl: %s", strerror(-ret));
		goto fail;
	}
	ps->pidns = shmqi_pidns();
	*out = ps;
	return 0;
fail:
	shmqi_pollset_free(ps);
	return ret;
}

/*
 * Empty every member that is ready, so that a level-triggered caller does
 * not see the set readable again for what was already handled. Returns
 * the SHMQI_FIRED_* bits of what had fired.
 */
unsigned int shmqi_pollset_drain(struct shmqi_pollset *ps)
{
	struct epoll_event evs[4];
	unsigned int fired = 0;
	uint64_t v;
	char buf[4096] __attribute__((aligned(8)));
	int n = epoll_wait(ps->epfd, evs, 4, 0);

	for (int i = 0; i < n; i++) {
		switch (evs[i].data.u32) {
		case TAG_INO:
			while (read(ps->ino, buf, sizeof(buf)) > 0)
				;
			fired |= SHMQI_FIRED_RING;
			break;
		case TAG_EV:
			(void)!read(ps->ev, &v, sizeof(v));
			fired |= SHMQI_FIRED_SELF;
			break;
		case TAG_PID:
			/* Stays readable: watch() takes it out of the set. */
			ps->pid_fired = true;
			fired |= SHMQI_FIRED_PID;
			break;
		case TAG_TIMER:
			(void)!read(ps->tfd, &v, sizeof(v));
			fired |= SHMQI_FIRED_TIMER;
			break;
		}
	}
	return fired;
}

void shmqi_pollset_wake(struct shmqi_pollset *ps)
{
	uint64_t one = 1;

	(void)!write(ps->ev, &one, sizeof(one));
}

/* Fire the timer every PERIOD_NS (0: never), or once after it (ONESHOT). */
void shmqi_pollset_timer(struct shmqi_pollset *ps, int64_t ns, bool oneshot)
{
	struct itimerspec its = { 0 };

	if (ns > 0) {
		its.it_value.tv_sec = ns / 1000000000;
		its.it_value.tv_nsec = ns % 1000000000;
		if (!oneshot)
			its.it_interval = its.it_value;
	}
	if (!oneshot && ps->timer_ns == ns)
		return;
	ps->timer_ns = oneshot ? 0 : ns;
	(void)timerfd_settime(ps->tfd, 0, &its, NULL);
}

static void unwatch(struct shmqi_pollset *ps)
{
	if (ps->pidfd < 0)
		return;
	epoll_ctl(ps->epfd, EPOLL_CTL_DEL, ps->pidfd, NULL);
	close(ps->pidfd);
	ps->pidfd = -1;
	ps->pid_fired = false;
}

/*
 * Called armed (our bit set, fenced): watch the live producer's death.
 * Nothing is watched when no session is open: a producer that opens
 * rings after it stores OPEN (shmq_producer_open). A session DEAD_INC
 * that the caller's probe found dead is not watched either: its end has
 * been dealt with. The pid in the header is untrusted: after
 * pidfd_open() the same session must still be the live one (incarnation
 * and epoch unchanged, state OPEN, its session lock held), so the pid
 * cannot have been reused under us; and it is used only when the
 * producer's pid namespace is ours.
 *
 * The pidfd is only the fast path. A live session is also probed every
 * SHMQ_POLL_TIMER_NS (*PERIOD_NS, the caller sets the timer), as a
 * blocking reader probes after each slice: the session's lock can go
 * while its pid lives on (a producer that exec()s: the locks are on
 * close-on-exec descriptors), and a prod_pid that names another live
 * process (the header is writable by every peer) would otherwise hide
 * the real producer's death for good. A pidfd that fired while the
 * session's lock is still held (the caller probed it: the lock is freed
 * before a dying process's pidfd fires) names some other process, such
 * as a zombie that stays readable: that session is not watched by pid
 * again, or the descriptor would stay readable and spin the caller.
 * Returns 1 when the session changed or died here (the caller probes
 * again), else 0.
 */
int shmqi_pollset_watch(struct shmqi_pollset *ps, struct shmq *q,
			bool dead_known, uint32_t dead_inc, int64_t *period_ns)
{
	struct shmq_hdr *h = q->hdr;
	uint32_t inc = load_acquire(&h->incarnation);
	uint32_t epoch = load_acquire(&h->prod_epoch);
	uint32_t st = load_acquire(&h->prod_state);
	uint32_t pid;
	int fd, held;

	*period_ns = 0;
	if (ps->pidfd >= 0 && ps->pid_fired && ps->w_inc == inc &&
	    ps->w_epoch == epoch && st == SHMQ_PSTATE_OPEN &&
	    !(dead_known && dead_inc == inc)) {
		ps->nopid = true;	/* not the holder: not again */
		ps->n_inc = inc;
		ps->n_epoch = epoch;
	}
	if (ps->pidfd >= 0 && (ps->w_inc != inc || ps->w_epoch != epoch ||
			       st != SHMQ_PSTATE_OPEN || ps->pid_fired))
		unwatch(ps);
	if (st != SHMQ_PSTATE_OPEN || (dead_known && dead_inc == inc)) {
		/*
		 * NONE with the role held: a producer inside its open, which
		 * may die before its OPEN rings: probe it on the timer. With
		 * the role free, the next producer's NONE store rings
		 * (shmq_producer_open), after it takes the role: seen free
		 * here after our fenced bit, it sees the bit.
		 */
		if (st == SHMQ_PSTATE_NONE &&
		    shmqi_lock_held(q->fd, SHMQ_LOCK_PRODUCER) != 0)
			*period_ns = SHMQ_POLL_TIMER_NS;
		return 0;
	}
	*period_ns = SHMQ_POLL_TIMER_NS;	/* the backstop, always */
	if (ps->pidfd >= 0)
		return 0;	/* this session is watched already */
	pid = load_relaxed(&h->prod_pid);
	fd = -1;
	if (!shmqi_no_pidfd && ps->pidns && load_relaxed(&h->prod_pidns) == ps->pidns &&
	    pid > 0 && pid <= 0x3fffffff &&
	    !(ps->nopid && ps->n_inc == inc && ps->n_epoch == epoch))
		fd = above((int)syscall(__NR_pidfd_open, (pid_t)pid, 0));
	/* pidfd_open() before this check: a pid reused earlier fails it. */
	fence_full();
	held = shmqi_lock_held(q->fd, SHMQ_LOCK_SESSION0 + (inc & 1));
	if (load_acquire(&h->incarnation) != inc ||
	    load_acquire(&h->prod_epoch) != epoch ||
	    load_acquire(&h->prod_state) != SHMQ_PSTATE_OPEN || held == 0) {
		if (fd >= 0)
			close(fd);
		return 1;	/* changed or died meanwhile: look again */
	}
	if (fd >= 0) {
		/* pidfd_open() sets O_CLOEXEC itself. */
		ps->pidfd = fd;
		ps->w_inc = inc;
		ps->w_epoch = epoch;
		ps->pid_fired = false;
		if (ps_add(ps, fd, TAG_PID) < 0)
			unwatch(ps);
	}
	/* No pidfd (old kernel, another pid namespace): the timer alone. */
	return 0;
}
