/* SPDX-License-Identifier: MIT */
/*
 * The stat snapshot: reads the header and the slot table and probes the
 * role locks with F_OFD_GETLK, which never takes a lock. It writes nothing
 * and so never disturbs a producer or consumer.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/*
 * The first data record at POS (before END): its sequence in *SEQ and its
 * send time (ns, CLOCK_REALTIME) returned, or 0 when there is none.
 */
static uint64_t rec_time(struct shmq *q, uint64_t pos, uint64_t end,
			 uint64_t *seq)
{
	struct shmqi_rec_view v;
	struct timespec ts;
	uint64_t now_ms;

	for (int i = 0; i < 2 && pos != end; i++) {
		if (shmqi_rec_view(q, pos, end, &v) < 0)
			return 0;
		if (v.type == SHMQ_REC_DATA) {
			clock_gettime(CLOCK_REALTIME, &ts);
			now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
			if (seq)
				*seq = v.seq;
			/* ts_lo is the low 32 bits of the ms clock: wraps in 49 days. */
			return (now_ms - (uint32_t)((uint32_t)now_ms - v.ts_lo)) * 1000000;
		}
		pos = v.next;
	}
	return 0;
}

static void stat_slot(struct shmq *q, uint32_t i, struct shmq_consumer_stat *cs,
		      uint64_t w, uint64_t next_seq)
{
	struct shmq_slot *s = &q->slots[i];
	uint32_t kind = load_relaxed(&s->kind);

	cs->slot = i;
	cs->kind = kind == SHMQ_KIND_GROUP ? SHMQ_CONSUMER_GROUP :
		   kind == SHMQ_KIND_MEMBER ? SHMQ_CONSUMER_MEMBER :
		   kind == SHMQ_KIND_OBSERVER ? SHMQ_CONSUMER_OBSERVER :
		   SHMQ_CONSUMER_BROADCAST;
	memcpy(cs->name, s->name, sizeof(s->name));
	cs->name[SHMQ_NAME_MAX] = '\0';
	if (kind == SHMQ_KIND_ANON || kind == SHMQ_KIND_OBSERVER)
		cs->name[0] = '\0';
	cs->pid = load_relaxed(&s->pid);
	cs->alive = shmqi_lock_held(q->fd, SHMQ_LOCK_SLOT0 + i) == 1;
	cs->evicted = load_relaxed(&s->state) == SHMQ_SLOT_EVICTED;
	if (kind == SHMQ_KIND_MEMBER) {
		cs->group_slot = load_relaxed(&s->group);
		cs->claimed = (load_relaxed(&s->claim) & SHMQ_CLAIM_HELD) != 0;
	}
	cs->position = load_acquire(&s->position);
	cs->next_seq = load_relaxed(&s->next_seq);
	cs->attach_ns = load_relaxed(&s->attach_ns);
	cs->lag_bytes = w - cs->position;
	if (cs->lag_bytes > q->g.capacity)
		cs->lag_bytes = 0;	/* corrupt or racing: do not invent lag */
	cs->lag_messages = next_seq - cs->next_seq;
	if (cs->lag_bytes && kind != SHMQ_KIND_MEMBER)
		cs->next_ns = rec_time(q, cs->position, w, NULL);
	if (cs->lag_messages > q->g.capacity / SHMQ_REC_HDR)
		cs->lag_messages = 0;
}


/* A group slot has no lock of its own: it is alive when a member is. */
static void group_liveness(struct shmq_stat *st)
{
	for (uint32_t i = 0; i < st->nconsumers; i++) {
		struct shmq_consumer_stat *g = &st->consumers[i];

		if (g->kind != SHMQ_CONSUMER_GROUP)
			continue;
		for (uint32_t j = 0; j < st->nconsumers; j++)
			if (st->consumers[j].kind == SHMQ_CONSUMER_MEMBER &&
			    st->consumers[j].group_slot == g->slot &&
			    st->consumers[j].alive)
				g->alive = 1;
	}
}

int shmq_stat_get(struct shmq *q, struct shmq_stat **out)
{
	struct shmq_hdr *h = q->hdr;
	struct shmq_stat *st;
	uint64_t min = 0;
	uint32_t n = 0;
	int holders = 0;

	shmqi_clear_error();
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->consumers = calloc(q->g.nslots, sizeof(*st->consumers));
	if (!st->consumers) {
		free(st);
		return -ENOMEM;
	}
	st->capacity = q->g.capacity;
	st->max_message = q->g.max_message;
	st->slots = q->g.nslots;
	st->when_full = (q->g.flags & SHMQ_FLAG_OVERWRITE) ?
			SHMQ_WHEN_FULL_OVERWRITE : SHMQ_WHEN_FULL_BLOCK;
	st->version = SHMQ_FORMAT_VERSION;
	st->evict_after_ms = load_relaxed(&h->evict_ms);
	st->checksum = (q->g.flags & SHMQ_FLAG_HDR_CRC) ? SHMQ_CHECKSUM_HEADER :
		       SHMQ_CHECKSUM_FULL;
	st->created_ns = load_relaxed(&h->created_ns);
	st->file_size = q->g.file_size;
	st->producer_state = load_acquire(&h->prod_state);
	if (st->producer_state > SHMQ_PSTATE_CLOSED)
		st->producer_state = SHMQ_PRODUCER_NONE;
	st->producer_pid = load_relaxed(&h->prod_pid);
	if (st->producer_state == SHMQ_PSTATE_OPEN &&
	    shmqi_lock_held(q->fd, SHMQ_LOCK_PRODUCER) == 0)
		st->producer_state = SHMQ_PRODUCER_DIED;
	st->write_pos = load_acquire(&h->write_pos);
	st->tail_pos = load_acquire(&h->tail_pos);
	st->floor_pos = load_relaxed(&h->floor_pos);
	st->durable_pos = load_relaxed(&h->durable_pos);
	st->next_seq = load_relaxed(&h->next_seq);
	st->tail_seq = load_relaxed(&h->tail_seq);
	st->messages = load_relaxed(&h->stat_msgs);
	st->bytes = load_relaxed(&h->stat_bytes);
	st->full_waits = load_relaxed(&h->stat_full_waits);
	st->incarnation = load_relaxed(&h->incarnation);
	st->cut_bytes = load_relaxed(&h->cut_bytes);
	st->cut_messages = load_relaxed(&h->cut_msgs);
	st->cut_durable = (load_relaxed(&h->cut_flags) & SHMQ_CUT_DURABLE) != 0;
	st->cut_time = load_relaxed(&h->cut_time);
	/* The oldest record's sequence and age, if the tail is readable. */
	st->tail_ns = rec_time(q, st->tail_pos, st->write_pos, &st->tail_seq);

	holders = shmqi_holders_min(q, &min);
	for (uint32_t i = 0; i < q->g.nslots; i++) {
		struct shmq_slot *s = &q->slots[i];

		if (load_acquire(&s->state) == SHMQ_SLOT_FREE)
			continue;
		stat_slot(q, i, &st->consumers[n], st->write_pos, st->next_seq);
		st->consumers[n].holding = holders &&
			shmqi_slot_holds(SHMQ_SLOT_ACTIVE, load_relaxed(&s->kind)) &&
			st->consumers[n].position == min &&
			st->write_pos != min;
		n++;
	}
	st->nconsumers = n;
	group_liveness(st);
	if (!holders)
		min = (q->g.flags & SHMQ_FLAG_OVERWRITE) ? st->tail_pos :
		      st->floor_pos;
	st->fill_bytes = st->write_pos - min;
	if (st->fill_bytes > q->g.capacity)
		st->fill_bytes = st->write_pos - st->tail_pos;
	if (st->fill_bytes > q->g.capacity)
		st->fill_bytes = 0;
	*out = st;
	return 0;
}

void shmq_stat_free(struct shmq_stat *st)
{
	if (!st)
		return;
	free(st->consumers);
	free(st);
}
