/* SPDX-License-Identifier: MIT */
/*
 * Liveness without PIDs: each role holds an OFD write lock on one byte of
 * the queue file. OFD locks belong to the open file description, so they
 * are not dropped when some other fd of the file is closed (classic POSIX
 * locks are), they conflict between descriptions of the same process, and
 * the kernel releases them when the process dies. Every role therefore
 * gets its own description (shmqi_reopen), and probing uses the queue's.
 */
#include <fcntl.h>
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
