/* SPDX-License-Identifier: MIT */
/*
 * The deterministic corruption sweep: every byte of the header, of the
 * two consumer slots and of three record headers (the oldest record, one
 * in the middle, the padding record at the wrap), each set to 0x00, 0xFF,
 * each single-bit flip, +1 and -1; then attach and use every role without
 * waiting. Each variant must end in a clean error (with a detail line) or
 * in valid operation: every message delivered is byte for byte one the
 * producer sent, in sequence, and the producer's own new messages come
 * back intact. A crash or a hang fails the test (criterion runs each Test
 * in its own process, under its timeout).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"
#include "../lib/format.h"

TestSuite(sweep, .init = h_setup, .fini = h_teardown, .timeout = 240);

#define CAP	4096u
#define SLOTS	2u
#define MAXLEN	300u
#define SEED	0x5eed1ull	/* the pristine image's messages (one with a PAD record) */
#define SEED2	0xfeedull	/* the sweep's own producer's messages */
#define NMSG	30

static uint8_t pristine[SHMQ_PAGE + CAP];
static uint64_t rec_off[3];	/* file offsets of the swept record headers */

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void send_tagged(struct shmq_producer *p, uint64_t seed, uint64_t i)
{
	static char buf[MAXLEN];
	size_t len = h_msg_len(seed, i, MAXLEN);
	int err;

	h_msg_fill(buf, len, seed, i);
	err = shmq_send(p, buf, len, SHMQ_NOWAIT);
	cr_assert_eq(err, 0, "pristine send %llu: %s", (unsigned long long)i,
		     shmq_strerror(err));
}

/*
 * A queue that has wrapped (so there is a padding record), with a named
 * consumer three messages behind and the producer closed.
 */
static void make_pristine(void)
{
	struct shmq_config cfg = { .capacity = CAP, .slots = SLOTS,
				   .max_message = 1024 };
	struct shmq_consumer_opts named = { .name = "sw" };
	struct shmq_producer *p;
	struct shmq_consumer *c;
	uint64_t pos, wpos, mid = 0, pad = 0;
	char buf[1024];
	struct shmq *q;
	int n = 0;

	cr_assert_eq(shmq_create(h_path("pristine"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("pristine"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, &named, &c), 0);
	cr_assert_eq(shmq_producer_open(q, NULL, &p), 0);
	for (uint64_t i = 0; i < NMSG; i++) {
		send_tagged(p, SEED, i);
		if (i >= 3)
			cr_assert_geq(shmq_recv(c, buf, sizeof(buf), NULL,
						SHMQ_NOWAIT), 0);
	}
	shmq_producer_close(p);
	shmq_consumer_close(c);
	shmq_close(q);
	cr_assert_eq(h_peek_file(h_path("pristine"), 0, pristine,
				 sizeof(pristine)), 0);

	/* Walk the records from the tail to find the three to sweep. */
	pos = rd64(pristine + offsetof(struct shmq_hdr, tail_pos));
	wpos = rd64(pristine + offsetof(struct shmq_hdr, write_pos));
	rec_off[0] = SHMQ_PAGE + (pos & (CAP - 1));
	while (pos != wpos) {
		uint64_t off = pos & (CAP - 1), room = CAP - off;
		const uint8_t *r = pristine + SHMQ_PAGE + off;

		if (room < SHMQ_REC_HDR) {
			pos += room;
			continue;
		}
		if ((rd32(r + 4) & SHMQ_REC_TYPE_MASK) == SHMQ_REC_PAD) {
			pad = SHMQ_PAGE + off;
			pos += room;
			continue;
		}
		if (++n == 4)
			mid = SHMQ_PAGE + off;
		pos += (SHMQ_REC_HDR + rd32(r) + 7) & ~7ull;
	}
	cr_assert(mid && pad, "the pristine image has no middle or padding record (n %d)", n);
	rec_off[1] = mid;
	rec_off[2] = pad;
}

/* Drain C without waiting; every message must be the expected next one. */
static void drain_genuine(struct shmq_consumer *c, int peek, const char *what)
{
	static char buf[1024];
	struct shmq_msg m;
	uint64_t next = 0;
	bool first = true;
	const char *bad;
	ssize_t r;

	for (int i = 0; i < 4 * NMSG; i++) {
		if (peek) {
			r = shmq_peek(c, &m, SHMQ_NOWAIT);
			if (r == 0) {
				cr_assert_leq(m.len, sizeof(buf));
				memcpy(buf, m.data, m.len);
				r = (ssize_t)m.len;
			}
		} else {
			r = shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT);
		}
		if (r < 0) {
			cr_assert(r == -EAGAIN || r == SHMQ_EOF || r == SHMQ_EDIED ||
				  shmq_errdetail()[0], "%s: %s without a detail",
				  what, shmq_strerror((int)r));
			return;
		}
		bad = h_msg_check(buf, (size_t)r, SEED, m.seq, MAXLEN);
		cr_assert_null(bad, "%s delivered a message the producer did not send: seq %llu, %s",
			       what, (unsigned long long)m.seq, bad);
		cr_assert(first || m.seq == next, "%s: seq %llu after %llu", what,
			  (unsigned long long)m.seq, (unsigned long long)next - 1);
		first = false;
		next = m.seq + 1;
		if (peek)
			cr_assert_eq(shmq_release(c), 0);
	}
}

/* A new producer's messages reach a consumer that starts at the end, intact. */
static void produce_genuine(struct shmq *q)
{
	struct shmq_consumer_opts latest = { .start = SHMQ_START_LATEST };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	static char buf[1024];
	const char *bad;
	int sent = 0, err;
	ssize_t r;

	if (shmq_producer_open(q, NULL, &p) < 0) {
		cr_assert(shmq_errdetail()[0], "producer refused without a detail");
		return;
	}
	err = shmq_consumer_open(q, &latest, &c);
	for (uint64_t i = 0; i < 3; i++) {
		size_t len = h_msg_len(SEED2, i, MAXLEN);

		h_msg_fill(buf, len, SEED2, i);
		if (shmq_send(p, buf, len, SHMQ_NOWAIT) < 0)
			break;
		sent++;
	}
	for (int i = 0; err == 0 && i < sent; i++) {
		r = shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT);
		cr_assert_geq(r, 0, "own message %d: %s (%s)", i,
			      shmq_strerror((int)r), shmq_errdetail());
		bad = h_msg_check(buf, (size_t)r, SEED2, (uint64_t)i, MAXLEN);
		cr_assert_null(bad, "own message %d came back altered: %s", i, bad);
	}
	shmq_producer_close(p);
	if (err == 0)
		shmq_consumer_close(c);
}

/* Write the pristine image with byte OFF set to V, attach and use it. */
static void try_variant(const char *name, uint64_t off, uint8_t v)
{
	struct shmq_consumer_opts named = { .name = "sw" };
	struct shmq_consumer *c1, *c2;
	struct shmq_stat *st;
	struct shmq *q;
	char what[64];
	int fd, err;

	fd = open(h_path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, pristine, sizeof(pristine), 0),
		     (ssize_t)sizeof(pristine));
	cr_assert_eq(pwrite(fd, &v, 1, (off_t)off), 1);
	close(fd);

	err = shmq_open(h_path(name), 0, NULL, &q);
	if (err < 0) {
		cr_assert(err == -EBADMSG || err == -EPROTO ||
			  err == SHMQ_ENOTQUEUE,
			  "byte %llu = %#x: open: %s", (unsigned long long)off, v,
			  shmq_strerror(err));
		cr_assert(shmq_errdetail()[0], "byte %llu = %#x: no detail",
			  (unsigned long long)off, v);
		return;
	}
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	shmq_stat_free(st);
	snprintf(what, sizeof(what), "byte %llu = %#x", (unsigned long long)off, v);
	if (shmq_consumer_open(q, NULL, &c1) == 0) {
		drain_genuine(c1, 0, what);
		shmq_consumer_close(c1);
	}
	if (shmq_consumer_open(q, &named, &c2) == 0) {
		drain_genuine(c2, 1, what);
		shmq_consumer_close(c2);
	}
	produce_genuine(q);
	shmq_close(q);
}

/* The twelve values of the sweep for original byte B. */
static int sweep_values(uint8_t b, uint8_t out[12])
{
	int n = 0;

	out[n++] = 0x00;
	out[n++] = 0xff;
	for (int k = 0; k < 8; k++)
		out[n++] = (uint8_t)(b ^ (1u << k));
	out[n++] = (uint8_t)(b + 1);
	out[n++] = (uint8_t)(b - 1);
	return n;
}

static bool in_ready_word(uint64_t off)
{
	return off >= offsetof(struct shmq_hdr, ready) &&
	       off < offsetof(struct shmq_hdr, ready) + 4;
}

static int sweep_range(uint64_t from, uint64_t to)
{
	uint8_t vals[12];
	int n = 0;

	for (uint64_t off = from; off < to; off++) {
		if (in_ready_word(off))
			continue;	/* waits 2 s each: its own test */
		for (int i = 0, k = sweep_values(pristine[off], vals); i < k; i++) {
			try_variant("v", off, vals[i]);
			n++;
		}
	}
	return n;
}

Test(sweep, every_header_byte_corrupted_gives_a_clean_error_or_genuine_messages)
{
	make_pristine();
	cr_assert_eq(sweep_range(0, SHMQ_HDR_SIZE), 12 * (SHMQ_HDR_SIZE - 4));
}

Test(sweep, every_slot_byte_corrupted_gives_a_clean_error_or_genuine_messages)
{
	make_pristine();
	sweep_range(SHMQ_HDR_SIZE, SHMQ_HDR_SIZE + SLOTS * SHMQ_SLOT_SIZE);
}

Test(sweep, every_byte_of_three_record_headers_corrupted_gives_a_clean_error_or_genuine_messages)
{
	make_pristine();
	for (int r = 0; r < 3; r++)
		sweep_range(rec_off[r], rec_off[r] + SHMQ_REC_HDR);
}

struct ready_variant {
	char name[16];
	char path[4096];	/* h_path()'s buffers are not per thread */
	uint64_t off;
	uint8_t v;
	int err;
	char detail[256];
};

static void *ready_thread(void *arg)
{
	struct ready_variant *rv = arg;
	struct shmq *q;
	int fd = open(rv->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || pwrite(fd, pristine, sizeof(pristine), 0) < 0 ||
	    pwrite(fd, &rv->v, 1, (off_t)rv->off) != 1) {
		rv->err = 1;
		return NULL;
	}
	close(fd);
	rv->err = shmq_open(rv->path, 0, NULL, &q);
	snprintf(rv->detail, sizeof(rv->detail), "%s", shmq_errdetail());
	if (rv->err == 0)
		shmq_close(q);
	return NULL;
}

/*
 * A damaged ready word makes attach wait its bounded two seconds for a
 * creator, then refuse: run the 48 variants side by side.
 */
Test(sweep, a_corrupted_ready_word_is_refused_after_the_bounded_wait, .timeout = 60)
{
	static struct ready_variant rv[48];
	pthread_t t[48];
	uint8_t vals[12];
	int n = 0;

	make_pristine();
	for (uint64_t off = offsetof(struct shmq_hdr, ready);
	     in_ready_word(off); off++)
		for (int i = 0, k = sweep_values(pristine[off], vals); i < k; i++) {
			snprintf(rv[n].name, sizeof(rv[n].name), "r%d", n);
			snprintf(rv[n].path, sizeof(rv[n].path), "%s",
				 h_path(rv[n].name));
			rv[n].off = off;
			rv[n].v = vals[i];
			n++;
		}
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, ready_thread, &rv[i]), 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		if (rv[i].v == pristine[rv[i].off])
			continue;
		cr_assert_eq(rv[i].err, -EBADMSG, "byte %llu = %#x: %d",
			     (unsigned long long)rv[i].off, rv[i].v, rv[i].err);
		cr_assert(strstr(rv[i].detail, "ready"), "%s", rv[i].detail);
	}
}
