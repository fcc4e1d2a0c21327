/* SPDX-License-Identifier: MIT */
/*
 * The power-loss simulator (SQLite's crash test, adapted to mmap). The
 * library's msync is wrapped (-Wl,--wrap=msync): every range it makes
 * durable is copied into a model of the disk. At each crash point (after
 * every msync and after every send) a crash image is built: each page
 * that differs between memory and the disk model comes from one or the
 * other at random, and sometimes a page is torn into 512-byte sectors of
 * both. The image is recovered by a fresh producer open and read back by
 * the named consumer, and the invariants are checked:
 *   - nothing torn, corrupt or stale is delivered (content and sequence);
 *   - every message acknowledged as durable that the consumer had not
 *     released at the crash is delivered (every mode, and batch/none at
 *     the points where a sync returned);
 *   - recovery is idempotent: a second open changes nothing.
 * SHMQ_TEST_SCALE multiplies the number of crashes (soak: 20 for 100k);
 * SHMQ_POWERLOSS_SEED replays one run.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmq.h"
#include "internal.h"
#include "harness.h"

#define CAP		16384u	/* four pages: many laps, many wraps */
#define MAXMSG		600u
#define SLOTS		4u
#define SECTOR		512u

static struct {
	struct shmq *q;		/* the queue whose msyncs we model */
	uint8_t *disk;		/* what the disk holds */
	uint8_t *img;
	size_t size;
	int active;
	int in_crash;		/* recovery of an image runs msync too */
	uint64_t rng;
	uint64_t seed;		/* message stream */
	int mode;
	/* ground truth at this moment */
	uint64_t acked;		/* every seq below is acknowledged durable */
	uint64_t released;	/* the consumer released every seq below */
	uint64_t sent;
	/* counts */
	unsigned long crashes, torn_pages, delivered, cut, images_lost;
	unsigned long budget;
} S;

int __real_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags);
static void crash_point(void);

int __wrap_msync(void *addr, size_t len, int flags)
{
	int r = __real_msync(addr, len, flags);

	if (r == 0 && S.active && !S.in_crash && S.q &&
	    (uint8_t *)addr >= (uint8_t *)S.q->map &&
	    (uint8_t *)addr + len <= (uint8_t *)S.q->map + S.size) {
		memcpy(S.disk + ((uint8_t *)addr - (uint8_t *)S.q->map), addr,
		       len);
		crash_point();
	}
	return r;
}

static uint64_t rnd(void)
{
	S.rng ^= S.rng << 13;
	S.rng ^= S.rng >> 7;
	S.rng ^= S.rng << 17;
	return S.rng;
}

/* Memory now, the disk model, and a random mixture of the dirty pages. */
static void build_image(void)
{
	const uint8_t *mem = S.q->map;

	for (size_t off = 0; off < S.size; off += SHMQ_PAGE) {
		const uint8_t *d = S.disk + off, *m = mem + off;
		uint8_t *o = S.img + off;
		uint64_t r;

		if (memcmp(d, m, SHMQ_PAGE) == 0) {
			memcpy(o, d, SHMQ_PAGE);
			continue;
		}
		r = rnd() % 8;
		if (r < 3) {
			memcpy(o, d, SHMQ_PAGE);		/* not written back */
		} else if (r < 6) {
			memcpy(o, m, SHMQ_PAGE);		/* written back */
		} else {
			/* torn: each sector old or new */
			uint64_t bits = rnd();

			for (unsigned s = 0; s < SHMQ_PAGE / SECTOR; s++)
				memcpy(o + s * SECTOR,
				       ((bits >> s) & 1 ? m : d) + s * SECTOR,
				       SECTOR);
			S.torn_pages++;
		}
	}
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

struct outcome {
	uint64_t w, next_seq, first, last;
	unsigned long n;
};

/* Recover the image at PATH and read everything with the named consumer. */
static void recover_and_read(const char *path, struct outcome *o)
{
	struct shmq_consumer_opts co = { .name = "c" };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq *q;
	struct shmq_msg m;
	static uint8_t buf[MAXMSG];
	ssize_t n;
	int err;

	err = shmq_open(path, 0, NULL, &q);
	cr_assert_eq(err, 0, "open image: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	err = shmq_producer_open(q, NULL, &p);
	cr_assert_eq(err, 0, "recovery: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	if (p->cut_bytes)
		S.cut++;
	o->next_seq = p->seq;
	shmq_producer_close(p);
	/* After the close's END record: a second open adds nothing. */
	o->w = load_relaxed(&q->hdr->write_pos);
	err = shmq_consumer_open(q, &co, &c);
	cr_assert_eq(err, 0, "consumer: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	o->n = 0;
	for (;;) {
		const char *bad;

		n = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		/* Session ends (the crashed one's, recovery's own): read on. */
		if (n == SHMQ_EOF || n == SHMQ_EDIED || n == SHMQ_EABORTED)
			continue;
		if (n == -EAGAIN)
			break;
		cr_assert_geq(n, 0, "crash %lu: recv: %s (%s)", S.crashes,
			      shmq_strerror((int)n), shmq_errdetail());
		bad = h_msg_check(buf, (size_t)n, S.seed, m.seq, MAXMSG);
		cr_assert_null(bad, "crash %lu: message %" PRIu64 " delivered %s",
			       S.crashes, m.seq, bad);
		if (o->n)
			cr_assert_eq(m.seq, o->last + 1,
				     "crash %lu: seq %" PRIu64 " after %" PRIu64,
				     S.crashes, m.seq, o->last);
		else
			o->first = m.seq;
		o->last = m.seq;
		o->n++;
	}
	shmq_consumer_close(c);
	shmq_close(q);
}

static void crash_point(void)
{
	struct outcome a, b;
	const char *img = h_path("img");

	if (!S.budget)
		return;
	S.budget--;
	S.in_crash = 1;
	build_image();
	write_file(img, S.img, S.size);
	recover_and_read(img, &a);
	S.crashes++;
	S.delivered += a.n;
	/* Acknowledged durable and not yet released: must all be there. */
	if (S.released < S.acked) {
		cr_assert(a.n > 0 && a.first <= S.released &&
			  a.last + 1 >= S.acked,
			  "crash %lu (mode %d): acked-durable [%" PRIu64 ", %" PRIu64
			  ") but recovered %lu messages [%" PRIu64 ", %" PRIu64 "]",
			  S.crashes, S.mode, S.released, S.acked, a.n,
			  a.n ? a.first : 0, a.n ? a.last : 0);
	}
	if (!a.n && S.released < S.sent)
		S.images_lost++;
	/* Idempotent: recovering the recovered image again changes nothing. */
	if (S.crashes % 8 == 0) {
		struct shmq *q;
		struct shmq_producer *p;

		cr_assert_eq(shmq_open(img, 0, NULL, &q), 0);
		cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
		b.w = load_relaxed(&q->hdr->write_pos);
		b.next_seq = p->seq;
		cr_assert_eq(p->cut_bytes, 0, "second recovery cut again");
		/*
		 * Nothing cut; at most the END record of the session before
		 * (when a full ring left no room to write it at close).
		 */
		cr_assert(b.w == a.w ||
			  b.w - a.w == shmqi_rec_size(sizeof(struct shmq_end)),
			  "write_pos %" PRIu64 " after %" PRIu64, b.w, a.w);
		cr_assert_eq(b.next_seq, a.next_seq);
		shmq_producer_close(p);
		shmq_close(q);
	}
	unlink(img);
	S.in_crash = 0;
}

static uint64_t scale(void)
{
	const char *s = getenv("SHMQ_TEST_SCALE");
	double v = s ? atof(s) : 1.0;

	return v > 0 ? (uint64_t)(v * 1000) : 1000;
}

static void run_mode(int mode, unsigned long crashes)
{
	struct shmq_config cfg = { .capacity = CAP, .max_message = MAXMSG,
				   .slots = SLOTS };
	struct shmq_producer_opts po = { .sync_mode = (uint32_t)mode,
					 .sync_every_n = 5 };
	struct shmq_consumer_opts co = { .name = "c" };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	static uint8_t buf[MAXMSG];
	const char *path = h_path("q");
	const char *env = getenv("SHMQ_POWERLOSS_SEED");
	uint64_t seq = 0;
	int err;

	memset(&S, 0, sizeof(S));
	S.rng = env ? strtoull(env, NULL, 0) : (h_now_ns() | 1);
	fprintf(stderr, "powerloss mode %d: seed %#" PRIx64 "\n", mode, S.rng);
	S.seed = rnd();
	S.mode = mode;
	cr_assert_eq(shmq_create(path, &cfg), 0);
	cr_assert_eq(shmq_open(path, 0, NULL, &S.q), 0);
	S.size = S.q->g.file_size;
	S.disk = calloc(1, S.size);
	S.img = calloc(1, S.size);
	/* The disk starts as the created file, synced. */
	cr_assert_eq(__real_msync(S.q->map, S.size, MS_SYNC), 0);
	memcpy(S.disk, S.q->map, S.size);
	err = shmq_consumer_open(S.q, &co, &c);
	cr_assert_eq(err, 0);
	S.active = 1;
	S.budget = crashes;
	err = shmq_producer_open(S.q, &po, &p);
	cr_assert_eq(err, 0, "%s", shmq_errdetail());

	while (S.budget) {
		size_t len = h_msg_len(S.seed, seq, MAXMSG);
		uint8_t msg[MAXMSG];

		h_msg_fill(msg, len, S.seed, seq);
		err = shmq_send(p, msg, len, SHMQ_NOWAIT);
		if (err == -EAGAIN) {
			/* Full: the consumer catches up a little. */
			for (int k = 1 + (int)(rnd() % 8); k > 0; k--) {
				struct shmq_msg m;
				ssize_t n = shmq_recv(c, buf, sizeof(buf), &m,
						      SHMQ_NOWAIT);

				if (n < 0)
					break;
				cr_assert_null(h_msg_check(buf, (size_t)n, S.seed,
							   m.seq, MAXMSG));
				S.released = m.seq + 1;
			}
			continue;
		}
		cr_assert_eq(err, 0, "send: %s (%s)", shmq_strerror(err),
			     shmq_errdetail());
		seq++;
		S.sent = seq;
		/* Acknowledged durable: the watermark covers everything sent. */
		if (mode == SHMQ_SYNC_EVERY)
			S.acked = seq;
		else if (load_acquire(&S.q->hdr->durable_pos) ==
			 load_acquire(&S.q->hdr->write_pos))
			S.acked = seq;
		/* Mode none: a user calls shmq_sync now and then. */
		if (mode == SHMQ_SYNC_NONE && rnd() % 16 == 0) {
			cr_assert_eq(shmq_sync(S.q), 0);
			S.acked = seq;
		}
		crash_point();
		/* The consumer lags by a random amount. */
		if (rnd() % 3 == 0) {
			struct shmq_msg m;
			ssize_t n = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);

			if (n >= 0)
				S.released = m.seq + 1;
		}
	}
	S.active = 0;
	printf("powerloss mode %s: %lu crashes, %lu torn pages, %lu sent, "
	       "%lu delivered after recovery, %lu images cut, "
	       "0 torn delivered, 0 acked-durable lost\n",
	       mode == 0 ? "none" : mode == 1 ? "batch" : "every", S.crashes,
	       S.torn_pages, (unsigned long)S.sent, S.delivered, S.cut);
	fflush(stdout);
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(S.q);
	free(S.disk);
	free(S.img);
}

TestSuite(powerloss, .init = h_setup, .fini = h_teardown, .timeout = 240);

Test(powerloss, mode_every_loses_no_acknowledged_message_and_delivers_nothing_torn)
{
	run_mode(SHMQ_SYNC_EVERY, 2 * scale());
}

Test(powerloss, mode_batch_loses_nothing_synced_and_delivers_nothing_torn)
{
	run_mode(SHMQ_SYNC_BATCH, 2 * scale());
}

Test(powerloss, mode_none_recovers_a_consistent_prefix_and_delivers_nothing_torn)
{
	run_mode(SHMQ_SYNC_NONE, 2 * scale());
}
