/* SPDX-License-Identifier: MIT */
/*
 * The fast paths of shmq_send and shmq_recv (lib/producer.c append_fast,
 * lib/consumer.c recv_fast) check what the slow path checks. A hostile
 * writer that knows the format (the salt is in the file) forges the
 * checksum of each record below, so that only the other checks can tell:
 * the sequence, the lap tag, the incarnation, the type, the length. A
 * broadcast consumer that has received one message takes the fast path
 * for the next; each forged record must be refused there (-EBADMSG),
 * exactly as shmq_peek (the slow path) refuses it. And what the fast
 * path hands out (length, sequence, flags) is what the slow path says.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "shmq.h"
#include "harness.h"
#include "internal.h"	/* struct shmq_hdr, struct shmq_rec, shmqi_rec_crc */

TestSuite(fastpath, .init = h_setup, .fini = h_teardown, .timeout = 20);

enum forge { SEQ, LAP, INC, TYPE, FLAGS, LEN, NFORGE };
static const char *forge_name[] = { "seq", "lap", "inc", "type", "flags", "len" };

/*
 * A queue, a broadcast consumer, messages "m0" and "m1" (8 bytes each);
 * the consumer receives m0 (learning the sequence); then m1's header is
 * forged as F says, with a valid checksum.
 */
static void setup(const char *name, struct shmq **qp, struct shmq_consumer **cp,
		  struct shmq_consumer **c2p, enum forge f)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 64,
				   .checksum = SHMQ_CHECKSUM_HEADER };
	struct shmq_producer *p;
	struct shmq_hdr h;
	struct shmq_rec r;
	char buf[64];
	off_t off;

	cr_assert_eq(shmq_create(h_path(name), &cfg), 0, "%s", shmq_errdetail());
	cr_assert_eq(shmq_open(h_path(name), 0, NULL, qp), 0);
	cr_assert_eq(shmq_consumer_open(*qp, NULL, cp), 0);
	if (c2p)
		cr_assert_eq(shmq_consumer_open(*qp, NULL, c2p), 0);
	cr_assert_eq(shmq_producer_open(*qp, NULL, &p), 0);
	cr_assert_eq(shmq_send(p, "m0......", 8, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_send(p, "m1......", 8, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_recv(*cp, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 8);
	if (c2p)
		cr_assert_eq(shmq_recv(*c2p, buf, sizeof(buf), NULL, SHMQ_NOWAIT), 8);
	/* The producer stays open: m1 is the last record, write_pos after it. */
	cr_assert_eq(h_peek_file(h_path(name), 0, &h, sizeof(h)), 0);
	off = (off_t)(h.data_off + ((h.write_pos - 40) & (h.capacity - 1)));
	cr_assert_eq(h_peek_file(h_path(name), off, &r, sizeof(r)), 0);
	cr_assert_eq(r.len, 8);
	switch (f) {
	case SEQ:	r.seq += 3; break;
	case LAP:	r.lap += 1; break;
	case INC:	r.inc += 1; break;
	case TYPE:	r.type = (r.type & ~SHMQ_REC_TYPE_MASK) | 7; break;
	case FLAGS:	r.type |= 0x800000u; break;
	case LEN:	r.len = 40; break;	/* runs past write_pos */
	default:	break;
	}
	r.crc = 0;
	r.crc = shmqi_rec_crc(h.salt, &r, NULL, 0);
	cr_assert_eq(h_poke(h_path(name), off, &r, sizeof(r)), 0);
	/* Left open on purpose (a live producer); the process exits. */
}

Test(fastpath, forged_records_are_refused_as_the_slow_path_refuses_them)
{
	for (int f = 0; f < NFORGE; f++) {
		struct shmq_consumer *c, *c2;
		struct shmq_msg m;
		struct shmq *q;
		char name[32], buf[64];

		snprintf(name, sizeof(name), "f%d.q", f);
		setup(name, &q, &c, &c2, (enum forge)f);
		cr_expect_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT),
			     -EBADMSG, "forged %s: shmq_recv", forge_name[f]);
		cr_expect_eq(shmq_peek(c2, &m, SHMQ_NOWAIT), -EBADMSG,
			     "forged %s: shmq_peek", forge_name[f]);
	}
}

/* What the fast path hands out is what the slow path (peek) says. */
Test(fastpath, messages_come_out_as_the_slow_path_gives_them)
{
	struct shmq_config cfg = { .capacity = 4096, .max_message = 64 };
	struct shmq_producer_opts po = {
		.flags = SHMQ_PRODUCER_FRAMING(SHMQ_FRAMING_LINES) };
	struct shmq_consumer *c, *c2;
	struct shmq_producer *p;
	struct shmq_msg m, m2;
	struct shmq *q;
	char buf[64];

	cr_assert_eq(shmq_create(h_path("m.q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("m.q"), 0, NULL, &q), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c2), 0);
	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	for (int i = 0; i < 200; i++) {
		size_t len = (size_t)(i % 65);
		char msg[64];

		memset(msg, 'a' + i % 26, len);
		cr_assert_eq(shmq_send(p, msg, len, SHMQ_NOWAIT), 0);
		memset(&m, 0xff, sizeof(m));
		cr_assert_eq(shmq_recv(c, buf, sizeof(buf), &m, SHMQ_NOWAIT),
			     (ssize_t)len);
		cr_assert_eq(shmq_peek(c2, &m2, SHMQ_NOWAIT), 0);
		cr_assert_eq(m.len, m2.len);
		cr_assert_eq(m.seq, m2.seq);
		cr_assert_eq(m.flags, m2.flags, "flags %#x, peek %#x", m.flags, m2.flags);
		cr_assert_eq(m.lost, m2.lost);
		cr_assert_eq(memcmp(buf, m2.data, len), 0);
		cr_assert_eq(m.data, buf);
		cr_assert_eq(shmq_release(c2), 0);
		/* A buffer too small: refused, the message stays next. */
		if (len > 1) {
			cr_assert_eq(shmq_send(p, msg, len, SHMQ_NOWAIT), 0);
			cr_assert_eq(shmq_recv(c, buf, len - 1, &m, SHMQ_NOWAIT),
				     -EMSGSIZE);
			cr_assert_eq(shmq_recv(c, buf, len, &m, SHMQ_NOWAIT),
				     (ssize_t)len);
			cr_assert_eq(shmq_recv(c2, buf, len, &m2, SHMQ_NOWAIT),
				     (ssize_t)len);
			cr_assert_eq(m.seq, m2.seq);
		}
	}
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(shmq_recv(c, buf, sizeof(buf), NULL, SHMQ_NOWAIT), SHMQ_EOF);
	shmq_consumer_close(c);
	shmq_consumer_close(c2);
	shmq_close(q);
}
