/* SPDX-License-Identifier: MIT */
/*
 * The plain libnats client the bridge is measured against
 * (bench/nats.sh), configured as the bridge is: asynchronous publishes
 * with the same window of outstanding acknowledgements, a stream with
 * file storage and one replica, a durable pull consumer that fetches
 * batches and acknowledges each batch with one ack (AckAll). Also fills
 * a shmq queue for the exporter. Prints elapsed seconds.
 *
 *   bench_nats pub URL STREAM N SIZE WINDOW
 *   bench_nats sub URL STREAM N BATCH
 *   bench_nats fill QUEUE N SIZE
 *   bench_nats warm QUEUE     (a 16 MiB overwrite-mode queue, every page
 *                              written once: a ring in its steady state)
 *   bench_nats del URL STREAM
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "shmq.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(natsStatus s, const char *what)
{
	if (s != NATS_OK) {
		fprintf(stderr, "%s: %s\n", what, natsStatus_GetText(s));
		exit(1);
	}
}

static void connect(const char *url, natsConnection **nc, jsCtx **js, int window)
{
	jsOptions jo;

	check(natsConnection_ConnectTo(nc, url), "connect");
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = window;
	check(natsConnection_JetStream(js, *nc, &jo), "jetstream");
}

int main(int argc, char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	double t0 = now();

	if (argc == 5 && !strcmp(argv[1], "fill")) {
		struct shmq_config cfg = { .capacity = 512u << 20, .max_message = 65536 };
		struct shmq *q;
		struct shmq_producer *p;
		long n = atol(argv[3]);
		size_t size = (size_t)atol(argv[4]);
		char *buf = calloc(1, size + 1);

		if (shmq_open(argv[2], SHMQ_OPEN_CREATE, &cfg, &q) ||
		    shmq_producer_open(q, NULL, &p))
			return 1;
		for (long i = 0; i < n; i++) {
			memcpy(buf, &i, sizeof(i) < size ? sizeof(i) : size);
			if (shmq_send(p, buf, size, SHMQ_FOREVER))
				return 1;
		}
		shmq_producer_close(p);
		shmq_close(q);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "warm")) {
		struct shmq_config cfg = { .capacity = 16u << 20, .max_message = 65536,
					   .when_full = SHMQ_WHEN_FULL_OVERWRITE };
		struct shmq *q;
		struct shmq_producer *p;
		static char buf[4096];

		if (shmq_open(argv[2], SHMQ_OPEN_CREATE, &cfg, &q) ||
		    shmq_producer_open(q, NULL, &p))
			return 1;
		for (long i = 0; i < 2 * (16l << 20) / 4128; i++)
			if (shmq_send(p, buf, sizeof(buf), SHMQ_FOREVER))
				return 1;
		shmq_producer_close(p);
		shmq_close(q);
		return 0;
	}
	if (argc == 7 && !strcmp(argv[1], "pub")) {
		const char *subj[1];
		char subject[200];
		jsStreamConfig cfg;
		jsStreamInfo *si = NULL;
		jsPubOptions po;
		long n = atol(argv[4]);
		int size = atoi(argv[5]);
		char *buf = calloc(1, (size_t)size + 1);

		connect(argv[2], &nc, &js, atoi(argv[6]));
		snprintf(subject, sizeof(subject), "shmq.%s", argv[3]);
		subj[0] = subject;
		jsStreamConfig_Init(&cfg);
		cfg.Name = argv[3];
		cfg.Subjects = subj;
		cfg.SubjectsLen = 1;
		cfg.Storage = js_FileStorage;
		cfg.Replicas = 1;
		check(js_AddStream(&si, js, &cfg, NULL, NULL), "add stream");
		jsStreamInfo_Destroy(si);
		for (long i = 0; i < n; i++) {
			char id[64];

			/* A message id per publish, as the bridge sends one. */
			snprintf(id, sizeof(id), "plain-%ld", i);
			jsPubOptions_Init(&po);
			po.MsgId = id;
			memcpy(buf, &i, sizeof(i) < (size_t)size ? sizeof(i) : (size_t)size);
			check(js_PublishAsync(js, subject, buf, size, &po), "publish");
		}
		jsPubOptions_Init(&po);
		po.MaxWait = 60000;
		check(js_PublishAsyncComplete(js, &po), "complete");
	} else if (argc == 6 && !strcmp(argv[1], "sub")) {
		natsSubscription *sub = NULL;
		jsConsumerConfig cc;
		jsSubOptions so;
		char subject[200];
		long n = atol(argv[4]), got = 0;
		int batch = atoi(argv[5]);

		connect(argv[2], &nc, &js, 256);
		snprintf(subject, sizeof(subject), "shmq.%s", argv[3]);
		jsConsumerConfig_Init(&cc);
		cc.Durable = "plain";
		cc.AckPolicy = js_AckAll;
		cc.MaxAckPending = 65536;
		jsSubOptions_Init(&so);
		so.Stream = argv[3];
		so.Config = cc;
		check(js_PullSubscribe(&sub, js, subject, "plain", NULL, &so, NULL), "subscribe");
		while (got < n) {
			natsMsgList l = { 0 };
			natsStatus s = natsSubscription_Fetch(&l, sub, batch, 5000, NULL);

			if (s == NATS_TIMEOUT)
				continue;
			check(s, "fetch");
			got += l.Count;
			if (l.Count)
				natsMsg_Ack(l.Msgs[l.Count - 1], NULL);
			natsMsgList_Destroy(&l);
		}
		natsConnection_Flush(nc);
		natsSubscription_Destroy(sub);
	} else if (argc == 4 && !strcmp(argv[1], "del")) {
		connect(argv[2], &nc, &js, 256);
		js_DeleteStream(js, argv[3], NULL, NULL);
	} else {
		fprintf(stderr, "usage: see the comment at the top of bench/bench_nats.c\n");
		return 2;
	}
	printf("%.6f\n", now() - t0);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return 0;
}
