/* SPDX-License-Identifier: MIT */
/*
 * Consumer groups: members share their group's stream by claiming records
 * from the group slot's claim word with CAS. The group slot's position
 * (what holds the producer) is the frontier: the lowest record still
 * claimed-but-unreleased, or the claim word if none is. A member that dies
 * holding a claim keeps it in its slot; a live member adopts the dead slot
 * and delivers the record again, flagged as redelivered. No member is
 * trusted to advance the frontier after its own release: it may die first,
 * so idle members, rescuers and the waiting producer advance it too (D1).
 * docs/concurrency.md has the protocol and the labelled pairs (C1..C4, D1).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static bool is_member_of(struct shmq *q, struct shmq_slot *s, uint32_t gidx)
{
	return load_acquire(&s->state) == SHMQ_SLOT_ACTIVE &&
	       load_relaxed(&s->kind) == SHMQ_KIND_MEMBER &&
	       load_relaxed(&s->group) == gidx && s != &q->slots[gidx];
}

/*
 * For stat: the sequence at the frontier, from the record there (which the
 * group still holds, so it is intact), or the producer's next one.
 */
static void group_seq(struct shmq *q, struct shmq_slot *g, uint64_t f)
{
	uint64_t w = load_acquire(&q->hdr->write_pos);
	struct shmqi_rec_view v;

	for (int i = 0; i < 2 && f != w; i++) {
		if (shmqi_rec_view(q, f, w, &v) < 0)
			return;
		if (v.type == SHMQ_REC_DATA) {
			store_relaxed(&g->next_seq, v.seq);
			return;
		}
		f = v.next;
	}
	if (f == w)
		store_relaxed(&g->next_seq, load_relaxed(&q->hdr->next_seq));
}

/*
 * Raise the group's position to the frontier. C2: the claim word is read
 * (acquire) before the members' claims: a member stores its claim before
 * the CAS that moves the claim word past it (C1), so a claim word that has
 * moved on implies that claim is visible here. Racing advancers each
 * compute a frontier that was valid when computed; the highest wins.
 *
 * Anyone may call it at any time: a member after its release, an idle
 * member, a rescuer, the producer waiting for space (D1). The result only
 * depends on shared words, never on the caller having released anything.
 */
void shmqi_group_advance(struct shmq *q, uint32_t gidx)
{
	struct shmq_slot *g = &q->slots[gidx];
	uint64_t f = load_acquire(&g->claim);		/* C2 */
	uint64_t cur;

	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];
		uint64_t cl;

		if (!is_member_of(q, s, gidx))
			continue;
		cl = load_acquire(&s->claim);
		if ((cl & SHMQ_CLAIM_HELD) &&
		    pos_before(cl & SHMQ_CLAIM_POS_MASK, f))
			f = cl & SHMQ_CLAIM_POS_MASK;
	}
	cur = load_acquire(&g->position);
	while (pos_before(cur, f)) {
		/* C3: a fenced CAS, as R1 for a broadcast consumer. */
		uint64_t seen = rmw_cas(&g->position, cur, f);

		if (seen == cur) {
			group_seq(q, g, f);
			break;
		}
		cur = seen;
	}
	shmqi_wake_producer(q);
}

/*
 * D1, the producer's side: before it sleeps for space (shmqi_reclaim_dead),
 * the producer advances every group whose position lags its claim word,
 * so that a group whose last releaser died between C4 and its advance
 * cannot hold it for ever, even with no live member. It computes the same
 * frontier as a member would (C2 then the claims, then the C3 CAS-max),
 * and its next holders scan (A2, acquire) sees the raised position. Its
 * overwrites below a cleared claim are ordered after the member's reads by
 * C4 (the member's fenced clear) and the acquire load of the claim here.
 */
void shmqi_groups_advance(struct shmq *q)
{
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *g = &q->slots[i];

		if (load_acquire(&g->state) != SHMQ_SLOT_ACTIVE ||
		    load_relaxed(&g->kind) != SHMQ_KIND_GROUP)
			continue;
		/* Only a filter: the advance reads both again, in order. */
		if (pos_before(load_acquire(&g->position),
			       load_acquire(&g->claim)))
			shmqi_group_advance(q, i);
	}
}

/*
 * Adopt the claim of a dead member of our group, if there is one. The dead
 * slot's lock is taken on our own description and kept until we release
 * the record, so no other member adopts it too; the claim stays in that
 * slot, so the frontier never loses sight of it (C4). Dead members without
 * a claim are freed on the way, and the frontier advanced past what they
 * had released (D1: one may have died between its C4 and its advance).
 *
 * WAIT: the caller is about to report the end of the stream, after which
 * nobody may come back for a dead member's claim: wait for the attach
 * lock, bounded, instead of trying it once. Returns 1 when a record was
 * adopted, 0 when there is none (or, without WAIT, the lock was busy), or
 * -errno when WAIT and the lock could not be had.
 */
int shmqi_member_rescue(struct shmq_consumer *c, bool wait)
{
	struct shmq *q = c->q;
	int got = 0, freed = 0, ret;

	if (wait) {
		ret = shmqi_lock_wait(c->lock_fd, SHMQ_LOCK_ATTACH,
				      SHMQ_ATTACH_LOCK_NS);
		if (ret < 0)
			return shmqi_fail(ret, "waiting for the slot table lock to look for a dead member's claim: %s",
					  shmq_strerror(ret));
	} else if (shmqi_lock_try(c->lock_fd, SHMQ_LOCK_ATTACH) < 0) {
		return 0;
	}
	for (uint32_t i = 0; i < q->g.nslots && !got; i++) {
		struct shmq_slot *s = &q->slots[i];
		uint64_t cl;

		if (s == c->slot || !is_member_of(q, s, c->gidx))
			continue;
		if (shmqi_lock_try(c->lock_fd, SHMQ_LOCK_SLOT0 + i) < 0)
			continue;	/* alive */
		cl = load_acquire(&s->claim);
		if (cl & SHMQ_CLAIM_HELD) {
			c->adopt_idx = (int)i;
			c->claim_pos = cl & SHMQ_CLAIM_POS_MASK;
			got = 1;
			break;	/* keep its lock until the release */
		}
		shmqi_free_slot_locked(q, i);
		shmqi_unlock(c->lock_fd, SHMQ_LOCK_SLOT0 + i);
		freed++;
	}
	shmqi_unlock(c->lock_fd, SHMQ_LOCK_ATTACH);
	if (freed)
		shmqi_group_advance(q, c->gidx);		/* D1 */
	return got;
}

/*
 * The claim word, or the record at it (claimed or adopted), makes no
 * sense. An evicted group no longer holds the producer, which may then
 * have lapped a member delayed between its loads: that is SHMQ_EVICTED,
 * not corruption. E1: the state is read after the reads that failed
 * (fence_acquire), and the producer stores EVICTED (fenced) before it
 * writes past what the group held, so a write_pos or a record that shows
 * the lap implies the state is visible.
 */
static int failed_or_evicted(struct shmq_consumer *c, int err)
{
	fence_acquire();					/* E1 */
	if (load_relaxed(&c->group->state) == SHMQ_SLOT_EVICTED)
		return shmqi_fail(SHMQ_EVICTED, "this consumer was evicted: the producer stopped waiting for its group");
	return err;
}

/*
 * Claim the next record of the group. Returns 0 with c->view and
 * c->claim_pos set, 1 when there is nothing to claim (c->pos is then the
 * claim word, for wait_data), or -errno.
 */
int shmqi_member_claim(struct shmq_consumer *c)
{
	struct shmq *q = c->q;
	struct shmq_slot *g = c->group;
	bool stale = false;
	uint64_t cl, w;
	int ret;

	for (;;) {
		cl = load_acquire(&g->claim);
		KILL_POINT("group:claim-read");
		w = load_acquire(&q->hdr->write_pos);		/* A1 */
		if (w - cl > q->g.capacity) {
			/* Preempted between the loads: the others moved on. */
			if (load_acquire(&g->claim) != cl)
				continue;
			ret = shmqi_fail(-EBADMSG, "group claim word %llu outside the ring",
					 (unsigned long long)cl);
			return failed_or_evicted(c, ret);
		}
		if (cl == w) {
			c->pos = cl;
			/*
			 * A claim left by a lost CAS must not pin the frontier:
			 * clear it (fenced, so that the advance below, ours or
			 * anyone's, reads it clear after C2).
			 */
			if (stale || load_relaxed(&c->slot->claim))
				store_fenced(&c->slot->claim, 0);
			/*
			 * D1: the frontier lags the claim word. Someone holds a
			 * record, or a member died between its C4 and its
			 * advance, or after a lost CAS an advance had counted:
			 * then nobody else would advance, and the group would
			 * hold the producer for ever. Advancing is harmless in
			 * the first case, so do not tell them apart.
			 */
			if (pos_before(load_acquire(&g->position), cl))
				shmqi_group_advance(q, c->gidx);
			return 1;
		}
		ret = shmqi_rec_view(q, cl, w, &c->view);
		if (ret < 0) {
			if (load_acquire(&g->claim) != cl)
				continue;	/* someone moved on: stale read */
			return failed_or_evicted(c, ret);
		}
		/* Members share data; a session's end reaches each by state. */
		if (c->view.type != SHMQ_REC_DATA) {
			(void)rmw_cas(&g->claim, cl, c->view.next);
			continue;
		}
		/* C1: our claim is visible before the claim word moves past it. */
		store_relaxed(&c->slot->claim, cl | SHMQ_CLAIM_HELD);
		KILL_POINT("group:claim-before-cas");
		if (rmw_cas(&g->claim, cl, c->view.next) != cl) {
			/*
			 * Never ours. An advance may have counted it: the next
			 * release, or the idle path (D1), advances past it.
			 */
			store_release(&c->slot->claim, 0);
			KILL_POINT("group:claim-lost");
			stale = true;
			continue;
		}
		c->claim_pos = cl;
		return 0;
	}
}

/*
 * Make the adopted claim's record ours to deliver, as a private copy, or
 * drop the claim. Returns 0 (c->adopt_buf holds the checked payload), 1
 * (dropped: nothing to redeliver) or -errno (dropped as corrupt).
 *
 * A dead member's claim may be one it never won: it stores its claim
 * before the CAS (C1) and may die before clearing it after a lost CAS.
 * Never won while the claim word has not passed it: an ordinary claim
 * will hand the record out. Won by someone else when the group's frontier
 * has passed it, since a won claim holds the frontier. Neither test can
 * see an advance that computed its frontier before the dead member's
 * claim was stored and has not yet stored it, so the record is copied and
 * the copy kept only if the tail has not passed it afterwards (L1, as an
 * observer does): the producer moves the tail before it overwrites.
 */
int shmqi_member_take_adopted(struct shmq_consumer *c)
{
	struct shmq *q = c->q;
	uint64_t pos = c->claim_pos, w;
	int ret;

	if (!pos_before(pos, load_acquire(&c->group->claim)) ||
	    pos_before(pos, load_acquire(&c->group->position))) {
		shmqi_member_release(c);
		return 1;
	}
	if (!c->adopt_buf) {
		c->adopt_buf = malloc(q->g.max_message ? q->g.max_message : 1);
		if (!c->adopt_buf) {
			shmqi_member_release(c);
			return -ENOMEM;
		}
	}
	w = load_acquire(&q->hdr->write_pos);			/* A1 */
	ret = shmqi_rec_view(q, pos, w, &c->view);
	if (ret == 0 && c->view.type != SHMQ_REC_DATA)
		ret = shmqi_fail(-EBADMSG, "adopted claim at %llu is not a message",
				 (unsigned long long)pos);
	if (ret == 0)
		memcpy(c->adopt_buf, c->view.hdr + 1, c->view.len);
	fence_acquire();					/* L1 */
	if (pos_before(pos, load_relaxed(&q->hdr->tail_pos))) {
		shmqi_member_release(c);	/* passed and reused: not ours */
		return 1;
	}
	if (ret == 0 && !shmqi_rec_crc_ok(q, &c->view, c->adopt_buf))
		ret = shmqi_fail(-EBADMSG, "adopted record at %llu: bad checksum",
				 (unsigned long long)pos);
	if (ret < 0) {
		shmqi_member_release(c);
		ret = failed_or_evicted(c, ret);
	}
	return ret;
}

/*
 * Done with the claimed record. C4: clearing the claim is a fenced store
 * after our reads of the record (like R1); only then may the frontier, and
 * with it the producer, move past it.
 */
void shmqi_member_release(struct shmq_consumer *c)
{
	struct shmq *q = c->q;

	KILL_POINT("group:release-before-c4");
	if (c->adopt_idx >= 0) {
		uint32_t i = (uint32_t)c->adopt_idx;

		store_fenced(&q->slots[i].claim, 0);		/* C4 */
		if (shmqi_lock_wait(c->lock_fd, SHMQ_LOCK_ATTACH,
				    1000000000ll) == 0) {
			shmqi_free_slot_locked(q, i);
			shmqi_unlock(c->lock_fd, SHMQ_LOCK_ATTACH);
		}
		shmqi_unlock(c->lock_fd, SHMQ_LOCK_SLOT0 + i);
		c->adopt_idx = -1;
	} else {
		store_fenced(&c->slot->claim, 0);		/* C4 */
	}
	/* Dying here leaves the frontier behind: D1 makes others advance. */
	KILL_POINT("group:release-before-advance");
	shmqi_group_advance(q, c->gidx);
}
