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
	struct shmq_config cfg = { .capacity = 16384, .max_message = 512 };
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
	cr_assert_eq(p->cut_bytes, 2 * shmqi_rec_size(64));
	cr_assert_eq(p->seq, 13, "continues after the valid prefix");
	cr_assert_eq(load_acquire(&q->hdr->write_pos), w - 2 * shmqi_rec_size(64));
	/* The named consumer had read past the cut: clamped, not trusted. */
	cr_assert_eq(load_acquire(&q->slots[0].position),
		     load_acquire(&q->hdr->write_pos));
	cr_assert_geq(load_acquire(&q->hdr->durable_pos), d);
	shmq_producer_close(p);
	/* Idempotent: a second recovery cuts nothing. */
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(p->cut_bytes, 0);
	cr_assert_eq(p->seq, 13);
	send_n(p, 2);
	shmq_producer_close(p);
	/* A new anonymous consumer from the oldest gets a clean prefix. */
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
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
