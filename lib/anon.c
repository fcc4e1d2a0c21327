/* SPDX-License-Identifier: MIT */
/*
 * Queues without a path. shmq_create_anon() makes a queue in a memfd;
 * shmq_fd() hands its descriptor out and shmq_open_fd() attaches to a
 * queue received as a descriptor: inherited across fork() or exec(), or
 * sent over a UNIX socket with SCM_RIGHTS. Everything after the first
 * open is the code of queue files (attach.c): the same header, the same
 * validation, the same roles.
 *
 * A memfd has no name, so nobody can open it who was not given it, and
 * it is sealed against shrinking and growing: no holder of the descriptor
 * can truncate the ring under its users, and the SIGBUS of a truncated
 * mapping (F9) cannot happen to these queues. Sealing cannot stop a hole
 * punched with fallocate(FALLOC_FL_PUNCH_HOLE): those pages read back as
 * zeros, which the readers' validation refuses like any scribble.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL	0x0008u		/* Linux 6.3: never executable */
#endif

/*
 * The ring never changes size: nobody may shrink it (SIGBUS for every
 * process that maps it) or grow it, and F_SEAL_SEAL keeps a holder of the
 * descriptor from adding F_SEAL_WRITE or F_SEAL_FUTURE_WRITE, which would
 * keep every later attacher from mapping it writable.
 */
#define ANON_SEALS	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static int make_memfd(void)
{
	/*
	 * MFD_NOEXEC_SEAL: the mode starts at 0666, not 0777, and can never
	 * gain an execute bit (a queue file is data; docs/security.md). A
	 * kernel before 6.3 refuses the flag: then fchmod() below clears
	 * the execute bits, as for a queue file.
	 */
	int fd = memfd_create("shmq", MFD_CLOEXEC | MFD_ALLOW_SEALING |
			      MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("shmq", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return shmqi_fail(-errno, "memfd_create: %m");
	/* Never 0-2: a closed stdout must not become the queue (liveness.c). */
	fd = shmqi_fd_above_std(fd);
	if (fd < 0)
		return shmqi_fail(fd, "memfd_create: no descriptor above 2");
	return fd;
}

int shmq_create_anon(const struct shmq_config *cfg, struct shmq **out)
{
	struct shmq_config c;
	struct shmq *q;
	uint64_t size;
	int ret;

	shmqi_clear_error();
	*out = NULL;
	ret = shmqi_resolve_config(cfg, &c);
	if (ret == 0)
		ret = shmqi_queue_size(&c, &size);
	if (ret < 0)
		return ret;
	/*
	 * The default coverage of a queue on tmpfs, as shmq_create() chooses
	 * it there: a memfd is memory, and no power loss can tear a record
	 * in it (docs/decisions.md, "Integrity where it buys something").
	 */
	if (c.checksum == SHMQ_CHECKSUM_AUTO)
		c.checksum = SHMQ_CHECKSUM_HEADER;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->by_fd = true;
	q->fd = make_memfd();
	if (q->fd < 0) {
		ret = q->fd;
		goto fail;
	}
	/* The mode asked (0600 by default) whatever the umask, as a file. */
	if (fchmod(q->fd, c.mode) < 0) {
		ret = shmqi_fail(-errno, "setting the mode of the memfd: %m");
		goto fail;
	}
	/*
	 * Every page now: -ENOMEM (or the memory cgroup's limit) here, not
	 * an out-of-memory kill at a page fault later. Then the header, with
	 * pwrite as shmq_create() writes it (W0: ready last).
	 */
	ret = shmqi_alloc_file(q->fd, size, "an anonymous queue");
	if (ret == 0)
		ret = shmqi_init_header(q->fd, &c, size);
	if (ret < 0)
		goto fail;
	if (fcntl(q->fd, F_ADD_SEALS, ANON_SEALS) < 0) {
		ret = shmqi_fail(-errno, "sealing the memfd against truncation: %m");
		goto fail;
	}
	ret = shmqi_attach_fd(q, "the anonymous queue");
	if (ret < 0)
		goto fail;
	shmqi_clear_error();
	q->info_flags = SHMQ_INFO_CREATED;
	*out = q;
	return 0;
fail:
	shmq_close(q);
	return ret;
}

int shmq_fd(const struct shmq *q)
{
	return q->fd;
}

static const char *file_kind(mode_t m)
{
	if (S_ISFIFO(m))
		return "a pipe or FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/*
 * What a descriptor must be before we open it again: a regular file the
 * descriptor gives us the access we ask for, and, when it has no name (a
 * memfd), sealed against shrinking. Then the checks of a queue file
 * opened by path (check_owner: hard links, mode bits, owner).
 */
static int check_descriptor(int fd, int flags, const char *what,
			    struct stat *st)
{
	int fl, seals;

	if (fd < 0 || fstat(fd, st) < 0)
		return shmqi_fail(-EBADF, "nothing is open as %s", what);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return shmqi_fail(-errno, "fcntl(F_GETFL) of %s: %m", what);
	/*
	 * The descriptor is the capability: reopening it through /proc
	 * below would give whatever the file's mode allows, so the access
	 * it was opened with is checked here.
	 */
	if (fl & O_PATH)
		return shmqi_fail(-EBADF, "%s was opened O_PATH: it gives no access to a queue",
				  what);
	if (!S_ISREG(st->st_mode))
		return shmqi_fail(-EINVAL, "%s is %s, not a queue", what,
				  file_kind(st->st_mode));
	if ((fl & O_ACCMODE) == O_WRONLY ||
	    ((fl & O_ACCMODE) == O_RDONLY && !(flags & SHMQ_OPEN_RDONLY)))
		return shmqi_fail(-EACCES, "%s is open %s: roles need a read-write descriptor (SHMQ_OPEN_RDONLY: stat only)",
				  what, (fl & O_ACCMODE) == O_WRONLY ?
				  "write-only" : "read-only");
	if (st->st_nlink == 0) {
		seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0 || !(seals & F_SEAL_SHRINK))
			return shmqi_fail(-EINVAL, "%s is a file without a name (a memfd, or a deleted file) not sealed against shrinking (F_SEAL_SHRINK): anyone holding it could truncate the queue under its users",
					  what);
	}
	return shmqi_check_owner(what, st, flags);
}

int shmq_open_fd(int fd, int flags, struct shmq **out)
{
	bool rdonly = flags & SHMQ_OPEN_RDONLY;
	char what[40], proc[40];
	struct stat st, mine;
	struct shmq *q;
	int ret;

	shmqi_clear_error();
	*out = NULL;
	if (flags & ~(SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER))
		return shmqi_fail(-EINVAL, "shmq_open_fd flags %#x: only SHMQ_OPEN_RDONLY and SHMQ_OPEN_ANY_OWNER (creating needs shmq_create_anon)",
				  flags);
	snprintf(what, sizeof(what), "descriptor %d", fd);
	ret = check_descriptor(fd, flags, what, &st);
	if (ret < 0)
		return ret;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->rdonly = rdonly;
	q->by_fd = true;
	/*
	 * A description of our own, not a dup of FD: after fork() the
	 * caller's FD shares its description with the parent, and the
	 * caller may close FD once we return. Every role then reopens this
	 * one (shmqi_reopen), as for a queue opened by path.
	 */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	q->fd = open(proc, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	if (q->fd < 0) {
		ret = shmqi_fail(-errno, "reopening %s through /proc/self/fd: %m", what);
		goto fail;
	}
	q->fd = shmqi_fd_above_std(q->fd);	/* never 0-2 (liveness.c) */
	if (q->fd < 0) {
		ret = shmqi_fail(q->fd, "reopening %s: no descriptor above 2", what);
		goto fail;
	}
	/* Another thread may have put something else at FD meanwhile. */
	if (fstat(q->fd, &mine) < 0 || mine.st_dev != st.st_dev ||
	    mine.st_ino != st.st_ino) {
		ret = shmqi_fail(-EBADF, "%s changed while it was being attached", what);
		goto fail;
	}
	ret = shmqi_attach_fd(q, what);
	if (ret < 0)
		goto fail;
	shmqi_clear_error();
	*out = q;
	return 0;
fail:
	shmq_close(q);
	return ret;
}
