/* SPDX-License-Identifier: MIT */
/*
 * torture_peer: the processes of the kill -9 torture and kill-point tests,
 * linked with the kill-point build of the library (SHMQ_KILL_AT works).
 *
 *   produce PATH SEED MODE PROGRESS [COUNT]
 *       recover, print "start SEQ", then send the tagged messages from SEQ
 *       on with sync mode MODE (0 none, 1 batch, 2 every), storing seq+1
 *       in the u64 of file PROGRESS after each send returns; with COUNT,
 *       close after message COUNT-1 and print "done".
 *   consume PATH SEED
 *       read until EOF, waiting through producer deaths; print
 *       "consumed N dup D gap G corrupt C" (seq continuity and content).
 *   recover PATH      open the producer role (recovery) and close it
 *   create PATH       create a queue (for the create:before-ready point)
 *
 * Exit: 0 done, 1 error. The watchdog is the alarm() the harness set.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define MAXMSG	256u

static int die(const char *what, int err)
{
	printf("error %s: %s (%s)\n", what, shmq_strerror(err), shmq_errdetail());
	fflush(stdout);
	return 1;
}

static int produce(int argc, char **argv)
{
	uint64_t seed = strtoull(argv[3], NULL, 0);
	struct shmq_producer_opts po = { .sync_mode = (uint32_t)atoi(argv[4]),
					 .sync_every_n = 16, .sync_every_ms = 5 };
	uint64_t count = argc > 6 ? strtoull(argv[6], NULL, 0) : UINT64_MAX;
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq *q;
	uint8_t msg[MAXMSG];
	uint64_t *progress, seq;
	int fd, err;

	fd = open(argv[5], O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return die("progress file", -errno);
	progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (progress == MAP_FAILED)
		return die("progress map", -errno);
	err = shmq_open(argv[2], 0, NULL, &q);
	if (err < 0)
		return die("open", err);
	err = shmq_producer_open(q, &po, &p);
	if (err < 0)
		return die("producer_open", err);
	err = shmq_stat_get(q, &st);
	if (err < 0)
		return die("stat", err);
	seq = st->next_seq;
	shmq_stat_free(st);
	printf("start %" PRIu64 "\n", seq);
	fflush(stdout);
	for (; seq < count; seq++) {
		size_t len = h_msg_len(seed, seq, MAXMSG);

		h_msg_fill(msg, len, seed, seq);
		err = shmq_send(p, msg, len, SHMQ_FOREVER);
		if (err < 0)
			return die("send", err);
		__atomic_store_n(progress, seq + 1, __ATOMIC_RELEASE);
	}
	err = shmq_producer_close(p);
	if (err < 0)
		return die("close", err);
	shmq_close(q);
	printf("done\n");
	return 0;
}

static int consume(char **argv)
{
	uint64_t seed = strtoull(argv[3], NULL, 0);
	unsigned long n = 0, dup = 0, gap = 0, corrupt = 0;
	struct timespec ms = { 0, 1000000 };
	struct shmq_consumer *c;
	struct shmq_msg m;
	struct shmq *q;
	uint8_t buf[MAXMSG];
	uint64_t expect = 0;
	ssize_t r;
	int err;

	err = shmq_open(argv[2], 0, NULL, &q);
	if (err < 0)
		return die("open", err);
	err = shmq_consumer_open(q, NULL, &c);
	if (err < 0)
		return die("consumer_open", err);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		r = shmq_recv(c, buf, sizeof(buf), &m, 1000000000);
		if (r == SHMQ_EOF)
			break;
		if (r == SHMQ_EDIED || r == -ETIMEDOUT) {
			nanosleep(&ms, NULL);	/* a new producer is coming */
			continue;
		}
		if (r < 0)
			return die("recv", (int)r);
		if (m.seq < expect)
			dup++;
		else if (m.seq > expect)
			gap += m.seq - expect;
		if (h_msg_check(buf, (size_t)r, seed, m.seq, MAXMSG))
			corrupt++;
		expect = m.seq + 1;
		n++;
	}
	printf("consumed %lu dup %lu gap %lu corrupt %lu next %" PRIu64 "\n",
	       n, dup, gap, corrupt, expect);
	shmq_consumer_close(c);
	shmq_close(q);
	return 0;
}

int main(int argc, char **argv)
{
	struct shmq_producer *p;
	struct shmq_config cfg = { .capacity = 65536, .max_message = MAXMSG };
	struct shmq *q;
	int err;

	if (argc < 3)
		return 1;
	if (!strcmp(argv[1], "produce") && argc >= 6)
		return produce(argc, argv);
	if (!strcmp(argv[1], "consume") && argc >= 4)
		return consume(argv);
	if (!strcmp(argv[1], "create"))
		return shmq_create(argv[2], &cfg) < 0;
	if (!strcmp(argv[1], "recover")) {
		err = shmq_open(argv[2], 0, NULL, &q);
		if (err < 0)
			return die("open", err);
		err = shmq_producer_open(q, NULL, &p);
		if (err < 0)
			return die("producer_open", err);
		shmq_producer_close(p);
		shmq_close(q);
		printf("recovered\n");
		return 0;
	}
	return 1;
}
