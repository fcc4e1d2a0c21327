/* SPDX-License-Identifier: MIT */
/*
 * Recovery, run by every producer open: validate the published records
 * from the tail, keep the longest valid prefix, cut the rest, and clamp
 * every cursor that pointed past the cut. After a mere process crash the
 * published records are intact and nothing is cut; after a power loss the
 * disk may hold any mixture of old and new pages (docs/durability.md).
 *
 * What makes a record at position P valid is in the record itself: its
 * lap tag (P / capacity) and CRC, its sequence (one more than the
 * record before it), and its incarnation (no older than the record
 * before it; exactly the header's incarnation at or after inc_pos, at
 * most that before it). Nothing depends on the order in which two fields
 * of the header page reach the disk: tail_seq is not needed to anchor
 * the chain, the record at tail_pos anchors itself.
 */
#include <string.h>
#include <time.h>

#include "internal.h"

struct walk {
	uint64_t end;		/* first invalid position, or w */
	uint64_t first_seq;	/* sequence of the record at the tail */
	uint64_t next_seq;	/* sequence after the last valid record */
	bool found;		/* at least one valid record */
};

static bool rec_ok(struct shmq *q, const struct shmqi_rec_view *v,
		   uint64_t expect, uint32_t prev_inc, bool first,
		   uint32_t inc, uint64_t ipos)
{
	if (!first && (v->seq != expect || inc_before(v->inc, prev_inc)))
		return false;
	/* Written by the current incarnation, or left from an older one. */
	if (v->inc != inc &&
	    (!inc_before(v->inc, inc) || !pos_before(v->pos, ipos)))
		return false;
	return shmqi_rec_crc_ok(q, v, v->hdr + 1);	/* PAD: its header */
}

static void walk(struct shmq *q, uint64_t t, uint64_t w, uint32_t inc,
		 uint64_t ipos, struct walk *r)
{
	struct shmqi_rec_view v;
	uint64_t pos = t, expect = 0;
	uint32_t prev_inc = 0;
	bool first = true;

	r->found = false;
	r->first_seq = 0;
	while (pos != w) {
		if (shmqi_rec_view(q, pos, w, &v) < 0)
			break;
		if (v.hdr) {
			if (!rec_ok(q, &v, expect, prev_inc, first, inc, ipos))
				break;
			if (first)
				r->first_seq = v.seq;
			first = false;
			r->found = true;
			prev_inc = v.inc;
			/* Padding carries the next data sequence. */
			expect = v.type == SHMQ_REC_DATA ? v.seq + 1 : v.seq;
		}
		pos = v.next;
	}
	r->end = pos;
	r->next_seq = expect;
}

/*
 * The end of the valid chain from FROM (a record boundary) towards TO,
 * by recovery's rules: for a sync while no producer holds the role, which
 * must not claim as durable records that no recovery has validated
 * (after a power loss, before the next producer open).
 */
uint64_t shmqi_valid_end(struct shmq *q, uint64_t from, uint64_t to)
{
	struct walk r;

	walk(q, from, to, load_acquire(&q->hdr->incarnation),
	     load_relaxed(&q->hdr->inc_pos), &r);
	return r.end;
}

/* Bring POS into [t, end]: a cursor is never trusted past the cut. */
static void clamp(uint64_t *pos, uint64_t t, uint64_t end, bool *changed)
{
	uint64_t p = *pos;

	if (pos_before(end, p) || (p & (SHMQ_REC_ALIGN - 1)))
		p = end;
	else if (pos_before(p, t))
		p = t;
	if (p != *pos) {
		*pos = p;
		*changed = true;
	}
}

/*
 * A live holder may sit below the tail while it attaches (F1: it stored
 * its position and has yet to re-read tail_pos, and the producer that
 * moved the tail died before its re-scan). The records it is about to
 * read are intact, and the new producer's limit stays behind it
 * (shmq_producer_open): leave it there. A dead one is lifted.
 */
static bool live_below_tail(struct shmq *q, uint32_t i, uint64_t pos,
			    uint64_t t, uint64_t end)
{
	return pos_before(pos, t) &&
	       !pos_before(pos, end - q->g.capacity) &&
	       !(pos & (SHMQ_REC_ALIGN - 1)) &&
	       shmqi_lock_held(q->fd, SHMQ_LOCK_SLOT0 + i) == 1;
}

static bool clamp_cursors(struct shmq *q, uint64_t t, uint64_t end)
{
	struct shmq_hdr *h = q->hdr;
	bool changed = false;
	uint64_t v;

	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];
		bool c = false;

		if (load_acquire(&s->state) == SHMQ_SLOT_FREE)
			continue;
		v = load_acquire(&s->position);
		if (!live_below_tail(q, i, v, t, end)) {
			clamp(&v, t, end, &c);
			if (c)
				store_fenced(&s->position, v);
			changed |= c;
		}
		c = false;
		if (load_relaxed(&s->kind) == SHMQ_KIND_GROUP) {
			/* The group's claim word is a cursor too. */
			v = load_acquire(&s->claim);
			clamp(&v, t, end, &c);
			if (c)
				store_fenced(&s->claim, v);
		} else if (load_relaxed(&s->kind) == SHMQ_KIND_MEMBER &&
			   (load_acquire(&s->claim) & SHMQ_CLAIM_HELD)) {
			/* A claim on a record that was cut is void. */
			v = load_acquire(&s->claim) & SHMQ_CLAIM_POS_MASK;
			clamp(&v, t, end, &c);
			if (c || v == end)
				store_fenced(&s->claim, 0);
			c = c || v == end;
		}
		changed |= c;
	}
	v = load_acquire(&h->floor_pos);
	if (pos_before(end, v) || pos_before(v, t)) {
		store_release(&h->floor_pos, pos_before(end, v) ? end : t);
		changed = true;
	}
	/* Synced data that did not validate: the disk lost it, or a scribbler. */
	v = load_acquire(&h->durable_pos);
	if (pos_before(end, v)) {
		store_fenced(&h->durable_pos, end);
		changed = true;
	}
	v = load_acquire(&h->durable_claim);
	if (pos_before(end, v)) {
		store_fenced(&h->durable_claim, end);
		changed = true;
	}
	return changed;
}

/*
 * How far the disk says data was made durable: the higher of the claim
 * (stored before the header msync) and the watermark (raised after it),
 * never past write_pos, never before the tail.
 */
static uint64_t durable_mark(struct shmq_hdr *h, uint64_t t, uint64_t w)
{
	uint64_t d = load_acquire(&h->durable_claim);
	uint64_t a = load_acquire(&h->durable_pos);

	if (w - a <= w - t && pos_before(d, a))
		d = a;
	if (w - d > w - t)	/* before the tail, or past write_pos */
		d = pos_before(w, d) ? w : t;
	return d;
}

/*
 * Validate [tail_pos, write_pos), cut at the first invalid record and
 * clamp the cursors; on return *TAILP and *ENDP bound the ring the new
 * producer continues from and p->seq, p->tail_seq are set. A cut below
 * the durable watermark fails with SHMQ_ELOSS (nothing changed) unless
 * the producer passed SHMQ_PRODUCER_ACCEPT_LOSS. Idempotent: a second run
 * finds the same chain ending at the (lowered) write position and has
 * nothing left to change; killed anywhere, the next open redoes it.
 * Returns 0, SHMQ_ELOSS, or -EBADMSG when the header's cursors are not
 * even consistent with each other (no tail to start from).
 */
int shmqi_recover(struct shmq_producer *p, uint64_t *tailp, uint64_t *endp)
{
	struct shmq *q = p->q;
	struct shmq_hdr *h = q->hdr;
	uint64_t w = load_acquire(&h->write_pos);
	uint64_t t = load_acquire(&h->tail_pos);
	uint32_t inc = load_acquire(&h->incarnation);
	uint64_t ipos = load_relaxed(&h->inc_pos);
	uint64_t top_seq, d, dseq;
	struct walk r;

	if (w - t > q->g.capacity || ((w | t) & (SHMQ_REC_ALIGN - 1)))
		return shmqi_fail(-EBADMSG, "header fields write_pos/tail_pos: %llu/%llu inconsistent",
				  (unsigned long long)w, (unsigned long long)t);
	walk(q, t, w, inc, ipos, &r);
	/*
	 * No valid record: the ring was empty (t == w: tail_seq is the
	 * sequence of the next record, stored before the tail moved up to
	 * w), or everything from the tail was cut (any sequence will do: the
	 * new incarnation tells the new records from the old).
	 */
	if (!r.found) {
		r.first_seq = r.next_seq = load_relaxed(&h->tail_seq);
		/*
		 * A header page written back between the stores of tail_seq
		 * and tail_pos pairs the new tail with the old tail_seq: never
		 * go below the sequence a sync saw at its watermark (exact,
		 * and at most the next one: shmq_sync).
		 */
		dseq = load_relaxed(&h->durable_seq);
		if (pos_before(r.next_seq, dseq))
			r.first_seq = r.next_seq = dseq;
	}
	top_seq = load_relaxed(&h->pub_seq);
	if (pos_before(top_seq, load_relaxed(&h->next_seq)))
		top_seq = load_relaxed(&h->next_seq);
	d = durable_mark(h, t, w);
	p->cut_bytes = w - r.end;
	p->cut_msgs = pos_before(r.next_seq, top_seq) ? top_seq - r.next_seq : 0;
	p->cut_durable = pos_before(r.end, d) ? d - r.end : 0;
	if (p->cut_durable && !(p->flags & SHMQ_PRODUCER_ACCEPT_LOSS)) {
		dseq = load_relaxed(&h->durable_seq);
		return shmqi_fail(SHMQ_ELOSS, "recovery would cut %llu bytes (up to %llu messages) acknowledged as durable: the disk lost them, or the file was damaged; pass SHMQ_PRODUCER_ACCEPT_LOSS (shmq put --accept-loss) to continue without them",
				  (unsigned long long)p->cut_durable,
				  (unsigned long long)(pos_before(r.next_seq, dseq) ?
						       dseq - r.next_seq : 0));
	}
	KILL_POINT("recover:after-walk");
	if (r.end != w) {
		/*
		 * Lowering write_pos is safe only while nobody has read past
		 * the cut: after a power loss nobody has; a live consumer past
		 * it (the file was corrupted under it) gets -EBADMSG.
		 */
		store_fenced(&h->write_pos, r.end);
		/* The sequences of the cut records are free again. */
		store_relaxed(&h->pub_seq, r.next_seq);
		store_relaxed(&h->next_seq, r.next_seq);
		store_relaxed(&h->cut_bytes, p->cut_bytes);
		store_relaxed(&h->cut_msgs, p->cut_msgs);
		store_relaxed(&h->cut_flags, p->cut_durable ? SHMQ_CUT_DURABLE : 0u);
		store_relaxed(&h->cut_time, (uint32_t)time(NULL));
	}
	KILL_POINT("recover:after-cut");
	(void)clamp_cursors(q, t, r.end);
	KILL_POINT("recover:after-clamp");
	p->seq = r.next_seq;
	p->tail_seq = r.first_seq;
	*tailp = t;
	*endp = r.end;
	/* shmq_producer_open() syncs the header before any new record. */
	return 0;
}
