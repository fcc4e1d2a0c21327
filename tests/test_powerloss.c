/* SPDX-License-Identifier: MIT */
/*
 * The power-loss simulator (SQLite's crash test, adapted to mmap; issue 12
 * item 7; docs/durability.md describes it). The library's msync is wrapped
 * (-Wl,--wrap=msync): every range it makes durable is copied into a model
 * of the disk, and no real msync is made. The library is the
 * kill-point build, whose test-only hook (lib/killpoint.c) calls us at
 * every kill point, between two stores of a send, publish, sync or
 * recovery.
 *
 * Crash points: before and after every msync, at every kill point, and
 * after every operation of the driver (send, failed send, sync, receive,
 * producer close and open). At each one the dirty pages are snapshotted
 * (up to NVER intermediate versions per page since its last msync), and
 * sometimes a crash image is built and checked. Each page that differs
 * from the disk model (or has intermediate versions) becomes, out of 16:
 *   6  as of the last msync (not written back),
 *   4  as in memory now,
 *   2  an intermediate version (written back at an earlier moment),
 *   2  each 64-byte line from one of two of those versions (a writeback
 *      copy that read its lines at different moments: nothing orders two
 *      stores within one page on their way to the disk),
 *   2  torn: each 512-byte sector from the disk or from one version.
 * The image is recovered by a fresh producer open (on a copy) and read
 * back by the named consumer, and the invariants are checked:
 *   - nothing torn, stale or from an older incarnation is delivered:
 *     message content depends on (seed, segment, incarnation, seq), so a
 *     record resurrected from before a power loss fails its check;
 *   - every message acknowledged durable (shmq_sync returned 0 after its
 *     send, a send in mode every returned 0, a batch sync covered it) is
 *     delivered unless the consumer had released it, and recovery never
 *     ends below it (its sequence number would be reused);
 *   - recovery is idempotent: a second open changes nothing.
 * Sometimes the image is adopted: the power loss really happens, the file
 * becomes the image and the driver continues from it with a new producer
 * incarnation, so that two power losses in a row are covered. Producers
 * are also closed and reopened (recovery on a live file), after ordinary
 * sends and right after a send failed on a full ring (-EAGAIN or
 * -ETIMEDOUT once the limit was refreshed).
 *
 * msync failures can be injected: the wrapper writes a random subset of
 * the range and fails with EIO or ENOSPC. From then on no shmq_sync, no
 * send in mode every may return 0 and durable_pos may not move; after a
 * few more operations the segment ends and a fresh queue starts.
 *
 * The slot table is larger than a page (SLOTS), and the consumer's slot
 * lies on the second page, so header and slots are torn apart too.
 *
 * The scenario tests (defect1..3) script the preconditions of issue 12's
 * defects and then enumerate crash images exhaustively (up to EXPLORE_MAX
 * per crash point) instead of sampling them.
 *
 * SHMQ_TEST_SCALE multiplies the crash budget (soak: 20); the seed is
 * printed, and SHMQ_POWERLOSS_SEED replays a random run.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmq.h"
#include "format.h"	/* failure messages only: header fields by name */
#include "harness.h"

/* lib/killpoint.c, kill-point builds only. */
extern void (*shmqi_kill_hook)(const char *name);

#define CAP		16384u	/* four pages: many laps, many wraps */
#define MAXMSG		600u
#define SLOTS		40u	/* header + 40 slots > one page */
#define C_SLOT		32u	/* observers fill 0..31: c lands on page 2 */
#define PAGE		4096u
#define LINE		64u
#define SECTOR		512u
#define MAXPAGES	8u
#define NVER		4u	/* intermediate versions kept per page */
#define WIN		4096u	/* timeline window: > records in a ring */
#define TAG		16u	/* u64 seq, u32 incarnation, u32 segment */
#define MAXCAND		40u	/* explored versions per page */
#define EXPLORE_MAX	400u	/* images per explored crash point */

enum { C_DISK, C_MEM, C_VER, C_LINES, C_TORN };

/*
 * How one page of an image is made. a, b index the page's versions:
 * 0 the disk model, 1 memory now, 2 + i intermediate version i.
 */
struct choice {
	uint8_t kind, a, b;
	uint64_t mask;		/* C_LINES: line l from b; C_TORN: sector s from b */
};

/* What the driver sent: seq -> (incarnation, length). */
struct tl_ent {
	uint64_t seq;
	uint32_t run;
	uint32_t len;
	bool valid;
};

struct outcome {
	/* w_open: after recovery; w: after its close (and END record) */
	uint64_t w_open, w, next_seq, first, last;
	unsigned long n;
};

static struct {
	/* the queue */
	char *path, *img_path;
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_producer_opts po;
	uint8_t *map;
	size_t size;
	unsigned npages;
	uint64_t data_off;

	/* the disk model */
	uint8_t disk[MAXPAGES * PAGE];
	uint8_t img[MAXPAGES * PAGE];
	uint8_t adopt[MAXPAGES * PAGE];
	uint8_t ver[MAXPAGES][NVER][PAGE];
	uint64_t ver_at[MAXPAGES][NVER];
	unsigned nver[MAXPAGES], newest[MAXPAGES];
	uint64_t now;		/* event clock: one tick per crash point */
	char desc[512];		/* how the image being checked was made */

	/* knobs */
	int mode;
	unsigned check_one_in;	/* random image at 1 in N crash points; 0 never */
	unsigned adopt_one_in;	/* adopt 1 in N checked images; 0 never */
	unsigned fail_one_in;	/* fail 1 in N msyncs; 0 never */
	bool fail_next;		/* the next msync fails, writing nothing */
	bool explore;		/* enumerate images instead */
	const char *explore_at;	/* ... at crash points of this name (NULL: all) */
	unsigned long budget;

	/* control */
	bool active, in_check, pending;
	const char *where;
	uint64_t adopt_released;
	uint64_t rng, seed0, seed;

	/* the truth */
	uint32_t seg, run;
	uint64_t next;		/* sequence of the next send */
	uint64_t acked;		/* every seq below is acknowledged durable */
	uint64_t released;	/* the consumer released every seq below */
	bool inflight;		/* a send of seq next is under way */
	struct tl_ent tl[WIN];
	bool dur_failed;	/* an msync failed: nothing may be acked now */
	uint64_t fail_op, frozen;
	bool frozen_set;
	unsigned long ops;

	/* SHMQ_POWERLOSS_TALLY: list every failing image, fail at the end */
	bool tally;
	bool trace;		/* SHMQ_POWERLOSS_TRACE: every operation on stderr */
	jmp_buf tally_jmp;
	struct shmq *chk_q;
	struct shmq_producer *chk_p;
	struct shmq_consumer *chk_c;
	unsigned long fails_lost, fails_stale, fails_reused, fails_other,
		      fails_mixed_tail;

	/* counts */
	unsigned long crashes, explored, cut, power_losses, restarts,
		      restarts_after_full, fulls, injected, delivered, segs, sent;
} S;

int __wrap_msync(void *addr, size_t len, int flags);
static void crash_point(const char *where);
static void power_loss(void);

static uint64_t rnd(void)
{
	S.rng ^= S.rng << 13;
	S.rng ^= S.rng >> 7;
	S.rng ^= S.rng << 17;
	return S.rng;
}

/* Sequences are free-running u64s: compare by difference. */
static bool pos_before_u(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) < 0;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static const char *mode_name(int mode)
{
	return mode == SHMQ_SYNC_NONE ? "none" :
	       mode == SHMQ_SYNC_BATCH ? "batch" : "every";
}

#define TRACE(...) do {							\
		if (S.trace)						\
			fprintf(stderr, "  op %lu inc %u next %" PRIu64 " acked %"	\
				PRIu64 " released %" PRIu64 ": ", S.ops, S.run,	\
				S.next, S.acked, S.released),		\
			fprintf(stderr, __VA_ARGS__),			\
			fputc('\n', stderr);				\
	} while (0)

/* ---- message content: a function of (seed, segment, incarnation, seq) */

static void fill(uint8_t *b, uint32_t len, uint32_t run, uint64_t seq)
{
	uint64_t s = mix64(S.seed ^ mix64(((uint64_t)S.seg << 32 | run) +
					  mix64(seq))) | 1;

	for (uint32_t i = 0; i < len; i += 8) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memcpy(b + i, &s, len - i < 8 ? len - i : 8);
	}
	if (len >= TAG) {
		memcpy(b, &seq, 8);
		memcpy(b + 8, &run, 4);
		memcpy(b + 12, &S.seg, 4);
	}
}

/* NULL when BUF is exactly what this timeline sent as SEQ. */
static const char *check_msg(const uint8_t *buf, size_t len, uint64_t seq)
{
	static char why[400];
	const struct tl_ent *e = &S.tl[seq % WIN];
	uint8_t exp[MAXMSG];
	uint64_t tseq = 0;
	uint32_t trun = 0;

	if (len > MAXMSG) {
		snprintf(why, sizeof(why), "seq %" PRIu64 ": %zu bytes, more than the maximum",
			 seq, len);
		return why;
	}
	if (len >= TAG) {
		memcpy(&tseq, buf, 8);
		memcpy(&trun, buf + 8, 4);
	}
	if (!e->valid || e->seq != seq) {
		snprintf(why, sizeof(why),
			 "seq %" PRIu64 " was never sent in this timeline (next to send: %" PRIu64
			 "); its tag says seq %" PRIu64 " of incarnation %u",
			 seq, S.next, tseq, trun);
		return why;
	}
	if (len == e->len) {
		fill(exp, (uint32_t)len, e->run, seq);
		if (memcmp(exp, buf, len) == 0)
			return NULL;
	}
	/* An older incarnation's record, resurrected by a power loss? */
	for (uint32_t r = e->run - 1; r >= 1 && r + 256 > e->run; r--) {
		fill(exp, (uint32_t)len, r, seq);
		if (memcmp(exp, buf, len) == 0) {
			snprintf(why, sizeof(why),
				 "STALE: it is the record that incarnation %u (an earlier producer) "
				 "sent as seq %" PRIu64 " (%zu bytes), resurrected; this timeline's seq %"
				 PRIu64 " was sent by incarnation %u (%u bytes)",
				 r, seq, len, seq, e->run, e->len);
			return why;
		}
	}
	snprintf(why, sizeof(why),
		 "CORRUPT: seq %" PRIu64 ", %zu bytes (sent by incarnation %u, %u bytes); "
		 "tag says seq %" PRIu64 " incarnation %u: torn or scribbled",
		 seq, len, e->run, e->len, tseq, trun);
	return why;
}

/* ---- the disk model ------------------------------------------------- */

static const uint8_t *version(unsigned page, unsigned i)
{
	if (i == 0)
		return S.disk + (size_t)page * PAGE;
	if (i == 1)
		return S.map + (size_t)page * PAGE;
	return S.ver[page][i - 2];
}

static void version_name(unsigned page, unsigned i, char *b, size_t n)
{
	if (i == 0)
		snprintf(b, n, "disk");
	else if (i == 1)
		snprintf(b, n, "mem");
	else
		snprintf(b, n, "v@%" PRIu64, S.ver_at[page][i - 2]);
}

static bool page_dirty(unsigned page)
{
	return S.nver[page] ||
	       memcmp(S.map + (size_t)page * PAGE, S.disk + (size_t)page * PAGE, PAGE);
}

/* Keep the page as it is now, if it is a version we do not have yet. */
static void snapshot(void)
{
	for (unsigned pg = 0; pg < S.npages; pg++) {
		const uint8_t *m = S.map + (size_t)pg * PAGE;
		unsigned i;

		if (!memcmp(m, S.disk + (size_t)pg * PAGE, PAGE))
			continue;
		if (S.nver[pg] && !memcmp(m, S.ver[pg][S.newest[pg]], PAGE))
			continue;
		i = S.nver[pg] < NVER ? S.nver[pg]++ : (unsigned)(rnd() % NVER);
		memcpy(S.ver[pg][i], m, PAGE);
		S.ver_at[pg][i] = S.now;
		S.newest[pg] = i;
	}
}

/* Pages [OFF, OFF+LEN) reached the disk: earlier versions are history. */
static void model_write(size_t off, size_t len)
{
	memcpy(S.disk + off, S.map + off, len);
	for (size_t pg = off / PAGE; pg * PAGE < off + len; pg++)
		if (pg * PAGE >= off && (pg + 1) * PAGE <= off + len)
			S.nver[pg] = 0;
}

static void clear_versions(void)
{
	memset(S.nver, 0, sizeof(S.nver));
}

static void compose(unsigned pg, const struct choice *c, uint8_t *out)
{
	const uint8_t *a = version(pg, c->a), *b = version(pg, c->b);

	switch (c->kind) {
	case C_LINES:
		for (unsigned l = 0; l < PAGE / LINE; l++)
			memcpy(out + l * LINE, ((c->mask >> l) & 1 ? b : a) + l * LINE, LINE);
		break;
	case C_TORN:
		for (unsigned s = 0; s < PAGE / SECTOR; s++)
			memcpy(out + s * SECTOR, ((c->mask >> s) & 1 ? b : a) + s * SECTOR,
			       SECTOR);
		break;
	default:
		memcpy(out, a, PAGE);
	}
}

static void describe(unsigned pg, const struct choice *c, char *b, size_t n)
{
	char x[32], y[32];

	version_name(pg, c->a, x, sizeof(x));
	version_name(pg, c->b, y, sizeof(y));
	switch (c->kind) {
	case C_LINES:
		snprintf(b, n, " p%u=lines(%s|%s:%#" PRIx64 ")", pg, x, y, c->mask);
		break;
	case C_TORN:
		snprintf(b, n, " p%u=torn(%s|%s:%#" PRIx64 ")", pg, x, y,
			 c->mask & 0xff);
		break;
	default:
		snprintf(b, n, " p%u=%s", pg, x);
	}
}

static struct choice random_choice(unsigned pg)
{
	unsigned nv = S.nver[pg], r = (unsigned)(rnd() % 16);
	struct choice c = { .kind = C_DISK };

	if (r < 6) {
		c.kind = C_DISK;
	} else if (r < 10 || (r < 12 && !nv)) {
		c.kind = C_MEM;
		c.a = 1;
	} else if (r < 12) {
		c.kind = C_VER;
		c.a = (uint8_t)(2 + rnd() % nv);
	} else if (r < 14) {
		c.kind = C_LINES;
		c.a = (uint8_t)(rnd() % (2 + nv));
		c.b = (uint8_t)(rnd() % (2 + nv));
		c.mask = rnd();
	} else {
		c.kind = C_TORN;
		c.a = 0;
		c.b = (uint8_t)(nv && (rnd() & 1) ? 2 + rnd() % nv : 1);
		c.mask = rnd();
	}
	return c;
}

static void build_image(const struct choice *ch, const bool *dirty)
{
	size_t d = 0;

	S.desc[0] = '\0';
	for (unsigned pg = 0; pg < S.npages; pg++) {
		if (!dirty[pg]) {
			memcpy(S.img + (size_t)pg * PAGE, S.disk + (size_t)pg * PAGE, PAGE);
			continue;
		}
		compose(pg, &ch[pg], S.img + (size_t)pg * PAGE);
		if (d < sizeof(S.desc) - 1) {
			describe(pg, &ch[pg], S.desc + d, sizeof(S.desc) - d);
			d += strlen(S.desc + d);
		}
	}
}

/* ---- checking one image --------------------------------------------- */

static void hdr_fields(const uint8_t *buf, char *b, size_t n)
{
	struct shmq_hdr h;
	int k;

	memcpy(&h, buf, sizeof(h));
	k = snprintf(b, n, "write_pos %" PRIu64 " tail_pos %" PRIu64 " tail_seq %" PRIu64
		     " next_seq %" PRIu64 " durable_pos %" PRIu64,
		     (uint64_t)h.write_pos, (uint64_t)h.tail_pos, (uint64_t)h.tail_seq,
		     (uint64_t)h.next_seq, (uint64_t)h.durable_pos);
#if SHMQ_FORMAT_VERSION >= 2
	if (k > 0 && (size_t)k < n)
		snprintf(b + k, n - (size_t)k, " durable_claim %" PRIu64
			 " incarnation %u inc_pos %" PRIu64,
			 (uint64_t)h.durable_claim, (unsigned)h.incarnation,
			 (uint64_t)h.inc_pos);
#else
	(void)k;
#endif
}

/*
 * Where the image's (tail_pos, tail_seq) pair comes from: a moment the
 * page was in (disk, memory, a version), or none: two moments mixed.
 */
static const char *tail_pair(const uint8_t *img)
{
	struct shmq_hdr h, v;

	memcpy(&h, img, sizeof(h));
	for (unsigned i = 0; i < 2 + S.nver[0]; i++) {
		memcpy(&v, version(0, i), sizeof(v));
		if (v.tail_pos == h.tail_pos && v.tail_seq == h.tail_seq)
			return "a pair the header held at one moment";
	}
	return "MIXED: tail_pos and tail_seq from different moments";
}

/* File byte ranges where IMG differs from the disk model, by lines. */
static void diff_ranges(const uint8_t *img, char *b, size_t n)
{
	size_t k = 0, start = 0;
	bool in = false;

	b[0] = '\0';
	for (size_t off = 0; off <= S.size; off += LINE) {
		bool d = off < S.size && memcmp(img + off, S.disk + off, LINE);

		if (d && !in) {
			start = off;
			in = true;
		} else if (!d && in) {
			in = false;
			if (k < n)
				k += (size_t)snprintf(b + k, n - k, " [%zu,%zu)", start, off);
		}
	}
	if (!b[0])
		snprintf(b, n, " none");
}

static void tally_cleanup(void)
{
	shmq_consumer_close(S.chk_c);
	shmq_producer_close(S.chk_p);
	shmq_close(S.chk_q);
	S.chk_c = NULL;
	S.chk_p = NULL;
	S.chk_q = NULL;
}

/* Fail the test with the whole context: seed, truth, image, headers. */
__attribute__((format(printf, 2, 3), noreturn))
static void failf(const uint8_t *img, const char *fmt, ...)
{
	static char msg[8192];
	char hi[400] = "-", hm[300] = "-", hd[300], df[1024] = " -";
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (img) {
		size_t k;

		hdr_fields(img, hi, sizeof(hi));
		diff_ranges(img, df, sizeof(df));
		k = strlen(hi);
		snprintf(hi + k, sizeof(hi) - k, " (tail: %s)", tail_pair(img));
	}
	if (S.map)
		hdr_fields(S.map, hm, sizeof(hm));
	hdr_fields(S.disk, hd, sizeof(hd));
	if (n > 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n,
			 "\n  [seed %#" PRIx64 ", mode %s, segment %u, incarnation %u, crash %lu at %s;"
			 " acked below seq %" PRIu64 ", consumer released below %" PRIu64
			 ", next to send %" PRIu64 "]\n  image pages:%s\n"
			 "  image differs from the disk at file bytes:%s (ring at %" PRIu64 ")\n"
			 "  header of the image:  %s\n"
			 "  header in memory:    %s\n  header on the disk:  %s",
			 S.seed0, mode_name(S.mode), S.seg, S.run, S.crashes,
			 S.where ? S.where : "-", S.acked, S.released, S.next,
			 img ? S.desc : " (none)", df, S.data_off, hi, hm, hd);
	fprintf(stderr, "powerloss FAILURE: %s\n", msg);
	if (S.tally && S.in_check) {
		if (strstr(msg, "ACKNOWLEDGED-DURABLE LOST"))
			S.fails_lost++;
		else if (strstr(msg, "STALE"))
			S.fails_stale++;
		else if (strstr(msg, "SEQUENCE REUSED"))
			S.fails_reused++;
		else
			S.fails_other++;
		if (img && strstr(hi, "MIXED"))
			S.fails_mixed_tail++;
		longjmp(S.tally_jmp, 1);
	}
	cr_assert_fail("%s", msg);
	abort();
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
}

static struct shmq_stat *stat_of(struct shmq *q)
{
	struct shmq_stat *st;
	int err = shmq_stat_get(q, &st);

	cr_assert_eq(err, 0, "stat: %s", shmq_strerror(err));
	return st;
}

/*
 * Did the ring grow from W0 to W1 by END records alone (sessions whose
 * close found no room, or that died in their open: an open writes what
 * is owed, at most 64),
 * padded to the ring's start where one did not fit before the end?
 */
static bool late_ends_only(uint64_t w0, uint64_t w1)
{
	const uint64_t end_rec = (SHMQ_REC_HDR + sizeof(struct shmq_end) + 7) & ~7ull;
	uint64_t w = w0;

	for (int k = 0; k <= 64; k++) {
		uint64_t room = CAP - (w & (CAP - 1));

		if (w == w1)
			return true;
		w += room < end_rec ? room + end_rec : end_rec;
	}
	return false;
}

static void recover_copy(const uint8_t *img, struct outcome *o, bool read)
{
	struct shmq_consumer_opts co = { .name = "c" };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	struct shmq_stat *st;
	struct shmq *q;
	struct shmq_msg m;
	uint8_t buf[MAXMSG];
	ssize_t n;
	int err;

	err = shmq_open(S.img_path, 0, NULL, &q);
	if (err)
		failf(img, "shmq_open of the crash image: %s (%s)",
		      shmq_strerror(err), shmq_errdetail());
	S.chk_q = q;
	err = shmq_producer_open(q, NULL, &p);
	if (err)
		failf(img, "recovery refused the crash image: %s (%s)",
		      shmq_strerror(err), shmq_errdetail());
	st = stat_of(q);
	o->w_open = st->write_pos;
	o->next_seq = st->next_seq;
	shmq_stat_free(st);
	shmq_producer_close(p);
	st = stat_of(q);
	o->w = st->write_pos;
	shmq_stat_free(st);
	o->n = 0;
	if (!read) {
		shmq_close(q);
		S.chk_q = NULL;
		return;
	}
	err = shmq_consumer_open(q, &co, &c);
	S.chk_c = err ? NULL : c;
	if (err)
		failf(img, "consumer open after recovery: %s (%s)",
		      shmq_strerror(err), shmq_errdetail());
	for (;;) {
		const char *bad;

		n = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		/* Session ends (the crashed one's, recovery's own): read on. */
		if (n == SHMQ_EOF || n == SHMQ_EDIED || n == SHMQ_EABORTED)
			continue;
		if (n == -EAGAIN)
			break;
		if (n < 0)
			failf(img, "recv after recovery: %s (%s)",
			      shmq_strerror((int)n), shmq_errdetail());
		bad = check_msg(buf, (size_t)n, m.seq);
		if (bad)
			failf(img, "delivered after recovery: %s", bad);
		if (o->n && m.seq != o->last + 1)
			failf(img, "delivered seq %" PRIu64 " after %" PRIu64, m.seq, o->last);
		if (!o->n)
			o->first = m.seq;
		o->last = m.seq;
		o->n++;
	}
	if (o->n && o->last + 1 != o->next_seq)
		failf(img, "the consumer stopped at seq %" PRIu64 ", recovery ends at %" PRIu64,
		      o->last, o->next_seq);
	shmq_consumer_close(c);
	shmq_close(q);
	S.chk_c = NULL;
	S.chk_q = NULL;
}

/*
 * Recover a copy of IMG and check every invariant against the truth as of
 * this crash point; a second recovery of the recovered copy changes
 * nothing.
 */
static bool check_image(const uint8_t *img, struct outcome *o, bool twice)
{
	struct shmq_hdr h;
	struct outcome b;

	S.in_check = true;
	S.crashes++;
	if (S.tally && setjmp(S.tally_jmp)) {
		tally_cleanup();
		unlink(S.img_path);
		S.in_check = false;
		return false;
	}
	write_file(S.img_path, img, S.size);
	recover_copy(img, o, true);
	S.delivered += o->n;
	memcpy(&h, img, sizeof(h));
	if (o->w_open != h.write_pos)
		S.cut++;
	if (S.released < S.acked &&
	    !(o->n && o->first <= S.released && o->last + 1 >= S.acked))
		failf(img, "ACKNOWLEDGED-DURABLE LOST: seqs [%" PRIu64 ", %" PRIu64
		      ") were acknowledged and not released, recovered %lu messages [%"
		      PRIu64 ", %" PRIu64 "], recovery ends at seq %" PRIu64,
		      S.released, S.acked, o->n, o->n ? o->first : 0,
		      o->n ? o->last : 0, o->next_seq);
	if (pos_before_u(o->next_seq, S.acked))
		failf(img, "SEQUENCE REUSED: recovery ends at seq %" PRIu64 ", below seq %"
		      PRIu64 " which was acknowledged durable (the consumer had released "
		      "it, so it is not lost, but the next messages reuse durable sequence "
		      "numbers)", o->next_seq, S.acked);
	if (twice) {
		/*
		 * The second recovery cuts nothing: it starts where the first
		 * one's session ended (after its END record; one more END if
		 * that close found no room for it).
		 */
		recover_copy(img, &b, false);
		if (!late_ends_only(o->w, b.w_open) || b.next_seq != o->next_seq)
			failf(img, "recovery is not idempotent: write_pos %" PRIu64 " -> %" PRIu64
			      ", next seq %" PRIu64 " -> %" PRIu64, o->w, b.w_open,
			      o->next_seq, b.next_seq);
	}
	unlink(S.img_path);
	S.in_check = false;
	return true;
}

/* The consumer's first seq after the power loss that makes IMG the file. */
static void adopt(const uint8_t *img, const struct outcome *o)
{
	memcpy(S.adopt, img, S.size);
	S.adopt_released = o->n ? o->first : o->next_seq;
	S.pending = true;
}

/* Every combination of the dirty pages' versions, up to EXPLORE_MAX. */
static unsigned candidates(unsigned pg, struct choice *out)
{
	static uint8_t tmp[PAGE];
	uint64_t hash[MAXCAND];
	unsigned n = 0, nv = S.nver[pg];
	struct choice c;

#define ADD(...) do {							\
		c = (struct choice){ __VA_ARGS__ };			\
		if (n < MAXCAND) {					\
			uint64_t hh;					\
			bool dup = false;				\
									\
			compose(pg, &c, tmp);				\
			hh = mix64(h_fnv1a(tmp, PAGE)) ^ h_fnv1a(tmp, PAGE / 2); \
			for (unsigned k = 0; k < n; k++)		\
				dup |= hash[k] == hh;			\
			if (!dup) {					\
				hash[n] = hh;				\
				out[n++] = c;				\
			}						\
		}							\
	} while (0)

	ADD(.kind = C_DISK, .a = 0);
	ADD(.kind = C_MEM, .a = 1);
	for (unsigned v = 0; v < nv; v++)
		ADD(.kind = C_VER, .a = (uint8_t)(2 + v));
	/* Line mixtures of two moments: disk/mem first, then the versions. */
	for (unsigned i = 0; i < 1 + 2 * nv; i++) {
		uint8_t a = i == 0 ? 0 : i <= nv ? 0 : (uint8_t)(2 + i - nv - 1);
		uint8_t b = i == 0 ? 1 : i <= nv ? (uint8_t)(2 + i - 1) : 1;
		const uint8_t *pa = version(pg, a), *pb = version(pg, b);
		uint64_t diff = 0;

		for (unsigned l = 0; l < PAGE / LINE; l++)
			if (memcmp(pa + l * LINE, pb + l * LINE, LINE))
				diff |= 1ull << l;
		if (__builtin_popcountll(diff) < 2)
			continue;
		if (__builtin_popcountll(diff) <= 4) {
			for (uint64_t sub = (diff - 1) & diff; sub; sub = (sub - 1) & diff)
				ADD(.kind = C_LINES, .a = a, .b = b, .mask = sub);
		} else {
			for (int k = 0; k < 12; k++) {
				uint64_t sub = rnd() & diff;

				if (sub && sub != diff)
					ADD(.kind = C_LINES, .a = a, .b = b, .mask = sub);
			}
		}
	}
#undef ADD
	return n;
}

static void explore(void)
{
	static struct choice cand[MAXPAGES][MAXCAND];
	struct choice ch[MAXPAGES];
	unsigned nc[MAXPAGES];
	bool dirty[MAXPAGES];
	uint64_t total = 1, n;
	struct outcome o;

	for (unsigned pg = 0; pg < S.npages; pg++) {
		dirty[pg] = page_dirty(pg);
		nc[pg] = dirty[pg] ? candidates(pg, cand[pg]) : 1;
		if (total < (1ull << 40))
			total *= nc[pg];
	}
	/*
	 * All of them when they are few; else every page old or new first
	 * (the simplest images), then a sample of the rest.
	 */
	n = total < EXPLORE_MAX ? total : EXPLORE_MAX;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = i;

		for (unsigned pg = 0; pg < S.npages; pg++) {
			unsigned k;

			if (total <= EXPLORE_MAX) {
				k = (unsigned)(r % nc[pg]);
				r /= nc[pg];
			} else if (i < (1u << S.npages)) {
				k = (unsigned)((i >> pg) & 1) % nc[pg];
			} else {
				k = (unsigned)(rnd() % nc[pg]);
			}
			ch[pg] = dirty[pg] ? cand[pg][k] : (struct choice){ 0 };
		}
		build_image(ch, dirty);
		check_image(S.img, &o, true);
		S.explored++;
	}
}

static void crash_point(const char *where)
{
	struct choice ch[MAXPAGES];
	bool dirty[MAXPAGES];
	struct outcome o;

	if (!S.active || S.in_check || S.pending || !S.map)
		return;
	S.now++;
	snapshot();
	S.where = where;
	if (S.explore) {
		if (!S.explore_at || !strcmp(where, S.explore_at))
			explore();
		return;
	}
	if (!S.budget || !S.check_one_in || rnd() % S.check_one_in)
		return;
	S.budget--;
	for (unsigned pg = 0; pg < S.npages; pg++) {
		dirty[pg] = page_dirty(pg);
		if (dirty[pg])
			ch[pg] = random_choice(pg);
	}
	build_image(ch, dirty);
	if (check_image(S.img, &o, rnd() % 4 == 0) &&
	    S.adopt_one_in && rnd() % S.adopt_one_in == 0)
		adopt(S.img, &o);
}

static void on_kill_point(const char *name)
{
	crash_point(name);
}

/* The failed msync wrote some of its pages; which ones, nobody knows. */
static int inject_failure(size_t off, size_t len, bool none)
{
	for (size_t pg = off / PAGE; pg * PAGE < off + len; pg++)
		if (!none && (rnd() & 1))
			model_write(pg * PAGE, PAGE);
	S.dur_failed = true;
	S.fail_op = S.ops;
	S.frozen_set = false;
	S.injected++;
	TRACE("msync of [%zu, %zu) FAILS (injected)", off, off + len);
	crash_point("msync:failed");
	errno = rnd() % 4 ? EIO : ENOSPC;
	return -1;
}

/*
 * No real msync: the images come from memory and the model, so flushing
 * the test directory's disk would only cost time (an MS_SYNC on ext4 is a
 * device flush). The arguments are checked as the kernel checks them.
 */
static int fake_msync(void *addr, size_t len, int flags)
{
	if (((uintptr_t)addr & (PAGE - 1)) || (flags & ~(MS_SYNC | MS_ASYNC |
	    MS_INVALIDATE)) || ((flags & MS_SYNC) && (flags & MS_ASYNC))) {
		errno = EINVAL;
		return -1;
	}
	(void)len;
	return 0;
}

int __wrap_msync(void *addr, size_t len, int flags)
{
	uint8_t *a = addr;
	size_t off;
	int r;

	if (!S.active || S.in_check || S.pending || !S.map ||
	    a < S.map || a + len > S.map + S.size)
		return fake_msync(addr, len, flags);
	off = (size_t)(a - S.map);
	crash_point("msync:before");
	if (S.pending)
		return fake_msync(addr, len, flags);
	if (S.fail_next) {
		S.fail_next = false;
		return inject_failure(off, len, true);
	}
	if (S.fail_one_in && !S.dur_failed && rnd() % S.fail_one_in == 0)
		return inject_failure(off, len, false);
	r = fake_msync(addr, len, flags);
	if (r == 0)
		model_write(off, len);
	crash_point("msync:after");
	return r;
}

/* ---- the driver ----------------------------------------------------- */

static void invalidate_from(uint64_t seq, uint64_t end)
{
	for (uint64_t s = seq; s != end + 1 && s - seq < WIN; s++)
		if (S.tl[s % WIN].seq == s)
			S.tl[s % WIN].valid = false;
}

static void open_producer(void)
{
	int err;

	S.run++;
	err = shmq_producer_open(S.q, &S.po, &S.p);
	if (S.pending)
		return;		/* crashed during recovery: power_loss() again */
	if (err)
		failf(NULL, "producer open: %s (%s)", shmq_strerror(err),
		      shmq_errdetail());
}

static void setup_queue(void)
{
	/* A disk's coverage, pinned: $TMPDIR may be tmpfs (header-only). */
	struct shmq_config cfg = { .capacity = CAP, .max_message = MAXMSG,
				   .slots = SLOTS, .checksum = SHMQ_CHECKSUM_FULL };
	struct shmq_consumer_opts oo = { .kind = SHMQ_CONSUMER_OBSERVER };
	struct shmq_consumer_opts co = { .name = "c" };
	struct shmq_consumer *obs[C_SLOT];
	struct shmq_stat *st;
	const void *addr;
	size_t len;
	bool found = false;

	S.active = false;
	S.seg++;
	S.segs++;
	S.run = 0;
	unlink(S.path);
	cr_assert_eq(shmq_create(S.path, &cfg), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_open(S.path, 0, NULL, &S.q), 0, "%s", shmq_errdetail());
	/* Observers take the first slots, so that c's lies on page 2. */
	for (unsigned i = 0; i < C_SLOT; i++)
		cr_assert_eq(shmq_consumer_open(S.q, &oo, &obs[i]), 0, "%s",
			     shmq_errdetail());
	cr_assert_eq(shmq_consumer_open(S.q, &co, &S.c), 0, "%s", shmq_errdetail());
	for (unsigned i = 0; i < C_SLOT; i++)
		shmq_consumer_close(obs[i]);
	shmq_map_range(S.q, &addr, &len);
	S.map = (uint8_t *)addr;
	S.size = len;
	S.npages = (unsigned)(len / PAGE);
	cr_assert(len % PAGE == 0 && S.npages <= MAXPAGES, "file of %zu bytes", len);
	st = stat_of(S.q);
	S.data_off = st->file_size - st->capacity;
	for (uint32_t i = 0; i < st->nconsumers; i++)
		found |= st->consumers[i].slot == C_SLOT;
	shmq_stat_free(st);
	cr_assert(found, "the consumer is not in slot %u", C_SLOT);
	cr_assert_geq(S.data_off, 2 * PAGE, "header and slots span one page only");
	open_producer();
	st = stat_of(S.q);
	S.next = S.acked = S.released = st->next_seq;
	shmq_stat_free(st);
	memset(S.tl, 0, sizeof(S.tl));
	clear_versions();
	S.dur_failed = false;
	S.frozen_set = false;
	/* The disk starts as the file is now, synced. */
	memcpy(S.disk, S.map, S.size);
	S.active = true;
}

static void teardown_queue(void)
{
	S.active = false;
	shmq_producer_close(S.p);
	shmq_consumer_close(S.c);
	shmq_close(S.q);
	S.p = NULL;
	S.c = NULL;
	S.q = NULL;
	S.map = NULL;
}

static void sim_begin(int mode, uint64_t seed)
{
	const char *env = getenv("SHMQ_POWERLOSS_SEED");

	memset(&S, 0, sizeof(S));
	S.rng = seed ? seed : env ? strtoull(env, NULL, 0) : (h_now_ns() | 1);
	if (!S.rng)
		S.rng = 1;
	S.seed0 = S.rng;
	S.seed = rnd();
	S.tally = getenv("SHMQ_POWERLOSS_TALLY") != NULL;
	S.trace = getenv("SHMQ_POWERLOSS_TRACE") != NULL;
	S.mode = mode;
	S.po.sync_mode = (uint32_t)mode;
	S.po.sync_every_n = 5;
	S.path = strdup(h_path("q"));
	S.img_path = strdup(h_path("img"));
	shmqi_kill_hook = on_kill_point;
	fprintf(stderr, "powerloss mode %s: seed %#" PRIx64 "\n", mode_name(mode), S.seed0);
	setup_queue();
}

static void sim_end(const char *name)
{
	teardown_queue();
	shmqi_kill_hook = NULL;
	printf("powerloss %s, mode %s, seed %#" PRIx64 ": %lu images checked "
	       "(%lu explored), %lu cut, %lu power losses continued from, %lu segments, "
	       "%lu producer restarts (%lu after a failed send), %lu full, "
	       "%lu msync failures, %lu delivered after recovery, %lu sent, "
	       "%lu failing images\n",
	       name, mode_name(S.mode), S.seed0, S.crashes, S.explored, S.cut,
	       S.power_losses, S.segs, S.restarts, S.restarts_after_full, S.fulls,
	       S.injected, S.delivered, S.sent,
	       S.fails_lost + S.fails_stale + S.fails_reused + S.fails_other);
	fflush(stdout);
	free(S.path);
	free(S.img_path);
	if (S.fails_lost + S.fails_stale + S.fails_reused + S.fails_other)
		cr_assert_fail("powerloss %s, seed %#" PRIx64 ": %lu failing images: "
			       "%lu acknowledged-durable lost, %lu stale, %lu sequence reused, "
			       "%lu other (%lu of all with a mixed tail_pos/tail_seq)",
			       name, S.seed0, S.fails_lost + S.fails_stale + S.fails_reused +
			       S.fails_other, S.fails_lost, S.fails_stale, S.fails_reused,
			       S.fails_other, S.fails_mixed_tail);
}

/*
 * The power loss happens: the file becomes the adopted image, the disk
 * holds exactly that, and a new producer incarnation recovers it (its
 * recovery has crash points of its own: a second loss redoes this).
 */
static void power_loss(void)
{
	/* The send under way at the crash may have made it. */
	uint64_t old_next = S.next + S.inflight;

	S.inflight = false;
	while (S.pending) {
		struct shmq_consumer_opts co = { .name = "c" };
		struct shmq_stat *st;
		const void *addr;
		size_t len;
		int err;

		S.pending = false;
		S.active = false;
		S.power_losses++;
		TRACE("POWER LOSS at %s, image:%s", S.where, S.desc);
		shmq_producer_close(S.p);
		shmq_consumer_close(S.c);
		shmq_close(S.q);
		S.p = NULL;
		S.c = NULL;
		S.map = NULL;
		write_file(S.path, S.adopt, S.size);
		memcpy(S.disk, S.adopt, S.size);
		clear_versions();
		S.released = S.adopt_released;
		err = shmq_open(S.path, 0, NULL, &S.q);
		if (err)
			failf(S.adopt, "open after a power loss: %s (%s)",
			      shmq_strerror(err), shmq_errdetail());
		shmq_map_range(S.q, &addr, &len);
		S.map = (uint8_t *)addr;
		S.active = true;
		S.where = "recovery after a power loss";
		open_producer();
		if (S.pending)
			continue;
		err = shmq_consumer_open(S.q, &co, &S.c);
		if (err)
			failf(NULL, "consumer open after a power loss: %s (%s)",
			      shmq_strerror(err), shmq_errdetail());
		st = stat_of(S.q);
		S.next = st->next_seq;
		shmq_stat_free(st);
		if (pos_before_u(old_next, S.next))
			failf(NULL, "recovery after a power loss ends at seq %" PRIu64
			      ", past the last one sent (%" PRIu64 ")", S.next, old_next);
		invalidate_from(S.next, old_next);
		S.dur_failed = shmq_sync_error(S.q) != 0;
		TRACE("recovered: next seq %" PRIu64 "%s", S.next,
		      S.dur_failed ? ", durability failed" : "");
		S.frozen_set = false;
	}
}

/* After the durability failed: durable_pos never moves again. */
static void check_frozen(void)
{
	struct shmq_stat *st;

	if (!S.dur_failed)
		return;
	st = stat_of(S.q);
	if (S.frozen_set && st->durable_pos != S.frozen)
		failf(NULL, "durable_pos moved from %" PRIu64 " to %" PRIu64
		      " after an msync failed", S.frozen, st->durable_pos);
	S.frozen = st->durable_pos;
	S.frozen_set = true;
	shmq_stat_free(st);
}

static bool after(const char *where)
{
	crash_point(where);
	if (S.pending) {
		power_loss();
		return true;
	}
	return false;
}

enum { LOST = 1 };

/* Send message S.next of LEN bytes. Returns 0, -errno or LOST. */
static int op_send(uint32_t len, int64_t timeout)
{
	uint8_t msg[MAXMSG];
	uint64_t seq = S.next;
	struct tl_ent *e = &S.tl[seq % WIN];
	int err;

	S.ops++;
	/* Recorded before the call: images taken inside it may hold it. */
	*e = (struct tl_ent){ .seq = seq, .run = S.run, .len = len, .valid = true };
	fill(msg, len, S.run, seq);
	S.inflight = true;
	err = shmq_send(S.p, msg, len, timeout);
	if (S.pending) {
		power_loss();	/* clears inflight */
		return LOST;
	}
	S.inflight = false;
	TRACE("send %u bytes: %d", len, err);
	if (err == -EAGAIN || err == -ETIMEDOUT) {
		S.fulls++;
		return after("after-full") ? LOST : err;
	}
	if (err == 0) {
		S.next++;
		S.sent++;
	} else {
		struct shmq_stat *st = stat_of(S.q);

		/* A sync error after the publish: sent, not durable. */
		if (st->next_seq == seq + 1)
			S.next++;
		shmq_stat_free(st);
		if (!S.dur_failed)
			failf(NULL, "send: %s (%s), and no msync failed",
			      shmq_strerror(err), shmq_errdetail());
	}
	if (S.mode == SHMQ_SYNC_EVERY && err == 0) {
		if (S.dur_failed)
			failf(NULL, "a send in mode every returned 0 after an msync failed");
		S.acked = S.next;
	} else if (S.mode == SHMQ_SYNC_BATCH && err == 0 && !S.dur_failed) {
		struct shmq_stat *st = stat_of(S.q);

		if (st->durable_pos == st->write_pos)
			S.acked = S.next;
		shmq_stat_free(st);
	}
	check_frozen();
	return after("after-send") ? LOST : err;
}

static int op_sync(void)
{
	int err;

	S.ops++;
	err = shmq_sync(S.q);
	if (S.pending) {
		power_loss();
		return LOST;
	}
	TRACE("shmq_sync: %d", err);
	if (err == 0) {
		if (S.dur_failed)
			failf(NULL, "shmq_sync returned 0 after an msync failed");
		S.acked = S.next;
	} else if (!S.dur_failed) {
		failf(NULL, "shmq_sync: %s (%s), and no msync failed",
		      shmq_strerror(err), shmq_errdetail());
	}
	check_frozen();
	return after("after-sync") ? LOST : err;
}

static int op_recv(unsigned k)
{
	uint8_t buf[MAXMSG];
	struct shmq_msg m;
	ssize_t n;

	S.ops++;
	while (k--) {
		const char *bad;

		n = shmq_recv(S.c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		if (n == -EAGAIN)
			break;
		if (n == SHMQ_EOF || n == SHMQ_EDIED || n == SHMQ_EABORTED)
			continue;	/* a session's end: read on */
		if (n < 0)
			failf(NULL, "consumer: %s (%s)", shmq_strerror((int)n),
			      shmq_errdetail());
		bad = check_msg(buf, (size_t)n, m.seq);
		if (bad)
			failf(NULL, "consumer of the live queue: %s", bad);
		if (m.seq != S.released)
			failf(NULL, "consumer of the live queue: seq %" PRIu64 ", expected %" PRIu64,
			      m.seq, S.released);
		S.released = m.seq + 1;
	}
	TRACE("recv");
	return after("after-recv") ? LOST : 0;
}

/*
 * An anonymous consumer reads up to K messages and leaves: floor_pos
 * rises to where it stopped (a consumer that left released that much).
 */
static int op_anon(unsigned k)
{
	struct shmq_consumer *a;
	uint8_t buf[MAXMSG];
	struct shmq_msg m;
	uint64_t last = 0;
	bool any = false;
	ssize_t n;
	int err;

	S.ops++;
	err = shmq_consumer_open(S.q, NULL, &a);
	if (err)
		failf(NULL, "anonymous consumer: %s (%s)", shmq_strerror(err),
		      shmq_errdetail());
	while (k--) {
		const char *bad;

		n = shmq_recv(a, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		if (n == -EAGAIN)
			break;
		if (n == SHMQ_EOF || n == SHMQ_EDIED || n == SHMQ_EABORTED)
			continue;	/* a session's end: read on */
		if (n < 0)
			failf(NULL, "anonymous consumer: %s (%s)",
			      shmq_strerror((int)n), shmq_errdetail());
		bad = check_msg(buf, (size_t)n, m.seq);
		if (bad)
			failf(NULL, "anonymous consumer of the live queue: %s", bad);
		if (any && m.seq != last + 1)
			failf(NULL, "anonymous consumer: seq %" PRIu64 " after %" PRIu64,
			      m.seq, last);
		last = m.seq;
		any = true;
	}
	shmq_consumer_close(a);
	TRACE("anonymous consumer read up to %" PRIu64 " and left", any ? last : 0);
	return after("after-anon") ? LOST : 0;
}

/* A new producer incarnation on the live file: it must cut nothing. */
static int op_restart(void)
{
	struct shmq_stat *st;
	uint64_t w0;
	int err;

	S.ops++;
	S.restarts++;
	err = shmq_producer_close(S.p);
	S.p = NULL;
	if (S.pending) {
		power_loss();
		return LOST;
	}
	TRACE("producer close: %d; reopen", err);
	if (err == 0 && S.mode == SHMQ_SYNC_BATCH && !S.dur_failed)
		S.acked = S.next;
	if (err && !S.dur_failed)
		failf(NULL, "producer close: %s (%s), and no msync failed",
		      shmq_strerror(err), shmq_errdetail());
	if (after("after-close"))
		return LOST;
	st = stat_of(S.q);
	w0 = st->write_pos;
	shmq_stat_free(st);
	open_producer();
	if (S.pending) {
		power_loss();
		return LOST;
	}
	st = stat_of(S.q);
	/*
	 * Nothing moves, but for the END record of the closed session when
	 * the close found no room for it (a full ring): the open writes it,
	 * padded to the ring's start if it does not fit before the end.
	 */
	if (late_ends_only(w0, st->write_pos))
		w0 = st->write_pos;
	if (st->write_pos != w0 || st->next_seq != S.next)
		failf(NULL, "reopen after a clean close moved write_pos %" PRIu64 " -> %" PRIu64
		      ", next seq %" PRIu64 " -> %" PRIu64, w0, st->write_pos, S.next,
		      st->next_seq);
	shmq_stat_free(st);
	return after("after-open") ? LOST : 0;
}

/*
 * The power loss with a chosen image: header and slot pages as FROM_HDR
 * (0 disk, 1 memory), ring pages as FROM_RING. Checked, then adopted.
 */
static void power_loss_pages(unsigned from_hdr, unsigned from_ring)
{
	struct choice ch[MAXPAGES];
	bool dirty[MAXPAGES];
	struct outcome o;

	S.now++;
	S.where = "scripted power loss";
	for (unsigned pg = 0; pg < S.npages; pg++) {
		unsigned v = pg * PAGE < S.data_off ? from_hdr : from_ring;

		dirty[pg] = true;
		ch[pg] = (struct choice){ .kind = v ? C_MEM : C_DISK, .a = (uint8_t)v };
	}
	build_image(ch, dirty);
	cr_assert(check_image(S.img, &o, true));
	adopt(S.img, &o);
	power_loss();
}

static uint32_t random_len(void)
{
	switch (rnd() % 8) {
	case 0:
		return (uint32_t)(rnd() % TAG);
	case 1:
		return MAXMSG;
	default:
		return (uint32_t)(TAG + rnd() % (MAXMSG - TAG + 1));
	}
}

static unsigned long scale(unsigned long n)
{
	const char *s = getenv("SHMQ_TEST_SCALE");
	double v = s ? atof(s) : 1.0;

	return v > 0 ? (unsigned long)(v * (double)n) : n;
}

/*
 * A random run: sends of random sizes (some with a short timeout), a
 * consumer that lags, syncs, producer restarts (some right after a send
 * failed on a full ring), power losses continued from, msync failures.
 */
static void random_run(int mode, unsigned long budget, unsigned fail_one_in)
{
	bool stalled = false;

	sim_begin(mode, 0);
	S.budget = budget;
	S.check_one_in = 8;
	S.adopt_one_in = 100;
	S.fail_one_in = fail_one_in;
	while (S.budget) {
		uint64_t r = rnd() % 64;
		int err;

		if (S.dur_failed && S.ops - S.fail_op > 40) {
			teardown_queue();
			setup_queue();
			continue;
		}
		/* The consumer stalls for a while now and then: the ring fills. */
		if (rnd() % 128 == 0)
			stalled = !stalled;
		if (r == 0) {
			op_restart();
		} else if (r == 1) {
			op_anon((unsigned)(rnd() % 64));
		} else if (r < 5 && mode == SHMQ_SYNC_NONE) {
			op_sync();
		} else if (r < 21) {
			if (!stalled)
				op_recv(1 + (unsigned)(rnd() % 6));
		} else {
			err = op_send(random_len(), rnd() % 16 ? SHMQ_NOWAIT : 200000);
			if (err != -EAGAIN && err != -ETIMEDOUT)
				continue;
			/* Full: restart right away, or the consumer catches up. */
			if (rnd() % 4 == 0) {
				S.restarts_after_full++;
				op_restart();
			} else {
				op_recv(1 + (unsigned)(rnd() % 8));
			}
		}
	}
	sim_end("random run");
}

TestSuite(powerloss, .init = h_setup, .fini = h_teardown, .timeout = 240);

/* ---- issue 12's defects, scripted, the crash images enumerated ------ */

/*
 * Defect 1. Mode none: the ring is full and synced (acknowledged); a
 * consumer that read everything has left (floor_pos: so that recovery has
 * no cursor to clamp and no reason to msync the header); the named
 * consumer releases two messages; a send that still does not fit fails
 * with -EAGAIN after refreshing its limit, which moved tail_pos in memory
 * only. A new producer takes the in-memory tail for the disk's and
 * overwrites, without a header msync, the record the disk still calls the
 * tail. Header page as of the sync + that data page from memory: recovery
 * finds a newer record at the old tail and cuts everything.
 */
Test(powerloss, defect1_restart_after_a_failed_send_then_power_loss_keeps_acked_messages)
{
	int err;

	sim_begin(SHMQ_SYNC_NONE, 0xd1);
	while ((err = op_send(200, SHMQ_NOWAIT)) == 0)
		;
	cr_assert_eq(err, -EAGAIN);
	cr_assert_eq(op_sync(), 0);
	cr_assert_eq(op_anon(1000), 0);		/* floor_pos: everything */
	cr_assert_eq(op_recv(2), 0);
	err = op_send(MAXMSG, SHMQ_NOWAIT);
	cr_assert_eq(err, -EAGAIN, "the send after two releases: %s", shmq_strerror(err));
	cr_assert_eq(op_restart(), 0);
	S.explore = true;
	S.explore_at = "after-send";
	cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	S.explore = false;
	sim_end("defect 1");
}

/*
 * Defect 2. Mode none: 10 messages synced, 10 more sent; power loss 1
 * writes the ring pages back but not the header page, so the next
 * incarnation continues at seq 10 at the same position, over records of
 * the first incarnation that are still on the disk. Power loss 2 writes
 * its header page back but not the data page: the first incarnation's
 * records 10.. come back, checksummed, as new ones.
 */
Test(powerloss, defect2_two_power_losses_never_resurrect_an_older_incarnation)
{
	sim_begin(SHMQ_SYNC_NONE, 0xd2);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	cr_assert_eq(op_sync(), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	power_loss_pages(0, 1);
	cr_assert_eq(S.run, 2, "a new incarnation after the power loss");
	for (int i = 0; i < 9; i++)
		cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	S.explore = true;
	S.explore_at = "after-send";
	cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	S.explore = false;
	sim_end("defect 2");
}

/*
 * Defect 3. Mode every: the ring is full, every message acknowledged; the
 * consumer releases three; the next send moves the tail (tail_seq, then
 * tail_pos: two lines of one page) and syncs the header before it
 * overwrites. A crash during that header msync, with the header page
 * written back by a copy that read tail_pos's line after the stores and
 * tail_seq's before: recovery starts at the new tail with the old
 * tail_seq and cuts everything.
 */
Test(powerloss, defect3_tail_pos_written_back_without_tail_seq_loses_nothing)
{
	int err;

	sim_begin(SHMQ_SYNC_EVERY, 0xd3);
	while ((err = op_send(200, SHMQ_NOWAIT)) == 0)
		;
	cr_assert_eq(err, -EAGAIN);
	cr_assert_eq(op_recv(3), 0);
	S.explore = true;
	S.explore_at = "msync:before";
	cr_assert_eq(op_send(200, SHMQ_NOWAIT), 0);
	S.explore = false;
	sim_end("defect 3");
}

/*
 * Found by the random runs on format 2 (d649b6e). Mode none: power loss 1
 * leaves incarnation 1's records 10..19 on the disk beyond the disk's
 * write_pos; incarnation 2 sends 10..19 again, in memory only; a clean
 * restart opens incarnation 3, whose open msyncs the header (the new
 * incarnation, inc_pos and write_pos covering incarnation 2's records)
 * without the data under it. Power loss 2 right after, data page not
 * written back: incarnation 1's records 10.. lie below inc_pos and come
 * back as incarnation 2's.
 */
Test(powerloss, stale_records_after_a_restart_between_two_power_losses)
{
	sim_begin(SHMQ_SYNC_NONE, 0xd4);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	cr_assert_eq(op_sync(), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(op_send(100, SHMQ_NOWAIT), 0);
	power_loss_pages(0, 1);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(op_send(120, SHMQ_NOWAIT), 0);
	S.explore = true;
	S.explore_at = "after-open";
	cr_assert_eq(op_restart(), 0);
	S.explore = false;
	sim_end("restart between power losses");
}

/*
 * Found by the random runs on format 2 (d649b6e). Mode none: the ring is
 * full and acknowledged by shmq_sync; the consumer releases three; the
 * next send moves the tail and msyncs the header before it overwrites
 * (sync_before_overwrite), and that msync fails. The send goes on ("none
 * never fails a send") and overwrites the record that the disk's header
 * still calls the tail: header as of the sync + that data page from
 * memory, and recovery must cut the acknowledged messages.
 */
Test(powerloss, mode_none_never_overwrites_what_the_disk_calls_live_after_a_failed_msync)
{
	int err;

	sim_begin(SHMQ_SYNC_NONE, 0xd5);
	while ((err = op_send(200, SHMQ_NOWAIT)) == 0)
		;
	cr_assert_eq(err, -EAGAIN);
	cr_assert_eq(op_sync(), 0);
	cr_assert_eq(op_anon(1000), 0);
	cr_assert_eq(op_recv(3), 0);
	S.fail_next = true;
	S.explore = true;
	S.explore_at = "after-send";
	err = op_send(200, SHMQ_NOWAIT);
	S.explore = false;
	cr_assert(S.dur_failed, "the header msync before the overwrite was not tried");
	sim_end("failed msync before an overwrite, mode none");
}

/*
 * Found by the random runs on format 2 (d649b6e). Mode none: the ring is
 * full and acknowledged by shmq_sync, the consumer releases everything,
 * and the next send moves the tail to write_pos and msyncs the header
 * before it overwrites. A crash during that msync with the header page
 * written back by a copy that read tail_pos's line after the stores and
 * tail_seq's before: no record lies at the new tail, so recovery ends
 * there with the old tail_seq, and the next messages reuse the sequence
 * numbers of acknowledged ones.
 */
Test(powerloss, mixed_tail_pair_never_rewinds_below_acknowledged_sequences)
{
	int err;

	sim_begin(SHMQ_SYNC_NONE, 0xd7);
	while ((err = op_send(200, SHMQ_NOWAIT)) == 0)
		;
	cr_assert_eq(err, -EAGAIN);
	cr_assert_eq(op_sync(), 0);
	cr_assert_eq(op_recv(10000), 0);
	S.explore = true;
	S.explore_at = "msync:before";
	cr_assert_eq(op_send(200, SHMQ_NOWAIT), 0);
	S.explore = false;
	sim_end("mixed tail pair after releasing everything");
}

/*
 * Seen on ff4cd37 in the msync-failure runs: a send needs the wrap with
 * fewer than a record header's bytes left before the end of the ring, so
 * the producer skips them (no padding record) and then fails (its sync
 * before overwriting fails); the close publishes the skip alone. The
 * tail sits on the skip. Recovery of this cleanly closed queue must cut
 * nothing.
 */
Test(powerloss, reopen_after_a_failed_send_at_the_ring_end_cuts_nothing)
{
	struct shmq_stat *st;
	uint32_t rec, len, small;
	uint64_t w;
	int err;

	sim_begin(SHMQ_SYNC_EVERY, 0xd6);
	/* Records of REC bytes up to CAP - 8, the last one smaller. */
	len = 100;
	rec = (uint32_t)((sizeof(struct shmq_rec) + len + 7) & ~7ull);
	small = (CAP - 8) % rec;
	cr_assert_geq(small, sizeof(struct shmq_rec), "pick another length");
	for (uint32_t i = 0; i < (CAP - 8) / rec; i++)
		cr_assert_eq(op_send(len, SHMQ_NOWAIT), 0);
	cr_assert_eq(op_send(small - (uint32_t)sizeof(struct shmq_rec), SHMQ_NOWAIT), 0);
	st = stat_of(S.q);
	w = st->write_pos;
	shmq_stat_free(st);
	cr_assert_eq(w % CAP, CAP - 8, "write position %" PRIu64, w);
	cr_assert_eq(op_recv(10000), 0);
	S.fail_next = true;
	err = op_send(len, SHMQ_NOWAIT);
	cr_assert_lt(err, 0, "the send's sync failed, yet it returned 0");
	cr_assert_eq(op_restart(), 0);
	sim_end("failed send at the ring end");
}

/*
 * Mode none looks at durable_claim once per move of the tail, not per
 * record (sync_before_overwrite): a claim it loaded after storing tail T
 * covers the writes up to T + capacity, which overwrite only records
 * below T. Here a sync acknowledges records past T after the producer
 * loaded the claim; the consumer releases them, the tail moves past them,
 * and the sends that overwrite them must first look at the claim again
 * and msync the header: the disk's header (from that sync) still calls
 * them live. Kept for ever, the cached claim lets them be overwritten and
 * recovery cuts the acknowledged messages.
 */
Test(powerloss, mode_none_looks_at_the_claim_again_once_the_tail_moves)
{
	int err;

	sim_begin(SHMQ_SYNC_NONE, 0xd8);
	while ((err = op_send(200, SHMQ_NOWAIT)) == 0)
		;
	cr_assert_eq(err, -EAGAIN);
	cr_assert_eq(op_recv(10000), 0);
	/* The tail moves; the claim (none yet) is loaded and kept. */
	for (int i = 0; i < 5; i++)
		cr_assert_eq(op_send(200, SHMQ_NOWAIT), 0);
	/* Acknowledged past that tail; then released. */
	cr_assert_eq(op_sync(), 0);
	cr_assert_eq(op_recv(10000), 0);
	S.explore = true;
	S.explore_at = "after-send";
	while ((err = op_send(200, SHMQ_NOWAIT)) == 0)
		;
	S.explore = false;
	cr_assert_eq(err, -EAGAIN);
	sim_end("a claim raised after the producer loaded it");
}

/* ---- random runs ---------------------------------------------------- */

Test(powerloss, mode_every_loses_no_acknowledged_message_and_delivers_nothing_stale)
{
	random_run(SHMQ_SYNC_EVERY, scale(10000), 0);
}

Test(powerloss, mode_batch_loses_nothing_synced_and_delivers_nothing_stale)
{
	random_run(SHMQ_SYNC_BATCH, scale(10000), 0);
}

Test(powerloss, mode_none_keeps_what_shmq_sync_acknowledged_and_delivers_nothing_stale)
{
	random_run(SHMQ_SYNC_NONE, scale(10000), 0);
}

Test(powerloss, failed_msyncs_are_never_reported_as_success_in_any_mode)
{
	random_run(SHMQ_SYNC_EVERY, scale(2500), 60);
	random_run(SHMQ_SYNC_BATCH, scale(2500), 60);
	random_run(SHMQ_SYNC_NONE, scale(2500), 60);
}
