/* SPDX-License-Identifier: MIT */
/*
 * One thread, one epoll loop, serving two queues and a timer: the
 * pattern of a server that also reads sockets (issue 14). Each queue's
 * consumer gives a descriptor (shmq_consumer_fd) that the loop watches
 * edge-triggered; when it fires, the loop reads with SHMQ_NOWAIT until
 * -EAGAIN, which re-arms it. A timerfd ticks every 20 ms meanwhile.
 *
 *   epoll_loop DIR [N]
 *
 * makes DIR/a and DIR/b, starts a producer process for each (N messages,
 * default 1000, in bursts), and prints what it got when both ended:
 *   a: N messages, end of stream
 *   b: N messages, end of stream
 *   ticks: T
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

static int die(const char *what, int err)
{
	fprintf(stderr, "epoll_loop: %s: %s (%s)\n", what, shmq_strerror(err),
		shmq_errdetail());
	exit(1);
}

/* A producer process: N messages "i", a pause every 50. */
static pid_t produce(const char *path, int n)
{
	struct shmq *q;
	struct shmq_producer *p;
	pid_t pid = fork();
	char buf[32];
	int err;

	if (pid != 0)
		return pid;
	if ((err = shmq_open(path, 0, NULL, &q)) < 0 ||
	    (err = shmq_producer_open(q, NULL, &p)) < 0)
		die("producer", err);
	for (int i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), "%d", i);

		if ((err = shmq_send(p, buf, (size_t)len, SHMQ_FOREVER)) < 0)
			die("send", err);
		if (i % 50 == 49)
			usleep(2000);
	}
	_exit(shmq_producer_close(p) < 0);
}

struct source {
	const char *name;
	struct shmq *q;
	struct shmq_consumer *c;
	long got;
	bool ended;
};

/* Read until -EAGAIN (re-armed) or the end. */
static void serve(struct source *s)
{
	char buf[64];
	ssize_t n;

	while ((n = shmq_recv(s->c, buf, sizeof(buf), NULL, SHMQ_NOWAIT)) >= 0)
		s->got++;
	if (n == -EAGAIN)
		return;
	if (n != SHMQ_EOF)
		die(s->name, (int)n);
	printf("%s: %ld messages, end of stream\n", s->name, s->got);
	s->ended = true;
}

int main(int argc, char **argv)
{
	struct source src[2] = { { .name = "a" }, { .name = "b" } };
	struct itimerspec tick = { { 0, 20000000 }, { 0, 20000000 } };
	struct shmq_config cfg = { .capacity = 1 << 16, .max_message = 64 };
	char path[2][4096];
	pid_t pids[2];
	long ticks = 0;
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	int ep, tfd, err;

	if (argc < 2) {
		fprintf(stderr, "usage: epoll_loop DIR [N]\n");
		return 2;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	timerfd_settime(tfd, 0, &tick, NULL);
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &(struct epoll_event){
		.events = EPOLLIN, .data.u32 = 2 });
	for (int i = 0; i < 2; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/%s", argv[1], src[i].name);
		if ((err = shmq_open(path[i], SHMQ_OPEN_CREATE, &cfg, &src[i].q)) < 0 ||
		    (err = shmq_consumer_open(src[i].q, NULL, &src[i].c)) < 0)
			die(path[i], err);
		int fd = shmq_consumer_fd(src[i].c);

		if (fd < 0)
			die("shmq_consumer_fd", fd);
		/* Edge-triggered: we read until -EAGAIN each time. */
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
			.events = EPOLLIN | EPOLLET, .data.u32 = (uint32_t)i });
	}
	for (int i = 0; i < 2; i++)
		pids[i] = produce(path[i], n);
	while (!src[0].ended || !src[1].ended) {
		struct epoll_event ev[4];
		int k = epoll_wait(ep, ev, 4, 10000);

		if (k <= 0) {
			fprintf(stderr, "epoll_loop: nothing for 10 s\n");
			return 1;
		}
		for (int j = 0; j < k; j++) {
			uint64_t t;

			if (ev[j].data.u32 == 2) {
				if (read(tfd, &t, sizeof(t)) == sizeof(t))
					ticks += (long)t;
			} else if (!src[ev[j].data.u32].ended) {
				serve(&src[ev[j].data.u32]);
			}
		}
	}
	printf("ticks: %s\n", ticks > 0 ? "yes" : "none");
	for (int i = 0; i < 2; i++) {
		waitpid(pids[i], NULL, 0);
		shmq_consumer_close(src[i].c);
		shmq_close(src[i].q);
		unlink(path[i]);
	}
	close(tfd);
	close(ep);
	return 0;
}
