/* SPDX-License-Identifier: MIT */
/*
 * The producer: the exclusive role, reserving space in the ring (reclaiming
 * what every holder released), sealing records and publishing them.
 * Orderings are labelled; docs/concurrency.md tables the pairs.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static void end_previous(struct shmq_producer *p, uint32_t prev_inc);
static int flush_owed(struct shmq_producer *p, int64_t timeout_ns);
static int mark_best(struct shmq *q, uint64_t end);

int shmq_producer_open(struct shmq *q, const struct shmq_producer_opts *opts,
		       struct shmq_producer **out)
{
	struct shmq_producer *p;
	struct shmq_hdr *h = q->hdr;
	uint64_t w, t, m;
	uint32_t prev_inc, prev_state;
	int ret;

	shmqi_clear_error();
	*out = NULL;
	for (size_t i = 0; opts && i < sizeof(opts->reserved) / sizeof(opts->reserved[0]); i++)
		if (opts->reserved[i])
			return shmqi_fail(-EINVAL, "struct shmq_producer_opts: reserved fields must be zero (zero-initialise it)");
	if (opts && (opts->flags & ~(SHMQ_PRODUCER_FIFO | SHMQ_PRODUCER_ACCEPT_LOSS |
				     SHMQ_PRODUCER_FRAMING_MASK)))
		return shmqi_fail(-EINVAL, "unknown producer flags %#x", opts->flags);
	if (q->rdonly)
		return shmqi_fail(-EROFS, "queue opened read-only");
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->q = q;
	p->flags = opts ? opts->flags : 0;
	p->framing_bits = ((p->flags & SHMQ_PRODUCER_FRAMING_MASK) >>
			   SHMQ_PRODUCER_FRAMING_SHIFT) << SHMQ_REC_FRAMING_SHIFT;
	shmqi_sync_config(p, opts);
	if (p->sync_mode > SHMQ_SYNC_EVERY) {
		ret = shmqi_fail(-EINVAL, "unknown sync mode %u", p->sync_mode);
		goto fail_free;
	}
	/* Closed in a fork() child (liveness.c): opened and listed at once. */
	ret = shmqi_role_open(q, &p->role, &p->lock_fd);
	if (ret < 0)
		goto fail_free;
	ret = shmqi_lock_try(p->lock_fd, SHMQ_LOCK_PRODUCER);
	if (ret == -EAGAIN) {
		ret = shmqi_fail(-EBUSY, "queue already has a producer (pid %u)",
				 load_relaxed(&h->prod_pid));
		goto fail_close;
	}
	if (ret < 0)
		goto fail_close;
	/*
	 * S2: no state of the last session survives into ours: "none" at
	 * once, as soon as we hold the role (a consumer that probed the role
	 * looks at the state again), before the new incarnation (stored with
	 * release below), until "open" at the end. Put back if the open
	 * fails, so that a refused recovery (SHMQ_ELOSS) leaves the file as
	 * it was.
	 */
	prev_state = load_acquire(&h->prod_state);
	store_release(&h->prod_state, SHMQ_PSTATE_NONE);
	/*
	 * Pollers armed with no session open watch nothing and set no
	 * timer: ring them, so that they re-arm seeing NONE and probe us
	 * with their timer until our OPEN rings again (killed in between,
	 * we would leave them asleep). The fence orders the state before
	 * the load of their bits (F2, as after OPEN below).
	 */
	fence_full();
	shmqi_wake_consumers(q, false);
	KILL_POINT("producer-open:role");

	/*
	 * We hold the role: nobody else writes the producer's fields now.
	 * Validate what the last producer left and cut a torn tail.
	 */
	ret = shmqi_recover(p, &t, &w);
	if (ret < 0) {
		store_release(&h->prod_state, prev_state);
		goto fail_unlock;	/* SHMQ_ELOSS: the file as it was */
	}
	/* attach_fd() maps the ring read-only; only the producer writes it. */
	if (mprotect(q->data, q->g.capacity, PROT_READ | PROT_WRITE) < 0) {
		ret = shmqi_fail(-errno, "mprotect of the ring: %m");
		store_release(&h->prod_state, prev_state);
		goto fail_unlock;
	}
	p->pos = p->pub_pos = w;
	p->tail = p->limit = t;
	/* Marks: the next one overwrites the entry that is not the last. */
	p->open_end = w;
	p->mark_next = mark_best(q, w) == 0 ? 1u : 0u;
	/*
	 * An entry past the end rode on a publish that is gone: forget it
	 * (initial_pos: never valid), or our own publishes, once they pass
	 * its position, would make its stale value look like the last mark.
	 */
	for (int i = 0; i < 2; i++)
		if (pos_before(w, load_relaxed(&h->mark_pos[i])))
			store_relaxed(&h->mark_pos[i],
				      load_relaxed(&h->initial_pos));
	store_relaxed(&h->next_seq, p->seq);
	store_relaxed(&h->pub_seq, p->seq);
	store_relaxed(&h->tail_seq, p->tail_seq);
	store_relaxed(&h->prod_pid, (uint32_t)getpid());
	/* For consumers' pidfds: before the epoch bump below (a full fence). */
	store_relaxed(&h->prod_pidns, shmqi_pidns());
	/*
	 * A new incarnation, for every record we seal. inc_pos is stored
	 * before incarnation (release), so that a header page written back
	 * between the two stores pairs the old incarnation with the new
	 * inc_pos, which recovery accepts (no record lies past it yet); the
	 * reverse pairing would reject the previous incarnation's records.
	 * 2^32 opens would wrap it: not a concern for any real queue.
	 */
	/*
	 * The disk must match memory before the header names a new
	 * incarnation: the last producer may have moved tail_pos without a
	 * header msync (a send that failed after refreshing its limit), and
	 * our first records would then overwrite what the disk still calls
	 * the tail; and the last incarnation's records must be on disk
	 * before a header that says they lie below inc_pos can reach it (by
	 * msync or by writeback, at any moment after the stores below), or
	 * a power loss could leave records of an even older incarnation
	 * there (after a cut), which the incarnation rule accepts below
	 * inc_pos. So a whole sync first, data then header, in every mode:
	 * once per open, nothing on tmpfs.
	 */
	ret = shmqi_sync_producer(p);
	if (ret < 0)
		ret = shmqi_sync_anyway(q);	/* durability failed before */
	prev_inc = load_relaxed(&h->incarnation);
	p->inc = prev_inc + 1 ? prev_inc + 1 : 1;	/* 0: never opened */
	/*
	 * How the last session ended, for consumers that learn it from us
	 * before its END record is in the ring (superseded_end()): stored
	 * before the incarnation (release) that tells them it ended.
	 */
	p->owed_last_kind =
		!p->cut_bytes && prev_state == SHMQ_PSTATE_CLOSED ? SHMQ_END_CLOSED :
		!p->cut_bytes && prev_state == SHMQ_PSTATE_ABORTED ? SHMQ_END_ABORTED :
		SHMQ_END_DIED;	/* a cut may have taken part of that session */
	store_relaxed(&h->prev_end_kind, p->owed_last_kind);
	store_relaxed(&h->inc_pos, w);
	store_release(&h->incarnation, p->inc);
	rmw_add(&h->prod_epoch, 1);
	KILL_POINT("producer-open:incarnation");
	p->asym = shmqi_membarrier_register() == 0;
	p->fast = SHMQI_HAVE_FAST && p->sync_mode == SHMQ_SYNC_NONE &&
		  shmqi_crc_have_hw();
	store_relaxed(&h->prod_caps, p->asym ? SHMQ_CAP_ASYM : 0u);
	/*
	 * Caps before our first load of data_waiters: a consumer that read
	 * the old caps and skipped its membarrier stored its flag, fenced,
	 * before that read, so after this fence we see the flag.
	 */
	fence_full();
	p->attach_base = load_relaxed(&h->attach_count);
	p->slot_gen = load_relaxed(&h->slot_gen) - 1;	/* scan at first send */
	/*
	 * F1 again: the producer before us may have died after it moved the
	 * tail and before its re-scan of the holders, while a consumer that
	 * had read the old tail attached below the new one. After the fence
	 * above we see such a consumer's position: stay behind it.
	 */
	if (shmqi_holders_min(q, &m) > 0 && pos_before(m, t) &&
	    !pos_before(m, w - q->g.capacity))
		p->limit = m;
	/*
	 * The new incarnation must be on disk before records that carry it
	 * (the header msync after the stores above; the first sync wrote
	 * the header with the old incarnation and the data). A failure is
	 * recorded (sticky) and leaves the disk tail unknown.
	 */
	if (ret == 0)
		ret = shmqi_sync_header(q);
	p->disk_tail = ret == 0 ? t : w - q->g.capacity;
	p->claim_ok_end = p->tail;	/* look at the claim before lapping */
	p->sync_pending = 0;
	/* Sessions: the one before ours gets its END, ours its framing. */
	end_previous(p, prev_inc);
	store_relaxed(&h->framing, p->framing_bits >> SHMQ_REC_FRAMING_SHIFT);
	store_relaxed(&h->batch_ms, p->sync_mode == SHMQ_SYNC_BATCH ?
		      (uint32_t)(p->sync_ns / 1000000) : 0u);
	/*
	 * Our session's lock byte (format.h), before OPEN: a consumer that
	 * reads OPEN and our incarnation finds it held while we live. The
	 * last holder of this parity was two sessions ago, and is gone.
	 */
	KILL_POINT("producer-open:session-lock");
	ret = shmqi_lock_wait(p->lock_fd, SHMQ_LOCK_SESSION0 + (p->inc & 1),
			      SHMQ_ATTACH_LOCK_NS);
	if (ret < 0) {
		ret = shmqi_fail(ret, "taking the session lock: %s",
				 shmq_strerror(ret));
		goto fail_unlock;
	}
	/* Consumers that see OPEN also see the fields above. */
	store_release(&h->prod_state, SHMQ_PSTATE_OPEN);
	KILL_POINT("producer-open:before-ring");
	/*
	 * Pollers waiting for a session watch its producer once it is OPEN
	 * (shmqi_pollset_watch): ring them. The fence orders the state
	 * before the load of their bits, against their fenced bit before
	 * they read the state (F2).
	 */
	fence_full();
	shmqi_wake_consumers(q, false);
	q->nhandles++;
	*out = p;
	return 0;
fail_unlock:
	shmqi_unlock(p->lock_fd, SHMQ_LOCK_PRODUCER);
fail_close:
	shmqi_role_close(&p->role);
fail_free:
	free(p);
	return ret;
}

/*
 * The pending mark rides on the publish being made (M1): stored before
 * W1, so that a reader of write_pos past its position finds it. The file
 * keeps two entries. The one written is the older, unless that one is
 * the only one at or below the durable watermark while the newer is not
 * (sync mode batch publishes many marks per sync): then the newer is
 * overwritten, so that the file keeps a mark a power loss cannot take
 * (recovery never cuts below durable_pos, and the header msync of the
 * sync that raised it carried that entry, stored before). Else two
 * unsynced marks would overwrite the durable one, and a power loss that
 * cut both would leave no mark while the records of the durable one
 * survived.
 *
 * The entry is written position, value, position: first made invalid
 * (initial_pos, never a mark's), so that a process that dies, or a page
 * written back, between the stores leaves either the entry as it was, or
 * an invalid one (the other entry stands, and the records after it are
 * counted), or the new mark; never a value paired with a position that
 * is not its own. The stores are release so that they reach memory in
 * this order for a writeback that copies the page between them.
 */
static void store_mark(struct shmq_producer *p)
{
	struct shmq_hdr *h = p->q->hdr;
	uint64_t first = load_relaxed(&h->initial_pos);
	uint64_t d = load_acquire(&h->durable_pos);
	uint32_t i = p->mark_next;
	uint64_t older = load_relaxed(&h->mark_pos[i]);
	uint64_t newer = load_relaxed(&h->mark_pos[i ^ 1u]);
	bool older_durable = older != first && !pos_before(d, older);
	bool newer_durable = newer != first && !pos_before(d, newer);

	if (older_durable && !newer_durable)
		i ^= 1u;	/* keep the only durable one */
	store_release(&h->mark_pos[i], first);
	KILL_POINT("mark:invalid");
	store_release(&h->mark_val[i], p->mark_value);
	KILL_POINT("mark:value");
	store_release(&h->mark_pos[i], p->pos);
	KILL_POINT("mark:pos");
	p->mark_next = i ^ 1u;
	p->mark_pending = false;
}

/*
 * Publish every sealed record. W1 pairs with A1 in the consumer's
 * refresh: record contents before write_pos. F2: write_pos must be
 * visible before we read data_waiters, against a consumer's waiters store
 * before its re-read of write_pos; either it sees our records or we see it
 * sleeping. Registered for membarrier (p->asym), a plain release store
 * does: the consumer's membarrier before it re-reads is the fence on our
 * CPU. Otherwise the store is a locked xchg (store_fenced). WITH_MARK:
 * the pending mark rides on it (see shmq_publish()).
 */
static inline void publish_now(struct shmq_producer *p, bool with_mark)
{
	struct shmq_hdr *h = p->q->hdr;

	KILL_POINT("publish:before");
	if (with_mark && p->mark_pending)
		store_mark(p);
	/* pub_seq before, next_seq after write_pos: see observer_seq(). */
	store_relaxed(&h->pub_seq, p->seq);
	if (likely(p->asym))
		store_release(&h->write_pos, p->pos);	/* W1, F2 (asym) */
	else
		store_fenced(&h->write_pos, p->pos);	/* W1, F2 */
	KILL_POINT("publish:after");
	p->pub_pos = p->pos;
	store_relaxed(&h->next_seq, p->seq);
	store_relaxed(&h->stat_msgs, load_relaxed(&h->stat_msgs) + p->unpublished);
	store_relaxed(&h->stat_bytes, load_relaxed(&h->stat_bytes) + p->unpub_bytes);
	p->unpublished = 0;
	p->unpub_bytes = 0;
	/* F2: sleepers on the futex, pollers by the doorbell (pollfd.c). */
	if (unlikely(load_relaxed(&h->data_waiters)))
		shmqi_wake_consumers(p->q, false);
}

/* publish_now(), then what the sync mode owes (sync.c). */
static int publish(struct shmq_producer *p, bool with_mark)
{
	uint64_t n = p->unpublished;

	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	if (p->pos == p->pub_pos)
		return 0;
	publish_now(p, with_mark);
	return shmqi_sync_published(p, n);	/* sync modes (sync.c) */
}

/*
 * A pending mark rides on the caller's publishes (shmq_publish(), a send,
 * the session's own END), never on the library's own: the publish of a
 * reserve that must wait for room (part of a batch, or records committed
 * with SHMQ_COMMIT_DEFER before the mark's last record) or of an END owed
 * to an earlier session. The mark's value names the last record of the
 * caller's publish; carried by an earlier one, it would name records the
 * queue does not hold yet, or stand before one of its own.
 */
int shmq_publish(struct shmq_producer *p)
{
	return publish(p, true);
}

/*
 * Find how far the ring may be written: below limit + capacity. The limit
 * is the tail (oldest intact record), which may advance over records that
 * every holder has released, never past a holder. Returns 1 when NEED_END
 * fits, 0 when it does not, or -errno.
 *
 * F1: tail_pos is published with a full fence before the holders are
 * scanned again. A consumer attaching stores its position, fences, then
 * re-reads tail_pos. So either we see its position and stay behind it, or
 * it sees the new tail and moves up to it: a consumer that attaches while
 * we reclaim space never reads overwritten data.
 */
/* Sequence of the first data record at or after T (for stat, recovery). */
static uint64_t seq_at(struct shmq_producer *p, uint64_t t)
{
	struct shmqi_rec_view v;

	for (int i = 0; i < 2 && t != p->pub_pos; i++) {
		if (shmqi_rec_view(p->q, t, p->pub_pos, &v) < 0)
			break;
		if (v.type == SHMQ_REC_DATA)
			return v.seq;
		t = v.next;
	}
	return p->seq - p->unpublished;
}

static int refresh_limit(struct shmq_producer *p, uint64_t need_end)
{
	struct shmq *q = p->q;
	struct shmq_hdr *h = q->hdr;
	uint64_t need = need_end - q->g.capacity;
	uint64_t m, t = p->tail;
	struct shmqi_rec_view v;
	int n, ret;

	n = shmqi_holders_min_idx(q, &m, &p->slow_idx);
	p->slow_valid = n > 0;
	if (n == 0) {
		if (q->g.flags & SHMQ_FLAG_OVERWRITE) {
			m = p->pub_pos;
		} else {
			m = load_acquire(&h->floor_pos);
			if (pos_before(m, t))
				m = t;
		}
	}
	/* A holder past what we published is corrupt; stopping there is safe. */
	if (pos_before(p->pub_pos, m))
		m = p->pub_pos;
	if (n > 0 || !(q->g.flags & SHMQ_FLAG_OVERWRITE)) {
		/*
		 * Holder positions and the floor lie on record boundaries:
		 * reclaim everything below them at once, so that the next
		 * refresh is a whole ring of sends away.
		 */
		if (pos_before(t, m))
			t = m;
	} else {
		/* Overwriting with nobody holding: walk, an eighth extra. */
		uint64_t goal = need + q->g.capacity / 8;

		while (pos_before(t, goal) && pos_before(t, m)) {
			ret = shmqi_rec_view(q, t, p->pub_pos, &v);
			if (ret < 0)
				return ret;
			t = v.next;
		}
	}
	if (t != p->tail) {
		p->tail_seq = seq_at(p, t);
		store_relaxed(&h->tail_seq, p->tail_seq);
		store_fenced(&h->tail_pos, t);		/* W2, F1 */
		p->tail = t;
		n = shmqi_holders_min(q, &m);		/* after F1 */
	}
	p->limit = (n > 0 && pos_before(m, t)) ? m : t;
	return need_end - p->limit <= q->g.capacity;
}

/*
 * FIFO mode: -EPIPE once consumers attached in our time and all are gone.
 * Consumers of every kind count, each by its own lock: broadcast, group
 * members (not the group slot, which no process owns) and observers.
 */
static int fifo_check(struct shmq_producer *p)
{
	struct shmq *q = p->q;
	uint32_t live = 0;

	p->slot_gen = load_acquire(&q->hdr->slot_gen);
	if (load_relaxed(&q->hdr->attach_count) != p->attach_base)
		p->seen_consumer = true;
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		if (load_acquire(&s->state) != SHMQ_SLOT_ACTIVE ||
		    load_relaxed(&s->kind) == SHMQ_KIND_GROUP)
			continue;
		if (shmqi_lock_held(q->fd, SHMQ_LOCK_SLOT0 + i) == 1)
			live++;
	}
	if (live)
		p->seen_consumer = true;
	if (p->seen_consumer && !live) {
		p->epipe = true;
		return shmqi_fail(-EPIPE, "every consumer has gone");
	}
	return 0;
}

/*
 * FIFO mode, once per send: a clean detach bumps slot_gen, which costs one
 * load to notice; a consumer killed by a signal bumps nothing, so every
 * 256 sends we look at the clock and probe the locks every 20 ms. -EPIPE
 * sticks, as it does for a writer to a pipe without readers.
 */
static int fifo_poll(struct shmq_producer *p)
{
	int64_t now;

	if (unlikely(p->epipe))
		return shmqi_fail(-EPIPE, "every consumer has gone");
	if (load_relaxed(&p->q->hdr->slot_gen) == p->slot_gen &&
	    (++p->fifo_tick & 255))
		return 0;
	now = shmqi_now_ns();
	if (load_relaxed(&p->q->hdr->slot_gen) == p->slot_gen &&
	    now - p->fifo_check_ns < 20000000)
		return 0;
	p->fifo_check_ns = now;
	return fifo_check(p);
}

/* One sleep on space_futex, with F3 against the consumers' release. */
static int sleep_for_space(struct shmq_producer *p, uint64_t need_end,
			   int64_t deadline)
{
	struct shmq_hdr *h = p->q->hdr;
	uint32_t v = load_relaxed(&h->space_futex);
	int ret;

	/*
	 * F3: our waiting flag is visible before we re-scan positions; a
	 * consumer stores its position (fenced) before it reads the flag.
	 */
	rmw_or(&h->prod_waiting, SHMQ_WAIT_FUTEX);
	if (p->asym)
		shmqi_membarrier();	/* F3 for consumers releasing unfenced */
	ret = refresh_limit(p, need_end);
	if (ret != 0)
		goto out;
	ret = shmqi_futex_wait(&h->space_futex, v, deadline, SHMQ_SLICE_NS);
	if (ret == 1)	/* the slice ran out: check the file is still ours */
		ret = shmqi_check_file(p->q);
out:
	/* Our bit only: a poll armed by this handle stays armed. */
	rmw_and(&h->prod_waiting, ~SHMQ_WAIT_FUTEX);
	return ret < 0 ? ret : 0;
}

/*
 * Eviction policy: a holder that has not moved for evict_ms while we wait
 * on it stops holding. E1: its state becomes EVICTED with a fenced store
 * before we overwrite anything it may still be reading; the consumer
 * checks its state after its reads (fence_acquire) and reports
 * SHMQ_EVICTED instead of delivering what it read.
 */
static void evict_stalled(struct shmq_producer *p)
{
	struct shmq *q = p->q;
	uint32_t ms = load_relaxed(&q->hdr->evict_ms);
	int64_t now = shmqi_now_ns();
	uint64_t m;

	if (!ms || shmqi_holders_min(q, &m) == 0)
		return;
	if (!p->stall_since || m != p->stall_pos) {
		p->stall_pos = m;
		p->stall_since = now;
		return;
	}
	if (now - p->stall_since < (int64_t)ms * 1000000)
		return;
	if (shmqi_lock_try(p->lock_fd, SHMQ_LOCK_ATTACH) < 0)
		return;	/* someone is attaching: next time */
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		if (shmqi_slot_holds(load_acquire(&s->state), load_relaxed(&s->kind)) &&
		    load_acquire(&s->position) == m)
			store_fenced(&s->state, SHMQ_SLOT_EVICTED);	/* E1 */
	}
	/*
	 * What the evicted held is given up: raise the floor past it, or a
	 * block-policy queue left without holders would keep waiting on it.
	 */
	if (pos_before(load_relaxed(&q->hdr->floor_pos), p->pub_pos))
		store_release(&q->hdr->floor_pos, p->pub_pos);
	rmw_add(&q->hdr->slot_gen, 1);
	shmqi_unlock(p->lock_fd, SHMQ_LOCK_ATTACH);
	p->stall_since = 0;
	/*
	 * An evicted poller learns it on its next call: ring. The fenced
	 * EVICTED stores (E1) come before this load of the bits; a poller
	 * sets its bit (fenced) before it checks its state.
	 */
	shmqi_wake_consumers(q, false);
}

/*
 * Spin a little while without rescanning the slot table: watch only the
 * slowest holder's position, which is what must move to make room.
 */
static void spin_on_slowest(struct shmq_producer *p)
{
	struct shmq_slot *s = &p->q->slots[p->slow_idx];

	for (int i = 0; i < 256; i++) {
		if (!p->slow_valid || load_acquire(&s->position) != p->limit)
			return;
		caa_cpu_relax();
	}
}

/*
 * shmq_producer_fd(): a SHMQ_NOWAIT send that finds no room arms the
 * descriptor before it returns -EAGAIN. F3 as sleep_for_space(): our
 * POLL bit (a full fence; membarrier for consumers that release
 * unfenced) before we look at the positions once more; a consumer's
 * position before its load of the bits. Either we see the room, or the
 * consumer sees the bit and rings. The slow checks a sleeping send makes
 * each slice (dead consumers, eviction) run here when due, and a
 * one-shot timer brings the caller back for them. Returns 1 when there
 * is room after all, 0 to report -EAGAIN, or -errno.
 */
static int producer_arm(struct shmq_producer *p, uint64_t need_end,
			int64_t now)
{
	struct shmq_hdr *h = p->q->hdr;
	unsigned int fired = shmqi_pollset_drain(p->ps);
	int64_t again = SHMQ_POLL_TIMER_NS;
	int ret;

	if ((fired & SHMQI_FIRED_TIMER) || now - p->slow_check_ns >= 20000000) {
		p->slow_check_ns = now;
		shmqi_reclaim_dead(p->q, p->lock_fd);
		evict_stalled(p);
	}
	rmw_or(&h->prod_waiting, SHMQ_WAIT_POLL);		/* F3 */
	if (p->asym && shmqi_membarrier() < 0)
		again = 1000000;	/* cannot fence them: look again soon */
	ret = refresh_limit(p, need_end);
	if (ret != 0)
		return ret;
	shmqi_pollset_timer(p->ps, again, true);
	return 0;
}

/* Wait until the ring has room up to NEED_END. Returns 0 or -errno. */
static int wait_space(struct shmq_producer *p, uint64_t need_end,
		      int64_t timeout_ns, int64_t *deadline)
{
	struct shmq_hdr *h = p->q->hdr;
	bool counted = false, slow;
	int64_t spin_until = 0, now;
	int ret;

	if (likely(need_end - p->limit <= p->q->g.capacity))
		return 0;
	timeout_ns = shmqi_timeout(timeout_ns);	/* only FOREVER is unbounded */
	for (;;) {
		ret = refresh_limit(p, need_end);
		if (ret != 0)
			return ret < 0 ? ret : 0;
		/* Consumers can only release what they can see. */
		if (p->pos != p->pub_pos) {
			publish(p, false);	/* not the caller's: no mark */
			continue;
		}
		/* The slow checks make system calls: every 20 ms at most. */
		now = shmqi_now_ns();
		slow = now - p->slow_check_ns >= 20000000;
		if (slow && (p->flags & SHMQ_PRODUCER_FIFO) &&
		    (ret = fifo_check(p)) < 0)
			return ret;
		if (timeout_ns == 0 && p->ps) {
			ret = producer_arm(p, need_end, now);
			if (ret != 0)
				return ret < 0 ? ret : 0;
		}
		if (timeout_ns == 0)	/* the detail names the slowest holder */
			return shmqi_fail_full(p->q, -EAGAIN, p->slow_valid,
					       p->slow_idx);
		if (*deadline == 0)
			*deadline = shmqi_deadline(timeout_ns);
		if (!counted) {
			counted = true;
			store_relaxed(&h->stat_full_waits,
				      load_relaxed(&h->stat_full_waits) + 1);
			spin_until = now + SHMQ_SPIN_NS;
		}
		if (now < spin_until) {
			spin_on_slowest(p);
			if (now >= spin_until - SHMQ_SPIN_NS + SHMQ_SPIN_PURE_NS)
				sched_yield();	/* see SHMQ_SPIN_PURE_NS */
			continue;
		}
		if (slow) {
			p->slow_check_ns = now;
			shmqi_reclaim_dead(p->q, p->lock_fd);
			evict_stalled(p);
		}
		ret = sleep_for_space(p, need_end, *deadline);
		if (ret == -ETIMEDOUT)
			return shmqi_fail_full(p->q, ret, p->slow_valid,
					       p->slow_idx);
		if (ret < 0)
			return ret;
	}
}

#if SHMQI_HAVE_FAST
/*
 * seal() with the header's checksum inline (p->fast: the CPU has
 * SSE4.2). The same bytes as seal(), which tests/test_checksum.c checks
 * against the table-driven CRC.
 */
static inline SHMQI_CRC_TARGET void
seal_hw(struct shmq_producer *p, struct shmq_rec *rec, uint32_t type,
	uint32_t len, uint64_t seq, uint64_t pos)
{
	/* The header's four words (format.h), little-endian, in registers. */
	uint64_t w0 = len | (uint64_t)type << 32;
	uint64_t w2 = p->inc | (uint64_t)shmqi_lap(&p->q->g, pos) << 32;
	uint64_t w3 = (uint64_t)p->ts_ms << 32;
	uint32_t c = shmqi_hdr_crc_words(p->q->g.salt, w0, seq, w2, w3);
	uint64_t *r = (uint64_t *)rec;

	_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "x86");
	if (!(p->q->g.flags & SHMQ_FLAG_HDR_CRC))
		c = shmqi_crc_hw(c, rec + 1, len);
	/* Plain stores: W1 (the publish) orders them for consumers. */
	r[0] = w0;
	r[1] = seq;
	r[2] = w2;
	r[3] = w3 | (uint32_t)~c;
}
#endif

static void seal(struct shmq_producer *p, struct shmq_rec *rec, uint32_t type,
		 uint32_t len, uint64_t seq, uint64_t pos)
{
	uint32_t base = type & SHMQ_REC_TYPE_MASK;
	struct shmq_rec h;
	bool whole = base == SHMQ_REC_END ||
		     (base == SHMQ_REC_DATA && !(p->q->g.flags & SHMQ_FLAG_HDR_CRC));

	shmqi_rec_pack(&h, len, type, seq, p->inc, shmqi_lap(&p->q->g, pos),
		       0, p->ts_ms);
	h.crc = shmqi_rec_crc(p->q->g.salt, &h, rec + 1, whole ? len : 0);
	/* Plain stores: W1 (the publish) orders them for consumers. */
	memcpy(rec, &h, sizeof(h));
}

/*
 * Sync modes: bytes up to END may overwrite records that the header on
 * disk still calls live (from the tail it carried). A power loss could
 * then pair that header with the new pages, and recovery, finding a
 * newer record at the old tail, would cut acknowledged messages. So the
 * tail moves up to the slowest holder first and is synced once, which
 * covers up to a ring of writes.
 */
static int sync_before_overwrite(struct shmq_producer *p, uint64_t end)
{
	uint64_t cap = p->q->g.capacity;
	int ret;

	if (!pos_before(p->disk_tail, end - cap))
		return 0;
	/*
	 * Mode none: only when someone synced records past that tail. The
	 * claim is looked at once per move of the tail, not per record (a
	 * load of write_pos's cache line, which the consumer polls): a
	 * claim we load after our last tail_pos store (W2, store_fenced, so
	 * ordered before this load) covers every write ending at or before
	 * that tail + capacity, which overwrites only records below that
	 * tail. A syncer whose claim store (a CAS, a full fence) comes after
	 * our load writes a header, by its msync or by writeback, that
	 * carries our tail or a later one (same cache line as the claim):
	 * on disk that header calls nothing we overwrite live. A claim that
	 * came before our load, we see, and sync the header first as
	 * before. Writes past that tail + capacity need a new tail (wait_space
	 * keeps end <= limit + capacity <= tail + capacity), so they load
	 * the claim again. docs/durability.md, "Why the producer syncs
	 * before lapping".
	 */
	if (p->sync_mode == SHMQ_SYNC_NONE) {
		if (!pos_before(p->claim_ok_end, end))
			return 0;
		if (!pos_before(p->disk_tail,
				load_acquire(&p->q->hdr->durable_claim))) {
			p->claim_ok_end = p->tail + cap;
			return 0;
		}
	}
	ret = refresh_limit(p, p->pub_pos + cap);
	if (ret < 0)
		return ret;
	if (p->sync_mode != SHMQ_SYNC_NONE)
		return shmqi_sync_producer(p);
	/*
	 * Durable data lies past the disk's tail: if the header cannot
	 * reach the disk, overwriting would lose it after a power loss. The
	 * send fails with the msync's error (recorded, sticky) rather than
	 * overwrite; a later one tries again.
	 */
	ret = shmqi_sync_header(p->q);
	if (ret < 0)
		return ret;
	p->disk_tail = p->tail;
	return 0;
}

/* Make room for a record of SIZE bytes at p->pos, padding at the wrap. */
static int make_room(struct shmq_producer *p, uint64_t size,
		     int64_t timeout_ns)
{
	struct shmq *q = p->q;
	uint64_t room = q->g.capacity - (p->pos & q->g.mask);
	int64_t deadline = 0;
	int ret;

	if (size > room) {
		ret = wait_space(p, p->pos + room, timeout_ns, &deadline);
		if (ret == 0)
			ret = sync_before_overwrite(p, p->pos + room);
		if (ret < 0)
			return ret;
		/* A record never wraps: pad to the end (implicit if tiny). */
		if (room >= SHMQ_REC_HDR)
			seal(p, (struct shmq_rec *)(q->data + (p->pos & q->g.mask)),
			     SHMQ_REC_PAD, (uint32_t)(room - SHMQ_REC_HDR), p->seq,
			     p->pos);
		p->pos += room;
	}
	ret = wait_space(p, p->pos + size, timeout_ns, &deadline);
	if (ret == 0)
		ret = sync_before_overwrite(p, p->pos + size);
	return ret;
}

int shmq_reserve(struct shmq_producer *p, size_t len, void **buf,
		 int64_t timeout_ns)
{
	struct shmq *q = p->q;
	int ret;

	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	if (unlikely(p->reserved))
		return shmqi_fail(-EINVAL, "a reservation is already outstanding");
	if (unlikely(len > q->g.max_message))
		return shmqi_fail(-EMSGSIZE, "message of %zu bytes, the queue's maximum is %u",
				  len, q->g.max_message);
	if (p->flags & SHMQ_PRODUCER_FIFO) {
		ret = fifo_poll(p);
		if (ret < 0)
			return ret;
	}
	if (unlikely(p->owed_n)) {
		ret = flush_owed(p, timeout_ns);
		if (ret < 0)
			return ret;
	}
	ret = make_room(p, shmqi_rec_size(len), timeout_ns);
	if (ret < 0)
		return ret;
	p->reserved = (struct shmq_rec *)(q->data + (p->pos & q->g.mask));
	p->reserved_len = (uint32_t)len;
	*buf = p->reserved + 1;
	return 0;
}

int shmq_commit(struct shmq_producer *p, unsigned int flags)
{
	return shmq_commit_len(p, p->reserved_len, flags);
}

int shmq_commit_len(struct shmq_producer *p, size_t len, unsigned int flags)
{
	uint32_t type;

	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	if (unlikely(!p->reserved))
		return shmqi_fail(-EINVAL, "nothing reserved");
	if (unlikely(len > p->reserved_len))
		return shmqi_fail(-EINVAL, "committing %zu bytes of a %u-byte reservation",
				  len, p->reserved_len);
	if (!p->unpublished)
		p->ts_ms = shmqi_now_ms_coarse();
	KILL_POINT("commit:before-seal");
	type = SHMQ_REC_DATA | p->framing_bits |
	       ((flags & SHMQ_COMMIT_UNTERMINATED) ? SHMQ_REC_F_UNTERMINATED : 0u);
#if SHMQI_HAVE_FAST
	if (likely(p->fast))
		seal_hw(p, p->reserved, type, (uint32_t)len, p->seq, p->pos);
	else
#endif
		seal(p, p->reserved, type, (uint32_t)len, p->seq, p->pos);
	p->reserved = NULL;
	p->seq++;
	p->pos += shmqi_rec_size(len);
	p->unpublished++;
	p->unpub_bytes += len;
	if (flags & SHMQ_COMMIT_DEFER)
		return 0;
	return shmq_publish(p);
}

#if SHMQI_HAVE_FAST
/*
 * The common case of shmq_reserve + memcpy + shmq_commit(DEFER) in one
 * piece, for shmq_send and shmq_send_batch: nothing reserved, no END
 * records owed, sync mode none (p->fast), and room known without looking
 * at anything shared: the record fits before the ring's end (no padding),
 * below limit + capacity (wait_space's test), and overwrites nothing the
 * disk's header may call live (sync_before_overwrite's two tests, with
 * the claim it cached). The same stores in the same order as the slow
 * path, and the same kill points. Returns false, having changed nothing,
 * when the slow path must do it.
 */
static SHMQI_CRC_TARGET bool append_fast(struct shmq_producer *p,
					 const void *buf, size_t len)
{
	struct shmq *q = p->q;
	uint64_t cap = q->g.capacity, size = shmqi_rec_size(len);
	uint64_t off = p->pos & q->g.mask, end = p->pos + size;
	struct shmq_rec *rec;

	if (unlikely(p->reserved || p->owed_n || len > q->g.max_message ||
		     size > cap - off || end - p->limit > cap))
		return false;
	if (pos_before(p->disk_tail, end - cap) &&
	    pos_before(p->claim_ok_end, end))
		return false;
	rec = (struct shmq_rec *)(q->data + off);
	memcpy(rec + 1, buf, len);
	KILL_POINT("send:after-payload");
	if (!p->unpublished)
		p->ts_ms = shmqi_now_ms_coarse();
	KILL_POINT("commit:before-seal");
	seal_hw(p, rec, SHMQ_REC_DATA | p->framing_bits, (uint32_t)len,
		p->seq, p->pos);
	p->seq++;
	p->pos = end;
	p->unpublished++;
	p->unpub_bytes += len;
	return true;
}

/* shmq_send's fast path: 1 sent, 0 the slow path must, or -errno. */
static SHMQI_CRC_TARGET int send_fast(struct shmq_producer *p,
				      const void *buf, size_t len)
{
	if ((p->flags & SHMQ_PRODUCER_FIFO)) {
		int ret = fifo_poll(p);

		if (ret < 0)
			return ret;
	}
	if (!append_fast(p, buf, len))
		return 0;
	/* Sync mode none: nothing to sync. A caller's publish: the mark rides. */
	publish_now(p, true);
	return 1;
}
#endif

int shmq_send(struct shmq_producer *p, const void *buf, size_t len,
	      int64_t timeout_ns)
{
	void *dst;
	int ret;

#if SHMQI_HAVE_FAST
	if (likely(p->fast) && !shmqi_inherited(p)) {
		ret = send_fast(p, buf, len);
		if (ret != 0)
			return ret < 0 ? ret : 0;
	}
#endif
	ret = shmq_reserve(p, len, &dst, timeout_ns);
	if (ret < 0)
		return ret;
	memcpy(dst, buf, len);
	KILL_POINT("send:after-payload");
	return shmq_commit(p, 0);
}

ssize_t shmq_send_batch(struct shmq_producer *p, const struct iovec *msgs,
			size_t n, int64_t timeout_ns)
{
	size_t i;
	void *dst;
	int ret = 0, pret;

	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	for (i = 0; i < n; i++) {
#if SHMQI_HAVE_FAST
		if (likely(p->fast)) {
			if ((p->flags & SHMQ_PRODUCER_FIFO) &&
			    (ret = fifo_poll(p)) < 0)
				break;
			if (append_fast(p, msgs[i].iov_base, msgs[i].iov_len))
				continue;
		}
#endif
		ret = shmq_reserve(p, msgs[i].iov_len, &dst, timeout_ns);
		if (ret < 0)
			break;
		memcpy(dst, msgs[i].iov_base, msgs[i].iov_len);
		shmq_commit(p, SHMQ_COMMIT_DEFER);
	}
	/*
	 * Sync modes: published, but a failed sync must not look like
	 * success: its error (the msync's errno, as shmq_send returns it).
	 */
	pret = shmq_publish(p);
	if (pret < 0)
		return pret;
	return i ? (ssize_t)i : ret;
}

/*
 * Append the END record of incarnation INC's session, waiting for room
 * as a send does for TIMEOUT_NS. Published at once; end_inc is stored
 * after the publish, so a new producer that reads it also sees the
 * record in the ring.
 */
static int write_end(struct shmq_producer *p, uint32_t kind, uint32_t inc,
		     int64_t timeout_ns)
{
	struct shmq *q = p->q;
	struct shmq_end e = { .kind = kind, .inc = inc };
	struct shmq_rec *rec;
	int ret;

	ret = make_room(p, shmqi_rec_size(sizeof(e)), timeout_ns);
	if (ret < 0)
		return ret;
	rec = (struct shmq_rec *)(q->data + (p->pos & q->g.mask));
	memcpy(rec + 1, &e, sizeof(e));
	if (!p->unpublished)
		p->ts_ms = shmqi_now_ms_coarse();
	seal(p, rec, SHMQ_REC_END, sizeof(e), p->seq, p->pos);
	p->pos += shmqi_rec_size(sizeof(e));
	ret = publish(p, inc == p->inc);	/* an owed END: no mark */
	store_release(&q->hdr->end_inc, inc);
	return ret;
}

/*
 * The END records still owed for sessions before ours (their producers
 * died, in their open too, or found no room), in order, before any
 * record of ours: at open without waiting, else before our first
 * message, waiting for room as that message would.
 */
static int flush_owed(struct shmq_producer *p, int64_t timeout_ns)
{
	while (p->owed_n) {
		uint32_t inc = p->owed_next;
		uint32_t kind = p->owed_n == 1 ? p->owed_last_kind : SHMQ_END_DIED;
		int ret = write_end(p, kind, inc, timeout_ns);

		if (ret < 0 && load_acquire(&p->q->hdr->end_inc) != inc)
			return ret;	/* not written: still owed */
		p->owed_next++;
		p->owed_n--;
		if (ret < 0)
			return ret;	/* written; its sync failed */
	}
	return 0;
}

/* The end of our session: its END record, then the state (S1). */
static int end_session(struct shmq_producer *p, uint32_t kind, uint32_t state)
{
	struct shmq_hdr *h = p->q->hdr;
	int ret, eret;

	p->reserved = NULL;	/* an uncommitted reservation is dropped */
	ret = shmq_publish(p);
	/*
	 * Never waits: a consumer that is behind learns of the end from
	 * prod_state, and the next producer writes what is still owed (the
	 * ends before ours first, so they stay in order).
	 */
	eret = flush_owed(p, SHMQ_NOWAIT);
	if (!p->owed_n)
		eret = write_end(p, kind, p->inc, SHMQ_NOWAIT);
	/*
	 * FIFO mode, every reader gone (EPIPE): as a FIFO discards what its
	 * last reader left, the rest of this session is dropped for later
	 * readers: the floor (where a consumer with no holder ahead starts)
	 * moves past it. A named consumer that was away keeps its position.
	 */
	if (p->epipe && pos_before(load_acquire(&h->floor_pos), p->pub_pos))
		store_release(&h->floor_pos, p->pub_pos);
	/* batch: what is still pending becomes durable before we go. */
	if (ret == 0 && p->sync_pending)
		ret = shmqi_sync_producer(p);
	/* Published an END but could not sync it: the sync's error. */
	if (ret == 0 && eret < 0 && eret != -EAGAIN && eret != -EPIPE)
		ret = eret;
	/* S1: consumers that read the state (acquire) see the final write_pos. */
	store_release(&h->prod_state, state);
	fence_full();
	shmqi_wake_consumers(p->q, true);
	shmqi_unlock(p->lock_fd, SHMQ_LOCK_SESSION0 + (p->inc & 1));
	shmqi_unlock(p->lock_fd, SHMQ_LOCK_PRODUCER);
	shmqi_role_close(&p->role);
	/* Read-only again: this handle's consumers never write the ring. */
	(void)mprotect(p->q->data, p->q->g.capacity, PROT_READ);
	p->q->nhandles--;
	shmqi_pollset_free(p->ps);
	free(p);
	return ret;
}

/*
 * A handle inherited across fork() is the parent's: the child frees it
 * and leaves the session, the ring's protection and the file alone.
 */
static int drop_inherited(struct shmq_producer *p)
{
	p->q->nhandles--;
	shmqi_pollset_free(p->ps);	/* this process's copies only */
	free(p);
	return shmqi_fail_inherited();
}

int shmq_producer_close(struct shmq_producer *p)
{
	if (!p)
		return 0;
	if (shmqi_inherited(p))
		return drop_inherited(p);
	return end_session(p, SHMQ_END_CLOSED, SHMQ_PSTATE_CLOSED);
}

int shmq_producer_abort(struct shmq_producer *p)
{
	if (!p)
		return 0;
	if (shmqi_inherited(p))
		return drop_inherited(p);
	return end_session(p, SHMQ_END_ABORTED, SHMQ_PSTATE_ABORTED);
}

/*
 * End the session as HOW says. DIED: an END record of kind died, and the
 * state left OPEN with the session's lock given up, which is how
 * consumers (and the next producer's open) tell a dead producer; so the
 * queue looks exactly as if this producer had been killed, with its END
 * record already written.
 */
int shmq_producer_end(struct shmq_producer *p, int how)
{
	struct shmq *q;
	int ret;

	if (!p)
		return 0;
	if (how != SHMQ_PRODUCER_CLOSED && how != SHMQ_PRODUCER_DIED &&
	    how != SHMQ_PRODUCER_ABORTED)
		return shmqi_fail(-EINVAL, "shmq_producer_end: %d is not closed, died or aborted", how);
	if (shmqi_inherited(p))
		return drop_inherited(p);
	if (how == SHMQ_PRODUCER_CLOSED)
		return end_session(p, SHMQ_END_CLOSED, SHMQ_PSTATE_CLOSED);
	if (how == SHMQ_PRODUCER_ABORTED)
		return end_session(p, SHMQ_END_ABORTED, SHMQ_PSTATE_ABORTED);
	q = p->q;
	ret = end_session(p, SHMQ_END_DIED, SHMQ_PSTATE_OPEN);
	/*
	 * end_session() woke sleepers before it gave the session's lock up;
	 * one that found the lock still held sleeps again: wake it now that
	 * the lock is free (a waiter re-probes it after every wake).
	 */
	fence_full();
	rmw_add(&q->hdr->data_futex, 1);
	shmqi_futex_wake(&q->hdr->data_futex);
	return ret;
}

int shmq_producer_mark(struct shmq_producer *p, uint64_t value)
{
	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	p->mark_value = value;
	p->mark_pending = true;
	return 0;
}

/*
 * The entry with the highest position in (initial_pos, END]: the last
 * mark whose publish survived, or -1. A position at initial_pos is an
 * entry never written (a publish ends after it); one past END rode on a
 * publish that a crash before W1, or a recovery's cut, took away. -2:
 * both entries at one position (a hostile header).
 */
static int mark_best(struct shmq *q, uint64_t end)
{
	struct shmq_hdr *h = q->hdr;
	uint64_t first = load_relaxed(&h->initial_pos);
	int best = -1;
	uint64_t bp = 0;

	for (int i = 0; i < 2; i++) {
		uint64_t mp = load_acquire(&h->mark_pos[i]);

		if (!pos_before(first, mp) || pos_before(end, mp))
			continue;
		/*
		 * Each mark lies past the other (store_mark()): two at one
		 * position is a scribbled header, and either value may be
		 * the false one.
		 */
		if (best >= 0 && mp == bp)
			return -2;
		if (best < 0 || pos_before(bp, mp)) {
			best = i;
			bp = mp;
		}
	}
	return best;
}

int shmq_producer_last_mark(struct shmq_producer *p, uint64_t *value,
			    uint64_t *after)
{
	struct shmq *q = p->q;
	struct shmqi_rec_view v;
	uint64_t pos, n = 0;
	int i, ret;

	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	i = mark_best(q, p->open_end);
	if (i == -2)
		return shmqi_fail(-EBADMSG, "both marks at one position: the header is corrupt");
	if (i < 0)
		return shmqi_fail(-ENOENT, "no mark at or below the queue's end");
	pos = load_relaxed(&q->hdr->mark_pos[i]);
	/*
	 * Records between the mark and the end that recovery left: a
	 * publish without a mark, or one whose mark a power loss took while
	 * some of its records survived. Messages count, and END records
	 * their own session wrote (a producer's close, abort or end); not
	 * the ENDs a producer's open writes for sessions before it, nor PAD.
	 */
	while (pos != p->open_end) {
		struct shmq_end e;

		ret = shmqi_rec_view(q, pos, p->open_end, &v);
		if (ret < 0)
			return shmqi_fail(ret, "mark at %llu: the records after it cannot be read (%s)",
					  (unsigned long long)pos, shmq_strerror(ret));
		if (v.type == SHMQ_REC_DATA) {
			n++;
		} else if (v.type == SHMQ_REC_END && v.len == sizeof(e)) {
			memcpy(&e, v.hdr + 1, sizeof(e));
			if (e.inc == v.inc)
				n++;
		}
		pos = v.next;
	}
	if (value)
		*value = load_relaxed(&q->hdr->mark_val[i]);
	if (after)
		*after = n;
	return 0;
}

/*
 * At open, after recovery: the sessions since the last END record in the
 * ring ended without theirs (their producer died, in its open too, or
 * had no room, or a recovery cut it): they are owed, in order, the last
 * as owed_last_kind says, the others died. At most 64: a longer
 * run of producers that died before writing anything keeps the latest.
 */
static void end_previous(struct shmq_producer *p, uint32_t prev_inc)
{
	uint32_t end = load_acquire(&p->q->hdr->end_inc), n;

	if (!prev_inc)
		return;
	if (p->cut_bytes && !inc_before(end, prev_inc))
		end = prev_inc - 1;	/* its END may be what was cut */
	n = prev_inc - end;
	if (!inc_before(end, prev_inc) || n == 0)
		return;
	if (n > 64)
		n = 64;
	p->owed_next = prev_inc - n + 1;
	p->owed_n = n;		/* the last one's kind: owed_last_kind (open) */
	(void)flush_owed(p, SHMQ_NOWAIT);
}

/*
 * shmq_producer_fd(): made on first call; starts readable (the caller
 * tries a send, which arms it when it finds no room).
 */
int shmq_producer_fd(struct shmq_producer *p)
{
	int ret;

	shmqi_clear_error();
	if (shmqi_inherited(p))
		return shmqi_fail_inherited();
	if (!p->ps) {
		ret = shmqi_pollset_new(p->q, &p->ps);
		if (ret < 0)
			return ret;
		shmqi_pollset_wake(p->ps);
	}
	return p->ps->epfd;
}
