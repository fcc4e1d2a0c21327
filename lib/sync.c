/* SPDX-License-Identifier: MIT */
/*
 * Durability: msync(MS_SYNC) of the ring bytes written since the durable
 * watermark, then of the header carrying the new watermark. MS_ASYNC does
 * nothing on Linux; only MS_SYNC (or fdatasync) reaches the disk.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static int sync_range(struct shmq *q, uint64_t off, uint64_t len)
{
	uint64_t start = off & ~(uint64_t)(SHMQ_PAGE - 1);

	if (!len)
		return 0;
	if (msync(q->data + start, align_up(off + len, SHMQ_PAGE) - start,
		  MS_SYNC) < 0)
		return shmqi_fail(-errno, "msync of the ring: %m");
	return 0;
}

int shmq_sync(struct shmq *q)
{
	struct shmq_hdr *h = q->hdr;
	uint64_t w, d, off, len, cur;
	int ret;

	shmqi_clear_error();
	w = load_acquire(&h->write_pos);
	d = load_acquire(&h->durable_pos);
	len = w - d;
	if (len > q->g.capacity) {
		/* Stale or corrupt watermark: sync the whole ring. */
		ret = sync_range(q, 0, q->g.capacity);
	} else {
		off = d & q->g.mask;
		if (off + len > q->g.capacity) {
			ret = sync_range(q, off, q->g.capacity - off);
			if (ret == 0)
				ret = sync_range(q, 0, off + len - q->g.capacity);
		} else {
			ret = sync_range(q, off, len);
		}
	}
	if (ret < 0)
		return ret;
	if (!q->rdonly) {
		/* Raise the watermark, never lower it: racing syncs CAS. */
		cur = d;
		while (pos_before(cur, w)) {
			uint64_t seen = rmw_cas(&h->durable_pos, cur, w);

			if (seen == cur)
				break;
			cur = seen;
		}
	}
	KILL_POINT("sync:before-header");
	if (msync(q->map, q->g.data_off, MS_SYNC) < 0)
		return shmqi_fail(-errno, "msync of the header: %m");
	return 0;
}
