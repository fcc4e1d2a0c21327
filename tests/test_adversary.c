/* SPDX-License-Identifier: MIT */
/*
 * Adversarial review of format 2 (d649b6e: incarnation and lap tags,
 * SHMQ_ELOSS, order-independent recovery). Each test builds a crash
 * image by hand from raw file bytes taken at chosen moments ("the disk
 * got this page then, that page now"), or scribbles a header field, and
 * checks what the public API then delivers or refuses.
 *
 * The tests marked DEFECT fail on d649b6e; the others held up and guard
 * against regressions. The queue: 16 KiB ring after a one-page header,
 * 4 slots, so data page k of the ring is file page k + 1.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmq.h"
#include "internal.h"
#include "harness.h"

#define CAP	16384u
#define PG	4096u
#define IMG	(PG + CAP)

/* Injected msync failure (-Wl,--wrap=msync), 0: pass through. */
static int fail_msync;
/*
 * A model of the disk: with model_q set, every range msynced from its
 * mapping is copied into model_disk (what the disk holds for sure).
 */
static struct shmq *model_q;
static uint8_t model_disk[IMG];

int __real_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags)
{
	int ret;

	if (fail_msync) {
		errno = fail_msync;
		return -1;
	}
	ret = __real_msync(addr, len, flags);
	if (ret == 0 && model_q) {
		const void *base;
		size_t mlen, off;

		shmq_map_range(model_q, &base, &mlen);
		off = (size_t)((const uint8_t *)addr - (const uint8_t *)base);
		if (off < IMG && off + len <= IMG)
			memcpy(model_disk + off, addr, len);
	}
	return ret;
}

TestSuite(adversary, .init = h_setup, .fini = h_teardown, .timeout = 30);

static void mk(const char *name, uint32_t max_message)
{
	/*
	 * Full checksums, pinned: these tests model a disk that lost bytes
	 * of records' payloads, which only payload checksums can see. The
	 * default would be header-only where $TMPDIR is tmpfs
	 * (docs/decisions.md, "Integrity where it buys something").
	 */
	struct shmq_config cfg = { .capacity = CAP, .max_message = max_message,
				   .slots = 4, .checksum = SHMQ_CHECKSUM_FULL };

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0, "%s", shmq_errdetail());
}

static struct shmq *openq(const char *name)
{
	struct shmq *q;

	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0, "%s",
		     shmq_errdetail());
	cr_assert_eq(q->g.data_off, PG);
	return q;
}

static struct shmq_producer *prod(struct shmq *q, uint32_t flags)
{
	struct shmq_producer_opts o = { .flags = flags };
	struct shmq_producer *p;

	cr_assert_eq(shmq_producer_open(q, &o, &p), 0, "%s", shmq_errdetail());
	return p;
}

/* Messages "inc I msg N", padded with '.' to LEN bytes (0: no padding). */
static void send_tag(struct shmq_producer *p, int inc, int from, int n,
		     size_t len)
{
	char buf[1024];

	for (int i = from; i < from + n; i++) {
		size_t l;

		memset(buf, '.', sizeof(buf));
		l = (size_t)snprintf(buf, sizeof(buf), "inc %d msg %d", inc, i) + 1;
		if (len > l)
			l = len;
		cr_assert_eq(shmq_send(p, buf, l, SHMQ_NOWAIT), 0, "%s",
			     shmq_errdetail());
	}
}

/*
 * Everything a consumer of KIND delivers from the oldest record, tags
 * joined by '|'; the last status in *LAST.
 */
static void read_all(struct shmq *q, uint32_t kind, uint32_t flags,
		     char *out, size_t cap, ssize_t *last)
{
	struct shmq_consumer_opts o = { .kind = kind, .flags = flags };
	struct shmq_consumer *c;
	char buf[1024];
	ssize_t n;

	out[0] = 0;
	cr_assert_eq(shmq_consumer_open(q, &o, &c), 0, "%s", shmq_errdetail());
	/* Across session ends (each one "E|"), up to what is there. */
	while ((n = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT)) > 0 ||
	       n == SHMQ_EOF || n == SHMQ_EDIED || n == SHMQ_EABORTED) {
		strncat(out, n > 0 ? buf : "E", cap - strlen(out) - 2);
		strcat(out, "|");
	}
	*last = n;
	shmq_consumer_close(c);
}

static void peek_img(const char *name, uint8_t *img)
{
	cr_assert_eq(h_peek_file(h_path(name), 0, img, IMG), 0);
}

static void poke_img(const char *name, const uint8_t *img)
{
	cr_assert_eq(h_poke(h_path(name), 0, img, IMG), 0);
}

static uint64_t hdr64(const uint8_t *img, size_t off)
{
	uint64_t v;

	memcpy(&v, img + off, 8);
	return v;
}

/*
 * The crash image of the second power loss in issue 12 item 2, reached
 * the way a disk gets there (no byte is scribbled):
 *   1. incarnation 1 sends 20 messages; the disk gets the header page
 *      while only 10 are published, then the data page with all 20;
 *      power loss 1. Recovery keeps 0..9 (the header's write_pos ends
 *      there) and incarnation 2 starts at message 10's position.
 *   2. incarnation 2 sends 10'..14' (same sizes, so the same positions
 *      and sequences); its header page reaches the disk, its data page
 *      does not: power loss 2. The disk's data page still holds
 *      incarnation 1's 10..19, each with a valid checksum, its lap and
 *      the sequence the chain expects.
 */
static void two_power_losses(const char *name)
{
	static uint8_t img_a[IMG], img[IMG];
	struct shmq *q;
	struct shmq_producer *p;
	uint64_t w10;

	mk(name, 512);
	q = openq(name);
	p = prod(q, 0);
	send_tag(p, 1, 0, 10, 0);
	peek_img(name, img);	/* the header page as of 10 messages */
	w10 = hdr64(img, offsetof(struct shmq_hdr, write_pos));
	send_tag(p, 1, 10, 10, 0);
	shmq_producer_close(p);
	shmq_close(q);
	peek_img(name, img_a);	/* the data page as of 20 messages */
	/* Power loss 1: header page of step 1, data page of now. */
	memcpy(img_a, img, PG);
	poke_img(name, img_a);

	q = openq(name);
	p = prod(q, 0);		/* recovery: the chain ends at w10 */
	/* ... followed by the END record of the session that died there. */
	cr_assert_eq(hdr64((uint8_t *)q->hdr, offsetof(struct shmq_hdr, write_pos)),
		     w10 + shmqi_rec_size(sizeof(struct shmq_end)));
	send_tag(p, 2, 10, 5, 0);
	shmq_producer_close(p);
	shmq_close(q);
	/* Power loss 2: header page of now, data pages of power loss 1. */
	peek_img(name, img);
	memcpy(img + PG, img_a + PG, CAP);
	poke_img(name, img);
}

/*
 * DEFECT: a consumer that attaches after the second power loss and
 * before any producer reopens reads the ring as the disk left it:
 * recovery would reject incarnation 1's records at and after inc_pos,
 * but consumers never look at a record's incarnation, so messages 10..14
 * of incarnation 1 are delivered as new (with the sequence numbers of
 * 10'..14'). Consumers start on their own after a reboot (systemd units,
 * `shmq get`); nothing makes them wait for a producer's recovery.
 * Fix: apply recovery's incarnation rule in shmqi_rec_view() or the
 * consumer's read path too (a record at or after hdr.inc_pos must carry
 * hdr.incarnation; none may carry a newer one), or have a consumer that
 * finds the producer dead refuse to read past the last recovered
 * write_pos (e.g. until the incarnation's header is known recovered).
 */
Test(adversary, consumer_before_restart_never_gets_an_older_incarnation)
{
	char got[4096];
	struct shmq *q;
	ssize_t last;

	two_power_losses("a1");
	q = openq("a1");
	read_all(q, SHMQ_CONSUMER_BROADCAST, 0, got, sizeof(got), &last);
	shmq_close(q);
	cr_assert(strstr(got, "inc 1 msg 9|"), "%.400s", got);
	cr_assert_eq(strstr(got, "inc 1 msg 10|"), NULL,
		     "a consumer got incarnation 1's message 10 as new (status %zd): %.400s",
		     last, got);
}

/* Held up: the same image through a producer's recovery first. */
Test(adversary, two_power_losses_then_recovery_drops_the_older_incarnation)
{
	char got[4096];
	struct shmq *q;
	struct shmq_producer *p;
	ssize_t last;

	two_power_losses("a2");
	q = openq("a2");
	p = prod(q, 0);
	shmq_producer_close(p);
	read_all(q, SHMQ_CONSUMER_BROADCAST, 0, got, sizeof(got), &last);
	shmq_close(q);
	cr_assert(strstr(got, "inc 1 msg 9|"), "%.400s", got);
	cr_assert_eq(strstr(got, "inc 1 msg 10|"), NULL, "%.400s", got);
	cr_assert_eq(last, -EAGAIN, "%zd", last);	/* after the ends */
}

/*
 * One power loss with a torn, never-acknowledged tail: messages 0..9
 * (page 1) were made durable by shmq_sync; 10..19 (pages 2..3) were
 * published and the header page carrying them reached the disk, their
 * data pages did not. Recovery must cut 10..19 without SHMQ_ELOSS.
 */
static void torn_unacked_tail(const char *name)
{
	static uint8_t synced[IMG], now[IMG];
	struct shmq *q;
	struct shmq_producer *p;

	mk(name, 512);
	q = openq(name);
	p = prod(q, 0);
	send_tag(p, 1, 0, 10, 360);	/* 392-byte records: 0..9 in page 1 */
	cr_assert_eq(shmq_sync(q), 0);
	peek_img(name, synced);		/* what the disk holds now */
	send_tag(p, 1, 10, 10, 360);
	shmq_producer_close(p);
	shmq_close(q);
	peek_img(name, now);
	/* The disk: the header page of now, data pages of the sync. */
	memcpy(synced, now, PG);
	poke_img(name, synced);
}

/* Held up: without anyone else touching the file, no SHMQ_ELOSS. */
Test(adversary, torn_unacknowledged_tail_is_cut_without_eloss)
{
	char got[8192];
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_producer_opts o = { 0 };
	ssize_t last;
	int ret;

	torn_unacked_tail("b1");
	q = openq("b1");
	ret = shmq_producer_open(q, &o, &p);
	cr_assert_eq(ret, 0, "%d %s", ret, shmq_errdetail());
	shmq_producer_close(p);
	read_all(q, SHMQ_CONSUMER_BROADCAST, 0, got, sizeof(got), &last);
	shmq_close(q);
	cr_assert(strstr(got, "inc 1 msg 9|"), "%.200s", got);
	cr_assert_eq(strstr(got, "inc 1 msg 10|"), NULL, "%.200s", got);
}

/*
 * DEFECT: after that power loss, a `shmq sync PATH` (any process's
 * shmq_sync) before the producer restarts msyncs the torn, unrecovered
 * records and raises durable_claim and durable_pos over them. The next
 * producer open then refuses with SHMQ_ELOSS ("acknowledged as
 * durable"), although nothing acknowledged went: the operator is pushed
 * to --accept-loss and stat reports that durable data went. The same
 * sync also let durable consumers read up to the unrecovered write_pos.
 * Fix: shmq_sync must not claim records that no live producer published
 * since the last recovery: e.g. when the producer role is free (lock
 * byte not held) and the producer did not close cleanly, sync without
 * raising durable_claim/durable_pos, or validate [durable_pos, write_pos)
 * with recovery's walk and claim only the valid prefix.
 */
Test(adversary, sync_before_restart_does_not_turn_a_torn_tail_into_eloss)
{
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_producer_opts o = { 0 };
	int ret;

	torn_unacked_tail("b2");
	q = openq("b2");
	(void)shmq_sync(q);		/* the operator's `shmq sync` */
	ret = shmq_producer_open(q, &o, &p);
	cr_assert_eq(ret, 0,
		     "only never-acknowledged records were torn, yet: %d (%s) %s",
		     ret, shmq_strerror(ret), shmq_errdetail());
	shmq_producer_close(p);
	shmq_close(q);
}

/*
 * DEFECT, same cause, no operator needed: a durable consumer started
 * after the reboot finds the producer dead and the rest "not durable",
 * and syncs it itself (consumer.c, check_end): it claims the torn tail,
 * then the producer cannot restart without --accept-loss.
 */
Test(adversary, durable_consumer_before_restart_does_not_cause_eloss)
{
	char got[8192];
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_producer_opts o = { 0 };
	ssize_t last;
	int ret;

	torn_unacked_tail("b3");
	q = openq("b3");
	read_all(q, SHMQ_CONSUMER_BROADCAST, SHMQ_CONSUMER_DURABLE, got,
		 sizeof(got), &last);
	cr_assert(strstr(got, "inc 1 msg 9|"), "%.200s", got);
	ret = shmq_producer_open(q, &o, &p);
	cr_assert_eq(ret, 0,
		     "a durable reader's self-sync claimed the torn tail: %d (%s) %s",
		     ret, shmq_strerror(ret), shmq_errdetail());
	shmq_producer_close(p);
	shmq_close(q);
}

/*
 * DEFECT: incarnations are compared as plain integers. When the 32-bit
 * counter wraps (2^32 producer opens, or a header that carries a high
 * incarnation), incarnation 0 follows 0xffffffff and the next recovery
 * rejects every older record (v->inc > inc): process restarts alone, no
 * power loss, silently cut every committed message (mode none: nothing
 * was synced, so not even SHMQ_ELOSS). Fix: compare incarnations by
 * difference ((int32_t)(a - b) < 0, as positions are), or refuse a
 * producer open with a clear error once the counter would wrap.
 */
Test(adversary, incarnation_wrap_loses_nothing_on_process_restarts)
{
	char got[4096];
	uint32_t inc = 0xfffffffeu;
	struct shmq *q;
	struct shmq_producer *p;
	ssize_t last;

	mk("c1", 512);
	cr_assert_eq(h_poke(h_path("c1"), offsetof(struct shmq_hdr, incarnation),
			    &inc, sizeof(inc)), 0);
	q = openq("c1");
	p = prod(q, 0);			/* incarnation 0xffffffff */
	send_tag(p, 1, 0, 5, 0);
	shmq_producer_close(p);
	p = prod(q, 0);			/* incarnation 0 */
	send_tag(p, 2, 5, 5, 0);
	shmq_producer_close(p);
	p = prod(q, 0);			/* recovery with incarnation 0 */
	shmq_producer_close(p);
	read_all(q, SHMQ_CONSUMER_BROADCAST, 0, got, sizeof(got), &last);
	shmq_close(q);
	cr_assert(strstr(got, "inc 1 msg 0|") && strstr(got, "inc 2 msg 9|"),
		  "restarts across the incarnation wrap lost: %.300s (status %zd)",
		  got, last);
}

/*
 * Was a DEFECT (documentation against code): include/shmq.h said
 * shmq_producer_open returns the header msync's error; the open records
 * it (sticky "durability failed") and succeeds. The header now says so,
 * and this checks both halves.
 */
Test(adversary, producer_open_reports_a_failed_header_msync_as_documented)
{
	struct shmq *q;
	struct shmq_producer *p = NULL;
	struct shmq_producer_opts o = { 0 };
	int ret;

	mk("d1", 512);
	q = openq("d1");
	fail_msync = EIO;
	ret = shmq_producer_open(q, &o, &p);
	fail_msync = 0;
	cr_assert_eq(shmq_sync_error(q), -EIO);
	if (p)
		shmq_producer_close(p);
	shmq_close(q);
	/* Resolved by documenting: the open succeeds, the failure sticks. */
	cr_assert_eq(ret, 0, "producer_open returned %d after its msync failed",
		     ret);
}

/* Held up: a refused recovery (SHMQ_ELOSS) leaves every byte as it was. */
Test(adversary, eloss_leaves_the_file_unchanged)
{
	static uint8_t before[IMG], after[IMG];
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_producer_opts o = { 0 };
	uint64_t off;
	char x = 'X';
	int ret;

	mk("e1", 512);
	q = openq("e1");
	p = prod(q, 0);
	send_tag(p, 1, 0, 20, 0);
	cr_assert_eq(shmq_sync(q), 0);
	shmq_producer_close(p);
	shmq_close(q);
	/* The disk lost a byte of an acknowledged record's payload. */
	peek_img("e1", before);
	off = PG + (hdr64(before, offsetof(struct shmq_hdr, tail_pos)) & (CAP - 1));
	cr_assert_eq(h_poke(h_path("e1"), (off_t)off + 40, &x, 1), 0);
	peek_img("e1", before);
	q = openq("e1");
	ret = shmq_producer_open(q, &o, &p);
	cr_assert_eq(ret, SHMQ_ELOSS, "%d %s", ret, shmq_errdetail());
	shmq_close(q);
	peek_img("e1", after);
	cr_assert_eq(memcmp(before, after, IMG), 0);
}

/*
 * Held up: scribbled recovery inputs give a clean status, never a crash,
 * a hang, or a record that was never sent. Each field of a synced queue
 * with 20 messages gets hostile values; then a producer opens (0, ELOSS
 * or -EBADMSG) and a consumer reads.
 */
Test(adversary, scribbled_recovery_fields_give_clean_errors)
{
	static uint8_t base[IMG];
	static const struct { size_t off, len; } f[] = {
		{ offsetof(struct shmq_hdr, incarnation), 4 },
		{ offsetof(struct shmq_hdr, inc_pos), 8 },
		{ offsetof(struct shmq_hdr, durable_claim), 8 },
		{ offsetof(struct shmq_hdr, durable_pos), 8 },
		{ offsetof(struct shmq_hdr, durable_seq), 8 },
		{ offsetof(struct shmq_hdr, tail_seq), 8 },
		{ offsetof(struct shmq_hdr, tail_pos), 8 },
		{ offsetof(struct shmq_hdr, write_pos), 8 },
		{ offsetof(struct shmq_hdr, pub_seq), 8 },
		{ PG + 16, 4 },		/* first record's inc */
		{ PG + 20, 4 },		/* first record's lap */
	};
	static const uint64_t vals[] = { 0, 1, 8, 0xffffffffull, 0x7fffffffffffffffull,
					 0xfffffffffffffff8ull, 0x8000000000000000ull,
					 16384, 16392 };
	struct shmq *q;
	struct shmq_producer *p;
	struct shmq_producer_opts o = { 0 };
	char got[4096];
	ssize_t last;
	int ret;

	mk("f1", 512);
	q = openq("f1");
	p = prod(q, 0);
	send_tag(p, 1, 0, 20, 0);
	cr_assert_eq(shmq_sync(q), 0);
	shmq_producer_close(p);
	shmq_close(q);
	peek_img("f1", base);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		for (size_t j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
			poke_img("f1", base);
			cr_assert_eq(h_poke(h_path("f1"), (off_t)f[i].off, &vals[j],
					    f[i].len), 0);
			q = openq("f1");
			o.flags = (j & 1) ? SHMQ_PRODUCER_ACCEPT_LOSS : 0;
			ret = shmq_producer_open(q, &o, &p);
			cr_assert(ret == 0 || ret == SHMQ_ELOSS || ret == -EBADMSG,
				  "field %zu value %zu: %d %s", i, j, ret,
				  shmq_errdetail());
			if (ret == 0)
				shmq_producer_close(p);
			read_all(q, SHMQ_CONSUMER_OBSERVER, 0, got, sizeof(got),
				 &last);
			for (char *s = got; *s; s = strchr(s, '|') + 1)
				cr_assert(!strncmp(s, "inc 1 msg ", 10) ||
					  !strncmp(s, "E|", 2),
					  "field %zu value %zu: %.100s", i, j, s);
			shmq_close(q);
		}
	}
}

/*
 * Held up (issue 12 item 1): a send refused with -EAGAIN moved tail_pos
 * in memory without a header msync; the producer is restarted; the new
 * one overwrites what the disk's header still calls the tail; power
 * loss with every data page written and the header page only as of its
 * last msync. Every acknowledged message the named consumer had not
 * released must come back, without SHMQ_ELOSS.
 */
Test(adversary, restart_after_eagain_then_power_loss_keeps_acked_messages)
{
	static uint8_t img[IMG];
	struct shmq_consumer_opts co = { .name = "c" };
	struct shmq *q, *q2;
	struct shmq_producer *p;
	struct shmq_consumer *c;
	char buf[1024], want[32];
	int sent = 0, got, ret;
	ssize_t n;

	mk("g1", 1024);
	q = openq("g1");
	model_q = q;
	peek_img("g1", model_disk);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	p = prod(q, 0);
	for (;;) {
		snprintf(buf, sizeof(buf), "inc 1 msg %d", sent);
		ret = shmq_send(p, buf, 40, SHMQ_NOWAIT);
		if (ret == -EAGAIN)
			break;
		cr_assert_eq(ret, 0);
		sent++;
	}
	/* Released: 0..9; acknowledged durable: everything sent. */
	for (got = 0; got < 11; got++)
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 40);
	got = 10;	/* the 11th is read, not released */
	cr_assert_eq(shmq_sync(q), 0);
	/* A large send refreshes the limit (tail moves), then fails. */
	cr_assert_eq(shmq_send(p, buf, 1000, SHMQ_NOWAIT), -EAGAIN);
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
	/* The restarted producer writes small records over the old tail. */
	q = openq("g1");
	model_q = q;
	p = prod(q, 0);
	for (int i = 0; i < 60; i++) {
		snprintf(buf, sizeof(buf), "inc 2 msg %d", sent + i);
		ret = shmq_send(p, buf, 40, SHMQ_NOWAIT);
		if (ret == -EAGAIN)
			break;
		cr_assert_eq(ret, 0);
	}
	model_q = NULL;
	shmq_producer_close(p);
	shmq_close(q);
	/* Power loss: header page as last msynced, data pages of now. */
	peek_img("g1", img);
	memcpy(img, model_disk, PG);
	poke_img("g1", img);
	q2 = openq("g1");
	ret = shmq_producer_open(q2, NULL, &p);
	cr_assert_eq(ret, 0, "%d %s", ret, shmq_errdetail());
	shmq_producer_close(p);
	cr_assert_eq(shmq_consumer_open(q2, &co, &c), 0);
	/* It resumes at 10 or 11 (it had read 10 when it closed). */
	n = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT);
	cr_assert_eq(n, 40, "%zd %s", n, shmq_errdetail());
	cr_assert(sscanf(buf, "inc 1 msg %d", &got) == 1 &&
		  (got == 10 || got == 11), "%s", buf);
	for (int i = got + 1; i < sent; i++) {
		n = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT);
		snprintf(want, sizeof(want), "inc 1 msg %d", i);
		cr_assert_eq(n, 40, "acked message %d lost: %zd %s", i, n,
			     shmq_errdetail());
		cr_assert_str_eq(buf, want);
	}
	shmq_consumer_close(c);
	shmq_close(q2);
}

/* Held up (issue 12 item 4): a read-only handle's sync is refused. */
Test(adversary, read_only_sync_is_refused)
{
	struct shmq *q;

	mk("h1", 512);
	cr_assert_eq(shmq_open(h_path("h1"), SHMQ_OPEN_RDONLY, NULL, &q), 0);
	cr_assert_eq(shmq_sync(q), -EROFS);
	shmq_close(q);
}
