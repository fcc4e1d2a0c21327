/* SPDX-License-Identifier: MIT */
/*
 * Private handles and the functions the library's files share. Internal
 * symbols are prefixed shmqi_ so that the version script (shmq_*) keeps
 * them out of the shared library's interface.
 */
#ifndef SHMQ_INTERNAL_H
#define SHMQ_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "shmq.h"
#include "format.h"
#include "order.h"

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/* Geometry validated once at attach; the only copy the code trusts. */
struct shmq_geom {
	uint64_t capacity;
	uint64_t mask;
	uint32_t shift;		/* log2(capacity): a position's lap */
	uint64_t data_off;
	uint64_t file_size;
	uint32_t max_message;
	uint32_t nslots;
	uint32_t flags;
	uint64_t salt;
	uint32_t max_record;	/* header + max payload, aligned */
};

/* ring.c: one record, validated from a single copy of its header. */
struct shmqi_rec_view {
	struct shmq_rec *hdr;	/* in the ring; NULL for an implicit skip */
	uint32_t type;		/* SHMQ_REC_DATA or SHMQ_REC_PAD */
	uint32_t flags;
	uint32_t len;
	uint32_t crc;
	uint32_t ts_lo;
	uint32_t inc;		/* incarnation of the writer */
	uint64_t seq;
	uint64_t pos;		/* where it was read */
	uint64_t next;		/* position of the following record */
};

/* The lap tag a record at POS carries (format.h, struct shmq_rec). */
static inline uint32_t shmqi_lap(const struct shmq_geom *g, uint64_t pos)
{
	return (uint32_t)(pos >> g->shift);
}
struct shmq {
	int fd;			/* the mapping's fd; also the probe OFD */
	bool rdonly;
	void *map;
	struct shmq_hdr *hdr;
	struct shmq_slot *slots;
	uint8_t *data;
	struct shmq_geom g;
	dev_t dev;		/* identity of the file, to notice F18 */
	ino_t ino;
	char *path;		/* NULL when attached by descriptor */
	bool by_fd;		/* shmq_create_anon, shmq_open_fd: no link to
				   check (F18 does not apply) */
	int nhandles;		/* producer + consumers still open */
	int sync_err;		/* sticky msync failure seen by this handle */
	uint32_t info_flags;	/* SHMQ_INFO_CREATED, SHMQ_INFO_CFG_DIFFERS */
};

/*
 * liveness.c: every role's lock descriptor is on one list, so that a
 * fork() child closes them all (an atfork handler): inherited, they would
 * keep the parent's roles looking alive after the parent died.
 */
struct shmqi_role {
	struct shmqi_role *prev, *next;	/* NULL when not on the list */
	int *fd;			/* the handle's lock_fd */
};

/* pollfd.c: the descriptor set behind shmq_consumer_fd/shmq_producer_fd. */
struct shmqi_pollset {
	int epfd;		/* what the caller polls */
	int ino;		/* inotify: IN_ACCESS on the queue's inode */
	int ev;			/* eventfd: self-wakes */
	int pidfd;		/* consumer: the live producer, or -1 */
	int tfd;		/* timerfd: fallback probe / producer slow checks */
	uint32_t w_inc;		/* the session pidfd watches ... */
	uint32_t w_epoch;	/* ... and its producer_open */
	bool pid_fired;		/* pidfd readable: it died */
	bool nopid;		/* session n_inc/n_epoch: its prod_pid fired */
	uint32_t n_inc;		/* while its lock was held (not the holder): */
	uint32_t n_epoch;	/* timer only */
	int64_t timer_ns;	/* the periodic timer's period, 0 off */
	uint64_t pidns;		/* our pid namespace's inode, 0 unknown */
};

#define SHMQI_FIRED_RING	0x1
#define SHMQI_FIRED_SELF	0x2
#define SHMQI_FIRED_PID		0x4
#define SHMQI_FIRED_TIMER	0x8
/* Fallback probe period (no pidfd), and the producer's slow-check timer. */
#define SHMQ_POLL_TIMER_NS	100000000ll

int shmqi_pollset_new(struct shmq *q, struct shmqi_pollset **out);
void shmqi_pollset_free(struct shmqi_pollset *ps);
unsigned int shmqi_pollset_drain(struct shmqi_pollset *ps);
void shmqi_pollset_wake(struct shmqi_pollset *ps);
void shmqi_pollset_timer(struct shmqi_pollset *ps, int64_t ns, bool oneshot);
int shmqi_pollset_watch(struct shmqi_pollset *ps, struct shmq *q,
			bool dead_known, uint32_t dead_inc, int64_t *period_ns);
void shmqi_ring(struct shmq *q);
void shmqi_wake_consumers(struct shmq *q, bool futex_anyway);
uint64_t shmqi_pidns(void);
extern uint64_t shmqi_ring_count;
extern int shmqi_no_pidfd;

struct shmq_producer {
	struct shmq *q;
	int lock_fd;		/* own OFD: holds SHMQ_LOCK_PRODUCER; -1 in a
				   fork() child (shmqi_inherited) */
	struct shmqi_role role;
	uint32_t flags;		/* SHMQ_PRODUCER_* */
	uint64_t pub_pos;	/* write_pos as last published */
	uint64_t pos;		/* end of sealed records (>= pub_pos) */
	uint64_t seq;		/* next sequence to write */
	uint64_t limit;		/* cached: may write below limit + capacity */
	uint64_t tail;		/* our copy of tail_pos */
	uint64_t tail_seq;
	uint32_t ts_ms;		/* coarse send time for this batch */
	struct shmq_rec *reserved;	/* outstanding reservation or NULL */
	uint32_t reserved_len;
	uint64_t unpublished;	/* sealed records not yet published */
	uint64_t unpub_bytes;
	uint32_t attach_base;	/* hdr.attach_count when we opened */
	uint32_t slot_gen;	/* hdr.slot_gen at the last FIFO check */
	bool asym;		/* publish unfenced; membarrier before sleeping */
	bool fast;		/* sync mode none and a hardware CRC: the fast
				   paths of send and commit (producer.c) */
	uint32_t fifo_tick;
	bool seen_consumer;	/* FIFO: some consumer attached in our time */
	bool epipe;		/* FIFO: they have all gone; it sticks */
	int64_t slow_check_ns;	/* last reclaim/evict/FIFO probe round */
	uint32_t slow_idx;	/* slowest holder's slot at the last refresh */
	bool slow_valid;
	uint64_t stall_pos;	/* eviction: slowest holder's position ... */
	int64_t stall_since;	/* ... unchanged since then while we waited */
	int64_t fifo_check_ns;
	uint32_t sync_mode;	/* enum shmq_sync_mode (sync.c) */
	uint32_t sync_n;	/* batch: sync after this many messages */
	int64_t sync_ns;	/* batch: or when the oldest waited this long */
	uint64_t sync_pending;	/* published since the last sync */
	int64_t sync_first_ns;	/* when the oldest pending was published */
	uint64_t disk_tail;	/* tail_pos our last header msync carried */
	uint64_t claim_ok_end;	/* mode none: writes ending at or before this
				   need no look at durable_claim (producer.c,
				   sync_before_overwrite) */
	uint32_t inc;		/* our incarnation, in every record we seal */
	uint32_t framing_bits;	/* SHMQ_REC_F_FRAMING of our data records */
	uint32_t owed_next;	/* END records owed for sessions before ours: */
	uint32_t owed_n;	/* from owed_next, this many ... */
	uint32_t owed_last_kind;	/* ... the last one's SHMQ_END_* */
	uint64_t cut_bytes;	/* recovery cut this much at open */
	uint64_t cut_msgs;	/* ... at most this many messages */
	uint64_t cut_durable;	/* ... of which durable bytes */
	struct shmqi_pollset *ps;	/* shmq_producer_fd(), or NULL */
	/* Marks (shmq_producer_mark): one rides on the next publish. */
	bool mark_pending;
	uint64_t mark_value;
	uint32_t mark_next;	/* the entry the next mark overwrites */
	uint64_t open_end;	/* write_pos as recovery left it */
};

struct shmq_consumer {
	struct shmq *q;
	int lock_fd;		/* own OFD: holds the slot's lock; -1 in a
				   fork() child (shmqi_inherited) */
	struct shmqi_role role;
	uint32_t idx;
	struct shmq_slot *slot;
	uint32_t kind;
	uint64_t pos;		/* next record to read */
	uint64_t seq;		/* its expected sequence */
	bool seq_known;
	uint64_t wpos_cache;	/* last write_pos seen */
	bool peeked;		/* view holds a message not yet released */
	bool pending;		/* view holds the next message, not handed out
				   (shmq_recv's -EMSGSIZE): it stays next */
	size_t peek_n;		/* peeked: messages in the batch (view: last) */
	bool asym;		/* registered: may release without a fence */
	bool fast;		/* broadcast or named, not durable, hardware
				   CRC: shmq_recv's fast path (consumer.c) */
	bool resynced;		/* observer: just skipped to the tail */
	uint64_t peek_more_bytes;	/* shmq_peek_many: payload before view */
	bool redelivered;	/* member: the view is an adopted claim */
	uint64_t lost;		/* observer: lost before the next message */
	struct shmq_slot *group;	/* member: its group's slot */
	uint32_t gidx;
	uint64_t claim_pos;	/* member: position of the claimed record */
	int adopt_idx;		/* member: dead member's slot adopted, or -1 */
	uint8_t *adopt_buf;	/* member: private copy of an adopted record */
	uint64_t bytes;
	int64_t live_check_ns;	/* last producer liveness probe (NOWAIT) */
	int64_t rescue_ns;	/* member: last look for dead members' claims */
	bool slept_out;		/* the last sleep ran its whole slice */
	uint32_t slept_on;	/* data_futex value of that sleep */
	bool durable;		/* SHMQ_CONSUMER_DURABLE: read below durable_pos */
	uint32_t seen_inc;	/* sessions: the last one seen (live, or data) */
	uint32_t ended_inc;	/* the last one whose end was returned */
	uint64_t attach_w;	/* write_pos when we attached */
	uint32_t attach_inc;	/* the incarnation then: later ones are ours */
	uint32_t gone_inc;	/* the session producer_gone() looked at */
	uint32_t live_inc;	/* ... when it found it live */
	int64_t dwait_ns;	/* durable: waiting since, for data past ... */
	uint64_t dwait_pos;	/* ... the watermark at this position */
	bool resumed;		/* a named consumer that was away */
	uint64_t closed_sync_w;	/* durable: write_pos of its closed-queue sync */
	struct shmqi_pollset *ps;	/* shmq_consumer_fd(), or NULL */
	bool ps_dead;		/* ps: the probe found session ps_dead_inc ... */
	uint32_t ps_dead_inc;	/* ... dead: not watched again */
	struct shmqi_rec_view view;
	uint32_t passed_inc;	/* named: slot.ended_inc at resume */
	uint32_t held_inc;	/* named: the end held (end_held) */
	bool end_held;		/* named: passed an END, position not yet
				   published (shmq_consumer_last_end()) */
};

/* errors.c */
int shmqi_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void shmqi_clear_error(void);

/*
 * A record header (format.h) written as four 64-bit words: checksummed
 * right after, a header made of 32-bit stores would be read back as
 * 64-bit words that store forwarding cannot serve (see
 * shmqi_hdr_crc_hw), so the header is packed as words where the byte
 * order allows it.
 */
static inline void shmqi_rec_pack(struct shmq_rec *h, uint32_t len,
				  uint32_t type, uint64_t seq, uint32_t inc,
				  uint32_t lap, uint32_t crc, uint32_t ts_lo)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	uint64_t w[4] = {
		len | (uint64_t)type << 32,
		seq,
		inc | (uint64_t)lap << 32,
		crc | (uint64_t)ts_lo << 32,
	};

	memcpy(h, w, sizeof(w));
#else
	*h = (struct shmq_rec){ .len = len, .type = type, .seq = seq,
				.inc = inc, .lap = lap, .crc = crc,
				.ts_lo = ts_lo };
#endif
}

/* crc32c.c */
uint32_t shmqi_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t shmqi_rec_crc(uint64_t salt, const struct shmq_rec *rec,
		       const void *payload, size_t len);
bool shmqi_crc_have_hw(void);

#if defined(__x86_64__)
/*
 * The fast paths (shmq_send, shmq_commit, shmq_recv on the common case):
 * compiled for SSE4.2 and called only when shmqi_crc_have_hw() said the
 * CPU has it, so that the header's checksum is five crc32 instructions
 * inline. shmqi_crc_hw() continues a checksum over a payload.
 */
#define SHMQI_HAVE_FAST	1
#define SHMQI_CRC_TARGET	__attribute__((target("sse4.2")))
uint32_t shmqi_crc_hw(uint32_t crc, const void *buf, size_t len);

/*
 * The record checksum of docs/format.md up to the payload (not yet
 * inverted): the salt, then the header H as four words, H's crc field
 * taken as zero. shmqi_rec_crc() gives ~shmqi_crc_hw(this, payload).
 */
static inline SHMQI_CRC_TARGET uint32_t
shmqi_hdr_crc_words(uint64_t salt, uint64_t w0, uint64_t w1, uint64_t w2,
		    uint64_t w3)
{
	uint64_t c;

	c = __builtin_ia32_crc32di(~(uint32_t)salt, salt);
	c = __builtin_ia32_crc32di(c, w0);
	c = __builtin_ia32_crc32di(c, w1);
	c = __builtin_ia32_crc32di(c, w2);
	c = __builtin_ia32_crc32di(c, w3 & 0xffffffff00000000ull);
	return (uint32_t)c;
}

/*
 * The same of a header in memory. The producer builds its header in
 * registers and calls shmqi_hdr_crc_words: a header assembled on the
 * stack from 32-bit stores and read back as 64-bit words defeats store
 * forwarding, and the read then waits for every older store to reach the
 * cache (the ring's lines, each a cross-core miss): that cost 40 % of the
 * producer's time at 64 B.
 */
static inline SHMQI_CRC_TARGET uint32_t
shmqi_hdr_crc_hw(uint64_t salt, const struct shmq_rec *h)
{
	uint64_t w[4];

	memcpy(w, h, sizeof(w));
	return shmqi_hdr_crc_words(salt, w[0], w[1], w[2], w[3]);
}
#else
#define SHMQI_HAVE_FAST	0
#define SHMQI_CRC_TARGET
#endif

/* liveness.c: OFD byte locks on the queue file. */
int shmqi_lock_try(int fd, uint64_t byte);	/* 0, -EAGAIN, -errno */
int shmqi_lock_wait(int fd, uint64_t byte, int64_t timeout_ns);
void shmqi_unlock(int fd, uint64_t byte);
int shmqi_lock_held(int fd, uint64_t byte);	/* 1 held, 0 free, -errno */
int shmqi_reopen(struct shmq *q, int flags);	/* a fresh OFD */
int shmqi_fd_above_std(int fd);	/* FD moved to >= 3, or -errno */
void shmqi_role_track(struct shmqi_role *r, int *fd);
void shmqi_role_untrack(struct shmqi_role *r);
int shmqi_role_open(struct shmq *q, struct shmqi_role *r, int *fd);
void shmqi_role_close(struct shmqi_role *r);
int shmqi_fail_inherited(void);		/* -EBADFD, with the detail */

/*
 * A producer or consumer handle made before a fork(), used in the child:
 * the atfork handler closed its lock descriptor and left -1. Every public
 * call on such a handle fails (shmqi_fail_inherited) and its close only
 * frees memory: the shared file is the parent's business.
 */
#define shmqi_inherited(h)	unlikely((h)->lock_fd < 0)

/* wait.c */
int64_t shmqi_now_ns(void);
uint32_t shmqi_now_ms_coarse(void);
int64_t shmqi_timeout(int64_t timeout_ns);
int64_t shmqi_deadline(int64_t timeout_ns);
int shmqi_futex_wait(uint32_t *word, uint32_t val, int64_t deadline_ns,
		     int64_t slice_ns);
void shmqi_futex_wake(uint32_t *word);
int shmqi_check_file(struct shmq *q);
int shmqi_membarrier_register(void);
int shmqi_membarrier(void);
#define SHMQ_SPIN_NS		50000	/* spin this long before sleeping */
/*
 * ... of which the first SHMQ_SPIN_PURE_NS only poll; after that each
 * round of polls ends with sched_yield(), so that on a busy machine a
 * runnable peer (or anyone) gets this CPU while we wait. On an idle one
 * the yield returns at once. Data that flows never reaches the yields:
 * no system call per message.
 */
#define SHMQ_SPIN_PURE_NS	10000
#define SHMQ_SLICE_NS		100000000	/* re-check liveness this often */

/* Bytes a record of PAYLOAD bytes takes in the ring (ring.c's rule). */
static inline uint64_t shmqi_rec_size(uint64_t payload)
{
	return (SHMQ_REC_HDR + payload + SHMQ_REC_ALIGN - 1) &
	       ~(uint64_t)(SHMQ_REC_ALIGN - 1);
}
int shmqi_rec_view(const struct shmq *q, uint64_t pos, uint64_t end,
		   struct shmqi_rec_view *v);
bool shmqi_rec_crc_ok(const struct shmq *q, const struct shmqi_rec_view *v,
		      const void *payload);

/* slots.c: the slot table; changes under the attach lock. */
#define SHMQ_ATTACH_LOCK_NS	5000000000ll	/* bound on waiting for it */
bool shmqi_slot_holds(uint32_t state, uint32_t kind);
int shmqi_holders_min(struct shmq *q, uint64_t *min);
int shmqi_holders_min_idx(struct shmq *q, uint64_t *min, uint32_t *idx);
int shmqi_reclaim_dead(struct shmq *q, int fd);
void shmqi_free_slot_locked(struct shmq *q, uint32_t i);
void shmqi_wake_producer(struct shmq *q);
bool shmqi_name_valid(const char *name);
int shmqi_find_named(struct shmq *q, const char *name, uint32_t kind);
int shmqi_claim_slot(struct shmq *q, int fd);
uint64_t shmqi_start_position(struct shmq *q, uint32_t start);
uint64_t shmqi_publish_start(struct shmq *q, struct shmq_slot *s, uint64_t pos);
void shmqi_init_slot(struct shmq_slot *s, uint32_t kind, const char *name);
int shmqi_check_resume(struct shmq *q, uint64_t pos);

/* attach.c: shared with anon.c (queues without a path). */
int shmqi_resolve_config(const struct shmq_config *in, struct shmq_config *c);
int shmqi_queue_size(const struct shmq_config *c, uint64_t *size);
int shmqi_alloc_file(int fd, uint64_t size, const char *what);
int shmqi_init_header(int fd, const struct shmq_config *c, uint64_t size);
int shmqi_check_owner(const char *what, const struct stat *st, int flags);
int shmqi_attach_fd(struct shmq *q, const char *what);

/* group.c */
void shmqi_group_advance(struct shmq *q, uint32_t gidx);
void shmqi_groups_advance(struct shmq *q);
int shmqi_member_rescue(struct shmq_consumer *c, bool wait);
int shmqi_member_claim(struct shmq_consumer *c);
int shmqi_member_take_adopted(struct shmq_consumer *c);
void shmqi_member_release(struct shmq_consumer *c);

/* stat.c: details for errors that name a holder or a configuration. */
int shmqi_fail_full(struct shmq *q, int err, bool have_holder, uint32_t idx);
void shmqi_report_cfg(struct shmq *q, const struct shmq_config *asked,
		      const struct shmq_config *resolved);

/* sync.c and recover.c */
int shmqi_sync_header(struct shmq *q);
void shmqi_sync_config(struct shmq_producer *p,
		       const struct shmq_producer_opts *o);
int shmqi_sync_producer(struct shmq_producer *p);
int shmqi_sync_anyway(struct shmq *q);
int shmqi_sync_published(struct shmq_producer *p, uint64_t n);
int shmqi_recover(struct shmq_producer *p, uint64_t *tailp, uint64_t *endp);
uint64_t shmqi_valid_end(struct shmq *q, uint64_t from, uint64_t to);

/* Positions are free-running u64s: compare by difference. */
static inline bool pos_before(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) < 0;
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Incarnations wrap: compare by difference, as positions. */
static inline bool inc_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/*
 * May a record of incarnation INC lie at POS? Not if it is newer than the
 * queue's, nor if it is older and at or after the queue's inc_pos.
 */
static inline bool shmqi_inc_bad(const struct shmq *q, uint64_t pos,
				 uint32_t inc)
{
	uint32_t cur = load_acquire(&q->hdr->incarnation);

	if (inc == cur)
		return false;
	return !inc_before(inc, cur) ||
	       !pos_before(pos, load_relaxed(&q->hdr->inc_pos));
}

#ifdef SHMQ_KILL_POINTS
void shmqi_kill_point(const char *name);
#define KILL_POINT(name) shmqi_kill_point(name)
#else
#define KILL_POINT(name) do { } while (0)
#endif

#endif /* SHMQ_INTERNAL_H */
