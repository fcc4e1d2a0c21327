/* SPDX-License-Identifier: MIT */
/*
 * fdcheck DIR: the library never leaves a descriptor on 0, 1 or 2, and
 * every descriptor it keeps is close-on-exec (issue 10). It closes stdin,
 * stdout and stderr, then creates DIR/fd.q, attaches, takes the producer
 * role and two consumer roles (each its own open file description), sends
 * and receives a message; then 0-2 must still be closed and every other
 * descriptor FD_CLOEXEC. Before the fix the queue file took descriptor 0.
 * It reports on descriptor 100 (a dup of stderr made before the close),
 * and exits 0 when all holds, 1 otherwise. Descriptors inherited from
 * the parent are not the library's and are left out. Run by test_fds.sh.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#define REPORT_FD 100
#define MAX_FD 1024

/* Descriptors open before the library ran (inherited): not its own. */
static unsigned char inherited[MAX_FD];

static void note_inherited(void)
{
	for (int fd = 0; fd < MAX_FD; fd++)
		inherited[fd] = fcntl(fd, F_GETFD) >= 0;
}

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(REPORT_FD, buf, (size_t)n) < 0)
		_exit(2);
}

static int check(const char *when)
{
	struct dirent *e;
	int bad = 0, fd, self;
	DIR *d;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) {
			say("fdcheck: %s: descriptor %d is open\n", when, fd);
			bad = 1;
		}
	}
	d = opendir("/proc/self/fd");
	if (!d) {
		say("fdcheck: %s: cannot read /proc/self/fd\n", when);
		return 1;
	}
	self = dirfd(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == self || fd == REPORT_FD ||
		    (fd >= 3 && fd < MAX_FD && inherited[fd]))
			continue;
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
			say("fdcheck: %s: descriptor %d is not close-on-exec\n",
			    when, fd);
			bad = 1;
		}
	}
	closedir(d);
	return bad;
}

int main(int argc, char **argv)
{
	struct shmq_consumer_opts named = {
		.kind = SHMQ_CONSUMER_BROADCAST, .name = "fdcheck" };
	struct shmq_consumer_opts anon = { .kind = SHMQ_CONSUMER_BROADCAST };
	struct shmq_consumer *c1 = NULL, *c2 = NULL;
	struct shmq_producer *p = NULL;
	struct shmq *q = NULL;
	struct shmq_msg m;
	char path[4096], buf[16];
	int bad = 0, r;

	if (argc != 2 || dup2(STDERR_FILENO, REPORT_FD) != REPORT_FD)
		return 2;
	snprintf(path, sizeof(path), "%s/fd.q", argv[1]);
	note_inherited();
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	close(STDERR_FILENO);

	r = shmq_create(path, NULL);
	if (r < 0) {
		say("fdcheck: create: %s (%d)\n", shmq_errdetail(), r);
		return 1;
	}
	bad |= check("after shmq_create");
	r = shmq_open(path, 0, NULL, &q);
	if (r < 0) {
		say("fdcheck: open: %s (%d)\n", shmq_errdetail(), r);
		return 1;
	}
	bad |= check("after shmq_open");
	if (shmq_producer_open(q, NULL, &p) < 0 ||
	    shmq_consumer_open(q, &named, &c1) < 0 ||
	    shmq_consumer_open(q, &anon, &c2) < 0) {
		say("fdcheck: roles: %s\n", shmq_errdetail());
		return 1;
	}
	bad |= check("with a producer and two consumers");
	if (shmq_send(p, "x", 1, SHMQ_NOWAIT) < 0 ||
	    shmq_recv(c1, buf, sizeof(buf), &m, SHMQ_NOWAIT) != 1 ||
	    shmq_recv(c2, buf, sizeof(buf), &m, SHMQ_NOWAIT) != 1) {
		say("fdcheck: send/recv: %s\n", shmq_errdetail());
		return 1;
	}
	bad |= check("after send and receive");
	shmq_consumer_close(c1);
	shmq_consumer_close(c2);
	shmq_producer_close(p);
	shmq_close(q);
	/* A second create: each of its descriptors lands on 0 first. */
	snprintf(path, sizeof(path), "%s/fd2.q", argv[1]);
	r = shmq_open(path, SHMQ_OPEN_CREATE, NULL, &q);
	if (r < 0) {
		say("fdcheck: open --create: %s (%d)\n", shmq_errdetail(), r);
		return 1;
	}
	bad |= check("after shmq_open(SHMQ_OPEN_CREATE)");
	shmq_close(q);
	if (!bad)
		say("fdcheck: ok\n");
	return bad;
}
