/* SPDX-License-Identifier: MIT */
/*
 * shmq-producer: the seed's student-record writer on a queue. Where the
 * seed overwrote one record in place every second, this sends each record
 * as a message, so every consumer reads each one exactly once.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <shmq.h>

#include "common.h"
#include "student.h"

struct producer_args {
	const char *path;
	int create;
	int has_count;
	uint64_t count;
	uint64_t interval_ms;
	struct student s;
};

static const char usage_text[] =
"Usage: shmq-producer PATH [--create] [--count N] [--interval MS]\n"
"                          [--first-id N] [--name S] [--age N] [--any-owner]\n"
"Send student records {id, name, age} to the queue PATH, ids counting up.\n"
"\n"
"  --create         create PATH with the default geometry if it is missing\n"
"  --count N        send N records, then close (default: until interrupted)\n"
"  --interval MS    pause between records (default 1000)\n"
"  --first-id N     id of the first record (default 1)\n"
"  --name S         name in every record, at most 31 bytes (default wangrui)\n"
"  --age N          age in every record (default 18)\n"
"  --any-owner      accept a queue file that another user owns\n"
"\n"
"SIGINT or SIGTERM close the queue cleanly: consumers see the end.\n";

static int parse_opt(int c, struct producer_args *a)
{
	switch (c) {
	case 'c':
		a->create = 1;
		return 0;
	case 'N':
		a->has_count = 1;
		return parse_u64("--count", optarg, &a->count);
	case 'i':
		return parse_u64("--interval", optarg, &a->interval_ms);
	case 'f':
		return parse_u64("--first-id", optarg, &a->s.id);
	case 'n':
		if (strlen(optarg) >= STUDENT_NAME_SIZE)
			return tool_usage_error("--name: at most %d bytes",
						STUDENT_NAME_SIZE - 1);
		strcpy(a->s.name, optarg);
		return 0;
	case 'a':
		return parse_u32("--age", optarg, &a->s.age);
	}
	return -EINVAL;
}

static int parse_args(int argc, char **argv, struct producer_args *a)
{
	static const struct option longopts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'N' },
		{ "interval", required_argument, NULL, 'i' },
		{ "first-id", required_argument, NULL, 'f' },
		{ "name", required_argument, NULL, 'n' },
		{ "age", required_argument, NULL, 'a' },
		TOOL_OPT_ANY_OWNER,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(usage_text, stdout), -1;
		if (c == 'V')
			return printf("shmq-producer %s\n",
				      SHMQ_VERSION_STRING), -1;
		if (c == '?' || c == ':')
			return tool_getopt_error(c, argv);
		if (parse_opt(c, a))
			return EXIT_USAGE;
	}
	if (a->interval_ms > 86400000)
		return tool_usage_error("--interval: at most a day");
	if (optind >= argc)
		return tool_usage_error("missing PATH");
	if (optind + 1 < argc)
		return tool_usage_error("unexpected argument '%s'",
					argv[optind + 1]);
	a->path = argv[optind];
	return 0;
}

static void pause_ms(uint64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	/* A stop signal cuts the pause short. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !tool_stop)
		;
}

static int produce(struct producer_args *a, struct shmq_producer *p)
{
	unsigned char rec[STUDENT_RECORD_SIZE];
	uint64_t sent = 0;
	int r;

	while (!tool_stop && (!a->has_count || sent < a->count)) {
		if (sent && a->interval_ms)
			pause_ms(a->interval_ms);
		if (tool_stop)
			break;
		student_encode(&a->s, rec);
		r = shmq_send(p, rec, sizeof(rec), SHMQ_FOREVER);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return tool_fail(a->path, "send failed", r);
		a->s.id++;
		sent++;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct producer_args a = {
		.interval_ms = 1000,
		.s = { .id = 1, .name = "wangrui", .age = 18 },
	};
	struct shmq_producer *p = NULL;
	struct shmq *q;
	int r, rc;

	tool_init("shmq-producer");
	tool_traits(TOOL_TAKES_CREATE);
	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? tool_flush_stdout(EXIT_OK) : r;
	tool_catch_stop_signals();
	r = tool_open(a.path, a.create ? SHMQ_OPEN_CREATE : 0, &q);
	if (r)
		return r;
	r = shmq_producer_open(q, NULL, &p);
	if (r < 0)
		r = tool_fail(a.path, "cannot become the producer", r);
	else
		r = produce(&a, p);
	/* A clean close, even when interrupted: consumers see EOF. */
	rc = shmq_producer_close(p);
	if (rc < 0 && !r && p)
		r = tool_fail(a.path, "close failed", rc);
	shmq_close(q);
	return r;
}
