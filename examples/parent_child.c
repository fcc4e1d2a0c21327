/* SPDX-License-Identifier: MIT */
/*
 * The seed's parent and child, with a queue that has no path: the parent
 * creates an anonymous queue (a memfd nobody can open by name, and
 * nobody can truncate), attaches a consumer and forks; the child attaches
 * through the inherited descriptor, becomes the producer and sends the
 * student records {id, name, age}; the parent prints them. The child's
 * producer closes as it exits, and that is the parent's end of stream.
 *
 *   parent_child [N]      N records (default 10)
 *
 * The records use the fixed 48-byte layout of tools/student.h, the one
 * `shmq-producer` and `shmq-consumer` use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#include "student.h"

static int die(const char *what, int err)
{
	fprintf(stderr, "parent_child: %s: %s (%s)\n", what,
		shmq_strerror(err), shmq_errdetail());
	return 1;
}

/* The child: attach afresh, send N records, close (the end of stream). */
static int child(struct shmq *inherited, int n)
{
	struct shmq_producer *p;
	struct shmq *q;
	int r;

	/*
	 * The parent's handles are dead here (the library closed their
	 * locks at fork()): attach through the inherited descriptor, which
	 * gives this process role locks of its own.
	 */
	r = shmq_open_fd(shmq_fd(inherited), 0, &q);
	if (r < 0)
		return die("attaching in the child", r);
	r = shmq_producer_open(q, NULL, &p);
	if (r < 0)
		return die("becoming the producer", r);
	for (int i = 1; i <= n && r == 0; i++) {
		struct student s = { .id = (uint64_t)i, .age = 18 };
		unsigned char rec[STUDENT_RECORD_SIZE];

		strcpy(s.name, "wangrui");
		student_encode(&s, rec);
		r = shmq_send(p, rec, sizeof(rec), SHMQ_FOREVER);
	}
	if (r < 0)
		return die("sending", r);
	r = shmq_producer_close(p);
	shmq_close(q);
	return r < 0 ? die("closing", r) : 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10;
	struct shmq_consumer *c;
	struct shmq *q;
	ssize_t r;
	pid_t pid;
	int status;

	r = shmq_create_anon(NULL, &q);
	if (r < 0)
		return die("creating the queue", (int)r);
	/* Before the fork: every record the child sends waits for us. */
	r = shmq_consumer_open(q, NULL, &c);
	if (r < 0)
		return die("attaching the consumer", (int)r);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return perror("fork"), 1;
	if (pid == 0)
		_exit(child(q, n));
	for (;;) {
		unsigned char rec[STUDENT_RECORD_SIZE];
		struct student s;

		r = shmq_recv(c, rec, sizeof(rec), NULL, SHMQ_FOREVER);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		if (r != STUDENT_RECORD_SIZE) {
			fprintf(stderr, "parent_child: a %zd-byte message\n", r);
			continue;
		}
		student_decode(rec, &s);
		printf("id = %d, name = %s, age = %d\n", (int)s.id, s.name,
		       (int)s.age);
	}
	if (waitpid(pid, &status, 0) < 0)
		return perror("waitpid"), 1;
	shmq_consumer_close(c);
	shmq_close(q);
	/* SHMQ_EOF: the child closed; SHMQ_EDIED: it died first. */
	if (r != SHMQ_EOF)
		return die("receiving", (int)r);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
