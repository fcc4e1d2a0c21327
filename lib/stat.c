/* SPDX-License-Identifier: MIT */
/*
 * The stat snapshot: reads the header and the slot table and probes the
 * role locks with F_OFD_GETLK, which never takes a lock. It writes nothing
 * and so never disturbs a producer or consumer. Also shmq_info(), and the
 * details of errors that describe the slot table or the geometry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	if (st->producer_state == SHMQ_PSTATE_ABORTED)
		st->producer_state = SHMQ_PRODUCER_ABORTED;
	else if (st->producer_state > SHMQ_PSTATE_CLOSED)
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

/*
 * shmq_info: the handle's validated geometry (its private copy) and a few
 * header words, into the caller's struct; no allocation, no system call
 * but the lock-free loads. SIZE is the caller's sizeof(struct shmq_info):
 * an older, shorter struct gets its prefix, a newer, longer one zeros
 * after ours.
 */
#define SHMQ_INFO_SIZE_0	72	/* the first version's size: never less */
_Static_assert(sizeof(struct shmq_info) >= SHMQ_INFO_SIZE_0, "shmq_info");

int shmq_info(struct shmq *q, struct shmq_info *info, size_t size)
{
	struct shmq_info i = { 0 };

	shmqi_clear_error();
	if (!info || size < SHMQ_INFO_SIZE_0)
		return shmqi_fail(-EINVAL, "shmq_info: %zu bytes, at least %zu needed",
				  size, (size_t)SHMQ_INFO_SIZE_0);
	i.size = (uint32_t)(size < sizeof(i) ? size : sizeof(i));
	i.version = SHMQ_FORMAT_VERSION;
	i.capacity = q->g.capacity;
	i.file_size = q->g.file_size;
	i.max_message = q->g.max_message;
	i.slots = q->g.nslots;
	i.when_full = (q->g.flags & SHMQ_FLAG_OVERWRITE) ?
		      SHMQ_WHEN_FULL_OVERWRITE : SHMQ_WHEN_FULL_BLOCK;
	i.checksum = (q->g.flags & SHMQ_FLAG_HDR_CRC) ? SHMQ_CHECKSUM_HEADER :
		     SHMQ_CHECKSUM_FULL;
	i.evict_after_ms = load_relaxed(&q->hdr->evict_ms);
	i.flags = q->info_flags | (q->rdonly ? SHMQ_INFO_RDONLY : 0u);
	i.sync_error = shmq_sync_error(q);
	/* Display values: a racing producer or sync may move them at once. */
	i.write_pos = load_acquire(&q->hdr->write_pos);
	i.durable_pos = load_acquire(&q->hdr->durable_pos);
	i.salt = q->g.salt;
	i.created_ns = load_relaxed(&q->hdr->created_ns);
	if (size > sizeof(i)) {
		memset((char *)info + sizeof(i), 0, size - sizeof(i));
		size = sizeof(i);
	}
	memcpy(info, &i, size);
	return 0;
}

/* A name from the file, for a message: printable ASCII only. */
static void clean_name(const char raw[56], char out[57])
{
	int i;

	for (i = 0; i < 56 && raw[i]; i++)
		out[i] = raw[i] > ' ' && raw[i] < 0x7f ? raw[i] : '?';
	out[i] = '\0';
}

static const char *liveness(struct shmq *q, uint32_t i)
{
	int r = shmqi_lock_held(q->fd, SHMQ_LOCK_SLOT0 + i);

	return r == 1 ? "alive" : r == 0 ? "dead" : "liveness unknown";
}

/* The holder is group slot G: which member holds its oldest message. */
static int fail_group(struct shmq *q, int err, const char *what, uint32_t g,
		      const char *name)
{
	uint64_t pos = load_acquire(&q->slots[g].position);
	uint32_t members = 0, alive = 0, front = UINT32_MAX;

	for (uint32_t j = 0; j < q->g.nslots; j++) {
		struct shmq_slot *m = &q->slots[j];
		uint64_t cl;

		if (j == g || load_acquire(&m->state) != SHMQ_SLOT_ACTIVE ||
		    load_relaxed(&m->kind) != SHMQ_KIND_MEMBER ||
		    load_relaxed(&m->group) != g)
			continue;
		members++;
		alive += shmqi_lock_held(q->fd, SHMQ_LOCK_SLOT0 + j) == 1;
		cl = load_acquire(&m->claim);
		if ((cl & SHMQ_CLAIM_HELD) && (cl & SHMQ_CLAIM_POS_MASK) == pos)
			front = j;
	}
	if (front != UINT32_MAX)
		return shmqi_fail(err, "%s: held by group \"%s\" (slot %u, %u of %u members alive): its oldest message is claimed by the member in slot %u (pid %u, %s)",
				  what, name, g, alive, members, front,
				  load_relaxed(&q->slots[front].pid),
				  liveness(q, front));
	return shmqi_fail(err, "%s: held by group \"%s\" (slot %u, %u of %u members alive)",
			  what, name, g, alive, members);
}

/*
 * The detail of a send that found the ring full (-EAGAIN) or timed out
 * waiting for room: who holds the producer back, with its liveness (a
 * lock probe: this is the failure path). IDX is the slowest holder's slot
 * at the last scan, when HAVE_HOLDER. Returns ERR.
 */
int shmqi_fail_full(struct shmq *q, int err, bool have_holder, uint32_t idx)
{
	const char *what = err == -EAGAIN ? "ring full" :
			   "timed out waiting for room in the ring";
	struct shmq_slot *s;
	char name[57];
	uint32_t kind, pid;

	if (!have_holder || idx >= q->g.nslots)
		return shmqi_fail(err, "%s: no consumer holds it; the unread messages are kept for the next consumer (when-full block)",
				  what);
	s = &q->slots[idx];
	kind = load_relaxed(&s->kind);
	pid = load_relaxed(&s->pid);
	clean_name(s->name, name);
	switch (kind) {
	case SHMQ_KIND_ANON:
		return shmqi_fail(err, "%s: held by an anonymous broadcast consumer (slot %u, pid %u, %s)",
				  what, idx, pid, liveness(q, idx));
	case SHMQ_KIND_NAMED:
		return shmqi_fail(err, "%s: held by named consumer \"%s\" (slot %u, pid %u, %s; shmq_consumer_remove() drops a consumer gone for good)",
				  what, name, idx, pid, liveness(q, idx));
	case SHMQ_KIND_GROUP:
		return fail_group(q, err, what, idx, name);
	default:
		return shmqi_fail(err, "%s: held by the consumer in slot %u (kind %u, pid %u)",
				  what, idx, kind, pid);
	}
}

/*
 * shmq_open(SHMQ_OPEN_CREATE) attached to a queue that already existed:
 * say where it differs from what the caller asked (ASKED as given, WANT
 * with the defaults filled in as shmq_create() would). Zero capacity,
 * max_message, slots and mode mean "the default", so they are compared
 * only when set; when_full and checksum always are. The call succeeds:
 * the queue is used as it is.
 */
void shmqi_report_cfg(struct shmq *q, const struct shmq_config *asked,
		      const struct shmq_config *want)
{
	bool overwrite = q->g.flags & SHMQ_FLAG_OVERWRITE;
	bool hdr_crc = q->g.flags & SHMQ_FLAG_HDR_CRC;
	char buf[200];
	size_t n = 0;
	struct stat st;

#define DIFF(cond, ...) do {						\
		if ((cond) && n < sizeof(buf))				\
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,	\
					      __VA_ARGS__);		\
	} while (0)
	DIFF(asked->capacity && want->capacity != q->g.capacity,
	     "; capacity %llu (asked %llu)",
	     (unsigned long long)q->g.capacity,
	     (unsigned long long)want->capacity);
	DIFF(asked->max_message && want->max_message != q->g.max_message,
	     "; max message %u (asked %u)", q->g.max_message,
	     want->max_message);
	DIFF(asked->slots && want->slots != q->g.nslots,
	     "; %u slots (asked %u)", q->g.nslots, want->slots);
	DIFF((want->when_full == SHMQ_WHEN_FULL_OVERWRITE) != overwrite,
	     "; when full: %s (asked %s)", overwrite ? "overwrite" : "block",
	     overwrite ? "block" : "overwrite");
	DIFF(asked->checksum != SHMQ_CHECKSUM_AUTO &&
	     (want->checksum == SHMQ_CHECKSUM_HEADER) != hdr_crc,
	     "; checksum %s (asked %s)", hdr_crc ? "header" : "full",
	     hdr_crc ? "full" : "header");
	DIFF(asked->mode && fstat(q->fd, &st) == 0 &&
	     (st.st_mode & 07777) != want->mode,
	     "; mode %o (asked %o)", (unsigned int)(st.st_mode & 07777),
	     want->mode);
#undef DIFF
	if (!n)
		return;
	q->info_flags |= SHMQ_INFO_CFG_DIFFERS;
	(void)shmqi_fail(0, "the queue existed with another configuration, used as it is%s",
			 buf);
}
