/* SPDX-License-Identifier: MIT */
/*
 * Recovery, run by every producer open: validate the published records
 * from the tail, keep the longest valid prefix, cut the rest, and clamp
 * every cursor that pointed past the cut. After a mere process crash the
 * published records are intact and nothing is cut; after a power loss the
 * disk may hold any mixture of old and new pages (docs/durability.md).
 */
#include <string.h>

#include "internal.h"

/*
 * The first record at the tail anchors the sequence. tail_seq is stored
 * just before tail_pos, so a crash (or a writeback copying the header)
 * between the two stores leaves the old tail with the new tail_seq: the
 * record at the tail is then older than tail_seq, and the chain from it
 * must reach tail_seq. A record older than tail_seq whose chain does not
 * is left from an earlier lap (its page never reached the disk): the ring
 * is cut at the tail.
 */
struct walk {
	uint64_t end;		/* first invalid position, or w */
	uint64_t first_seq;	/* sequence of the record at the tail */
	uint64_t next_seq;	/* sequence after the last valid record */
	bool anchored;		/* tail_seq was met */
};

static bool rec_ok(struct shmq *q, const struct shmqi_rec_view *v,
		   uint64_t expect, bool first)
{
	if (!first && v->seq != expect)
		return false;
	/* Padding carries the next data sequence; its bytes are not summed. */
	if (v->type == SHMQ_REC_PAD)
		return true;
	return shmqi_rec_crc_ok(q, v, v->hdr + 1);
}

static void walk(struct shmq *q, uint64_t t, uint64_t w, uint64_t tseq,
		 struct walk *r)
{
	struct shmqi_rec_view v;
	uint64_t pos = t, expect = tseq, good = t;
	bool first = true;

	r->anchored = false;
	r->first_seq = tseq;
	while (pos != w) {
		if (shmqi_rec_view(q, pos, w, &v) < 0)
			break;
		if (v.hdr) {
			if (!rec_ok(q, &v, expect, first))
				break;
			if (first) {
				/* Older than tail_seq by at most a ring of records. */
				if (pos_before(tseq, v.seq) ||
				    tseq - v.seq > q->g.capacity / SHMQ_REC_HDR)
					break;
				r->first_seq = v.seq;
				first = false;
			}
			if (v.seq == tseq)
				r->anchored = true;
			expect = v.type == SHMQ_REC_DATA ? v.seq + 1 : v.seq;
		}
		pos = v.next;
		if (r->anchored)
			good = pos;
	}
	/* A whole valid ring the old tail_seq already pointed past. */
	if (!r->anchored && pos == w && !first && expect == tseq) {
		r->anchored = true;
		good = w;
	}
	/* Nothing before the record carrying tail_seq can be trusted. */
	if (!r->anchored) {
		r->end = t;
		r->first_seq = r->next_seq = tseq;
		return;
	}
	r->end = good;
	r->next_seq = expect;
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
		clamp(&v, t, end, &c);
		if (c)
			store_fenced(&s->position, v);
		changed |= c;
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
	return changed;
}

/*
 * Validate [tail_pos, write_pos), cut at the first invalid record and
 * clamp the cursors; on return *TAILP and *ENDP bound the ring the new producer
 * continues from and p->seq, p->tail_seq are set. Idempotent: a second
 * run finds the same chain ending at the (lowered) write position and has
 * nothing left to change; killed anywhere, the next open redoes it.
 * Returns 0 or -EBADMSG when the header's cursors are not even
 * consistent with each other (no tail to start from).
 */
int shmqi_recover(struct shmq_producer *p, uint64_t *tailp, uint64_t *endp)
{
	struct shmq *q = p->q;
	struct shmq_hdr *h = q->hdr;
	uint64_t w = load_acquire(&h->write_pos);
	uint64_t t = load_acquire(&h->tail_pos);
	uint64_t tseq = load_relaxed(&h->tail_seq);
	struct walk r;
	bool changed;

	if (w - t > q->g.capacity || ((w | t) & (SHMQ_REC_ALIGN - 1)))
		return shmqi_fail(-EBADMSG, "header fields write_pos/tail_pos: %llu/%llu inconsistent",
				  (unsigned long long)w, (unsigned long long)t);
	walk(q, t, w, tseq, &r);
	KILL_POINT("recover:after-walk");
	changed = r.end != w;
	if (changed) {
		/*
		 * Lowering write_pos is safe only while nobody has read past
		 * the cut: after a power loss nobody has; a live consumer past
		 * it (the file was corrupted under it) gets -EBADMSG.
		 */
		store_fenced(&h->write_pos, r.end);
		p->cut_bytes = w - r.end;
	}
	KILL_POINT("recover:after-cut");
	changed |= clamp_cursors(q, t, r.end);
	KILL_POINT("recover:after-clamp");
	p->seq = r.next_seq;
	p->tail_seq = r.first_seq;
	*tailp = t;
	*endp = r.end;
	/* Make the cut durable before new records are written over it. */
	if (changed)
		(void)shmqi_sync_header(q);
	return 0;
}
