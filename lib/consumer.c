/* SPDX-License-Identifier: MIT */
/*
 * Consumers: attaching (broadcast, named, group member, observer) and
 * detaching, waiting for records, reading and releasing them. The slot
 * table itself is slots.c; the group claim protocol is group.c.
 * Orderings are labelled; docs/concurrency.md tables the pairs.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define LIVE_CHECK_NS	10000000ll	/* NOWAIT polls probe this often */
/*
 * Group members look for a dead member's claim at least this often while
 * they claim (a clock read per claim), and sleep at most MEMBER_SLICE_NS
 * while idle, so that a dead member's message comes back within about
 * RESCUE_NS + MEMBER_SLICE_NS of the death, busy or idle (issue 17 #5).
 */
#define RESCUE_NS	10000000ll
#define MEMBER_SLICE_NS	20000000ll

/* Attach lock held: resume the named consumer in slot IDX. */
static int resume_named(struct shmq_consumer *c, int idx, const char *name)
{
	struct shmq *q = c->q;
	int ret;

	ret = shmqi_lock_try(c->lock_fd, SHMQ_LOCK_SLOT0 + (uint32_t)idx);
	if (ret == -EAGAIN)
		return shmqi_fail(-EBUSY, "consumer %s is already attached (pid %u)",
				  name, load_relaxed(&q->slots[idx].pid));
	if (ret < 0)
		return ret;
	c->idx = (uint32_t)idx;
	c->slot = &q->slots[idx];
	if (load_acquire(&c->slot->state) == SHMQ_SLOT_EVICTED)
		ret = shmqi_fail(SHMQ_EVICTED, "consumer %s was evicted; remove it first",
				 name);
	else
		ret = shmqi_check_resume(q, c->pos = load_acquire(&c->slot->position));
	if (ret < 0)
		shmqi_unlock(c->lock_fd, SHMQ_LOCK_SLOT0 + c->idx);
	c->resumed = ret == 0;	/* it was away: every end ahead is its own */
	/*
	 * The last end it returned and passed (untrusted: a wrong value only
	 * decides whether one END record is returned): see read_end_record().
	 */
	if (ret == 0)
		c->passed_inc = load_relaxed(&c->slot->ended_inc);
	return ret;
}

/* Attach lock held: find or create the group slot called NAME. */
static int group_slot(struct shmq_consumer *c, const char *name, uint32_t start)
{
	struct shmq *q = c->q;
	int idx = shmqi_find_named(q, name, SHMQ_KIND_GROUP);
	struct shmq_slot *g;
	uint64_t pos;

	if (idx >= 0) {
		g = &q->slots[idx];
		if (load_acquire(&g->state) == SHMQ_SLOT_EVICTED)
			return shmqi_fail(SHMQ_EVICTED, "group %s was evicted; remove it first",
					  name);
		return shmqi_check_resume(q, load_acquire(&g->position)) < 0 ?
		       -EBADMSG : idx;
	}
	idx = shmqi_claim_slot(q, c->lock_fd);
	if (idx < 0)
		return idx;
	g = &q->slots[idx];
	shmqi_init_slot(g, SHMQ_KIND_GROUP, name);
	pos = shmqi_start_position(q, start);
	store_relaxed(&g->claim, pos);
	pos = shmqi_publish_start(q, g, pos);
	/* Members attach under the attach lock we hold: none can claim yet. */
	store_release(&g->claim, pos);
	/* A group slot is not owned by a process: it outlives its members. */
	shmqi_unlock(c->lock_fd, SHMQ_LOCK_SLOT0 + (uint32_t)idx);
	return idx;
}

/* Attach lock held: find or claim the slot and set the position. */
static int attach_locked(struct shmq_consumer *c,
			 const struct shmq_consumer_opts *o)
{
	struct shmq *q = c->q;
	int idx, gidx = -1;
	bool created = false;

	if (c->kind == SHMQ_KIND_NAMED) {
		idx = shmqi_find_named(q, o->name, SHMQ_KIND_NAMED);
		if (idx >= 0)
			return resume_named(c, idx, o->name);
	}
	if (c->kind == SHMQ_KIND_MEMBER) {
		gidx = shmqi_find_named(q, o->name, SHMQ_KIND_GROUP) >= 0 ? -1 : -2;
		idx = group_slot(c, o->name, o->start);
		if (idx < 0)
			return idx;
		created = gidx == -2;
		gidx = idx;
	}
	idx = shmqi_claim_slot(q, c->lock_fd);
	if (idx < 0) {
		/* No slot for the member: a group made just now goes too. */
		if (created)
			shmqi_free_slot_locked(q, (uint32_t)gidx);
		return idx;
	}
	c->idx = (uint32_t)idx;
	c->slot = &q->slots[idx];
	shmqi_init_slot(c->slot, c->kind, o->name);
	if (c->kind == SHMQ_KIND_MEMBER) {
		c->gidx = (uint32_t)gidx;
		c->group = &q->slots[gidx];
		store_relaxed(&c->slot->group, (uint32_t)gidx);
		c->pos = load_acquire(&c->group->claim);
		store_relaxed(&c->slot->position, c->pos);
		store_release(&c->slot->state, SHMQ_SLOT_ACTIVE);
		return 0;
	}
	if (c->kind == SHMQ_KIND_OBSERVER) {
		/* Not a holder: no handshake; a lap is detected when reading. */
		c->pos = o->start == SHMQ_START_LATEST ?
			 load_acquire(&q->hdr->write_pos) :
			 load_acquire(&q->hdr->tail_pos);
		store_relaxed(&c->slot->position, c->pos);
		store_release(&c->slot->state, SHMQ_SLOT_ACTIVE);
		return 0;
	}
	c->pos = shmqi_publish_start(q, c->slot, shmqi_start_position(q, o->start));
	return 0;
}

/*
 * An observer starting at the write position has no record to learn its
 * sequence from, and may be lapped before the first one is read: take it
 * from the header. The producer stores pub_seq, then write_pos (release),
 * then next_seq; reading write_pos, pub_seq, next_seq, write_pos, the two
 * sequences agree only on the sequence of the record at that position.
 */
static void observer_seq(struct shmq_consumer *c)
{
	struct shmq_hdr *h = c->q->hdr;

	for (int i = 0; i < 1000; i++) {
		uint64_t p1 = load_acquire(&h->write_pos);
		uint64_t pre = load_acquire(&h->pub_seq);
		uint64_t post = load_acquire(&h->next_seq);
		uint64_t p2 = load_acquire(&h->write_pos);

		if (p1 == p2 && pre == post && p1 == c->pos) {
			c->seq = pre;
			c->seq_known = true;
			return;
		}
		if (p1 != c->pos)
			return;	/* records arrived: learn_seq() reads one */
		caa_cpu_relax();
	}
}

static int producer_gone(struct shmq_consumer *c);
static void pass_end(struct shmq_consumer *c);
static bool evicted(struct shmq_consumer *c);

enum learn { LEARNED, EMPTY, LAPPED, BAD };

/*
 * The sequence of the record at the consumer's position, if one is there.
 * A holder published its position (F1) before this, so its record is
 * intact. An observer holds nothing: the producer may overwrite the record
 * while we read it, and a sequence taken from another record's bytes makes
 * the first message fail with a false -EBADMSG or carry a wrong lost count
 * (issue 11, defect 2). So an observer applies L1, as stream_next does:
 * its reads of the record, then fence_acquire, then tail_pos; if the tail
 * has passed its position it starts again at the tail (LAPPED). That is
 * not a loss: shmq_consumer_open has not returned, the observer simply
 * attaches a moment later.
 */
static enum learn learn_seq(struct shmq_consumer *c)
{
	uint64_t w = load_acquire(&c->q->hdr->write_pos);	/* A1 */
	uint64_t pos = c->pos, seq = 0;
	enum learn r = BAD;
	struct shmqi_rec_view v;

	KILL_POINT("consumer:learn-seq");
	if (pos == w)
		return EMPTY;
	for (int i = 0; i < 2 && pos != w; i++) {
		if (shmqi_rec_view(c->q, pos, w, &v) < 0)
			break;
		if (v.type == SHMQ_REC_DATA) {
			seq = v.seq;
			r = LEARNED;
			break;
		}
		pos = v.next;
	}
	if (c->kind == SHMQ_KIND_OBSERVER) {
		fence_acquire();				/* L1 */
		if (pos_before(c->pos, load_relaxed(&c->q->hdr->tail_pos))) {
			c->pos = load_acquire(&c->q->hdr->tail_pos);
			c->wpos_cache = c->pos;
			return LAPPED;
		}
	}
	if (r == LEARNED) {
		c->seq = seq;
		c->seq_known = true;
	} else if (pos == w) {
		r = EMPTY;	/* only padding so far */
	}
	return r;	/* BAD: stream_next reports it */
}

/*
 * An observer's start: the sequence at its position, from the record there
 * (checked against a lap) or, with nothing there yet, from the header.
 * Bounded: a producer that laps us a thousand times in a row leaves the
 * sequence unknown, and the first message then counts no loss.
 */
static void observer_start(struct shmq_consumer *c)
{
	for (int i = 0; i < 1000 && !c->seq_known; i++) {
		enum learn r = learn_seq(c);

		if (r == LAPPED)
			continue;
		if (r != EMPTY)
			break;
		observer_seq(c);	/* or records arrived: learn again */
	}
	/* For stat only (relaxed): the position we really start at. */
	store_relaxed(&c->slot->position, c->pos);
}

int shmq_consumer_open(struct shmq *q, const struct shmq_consumer_opts *opts,
		       struct shmq_consumer **out)
{
	struct shmq_consumer_opts o = opts ? *opts : (struct shmq_consumer_opts){ 0 };
	struct shmq_consumer *c;
	int ret;

	shmqi_clear_error();
	*out = NULL;
	if (o.kind > SHMQ_CONSUMER_OBSERVER || o.start > SHMQ_START_LATEST)
		return shmqi_fail(-EINVAL, "unsupported consumer kind or start");
	if (o.kind == SHMQ_CONSUMER_GROUP && !o.name)
		return shmqi_fail(-EINVAL, "a group member needs the group's name");
	if (o.kind == SHMQ_CONSUMER_OBSERVER && o.name)
		return shmqi_fail(-EINVAL, "observers are anonymous");
	if ((o.flags & ~SHMQ_CONSUMER_DURABLE) ||
	    ((o.flags & SHMQ_CONSUMER_DURABLE) && o.kind == SHMQ_CONSUMER_GROUP))
		return shmqi_fail(-EINVAL, "unknown consumer flags, or durable reads asked of a group");
	if (o.reserved0 || o.reserved[0] || o.reserved[1] || o.reserved[2] ||
	    o.reserved[3] || o.reserved[4])
		return shmqi_fail(-EINVAL, "reserved fields of struct shmq_consumer_opts must be zero");
	if (o.name && !shmqi_name_valid(o.name))
		return shmqi_fail(-EINVAL, "consumer name must be 1 to %d printable characters without spaces",
				  SHMQ_NAME_MAX);
	if (q->rdonly)
		return shmqi_fail(-EROFS, "queue opened read-only");
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->q = q;
	c->kind = o.kind == SHMQ_CONSUMER_GROUP ? SHMQ_KIND_MEMBER :
		  o.kind == SHMQ_CONSUMER_OBSERVER ? SHMQ_KIND_OBSERVER :
		  o.name ? SHMQ_KIND_NAMED : SHMQ_KIND_ANON;
	c->adopt_idx = -1;
	c->asym = shmqi_membarrier_register() == 0;
	c->durable = o.flags & SHMQ_CONSUMER_DURABLE;
	c->fast = SHMQI_HAVE_FAST && !c->durable &&
		  (c->kind == SHMQ_KIND_ANON || c->kind == SHMQ_KIND_NAMED) &&
		  shmqi_crc_have_hw();
	/* Closed in a fork() child (liveness.c): opened and listed at once. */
	ret = shmqi_role_open(q, &c->role, &c->lock_fd);
	if (ret < 0)
		goto fail_free;
	ret = shmqi_lock_wait(c->lock_fd, SHMQ_LOCK_ATTACH, SHMQ_ATTACH_LOCK_NS);
	if (ret < 0) {
		ret = shmqi_fail(ret, "waiting for the slot table lock: %s",
				 shmq_strerror(ret));
		goto fail_close;
	}
	ret = attach_locked(c, &o);
	if (ret == 0) {
		store_relaxed(&c->slot->pid, (uint32_t)getpid());
		/* Every kind counts for a FIFO producer's "all have gone". */
		rmw_add(&q->hdr->attach_count, 1);
		rmw_add(&q->hdr->slot_gen, 1);
	}
	shmqi_unlock(c->lock_fd, SHMQ_LOCK_ATTACH);
	if (ret < 0)
		goto fail_close;
	c->wpos_cache = c->pos;
	c->bytes = load_relaxed(&c->slot->bytes);
	/* A live session is ours (seen_inc); see read_end_record(). */
	/*
	 * A session live when we attach is ours (seen_inc); later ones are
	 * ours by attach_inc. Only here: a probe in the wait loop could take
	 * a new producer, inside its open and holding the role before it
	 * stores "none" (S2), for the dead session's producer.
	 */
	c->attach_inc = load_acquire(&q->hdr->incarnation);
	c->live_inc = 0;
	if (producer_gone(c) == 0 && c->live_inc == c->attach_inc)
		c->seen_inc = c->live_inc;
	c->attach_w = load_acquire(&q->hdr->write_pos);
	/*
	 * A member does not read END records (the group shares one claim
	 * word): like a broadcast consumer that finds an END ahead of it, a
	 * member that joins while its group has not consumed all of the
	 * ended session (the claim word short of write_pos) gets its end.
	 */
	if (c->kind == SHMQ_KIND_MEMBER && c->pos != c->attach_w)
		c->seen_inc = c->attach_inc;
	if (c->kind == SHMQ_KIND_OBSERVER)
		observer_start(c);
	else if (c->kind != SHMQ_KIND_MEMBER)
		(void)learn_seq(c);
	q->nhandles++;
	*out = c;
	return 0;
fail_close:
	shmqi_role_close(&c->role);
fail_free:
	free(c);
	return ret;
}

/*
 * Give the space up to c->pos back. R1 pairs with A2 in holders_min():
 * our reads of the records below pos happen before the producer may
 * overwrite them. The store is fenced (F3): it is visible before we read
 * prod_waiting, against the producer's flag store before its re-scan.
 */
static void publish_pos(struct shmq_consumer *c)
{
	struct shmq_slot *s = c->slot;

	if (c->kind == SHMQ_KIND_OBSERVER) {
		/* Not a holder: the position is for stat only. */
		store_relaxed(&s->next_seq, c->seq);
		store_relaxed(&s->bytes, c->bytes);
		store_relaxed(&s->position, c->pos);
		return;
	}

	store_relaxed(&s->next_seq, c->seq);
	store_relaxed(&s->bytes, c->bytes);
	/*
	 * R1, F3: our position is visible before we read prod_waiting. With a
	 * producer that issues membarrier before it sleeps (CAP_ASYM) and our
	 * process registered, a release store is enough.
	 */
	if (likely(c->asym) &&
	    (load_relaxed(&c->q->hdr->prod_caps) & SHMQ_CAP_ASYM))
		store_release(&s->position, c->pos);	/* R1, F3 (asym) */
	else
		store_fenced(&s->position, c->pos);	/* R1, F3 */
	shmqi_wake_producer(c->q);
}

void shmq_consumer_close(struct shmq_consumer *c)
{
	struct shmq *q;

	if (!c)
		return;
	q = c->q;
	/* Inherited across fork(): the parent's slot is not ours to touch. */
	if (shmqi_inherited(c))
		goto free_only;
	/*
	 * A peeked message is not released: a named consumer gets it again;
	 * a member leaves its claim in its slot, as if it had died, and
	 * another member adopts it (flagged as redelivered). So is one that
	 * shmq_recv() refused with -EMSGSIZE (pending): never dropped unseen.
	 */
	if (c->end_held)
		pass_end(c);
	if (c->kind != SHMQ_KIND_MEMBER && load_relaxed(&c->slot->position) != c->pos)
		publish_pos(c);
	if (shmqi_lock_wait(c->lock_fd, SHMQ_LOCK_ATTACH, SHMQ_ATTACH_LOCK_NS) == 0) {
		bool keep = c->kind == SHMQ_KIND_NAMED ||
			    (c->kind == SHMQ_KIND_MEMBER &&
			     (c->peeked || c->pending));

		if (!keep)
			shmqi_free_slot_locked(q, c->idx);
		else
			rmw_add(&q->hdr->slot_gen, 1);
		shmqi_unlock(c->lock_fd, SHMQ_LOCK_ATTACH);
	}
	if (c->kind == SHMQ_KIND_MEMBER && !c->peeked && !c->pending)
		shmqi_group_advance(q, c->gidx);
	/* Without the table lock the slot stays; a dead-slot reclaim frees it. */
	shmqi_role_close(&c->role);
free_only:
	q->nhandles--;
	shmqi_pollset_free(c->ps);	/* in a fork() child: its copies only */
	free(c->adopt_buf);
	free(c);
}

/* Producer state as readers see it: OPEN with a free lock means it died. */
static int producer_gone(struct shmq_consumer *c)
{
	struct shmq_hdr *h = c->q->hdr;
	/*
	 * S2: the incarnation first, then the state. A producer opening
	 * stores the state "none" before it stores its incarnation (both
	 * release), so a state read after a new incarnation is never the
	 * previous session's "closed": an end is never pinned on the wrong
	 * session. end_owed() and session_end() use this incarnation.
	 */
	uint32_t inc = load_acquire(&h->incarnation);
	uint32_t st = load_acquire(&h->prod_state);	/* S1 */

	c->gone_inc = inc;

	if (st == SHMQ_PSTATE_CLOSED)
		return SHMQ_EOF;
	if (st == SHMQ_PSTATE_ABORTED)
		return SHMQ_EABORTED;
	if (st != SHMQ_PSTATE_OPEN)
		return 0;
	/*
	 * The session's own lock byte (format.h), not the role's: a new
	 * producer inside its open holds the role, never the byte of the
	 * session before it, so a dead session never looks live.
	 */
	if (shmqi_lock_held(c->q->fd, SHMQ_LOCK_SESSION0 + (inc & 1)) == 0)
		return SHMQ_EDIED;
	c->live_inc = inc;
	return 0;
}


/*
 * Sessions (docs/decisions.md): the state-based end of the current
 * session is returned once, and only to a consumer that saw that session
 * (live, or through a record of it, or it began after we attached). Any
 * other waits for the next producer, as a FIFO reader waits for a writer.
 */
static bool saw(const struct shmq_consumer *c, uint32_t inc)
{
	return inc == c->seen_inc || inc_before(c->attach_inc, inc);
}

/* After producer_gone(): is the end of the session it looked at ours? */
static bool end_owed(struct shmq_consumer *c)
{
	return c->ended_inc != c->gone_inc && saw(c, c->gone_inc);
}

/*
 * S1: the producer closed or aborted (acquire: then the final write_pos
 * is visible), maybe without room for its END record, and the session
 * is one whose end we owe. A close and an abort are told by the state
 * alike, not only by the liveness probe every LIVE_CHECK_NS.
 */
static bool state_end_due(struct shmq_consumer *c)
{
	uint32_t st = load_acquire(&c->q->hdr->prod_state);	/* S1 */

	return (st == SHMQ_PSTATE_CLOSED || st == SHMQ_PSTATE_ABORTED) &&
	       producer_gone(c) && end_owed(c);
}

/*
 * A named consumer passes an end it returned only at its next call or its
 * close: one that dies before it has dealt with the end (the NATS
 * exporter, before the stream acknowledged it) resumes before it and
 * gets it again. Passing publishes the position past an END record and
 * remembers the end in the slot (ended_inc): an end that came from the
 * state (a death; its record is written later, by the next producer) is
 * then not returned a second time to a consumer that closed and came
 * back. Either store alone leaves the end passed or returned again,
 * never lost.
 */
static void pass_end(struct shmq_consumer *c)
{
	c->end_held = false;
	publish_pos(c);
	store_release(&c->slot->ended_inc, c->held_inc);
}

/* Returned once per session: the END record's, or the state's. */
static int session_end(struct shmq_consumer *c, uint32_t inc, int status)
{
	c->seen_inc = inc;
	c->ended_inc = inc;
	if (c->kind == SHMQ_KIND_NAMED) {
		c->end_held = true;
		c->held_inc = inc;
	}
	return shmqi_fail(status, "%s", status == SHMQ_EOF ? "end of stream: the producer closed" :
			  status == SHMQ_EDIED ? "end of stream: the producer died" :
			  "end of stream: the producer aborted");
}

/*
 * Nothing to read at c->pos. Returns 0 to look again, or the status to
 * return: -EAGAIN, -ETIMEDOUT, -EINTR, SHMQ_EOF, SHMQ_EDIED, -ESTALE.
 * The end-of-stream statuses are only returned after write_pos is re-read
 * (acquire) once the state is known, so nothing committed is left behind.
 */
/*
 * The end of what C may read: write_pos (A1), or for a durable consumer
 * the durable watermark below it. A3 pairs with W3 in shmq_sync(): the
 * watermark is raised by a CAS after the data msync, to a write_pos that
 * sync loaded with acquire, so every record below it is complete.
 */
static uint64_t read_end(struct shmq_consumer *c)
{
	uint64_t w = load_acquire(&c->q->hdr->write_pos);	/* A1 */
	uint64_t d;

	if (likely(!c->durable))
		return w;
	d = load_acquire(&c->q->hdr->durable_pos);		/* A3 */
	if (pos_before(d, c->pos))
		return c->pos;	/* mode none leaves it behind: nothing yet */
	return pos_before(w, d) ? w : d;
}

/*
 * Nothing left to read, and the session we saw is not the queue's any
 * more: a new producer opened. Its END record, if not in the ring yet
 * (the close found no room; the new producer writes it before its first
 * message, once there is room), is owed all the same: return the end
 * now, as the new producer recorded it (prev_end_kind; died for a
 * session further back), and skip the record when it comes. Returns the
 * status, or 0.
 */
static int superseded_end(struct shmq_consumer *c)
{
	struct shmq_hdr *h = c->q->hdr;
	uint32_t cur = load_acquire(&h->incarnation);
	uint32_t e = c->seen_inc, kind;

	if (!e || cur == e || !inc_before(e, cur) || read_end(c) != c->pos)
		return 0;
	kind = cur == e + 1 ? load_relaxed(&h->prev_end_kind) : SHMQ_END_DIED;
	return session_end(c, e, kind == SHMQ_END_CLOSED ? SHMQ_EOF :
			   kind == SHMQ_END_ABORTED ? SHMQ_EABORTED : SHMQ_EDIED);
}

/* See wait_data(): 1 when it synced, 0 when not due, or -errno. */
static int durable_closed_sync(struct shmq_consumer *c)
{
	struct shmq_hdr *h = c->q->hdr;
	uint32_t st = load_acquire(&h->prod_state);
	uint64_t w = load_acquire(&h->write_pos);
	int ret;

	if ((st != SHMQ_PSTATE_CLOSED && st != SHMQ_PSTATE_ABORTED) ||
	    w == c->closed_sync_w || !pos_before(c->pos, w) ||
	    !pos_before(load_acquire(&h->durable_pos), w))
		return 0;
	c->closed_sync_w = w;
	ret = shmq_sync(c->q);
	return ret < 0 ? ret : 1;
}

/*
 * Batch mode's time bound for a durable reader (see wait_data()): 1 when
 * it synced (look again), 0 when not due (*SLICE capped to the bound, so
 * that a sleeper wakes to check), or -errno from the sync.
 */
static int durable_batch_due(struct shmq_consumer *c, int64_t *slice)
{
	struct shmq_hdr *h = c->q->hdr;
	uint32_t ms = load_relaxed(&h->batch_ms);
	int64_t now, bound;
	int ret;

	if (!ms || !pos_before(c->pos, load_acquire(&h->write_pos)) ||
	    !pos_before(load_acquire(&h->durable_pos),
			load_acquire(&h->write_pos))) {
		c->dwait_ns = 0;
		return 0;
	}
	now = shmqi_now_ns();
	bound = (int64_t)ms * 1000000;
	if (!c->dwait_ns || c->dwait_pos != c->pos) {
		c->dwait_ns = now;
		c->dwait_pos = c->pos;
	}
	if (now - c->dwait_ns < bound) {
		if (*slice > bound)
			*slice = bound;
		return 0;
	}
	c->dwait_ns = 0;
	ret = shmq_sync(c->q);
	return ret < 0 ? ret : 1;
}

/*
 * Look again, unless the caller's bound has run out: every path of
 * wait_data() that returns 0 without new data goes through here or
 * through shmqi_futex_wait(), which checks the deadline, so no value in
 * the file can make a bounded call loop past its bound (issue 12 #10).
 */
static int again_or_expired(int64_t timeout_ns, int64_t *deadline)
{
	if (timeout_ns == 0)
		return -EAGAIN;
	if (*deadline == 0)
		*deadline = shmqi_deadline(timeout_ns);
	if (*deadline >= 0 && shmqi_now_ns() >= *deadline)
		return -ETIMEDOUT;
	return 0;
}

/*
 * SHMQ_NOWAIT on a consumer with a descriptor (shmq_consumer_fd), with
 * nothing to read: drain the set, probe the producer when the set says
 * it may have died (pidfd, or the fallback timer) or the usual
 * LIVE_CHECK_NS has passed, then arm and look once more. Returns 0 (look
 * again), 1 (the producer is gone and its end may be ours: check_end),
 * -EAGAIN (armed: the descriptor becomes readable on the next change) or
 * -errno.
 *
 * Arming is F2 with the POLL bit: the bit (a full fence; membarrier for
 * an ASYM producer, as a sleeper does) before we re-read write_pos, the
 * state and our slot; the producer's store of any of those (fenced, or
 * unfenced and fenced by our membarrier) before its load of the bits.
 * Either we see the change here, or it sees the bit and rings, after our
 * drain, so the descriptor is readable. The bit is self-clearing: the
 * producer's xchg takes it with one ring, whatever became of us.
 */
static int poll_arm(struct shmq_consumer *c)
{
	struct shmq_hdr *h = c->q->hdr;
	unsigned int fired = shmqi_pollset_drain(c->ps);
	uint32_t inc, st;
	int64_t now = shmqi_now_ns(), once = 0, period;
	int gone, ret;

	if ((fired & (SHMQI_FIRED_PID | SHMQI_FIRED_TIMER)) ||
	    now - c->live_check_ns >= LIVE_CHECK_NS) {
		c->live_check_ns = now;
		/* Pollers notice truncation and deletion too (F9, F18). */
		ret = shmqi_check_file(c->q);
		if (ret < 0)
			return ret;
		gone = producer_gone(c);
		if (gone == SHMQ_EDIED) {
			c->ps_dead = true;
			c->ps_dead_inc = c->gone_inc;
		}
		if (gone && end_owed(c))
			return 1;
	}
	inc = load_acquire(&h->incarnation);
	st = load_acquire(&h->prod_state);
	rmw_or(&h->data_waiters, SHMQ_WAIT_POLL);		/* F2 */
	if ((load_relaxed(&h->prod_caps) & SHMQ_CAP_ASYM) &&
	    shmqi_membarrier() < 0)
		once = 1000000;		/* cannot fence it: look again soon */
	if (read_end(c) != c->pos)
		return 0;
	if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
		return 0;	/* the caller reports it */
	if (load_acquire(&h->incarnation) != inc ||
	    load_acquire(&h->prod_state) != st)
		return 0;	/* a session began or ended meanwhile */
	if (shmqi_pollset_watch(c->ps, c->q, c->ps_dead, c->ps_dead_inc,
				&period)) {
		c->live_check_ns = 0;	/* it changed or died: probe now */
		return 0;
	}
	/*
	 * What nobody rings for, the timer brings the caller back for, as a
	 * sleeper's slice does. A member's other source of messages is a
	 * dead member's claim: MEMBER_SLICE_NS (member_next adopts it). A
	 * durable reader of a batch-mode producer syncs what waited T ms
	 * past the watermark itself (durable_batch_due): at the end of T.
	 * The timer is one: a one-shot shorter than the period replaces it
	 * until the caller's next arming, which sets the period again.
	 */
	if (c->kind == SHMQ_KIND_MEMBER && (!once || once > MEMBER_SLICE_NS))
		once = MEMBER_SLICE_NS;
	if (c->durable && c->dwait_ns) {
		int64_t left = c->dwait_ns - now +
			       (int64_t)load_relaxed(&h->batch_ms) * 1000000;

		if (left < 1000000)
			left = 1000000;
		if (!once || left < once)
			once = left;
	}
	if (once && (!period || once < period))
		shmqi_pollset_timer(c->ps, once, true);
	else
		shmqi_pollset_timer(c->ps, period, false);
	return -EAGAIN;
}

static int wait_data(struct shmq_consumer *c, int64_t timeout_ns,
		     int64_t *deadline)
{
	struct shmq_hdr *h = c->q->hdr;
	int64_t now, spin_until, yield_from, slice = SHMQ_SLICE_NS;
	bool resleep;
	uint32_t v;
	int gone, ret;

	timeout_ns = shmqi_timeout(timeout_ns);	/* only FOREVER is unbounded */
	/* Durable reads: a failed msync means the watermark never moves. */
	if (c->durable && (ret = shmq_sync_error(c->q)) < 0)
		return shmqi_fail(ret, "the queue is marked \"durability failed\"");
	/*
	 * Sync mode batch promises "every N messages or T ms": the producer
	 * checks T only when it sends, so a durable reader that waited T for
	 * messages past the watermark syncs them itself (any process may).
	 */
	if (c->durable && (ret = durable_batch_due(c, &slice)) != 0)
		return ret < 0 ? ret : 0;
	if (unlikely(c->seen_inc != c->ended_inc) &&
	    (ret = superseded_end(c)) != 0)
		return ret;
	/*
	 * A durable reader of a closed queue syncs the rest itself, once,
	 * whoever's end it is: nothing else would make it durable (a
	 * session it never saw, put's default sync mode).
	 */
	if (c->durable && (ret = durable_closed_sync(c)) != 0)
		return ret < 0 ? ret : 0;
	if (c->kind != SHMQ_KIND_MEMBER &&
	    load_relaxed(&c->slot->position) != c->pos)
		publish_pos(c);	/* padding skipped: the producer may need it */
	/*
	 * A producer that closed without room for its END record: the state
	 * says so. Checked before a poll, but after the spin below when we
	 * wait (and after the load of data_futex: see there): prod_state
	 * shares a cache line with what every publish writes (next_seq, the
	 * stats), and a consumer that catches up after each message would
	 * miss on it once per message. A close that wrote its END (the usual
	 * case) ends the spin with that record.
	 */
	if (timeout_ns == 0 && state_end_due(c))
		goto check_end;
	if (timeout_ns == 0 && c->ps) {
		ret = poll_arm(c);
		if (ret == 1)
			goto check_end;
		return ret;
	}
	if (timeout_ns == 0) {
		now = shmqi_now_ns();
		if (now - c->live_check_ns < LIVE_CHECK_NS)
			return -EAGAIN;
		c->live_check_ns = now;
		/* Pollers notice truncation and deletion too (F9, F18). */
		ret = shmqi_check_file(c->q);
		if (ret < 0)
			return ret;
		if (producer_gone(c) && end_owed(c))
			goto check_end;
		return -EAGAIN;
	}
	if (*deadline == 0)
		*deadline = shmqi_deadline(timeout_ns);
	/*
	 * Spin first, for a message that comes soon; not again after a
	 * sleep that ran its whole slice (an idle member wakes every
	 * MEMBER_SLICE_NS: spinning each time would cost 0.25 % of a core).
	 */
	resleep = c->slept_out;
	now = shmqi_now_ns();
	spin_until = resleep ? 0 : now + SHMQ_SPIN_NS;
	yield_from = now + SHMQ_SPIN_PURE_NS;
	c->slept_out = false;
	do {
		for (int i = 0; i < 128; i++) {
			if (read_end(c) != c->pos)
				return 0;
			caa_cpu_relax();
		}
		now = shmqi_now_ns();
		if (now >= yield_from && now < spin_until)
			sched_yield();
	} while (now < spin_until);

	KILL_POINT("consumer:wait-before-futex-load");
	v = load_acquire(&h->data_futex);
	/*
	 * S1 (close without an END record): after the load of V. The close
	 * stores prod_state (release) before its full-barrier increment of
	 * data_futex: a V from before the increment makes FUTEX_WAIT(V)
	 * return, and a V from after it (acquire) shows CLOSED here. Read
	 * before V, a close between the two loads slept a whole slice. An
	 * abort stores its state the same way.
	 */
	if (state_end_due(c))
		goto check_end;
	/*
	 * F2 (re-sleep): after a sleep that ran out its slice, with
	 * data_futex unchanged since and our flag still set, the handshake
	 * of that sleep still holds and need not be paid again (a membarrier
	 * is tens of µs; idle members re-sleep every MEMBER_SLICE_NS). Every
	 * clear of data_waiters (shmq_publish, raise_watermark) is followed
	 * by an increment of data_futex and a wake-all: a clear before our
	 * load of V shows as V changed (full path below); one after it
	 * makes FUTEX_WAIT(V) return. So the flag has stayed set since our
	 * fenced store and membarrier of that sleep, and a producer's flag
	 * load after them sees it and wakes us; a publish before them is
	 * visible to the re-read of write_pos below, which comes after them.
	 * The acquire on V keeps that re-read after the load of V.
	 */
	if (!resleep || v != c->slept_on ||
	    !(load_relaxed(&h->data_waiters) & SHMQ_WAIT_FUTEX)) {
		/*
		 * F2 pairs with F2 in shmq_publish(): our flag is visible
		 * before we re-read write_pos; the producer's write_pos is
		 * visible before it reads the flag. One of us sees the other:
		 * no lost wake-up. Our bit only (an OR, a full fence as the
		 * store it replaces): a poller's bit in the same word stays.
		 */
		rmw_or(&h->data_waiters, SHMQ_WAIT_FUTEX);
		/*
		 * F2 (asym): a producer publishing unfenced is fenced from
		 * here. Only an ASYM producer needs it; one that stores its
		 * caps fences before it publishes (shmq_producer_open), so a
		 * stale "not ASYM" is safe.
		 */
		if ((load_relaxed(&h->prod_caps) & SHMQ_CAP_ASYM) &&
		    shmqi_membarrier() < 0)
			slice = 1000000;	/* cannot fence it: look again soon */
	}
	/* An idle member wakes to look for dead members' claims. */
	if (c->kind == SHMQ_KIND_MEMBER && slice > MEMBER_SLICE_NS)
		slice = MEMBER_SLICE_NS;
	if (read_end(c) != c->pos)
		return 0;
	/* Liveness costs a system call: at most every LIVE_CHECK_NS. */
	now = shmqi_now_ns();
	if (now - c->live_check_ns >= LIVE_CHECK_NS) {
		c->live_check_ns = now;
		gone = producer_gone(c);
		if (gone && end_owed(c))
			goto check_end;
	}
	KILL_POINT("consumer:wait-sleep");
	ret = shmqi_futex_wait(&h->data_futex, v, *deadline, slice);
	if (ret <= 0)
		return ret;
	/* The slice ran out: the slow checks, then look again. */
	c->live_check_ns = 0;
	c->slept_out = slice > 1000000;	/* not after a failed membarrier */
	c->slept_on = v;
	return shmqi_check_file(c->q);
check_end:
	gone = producer_gone(c);
	if (read_end(c) != c->pos)
		return 0;
	if (!gone)	/* a new producer opened meanwhile */
		return again_or_expired(timeout_ns, deadline);
	/*
	 * A durable reader makes the rest durable itself rather than hang:
	 * one sync, and only when there is something between its position
	 * and write_pos that is not durable yet. Whatever the file says
	 * (durable_pos or write_pos behind our position after a cut, or
	 * scribbled), it then reports the end instead of syncing for ever.
	 */
	if (c->durable) {
		uint64_t w = load_acquire(&h->write_pos);		/* A1 */

		if (pos_before(c->pos, w) &&
		    pos_before(load_acquire(&h->durable_pos), w)) {	/* A3 */
			ret = shmq_sync(c->q);
			if (ret < 0)
				return ret;
			if (read_end(c) != c->pos)
				return 0;
		}
	}
	/* Not ours (a session we never saw), or a new one began meanwhile. */
	if (!end_owed(c))
		return again_or_expired(timeout_ns, deadline);
	/*
	 * The state is of a session after one we saw and whose end we have
	 * not returned: both ended without room for their END records (and
	 * the one between opened) while we were between two looks, after
	 * the check of superseded_end() on entry. That end first, as
	 * superseded_end() tells it; the state's on the next call. Returned
	 * the other way, the first session's end was lost (and its owed END
	 * record, written later, came after the second's end).
	 */
	if (c->seen_inc != c->ended_inc && c->seen_inc != c->gone_inc &&
	    (ret = superseded_end(c)) != 0)
		return ret;
	return session_end(c, c->gone_inc, gone);
}

/*
 * Observers: has the producer reclaimed c->pos since we looked? L1: our
 * reads of the record come before this read of tail_pos, and the producer
 * publishes tail_pos (W2, fenced) before it overwrites anything. So if the
 * tail we read is not past c->pos, nothing we read had been overwritten.
 */
static bool lapped(struct shmq_consumer *c)
{
	fence_acquire();					/* L1 */
	return pos_before(c->pos, load_relaxed(&c->q->hdr->tail_pos));
}

/* An observer that was lapped starts again at the oldest intact record. */
static void resync(struct shmq_consumer *c)
{
	c->pos = load_acquire(&c->q->hdr->tail_pos);
	c->wpos_cache = c->pos;
	c->resynced = true;
	c->peeked = false;
	c->pending = false;
}

/*
 * Evicted: the producer stopped waiting for us (E1, a fenced store before
 * it overwrites). Checked before each read and after a copy or a held
 * peek, with a fence so that the check follows the reads it vouches for.
 */
static bool evicted(struct shmq_consumer *c)
{
	struct shmq_slot *s = c->kind == SHMQ_KIND_MEMBER ? c->group : c->slot;

	fence_acquire();					/* E1 */
	return load_relaxed(&s->state) == SHMQ_SLOT_EVICTED;
}

static int evicted_error(void)
{
	return shmqi_fail(SHMQ_EVICTED, "this consumer was evicted: the producer stopped waiting for it");
}

/*
 * The END record in c->view: check it, move past it (releasing it), and
 * return its status, or 1 for an end this consumer already returned (a
 * state-based one, whose record the next producer wrote).
 */
static int read_end_record(struct shmq_consumer *c)
{
	struct shmq_end e;

	memcpy(&e, c->view.hdr + 1, sizeof(e));
	if (c->kind == SHMQ_KIND_OBSERVER && lapped(c))
		return 1;	/* overwritten meanwhile: the caller resyncs */
	if (!shmqi_rec_crc_ok(c->q, &c->view, &e))
		return shmqi_fail(-EBADMSG, "record at %llu: bad checksum",
				  (unsigned long long)c->pos);
	if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
		return evicted_error();
	c->pos = c->view.next;
	/*
	 * Ours to return: an end we have not returned yet, of a session we
	 * saw (live, or a record of it), or one its own producer wrote
	 * before we attached (an empty session still delivers its end). So
	 * not:
	 * - the END of a session up to the last end we returned: END
	 *   records lie in the ring in the order of their sessions (owed
	 *   ones first, in order: flush_owed()), and an end is returned from
	 *   the state only with nothing left to read and after the ends
	 *   before it (check_end in wait_data()), so that end came from the
	 *   state when its producer, and the next, found no room for it;
	 * - for a named consumer that came back, the END a later producer
	 *   wrote for the session whose end it returned from the state (a
	 *   death) and passed before it closed (slot.ended_inc); an END its
	 *   own session wrote is published before that session's state, so
	 *   it was never returned from the state;
	 * - the END a new producer writes for a session that died and was
	 *   read before we came (whenever it is written): we wait for the
	 *   next session, as a FIFO reader does.
	 */
	if ((c->ended_inc && !inc_before(c->ended_inc, e.inc)) ||
	    (c->resumed && e.inc == c->passed_inc && c->view.inc != e.inc) ||
	    (!c->resumed && !saw(c, e.inc) &&
	     (c->view.inc != e.inc || !pos_before(c->view.pos, c->attach_w)))) {
		publish_pos(c);
		return 1;
	}
	/* A named consumer passes it later: pass_end(). */
	if (c->kind != SHMQ_KIND_NAMED)
		publish_pos(c);
	return session_end(c, e.inc, e.kind == SHMQ_END_CLOSED ? SHMQ_EOF :
			   e.kind == SHMQ_END_ABORTED ? SHMQ_EABORTED : SHMQ_EDIED);
}

/* Broadcast and observer: the record at c->pos. */
static int stream_next(struct shmq_consumer *c, int64_t timeout_ns)
{
	int64_t deadline = 0;
	int ret;

	c->slept_out = false;	/* a new call spins first again */
	if (unlikely(c->end_held))
		pass_end(c);
	for (;;) {
		if (c->pos == c->wpos_cache) {
			c->wpos_cache = read_end(c);	/* A1, A3 */
			if (c->pos == c->wpos_cache) {
				ret = wait_data(c, timeout_ns, &deadline);
				if (ret < 0)
					return ret;
				if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
					return evicted_error();
				continue;
			}
		}
		ret = shmqi_rec_view(c->q, c->pos, c->wpos_cache, &c->view);
		if (c->kind == SHMQ_KIND_OBSERVER && lapped(c)) {
			resync(c);
			continue;
		}
		if (ret < 0)
			return c->kind != SHMQ_KIND_OBSERVER && evicted(c) ?
			       evicted_error() : ret;
		if (c->view.type == SHMQ_REC_PAD) {
			c->pos = c->view.next;
			continue;
		}
		if (c->view.type == SHMQ_REC_END) {
			ret = read_end_record(c);
			if (ret < 0)
				return ret;
			continue;	/* an end already returned, or lapped */
		}
		c->seen_inc = c->view.inc;
		if (c->seq_known && c->view.seq != c->seq) {
			if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
				return evicted_error();
			if (!c->resynced || !pos_before(c->seq, c->view.seq))
				return shmqi_fail(-EBADMSG, "record at %llu: sequence %llu, expected %llu",
						  (unsigned long long)c->pos,
						  (unsigned long long)c->view.seq,
						  (unsigned long long)c->seq);
			c->lost += c->view.seq - c->seq;	/* exact: no gaps */
			c->seq = c->view.seq;
		}
		c->resynced = false;
		return 0;
	}
}

/*
 * Group member: adopt a dead member's claim, if there is one (WAIT: for
 * the attach lock, bounded, as before reporting an end). Returns 0
 * (c->view is the adopted record, flagged as redelivered), 1 (one was
 * found but dropped: nothing to redeliver), 2 (none) or -errno.
 */
static int member_adopt(struct shmq_consumer *c, bool wait)
{
	int ret;

	c->rescue_ns = shmqi_now_ns();
	ret = shmqi_member_rescue(c, wait);
	if (ret <= 0)
		return ret < 0 ? ret : 2;
	ret = shmqi_member_take_adopted(c);
	if (ret == 0)
		c->redelivered = true;
	return ret;
}

/*
 * Group member: claim a record, or adopt a dead member's, or wait. A
 * dead member's claim is looked for when there is nothing new to claim,
 * and, however busy the group is, once every RESCUE_NS: its message is
 * older than any we could claim, and the group's position (so the
 * producer) waits on it. The clock read per claim is a vDSO call. Before
 * reporting a session's end it looks once more, waiting (bounded) for the
 * attach lock rather than trying it: a consumer attaching at that moment
 * must not make the group lose a claimed message for good (issue 11,
 * defect 5); what it adopts then comes first, and the end after it.
 */
static int member_next(struct shmq_consumer *c, int64_t timeout_ns)
{
	int64_t deadline = 0;
	uint32_t ended;
	bool looked;
	int ret, end;

	c->slept_out = false;	/* a new call spins first again */
	for (;;) {
		looked = shmqi_now_ns() - c->rescue_ns >= RESCUE_NS;
		if (looked) {
			ret = member_adopt(c, false);
			if (ret <= 0)
				return ret;
		}
		ret = shmqi_member_claim(c);
		if (ret <= 0) {
			c->redelivered = false;
			return ret;
		}
		if (!looked) {
			ret = member_adopt(c, false);
			if (ret <= 0)
				return ret;
			if (ret == 1)
				continue;	/* never won, or passed: look again */
		}
		ended = c->ended_inc;
		end = wait_data(c, timeout_ns, &deadline);
		if (end == SHMQ_EOF || end == SHMQ_EDIED || end == SHMQ_EABORTED) {
			ret = member_adopt(c, true);
			if (ret == 2)
				return end;
			/* Adopted, or dropped: the end comes after what is left. */
			c->ended_inc = ended;
			if (ret <= 0)
				return ret;
			continue;
		}
		if (end < 0)
			return end;
		if (evicted(c))
			return evicted_error();
	}
}

/* The next data record, validated, into c->view (no checksum yet). */
static int next_record(struct shmq_consumer *c, int64_t timeout_ns)
{
	if (unlikely(c->kind != SHMQ_KIND_OBSERVER && evicted(c)))
		return evicted_error();
	if (c->kind == SHMQ_KIND_MEMBER) {
		int ret = member_next(c, timeout_ns);

		if (ret == 0)
			c->seen_inc = c->view.inc;
		return ret;
	}
	return stream_next(c, timeout_ns);
}

/* Where the current message's payload is: the ring, or an adopted copy. */
static const void *payload(struct shmq_consumer *c)
{
	return c->redelivered ? (const void *)c->adopt_buf :
				(const void *)(c->view.hdr + 1);
}

/* One assignment: the reserved fields are written as zero too. */
static void fill_msg(struct shmq_consumer *c, struct shmq_msg *msg)
{
	*msg = (struct shmq_msg){
		.data = payload(c),
		.len = c->view.len,
		.seq = c->view.seq,
		.inc = c->view.inc,
		.flags = (c->redelivered ? SHMQ_MSG_REDELIVERED : 0u) |
			 ((c->view.flags & SHMQ_REC_F_UNTERMINATED) ?
			  SHMQ_MSG_UNTERMINATED : 0u) |
			 (((c->view.flags & SHMQ_REC_F_FRAMING) >>
			   SHMQ_REC_FRAMING_SHIFT) << SHMQ_MSG_FRAMING_SHIFT),
		.lost = c->lost,
	};
}

/* A record that failed its checksum: a member drops its claim on it. */
static int bad_checksum(struct shmq_consumer *c)
{
	uint64_t pos = c->kind == SHMQ_KIND_MEMBER ? c->claim_pos : c->pos;

	c->peeked = false;
	c->pending = false;
	if (c->kind == SHMQ_KIND_MEMBER)
		shmqi_member_release(c);
	/* E1: overwritten under an evicted consumer is the eviction. */
	if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
		return evicted_error();
	return shmqi_fail(-EBADMSG, "record at %llu: bad checksum",
			  (unsigned long long)pos);
}

/*
 * The next message for shmq_peek() and shmq_recv(): the one a refused
 * shmq_recv() left pending, or a new one, which is pending (next, not
 * handed out, not releasable) until a call hands it out.
 */
static int locate(struct shmq_consumer *c, int64_t timeout_ns)
{
	int ret;

	if (c->pending)
		return c->kind != SHMQ_KIND_OBSERVER && evicted(c) ?
		       evicted_error() : 0;
	ret = next_record(c, timeout_ns);
	if (ret == 0)
		c->pending = true;
	return ret;
}

/*
 * The first unreleased message of an outstanding shmq_peek_many() batch
 * (a broadcast consumer's: members get one message a batch), into *V. Our
 * position still holds it, so the producer has not overwritten it.
 */
static int batch_first(struct shmq_consumer *c, struct shmqi_rec_view *v)
{
	uint64_t pos = c->pos;

	for (int i = 0; i < 3; i++) {
		int ret = shmqi_rec_view(c->q, pos, c->wpos_cache, v);

		if (ret < 0)
			return ret;
		if (v->type == SHMQ_REC_DATA)
			return 0;
		pos = v->next;
	}
	return shmqi_fail(-EBADMSG, "record at %llu: padding after padding",
			  (unsigned long long)pos);
}

static void fill_first(const struct shmqi_rec_view *v, struct shmq_msg *msg)
{
	*msg = (struct shmq_msg){
		.data = v->hdr + 1,
		.len = v->len,
		.seq = v->seq,
	};
}

int shmq_peek(struct shmq_consumer *c, struct shmq_msg *msg,
	      int64_t timeout_ns)
{
	struct shmqi_rec_view v;
	int ret;

	if (shmqi_inherited(c))
		return shmqi_fail_inherited();
	if (c->kind == SHMQ_KIND_OBSERVER)
		return shmqi_fail(-EINVAL, "observers receive by copy (shmq_recv)");
	if (unlikely(c->peeked && c->peek_n > 1)) {
		/* A batch is outstanding: its first unreleased message. */
		ret = batch_first(c, &v);
		if (ret < 0)
			return ret;
		fill_first(&v, msg);
		return 0;
	}
	/* Peeked already: the same message again, nothing is re-read. */
	if (!c->peeked) {
		ret = locate(c, timeout_ns);
		if (ret < 0)
			return ret;
		if (!c->redelivered &&
		    !shmqi_rec_crc_ok(c->q, &c->view, c->view.hdr + 1))
			return bad_checksum(c);
		c->pending = false;
		c->peeked = true;
		c->peek_n = 1;
	}
	fill_msg(c, msg);
	return 0;
}

/* Move past the peeked message(s) and give the space back. */
static void release_peeked(struct shmq_consumer *c)
{
	c->peeked = false;
	c->pending = false;
	c->peek_n = 0;
	c->lost = 0;
	c->bytes += c->view.len + c->peek_more_bytes;
	c->peek_more_bytes = 0;
	if (c->kind == SHMQ_KIND_MEMBER) {
		store_relaxed(&c->slot->bytes, c->bytes);
		store_relaxed(&c->slot->next_seq, c->view.seq + 1);
		shmqi_member_release(c);
	} else {
		c->pos = c->view.next;
		c->seq = c->view.seq + 1;
		c->seq_known = true;
		publish_pos(c);
	}
}

int shmq_release(struct shmq_consumer *c)
{
	if (shmqi_inherited(c))
		return shmqi_fail_inherited();
	if (!c->peeked)
		return shmqi_fail(-EINVAL, "nothing peeked");
	release_peeked(c);
	/* E1: the caller read the message in place; was it still ours? */
	if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
		return evicted_error();
	return 0;
}

/*
 * Release the first N messages of the outstanding batch: walk them again
 * from our position (our position still holds them, so they are intact
 * unless we were evicted, which is checked first), then publish the new
 * position as shmq_release() does (R1, F3 in publish_pos()).
 */
int shmq_release_n(struct shmq_consumer *c, size_t n)
{
	struct shmqi_rec_view v;
	uint64_t pos = c->pos, bytes = 0, first;
	size_t k = 0;

	if (shmqi_inherited(c))
		return shmqi_fail_inherited();
	if (!c->peeked)
		return shmqi_fail(-EINVAL, "nothing peeked");
	if (n == 0 || n > c->peek_n)
		return shmqi_fail(-EINVAL, "releasing %zu messages of a batch of %zu",
				  n, c->peek_n);
	if (n == c->peek_n)
		return shmq_release(c);
	/* Only a broadcast consumer's batch holds more than one message. */
	if (evicted(c)) {					/* E1 */
		release_peeked(c);
		return evicted_error();
	}
	first = c->view.seq - (c->peek_n - 1);	/* a batch is consecutive */
	while (k < n) {
		int ret = shmqi_rec_view(c->q, pos, c->wpos_cache, &v);

		if (ret < 0)
			return ret;
		pos = v.next;
		if (v.type != SHMQ_REC_DATA)
			continue;
		if (v.seq != first + k)
			return shmqi_fail(-EBADMSG, "record at %llu: sequence %llu in a batch that expects %llu",
					  (unsigned long long)c->pos,
					  (unsigned long long)v.seq,
					  (unsigned long long)(first + k));
		bytes += v.len;
		k++;
	}
	c->pos = pos;
	c->seq = first + n;
	c->seq_known = true;
	c->bytes += bytes;
	c->peek_more_bytes -= bytes;
	c->peek_n -= n;
	publish_pos(c);
	if (evicted(c))						/* E1 */
		return evicted_error();
	return 0;
}

/*
 * Peek the next message as shmq_peek() does, then, without waiting, as
 * many of those already published after it as fit in N: each validated
 * and checked like the first. c->view becomes the last one, so that
 * shmq_release() moves past all of them with one position store.
 */
ssize_t shmq_peek_many(struct shmq_consumer *c, struct shmq_msg *msgs,
		       size_t n, int64_t timeout_ns)
{
	struct shmqi_rec_view v;
	uint64_t pos, end, more = 0;
	size_t k;
	int ret;

	if (shmqi_inherited(c))
		return shmqi_fail_inherited();
	if (n == 0 || (c->peeked && c->peek_n > 1))
		return shmqi_fail(-EINVAL, n ? "release the last batch first" :
				  "no room for a message");
	ret = shmq_peek(c, &msgs[0], timeout_ns);
	if (ret < 0)
		return ret;
	/* Group members claim one record at a time. */
	if (c->kind == SHMQ_KIND_MEMBER)
		return 1;
	pos = c->view.next;
	end = c->wpos_cache;
	for (k = 1; k < n; ) {
		if (pos == end) {
			end = read_end(c);			/* A1 */
			if (pos == end)
				break;
		}
		if (shmqi_rec_view(c->q, pos, end, &v) < 0)
			break;	/* the next call reports it */
		if (v.type == SHMQ_REC_PAD) {
			pos = v.next;
			continue;
		}
		if (v.type != SHMQ_REC_DATA)
			break;	/* a session's end: the next call returns it */
		if (v.seq != c->view.seq + 1 ||
		    !shmqi_rec_crc_ok(c->q, &v, v.hdr + 1))
			break;
		more += c->view.len;
		c->view = v;
		fill_msg(c, &msgs[k++]);
		pos = v.next;
	}
	if (pos_before(c->wpos_cache, end))
		c->wpos_cache = end;
	c->peek_more_bytes = more;
	c->peek_n = k;
	return (ssize_t)k;
}

/*
 * shmq_recv() into a buffer too small: nothing is consumed. The message
 * stays next (pending, or peeked if it was), and *MSG says how big it is,
 * with data NULL, so that the caller can retry with a larger buffer.
 */
static ssize_t too_small(const struct shmq_msg *m, size_t cap,
			 struct shmq_msg *msg)
{
	if (msg) {
		*msg = *m;
		msg->data = NULL;
	}
	return shmqi_fail(-EMSGSIZE, "message of %zu bytes, buffer of %zu",
			  m->len, cap);
}

/* shmq_recv() with a batch outstanding: the first of it, released alone. */
static ssize_t recv_batch_first(struct shmq_consumer *c, void *buf,
				size_t cap, struct shmq_msg *msg)
{
	struct shmqi_rec_view v;
	struct shmq_msg m;
	int ret = batch_first(c, &v);

	if (ret < 0)
		return ret;
	fill_first(&v, &m);
	if (m.len > cap)
		return too_small(&m, cap, msg);
	memcpy(buf, m.data, m.len);
	if (evicted(c))						/* E1 */
		return evicted_error();
	if (!shmqi_rec_crc_ok(c->q, &v, buf))
		return shmqi_fail(-EBADMSG, "record at %llu: bad checksum",
				  (unsigned long long)c->pos);
	ret = shmq_release_n(c, 1);
	if (ret < 0)
		return ret;
	m.data = buf;
	if (msg)
		*msg = m;
	return (ssize_t)m.len;
}

#if SHMQI_HAVE_FAST
/*
 * shmq_recv's common case in one piece (c->fast: a broadcast or named
 * consumer, not durable, on a CPU with SSE4.2; nothing peeked or
 * pending): the next record is a data record already published (within
 * the cached write_pos, or the write_pos A1 loads now), with nothing
 * unusual about it. The checks are shmqi_rec_view's, stream_next's and
 * shmq_recv's, on one copy of the header: bounds, lap, incarnation (the
 * queue's own: anything else goes the slow way, which applies the whole
 * rule), type and flags, length, the expected sequence, the buffer's
 * size; then the copy, the eviction check that vouches for it (E1), and
 * the checksum of the copy. Anything else, including a record that fails
 * a check, returns 0 having changed nothing that matters: the slow path
 * reads the record again and reports what it finds, or waits. Returns
 * the message's length, or 0 (a message of length 0 also takes the slow
 * path, which is fine).
 */
static SHMQI_CRC_TARGET ssize_t recv_fast(struct shmq_consumer *c, void *buf,
					  size_t cap, struct shmq_msg *msg)
{
	struct shmq *q = c->q;
	const struct shmq_geom *g = &q->g;
	uint64_t pos = c->pos, w = c->wpos_cache, off, room, size;
	struct shmq_rec h;
	const struct shmq_rec *rec;
	uint32_t crc, len;

	if (pos == w) {
		w = load_acquire(&q->hdr->write_pos);		/* A1 */
		if (pos == w)
			return 0;
		c->wpos_cache = w;
	}
	off = pos & g->mask;
	room = g->capacity - off;
	if (unlikely(w - pos > g->capacity || room < SHMQ_REC_HDR))
		return 0;
	rec = (const struct shmq_rec *)(q->data + off);
	memcpy(&h, rec, sizeof(h));
	len = h.len;
	if (unlikely((h.type & ~SHMQ_REC_F_KNOWN) != SHMQ_REC_DATA ||
		     h.lap != shmqi_lap(g, pos) ||
		     h.inc != load_acquire(&q->hdr->incarnation) ||
		     len > g->max_message || len > cap ||
		     SHMQ_REC_HDR + (uint64_t)len > room ||
		     !c->seq_known || h.seq != c->seq))
		return 0;
	size = shmqi_rec_size(len);
	if (unlikely(size > w - pos || len == 0))
		return 0;
	memcpy(buf, rec + 1, len);
	if (unlikely(evicted(c)))				/* E1 */
		return 0;
	/* Check the copy, not the ring: a scribbler cannot race the check. */
	crc = shmqi_hdr_crc_hw(g->salt, &h);
	if (!(g->flags & SHMQ_FLAG_HDR_CRC))
		crc = shmqi_crc_hw(crc, buf, len);
	if (unlikely(~crc != h.crc))
		return 0;
	c->seen_inc = h.inc;
	c->resynced = false;
	if (msg)
		*msg = (struct shmq_msg){
			.data = buf,
			.len = len,
			.seq = h.seq,
			.inc = h.inc,	/* fill_msg()'s fields, every one */
			.flags = ((h.type & SHMQ_REC_F_UNTERMINATED) ?
				  SHMQ_MSG_UNTERMINATED : 0u) |
				 (((h.type & SHMQ_REC_F_FRAMING) >>
				   SHMQ_REC_FRAMING_SHIFT) <<
				  SHMQ_MSG_FRAMING_SHIFT),
			.lost = c->lost,
		};
	/* release_peeked()'s part for a broadcast consumer. */
	c->lost = 0;
	c->bytes += len;
	c->pos = pos + size;
	c->seq = h.seq + 1;
	publish_pos(c);
	return (ssize_t)len;
}
#endif

ssize_t shmq_recv(struct shmq_consumer *c, void *buf, size_t cap,
		  struct shmq_msg *msg, int64_t timeout_ns)
{
	struct shmq_msg m;
	int ret;

	if (shmqi_inherited(c))
		return shmqi_fail_inherited();
#if SHMQI_HAVE_FAST
	if (likely(c->fast) && !c->peeked && !c->pending && !c->end_held) {
		ssize_t n = recv_fast(c, buf, cap, msg);

		if (n > 0)
			return n;
	}
#endif
	if (unlikely(c->peeked && c->peek_n > 1))
		return recv_batch_first(c, buf, cap, msg);
	for (;;) {
		if (!c->peeked) {
			ret = locate(c, timeout_ns);
			if (ret < 0)
				return ret;
		}
		if (unlikely(c->view.len > cap)) {
			/* An observer reports the size of a record still there. */
			if (c->kind == SHMQ_KIND_OBSERVER && lapped(c)) {
				resync(c);
				continue;
			}
			fill_msg(c, &m);
			return too_small(&m, cap, msg);
		}
		memcpy(buf, payload(c), c->view.len);
		if (c->kind != SHMQ_KIND_OBSERVER || !lapped(c))
			break;
		resync(c);	/* overwritten while we copied: start again */
	}
	if (c->kind != SHMQ_KIND_OBSERVER && evicted(c))
		return evicted_error();
	/* Check the copy, not the ring: a scribbler cannot race the check. */
	if (!c->redelivered && !shmqi_rec_crc_ok(c->q, &c->view, buf))
		return bad_checksum(c);
	fill_msg(c, &m);
	m.data = buf;
	if (msg)
		*msg = m;
	/* The copy was checked for eviction above: no second check. */
	release_peeked(c);
	return (ssize_t)m.len;
}

int shmq_set_evict_after(struct shmq *q, uint32_t ms)
{
	shmqi_clear_error();
	if (q->rdonly)
		return shmqi_fail(-EROFS, "queue opened read-only");
	store_relaxed(&q->hdr->evict_ms, ms);
	return 0;
}

/*
 * shmq_consumer_fd(): made on first call, and readable at once (the
 * caller reads until -EAGAIN, which arms it).
 */
int shmq_consumer_fd(struct shmq_consumer *c)
{
	int ret;

	shmqi_clear_error();
	if (shmqi_inherited(c))
		return shmqi_fail_inherited();
	if (!c->ps) {
		ret = shmqi_pollset_new(c->q, &c->ps);
		if (ret < 0)
			return ret;
		shmqi_pollset_wake(c->ps);
	}
	return c->ps->epfd;
}

int shmq_consumer_last_end(struct shmq_consumer *c, uint32_t *inc)
{
	if (!c->ended_inc)
		return shmqi_fail(-ENOENT, "no session end returned yet");
	if (inc)
		*inc = c->ended_inc;
	return 0;
}
