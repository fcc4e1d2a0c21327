/* SPDX-License-Identifier: MIT */
/*
 * Durability: msync(MS_SYNC) of the ring bytes written since the durable
 * watermark, then of the header carrying the new watermark; the producer's
 * sync modes (none, batch, every); the sticky "durability failed" state.
 * MS_ASYNC does nothing on Linux; only MS_SYNC (or fdatasync) reaches the
 * disk. docs/durability.md states the contract these functions keep.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define BATCH_DEFAULT_N		1024u
#define BATCH_DEFAULT_MS	100u

/*
 * The first msync failure is kept, in the file for every process and in
 * the handle for a read-only one that cannot write the file. After an
 * msync error the kernel may have dropped the dirty pages or marked them
 * clean: a later msync that succeeds proves nothing about them, so no sync
 * ever reports success again and durable_pos never moves again.
 */
static int sync_failed(struct shmq *q)
{
	uint32_t e = load_acquire(&q->hdr->sync_error);

	if (e && e < 4096)
		return -(int)e;
	if (e)
		return -EIO;	/* a scribbled value: still failed */
	return q->sync_err;
}

static int mark_failed(struct shmq *q, int err, const char *what)
{
	if (err >= 0 || err <= -4096)
		err = -EIO;
	q->sync_err = err;
	if (!q->rdonly)
		(void)rmw_cas(&q->hdr->sync_error, 0u, (uint32_t)-err);
	return shmqi_fail(err, "msync of the %s: %s; the queue is marked \"durability failed\"",
			  what, strerror(-err));
}

static int sync_range(struct shmq *q, uint64_t off, uint64_t len)
{
	uint64_t start = off & ~(uint64_t)(SHMQ_PAGE - 1);

	if (!len)
		return 0;
	if (msync(q->data + start, align_up(off + len, SHMQ_PAGE) - start,
		  MS_SYNC) < 0)
		return mark_failed(q, -errno, "ring");
	return 0;
}

/* The ring bytes of positions [d, w), or the whole ring if d is not sane. */
static int sync_data(struct shmq *q, uint64_t d, uint64_t w)
{
	uint64_t len = w - d, off = d & q->g.mask;
	int ret;

	if (len > q->g.capacity)
		return sync_range(q, 0, q->g.capacity);
	if (off + len <= q->g.capacity)
		return sync_range(q, off, len);
	ret = sync_range(q, off, q->g.capacity - off);
	if (ret == 0)
		ret = sync_range(q, 0, off + len - q->g.capacity);
	return ret;
}

/* The header and the slot table: watermark, cursors, consumer positions. */
int shmqi_sync_header(struct shmq *q)
{
	if (msync(q->map, q->g.data_off, MS_SYNC) < 0)
		return mark_failed(q, -errno, "header");
	return 0;
}

int shmq_sync_error(struct shmq *q)
{
	shmqi_clear_error();
	return sync_failed(q);
}

/* Raise *WORD to V, never lower it: racing syncs CAS (a full fence). */
static void raise_pos(uint64_t *word, uint64_t v)
{
	uint64_t cur = load_acquire(word);

	while (pos_before(cur, v)) {
		uint64_t seen = rmw_cas(word, cur, v);

		if (seen == cur)
			break;
		cur = seen;
	}
}

/*
 * W3: durable_pos is raised (a CAS, so a full fence) only after the data
 * msync and the header msync that carries the claim both returned, and
 * pairs with A3 in the durable consumer's load_acquire(durable_pos): a
 * durable consumer never reads a message the disk's header does not
 * cover. Then wake consumers that sleep for durable data (F2's flag
 * protocol: the CAS orders the raise before our read of data_waiters, as
 * the producer's fenced write_pos store does).
 */
static void raise_watermark(struct shmq *q, uint64_t w)
{
	raise_pos(&q->hdr->durable_pos, w);			/* W3 */
	shmqi_wake_consumers(q, false);	/* futex sleepers, pollers */
}

/*
 * write_pos and the exact sequence of the record there, when a few tries
 * find them stable: the producer stores pub_seq, write_pos (W1), then
 * next_seq, so reading write_pos, pub_seq, next_seq, write_pos, the two
 * sequences agree only on the one at that position (as observer_seq()).
 */
static uint64_t seq_at_write_pos(struct shmq_hdr *h, uint64_t *seq, bool *ok)
{
	uint64_t w1 = 0;

	*ok = false;
	for (int i = 0; i < 64; i++) {
		uint64_t pre, post, w2;

		w1 = load_acquire(&h->write_pos);
		pre = load_acquire(&h->pub_seq);
		post = load_acquire(&h->next_seq);
		w2 = load_acquire(&h->write_pos);
		if (w1 == w2 && pre == post) {
			*seq = pre;
			*ok = true;
			return w1;
		}
		caa_cpu_relax();
	}
	return w1;
}

int shmq_sync(struct shmq *q)
{
	struct shmq_hdr *h = q->hdr;
	uint64_t w, d, seq = 0;
	bool seq_ok;
	int ret;

	shmqi_clear_error();
	/* msync of a read-only shared mapping writes nothing and returns 0. */
	if (q->rdonly)
		return shmqi_fail(-EROFS, "sync needs write access");
	ret = sync_failed(q);
	if (ret < 0)
		return shmqi_fail(ret, "an earlier msync failed: the queue is marked \"durability failed\" for good");
	w = seq_at_write_pos(h, &seq, &seq_ok);
	d = load_acquire(&h->durable_pos);
	/*
	 * No producer: the ring may be as a power loss left it, not yet
	 * recovered. Claim only the valid chain (and no sequence for it).
	 * With a live producer, recovery ran when it opened.
	 */
	if (shmqi_lock_held(q->fd, SHMQ_LOCK_PRODUCER) != 1) {
		uint64_t t = load_acquire(&h->tail_pos), from = d, v;

		if (w - t > q->g.capacity)
			return shmqi_fail(-EBADMSG, "header fields write_pos/tail_pos inconsistent");
		if (w - from > w - t)
			from = t;	/* before the tail, or past write_pos */
		v = shmqi_valid_end(q, from, w);
		if (v != w) {
			w = v;
			seq_ok = false;
		}
	}
	ret = sync_data(q, d, w);
	if (ret < 0)
		return ret;
	KILL_POINT("sync:after-data");
	/* Another process may have failed on pages we share since we looked. */
	ret = sync_failed(q);
	if (ret < 0)
		return shmqi_fail(ret, "another process's msync failed: the queue is marked \"durability failed\"");
	/* The claim travels to the disk with this header msync. */
	if (seq_ok)
		raise_pos(&h->durable_seq, seq);
	raise_pos(&h->durable_claim, w);
	KILL_POINT("sync:before-header");
	ret = shmqi_sync_header(q);
	if (ret < 0)
		return ret;
	raise_watermark(q, w);
	return 0;
}

void shmqi_sync_config(struct shmq_producer *p,
		       const struct shmq_producer_opts *o)
{
	p->sync_mode = o ? o->sync_mode : SHMQ_SYNC_NONE;
	if (p->sync_mode != SHMQ_SYNC_BATCH)
		return;
	p->sync_n = o->sync_every_n;
	p->sync_ns = (int64_t)o->sync_every_ms * 1000000;
	if (!o->sync_every_n && !o->sync_every_ms) {
		p->sync_n = BATCH_DEFAULT_N;
		p->sync_ns = (int64_t)BATCH_DEFAULT_MS * 1000000;
	}
}

/*
 * At producer open, after a failed sync: write the ring's data and the
 * header anyway (the sticky state stays; no watermark moves). The next
 * header names a new incarnation, so the last one's records must reach
 * the disk first if they can at all (docs/durability.md, incarnations).
 */
int shmqi_sync_anyway(struct shmq *q)
{
	uint64_t w = load_acquire(&q->hdr->write_pos);
	uint64_t t = load_acquire(&q->hdr->tail_pos);
	int ret = sync_data(q, t, w);

	if (ret == 0)
		ret = shmqi_sync_header(q);
	return ret;
}

/* A sync by the producer: it also knows the tail its header carried. */
int shmqi_sync_producer(struct shmq_producer *p)
{
	uint64_t tail = p->tail;
	int ret;

	p->sync_pending = 0;
	ret = shmq_sync(p->q);
	if (ret == 0)
		p->disk_tail = tail;
	return ret;
}

/*
 * Called by shmq_publish() after N records became visible. every: sync
 * now, so the send returns only once its data is durable. batch: sync
 * when N messages are pending or the oldest pending one waited T (checked
 * here, at each publish: an idle producer does not sync by itself).
 */
int shmqi_sync_published(struct shmq_producer *p, uint64_t n)
{
	if (p->sync_mode == SHMQ_SYNC_NONE)
		return 0;
	if (p->sync_mode == SHMQ_SYNC_BATCH) {
		int64_t now;

		if (!p->sync_pending)
			p->sync_first_ns = shmqi_now_ns();
		p->sync_pending += n;
		if (p->sync_n && p->sync_pending >= p->sync_n)
			return shmqi_sync_producer(p);
		if (!p->sync_ns)
			return 0;
		now = p->sync_pending == n ? p->sync_first_ns : shmqi_now_ns();
		if (now - p->sync_first_ns < p->sync_ns)
			return 0;
	}
	return shmqi_sync_producer(p);
}
