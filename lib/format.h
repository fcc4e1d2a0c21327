/* SPDX-License-Identifier: MIT */
/*
 * The on-file format of a shmq queue: header, consumer slots, records.
 * Layout only, no code. docs/format.md draws the same thing with offsets;
 * the _Static_asserts at the bottom pin every offset to that drawing.
 *
 * Fixed-width integers only, host byte order (the magic reveals it).
 * Every field says who writes it and who reads it; every value read from
 * the file is untrusted and is validated after one load into a local.
 */
#ifndef SHMQ_FORMAT_H
#define SHMQ_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* "SHMQ" then 04 03 02 01 in a little-endian file; byte-swapped elsewhere. */
#define SHMQ_MAGIC		0x01020304514d4853ull
#define SHMQ_MAGIC_SWAPPED	0x53484d5104030201ull
#define SHMQ_FORMAT_VERSION	3u
#define SHMQ_READY		0x59444552u	/* "REDY": creator is done */

#define SHMQ_LINE		64u	/* cache line the layout assumes */
#define SHMQ_PAGE		4096u
#define SHMQ_HDR_SIZE		512u	/* fixed header, then the slots */
#define SHMQ_SLOT_SIZE		128u
#define SHMQ_REC_HDR		32u	/* record header */
#define SHMQ_REC_ALIGN		8u

/*
 * The layout word: a build whose structures differ in any of these refuses
 * a file made by another (LMDB's format word).
 */
#define SHMQ_LAYOUT (((uint32_t)SHMQ_LINE << 0) |			\
		     ((uint32_t)(SHMQ_HDR_SIZE / 64) << 8) |		\
		     ((uint32_t)(SHMQ_SLOT_SIZE / 8) << 16) |		\
		     ((uint32_t)SHMQ_REC_HDR << 24))

/* Geometry limits enforced at create and at attach. */
#define SHMQ_MIN_CAPACITY	4096ull
#define SHMQ_MAX_CAPACITY	(1ull << 40)

/* hdr.flags */
#define SHMQ_FLAG_OVERWRITE	0x1u	/* when_full = overwrite */
#define SHMQ_FLAG_HDR_CRC	0x2u	/* record CRCs cover the header only */
#define SHMQ_FLAGS_KNOWN	0x3u

/* hdr.cut_flags */
#define SHMQ_CUT_DURABLE	0x1u	/* durable data went (ACCEPT_LOSS) */

/* hdr.prod_state */
#define SHMQ_PSTATE_NONE	0u
#define SHMQ_PSTATE_OPEN	1u
#define SHMQ_PSTATE_CLOSED	2u
#define SHMQ_PSTATE_ABORTED	3u

/*
 * hdr.prod_caps. ASYM: this producer publishes write_pos without a fence
 * and issues membarrier(GLOBAL_EXPEDITED) before it sleeps, so consumers
 * registered for it may release without a fence (docs/concurrency.md).
 */
#define SHMQ_CAP_ASYM		0x1u

/* hdr.data_waiters bits (format 3). */
#define SHMQ_WAIT_FUTEX		0x1u	/* a consumer may sleep on data_futex */
#define SHMQ_WAIT_POLL		0x2u	/* a consumer polls its descriptor */

/* slot.state */
#define SHMQ_SLOT_FREE		0u
#define SHMQ_SLOT_ACTIVE	1u
#define SHMQ_SLOT_EVICTED	2u	/* no longer holds; owner gets an error */

/* slot.claim of a group member: the claimed position | these bits. */
#define SHMQ_CLAIM_HELD		0x1ull
#define SHMQ_CLAIM_POS_MASK	(~(uint64_t)(SHMQ_REC_ALIGN - 1))

/*
 * slot.kind. A group is one named GROUP slot (no lock, persistent) whose
 * position is the group's released frontier and whose claim word is the
 * next position to hand out, plus one MEMBER slot per member (locked like
 * any consumer) pointing at it through slot.group, whose claim word is the
 * message it holds. An OBSERVER never holds the producer.
 */
#define SHMQ_KIND_ANON		1u
#define SHMQ_KIND_NAMED		2u
#define SHMQ_KIND_GROUP		3u
#define SHMQ_KIND_MEMBER	4u
#define SHMQ_KIND_OBSERVER	5u

/*
 * rec.type; the high 16 bits are flags. END closes a producer's session:
 * its payload is a struct shmq_end; like PAD it carries the next data
 * sequence and consumes none. A data record's framing bits say how its
 * session's producer cut the stream (the tools follow them).
 */
#define SHMQ_REC_DATA		1u
#define SHMQ_REC_PAD		2u
#define SHMQ_REC_END		3u
#define SHMQ_REC_TYPE_MASK	0xffffu
#define SHMQ_REC_FRAMING_SHIFT	16		/* 2 bits: SHMQ_FRAMING_* */
#define SHMQ_REC_F_FRAMING	0x30000u
#define SHMQ_REC_F_UNTERMINATED	0x40000u	/* lines/NUL: last item lacked
						   its delimiter */
#define SHMQ_REC_F_KNOWN	0x70000u

/* The payload of an END record. */
struct shmq_end {
	uint32_t kind;		/* SHMQ_END_* */
	uint32_t inc;		/* the incarnation whose session it ends */
};
#define SHMQ_END_CLOSED		1u
#define SHMQ_END_DIED		2u
#define SHMQ_END_ABORTED	3u

/*
 * OFD lock bytes. Locks may lie beyond EOF; they never touch data. Each
 * role holds a write lock on its byte for as long as it lives, and the
 * kernel drops it when the process dies.
 */
#define SHMQ_LOCK_ATTACH	0ull	/* slot table mutations, briefly */
#define SHMQ_LOCK_PRODUCER	1ull	/* the producer role */
/*
 * The producer's session: SESSION0 + (incarnation & 1), taken once the
 * incarnation is stored and before the state says OPEN. A consumer that
 * finds the state OPEN probes this byte for the incarnation it read: a
 * new producer inside its open holds the role byte, never the byte of the
 * session before it, so a dead session is never taken for a live one.
 */
#define SHMQ_LOCK_SESSION0	2ull
#define SHMQ_LOCK_SLOT0		4096ull	/* slot i: SHMQ_LOCK_SLOT0 + i */

struct shmq_hdr {
	/* Line 0: identity, written once by the creator before "ready". */
	uint64_t magic;		/*   0 */
	uint32_t version;	/*   8 */
	uint32_t layout;	/*  12 */
	uint64_t capacity;	/*  16 data ring bytes, power of two */
	uint64_t data_off;	/*  24 file offset of the ring, page aligned */
	uint64_t file_size;	/*  32 data_off + capacity */
	uint32_t max_message;	/*  40 */
	uint32_t nslots;	/*  44 */
	uint64_t salt;		/*  48 random, seeds every checksum */
	uint64_t created_ns;	/*  56 CLOCK_REALTIME */

	/* Line 1: identity, cont. */
	uint32_t flags;		/*  64 SHMQ_FLAG_* */
	uint32_t ready;		/*  68 SHMQ_READY, stored last by creator */
	uint64_t initial_pos;	/*  72 first write position */
	uint32_t evict_ms;	/*  80 evict holders stalled this long; 0 never */
	/*
	 * Incarnations (written by producer_open under the role, then the
	 * header is msynced before any record of the new incarnation). Each
	 * open bumps incarnation and stores inc_pos, then incarnation: a
	 * record at or after inc_pos must carry this incarnation, one before
	 * it at most this one (docs/durability.md, "Incarnations").
	 */
	uint32_t incarnation;	/*  84 of the current (or last) producer */
	uint64_t inc_pos;	/*  88 its first write position */
	uint64_t reserved96;	/*  96 zero */
	/* The last recovery that cut records (producer_open). */
	uint64_t cut_bytes;	/* 104 */
	uint64_t cut_msgs;	/* 112 at most this many messages */
	uint32_t cut_flags;	/* 120 SHMQ_CUT_* */
	uint32_t cut_time;	/* 124 CLOCK_REALTIME seconds */

	/*
	 * Line 2: the producer's published cursors. write_pos: W1 (release)
	 * by the producer, A1 (acquire) by consumers. tail_pos: W2 by the
	 * producer before it overwrites anything, read by attaching
	 * consumers after F1 (see docs/concurrency.md).
	 */
	uint64_t write_pos;	/* 128 end of the last published record */
	uint64_t tail_pos;	/* 136 oldest intact record */
	uint64_t pub_seq;	/* 144 next_seq, stored before write_pos */
	uint64_t durable_seq;	/* 152 see durable_claim; rarely written */
	/*
	 * end_inc: the incarnation whose END record is in the ring (stored
	 * after it is published); a new producer writes the END of the one
	 * before it when this does not match (it died, or had no room).
	 */
	uint32_t end_inc;	/* 160 */
	uint32_t framing;	/* 164 the current session's SHMQ_FRAMING_* */
	/*
	 * batch_ms: a batch-mode producer's time bound (0: none). Durable
	 * consumers that wait longer than it for data past the watermark
	 * sync it themselves, so the bound holds while the producer idles.
	 */
	uint32_t batch_ms;	/* 168 */
	/* prev_end_kind: how the session before this one ended (SHMQ_END_*) */
	uint32_t prev_end_kind;	/* 172 set at producer open */
	/*
	 * durable_claim: what a syncer is about to make durable, stored
	 * before the header msync that carries it (durable_pos, read by
	 * durable consumers, is raised only after that msync succeeded).
	 * In this line with write_pos and tail_pos: a header page that
	 * reaches the disk in pieces cannot pair a new claim with an old
	 * tail, whose records that very sync may have overwritten.
	 */
	uint64_t durable_claim;	/* 176 */
	uint8_t pad2[8];	/* 184 */

	/* Line 3: producer, cold. Written by the producer only. */
	uint64_t next_seq;	/* 192 sequence of the next record */
	uint32_t prod_state;	/* 200 SHMQ_PSTATE_* */
	uint32_t prod_pid;	/* 204 display only */
	uint64_t stat_msgs;	/* 208 counters, relaxed */
	uint64_t stat_bytes;	/* 216 */
	uint64_t stat_full_waits; /* 224 */
	uint64_t durable_pos;	/* 232 synced up to here (any process, CAS) */
	uint32_t prod_epoch;	/* 240 bumped by every producer_open */
	uint32_t sync_error;	/* 244 first failed msync's errno; sticks */
	uint64_t tail_seq;	/* 248 sequence of the record at tail_pos */

	/* Line 4: the data futex: producer bumps it to wake consumers. */
	uint32_t data_futex;	/* 256 */
	uint32_t pad4a;		/* 260 */
	/*
	 * Producer marks (format 3): an application value stored with a
	 * publish, e.g. the NATS importer's last stream sequence. Two entries,
	 * written alternately, each {pos: write_pos of the publish it rides
	 * on, value}; both are stored before that publish's W1, so after a
	 * crash the entry with the highest pos at or below the recovered end
	 * describes the queue (lib/producer.c, "marks").
	 */
	uint64_t mark_pos[2];	/* 264 */
	uint64_t mark_val[2];	/* 280 */
	uint8_t pad4[24];	/* 296 */

	/*
	 * Line 5: consumers that wait (consumers write). data_waiters is a
	 * set of SHMQ_WAIT_* bits: the producer clears it with one xchg
	 * after F2 and wakes whoever the old value names.
	 */
	uint32_t data_waiters;	/* 320 */
	uint8_t pad5[60];	/* 324 */

	/*
	 * Line 6: written by consumers. space_futex wakes a producer waiting
	 * for room; the rest changes under the attach lock.
	 */
	uint32_t space_futex;	/* 384 */
	uint32_t attach_count;	/* 388 consumers ever attached */
	uint64_t floor_pos;	/* 392 released by consumers that left */
	uint32_t slot_gen;	/* 400 bumped by every slot table change */
	uint8_t pad6[44];	/* 404 */

	/* Line 7: the producer says it sleeps (consumers read per release). */
	uint32_t prod_waiting;	/* 448 */
	uint32_t prod_caps;	/* 452 SHMQ_CAP_*, set at producer open */
	/*
	 * prod_pidns: the inode of the producer's pid namespace
	 * (/proc/self/ns/pid), stored at open before prod_epoch; 0 unknown.
	 * A consumer's descriptor watches prod_pid with a pidfd only when it
	 * matches its own namespace (docs/concurrency.md, "Descriptors").
	 * Was padding: a file whose producer predates it reads 0.
	 */
	uint64_t prod_pidns;	/* 456 */
	uint8_t pad7[48];	/* 464 */
};

/*
 * A consumer slot: two cache lines, owned by the consumer that holds the
 * slot's lock. Line 0 is hot (position per release), line 1 cold.
 */
struct shmq_slot {
	uint64_t position;	/*   0 R1 release by owner; A2 by producer */
	uint64_t next_seq;	/*   8 sequence of the next record, relaxed */
	uint64_t bytes;		/*  16 payload bytes released, relaxed */
	uint64_t progress_ns;	/*  24 CLOCK_MONOTONIC of last progress */
	uint32_t state;		/*  32 SHMQ_SLOT_* (attach lock) */
	uint32_t kind;		/*  36 SHMQ_KIND_* (attach lock) */
	uint32_t pid;		/*  40 display only */
	/*
	 * ended_inc (format 3): a named consumer's last session end,
	 * stored once it has passed it (its next call or its close), so
	 * that a consumer that closed after an end never gets it again.
	 */
	uint32_t ended_inc;	/*  44 */
	uint64_t attach_ns;	/*  48 CLOCK_REALTIME */
	uint32_t group;		/*  56 reserved: group slot of a member */
	uint32_t generation;	/*  60 bumped at each claim */
	char name[56];		/*  64 NUL-padded, no NUL when 56 long */
	uint64_t claim;		/* 120 reserved: group claim word */
};

/*
 * A record: header then payload, padded to 8 bytes. inc is the writing
 * producer's incarnation and lap is (uint32_t)(position / capacity):
 * both are under the CRC in every checksum mode, so that a record left
 * from an earlier lap or an earlier incarnation at the same spot (a page
 * the disk never got after a power loss) is never taken for a new one.
 * A record never wraps;
 * a PAD record fills the end of the ring when the next record would not
 * fit, and when fewer than SHMQ_REC_HDR bytes remain before the end there
 * is no room even for a PAD header, so readers skip to the start.
 */
struct shmq_rec {
	uint32_t len;		/*  0 payload bytes */
	uint32_t type;		/*  4 SHMQ_REC_* | flags */
	uint64_t seq;		/*  8 */
	uint32_t inc;		/* 16 hdr.incarnation of its producer */
	uint32_t lap;		/* 20 (uint32_t)(position / capacity) */
	uint32_t crc;		/* 24 CRC32C(salt, header with crc=0, payload;
				      no payload with SHMQ_FLAG_HDR_CRC or
				      in a PAD record) */
	uint32_t ts_lo;		/* 28 low 32 bits of send time in ms, for age */
};

_Static_assert(sizeof(struct shmq_hdr) == SHMQ_HDR_SIZE, "header size");
_Static_assert(offsetof(struct shmq_hdr, magic) == 0, "magic");
_Static_assert(offsetof(struct shmq_hdr, version) == 8, "version");
_Static_assert(offsetof(struct shmq_hdr, layout) == 12, "layout");
_Static_assert(offsetof(struct shmq_hdr, capacity) == 16, "capacity");
_Static_assert(offsetof(struct shmq_hdr, data_off) == 24, "data_off");
_Static_assert(offsetof(struct shmq_hdr, file_size) == 32, "file_size");
_Static_assert(offsetof(struct shmq_hdr, max_message) == 40, "max_message");
_Static_assert(offsetof(struct shmq_hdr, nslots) == 44, "nslots");
_Static_assert(offsetof(struct shmq_hdr, salt) == 48, "salt");
_Static_assert(offsetof(struct shmq_hdr, created_ns) == 56, "created_ns");
_Static_assert(offsetof(struct shmq_hdr, flags) == 64, "flags");
_Static_assert(offsetof(struct shmq_hdr, ready) == 68, "ready");
_Static_assert(offsetof(struct shmq_hdr, initial_pos) == 72, "initial_pos");
_Static_assert(offsetof(struct shmq_hdr, evict_ms) == 80, "evict_ms");
_Static_assert(offsetof(struct shmq_hdr, incarnation) == 84, "incarnation");
_Static_assert(offsetof(struct shmq_hdr, inc_pos) == 88, "inc_pos");
_Static_assert(offsetof(struct shmq_hdr, durable_claim) == 176, "claim");
_Static_assert(offsetof(struct shmq_hdr, cut_bytes) == 104, "cut_bytes");
_Static_assert(offsetof(struct shmq_hdr, cut_time) == 124, "cut_time");
_Static_assert(offsetof(struct shmq_hdr, write_pos) == 128, "write_pos");
_Static_assert(offsetof(struct shmq_hdr, tail_pos) == 136, "tail_pos");
_Static_assert(offsetof(struct shmq_hdr, pub_seq) == 144, "pub_seq");
_Static_assert(offsetof(struct shmq_hdr, durable_seq) == 152, "durable_seq");
_Static_assert(offsetof(struct shmq_hdr, end_inc) == 160, "end_inc");
_Static_assert(offsetof(struct shmq_hdr, batch_ms) == 168, "batch_ms");
_Static_assert(sizeof(struct shmq_end) == 8, "end record payload");
_Static_assert(offsetof(struct shmq_hdr, next_seq) == 192, "next_seq");
_Static_assert(offsetof(struct shmq_hdr, prod_state) == 200, "prod_state");
_Static_assert(offsetof(struct shmq_hdr, prod_pid) == 204, "prod_pid");
_Static_assert(offsetof(struct shmq_hdr, stat_msgs) == 208, "stat_msgs");
_Static_assert(offsetof(struct shmq_hdr, durable_pos) == 232, "durable_pos");
_Static_assert(offsetof(struct shmq_hdr, prod_epoch) == 240, "prod_epoch");
_Static_assert(offsetof(struct shmq_hdr, sync_error) == 244, "sync_error");
_Static_assert(offsetof(struct shmq_hdr, tail_seq) == 248, "tail_seq");
_Static_assert(offsetof(struct shmq_hdr, data_futex) == 256, "data_futex");
_Static_assert(offsetof(struct shmq_hdr, mark_pos) == 264, "mark_pos");
_Static_assert(offsetof(struct shmq_hdr, mark_val) == 280, "mark_val");
_Static_assert(offsetof(struct shmq_hdr, data_waiters) == 320, "waiters");
_Static_assert(offsetof(struct shmq_hdr, space_futex) == 384, "space_futex");
_Static_assert(offsetof(struct shmq_hdr, prod_pidns) == 456, "prod_pidns");
_Static_assert(offsetof(struct shmq_hdr, attach_count) == 388, "attaches");
_Static_assert(offsetof(struct shmq_hdr, floor_pos) == 392, "floor_pos");
_Static_assert(offsetof(struct shmq_hdr, slot_gen) == 400, "slot_gen");
_Static_assert(offsetof(struct shmq_hdr, prod_waiting) == 448, "waiting");
_Static_assert(offsetof(struct shmq_hdr, prod_caps) == 452, "prod_caps");

_Static_assert(sizeof(struct shmq_slot) == SHMQ_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct shmq_slot, position) == 0, "slot position");
_Static_assert(offsetof(struct shmq_slot, next_seq) == 8, "slot next_seq");
_Static_assert(offsetof(struct shmq_slot, progress_ns) == 24, "slot prog");
_Static_assert(offsetof(struct shmq_slot, state) == 32, "slot state");
_Static_assert(offsetof(struct shmq_slot, kind) == 36, "slot kind");
_Static_assert(offsetof(struct shmq_slot, pid) == 40, "slot pid");
_Static_assert(offsetof(struct shmq_slot, attach_ns) == 48, "slot attach");
_Static_assert(offsetof(struct shmq_slot, group) == 56, "slot group");
_Static_assert(offsetof(struct shmq_slot, name) == 64, "slot name");
_Static_assert(offsetof(struct shmq_slot, claim) == 120, "slot claim");

_Static_assert(sizeof(struct shmq_rec) == SHMQ_REC_HDR, "record header");
_Static_assert(offsetof(struct shmq_rec, seq) == 8, "rec seq");
_Static_assert(offsetof(struct shmq_rec, inc) == 16, "rec inc");
_Static_assert(offsetof(struct shmq_rec, lap) == 20, "rec lap");
_Static_assert(offsetof(struct shmq_rec, crc) == 24, "rec crc");

#endif /* SHMQ_FORMAT_H */
