/* SPDX-License-Identifier: MIT */
/*
 * shmq-consumer: the seed's student-record reader on a queue. It prints
 * each record once, in order, in the seed's line format, and releases a
 * record only after its line is written.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "common.h"
#include "student.h"

struct consumer_args {
	const char *path;
	const char *name;
	int kind;		/* enum tool_consumer_kind */
	int create;
	int has_count;
	uint64_t count;
};

static const char usage_text[] =
"Usage: shmq-consumer PATH [--create] [--count N] [--name NAME | --group NAME]\n"
"                          [--any-owner]\n"
"Print the student records of the queue PATH, one line per record:\n"
"  id = 1, name = wangrui, age = 18\n"
"\n"
"  --create         create PATH with the default geometry if it is missing\n"
"  --count N        exit 0 after N records (default: until the producer closes)\n"
"  --name NAME      a named consumer: resumes where it stopped\n"
"  --group NAME     share the records with the group's other members\n"
"  --any-owner      accept a queue file that another user owns\n"
"\n"
"Exit status: 0 at the end of the stream, 3 if the producer died,\n"
"6 if evicted.\n";

static int parse_opt(int c, struct consumer_args *a, int *kinds)
{
	switch (c) {
	case 'c':
		a->create = 1;
		return 0;
	case 'N':
		a->has_count = 1;
		return parse_u64("--count", optarg, &a->count) ? EXIT_USAGE : 0;
	case 'n':
	case 'g':
		(*kinds)++;
		a->kind = c == 'n' ? TOOL_BROADCAST : TOOL_GROUP;
		a->name = optarg;
		return tool_check_name(c == 'n' ? "--name" : "--group", optarg);
	}
	return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct consumer_args *a)
{
	static const struct option longopts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'N' },
		{ "name", required_argument, NULL, 'n' },
		{ "group", required_argument, NULL, 'g' },
		TOOL_OPT_ANY_OWNER,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, r, kinds = 0;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'h')
			return fputs(usage_text, stdout), -1;
		if (c == 'V')
			return printf("shmq-consumer %s\n",
				      SHMQ_VERSION_STRING), -1;
		if (c == '?' || c == ':')
			return tool_getopt_error(c, argv);
		r = parse_opt(c, a, &kinds);
		if (r)
			return r;
	}
	if (kinds > 1)
		return tool_usage_error("--name and --group exclude each other");
	if (optind >= argc)
		return tool_usage_error("missing PATH");
	if (optind + 1 < argc)
		return tool_usage_error("unexpected argument '%s'",
					argv[optind + 1]);
	a->path = argv[optind];
	return 0;
}

/* Print one record; 0, or the exit status (EXIT_PIPE: stdout closed). */
static int print_record(const char *path, const struct shmq_msg *m)
{
	struct student s;
	char name[TOOL_ESC_MAX(STUDENT_NAME_SIZE)];
	char line[64 + sizeof(name)];
	int n, r;

	if (m->len != STUDENT_RECORD_SIZE) {
		tool_msg("%s: message seq %" PRIu64 " is not a student record "
			 "(%zu bytes, expected %d)", path, m->seq, m->len,
			 STUDENT_RECORD_SIZE);
		return EXIT_ERROR;
	}
	student_decode(m->data, &s);
	/* One record, one line, and nothing a terminal would act on. */
	tool_escape(name, sizeof(name), s.name, strlen(s.name), TOOL_ESC_TEXT);
	n = snprintf(line, sizeof(line), "id = %" PRIu64 ", name = %s, "
		     "age = %" PRIu32 "\n", s.id, name, s.age);
	r = write_all(STDOUT_FILENO, line, n);
	if (r == -EPIPE)
		return EXIT_PIPE;
	if (r < 0) {
		tool_msg("%s: writing stdout: %s", path, strerror(-r));
		return EXIT_ERROR;
	}
	return 0;
}

static int consume(const struct consumer_args *a, struct shmq_consumer *c)
{
	struct shmq_msg m;
	uint64_t got = 0;
	int r;

	while (!a->has_count || got < a->count) {
		r = tool_peek(c, &m, SHMQ_FOREVER);
		if (r == -EINTR)
			continue;
		if (r == SHMQ_EOF)
			return EXIT_OK;
		if (r == SHMQ_EDIED) {
			tool_msg("%s: producer died without closing the queue",
				 a->path);
			return EXIT_DIED;
		}
		if (r < 0)
			return tool_fail(a->path, "receive failed", r);
		r = print_record(a->path, &m);
		if (r)
			return r;
		r = shmq_release(c);
		if (r < 0)
			return tool_fail(a->path, "release failed", r);
		got++;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct consumer_args a = { .kind = TOOL_BROADCAST };
	struct shmq_consumer *c = NULL;
	struct shmq *q;
	int r;

	tool_init("shmq-consumer");
	tool_traits(TOOL_NEEDS_STDOUT | TOOL_TAKES_CREATE);
	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? tool_flush_stdout(EXIT_OK) : r;
	r = tool_open(a.path, a.create ? SHMQ_OPEN_CREATE : 0, &q);
	if (r)
		return r;
	r = tool_consumer_open(q, a.path, a.kind, a.name, SHMQ_START_OLDEST, 0,
			       &c);
	if (!r)
		r = consume(&a, c);
	shmq_consumer_close(c);
	shmq_close(q);
	return r;
}
