/* SPDX-License-Identifier: MIT */
/*
 * The C ends of the bridge tests (tests/nats/test_bridge.sh): a source
 * producer that sends messages of random sizes (1 B to 4 KiB, contents
 * from a seed and the message's index) and a far consumer that checks
 * them, byte for byte and in order, through the C API.
 *
 *   nats_peer send QUEUE N SEED [closed|aborted|died] [PAUSE_EVERY [FIRST]]
 *   nats_peer check QUEUE N SEED NAME END TIMEOUT_S
 *   nats_peer mkstream URL STREAM SUBJECT file|memory|mirror:ORIGIN
 *   nats_peer pub URL SUBJECT N
 *
 * send: messages FIRST (default 0) to FIRST + N - 1 (a later session
 * goes on where an earlier one stopped, for one check of both).
 * check: a named consumer reads on across sessions that died (a killed
 * importer) and stops at the first other end, which must be END (closed,
 * aborted); it fails on a message out of order, duplicated, missing or
 * damaged, and prints "ok N died D".
 *
 * mkstream: a stream made by someone else, with a configuration the
 * bridge would not choose (memory storage, other subjects, a mirror of
 * ORIGIN: SUBJECT "-", none of its own).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "shmq.h"
#include "harness.h"

static size_t msg_len(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed ^ (i * 0x9e3779b97f4a7c15ull)) + 0x632be59bd9b4e019ull;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return 1 + (size_t)(x % 4096);
}

static int do_send(int argc, char **argv)
{
	struct shmq_config cfg = { .capacity = 4u << 20, .max_message = 4096 };
	struct shmq *q;
	struct shmq_producer *p;
	uint64_t n = strtoull(argv[3], NULL, 10), seed = strtoull(argv[4], NULL, 10);
	const char *end = argc > 5 ? argv[5] : "closed";
	uint64_t pause = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
	uint64_t first = argc > 7 ? strtoull(argv[7], NULL, 10) : 0;
	char buf[4096];
	int ret;

	ret = shmq_open(argv[2], SHMQ_OPEN_CREATE, &cfg, &q);
	if (ret == 0)
		ret = shmq_producer_open(q, NULL, &p);
	if (ret < 0) {
		fprintf(stderr, "send: %s (%s)\n", shmq_strerror(ret), shmq_errdetail());
		return 1;
	}
	for (uint64_t i = first; i < first + n; i++) {
		size_t len = msg_len(seed, i);

		h_msg_fill(buf, len, seed, i);
		ret = shmq_send(p, buf, len, SHMQ_FOREVER);
		if (ret < 0) {
			fprintf(stderr, "send %llu: %s\n", (unsigned long long)i,
				shmq_strerror(ret));
			return 1;
		}
		if (pause && i % pause == pause - 1)
			usleep(20000);	/* spread over time, for the kill test */
	}
	if (!strcmp(end, "died"))
		_exit(0);	/* the role is dropped by the kernel */
	ret = !strcmp(end, "aborted") ? shmq_producer_abort(p) : shmq_producer_close(p);
	shmq_close(q);
	return ret < 0;
}

static int do_check(char **argv)
{
	struct shmq *q;
	struct shmq_consumer *c;
	struct shmq_consumer_opts co = { .name = argv[5] };
	uint64_t n = strtoull(argv[3], NULL, 10), seed = strtoull(argv[4], NULL, 10);
	const char *want_end = argv[6];
	int64_t deadline = h_now_ns() + (int64_t)strtoll(argv[7], NULL, 10) * 1000000000;
	char exp[4096];
	uint64_t i = 0, died = 0;
	struct shmq_msg m;
	int ret;

	for (;;) {
		ret = shmq_open(argv[2], 0, NULL, &q);
		if (ret == 0)
			break;
		if (ret != -ENOENT || (int64_t)h_now_ns() > deadline) {
			fprintf(stderr, "check: open: %s\n", shmq_strerror(ret));
			return 1;
		}
		usleep(20000);
	}
	ret = shmq_consumer_open(q, &co, &c);
	if (ret < 0) {
		fprintf(stderr, "check: consumer: %s\n", shmq_strerror(ret));
		return 1;
	}
	for (;;) {
		ret = shmq_peek(c, &m, 100000000);
		if (ret == -EAGAIN || ret == -ETIMEDOUT) {
			if ((int64_t)h_now_ns() > deadline) {
				fprintf(stderr, "check: timed out after %llu messages\n",
					(unsigned long long)i);
				return 1;
			}
			continue;
		}
		if (ret == SHMQ_EDIED) {
			died++;
			continue;
		}
		if (ret == SHMQ_EOF || ret == SHMQ_EABORTED) {
			const char *got = ret == SHMQ_EOF ? "closed" : "aborted";

			if (i != n || strcmp(got, want_end)) {
				fprintf(stderr, "check: end %s after %llu messages, want %s after %llu\n",
					got, (unsigned long long)i, want_end,
					(unsigned long long)n);
				return 1;
			}
			break;
		}
		if (ret < 0) {
			fprintf(stderr, "check: %s (%s)\n", shmq_strerror(ret), shmq_errdetail());
			return 1;
		}
		if (i >= n) {
			fprintf(stderr, "check: message %llu past the %llu sent\n",
				(unsigned long long)i, (unsigned long long)n);
			return 1;
		}
		if (m.len != msg_len(seed, i)) {
			fprintf(stderr, "check: message %llu: %zu bytes, want %zu (duplicate, loss or reordering)\n",
				(unsigned long long)i, m.len, msg_len(seed, i));
			return 1;
		}
		h_msg_fill(exp, m.len, seed, i);
		if (memcmp(exp, m.data, m.len)) {
			fprintf(stderr, "check: message %llu: contents differ\n",
				(unsigned long long)i);
			return 1;
		}
		shmq_release(c);
		i++;
	}
	printf("ok %llu died %llu\n", (unsigned long long)i, (unsigned long long)died);
	shmq_consumer_close(c);
	shmq_close(q);
	return 0;
}

static int do_mkstream(char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	jsStreamConfig cfg;
	jsStreamSource mirror;
	jsErrCode jerr = 0;
	const char *subjects[1] = { argv[4] };
	natsStatus s;

	s = natsConnection_ConnectTo(&nc, argv[2]);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&js, nc, NULL);
	if (s == NATS_OK) {
		jsStreamConfig_Init(&cfg);
		cfg.Name = argv[3];
		if (strcmp(argv[4], "-")) {
			cfg.Subjects = subjects;
			cfg.SubjectsLen = 1;
		}
		cfg.Storage = strcmp(argv[5], "memory") ? js_FileStorage
							 : js_MemoryStorage;
		if (!strncmp(argv[5], "mirror:", 7)) {
			jsStreamSource_Init(&mirror);
			mirror.Name = argv[5] + 7;
			cfg.Mirror = &mirror;
		}
		s = js_AddStream(&si, js, &cfg, NULL, &jerr);
	}
	if (s != NATS_OK)
		fprintf(stderr, "mkstream: %s (jetstream error %d)\n",
			natsStatus_GetText(s), (int)jerr);
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);	/* no nats_Close(): see shmq-nats.c */
	return s == NATS_OK ? 0 : 1;
}

/* pub: N plain messages (no id) on SUBJECT, someone else's traffic. */
static int do_pub(char **argv)
{
	natsConnection *nc = NULL;
	natsStatus s;
	int n = atoi(argv[4]);

	s = natsConnection_ConnectTo(&nc, argv[2]);
	for (int i = 0; i < n && s == NATS_OK; i++) {
		s = natsConnection_PublishString(nc, argv[3], "foreign");
		if (i % 100 == 99)
			usleep(10000);
	}
	if (s == NATS_OK)
		s = natsConnection_FlushTimeout(nc, 5000);
	if (s != NATS_OK)
		fprintf(stderr, "pub: %s\n", natsStatus_GetText(s));
	natsConnection_Destroy(nc);	/* no nats_Close(): see shmq-nats.c on main */
	return s == NATS_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "send"))
		return do_send(argc, argv);
	if (argc == 8 && !strcmp(argv[1], "check"))
		return do_check(argv);
	if (argc == 6 && !strcmp(argv[1], "mkstream"))
		return do_mkstream(argv);
	if (argc == 5 && !strcmp(argv[1], "pub"))
		return do_pub(argv);
	fprintf(stderr, "usage: nats_peer send QUEUE N SEED [END [PAUSE]] | check QUEUE N SEED NAME END TIMEOUT_S | mkstream URL STREAM SUBJECT file|memory|mirror:ORIGIN | pub URL SUBJECT N\n");
	return 2;
}
