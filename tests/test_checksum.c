/* SPDX-License-Identifier: MIT */
/*
 * Checksum coverage, one process: a full-coverage queue refuses a record
 * whose payload was scribbled on; a header-only queue delivers it as it
 * is, and still refuses a scribbled header.
 */
#include <criterion/criterion.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"


TestSuite(checksum, .init = h_setup, .fini = h_teardown, .timeout = 10);

/* A queue with one 16-byte message; returns the ring's file offset. */
static off_t one_message(const char *name, uint32_t checksum)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 64,
				   .slots = 1, .checksum = checksum };
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq *q;
	off_t data_off;

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	cr_assert_eq(shmq_send(p, "sixteen bytes!!!", 16, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->checksum, checksum);
	/* One slot: header 512 + 128 bytes, rounded up to a page. */
	data_off = (off_t)(st->file_size - st->capacity);
	shmq_stat_free(st);
	shmq_close(q);
	return data_off;
}

static ssize_t read_one(const char *name, char *buf, size_t cap)
{
	struct shmq_consumer *c;
	struct shmq *q;
	ssize_t n;

	cr_assert_eq(shmq_open(h_path(name), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	n = shmq_recv(c, buf, cap, NULL, SHMQ_NOWAIT);
	shmq_consumer_close(c);
	shmq_close(q);
	return n;
}

Test(checksum, full_coverage_refuses_a_scribbled_payload)
{
	off_t d = one_message("f.q", SHMQ_CHECKSUM_FULL);
	char buf[64];

	cr_assert_eq(h_poke(h_path("f.q"), d + 32 + 3, "X", 1), 0);
	cr_assert_eq(read_one("f.q", buf, sizeof(buf)), -EBADMSG);
}

Test(checksum, header_coverage_delivers_a_scribbled_payload_as_it_is)
{
	off_t d = one_message("h.q", SHMQ_CHECKSUM_HEADER);
	char buf[64];

	cr_assert_eq(h_poke(h_path("h.q"), d + 32 + 3, "X", 1), 0);
	cr_assert_eq(read_one("h.q", buf, sizeof(buf)), 16);
	cr_assert_eq(memcmp(buf, "sixX", 4), 0);
}

Test(checksum, header_coverage_still_refuses_a_scribbled_header)
{
	off_t d = one_message("g.q", SHMQ_CHECKSUM_HEADER);
	char buf[64];
	uint32_t ts = 0x12345678;

	/* The send-time word: in range, so only the checksum can tell. */
	cr_assert_eq(h_poke(h_path("g.q"), d + 20, &ts, sizeof(ts)), 0);
	cr_assert_eq(read_one("g.q", buf, sizeof(buf)), -EBADMSG);
}

Test(checksum, an_unknown_coverage_is_refused_at_create)
{
	struct shmq_config cfg = { .checksum = 7 };

	cr_assert_eq(shmq_create(h_path("x.q"), &cfg), -EINVAL);
}

static uint32_t coverage_of(const char *path)
{
	struct shmq *q;
	struct shmq_stat *st;
	uint32_t c;

	cr_assert_eq(shmq_create(path, NULL), 0, "%s: %s", path, shmq_errdetail());
	cr_assert_eq(shmq_open(path, SHMQ_OPEN_RDONLY, NULL, &q), 0);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	c = st->checksum;
	shmq_stat_free(st);
	shmq_close(q);
	unlink(path);
	return c;
}

/*
 * Integrity where it buys something (docs/decisions.md): without a choice,
 * a queue on tmpfs checksums record headers only, one on a disk
 * filesystem headers and payloads.
 */
Test(checksum, the_default_is_header_on_tmpfs_and_full_on_a_disk)
{
	struct statfs sf;
	char shm[64];
	bool tmpfs;

	cr_assert_eq(statfs(h_dir(), &sf), 0);
	tmpfs = sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
	cr_assert_eq(coverage_of(h_path("auto.q")),
		     tmpfs ? SHMQ_CHECKSUM_HEADER : SHMQ_CHECKSUM_FULL);
	if (statfs("/dev/shm", &sf) == 0 && sf.f_type == TMPFS_MAGIC) {
		snprintf(shm, sizeof(shm), "/dev/shm/shmq-ck-%d.q", (int)getpid());
		cr_assert_eq(coverage_of(shm), SHMQ_CHECKSUM_HEADER);
	}
	/* An explicit choice wins everywhere. */
	{
		struct shmq_config cfg = { .checksum = SHMQ_CHECKSUM_FULL };
		struct shmq *q;
		struct shmq_stat *st;

		cr_assert_eq(shmq_create(h_path("full.q"), &cfg), 0);
		cr_assert_eq(shmq_open(h_path("full.q"), SHMQ_OPEN_RDONLY, NULL, &q), 0);
		cr_assert_eq(shmq_stat_get(q, &st), 0);
		cr_assert_eq(st->checksum, SHMQ_CHECKSUM_FULL);
		shmq_stat_free(st);
		shmq_close(q);
	}
}
