/* SPDX-License-Identifier: MIT */
/*
 * Liveness without PIDs: each role holds an OFD write lock on one byte of
 * the queue file. OFD locks belong to the open file description, so they
 * are not dropped when some other fd of the file is closed (classic POSIX
 * locks are), they conflict between descriptions of the same process, and
 * the kernel releases them when the process dies. Every role therefore
 * gets its own description (shmqi_reopen), and probing uses the queue's.
 *
 * A description outlives the process that made it when a fork() child
 * holds a copy of its descriptor: a child that inherited a role's
 * descriptor would keep the role's lock, and so a dead parent's producer
 * or consumer would look alive for as long as the child runs. Every role
 * descriptor is therefore on one list, and an atfork handler closes them
 * all in the child (docs/concurrency.md, "fork()").
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int ofd_lock(int fd, int cmd, short type, uint64_t byte,
		    struct flock *out)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = (off_t)byte,
		.l_len = 1,
		.l_pid = 0,	/* OFD locks require 0 */
	};

	if (fcntl(fd, cmd, &fl) < 0)
		return -errno;
	if (out)
		*out = fl;
	return 0;
}

int shmqi_lock_try(int fd, uint64_t byte)
{
	int ret = ofd_lock(fd, F_OFD_SETLK, F_WRLCK, byte, NULL);

	return ret == -EACCES ? -EAGAIN : ret;
}

/*
 * Poll rather than F_OFD_SETLKW: a blocking lock wait cannot be bounded,
 * and a hostile process could hold the byte forever.
 */
int shmqi_lock_wait(int fd, uint64_t byte, int64_t timeout_ns)
{
	int64_t deadline = shmqi_deadline(timeout_ns);
	struct timespec ts = { 0, 50000 };
	int ret;

	for (;;) {
		ret = shmqi_lock_try(fd, byte);
		if (ret != -EAGAIN)
			return ret;
		if (deadline >= 0 && shmqi_now_ns() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL);
		if (ts.tv_nsec < 5000000)
			ts.tv_nsec *= 2;
	}
}

void shmqi_unlock(int fd, uint64_t byte)
{
	(void)ofd_lock(fd, F_OFD_SETLK, F_UNLCK, byte, NULL);
}

int shmqi_lock_held(int fd, uint64_t byte)
{
	struct flock fl = { 0 };
	int ret = ofd_lock(fd, F_OFD_GETLK, F_WRLCK, byte, &fl);

	if (ret < 0)
		return ret;
	return fl.l_type != F_UNLCK;
}

/*
 * Every descriptor the library opens goes through here (issue 10): it
 * must never be 0, 1 or 2. A process started with stdin, stdout or
 * stderr closed gets the queue file on that number from open(), and its
 * next printf() or read() of "stdin" then writes over the header or reads
 * the queue as input. SQLite does the same for its database files. The
 * copy is made with F_DUPFD_CLOEXEC, so it is close-on-exec like the
 * original (every open here passes O_CLOEXEC too), and the low number is
 * closed again: the caller's standard descriptor stays closed, as it was.
 * Returns the descriptor to use, or -errno after closing FD.
 */
int shmqi_fd_above_std(int fd)
{
	int nfd;

	if (fd < 0 || fd > STDERR_FILENO)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (nfd < 0)
		nfd = -errno;
	close(fd);
	return nfd;
}

/*
 * A new open file description of the same file, through /proc so that a
 * path replaced since attach (F18) cannot hand us another file.
 */
int shmqi_reopen(struct shmq *q, int flags)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", q->fd);
	fd = open(p, flags | O_CLOEXEC);
	if (fd < 0)
		return shmqi_fail(-errno, "reopening the queue file: %m");
	fd = shmqi_fd_above_std(fd);
	if (fd < 0)
		return shmqi_fail(fd, "reopening the queue file: no descriptor above 2");
	return fd;
}

/*
 * The role list. Its lock is taken by the prepare handler of fork() and
 * released on both sides, so that the child never inherits it held by a
 * thread that does not exist there, nor a list half-changed.
 */
static pthread_mutex_t roles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shmqi_role roles = { &roles, &roles, NULL };
static pthread_once_t roles_once = PTHREAD_ONCE_INIT;
static int roles_atfork_err;

static void roles_prepare(void)
{
	pthread_mutex_lock(&roles_lock);
}

static void roles_parent(void)
{
	pthread_mutex_unlock(&roles_lock);
}

/*
 * In the child, before fork() returns there: close every role's
 * descriptor (close is async-signal-safe; the child has one thread) and
 * mark its handle inherited. The list is emptied: those handles are the
 * parent's, and their close in the child only frees memory.
 */
static void roles_child(void)
{
	struct shmqi_role *r, *next;

	for (r = roles.next; r != &roles; r = next) {
		next = r->next;
		if (*r->fd >= 0)
			close(*r->fd);
		*r->fd = -1;
		r->prev = r->next = NULL;
	}
	roles.prev = roles.next = &roles;
	pthread_mutex_unlock(&roles_lock);
}

static void roles_init(void)
{
	roles_atfork_err = pthread_atfork(roles_prepare, roles_parent,
					  roles_child);
}

/*
 * Put R, the role whose lock descriptor is *FD, on the list; from here on
 * a fork() child closes *FD and sets it to -1. Called as soon as the
 * descriptor exists, before any lock is taken on it.
 */
void shmqi_role_track(struct shmqi_role *r, int *fd)
{
	pthread_once(&roles_once, roles_init);
	r->fd = fd;
	r->prev = r->next = NULL;
	/*
	 * Without the handler (pthread_atfork failed: ENOMEM), the role is
	 * not tracked: a child then keeps the parent's roles alive, as
	 * before this list existed. Nothing else breaks.
	 */
	if (roles_atfork_err)
		return;
	pthread_mutex_lock(&roles_lock);
	r->next = &roles;
	r->prev = roles.prev;
	roles.prev->next = r;
	roles.prev = r;
	pthread_mutex_unlock(&roles_lock);
}

/* Take R off the list before its descriptor is closed. */
void shmqi_role_untrack(struct shmqi_role *r)
{
	pthread_mutex_lock(&roles_lock);
	if (r->next) {
		r->prev->next = r->next;
		r->next->prev = r->prev;
		r->prev = r->next = NULL;
	}
	pthread_mutex_unlock(&roles_lock);
}

/*
 * A role's own description (shmqi_reopen) into *FD, opened and put on
 * the list in one step as fork() sees it: under the list's lock, which
 * the prepare handler takes. Opened first and listed after, a fork()
 * in between would give the child a descriptor (and, once locked, a
 * role) that its handler does not know about and keeps alive.
 */
int shmqi_role_open(struct shmq *q, struct shmqi_role *r, int *fd)
{
	int nfd;

	pthread_once(&roles_once, roles_init);
	r->fd = fd;
	r->prev = r->next = NULL;
	if (roles_atfork_err) {
		nfd = shmqi_reopen(q, O_RDWR);
		*fd = nfd;
		return nfd < 0 ? nfd : 0;
	}
	pthread_mutex_lock(&roles_lock);
	nfd = shmqi_reopen(q, O_RDWR);
	*fd = nfd;
	if (nfd >= 0) {
		r->next = &roles;
		r->prev = roles.prev;
		roles.prev->next = r;
		roles.prev = r;
	}
	pthread_mutex_unlock(&roles_lock);
	return nfd < 0 ? nfd : 0;
}

/* Off the list and closed in one step, for the same reason. */
void shmqi_role_close(struct shmqi_role *r)
{
	pthread_mutex_lock(&roles_lock);
	if (r->next) {
		r->prev->next = r->next;
		r->next->prev = r->prev;
		r->prev = r->next = NULL;
	}
	if (*r->fd >= 0)
		close(*r->fd);
	*r->fd = -1;
	pthread_mutex_unlock(&roles_lock);
}

int shmqi_fail_inherited(void)
{
	return shmqi_fail(-EBADFD, "this producer or consumer handle was made before fork(): in the child it is closed; attach afresh there (shmq_open_fd(shmq_fd(q), ...))");
}
