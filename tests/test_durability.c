/* SPDX-License-Identifier: MIT */
/*
 * Durability clauses, one test each: sync modes raise the watermark, a
 * failing msync (injected by -Wl,--wrap=msync) sticks as "durability
 * failed" and is never reported as success again (F13), durable-only
 * consumers, recovery cutting a torn tail and clamping cursors (F14,
 * F15), a full disk at create (F12: a tiny tmpfs when mount works, else
 * posix_fallocate wrapped to fail).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "internal.h"
#include "harness.h"

static int fail_msync;		/* errno to inject, 0: pass through */
static int fail_fallocate;
int __real_posix_fallocate64(int fd, off_t off, off_t len);

int __real_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags);
int __wrap_msync(void *addr, size_t len, int flags)
{
	if (fail_msync) {
		errno = fail_msync;
		return -1;
	}
	return __real_msync(addr, len, flags);
}

/* _FILE_OFFSET_BITS=64 (meson's default) calls the 64 variant. */
int __wrap_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len)
{
	if (fail_fallocate)
		return fail_fallocate;
	return __real_posix_fallocate64(fd, off, len);
}

int __real_posix_fallocate(int fd, off_t off, off_t len);
int __wrap_posix_fallocate(int fd, off_t off, off_t len);
int __wrap_posix_fallocate(int fd, off_t off, off_t len)
{
	if (fail_fallocate)
		return fail_fallocate;
	return __real_posix_fallocate(fd, off, len);
}

static struct shmq *mkq(const char *name)
{
	/* A disk's coverage, pinned: $TMPDIR may be tmpfs (header-only). */
	struct shmq_config cfg = { .capacity = 16384, .max_message = 512,
				   .checksum = SHMQ_CHECKSUM_FULL };
	struct shmq *q;

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0);
	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	return q;
}

static void send_n(struct shmq_producer *p, int n)
{
	char buf[64];

	for (int i = 0; i < n; i++) {
		memset(buf, i, sizeof(buf));
		cr_assert_eq(shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT), 0,
			     "%s", shmq_errdetail());
	}
}

TestSuite(durability, .init = h_setup, .fini = h_teardown, .timeout = 20);

Test(durability, mode_every_makes_each_send_durable_before_it_returns)
{
	struct shmq_producer_opts po = { .sync_mode = SHMQ_SYNC_EVERY };
	struct shmq *q = mkq("q");
	struct shmq_producer *p;

	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	for (int i = 0; i < 5; i++) {
		send_n(p, 1);
		cr_assert_eq(load_acquire(&q->hdr->durable_pos),
			     load_acquire(&q->hdr->write_pos));
	}
	shmq_producer_close(p);
	shmq_close(q);
}

Test(durability, mode_batch_syncs_every_n_messages_and_at_close)
{
	struct shmq_producer_opts po = { .sync_mode = SHMQ_SYNC_BATCH,
					 .sync_every_n = 4 };
	struct shmq *q = mkq("q");
	struct shmq_producer *p;
	uint64_t d0;

	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	d0 = load_acquire(&q->hdr->durable_pos);
	send_n(p, 3);
	cr_assert_eq(load_acquire(&q->hdr->durable_pos), d0, "synced early");
	send_n(p, 1);
	cr_assert_eq(load_acquire(&q->hdr->durable_pos),
		     load_acquire(&q->hdr->write_pos), "not synced at N");
	send_n(p, 2);
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(load_acquire(&q->hdr->durable_pos),
		     load_acquire(&q->hdr->write_pos), "not synced at close");
	shmq_close(q);
}

Test(durability, mode_none_never_syncs_by_itself)
{
	struct shmq *q = mkq("q");
	struct shmq_producer *p;
	uint64_t d0 = load_acquire(&q->hdr->durable_pos);

	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	send_n(p, 50);
	shmq_producer_close(p);
	cr_assert_eq(load_acquire(&q->hdr->durable_pos), d0);
	shmq_close(q);
}

Test(durability, f13_a_failed_msync_sticks_and_is_never_reported_as_success)
{
	struct shmq_producer_opts po = { .sync_mode = SHMQ_SYNC_EVERY };
	struct shmq *q = mkq("q"), *q2;
	struct shmq_producer *p;
	uint64_t d;
	char b[8] = { 0 };

	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	send_n(p, 2);
	cr_assert_eq(shmq_sync_error(q), 0);
	d = load_acquire(&q->hdr->durable_pos);
	fail_msync = EIO;
	cr_assert_eq(shmq_send(p, b, sizeof(b), SHMQ_NOWAIT), -EIO);
	fail_msync = 0;
	/* The disk works again; the dropped pages are still lost. */
	cr_assert_eq(shmq_send(p, b, sizeof(b), SHMQ_NOWAIT), -EIO);
	cr_assert_eq(shmq_sync(q), -EIO);
	cr_assert(strstr(shmq_errdetail(), "durability failed"), "%s",
		  shmq_errdetail());
	cr_assert_eq(shmq_sync_error(q), -EIO);
	cr_assert_eq(load_acquire(&q->hdr->durable_pos), d, "watermark moved");
	/* Every other process sees it too, through the file. */
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q2), 0);
	cr_assert_eq(shmq_sync_error(q2), -EIO);
	cr_assert_eq(shmq_sync(q2), -EIO);
	shmq_close(q2);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(durability, a_durable_consumer_reads_only_below_the_watermark)
{
	struct shmq_consumer_opts co = { .flags = SHMQ_CONSUMER_DURABLE };
	struct shmq *q = mkq("q");
	struct shmq_producer *p;
	struct shmq_consumer *c;
	char buf[64];

	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	send_n(p, 3);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), -EAGAIN);
	cr_assert_eq(shmq_sync(q), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 64);
	send_n(p, 1);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, 20000000), -ETIMEDOUT);
	/* Once durability failed it is told so instead of waiting for ever. */
	fail_msync = EIO;
	cr_assert_eq(shmq_sync(q), -EIO);
	fail_msync = 0;
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), -EIO);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(durability, a_durable_consumer_wakes_when_another_process_syncs)
{
	struct shmq_consumer_opts co = { .flags = SHMQ_CONSUMER_DURABLE };
	struct shmq *q = mkq("q");
	struct shmq_producer *p;
	struct shmq_consumer *c;
	char buf[64];
	pid_t pid;

	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	send_n(p, 1);
	pid = fork();
	if (pid == 0) {
		struct shmq *q2;

		alarm(10);
		h_sleep_ms(100);
		_exit(shmq_open(h_path("q"), 0, NULL, &q2) || shmq_sync(q2));
	}
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, 5000000000ll), 64);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

/* Corrupt the last record of a synced ring as a torn page would. */
Test(durability, f14_f15_recovery_cuts_a_torn_tail_clamps_cursors_and_is_idempotent)
{
	struct shmq_consumer_opts co = { .name = "n" };
	struct shmq *q = mkq("q");
	struct shmq_producer *p;
	struct shmq_consumer *c;
	uint64_t w, last, d;
	off_t off;
	char buf[64], junk[8] = "torn!!!";
	int n = 0;

	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_consumer_open(q, &co, &c), 0);
	send_n(p, 10);
	cr_assert_eq(shmq_sync(q), 0);
	d = load_acquire(&q->hdr->durable_pos);
	send_n(p, 5);
	for (int i = 0; i < 15; i++)
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 64);
	w = load_acquire(&q->hdr->write_pos);
	last = w - shmqi_rec_size(64);
	off = (off_t)(q->g.data_off + ((last - shmqi_rec_size(64) + 40) & q->g.mask));
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
	/* The 14th record's payload is torn: it and the 15th are cut. */
	cr_assert_eq(h_poke(h_path("q"), off, junk, sizeof(junk)), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	/* ... and the session's END record that close wrote after them. */
	cr_assert_eq(p->cut_bytes, 2 * shmqi_rec_size(64) +
		     shmqi_rec_size(sizeof(struct shmq_end)));
	cr_assert_eq(p->seq, 13, "continues after the valid prefix");
	/* The first session's end, rewritten: it died (part of it was cut). */
	cr_assert_eq(load_acquire(&q->hdr->write_pos), w - 2 * shmqi_rec_size(64) +
		     shmqi_rec_size(sizeof(struct shmq_end)));
	/* The named consumer had read past the cut: clamped, not trusted. */
	cr_assert_eq(load_acquire(&q->slots[0].position),
		     w - 2 * shmqi_rec_size(64));
	cr_assert_geq(load_acquire(&q->hdr->durable_pos), d);
	shmq_producer_close(p);
	/* Idempotent: a second recovery cuts nothing. */
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(p->cut_bytes, 0);
	cr_assert_eq(p->seq, 13);
	send_n(p, 2);
	shmq_producer_close(p);
	/*
	 * A new anonymous consumer from the oldest gets a clean prefix: it
	 * starts where the named consumer was clamped, after the cut
	 * session's data, so not that session's end (died, written by the
	 * next producer: sessions); then the empty second session's end,
	 * the two messages sent after recovery and their session's end.
	 */
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), SHMQ_EOF);
	for (;;) {
		struct shmq_msg m;
		ssize_t r = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);

		if (r == SHMQ_EOF)
			break;
		cr_assert_eq(r, 64, "%s", shmq_errdetail());
		n++;
	}
	cr_assert_eq(n, 2, "the two messages sent after recovery");
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(durability, f12_create_on_a_full_disk_fails_with_enospc_and_leaves_no_file)
{
	struct shmq_config cfg = { .capacity = 1 << 20 };

	fail_fallocate = ENOSPC;
	cr_assert_eq(shmq_create(h_path("full"), &cfg), -ENOSPC);
	fail_fallocate = 0;
	cr_assert_neq(access(h_path("full"), F_OK), 0, "a half-made file was left");
}

Test(durability, f12_create_on_a_tiny_tmpfs_fails_with_enospc_and_leaves_no_file)
{
	struct shmq_config cfg = { .capacity = 1 << 20 };
	const char *mnt = h_path("tiny");

	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0)
		cr_skip_test("mount tmpfs: %s (covered by the injected test)",
			     strerror(errno));
	cr_assert_eq(shmq_create(h_path("tiny/q"), &cfg), -ENOSPC, "%s",
		     shmq_errdetail());
	cr_assert_neq(access(h_path("tiny/q"), F_OK), 0);
	umount2(mnt, MNT_DETACH);
}

/*
 * Crash images built by hand (issue: durability defects 2 and 3). The
 * queue's geometry: 16 KiB ring after a one-page header. send_tag()
 * writes messages whose content names the incarnation that sent them,
 * so a resurrected record is told from a new one by its bytes too.
 */
#define IMG_MAX	(64 * 1024)

static void send_tag(struct shmq_producer *p, int inc, int from, int n)
{
	char buf[64];

	for (int i = from; i < from + n; i++) {
		snprintf(buf, sizeof(buf), "inc %d msg %d", inc, i);
		cr_assert_eq(shmq_send(p, buf, strlen(buf) + 1, SHMQ_NOWAIT), 0,
			     "%s", shmq_errdetail());
	}
}

/* Read everything a fresh named consumer gets; the tags, joined by '|'. */
static void read_all(const char *name, char *out, size_t cap)
{
	struct shmq_consumer_opts o = { .name = "img" };
	struct shmq_consumer *c;
	struct shmq *q;
	char buf[512];
	ssize_t n;

	out[0] = 0;
	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, &o, &c), 0, "%s", shmq_errdetail());
	while ((n = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT)) > 0) {
		strncat(out, buf, cap - strlen(out) - 2);
		strcat(out, "|");
	}
	cr_assert(n == -EAGAIN || n == SHMQ_EOF || n == SHMQ_EDIED,
		  "recv: %zd (%s) %s", n, shmq_strerror((int)n), shmq_errdetail());
	shmq_consumer_close(c);
	cr_assert_eq(shmq_consumer_remove(q, "img"), 0);
	shmq_close(q);
}

static int reopen_producer(const char *name, uint32_t flags)
{
	struct shmq_producer_opts o = { .flags = flags };
	struct shmq_producer *p;
	struct shmq *q;
	int ret;

	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	ret = shmq_producer_open(q, &o, &p);
	if (ret == 0)
		shmq_producer_close(p);
	shmq_close(q);
	return ret;
}

Test(durability, tail_pos_on_disk_without_its_tail_seq_cuts_nothing)
{
	struct shmq *q = mkq("t3");
	struct shmq_producer *p;
	struct shmq_consumer *c;
	char buf[64], got[4096];
	uint64_t tseq;

	/* Ten messages, the first six released: the tail moves past them. */
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	send_tag(p, 1, 0, 200);
	for (int i = 0; i < 200; i++)
		cr_assert_gt(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 0);
	send_tag(p, 1, 200, 200);	/* laps the 16 KiB ring: tail moves */
	shmq_consumer_close(c);
	cr_assert_eq(shmq_sync(q), 0);
	shmq_producer_close(p);
	shmq_close(q);
	/*
	 * The header page written back between the producer's two stores:
	 * tail_pos new, tail_seq still the one before it.
	 */
	cr_assert_eq(h_peek_file(h_path("t3"), offsetof(struct shmq_hdr, tail_seq),
				 &tseq, sizeof(tseq)), 0);
	cr_assert_gt(tseq, 100);
	tseq -= 37;
	cr_assert_eq(h_poke(h_path("t3"), offsetof(struct shmq_hdr, tail_seq),
			    &tseq, sizeof(tseq)), 0);
	cr_assert_eq(reopen_producer("t3", 0), 0, "%s", shmq_errdetail());
	read_all("t3", got, sizeof(got));
	cr_assert(strstr(got, "inc 1 msg 399|"), "the ring was cut: %.200s", got);
}

Test(durability, records_of_an_older_incarnation_are_never_resurrected)
{
	static uint8_t img_a[IMG_MAX], img[IMG_MAX];
	struct shmq *q = mkq("t2");
	uint64_t data_off = q->g.data_off, size = q->g.file_size;
	struct shmq_stat *st;
	struct shmq_producer *p;
	struct shmq_producer_opts accept = { .flags = SHMQ_PRODUCER_ACCEPT_LOSS };
	uint64_t tail, off;
	char got[4096], x = 'X';
	int ret;

	/* Incarnation 1: twenty messages, all durable. */
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	send_tag(p, 1, 0, 20);
	cr_assert_eq(shmq_sync(q), 0);
	shmq_producer_close(p);
	shmq_close(q);
	cr_assert_leq(size, IMG_MAX);
	cr_assert_eq(h_peek_file(h_path("t2"), 0, img_a, size), 0);

	/*
	 * Power loss 1 took the page under message 10: it no longer
	 * validates. Recovery refuses to cut durable data ...
	 */
	memcpy(&tail, img_a + offsetof(struct shmq_hdr, tail_pos), 8);
	off = data_off + (tail & 16383);
	for (int i = 0; i < 10; i++) {
		uint32_t len;

		memcpy(&len, img_a + off, 4);
		off += (SHMQ_REC_HDR + len + 7) & ~7ull;
	}
	cr_assert_eq(h_poke(h_path("t2"), (off_t)(off + SHMQ_REC_HDR), &x, 1), 0);
	ret = reopen_producer("t2", 0);
	cr_assert_eq(ret, SHMQ_ELOSS, "open: %d (%s)", ret, shmq_strerror(ret));
	cr_assert(strstr(shmq_errdetail(), "up to 10 messages"), "%s",
		  shmq_errdetail());
	cr_assert_eq(h_peek_file(h_path("t2"), 0, img, size), 0);
	cr_assert_eq(memcmp(img, img_a, off + SHMQ_REC_HDR), 0,
		     "a refused recovery changed the file");

	/* ... unless told to: incarnation 2 cuts, then sends 10' to 14'. */
	cr_assert_eq(shmq_open(h_path("t2"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_producer_open(q, &accept, &p), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->cut_messages, 10);
	cr_assert_eq(st->cut_durable, 1);
	cr_assert_neq(st->cut_time, 0);
	shmq_stat_free(st);
	send_tag(p, 2, 10, 5);
	cr_assert_eq(shmq_sync(q), 0);
	shmq_producer_close(p);
	shmq_close(q);

	/*
	 * Power loss 2: the header page (and slots) reached the disk, the
	 * data pages did not: they hold incarnation 1's messages 10..19,
	 * each with a valid checksum and the sequence the chain expects.
	 */
	cr_assert_eq(h_peek_file(h_path("t2"), 0, img, size), 0);
	memcpy(img + data_off, img_a + data_off, size - data_off);
	cr_assert_eq(h_poke(h_path("t2"), 0, img, size), 0);
	ret = reopen_producer("t2", 0);
	cr_assert_eq(ret, SHMQ_ELOSS, "messages 10'..14' were durable: %d", ret);
	cr_assert_eq(reopen_producer("t2", SHMQ_PRODUCER_ACCEPT_LOSS), 0);
	read_all("t2", got, sizeof(got));
	cr_assert_eq(strstr(got, "inc 1 msg 10"), NULL,
		     "an old record came back as new: %.300s", got);
	cr_assert(strstr(got, "inc 1 msg 9|"), "%.300s", got);
}

/*
 * Issue 11 defect 4: a producer that moved the tail and died before its
 * re-scan of the holders (F1) leaves a live consumer below tail_pos,
 * inside its attach handshake. The next producer must stay behind that
 * consumer (recovery leaves a live holder where it is, and the limit is
 * the lowest holder), so the consumer reads every message intact.
 * The crash window is set up by storing the tail past the consumer.
 */
Test(durability, a_restarted_producer_never_overwrites_what_a_live_consumer_below_the_tail_reads)
{
	struct shmq *q = mkq("lim");
	struct shmq_producer *p;
	struct shmq_consumer *c;
	uint64_t t1, s;
	char buf[64], want[64];
	int sent = 0, err;
	ssize_t n;

	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	send_n(p, 10);
	shmq_producer_close(p);
	/* The dead producer's last act: the tail past five of the ten. */
	t1 = load_acquire(&q->hdr->tail_pos) + 5 * shmqi_rec_size(64);
	store_relaxed(&q->hdr->tail_seq, 5);
	store_fenced(&q->hdr->tail_pos, t1);

	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0, "%s", shmq_errdetail());
	/* Fill the ring as far as the new producer thinks it may go. */
	memset(buf, 0xee, sizeof(buf));
	while ((err = shmq_send(p, buf, sizeof(buf), SHMQ_NOWAIT)) == 0)
		cr_assert_lt(++sent, 1000);
	cr_assert_eq(err, -EAGAIN, "%s", shmq_strerror(err));
	/* The consumer reads the ten, intact, in order, then the end. */
	for (s = 0; s < 10; s++) {
		struct shmq_msg m;

		n = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		cr_assert_eq(n, 64, "message %llu: %zd (%s) %s", (unsigned long long)s,
			     n, shmq_strerror((int)n), shmq_errdetail());
		memset(want, (int)s, sizeof(want));
		cr_assert_eq(memcmp(buf, want, sizeof(want)), 0,
			     "message %llu was overwritten", (unsigned long long)s);
		cr_assert_eq(m.seq, s);
	}
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), SHMQ_EOF);
	for (int i = 0; i < sent; i++)
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 64);
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
}
