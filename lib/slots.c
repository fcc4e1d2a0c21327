/* SPDX-License-Identifier: MIT */
/*
 * The consumer slot table: which slots hold the producer, claiming, freeing
 * and reclaiming slots, names, and a new consumer's safe start position.
 * Changes happen under the attach lock (an OFD lock on byte 0).
 * Orderings are labelled; docs/concurrency.md tables the pairs.
 */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"


bool shmqi_slot_holds(uint32_t state, uint32_t kind)
{
	return state == SHMQ_SLOT_ACTIVE &&
	       (kind == SHMQ_KIND_ANON || kind == SHMQ_KIND_NAMED ||
		kind == SHMQ_KIND_GROUP);
}

/* The slowest holder's position in *MIN; returns how many hold. */
int shmqi_holders_min(struct shmq *q, uint64_t *min)
{
	uint32_t idx;

	return shmqi_holders_min_idx(q, min, &idx);
}

/* As shmqi_holders_min(), and *IDX is the slowest holder's slot. */
int shmqi_holders_min_idx(struct shmq *q, uint64_t *min, uint32_t *idx)
{
	int n = 0;

	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];
		uint32_t st = load_acquire(&s->state);
		uint64_t pos;

		if (!shmqi_slot_holds(st, load_relaxed(&s->kind)))
			continue;
		pos = load_acquire(&s->position);	/* A2 pairs with R1 */
		if (!n || pos_before(pos, *min)) {
			*min = pos;
			*idx = i;
		}
		n++;
	}
	return n;
}

/*
 * After a release (F3): wake a producer that waits for room. prod_waiting
 * is a set of SHMQ_WAIT_* bits, cleared by one xchg: the futex for a
 * sleeping send, the doorbell for a producer polling its descriptor.
 */
void shmqi_wake_producer(struct shmq *q)
{
	struct shmq_hdr *h = q->hdr;
	uint32_t old;

	if (!load_relaxed(&h->prod_waiting))
		return;
	old = rmw_xchg(&h->prod_waiting, 0);
	if (old & SHMQ_WAIT_FUTEX) {
		rmw_add(&h->space_futex, 1);
		shmqi_futex_wake(&h->space_futex);
	}
	if (old & SHMQ_WAIT_POLL)
		shmqi_ring(q);
}

/*
 * Free slot I (attach lock held): what a holder had read counts as
 * released by a consumer that left, so the floor rises to its position.
 */
void shmqi_free_slot_locked(struct shmq *q, uint32_t i)
{
	struct shmq_hdr *h = q->hdr;
	uint32_t kind = load_relaxed(&q->slots[i].kind);
	uint64_t pos = load_acquire(&q->slots[i].position);
	uint64_t floor = load_relaxed(&h->floor_pos);

	if (shmqi_slot_holds(SHMQ_SLOT_ACTIVE, kind) && pos_before(floor, pos))
		store_release(&h->floor_pos, pos);
	store_release(&q->slots[i].state, SHMQ_SLOT_FREE);
	rmw_add(&h->slot_gen, 1);
	shmqi_wake_producer(q);
}

/*
 * Free the slots of anonymous consumers that died: their kernel lock is
 * gone, so they no longer hold the producer (F5, F17: the PID is never
 * looked at). FD is the caller's own open file description. Best effort:
 * if someone is attaching right now, the next call does it.
 *
 * The producer calls this before it sleeps for space, so it is also where
 * it advances groups whose frontier lags (D1, shmqi_groups_advance): a
 * member that died between its release and its advance must not hold the
 * producer for ever. That needs no lock.
 */
int shmqi_reclaim_dead(struct shmq *q, int fd)
{
	int n = 0;

	shmqi_groups_advance(q);			/* D1 */
	if (shmqi_lock_try(fd, SHMQ_LOCK_ATTACH) < 0)
		return 0;
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		uint32_t kind = load_relaxed(&s->kind);

		if (load_acquire(&s->state) == SHMQ_SLOT_FREE ||
		    (kind != SHMQ_KIND_ANON && kind != SHMQ_KIND_OBSERVER))
			continue;
		if (shmqi_lock_try(fd, SHMQ_LOCK_SLOT0 + i) == 0) {
			shmqi_free_slot_locked(q, i);
			shmqi_unlock(fd, SHMQ_LOCK_SLOT0 + i);
			n++;
		}
	}
	shmqi_unlock(fd, SHMQ_LOCK_ATTACH);
	return n;
}

bool shmqi_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > SHMQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] < 0x21 || name[i] > 0x7e)
			return false;
	return true;
}

static bool slot_has_name(struct shmq_slot *s, const char *name)
{
	char buf[sizeof(s->name) + 1];

	memcpy(buf, s->name, sizeof(s->name));
	buf[sizeof(s->name)] = '\0';
	return strcmp(buf, name) == 0;
}

/* A slot of KIND called NAME, active or evicted, or -ENOENT. */
int shmqi_find_named(struct shmq *q, const char *name, uint32_t kind)
{
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		if (load_acquire(&s->state) != SHMQ_SLOT_FREE &&
		    load_relaxed(&s->kind) == kind && slot_has_name(s, name))
			return (int)i;
	}
	return -ENOENT;
}

/* Claim a free slot or a dead anonymous one, holding its lock on FD. */
int shmqi_claim_slot(struct shmq *q, int fd)
{
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];
		uint32_t st = load_acquire(&s->state);

		uint32_t kind = load_relaxed(&s->kind);

		/* Named ones, groups and members keep their slot when dead. */
		if (st != SHMQ_SLOT_FREE && kind != SHMQ_KIND_ANON &&
		    kind != SHMQ_KIND_OBSERVER)
			continue;
		if (shmqi_lock_try(fd, SHMQ_LOCK_SLOT0 + i) < 0)
			continue;	/* alive */
		if (st != SHMQ_SLOT_FREE)
			shmqi_free_slot_locked(q, i);
		return (int)i;
	}
	return shmqi_fail(-ENOSPC, "all %u consumer slots are in use",
			  q->g.nslots);
}

/* The first position of a new consumer, before the F1 handshake. */
uint64_t shmqi_start_position(struct shmq *q, uint32_t start)
{
	struct shmq_hdr *h = q->hdr;
	uint64_t w = load_acquire(&h->write_pos);
	uint64_t t = load_acquire(&h->tail_pos);
	uint64_t s;

	if (start == SHMQ_START_LATEST)
		return w;
	if (shmqi_holders_min(q, &s) == 0) {
		s = load_acquire(&h->floor_pos);
		if (pos_before(s, t))
			s = t;
	}
	if (pos_before(s, t))
		s = t;	/* the F1 loop would move it there anyway */
	if (pos_before(w, s))
		s = w;
	return s;
}

/*
 * Publish S as our position and make sure the producer cannot have
 * reclaimed it. F1 pairs with F1 in the producer's refresh_limit(): we
 * store the position with a full fence, then read tail_pos; the producer
 * stores tail_pos with a full fence, then scans positions. If we read an
 * old tail, the producer's scan sees us and stays behind S; if we read
 * the new tail, we move up to it and never read what lies below.
 */
uint64_t shmqi_publish_start(struct shmq *q, struct shmq_slot *s, uint64_t pos)
{
	uint64_t t;

	store_relaxed(&s->position, pos);
	/* Identity and position before ACTIVE: scanners acquire state. */
	store_release(&s->state, SHMQ_SLOT_ACTIVE);
	for (;;) {
		store_fenced(&s->position, pos);	/* F1 */
		t = load_acquire(&q->hdr->tail_pos);
		if (!pos_before(pos, t))
			return pos;
		pos = t;
		/* It may have seen us behind and gone to sleep: tell it. */
		shmqi_wake_producer(q);
	}
}

void shmqi_init_slot(struct shmq_slot *s, uint32_t kind, const char *name)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	store_relaxed(&s->kind, kind);
	memset(s->name, 0, sizeof(s->name));
	if (name)
		memcpy(s->name, name, strlen(name));
	store_relaxed(&s->attach_ns, (uint64_t)ts.tv_sec * 1000000000u +
		      (uint64_t)ts.tv_nsec);
	store_relaxed(&s->bytes, 0);
	store_relaxed(&s->ended_inc, 0);
	store_relaxed(&s->claim, 0);
	store_relaxed(&s->group, 0);
	store_relaxed(&s->generation, load_relaxed(&s->generation) + 1);
}

/* A named consumer's stored position must lie inside the live ring. */
int shmqi_check_resume(struct shmq *q, uint64_t pos)
{
	uint64_t w = load_acquire(&q->hdr->write_pos);
	uint64_t t = load_acquire(&q->hdr->tail_pos);

	if (w - pos > w - t || (pos & (SHMQ_REC_ALIGN - 1)))
		return shmqi_fail(-EBADMSG, "consumer position %llu outside the ring [%llu, %llu]",
				  (unsigned long long)pos, (unsigned long long)t,
				  (unsigned long long)w);
	return 0;
}

/* Attach lock held on FD: drop group GIDX and its dead members. */
static int remove_group(struct shmq *q, int fd, uint32_t gidx, const char *name)
{
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		if (load_acquire(&s->state) == SHMQ_SLOT_FREE ||
		    load_relaxed(&s->kind) != SHMQ_KIND_MEMBER ||
		    load_relaxed(&s->group) != gidx)
			continue;
		if (shmqi_lock_try(fd, SHMQ_LOCK_SLOT0 + i) < 0)
			return shmqi_fail(-EBUSY, "group %s has a live member (pid %u)",
					  name, load_relaxed(&s->pid));
	}
	/* Every member is dead and locked by us: free them, then the group. */
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		if (load_acquire(&s->state) != SHMQ_SLOT_FREE &&
		    load_relaxed(&s->kind) == SHMQ_KIND_MEMBER &&
		    load_relaxed(&s->group) == gidx)
			shmqi_free_slot_locked(q, i);
	}
	shmqi_free_slot_locked(q, gidx);
	return 0;
}

int shmq_consumer_remove(struct shmq *q, const char *name)
{
	struct shmqi_role role;
	int fd, idx, ret = 0;

	shmqi_clear_error();
	if (!name || !shmqi_name_valid(name))
		return shmqi_fail(-EINVAL, "bad consumer name");
	if (q->rdonly)
		return shmqi_fail(-EROFS, "queue opened read-only");
	/* A fork() in another thread meanwhile: the child closes it. */
	ret = shmqi_role_open(q, &role, &fd);
	if (ret < 0)
		return ret;
	ret = shmqi_lock_wait(fd, SHMQ_LOCK_ATTACH, SHMQ_ATTACH_LOCK_NS);
	if (ret < 0)
		goto out;
	idx = shmqi_find_named(q, name, SHMQ_KIND_NAMED);
	if (idx >= 0) {
		if (shmqi_lock_try(fd, SHMQ_LOCK_SLOT0 + (uint32_t)idx) < 0)
			ret = shmqi_fail(-EBUSY, "consumer %s is attached (pid %u)",
					 name, load_relaxed(&q->slots[idx].pid));
		else
			shmqi_free_slot_locked(q, (uint32_t)idx);
	} else if ((idx = shmqi_find_named(q, name, SHMQ_KIND_GROUP)) >= 0) {
		ret = remove_group(q, fd, (uint32_t)idx, name);
	} else {
		ret = shmqi_fail(-ENOENT, "no consumer or group named %s", name);
	}
	shmqi_unlock(fd, SHMQ_LOCK_ATTACH);
out:
	shmqi_role_close(&role);	/* drops the slot lock too */
	return ret;
}

