/* SPDX-License-Identifier: MIT */
/*
 * Creating a queue file, attaching to one with full validation, detaching.
 * Nothing here trusts the file: the header is read once with pread into a
 * local, checked field by field, and only then mapped.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
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

/* Fill in defaults and check a creator's configuration. */
static int resolve_config(const struct shmq_config *in, struct shmq_config *c)
{
	uint64_t cap;

	*c = in ? *in : (struct shmq_config){ 0 };
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
	/* Attach refuses world-writable files (F16): never make one. */
	if (c->mode & S_IWOTH)
		return shmqi_fail(-EINVAL, "file mode %o is world-writable", c->mode);
	if (c->checksum > SHMQ_CHECKSUM_HEADER)
		return shmqi_fail(-EINVAL, "bad checksum coverage %u", c->checksum);
	if (c->when_full > SHMQ_WHEN_FULL_OVERWRITE)
		return shmqi_fail(-EINVAL, "bad when-full policy %u",
				  c->when_full);
	if (c->initial_pos & (SHMQ_REC_ALIGN - 1))
		return shmqi_fail(-EINVAL, "initial position not 8-byte aligned");
	return 0;
}

static int init_header(int fd, const struct shmq_config *c, uint64_t size)
{
	struct shmq_hdr *h;
	uint64_t salt;

	h = mmap(NULL, SHMQ_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return shmqi_fail(-errno, "mapping the new header: %m");
	if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt))
		salt = realtime_ns() ^ ((uint64_t)getpid() << 32);

	/* Nobody trusts any of this before "ready": plain relaxed stores. */
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
	KILL_POINT("create:before-ready");
	/* W0 pairs with A0 in read_header(): every field above first. */
	store_release(&h->ready, SHMQ_READY);
	munmap(h, SHMQ_HDR_SIZE);
	return 0;
}

int shmq_create(const char *path, const struct shmq_config *cfg)
{
	struct shmq_config c;
	uint64_t size;
	int fd, ret;

	shmqi_clear_error();
	ret = resolve_config(cfg, &c);
	if (ret < 0)
		return ret;
	size = data_offset(c.slots) + c.capacity;
	if (size > (uint64_t)LLONG_MAX)
		return shmqi_fail(-EFBIG, "queue file too large");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return shmqi_fail(-errno, "creating %s: %m", path);
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
	ret = init_header(fd, &c, size);
	if (ret < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	/* O_EXCL made the file ours: leave nothing half-made behind. */
	unlink(path);
	close(fd);
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
		return shmqi_fail(-EPROTO, "queue format version %u, this library reads %u",
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
	ssize_t n;

	for (;;) {
		if (fstat(fd, st) < 0)
			return shmqi_fail(-errno, "fstat: %m");
		n = pread(fd, &h, sizeof(h), 0);
		if (n < 0)
			return shmqi_fail(-errno, "reading the header: %m");
		/* A0 pairs with W0 in init_header(): ready, then the rest. */
		if (n == sizeof(h) && h.ready == SHMQ_READY)
			break;
		/* A foreign file is refused at once; only an unfinished one waits. */
		if (n >= 8 && h.magic != 0 && h.magic != SHMQ_MAGIC)
			return check_header(&h, (uint64_t)st->st_size, g);
		/* Our magic: a queue never finished; none: not a queue. */
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
	cmm_smp_rmb();
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
	if (st->st_nlink > 1)
		return shmqi_fail(-EMLINK, "%s has %ju hard links; a queue file must have one",
				  path, (uintmax_t)st->st_nlink);
	if (st->st_mode & S_IWOTH)
		return shmqi_fail(-EACCES, "%s is world-writable (mode %o)",
				  path, (unsigned int)(st->st_mode & 07777));
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
