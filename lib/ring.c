/* SPDX-License-Identifier: MIT */
/*
 * The ring algorithm's pure part: record sizes and the validation of one
 * record read from the shared ring. No system calls, no waiting.
 */
#include <string.h>

#include "internal.h"

/*
 * Validate the record at POS, which must end at or before END (a published
 * write position), and describe it in *V. The header is copied out once;
 * only the copy is used. Returns 0 or -EBADMSG (detail says which field).
 */
int shmqi_rec_view(const struct shmq *q, uint64_t pos, uint64_t end,
		   struct shmqi_rec_view *v)
{
	const struct shmq_geom *g = &q->g;
	uint64_t off = pos & g->mask;
	uint64_t room = g->capacity - off;
	uint64_t avail = end - pos;
	struct shmq_rec h;

	if (avail > g->capacity || (pos & (SHMQ_REC_ALIGN - 1)))
		return shmqi_fail(-EBADMSG, "position %llu outside the ring",
				  (unsigned long long)pos);
	v->hdr = NULL;
	v->pos = pos;
	if (room < SHMQ_REC_HDR) {
		/* No room for even a PAD header: readers skip to the start. */
		if (avail < room)
			return shmqi_fail(-EBADMSG,
					  "position %llu: ring end not published",
					  (unsigned long long)pos);
		v->type = SHMQ_REC_PAD;
		v->len = 0;
		v->next = pos + room;
		return 0;
	}
	if (avail < SHMQ_REC_HDR)
		return shmqi_fail(-EBADMSG, "record at %llu: header past write position",
				  (unsigned long long)pos);
	v->hdr = (struct shmq_rec *)(q->data + off);
	memcpy(&h, v->hdr, sizeof(h));
	v->type = h.type & SHMQ_REC_TYPE_MASK;
	v->flags = h.type & ~SHMQ_REC_TYPE_MASK;
	v->len = h.len;
	v->seq = h.seq;
	v->crc = h.crc;
	v->ts_lo = h.ts_lo;
	v->inc = h.inc;
	/*
	 * A record written at this position in an earlier lap (after a power
	 * loss, a page the disk never got) or anywhere else is not this one.
	 */
	if (h.lap != shmqi_lap(g, pos))
		return shmqi_fail(-EBADMSG, "record at %llu: lap %u, expected %u",
				  (unsigned long long)pos, h.lap, shmqi_lap(g, pos));
	/*
	 * The incarnation rule (docs/durability.md), for every reader: after
	 * a power loss, records of an older incarnation may lie past inc_pos
	 * before a producer has recovered the ring. incarnation is stored
	 * (release) after inc_pos and before any record of its producer is
	 * published (W1), and our caller acquired write_pos: load it first.
	 */
	if (shmqi_inc_bad(q, pos, h.inc))
		return shmqi_fail(-EBADMSG, "record at %llu: incarnation %u, the queue's is %u from %llu (left from before a power loss?)",
				  (unsigned long long)pos, h.inc,
				  load_acquire(&q->hdr->incarnation),
				  (unsigned long long)load_relaxed(&q->hdr->inc_pos));
	if (v->type == SHMQ_REC_PAD) {
		if (h.len != room - SHMQ_REC_HDR || avail < room)
			return shmqi_fail(-EBADMSG, "record at %llu: bad padding length %u",
					  (unsigned long long)pos, h.len);
		v->next = pos + room;
		return 0;
	}
	if (v->type == SHMQ_REC_END && h.len != sizeof(struct shmq_end))
		return shmqi_fail(-EBADMSG, "record at %llu: bad end record length %u",
				  (unsigned long long)pos, h.len);
	if ((v->type != SHMQ_REC_DATA && v->type != SHMQ_REC_END) ||
	    (v->flags & ~SHMQ_REC_F_KNOWN))
		return shmqi_fail(-EBADMSG, "record at %llu: bad type %#x",
				  (unsigned long long)pos, h.type);
	if (h.len > g->max_message || SHMQ_REC_HDR + (uint64_t)h.len > room)
		return shmqi_fail(-EBADMSG, "record at %llu: bad length %u",
				  (unsigned long long)pos, h.len);
	if (shmqi_rec_size(h.len) > avail)
		return shmqi_fail(-EBADMSG, "record at %llu: runs past write position",
				  (unsigned long long)pos);
	v->next = pos + shmqi_rec_size(h.len);
	return 0;
}

/*
 * Does the record described by V carry the checksum of
 * PAYLOAD? Padding is summed over its header only.
 */
bool shmqi_rec_crc_ok(const struct shmq *q, const struct shmqi_rec_view *v,
		      const void *payload)
{
	struct shmq_rec h;
	bool whole = v->type == SHMQ_REC_END ||
		     (v->type == SHMQ_REC_DATA && !(q->g.flags & SHMQ_FLAG_HDR_CRC));

	shmqi_rec_pack(&h, v->len, v->type | v->flags, v->seq, v->inc,
		       shmqi_lap(&q->g, v->pos), 0, v->ts_lo);
	return shmqi_rec_crc(q->g.salt, &h, payload, whole ? v->len : 0) == v->crc;
}
