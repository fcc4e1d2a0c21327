/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzz seed corpus: real queue images in the states that
 * matter (empty, full, wrapped with padding and implicit skips, lapped in
 * overwrite mode, positions across 2^64, producer closed or dead, live
 * and dead consumer slots), plus broken headers for the attach target.
 * Usage: fuzz_mkcorpus DIR; it writes the attach and consume seeds there.
 * The salt is fixed (fuzz.h) so the consume target's images carry valid
 * checksums.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "../../lib/format.h"
#include "fuzz.h"

static const char *out_dir;

static void die(const char *what, int err)
{
	fprintf(stderr, "mkcorpus: %s: %s (%s)\n", what, shmq_strerror(err),
		shmq_errdetail());
	exit(1);
}

static void put_file(const char *sub, const char *name, const void *buf,
		     size_t len)
{
	char p[4096];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s/%s", out_dir, sub, name);
	f = fopen(p, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		perror(p);
		exit(1);
	}
}

static size_t read_image(uint8_t *img, size_t cap)
{
	int fd = open(fz_path(), O_RDONLY);
	ssize_t n = fd < 0 ? -1 : pread(fd, img, cap, 0);

	if (n < 0) {
		perror("reading the image");
		exit(1);
	}
	close(fd);
	return (size_t)n;
}

/* Save the file as an attach seed and, if it has the fixed geometry, a consume seed. */
static void dump(const char *name)
{
	static uint8_t img[1 << 16], in[FZ_IN_MAX];
	size_t n = read_image(img, sizeof(img));
	struct shmq_hdr h;

	put_file("attach", name, img, n);
	memcpy(&h, img, sizeof(h));
	if (n != SHMQ_PAGE + FZ_CAPACITY || h.capacity != FZ_CAPACITY ||
	    h.nslots != FZ_SLOTS || h.max_message != FZ_MAX_MSG)
		return;
	in[0] = (uint8_t)h.flags;
	memcpy(in + 1, img + FZ_HDR_FROM, FZ_IN_HDR);
	memcpy(in + 1 + FZ_IN_HDR, img + SHMQ_HDR_SIZE, FZ_IN_SLOTS);
	memcpy(in + 1 + FZ_IN_HDR + FZ_IN_SLOTS, img + SHMQ_PAGE, FZ_CAPACITY);
	put_file("consume", name, in, sizeof(in));
}

static struct shmq *make(uint32_t when_full, uint64_t initial_pos)
{
	struct shmq_config cfg = {
		.capacity = FZ_CAPACITY, .slots = FZ_SLOTS,
		.max_message = FZ_MAX_MSG, .when_full = when_full,
		.initial_pos = initial_pos,
	};
	uint64_t salt = FZ_SALT;
	struct shmq *q;
	int fd, err;

	unlink(fz_path());
	err = shmq_create(fz_path(), &cfg);
	if (err)
		die("create", err);
	/* Before any attach: every handle copies the salt when it maps. */
	fd = open(fz_path(), O_WRONLY);
	if (fd < 0 || pwrite(fd, &salt, 8, offsetof(struct shmq_hdr, salt)) != 8)
		die("salt", -EIO);
	close(fd);
	err = shmq_open(fz_path(), 0, NULL, &q);
	if (err)
		die("open", err);
	return q;
}

static void send_len(struct shmq_producer *p, size_t len)
{
	static char buf[FZ_MAX_MSG];
	int err;

	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(len + i);
	err = shmq_send(p, buf, len, SHMQ_NOWAIT);
	if (err)
		die("send", err);
}

static void drain(struct shmq_consumer *c, int n)
{
	static char buf[FZ_MAX_MSG];

	while (n-- && shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT) >= 0)
		;
}

static struct shmq_producer *producer(struct shmq *q)
{
	struct shmq_producer *p;
	int err = shmq_producer_open(q, NULL, &p);

	if (err)
		die("producer", err);
	return p;
}

static struct shmq_consumer *consumer(struct shmq *q, const char *name)
{
	struct shmq_consumer_opts o = { .name = name };
	struct shmq_consumer *c;
	int err = shmq_consumer_open(q, &o, &c);

	if (err)
		die("consumer", err);
	return c;
}

static void states(void)
{
	static const size_t lens[] = { 0, 10, 100, 300, 1024, 7, 500, 1000 };
	struct shmq_consumer *a, *n;
	struct shmq_producer *p;
	struct shmq *q;
	size_t skip_at;
	char name[32];
	pid_t pid;

	q = make(0, 0);
	dump("empty");
	p = producer(q);
	for (int i = 0; i < 5; i++)
		send_len(p, lens[i]);
	dump("five-open");
	shmq_producer_close(p);
	dump("five-closed");
	shmq_close(q);

	/* Live slots, a wrap with padding, a named consumer behind. */
	q = make(0, 0);
	a = consumer(q, NULL);
	n = consumer(q, "fz");
	p = producer(q);
	for (int i = 0; i < 24; i++) {
		send_len(p, lens[i % 8]);
		drain(a, 1);
		if (i % 4 != 3)
			drain(n, 1);
		if (i % 6 == 5) {
			snprintf(name, sizeof(name), "wrap-%02d", i);
			dump(name);
		}
	}
	shmq_consumer_close(a);
	dump("named-behind");
	shmq_producer_close(p);
	shmq_consumer_close(n);
	shmq_close(q);

	/*
	 * Records up to 8 bytes short of a record header before the end of
	 * the ring (16 with 24-byte headers: 170 empty records), so that
	 * the next one wraps without a padding record: implicit skip. The
	 * first record takes what the empty ones cannot divide.
	 */
	q = make(0, 0);
	a = consumer(q, NULL);
	p = producer(q);
	skip_at = FZ_CAPACITY - SHMQ_REC_HDR + SHMQ_REC_ALIGN;
	send_len(p, skip_at % SHMQ_REC_HDR);
	drain(a, 1);
	for (size_t i = 1; i < skip_at / SHMQ_REC_HDR; i++) {
		send_len(p, 0);
		drain(a, 1);
	}
	dump("before-skip");
	send_len(p, 100);
	dump("implicit-skip");
	/* Four records of a quarter of the ring each fill it exactly. */
	drain(a, 1);
	for (int i = 0; i < 4; i++) {
		send_len(p, FZ_CAPACITY / 4 - SHMQ_REC_HDR);
		drain(a, 1);
	}
	dump("exact-fill");
	shmq_producer_close(p);
	shmq_consumer_close(a);
	shmq_close(q);

	/* Lapped in overwrite mode, nobody attached. */
	q = make(SHMQ_WHEN_FULL_OVERWRITE, 0);
	p = producer(q);
	for (int i = 0; i < 50; i++)
		send_len(p, 200);
	dump("overwrite-lapped");
	shmq_producer_close(p);
	shmq_close(q);

	/* Positions across 2^64 (F19). */
	q = make(0, (uint64_t)0 - 2048);
	a = consumer(q, NULL);
	p = producer(q);
	for (int i = 0; i < 10; i++) {
		send_len(p, 300);
		if (i != 9)
			drain(a, 1);
	}
	dump("across-2-64");
	shmq_producer_close(p);
	shmq_consumer_close(a);
	shmq_close(q);

	/* The producer dies without closing: state OPEN, lock free. */
	q = make(0, 0);
	pid = fork();
	if (pid == 0) {
		p = producer(q);
		for (int i = 0; i < 3; i++)
			send_len(p, lens[i + 2]);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	dump("producer-died");
	shmq_close(q);
}

/* Valid-looking files with one header field wrong. */
static void broken(void)
{
	static uint8_t img[SHMQ_PAGE + FZ_CAPACITY];
	struct shmq_hdr *h = (struct shmq_hdr *)img;
	struct shmq *q = make(0, 0);
	struct shmq_hdr good;
	size_t n;

	shmq_close(q);
	n = read_image(img, sizeof(img));
	good = *h;
#define BROKEN(name, stmt) do {						\
		*h = good;						\
		stmt;							\
		put_file("attach", name, img, n);			\
	} while (0)
	BROKEN("bad-magic", h->magic ^= 1);
	BROKEN("swapped-magic", h->magic = SHMQ_MAGIC_SWAPPED);
	BROKEN("version-2", h->version = 2);
	BROKEN("layout", h->layout ^= 0x100);
	BROKEN("capacity-not-pow2", h->capacity = 4097);
	BROKEN("capacity-huge", h->capacity = 1ull << 62);
	BROKEN("nslots-0", h->nslots = 0);
	BROKEN("max-message-huge", h->max_message = 0xfffffff0u);
	/* Valid but small: fz_exercise's messages must fit (issue 11). */
	BROKEN("max-message-16", h->max_message = 16);
	BROKEN("data-off", h->data_off = 512);
	BROKEN("file-size", h->file_size = 1ull << 63);
	BROKEN("flags", h->flags = 0x80);
	BROKEN("write-pos-odd", h->write_pos = 3);
	BROKEN("tail-far", h->tail_pos = 1ull << 40);
	*h = good;
	put_file("attach", "header-only", img, SHMQ_HDR_SIZE);
	put_file("attach", "ring-cut", img, SHMQ_PAGE + FZ_CAPACITY / 2);
}

int main(int argc, char **argv)
{
	char p[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_mkcorpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	snprintf(p, sizeof(p), "mkdir -p '%s/attach' '%s/consume'", out_dir, out_dir);
	if (system(p) != 0)
		return 1;
	states();
	broken();
	return 0;
}
