/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of create and attach: what a new file looks like, and every
 * kind of file shmq_open() must refuse before it trusts a field. The
 * corruption tests write bytes at the offsets lib/format.h pins (magic at
 * 0, version at 8, ...): the layout is private, these tests are the one
 * place outside lib/ allowed to know it.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"
#include "../lib/format.h"

TestSuite(create, .init = h_setup, .fini = h_teardown, .timeout = 10);

static void make_queue(const char *name)
{
	struct shmq_config cfg = { .capacity = 16384 };
	int err = shmq_create(h_path(name), &cfg);

	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

static mode_t mode_of(const char *path)
{
	struct stat sb;

	cr_assert_eq(stat(path, &sb), 0, "stat %s", path);
	return sb.st_mode & 07777;
}

Test(create, fails_with_eexist_when_the_path_exists, .timeout = 10)
{
	char junk[] = "not a queue";
	char back[sizeof(junk)];
	int err;

	make_queue("q");
	err = shmq_create(h_path("q"), NULL);
	cr_assert_eq(err, -EEXIST, "second create: %d (%s)", err,
		     shmq_strerror(err));

	/* A plain file in the way is left alone. */
	{
		int fd = open(h_path("plain"), O_CREAT | O_WRONLY, 0600);

		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
		close(fd);
	}
	err = shmq_create(h_path("plain"), NULL);
	cr_assert_eq(err, -EEXIST, "create over a file: %d (%s)", err,
		     shmq_strerror(err));
	cr_assert_eq(h_peek_file(h_path("plain"), 0, back, sizeof(back)), 0);
	cr_assert_str_eq(back, junk);
}

Test(create, makes_the_file_0600_whatever_the_umask, .timeout = 10)
{
	umask(0);
	make_queue("q0");
	cr_assert_eq(mode_of(h_path("q0")), 0600, "umask 0: %o",
		     mode_of(h_path("q0")));
	umask(0777);
	make_queue("q1");
	cr_assert_eq(mode_of(h_path("q1")), 0600, "umask 0777: %o",
		     mode_of(h_path("q1")));
	umask(022);
}

Test(create, applies_the_configured_mode_whatever_the_umask, .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 16384, .mode = 0640 };

	umask(077);
	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(mode_of(h_path("q")), 0640, "mode %o",
		     mode_of(h_path("q")));
	cfg.mode = 0660;
	umask(0);
	cr_assert_eq(shmq_create(h_path("q2"), &cfg), 0);
	cr_assert_eq(mode_of(h_path("q2")), 0660, "mode %o",
		     mode_of(h_path("q2")));
	umask(022);
}

Test(create, refuses_bad_geometry_with_einval_and_leaves_nothing,
     .timeout = 10)
{
	struct shmq_config cfg = { .slots = SHMQ_MAX_SLOTS + 1 };
	struct stat sb;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), -EINVAL, "too many slots");
	cr_assert_eq(stat(h_path("q"), &sb), -1, "a file was left behind");
	cfg.slots = 0;
	cfg.initial_pos = 3;
	cr_assert_eq(shmq_create(h_path("q"), &cfg), -EINVAL,
		     "unaligned initial position");
	cr_assert_eq(stat(h_path("q"), &sb), -1, "a file was left behind");
}

Test(create, sizes_the_file_for_header_slots_and_ring, .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 5000, .slots = 3 };
	struct shmq_stat *st;
	struct shmq *q;
	struct stat sb;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->capacity, 8192);
	cr_assert_eq(st->slots, 3);
	cr_assert_eq(st->max_message, 2048, "capped to a quarter: %u",
		     st->max_message);
	cr_assert_eq(stat(h_path("q"), &sb), 0);
	cr_assert_eq(st->file_size, (uint64_t)sb.st_size);
	cr_assert_geq((uint64_t)sb.st_size, 8192 + SHMQ_HDR_SIZE);
	/* posix_fallocate at create: the blocks are there, not a hole. */
	cr_assert_geq((uint64_t)sb.st_blocks * 512, 8192);
	shmq_stat_free(st);
	shmq_close(q);
}

TestSuite(open, .init = h_setup, .fini = h_teardown, .timeout = 15);

static int try_open(const char *name)
{
	struct shmq *q = NULL;
	int err = shmq_open(h_path(name), 0, NULL, &q);

	if (err == 0)
		shmq_close(q);
	return err;
}

/* Open NAME; it must fail with WANT, and quickly unless SLOW_OK. */
static void expect_refused(const char *name, int want, int slow_ok)
{
	uint64_t t0 = h_now_ns(), dt;
	int err = try_open(name);

	dt = h_now_ns() - t0;
	cr_assert_eq(err, want, "open %s: %d (%s), want %d (%s); detail \"%s\"",
		     name, err, shmq_strerror(err), want, shmq_strerror(want),
		     shmq_errdetail());
	cr_assert_neq(shmq_errdetail()[0], '\0', "no errdetail for %s", name);
	cr_assert_lt(dt, slow_ok ? 5000000000ull : 1000000000ull,
		     "open %s took %llu ms", name,
		     (unsigned long long)(dt / 1000000));
}

Test(open, attaches_to_a_queue_it_did_not_create, .timeout = 10)
{
	make_queue("q");
	cr_assert_eq(try_open("q"), 0);
}

Test(open, refuses_a_missing_file_with_enoent, .timeout = 10)
{
	expect_refused("missing", -ENOENT, 0);
}

Test(open, refuses_an_empty_file_with_enotqueue_after_a_bounded_wait,
     .timeout = 15)
{
	int fd = open(h_path("empty"), O_CREAT | O_WRONLY, 0600);

	cr_assert_geq(fd, 0);
	close(fd);
	expect_refused("empty", SHMQ_ENOTQUEUE, 1);
}

Test(open, refuses_a_zero_filled_file_with_enotqueue_after_a_bounded_wait,
     .timeout = 15)
{
	int fd = open(h_path("zeros"), O_CREAT | O_WRONLY, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 65536), 0);
	close(fd);
	expect_refused("zeros", SHMQ_ENOTQUEUE, 1);
}

Test(open, refuses_a_file_whose_creator_never_published_ready,
     .timeout = 15)
{
	uint32_t zero = 0;

	make_queue("q");
	cr_assert_eq(h_poke(h_path("q"), offsetof(struct shmq_hdr, ready),
			    &zero, 4), 0);
	expect_refused("q", -EBADMSG, 1);
}

struct late_ready {
	const char *path;
	unsigned int ms;
};

static void *publish_ready_later(void *arg)
{
	struct late_ready *lr = arg;
	uint32_t ready = SHMQ_READY;

	h_sleep_ms(lr->ms);
	h_poke(lr->path, offsetof(struct shmq_hdr, ready), &ready, 4);
	return NULL;
}

Test(open, waits_for_a_creator_that_publishes_ready_late, .timeout = 15)
{
	struct late_ready lr = { .path = h_path("q"), .ms = 300 };
	uint32_t zero = 0;
	pthread_t t;
	int err;

	make_queue("q");
	cr_assert_eq(h_poke(lr.path, offsetof(struct shmq_hdr, ready),
			    &zero, 4), 0);
	cr_assert_eq(pthread_create(&t, NULL, publish_ready_later, &lr), 0);
	err = try_open("q");
	pthread_join(t, NULL);
	cr_assert_eq(err, 0, "open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
}

static void corrupt(const char *name, size_t off, const void *buf, size_t len)
{
	make_queue(name);
	cr_assert_eq(h_poke(h_path(name), (off_t)off, buf, len), 0);
}

Test(open, refuses_a_bad_magic_with_enotqueue, .timeout = 10)
{
	uint8_t b;

	make_queue("q");
	cr_assert_eq(h_peek_file(h_path("q"), 0, &b, 1), 0);
	b ^= 0xff;
	cr_assert_eq(h_poke(h_path("q"), 0, &b, 1), 0);
	expect_refused("q", SHMQ_ENOTQUEUE, 0);
}

Test(open, refuses_another_format_version_with_eproto, .timeout = 10)
{
	uint32_t v = SHMQ_FORMAT_VERSION + 1;

	corrupt("q", offsetof(struct shmq_hdr, version), &v, 4);
	expect_refused("q", -EPROTO, 0);
}

Test(open, refuses_another_layout_word_with_eproto, .timeout = 10)
{
	uint32_t l = SHMQ_LAYOUT ^ 0x40;

	corrupt("q", offsetof(struct shmq_hdr, layout), &l, 4);
	expect_refused("q", -EPROTO, 0);
}

Test(open, refuses_a_byte_swapped_magic_with_eproto, .timeout = 10)
{
	uint64_t m = __builtin_bswap64(SHMQ_MAGIC);

	corrupt("q", 0, &m, 8);
	expect_refused("q", -EPROTO, 0);
}

Test(open, refuses_a_file_shorter_than_its_header_says_with_ebadmsg,
     .timeout = 10)
{
	struct stat sb;

	make_queue("q");
	cr_assert_eq(stat(h_path("q"), &sb), 0);
	cr_assert_eq(truncate(h_path("q"), sb.st_size - 4096), 0);
	expect_refused("q", -EBADMSG, 0);
}

Test(open, refuses_a_file_cut_inside_its_header_with_ebadmsg, .timeout = 15)
{
	make_queue("q");
	cr_assert_eq(truncate(h_path("q"), 100), 0);
	expect_refused("q", -EBADMSG, 1);
}

Test(open, refuses_a_capacity_that_is_not_a_power_of_two_with_ebadmsg,
     .timeout = 10)
{
	uint64_t cap = 16384 + 8;

	corrupt("q", offsetof(struct shmq_hdr, capacity), &cap, 8);
	expect_refused("q", -EBADMSG, 0);
}

Test(open, refuses_a_symlink_with_eloop, .timeout = 10)
{
	make_queue("q");
	cr_assert_eq(symlink(h_path("q"), h_path("link")), 0);
	expect_refused("link", -ELOOP, 0);
}

Test(open, refuses_a_fifo_at_the_path_without_blocking, .timeout = 10)
{
	int err;

	cr_assert_eq(mkfifo(h_path("fifo"), 0600), 0);
	err = try_open("fifo");
	cr_assert_lt(err, 0, "a FIFO was accepted");
	err = try_open(".");
	cr_assert_lt(err, 0, "a directory was accepted");
}

Test(open, creates_a_missing_file_with_open_create, .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 32768, .slots = 5 };
	struct shmq_stat *st;
	struct shmq *q, *q2;
	int err;

	umask(0);
	err = shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &cfg, &q);
	cr_assert_eq(err, 0, "open(CREATE): %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	cr_assert_eq(mode_of(h_path("q")), 0600);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->capacity, 32768);
	cr_assert_eq(st->slots, 5);
	shmq_stat_free(st);

	/* On an existing queue it attaches and keeps its geometry. */
	cfg.capacity = 65536;
	err = shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &cfg, &q2);
	cr_assert_eq(err, 0, "second open(CREATE): %s", shmq_strerror(err));
	cr_assert_eq(shmq_stat_get(q2, &st), 0);
	cr_assert_eq(st->capacity, 32768);
	shmq_stat_free(st);
	shmq_close(q2);
	shmq_close(q);

	/* NULL config: the defaults. */
	err = shmq_open(h_path("d"), SHMQ_OPEN_CREATE, NULL, &q);
	cr_assert_eq(err, 0, "open(CREATE, NULL): %s", shmq_strerror(err));
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->capacity, SHMQ_DEFAULT_CAPACITY);
	cr_assert_eq(st->max_message, SHMQ_DEFAULT_MAX_MSG);
	cr_assert_eq(st->slots, SHMQ_DEFAULT_SLOTS);
	shmq_stat_free(st);
	shmq_close(q);
	umask(022);
}

Test(open, read_only_refuses_the_producer_role_with_erofs, .timeout = 10)
{
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq *q;

	make_queue("q");
	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_RDONLY, NULL, &q), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), -EROFS);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->capacity, 16384);
	shmq_stat_free(st);
	shmq_close(q);
}
