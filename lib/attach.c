/* SPDX-License-Identifier: MIT */
/*
 * Creating a queue file, attaching to one with full validation, detaching.
 * Nothing here trusts the file: the header is read once with pread into a
 * local, checked field by field, and only then mapped.
 */
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define READY_WAIT_NS	2000000000ll	/* bound on waiting for a creator */

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t data_offset(uint32_t nslots)
{
	return align_up(SHMQ_HDR_SIZE + (uint64_t)nslots * SHMQ_SLOT_SIZE,
			SHMQ_PAGE);
}

/*
 * The permission bits a queue file may have: read and write for owner and
 * group, read for others. Never world-writable (anyone could scribble,
 * F16), never setuid, setgid, sticky or executable: the mapping lets a
 * writer put any bytes in the file, and a write through a mapping does not
 * clear setuid, so an executable queue file owned by root is a root shell
 * for every group member (issue 12).
 */
#define QUEUE_MODE_OK	(0666u & ~(unsigned int)S_IWOTH)

/* Name the bits of MODE outside QUEUE_MODE_OK, for an error detail. */
static const char *bad_mode_bits(unsigned int mode, char *buf, size_t len)
{
	static const struct {
		unsigned int bits;
		const char *name;
	} names[] = {
		{ S_ISUID, "setuid" },
		{ S_ISGID, "setgid" },
		{ S_ISVTX, "sticky" },
		{ S_IXUSR | S_IXGRP | S_IXOTH, "execute" },
		{ S_IWOTH, "world-writable" },
	};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(mode & names[i].bits))
			continue;
		n += snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
			      names[i].name);
		if (n >= len)
			break;
	}
	return buf;
}

/* Fill in defaults and check a creator's configuration. */
static int resolve_config(const struct shmq_config *in, struct shmq_config *c)
{
	uint64_t cap;

	*c = in ? *in : (struct shmq_config){ 0 };
	/* Reserved space must be zero: a later field's default (ABI). */
	if (c->reserved0 || c->reserved[0] || c->reserved[1] || c->reserved[2] ||
	    c->reserved[3] || c->reserved[4])
		return shmqi_fail(-EINVAL, "struct shmq_config: reserved fields must be zero (zero-initialise it)");
	cap = c->capacity ? c->capacity : SHMQ_DEFAULT_CAPACITY;
	if (cap < SHMQ_MIN_CAPACITY)
		cap = SHMQ_MIN_CAPACITY;
	if (cap > SHMQ_MAX_CAPACITY)
		return shmqi_fail(-EINVAL, "ring size above %llu bytes",
				  (unsigned long long)SHMQ_MAX_CAPACITY);
	while (!is_pow2(cap))
		cap += cap & -cap;	/* round up to a power of two */
	c->capacity = cap;
	if (!c->max_message) {
		c->max_message = SHMQ_DEFAULT_MAX_MSG;
		if (c->max_message > cap / 4)
			c->max_message = (uint32_t)(cap / 4);
	}
	if (c->max_message > UINT32_MAX - 2 * SHMQ_REC_HDR ||
	    shmqi_rec_size(c->max_message) > cap)
		return shmqi_fail(-EINVAL, "max message %u does not fit a %llu-byte ring",
				  c->max_message, (unsigned long long)cap);
	if (!c->slots)
		c->slots = SHMQ_DEFAULT_SLOTS;
	if (c->slots > SHMQ_MAX_SLOTS)
		return shmqi_fail(-EINVAL, "more than %u consumer slots",
				  SHMQ_MAX_SLOTS);
	if (!c->mode)
		c->mode = 0600;
	if (c->mode & ~07777u)
		return shmqi_fail(-EINVAL, "bad file mode %o", c->mode);
	/* Attach refuses such files (check_owner): never make one. */
	if (c->mode & ~QUEUE_MODE_OK) {
		char bits[64];

		return shmqi_fail(-EINVAL, "file mode %04o (%s): a queue file has at most mode %04o",
				  c->mode, bad_mode_bits(c->mode, bits, sizeof(bits)),
				  QUEUE_MODE_OK);
	}
	if (c->checksum > SHMQ_CHECKSUM_FULL)
		return shmqi_fail(-EINVAL, "bad checksum coverage %u", c->checksum);
	if (c->when_full > SHMQ_WHEN_FULL_OVERWRITE)
		return shmqi_fail(-EINVAL, "bad when-full policy %u",
				  c->when_full);
	if (c->initial_pos & (SHMQ_REC_ALIGN - 1))
		return shmqi_fail(-EINVAL, "initial position not 8-byte aligned");
	return 0;
}

/* pwrite() all of BUF at OFF. */
static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return shmqi_fail(n < 0 ? -errno : -EIO,
					  "writing the new header: %s",
					  n < 0 ? strerror(errno) : "short write");
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write the header with pwrite(), not through a mapping: a file that
 * another process truncates meanwhile then ends up short, which the
 * creator checks afterwards, instead of killing the creator with SIGBUS
 * (issue 12).
 */
/* tmpfs or ramfs: nothing there survives a power loss to be torn. */
static bool on_memory_fs(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

static int init_header(int fd, const struct shmq_config *c, uint64_t size)
{
	static const uint32_t ready = SHMQ_READY;
	struct shmq_hdr hdr, *h = &hdr;
	uint64_t salt;
	int ret;

	memset(&hdr, 0, sizeof(hdr));
	if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt))
		salt = realtime_ns() ^ ((uint64_t)getpid() << 32);

	/* A local copy, written out below; ready stays 0 in it. */
	store_relaxed(&h->magic, SHMQ_MAGIC);
	store_relaxed(&h->version, SHMQ_FORMAT_VERSION);
	store_relaxed(&h->layout, SHMQ_LAYOUT);
	store_relaxed(&h->capacity, c->capacity);
	store_relaxed(&h->data_off, data_offset(c->slots));
	store_relaxed(&h->file_size, size);
	store_relaxed(&h->max_message, c->max_message);
	store_relaxed(&h->nslots, c->slots);
	store_relaxed(&h->salt, salt);
	store_relaxed(&h->created_ns, realtime_ns());
	store_relaxed(&h->flags,
		      (c->when_full == SHMQ_WHEN_FULL_OVERWRITE ? SHMQ_FLAG_OVERWRITE : 0u) |
		      (c->checksum == SHMQ_CHECKSUM_HEADER ? SHMQ_FLAG_HDR_CRC : 0u));
	store_relaxed(&h->initial_pos, c->initial_pos);
	store_relaxed(&h->evict_ms, c->evict_after_ms);
	store_relaxed(&h->write_pos, c->initial_pos);
	store_relaxed(&h->tail_pos, c->initial_pos);
	store_relaxed(&h->floor_pos, c->initial_pos);
	store_relaxed(&h->durable_pos, c->initial_pos);
	store_relaxed(&h->durable_claim, c->initial_pos);
	store_relaxed(&h->inc_pos, c->initial_pos);
	/* No mark yet: an entry at initial_pos is never valid (producer.c). */
	store_relaxed(&h->mark_pos[0], c->initial_pos);
	store_relaxed(&h->mark_pos[1], c->initial_pos);
	ret = pwrite_all(fd, &hdr, sizeof(hdr), 0);
	if (ret < 0)
		return ret;
	KILL_POINT("create:before-ready");
	/*
	 * W0 pairs with A0 in read_header(): every field above first. The
	 * kernel copies each write into the page cache under the page's lock
	 * (and the inode's), whose release after the first write and acquire
	 * before the second order the fields before ready for every reader,
	 * as a release store would.
	 */
	return pwrite_all(fd, &ready, sizeof(ready),
			  offsetof(struct shmq_hdr, ready));
}

/*
 * The directory of PATH, opened O_PATH, and PATH's last component in it.
 * Creating the file and, on failure, removing it both go through this
 * one descriptor: a directory renamed, or replaced by a symlink, in
 * between cannot make us remove a file of the same name elsewhere (issue
 * 12). Unlike `shmq rm`, a symlink naming the directory is followed when
 * it is opened (/var/run/q must work); everything after that is relative
 * to the directory it resolved to then.
 */
static int open_dir_of(const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	size_t n;
	int dfd;

	*base = slash ? slash + 1 : path;
	if (!**base)
		return shmqi_fail(-EISDIR, "creating %s: the path names a directory",
				  path);
	/* No trailing slash: "a//q" names the directory "a". */
	for (n = slash ? (size_t)(slash - path) : 0; n > 0 && path[n - 1] == '/';
	     n--)
		;
	dir = n ? strndup(path, n) : strdup(slash ? "/" : ".");
	if (!dir)
		return -ENOMEM;
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		dfd = shmqi_fail(-errno, "creating %s: opening its directory: %m",
				 path);
	else if ((dfd = shmqi_fd_above_std(dfd)) < 0)
		dfd = shmqi_fail(dfd, "creating %s: no descriptor above 2", path);
	free(dir);
	return dfd;
}

/*
 * Remove the file we created as BASE in DFD, if BASE still names it: the
 * name is looked up in the same directory and compared by device and
 * inode with our descriptor, so a file put in its place is left alone.
 */
static void remove_created(int dfd, const char *base, int fd)
{
	struct stat mine, now;

	if (fstat(fd, &mine) == 0 &&
	    fstatat(dfd, base, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == mine.st_dev && now.st_ino == mine.st_ino)
		(void)unlinkat(dfd, base, 0);
}

/*
 * Refuse, before anything exists at PATH, a file larger than the space
 * available to us in its filesystem (df's "Avail", f_bavail): a 64 GiB
 * ring on a 10 GiB disk is a typo, and posix_fallocate() would first
 * fill the disk, or fall back to a sparse file that fails later (issue
 * 10). A filesystem that reports no block count (tmpfs without a size,
 * some network ones) is not checked: posix_fallocate() still is.
 */
static int check_free_space(int dfd, const char *path, uint64_t size)
{
	struct statvfs vfs;
	uint64_t blocks;

	if (fstatvfs(dfd, &vfs) < 0 || vfs.f_blocks == 0 || vfs.f_frsize == 0)
		return 0;
	blocks = size / vfs.f_frsize + (size % vfs.f_frsize != 0);
	if ((uint64_t)vfs.f_bavail >= blocks)
		return 0;
	return shmqi_fail(-ENOSPC, "%s needs %llu bytes, its filesystem has %llu bytes free",
			  path, (unsigned long long)size,
			  (unsigned long long)((uint64_t)vfs.f_bavail * vfs.f_frsize));
}

int shmq_create(const char *path, const struct shmq_config *cfg)
{
	struct shmq_config c;
	const char *base;
	struct stat st;
	uint64_t size;
	int dfd, fd, ret;

	shmqi_clear_error();
	ret = resolve_config(cfg, &c);
	if (ret < 0)
		return ret;
	size = data_offset(c.slots) + c.capacity;
	if (size > (uint64_t)LLONG_MAX)
		return shmqi_fail(-EFBIG, "queue file too large");
	/* A file this process could never map (32-bit builds, issue 12). */
	if ((uint64_t)(size_t)size != size)
		return shmqi_fail(-EFBIG, "a %llu-byte queue file does not fit this process's address space",
				  (unsigned long long)size);
	dfd = open_dir_of(path, &base);
	if (dfd < 0)
		return dfd;
	ret = check_free_space(dfd, path, size);
	if (ret < 0) {
		close(dfd);
		return ret;
	}
	fd = openat(dfd, base, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		ret = shmqi_fail(-errno, "creating %s: %m", path);
		close(dfd);
		return ret;
	}
	/*
	 * Never 0-2 (shmqi_fd_above_std), done by hand: on failure the low
	 * descriptor is still needed to remove the file we made.
	 */
	if (fd <= STDERR_FILENO) {
		int nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

		if (nfd < 0) {
			ret = shmqi_fail(-errno, "creating %s: no descriptor above 2: %m",
					 path);
			goto fail;
		}
		close(fd);
		fd = nfd;
	}
	/* fchmod, not open's mode: the umask must not change what we asked. */
	if (fchmod(fd, c.mode) < 0) {
		ret = shmqi_fail(-errno, "setting mode of %s: %m", path);
		goto fail;
	}
	/* Reserve every block now: ENOSPC here, not SIGBUS later (F12). */
	ret = posix_fallocate(fd, 0, (off_t)size);
	if (ret == EOPNOTSUPP || ret == EINVAL)
		ret = ftruncate(fd, (off_t)size) < 0 ? errno : 0;
	if (ret) {
		ret = shmqi_fail(-ret, "allocating %llu bytes for %s: %s",
				 (unsigned long long)size, path, strerror(ret));
		goto fail;
	}
	/* Integrity where it buys something: only a disk tears records. */
	if (c.checksum == SHMQ_CHECKSUM_AUTO)
		c.checksum = on_memory_fs(fd) ? SHMQ_CHECKSUM_HEADER :
						SHMQ_CHECKSUM_FULL;
	ret = init_header(fd, &c, size);
	if (ret < 0)
		goto fail;
	/* Another writer may have cut the file while we wrote the header. */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < size) {
		ret = shmqi_fail(-ESTALE, "queue file truncated while it was being created");
		goto fail;
	}
	close(fd);
	close(dfd);
	return 0;
fail:
	/* O_EXCL made the file ours: leave nothing half-made behind. */
	remove_created(dfd, base, fd);
	close(fd);
	close(dfd);
	return ret;
}

/*
 * Check one copy of the header. Magic, version and layout come first: a
 * file that is not ours in those is refused before any other field is
 * used (F11).
 */
static int check_header(const struct shmq_hdr *h, uint64_t st_size,
			struct shmq_geom *g)
{
	uint64_t want_off;

	if (h->magic == SHMQ_MAGIC_SWAPPED)
		return shmqi_fail(-EPROTO, "queue file has the other byte order");
	if (h->magic != SHMQ_MAGIC)
		return shmqi_fail(SHMQ_ENOTQUEUE, "not a queue file (bad magic)");
	if (h->version != SHMQ_FORMAT_VERSION)
		return shmqi_fail(-EPROTO, "queue format version %u, this library reads version %u: recreate the queue (no migration)",
				  h->version, SHMQ_FORMAT_VERSION);
	if (h->layout != SHMQ_LAYOUT)
		return shmqi_fail(-EPROTO, "queue layout word %#x, expected %#x",
				  h->layout, SHMQ_LAYOUT);
	if (!is_pow2(h->capacity) || h->capacity < SHMQ_MIN_CAPACITY ||
	    h->capacity > SHMQ_MAX_CAPACITY)
		return shmqi_fail(-EBADMSG, "header field capacity: %llu is not a valid ring size",
				  (unsigned long long)h->capacity);
	if (h->nslots < 1 || h->nslots > SHMQ_MAX_SLOTS)
		return shmqi_fail(-EBADMSG, "header field nslots: %u out of range",
				  h->nslots);
	if (h->max_message > UINT32_MAX - 2 * SHMQ_REC_HDR ||
	    shmqi_rec_size(h->max_message) > h->capacity)
		return shmqi_fail(-EBADMSG, "header field max_message: %u does not fit the ring",
				  h->max_message);
	want_off = data_offset(h->nslots);
	if (h->data_off != want_off)
		return shmqi_fail(-EBADMSG, "header field data_off: %llu, expected %llu",
				  (unsigned long long)h->data_off,
				  (unsigned long long)want_off);
	if (h->file_size != want_off + h->capacity)
		return shmqi_fail(-EBADMSG, "header field file_size: %llu does not match the geometry",
				  (unsigned long long)h->file_size);
	if (st_size < h->file_size)
		return shmqi_fail(-EBADMSG, "queue file is %llu bytes, its header says %llu (truncated)",
				  (unsigned long long)st_size,
				  (unsigned long long)h->file_size);
	if (h->flags & ~SHMQ_FLAGS_KNOWN)
		return shmqi_fail(-EPROTO, "header field flags: unknown bits %#x",
				  h->flags & ~SHMQ_FLAGS_KNOWN);
	g->capacity = h->capacity;
	g->mask = h->capacity - 1;
	g->shift = (uint32_t)__builtin_ctzll(h->capacity);
	g->data_off = h->data_off;
	g->file_size = h->file_size;
	g->max_message = h->max_message;
	g->nslots = h->nslots;
	g->flags = h->flags;
	g->salt = h->salt;
	g->max_record = (uint32_t)shmqi_rec_size(h->max_message);
	return 0;
}

/*
 * Read and check the header, waiting a bounded time for a creator that has
 * not published "ready" yet (F8). pread, not the mapping: a short file must
 * give an error, not SIGBUS.
 */
static int read_header(int fd, struct shmq_geom *g, struct stat *st)
{
	int64_t deadline = shmqi_now_ns() + READY_WAIT_NS;
	struct timespec nap = { 0, 1000000 };
	struct shmq_hdr h;
	uint64_t foreign = 0;
	ssize_t n;

	for (;;) {
		if (fstat(fd, st) < 0)
			return shmqi_fail(-errno, "fstat: %m");
		n = pread(fd, &h, sizeof(h), 0);
		if (n < 0)
			return shmqi_fail(-errno, "reading the header: %m");
		/* Ready seen: the fields are read again below (A0). */
		if (n == sizeof(h) && h.ready == SHMQ_READY)
			break;
		/*
		 * A foreign file is refused at once; only an unfinished one
		 * waits. At once means on the second look: a copy made while
		 * the creator's pwrite of the magic was under way may hold a
		 * mix of its bytes, never twice the same one.
		 */
		if (n >= 8 && h.magic != 0 && h.magic != SHMQ_MAGIC) {
			if (h.magic == foreign)
				return check_header(&h, (uint64_t)st->st_size, g);
			foreign = h.magic;
			nanosleep(&nap, NULL);
			continue;
		}
		if (shmqi_now_ns() >= deadline)
			return shmqi_fail(n >= 8 && h.magic == SHMQ_MAGIC ?
					  -EBADMSG : SHMQ_ENOTQUEUE,
					  n < (ssize_t)sizeof(h) ?
				"file shorter than a queue header (creator died or not a queue)" :
					  h.magic != SHMQ_MAGIC ?
				"no queue header, only zeros (not a queue, or its creator died first)" :
				"queue file never became ready (its creator died mid-init)");
		nanosleep(&nap, NULL);
	}
	/*
	 * A0 pairs with W0 in init_header(): ready, then the rest. The copy
	 * that saw ready may hold fields read before the creator wrote them
	 * (ready comes after most of them, and one pread copies in order),
	 * so the header is read again, after ready, before anything is used.
	 */
	cmm_smp_rmb();
	n = pread(fd, &h, sizeof(h), 0);
	if (n < 0)
		return shmqi_fail(-errno, "reading the header: %m");
	/* The size too: the creator may have grown the file while we waited. */
	if (fstat(fd, st) < 0)
		return shmqi_fail(-errno, "fstat of the queue file: %m");
	if (n != sizeof(h))
		return shmqi_fail(-EBADMSG, "file shorter than a queue header (truncated)");
	return check_header(&h, (uint64_t)st->st_size, g);
}

/*
 * Who may have written the file we are about to trust (F16). A second
 * hard link lets someone else keep or swap a name for it; another owner,
 * or anyone at all for a world-writable file, could have planted or may
 * rewrite it. Symlinks, FIFOs, devices and directories never get here.
 */
static int check_owner(const char *path, const struct stat *st, int flags)
{
	char bits[64];

	if (st->st_nlink > 1)
		return shmqi_fail(-EMLINK, "%s has %ju hard links; a queue file must have one",
				  path, (uintmax_t)st->st_nlink);
	if (st->st_mode & 07777 & ~QUEUE_MODE_OK)
		return shmqi_fail(-EACCES, "%s has mode %04o (%s): a queue file has at most mode %04o",
				  path, (unsigned int)(st->st_mode & 07777),
				  bad_mode_bits(st->st_mode & 07777, bits, sizeof(bits)),
				  QUEUE_MODE_OK);
	if (st->st_uid != geteuid() && !(flags & SHMQ_OPEN_ANY_OWNER))
		return shmqi_fail(-EACCES, "%s is owned by uid %u, not by us (uid %u); SHMQ_OPEN_ANY_OWNER allows it",
				  path, (unsigned int)st->st_uid,
				  (unsigned int)geteuid());
	return 0;
}

static int open_file(const char *path, int flags)
{
	bool rdonly = flags & SHMQ_OPEN_RDONLY;
	int fd = open(path, (rdonly ? O_RDONLY : O_RDWR) | O_NOFOLLOW |
		      O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	int ret;

	if (fd < 0) {
		if (errno == ELOOP)
			return shmqi_fail(-ELOOP, "%s is a symbolic link", path);
		return shmqi_fail(-errno, "opening %s: %m", path);
	}
	/* Never 0-2: a closed stdout must not become the queue file. */
	fd = shmqi_fd_above_std(fd);
	if (fd < 0)
		return shmqi_fail(fd, "opening %s: no descriptor above 2", path);
	/* O_NONBLOCK above: a FIFO planted at PATH must not block us. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return shmqi_fail(-EINVAL, "%s is not a regular file", path);
	}
	ret = check_owner(path, &st, flags);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		close(fd);
		return shmqi_fail(-errno, "fcntl: %m");
	}
	return fd;
}

static int attach_fd(struct shmq *q, const char *path)
{
	struct stat st;
	int prot = PROT_READ | (q->rdonly ? 0 : PROT_WRITE);
	int ret;

	ret = read_header(q->fd, &q->g, &st);
	if (ret < 0)
		return ret;
	q->dev = st.st_dev;
	q->ino = st.st_ino;
	/* mmap takes a size_t: never let a 32-bit build narrow the size. */
	if ((uint64_t)(size_t)q->g.file_size != q->g.file_size)
		return shmqi_fail(-EFBIG, "%s: a %llu-byte queue file does not fit this process's address space",
				  path, (unsigned long long)q->g.file_size);
	q->map = mmap(NULL, q->g.file_size, prot, MAP_SHARED, q->fd, 0);
	if (q->map == MAP_FAILED) {
		q->map = NULL;
		return shmqi_fail(-errno, "mapping %s: %m", path);
	}
	q->hdr = q->map;
	q->slots = (struct shmq_slot *)((uint8_t *)q->map + SHMQ_HDR_SIZE);
	q->data = (uint8_t *)q->map + q->g.data_off;
	/*
	 * Only the producer writes the ring: until one opens on this handle
	 * (shmq_producer_open makes it writable), a stray write through a
	 * peeked message faults here instead of corrupting every reader.
	 */
	if (!q->rdonly && mprotect(q->data, q->g.capacity, PROT_READ) < 0)
		return shmqi_fail(-errno, "mprotect of the ring: %m");
	return 0;
}

int shmq_open(const char *path, int flags, const struct shmq_config *cfg,
	      struct shmq **out)
{
	bool rdonly = flags & SHMQ_OPEN_RDONLY, created = false;
	struct shmq_config want;
	struct shmq *q;
	int ret;

	shmqi_clear_error();
	*out = NULL;
	if (flags & ~(SHMQ_OPEN_CREATE | SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER))
		return shmqi_fail(-EINVAL, "unknown open flags %#x", flags);
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->rdonly = rdonly;
	for (;;) {
		q->fd = open_file(path, flags);
		if (q->fd != -ENOENT || !(flags & SHMQ_OPEN_CREATE))
			break;
		ret = shmq_create(path, cfg);
		created = ret == 0;
		/* EEXIST: another creator won the race; attach to theirs. */
		if (ret < 0 && ret != -EEXIST)
			goto fail;
	}
	if (q->fd < 0) {
		ret = q->fd;
		goto fail;
	}
	ret = attach_fd(q, path);
	if (ret < 0)
		goto fail;
	/* Tell whether we created it, and how an existing one differs. */
	shmqi_clear_error();
	q->info_flags = created ? SHMQ_INFO_CREATED : 0u;
	if ((flags & SHMQ_OPEN_CREATE) && !created && cfg &&
	    resolve_config(cfg, &want) == 0)
		shmqi_report_cfg(q, cfg, &want);
	q->path = strdup(path);
	*out = q;
	return 0;
fail:
	shmq_close(q);
	return ret;
}

void shmq_map_range(const struct shmq *q, const void **addr, size_t *len)
{
	*addr = q->map;
	*len = q->g.file_size;
}

void shmq_close(struct shmq *q)
{
	if (!q)
		return;
	if (q->map)
		munmap(q->map, q->g.file_size);
	if (q->fd >= 0)
		close(q->fd);
	free(q->path);
	free(q);
}

/*
 * Shared with anon.c: queues without a path (shmq_create_anon,
 * shmq_open_fd) are made and checked by the same code as queue files.
 */
int shmqi_resolve_config(const struct shmq_config *in, struct shmq_config *c)
{
	return resolve_config(in, c);
}

/* The file size of the queue C describes; -EFBIG if we cannot map it. */
int shmqi_queue_size(const struct shmq_config *c, uint64_t *size)
{
	*size = data_offset(c->slots) + c->capacity;
	if (*size > (uint64_t)LLONG_MAX)
		return shmqi_fail(-EFBIG, "queue file too large");
	if ((uint64_t)(size_t)*size != *size)
		return shmqi_fail(-EFBIG, "a %llu-byte queue does not fit this process's address space",
				  (unsigned long long)*size);
	return 0;
}

/*
 * Give the new file FD its SIZE bytes, every page reserved now, as
 * shmq_create() does: -ENOSPC or -ENOMEM here, not SIGBUS later (F12).
 */
int shmqi_alloc_file(int fd, uint64_t size, const char *what)
{
	int ret = posix_fallocate(fd, 0, (off_t)size);

	if (ret == EOPNOTSUPP || ret == EINVAL)
		ret = ftruncate(fd, (off_t)size) < 0 ? errno : 0;
	if (ret)
		return shmqi_fail(-ret, "allocating %llu bytes for %s: %s",
				  (unsigned long long)size, what, strerror(ret));
	return 0;
}

int shmqi_init_header(int fd, const struct shmq_config *c, uint64_t size)
{
	return init_header(fd, c, size);
}

int shmqi_check_owner(const char *what, const struct stat *st, int flags)
{
	return check_owner(what, st, flags);
}

int shmqi_attach_fd(struct shmq *q, const char *what)
{
	return attach_fd(q, what);
}
