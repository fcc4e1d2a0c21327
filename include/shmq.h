/* SPDX-License-Identifier: MIT */
/*
 * shmq: a single-producer / multi-consumer message queue that lives in a
 * file and is shared through a MAP_SHARED mapping. This is the one public
 * header; the shared layout is private (lib/format.h).
 *
 * Conventions: every call that can fail returns int (or ssize_t), >= 0 on
 * success and -errno on failure. Print codes with shmq_strerror(), not
 * strerror(): some errno values carry a shmq meaning (SHMQ_EOF is
 * -ESHUTDOWN, which strerror() calls "Cannot send after transport
 * endpoint shutdown"); shmq_strerror() names every code a call returns.
 * shmq_errdetail() gives the calling thread's detail for its last failure
 * ("queue already has a producer (pid 1234)", "header field capacity: not a
 * power of two", ...). Handles come back through out-parameters; every
 * close(NULL) is a no-op.
 */
#ifndef SHMQ_H
#define SHMQ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_VERSION_STRING "0.1.0"

/*
 * ABI: the shared library is libshmq.so.1; its soname changes with any
 * incompatible change, and symbols added later get a new version node.
 * The structs a caller allocates (struct shmq_config, shmq_producer_opts,
 * shmq_consumer_opts, shmq_msg) carry reserved space for later fields:
 * zero-initialise them (= { 0 } or designated initialisers) and a later
 * library reads zero, the default, in fields this program never knew;
 * reserved space that is not zero is refused with -EINVAL.
 * Structs the library allocates (shmq_stat) only grow at the end;
 * shmq_info() takes the caller's size. docs/decisions.md, "ABI".
 */

/*
 * Timeouts, in nanoseconds, for every call that may wait: SHMQ_NOWAIT,
 * SHMQ_FOREVER or a bound. SHMQ_FOREVER is the only value that waits
 * without a bound: any other negative timeout behaves as SHMQ_NOWAIT, so
 * that a loop passing "deadline - now" cannot hang once the deadline has
 * passed. The *_until() calls take an absolute deadline instead.
 */
#define SHMQ_NOWAIT  ((int64_t)0)	/* never sleep: -EAGAIN */
#define SHMQ_FOREVER ((int64_t)-1)	/* no bound */

/*
 * Status codes that are not plain errors. They are negative errno values so
 * that the "-errno" convention holds everywhere.
 */
#define SHMQ_EOF	(-ESHUTDOWN)	/* producer closed and all was read */
#define SHMQ_EDIED	(-EOWNERDEAD)	/* producer died and all was read */
#define SHMQ_ESTALE	(-ESTALE)	/* file truncated, deleted or replaced */
#define SHMQ_ELOSS	(-ENOTRECOVERABLE) /* recovery would cut durable data */
#define SHMQ_EABORTED	(-ECANCELED)	/* producer aborted and all was read */
/*
 * The file is not a queue: another magic number, shorter than a queue
 * header, or zeros (never initialised). -EBADMSG is kept for a queue file
 * whose header or records fail validation (corrupt), -EPROTO for a queue
 * of another format version, layout or byte order.
 */
#define SHMQ_ENOTQUEUE	(-EMEDIUMTYPE)

struct shmq;			/* an attached queue file */
struct shmq_producer;		/* the producer role on one queue */
struct shmq_consumer;		/* one consumer slot on one queue */

/* What the producer does when the ring is full. */
enum shmq_when_full {
	SHMQ_WHEN_FULL_BLOCK = 0,	/* wait for the slowest holder */
	SHMQ_WHEN_FULL_OVERWRITE = 1,	/* overwrite when nobody holds */
};

/*
 * What record checksums cover. FULL (default): header and payload, so a
 * torn or scribbled payload is found and never delivered. HEADER: the
 * header only, for speed where neither power loss on a disk filesystem
 * nor a scribbling process is a concern (docs/performance.md): a damaged
 * payload is then delivered as it is.
 */
enum shmq_checksum {
	/*
	 * The default (0): header only on tmpfs (and ramfs), where no power
	 * loss can tear a record; header and payload on a disk filesystem
	 * (docs/decisions.md, "Integrity where it buys something").
	 */
	SHMQ_CHECKSUM_AUTO = 0,
	SHMQ_CHECKSUM_HEADER = 1,	/* record headers only */
	SHMQ_CHECKSUM_FULL = 2,		/* headers and payloads */
};

/*
 * Geometry and options of a new queue. Zero fields take the defaults:
 * 1 MiB ring, max message 64 KiB (capped to a quarter of the ring), 64
 * slots, mode 0600, block when full.
 */
struct shmq_config {
	uint64_t capacity;	/* data ring bytes; rounded up to a power of 2 */
	uint32_t max_message;	/* largest payload, bytes */
	uint32_t slots;		/* consumer slots, 1..4096 */
	uint32_t mode;		/* file mode bits, applied whatever the umask */
	uint32_t when_full;	/* enum shmq_when_full */
	uint32_t evict_after_ms; /* 0: never evict (default); see below */
	uint64_t initial_pos;	/* first write position (tests: near 2^64) */
	uint32_t checksum;	/* enum shmq_checksum */
	uint32_t reserved0;	/* zero: room for later fields (ABI above) */
	uint64_t reserved[5];	/* zero */
};

#define SHMQ_DEFAULT_CAPACITY	(1u << 20)
#define SHMQ_DEFAULT_MAX_MSG	(64u << 10)
#define SHMQ_DEFAULT_SLOTS	64u
#define SHMQ_MAX_SLOTS		4096u
#define SHMQ_NAME_MAX		55	/* consumer name bytes, without NUL */

/* Flags for shmq_open(). */
#define SHMQ_OPEN_CREATE	0x1	/* create with cfg if it does not exist */
#define SHMQ_OPEN_RDONLY	0x2	/* map read-only: stat and sync only */
#define SHMQ_OPEN_ANY_OWNER	0x4	/* accept a file another user owns */

/*
 * shmq_create - create the queue file PATH (fails if it exists).
 * The file is fully allocated (posix_fallocate) and published "ready" last;
 * on any failure nothing is left at PATH.
 * Returns 0 or -errno: -EEXIST, -EINVAL (bad geometry or mode), -EISDIR
 * (PATH names a directory), -EFBIG (too large to map), -ENOSPC, -EACCES,
 * -ENOMEM; other codes come from open(2) and posix_fallocate(3).
 */
int shmq_create(const char *path, const struct shmq_config *cfg);

/*
 * shmq_open - attach to the queue file at PATH.
 * Validates magic, version, layout and geometry against the file length,
 * waiting up to two seconds for a creator that has not published "ready".
 * With SHMQ_OPEN_CREATE a missing file is created with CFG (NULL: defaults)
 * and two racing creators end up on the same queue. A queue that already
 * exists is used as it is, whatever CFG says: shmq_info() tells whether
 * this call created the file (SHMQ_INFO_CREATED) and whether the existing
 * queue differs from CFG (SHMQ_INFO_CFG_DIFFERS; capacity, max_message,
 * slots and mode are compared when CFG sets them, when_full and checksum
 * always), and shmq_errdetail() then says how, although the call
 * succeeded ("... capacity 1048576 (asked 4194304)"); it is "" otherwise.
 * The file must be a regular file with one link, not world-writable, and
 * owned by the caller's effective uid unless SHMQ_OPEN_ANY_OWNER is given
 * (docs/security.md).
 * Returns 0 or -errno: -ENOENT, SHMQ_ENOTQUEUE (not a queue file),
 * -EBADMSG (a queue file that is corrupt or was never finished), -EPROTO
 * (other version, layout or endianness), -EINVAL (not a regular file, bad
 * flags), -ELOOP (symlink), -EMLINK (hard-linked), -EACCES (permissions,
 * other owner, world-writable), -ENOSPC.
 */
int shmq_open(const char *path, int flags, const struct shmq_config *cfg,
	      struct shmq **out);

/*
 * shmq_close - detach from the queue file and free Q. Producer and
 * consumer handles made from Q must be closed first. shmq_close(NULL) is
 * a no-op.
 */
void shmq_close(struct shmq *q);

/*
 * shmq_create_anon - create a queue without a path, in a memfd, and
 * attach to it. Nobody can open it by name: processes share it as a
 * descriptor (shmq_fd(), shmq_open_fd()), inherited across fork() or
 * exec() or sent over a UNIX socket with SCM_RIGHTS. CFG as for
 * shmq_create() (NULL: defaults; mode 0600 unless CFG sets it; checksum
 * coverage SHMQ_CHECKSUM_AUTO is that of a queue on tmpfs: headers
 * only, since no power loss can tear a record in memory). Every page is
 * allocated now, and the memfd is sealed (F_SEAL_SHRINK, F_SEAL_GROW,
 * F_SEAL_SEAL): nobody holding the descriptor can truncate or resize it
 * (ftruncate fails with EPERM), so its users never get SIGBUS from a
 * truncation. The queue lives until
 * the last descriptor and mapping of it are gone. shmq_sync() on it
 * succeeds without writing anything: it lives in memory only, like a
 * queue on tmpfs, and nothing survives a reboot. Roles, sessions,
 * liveness, groups and observers are as for a queue file.
 * Returns 0 or -errno: -EINVAL (bad geometry or mode), -EFBIG,
 * -ENOMEM (no memory for the ring), -EMFILE, -ENFILE.
 */
int shmq_create_anon(const struct shmq_config *cfg, struct shmq **out);

/*
 * shmq_fd - the descriptor of Q's queue, to hand it to another process.
 * It belongs to Q: do not close it; it stays valid until shmq_close(Q).
 * It is close-on-exec: a child inherits it across fork(), and to keep it
 * across exec() the caller clears FD_CLOEXEC on it (or dup()s it to the
 * number the new program is told about, e.g. `shmq get --fd N`). To send
 * it over a UNIX socket, pass it in an SCM_RIGHTS message.
 * Returns a descriptor (>= 0).
 */
int shmq_fd(const struct shmq *q);

/*
 * shmq_open_fd - attach to the queue open as descriptor FD: received with
 * SCM_RIGHTS, inherited across exec(), or after fork() the parent's
 * shmq_fd(). The queue is validated as shmq_open() validates a queue
 * file, and FD is opened again through /proc/self/fd, so that this
 * process has an open file description of its own for its role locks;
 * FD stays the caller's (close it whenever convenient). FLAGS:
 * SHMQ_OPEN_RDONLY (stat and sync only; required when FD is read-only),
 * SHMQ_OPEN_ANY_OWNER (a queue another user created). FD may be a queue
 * made by shmq_create_anon() or a queue file opened read-write (a shell's
 * `3<>/dev/shm/q`). A file without a name must be sealed against
 * shrinking (shmq_create_anon() seals it). Queues attached by descriptor
 * are never reported as deleted or replaced: they have no name to check.
 * After fork(), the parent's producer and consumer handles are dead in
 * the child: the library closes their lock descriptors there (so that a
 * parent that dies is seen as dead), calls on them return -EBADFD and
 * their close only frees memory. The child attaches afresh, with
 * shmq_open_fd(shmq_fd(q), ...) on the struct shmq it inherited
 * (docs/concurrency.md, "fork()").
 * Returns 0 or -errno: -EBADF (FD is not open, or opened O_PATH),
 * -EINVAL (a pipe, a socket or anything but a regular file; a file
 * without a name not sealed against shrinking; bad flags),
 * SHMQ_ENOTQUEUE (a file that is not a queue), -EBADMSG (a queue that is
 * corrupt or was never finished), -EPROTO, -EACCES (FD is read-only and
 * SHMQ_OPEN_RDONLY is not given; mode bits; another owner), -EMLINK.
 */
int shmq_open_fd(int fd, int flags, struct shmq **out);

/* Flags for struct shmq_producer_opts. */
#define SHMQ_PRODUCER_FIFO	0x1	/* -EPIPE once every consumer is gone */
#define SHMQ_PRODUCER_ACCEPT_LOSS 0x2	/* recover even if durable data goes */
/*
 * How this producer frames the stream, recorded in every message (struct
 * shmq_msg flags, SHMQ_MSG_FRAMING) so that readers such as `shmq get`
 * can follow it: SHMQ_PRODUCER_FRAMING(SHMQ_FRAMING_LINES). Default:
 * SHMQ_FRAMING_MESSAGES (each message is a whole, written as it is).
 */
enum shmq_framing {
	SHMQ_FRAMING_MESSAGES = 0,
	SHMQ_FRAMING_STREAM = 1,	/* a byte stream cut anywhere */
	SHMQ_FRAMING_LINES = 2,		/* one item per message, newline-ended */
	SHMQ_FRAMING_NUL = 3,		/* one item per message, NUL-ended */
};
#define SHMQ_PRODUCER_FRAMING_SHIFT 4
#define SHMQ_PRODUCER_FRAMING_MASK (0x3u << SHMQ_PRODUCER_FRAMING_SHIFT)
#define SHMQ_PRODUCER_FRAMING(f) (((unsigned)(f) & 0x3u) << SHMQ_PRODUCER_FRAMING_SHIFT)

/*
 * Sync modes of a producer; docs/durability.md is the contract. A process
 * crash never loses a committed message in any mode (the page cache keeps
 * it); these decide what survives a power loss.
 */
enum shmq_sync_mode {
	SHMQ_SYNC_NONE = 0,	/* only explicit shmq_sync() calls */
	SHMQ_SYNC_BATCH = 1,	/* every N messages or T ms, whichever first */
	SHMQ_SYNC_EVERY = 2,	/* a send returns once its message is durable */
};

struct shmq_producer_opts {
	uint32_t flags;
	uint32_t sync_mode;	/* enum shmq_sync_mode */
	uint32_t sync_every_n;	/* batch: messages; both 0: 1024 and 100 ms */
	uint32_t sync_every_ms;	/* batch: ms, checked at each send, and by
				   durable consumers while the producer
				   idles (docs/durability.md); 0: off */
	uint32_t reserved[12];	/* zero: room for later fields (ABI above) */
};

/*
 * shmq_producer_open - take the producer role. The role is held through an
 * OFD lock the kernel drops when the process dies, so a dead producer's role
 * is free at once; a new producer continues the sequence where the last
 * committed message left it. OPTS may be NULL. Opening runs recovery:
 * the records from the tail are validated (bounds, sequence, checksum) and
 * the first invalid one is cut with everything after it, so a torn tail
 * left by a power loss is never delivered (docs/durability.md). A cut
 * below the durable watermark (data some shmq_sync() acknowledged) is
 * refused with SHMQ_ELOSS, the file left as it was, and shmq_errdetail()
 * says how many bytes and messages would go; SHMQ_PRODUCER_ACCEPT_LOSS
 * makes it go ahead. The last cut is kept in the file (struct shmq_stat,
 * cut_*). Each open starts a new incarnation, recorded in every record.
 * Returns 0 or -errno: -EBUSY (another live producer; shmq_errdetail()
 * names its pid), SHMQ_ELOSS, -EBADMSG (the header's cursors are
 * inconsistent), -EROFS (opened read-only), -EINVAL (unknown sync mode
 * or flags). The open syncs the ring (data, then the header with the new
 * incarnation); if that msync fails, the queue is marked "durability
 * failed" (shmq_sync_error()) and the open still succeeds.
 */
int shmq_producer_open(struct shmq *q, const struct shmq_producer_opts *opts,
		       struct shmq_producer **out);

/*
 * shmq_send - copy one message of LEN bytes into the queue and publish it.
 * TIMEOUT_NS: SHMQ_NOWAIT, SHMQ_FOREVER or a bound in nanoseconds.
 * On -EAGAIN and -ETIMEDOUT for a full ring (here, in shmq_send_batch()
 * and in shmq_reserve()), shmq_errdetail() names what holds the producer
 * back: the slowest holder's kind, name, slot, pid and whether it is
 * alive or dead (a dead named consumer keeps holding until
 * shmq_consumer_remove()), or, for a group, the member that claimed its
 * oldest message; or that no consumer holds and the block policy keeps
 * the data for the next one.
 * Returns 0 or -errno: -EMSGSIZE (LEN > max message), -EAGAIN (full, no
 * wait), -ETIMEDOUT, -EPIPE (FIFO mode, every consumer gone), -EINTR,
 * -ESTALE, -EBADMSG (the shared header became invalid), -EIO (sync
 * modes batch and every: the message was published but could not be made
 * durable; the queue stays "durability failed", see shmq_sync()),
 * -EBADFD (a handle inherited across fork(): see shmq_open_fd()).
 */
int shmq_send(struct shmq_producer *p, const void *buf, size_t len,
	      int64_t timeout_ns);

/*
 * shmq_now_ns - read the clock of the *_until() calls' deadlines.
 * Returns the CLOCK_MONOTONIC time in nanoseconds.
 */
int64_t shmq_now_ns(void);

/*
 * shmq_send_until, shmq_peek_until, shmq_recv_until - send, peek or
 * receive with an absolute deadline. As shmq_send(), shmq_peek() and
 * shmq_recv(), with an absolute DEADLINE_NS on
 * CLOCK_MONOTONIC (shmq_now_ns() + a bound) instead of a timeout, for
 * loops that share one deadline between calls. SHMQ_FOREVER: no bound; a
 * deadline that has passed (or any other negative value) is SHMQ_NOWAIT.
 * Returns as shmq_send(), shmq_peek() and shmq_recv().
 */
int shmq_send_until(struct shmq_producer *p, const void *buf, size_t len,
		    int64_t deadline_ns);

/*
 * shmq_send_batch - send the N messages of MSGS in order and publish them
 * with one cursor store (more than one if the ring fills in between).
 * Returns the number of messages sent (>= 1) or -errno as shmq_send() when
 * not even the first could be sent.
 */
ssize_t shmq_send_batch(struct shmq_producer *p, const struct iovec *msgs,
			size_t n, int64_t timeout_ns);

/*
 * shmq_reserve - reserve LEN bytes in the ring and return in *BUF where to
 * write them (zero copy). *BUF stays valid until shmq_commit(). Only one
 * reservation may be outstanding. Returns 0 or -errno as shmq_send().
 */
int shmq_reserve(struct shmq_producer *p, size_t len, void **buf,
		 int64_t timeout_ns);

/* Flags for shmq_commit(). */
#define SHMQ_COMMIT_DEFER	0x1	/* seal but publish later */
#define SHMQ_COMMIT_UNTERMINATED 0x2	/* lines/NUL: this last item had no
					   delimiter (SHMQ_MSG_UNTERMINATED) */

/*
 * shmq_commit - seal the reserved message and publish it (with
 * SHMQ_COMMIT_DEFER: seal only; shmq_publish() or the next commit without
 * the flag publishes every sealed message with one store).
 * Returns 0 or -errno: -EINVAL (nothing reserved), -EBADFD (inherited
 * across fork()).
 */
int shmq_commit(struct shmq_producer *p, unsigned int flags);

/*
 * shmq_commit_len - as shmq_commit(), for the first LEN bytes of the
 * reservation only (LEN <= the reserved length): for writers that learn
 * the length while they write, such as read() into the ring.
 * Returns 0 or -errno: -EINVAL, -EBADFD (inherited across fork()).
 */
int shmq_commit_len(struct shmq_producer *p, size_t len, unsigned int flags);

/*
 * shmq_publish - publish every sealed message. Returns 0 or -errno: -EIO
 * (sync modes batch and every, as shmq_send()), -EBADFD (inherited
 * across fork()).
 */
int shmq_publish(struct shmq_producer *p);

/*
 * shmq_producer_fd - a descriptor that becomes readable (POLLIN; an epoll
 * descriptor cannot signal POLLOUT) when a send that found the ring full
 * may make progress: a consumer released space, a stalled consumer may be
 * evicted or a dead one reclaimed (looked at every 100 ms while armed).
 * Made on the first call, owned by P (shmq_producer_close() closes it);
 * it starts readable. Use: when it polls readable, retry the send with
 * SHMQ_NOWAIT; the -EAGAIN of a send that finds no room arms it.
 * Consumers pay one load per release for it, as for a sleeping producer.
 * Returns the descriptor (>= 3) or -errno: -EBADFD (inherited across
 * fork()), -EMFILE, -ENOSPC, -ENOMEM.
 */
int shmq_producer_fd(struct shmq_producer *p);

/*
 * shmq_producer_close - publish what is sealed, mark the stream closed
 * (consumers get SHMQ_EOF after draining) and give up the role. An
 * outstanding reservation (shmq_reserve() without a commit) is dropped:
 * it is never published. shmq_producer_close(NULL) is a no-op. In a
 * fork() child, on the parent's handle, it only frees the handle: the
 * session stays the parent's.
 * Returns 0 or -errno: -EIO (the last messages could not be made
 * durable), -EBADFD (a handle inherited across fork(), freed).
 */
int shmq_producer_close(struct shmq_producer *p);

/*
 * shmq_producer_abort - like shmq_producer_close, for a producer that gives
 * up deliberately (bad input, a failed upstream): what it published stays,
 * and consumers get SHMQ_EABORTED at the end instead of SHMQ_EOF, so they
 * know the stream was cut. shmq_producer_abort(NULL) is a no-op. Returns
 * 0 or -errno as shmq_producer_close().
 */
int shmq_producer_abort(struct shmq_producer *p);

/*
 * shmq_producer_end - end the session as HOW says and free P: HOW is
 * SHMQ_PRODUCER_CLOSED (as shmq_producer_close()), SHMQ_PRODUCER_ABORTED
 * (as shmq_producer_abort()) or SHMQ_PRODUCER_DIED: the queue then looks
 * as if the producer had been killed (its END record says died,
 * consumers get SHMQ_EDIED, `shmq get` exits 3, stat shows it died), for
 * a bridge that reproduces the end of a session it relays. A NULL P is a
 * no-op.
 * Returns 0 or -errno as shmq_producer_close(), or -EINVAL (another HOW;
 * P is then not freed).
 */
int shmq_producer_end(struct shmq_producer *p, int how);

/*
 * shmq_producer_mark - attach VALUE, an application's number (the NATS
 * importer's last stream sequence), to the next publish: it is stored in
 * the queue file with the records it describes, before that publish
 * makes them visible, so that after a crash shmq_producer_last_mark()
 * finds the value of the last publish that survived. The next publish is
 * that of the next shmq_send(), shmq_send_batch(), shmq_commit() without
 * SHMQ_COMMIT_DEFER or shmq_publish(), or the END record of the session
 * (shmq_producer_close() and the like); never the library's own: a
 * reserve that waits for room publishes what was committed before it,
 * and a producer writes the ENDs owed to dead sessions before its first
 * record, without the mark (those records are counted after an older
 * mark, see below). The file keeps two marks: the last, and the one
 * before it, or the last durable one while the marks after it are not.
 * Returns 0 or -EBADFD (a handle inherited across fork()).
 */
int shmq_producer_mark(struct shmq_producer *p, uint64_t value);

/*
 * shmq_producer_last_mark - the last mark that survived in the queue, as
 * this producer's open found it (recovery done): the value of the mark
 * with the highest position at or below the queue's end, in *VALUE, and
 * in *AFTER (may be NULL) how many records lie after that position:
 * messages and END records of a session's own close, abort or end (not
 * the ENDs an open writes for dead sessions, which stand for no value).
 * They were published after the mark, without one, or with one that a
 * power loss took; a writer that marks every publish with the number of
 * its last record knows they are the AFTER records that followed VALUE.
 * A mark whose publish a crash or a recovery's cut took away is ignored,
 * so the file never claims more than it holds. After a power loss, the
 * file still holds the last mark at or below the durable watermark
 * (which recovery keeps) when none after it is, in every sync mode.
 * Returns 0, -ENOENT (no mark: none was ever made, or every mark was
 * cut), -EBADMSG (the records after the mark cannot be read: it lies a
 * ring behind; or the two marks lie at one position: a corrupt header)
 * or -EBADFD.
 */
int shmq_producer_last_mark(struct shmq_producer *p, uint64_t *value,
			    uint64_t *after);

/*
 * Kinds of consumer. BROADCAST sees every message and holds the producer
 * back until it has released them (anonymous or named). GROUP members
 * share the stream of their group (opts.name): each message goes to one
 * live member; the group, not the member, holds the producer, and keeps
 * its position when every member has left. OBSERVER never holds the
 * producer; when lapped it skips to the oldest intact message and
 * shmq_msg.lost says how many it missed. MEMBER appears only in stat.
 */
enum shmq_consumer_kind {
	SHMQ_CONSUMER_BROADCAST = 0,
	SHMQ_CONSUMER_GROUP = 1,
	SHMQ_CONSUMER_OBSERVER = 2,
	SHMQ_CONSUMER_MEMBER = 3,	/* stat only: one member of a group */
};

enum shmq_start {
	SHMQ_START_OLDEST = 0,	/* oldest message nobody attached released */
	SHMQ_START_LATEST = 1,	/* only messages sent from now on */
};

struct shmq_consumer_opts {
	uint32_t kind;		/* enum shmq_consumer_kind */
	uint32_t start;		/* enum shmq_start; a named one resumes */
	const char *name;	/* NULL: anonymous; else 1..SHMQ_NAME_MAX;
				   the group's name for GROUP; NULL for
				   OBSERVER */
	uint32_t flags;		/* SHMQ_CONSUMER_* */
	uint32_t reserved0;	/* zero: room for later fields (ABI above) */
	uint64_t reserved[5];	/* zero; else -EINVAL */
};

/*
 * Flags for struct shmq_consumer_opts. DURABLE: read only messages below
 * the durable watermark (a replicated log's high watermark), so that
 * nothing it reads can vanish in a power loss; once the queue is
 * "durability failed" it gets -EIO instead of waiting for ever.
 */
#define SHMQ_CONSUMER_DURABLE	0x1

/* Flags in struct shmq_msg. */
#define SHMQ_MSG_REDELIVERED	0x1
#define SHMQ_MSG_UNTERMINATED	0x2	/* see SHMQ_COMMIT_UNTERMINATED */
/* The sending producer's enum shmq_framing: SHMQ_MSG_FRAMING(msg.flags). */
#define SHMQ_MSG_FRAMING_SHIFT	4
#define SHMQ_MSG_FRAMING(flags)	(((flags) >> SHMQ_MSG_FRAMING_SHIFT) & 0x3u)

/* One received message, as shmq_peek()/shmq_recv() return it. */
struct shmq_msg {
	const void *data;	/* peek only; valid until shmq_release() */
	size_t len;
	uint64_t seq;		/* the producer's sequence number */
	uint32_t flags;		/* SHMQ_MSG_* */
	/*
	 * The sending producer's incarnation (each producer open starts a
	 * new one). After a power loss a recovery may cut the last records
	 * and reuse their sequence numbers: (queue, inc, seq) names one
	 * message for ever (the NATS bridge's message id). Formerly
	 * reserved0, written as zero.
	 */
	uint32_t inc;
	uint64_t lost;		/* messages skipped before this one */
	uint64_t reserved[3];	/* written as zero */
};

#define SHMQ_EVICTED	(-ECONNRESET)	/* this consumer was evicted */

/*
 * shmq_consumer_open - attach a consumer. An anonymous consumer's slot is
 * freed when it closes or dies; a named one keeps its position in the file
 * and resumes exactly after the last message it released. OPTS may be
 * NULL (anonymous broadcast from the oldest message).
 * Returns 0 or -errno: -EBUSY (a live consumer has that name), -ENOSPC (no
 * free slot), -EINVAL (bad name or kind), -EBADMSG, SHMQ_EVICTED (a named
 * consumer or group that was evicted: shmq_consumer_remove() it first).
 */
int shmq_consumer_open(struct shmq *q, const struct shmq_consumer_opts *opts,
		       struct shmq_consumer **out);

/*
 * shmq_peek - wait for the next message and return it in place (zero copy)
 * in *MSG. It stays valid, and is not released, until shmq_release().
 * A second shmq_peek() before the release returns the same message again
 * (with a shmq_peek_many() batch outstanding: its first unreleased one);
 * so does the shmq_peek() after a shmq_recv() that refused the message
 * with -EMSGSIZE.
 * Returns 0 or -errno: -EAGAIN, -ETIMEDOUT, SHMQ_EOF, SHMQ_EDIED, -EINTR,
 * -EBADMSG (a record failed validation; the consumer stays where it is),
 * -ESTALE, SHMQ_EVICTED, -EINVAL (observers receive by copy only),
 * -EBADFD (a handle inherited across fork(): see shmq_open_fd()).
 */
int shmq_peek(struct shmq_consumer *c, struct shmq_msg *msg,
	      int64_t timeout_ns);
int shmq_peek_until(struct shmq_consumer *c, struct shmq_msg *msg,
		    int64_t deadline_ns);

/*
 * shmq_peek_many - peek at up to N messages in one call. As shmq_peek(),
 * then, without waiting, up to N - 1 more of the messages already
 * published after it, all in place in
 * MSGS[0..ret-1]. They stay valid, and unreleased, until shmq_release(),
 * which releases them all, or shmq_release_n(), which releases the first
 * of them. Group members get one message per call.
 * Returns the number of messages (>= 1) or -errno as shmq_peek(), plus
 * -EINVAL when N is 0 or an earlier batch of more than one message is not
 * released.
 */
ssize_t shmq_peek_many(struct shmq_consumer *c, struct shmq_msg *msgs,
		       size_t n, int64_t timeout_ns);

/*
 * shmq_release - release the message shmq_peek() returned (or every
 * message of the shmq_peek_many() batch still held).
 * Returns 0, -EINVAL (nothing peeked: a message that shmq_recv() refused
 * with -EMSGSIZE was not peeked and is not released, it stays next) or
 * SHMQ_EVICTED (the consumer was evicted while it held the message: its
 * bytes may have been overwritten); -EBADFD for a handle inherited
 * across fork().
 */
int shmq_release(struct shmq_consumer *c);

/*
 * shmq_release_n - release the first N messages of the batch the last
 * shmq_peek_many() returned; the others stay peeked and valid (MSGS[N..]
 * of that call), and a later shmq_release() or shmq_release_n() releases
 * them. N equal to what is held releases it all, as shmq_release().
 * Returns 0, -EINVAL (nothing peeked, N is 0 or more than is held),
 * -EBADMSG (the ring changed under the batch: scribbled), SHMQ_EVICTED or
 * -EBADFD (inherited across fork()).
 */
int shmq_release_n(struct shmq_consumer *c, size_t n);

/*
 * shmq_recv - copy the next message into BUF (CAP bytes) and release it.
 * MSG may be NULL. After a shmq_peek(), the next message is the peeked
 * one (with a batch outstanding, its first unreleased message, released
 * alone). Returns the message length or -errno as shmq_peek(), plus
 * -EMSGSIZE when CAP is too small: then nothing is consumed, MSG->len (if
 * MSG is given) is the size needed, MSG->data is NULL, and the message
 * stays next: the following shmq_recv() or shmq_peek() returns it (a
 * group member keeps its claim; an observer may be lapped meanwhile). It
 * is not peeked: shmq_release() does not drop it unseen (-EINVAL).
 */
ssize_t shmq_recv(struct shmq_consumer *c, void *buf, size_t cap,
		  struct shmq_msg *msg, int64_t timeout_ns);
ssize_t shmq_recv_until(struct shmq_consumer *c, void *buf, size_t cap,
			struct shmq_msg *msg, int64_t deadline_ns);

/*
 * shmq_consumer_fd - a descriptor for event loops (poll, epoll, select,
 * libuv, asyncio) that becomes readable (POLLIN) when C may have
 * something to return: a message, the end of a session, the producer's
 * death (within 100 ms, SIGKILL included), eviction. Made on the first
 * call (a consumer that never asks pays nothing), owned by C: do not
 * close it; shmq_consumer_close() does. It starts readable. Use: when it
 * polls readable, call shmq_recv() or shmq_peek() with SHMQ_NOWAIT until
 * it returns -EAGAIN; that -EAGAIN arms it, so edge-triggered epoll works
 * too. It may be readable with nothing to return (a spurious wake, and
 * every 100 ms while a producer is open: the call then probes it); it
 * stays readable until the -EAGAIN. One consumer, one descriptor: two
 * threads must not wait on it for the same consumer. After fork(), the
 * child's copy is inert, and the call fails there with -EBADFD.
 * Returns the descriptor (>= 3) or -errno: -EBADFD (a handle inherited
 * across fork()), -EMFILE, -ENOSPC (fs.inotify.max_user_instances or
 * max_user_watches reached), -ENOMEM.
 */
int shmq_consumer_fd(struct shmq_consumer *c);

/*
 * shmq_consumer_close - detach the consumer C and free it. Anonymous: the slot is freed and stops
 * holding the producer; named: the position stays in the file.
 * shmq_consumer_close(NULL) is a no-op. In a fork() child, on the
 * parent's handle, it only frees the handle: the slot stays the parent's.
 */
void shmq_consumer_close(struct shmq_consumer *c);

/*
 * shmq_consumer_last_end - the incarnation of the session whose end
 * (SHMQ_EOF, SHMQ_EDIED or SHMQ_EABORTED) C returned last, in *INC: with
 * the queue's identity, it names that end for ever (the NATS exporter's
 * message id). A named consumer's position passes an END record it
 * returned only at its next shmq_peek()/shmq_recv() or its close, so one
 * that dies first gets that end again when it resumes.
 * Returns 0 or -ENOENT (no end returned yet).
 */
int shmq_consumer_last_end(struct shmq_consumer *c, uint32_t *inc);

/*
 * shmq_consumer_remove - drop the named consumer NAME from the slot table,
 * so that it stops holding the producer. Returns 0 or -errno: -ENOENT,
 * -EBUSY (it is attached and alive).
 */
int shmq_consumer_remove(struct shmq *q, const char *name);

/*
 * shmq_set_evict_after - change the queue's eviction policy: a holding
 * consumer (broadcast or group) that makes no progress for MS milliseconds
 * while the producer waits on it is evicted: it stops holding the producer
 * and gets SHMQ_EVICTED on its next call. 0 means never (the default:
 * nothing is ever lost). Returns 0 or -EROFS.
 */
int shmq_set_evict_after(struct shmq *q, uint32_t ms);

/* Producer states, as struct shmq_stat reports them. */
enum shmq_producer_state {
	SHMQ_PRODUCER_NONE = 0,		/* none has attached yet */
	SHMQ_PRODUCER_OPEN = 1,		/* attached and alive */
	SHMQ_PRODUCER_CLOSED = 2,	/* closed the stream */
	SHMQ_PRODUCER_DIED = 3,		/* died without closing */
	SHMQ_PRODUCER_ABORTED = 4,	/* shmq_producer_abort() */
};

struct shmq_consumer_stat {
	uint32_t slot;
	uint32_t kind;		/* enum shmq_consumer_kind */
	char name[SHMQ_NAME_MAX + 1];	/* "" when anonymous; group name */
	uint32_t pid;		/* for display only: PIDs lie */
	int alive;		/* holds its kernel lock (a group: a member does) */
	int evicted;		/* evicted; stays until removed */
	uint32_t group_slot;	/* MEMBER: its group's slot */
	int claimed;		/* MEMBER: holds a claimed message */
	int holding;		/* is (one of) the slowest holding the producer */
	uint64_t position;
	uint64_t next_seq;	/* sequence of the next message it reads */
	uint64_t lag_bytes;
	uint64_t lag_messages;
	uint64_t attach_ns;	/* CLOCK_REALTIME */
	uint64_t next_ns;	/* send time of its next unread message
				   (CLOCK_REALTIME, ms resolution), or 0 */
};

struct shmq_stat {
	uint64_t capacity;
	uint32_t max_message;
	uint32_t slots;
	uint32_t when_full;
	uint32_t evict_after_ms;
	uint32_t checksum;	/* enum shmq_checksum */
	uint32_t version;
	uint64_t created_ns;	/* CLOCK_REALTIME */
	uint64_t file_size;

	uint32_t producer_state;	/* enum shmq_producer_state */
	uint32_t producer_pid;
	uint64_t write_pos;
	uint64_t tail_pos;	/* oldest intact record */
	uint64_t floor_pos;	/* released by consumers that left */
	uint64_t durable_pos;	/* synced to disk up to here */
	uint64_t next_seq;
	uint64_t tail_seq;	/* sequence of the oldest intact record */
	uint64_t tail_ns;	/* CLOCK_REALTIME when it was sent, or 0 */
	uint64_t fill_bytes;	/* write_pos - slowest holder (or floor) */
	uint64_t messages;	/* counters since creation */
	uint64_t bytes;
	uint64_t full_waits;

	uint32_t nconsumers;
	struct shmq_consumer_stat *consumers;	/* nconsumers entries */

	/* Added in format 2 (the struct is allocated by the library). */
	uint32_t incarnation;	/* bumped by every producer open */
	uint32_t cut_durable;	/* the last cut took durable data */
	uint64_t cut_bytes;	/* the last recovery that cut: bytes, */
	uint64_t cut_messages;	/* at most this many messages, */
	uint64_t cut_time;	/* CLOCK_REALTIME seconds; 0: never */
};

/*
 * shmq_stat_get, shmq_stat_free - a snapshot of everything `shmq stat`
 * shows. It only
 * reads the file (and probes locks) and never disturbs anyone. Free with
 * shmq_stat_free(). Returns 0 or -errno: -ENOMEM, -EBADMSG.
 */
int shmq_stat_get(struct shmq *q, struct shmq_stat **out);
void shmq_stat_free(struct shmq_stat *st);

/* Flags in struct shmq_info. */
#define SHMQ_INFO_CREATED	0x1	/* this handle's shmq_open() created it */
#define SHMQ_INFO_CFG_DIFFERS	0x2	/* SHMQ_OPEN_CREATE found it unlike CFG */
#define SHMQ_INFO_RDONLY	0x4	/* opened SHMQ_OPEN_RDONLY */

/* What shmq_info() returns. New fields are only ever added at the end. */
struct shmq_info {
	uint32_t size;		/* bytes filled in by the library */
	uint32_t version;	/* file format version */
	uint64_t capacity;	/* data ring bytes */
	uint64_t file_size;
	uint32_t max_message;	/* largest payload, bytes */
	uint32_t slots;		/* consumer slots */
	uint32_t when_full;	/* enum shmq_when_full */
	uint32_t checksum;	/* enum shmq_checksum */
	uint32_t evict_after_ms;	/* 0: never */
	uint32_t flags;		/* SHMQ_INFO_* */
	int32_t sync_error;	/* 0, or shmq_sync_error(): durability failed */
	uint32_t reserved;	/* 0 */
	uint64_t write_pos;	/* end of what is published */
	uint64_t durable_pos;	/* synced to disk up to here */
	/*
	 * Added in 0.2 (88 bytes): the queue's identity, fixed at creation.
	 * A queue created again at the same path has another salt.
	 */
	uint64_t salt;		/* random, drawn by the creator */
	uint64_t created_ns;	/* CLOCK_REALTIME of the creation */
};

/*
 * shmq_info - the queue's geometry, checksum mode and sync state, cheaply:
 * no allocation, no system call, safe in a tight loop (shmq_stat_get()
 * is the full snapshot). Pass SIZE = sizeof(*INFO): a program built with
 * an older, shorter struct shmq_info gets its prefix, and INFO->size says
 * how much was filled. Returns 0 or -EINVAL (SIZE below 72 bytes, the
 * first version's size).
 */
int shmq_info(struct shmq *q, struct shmq_info *info, size_t size);

/*
 * shmq_sync - make every message committed so far durable:
 * msync(MS_SYNC) of the data written since the last sync, then of the
 * header with the new durable watermark. Any process may call it; on a
 * handle opened SHMQ_OPEN_RDONLY it syncs but cannot raise the watermark.
 * A failing msync marks the queue "durability failed" in the file: from
 * then on every shmq_sync() on it fails and the watermark never moves.
 * Returns 0 or -errno from msync (-EIO: the data may be lost), or the
 * recorded error of an earlier failure.
 */
int shmq_sync(struct shmq *q);

/*
 * shmq_sync_error - tell whether durability failed. Returns 0 while every
 * msync of the queue succeeded, else the -errno of the first one that
 * failed (the sticky "durability failed" state that `shmq stat` shows).
 */
int shmq_sync_error(struct shmq *q);

/*
 * shmq_map_range - tell where Q's file is mapped in this process. For a
 * SIGBUS handler that must tell a truncated queue file (si_addr inside)
 * from other faults: *ADDR and *LEN stay valid until shmq_close(Q).
 */
void shmq_map_range(const struct shmq *q, const void **addr, size_t *len);

/*
 * shmq_strerror - describe a code a shmq call returned. Returns a constant
 * message for any code a shmq call returns, never NULL; use it rather
 * than strerror(), which misnames the SHMQ_E* codes.
 */
const char *shmq_strerror(int err);

/*
 * shmq_errdetail - explain the calling thread's last failed call.
 * Returns its detail, or "" when there is none (never NULL). Valid until
 * the thread's next shmq call. One
 * success sets it too: a shmq_open(SHMQ_OPEN_CREATE) that found the queue
 * unlike its CFG says how (see shmq_open()).
 */
const char *shmq_errdetail(void);

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_H */
