/* SPDX-License-Identifier: MIT */
/*
 * A libuv consumer (issue 14): the consumer's descriptor in a uv_poll_t,
 * next to a uv_timer_t, on the default loop. When the poll fires the
 * callback reads with SHMQ_NOWAIT until -EAGAIN (which re-arms the
 * descriptor); at the end of stream it stops the handles and the loop
 * returns.
 *
 *   uv_consumer PATH [N]
 *
 * creates PATH, starts a producer process (N messages, default 1000),
 * and prints "got N messages, end of stream" and whether the timer ran.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <shmq.h>

static struct shmq_consumer *cons;
static uv_poll_t poller;
static uv_timer_t timer;
static long got, ticks;

static void die(const char *what, int err)
{
	fprintf(stderr, "uv_consumer: %s: %s (%s)\n", what, shmq_strerror(err),
		shmq_errdetail());
	exit(1);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	char buf[64];
	ssize_t n;

	(void)events;
	if (status < 0)
		die("uv_poll", -EIO);
	while ((n = shmq_recv(cons, buf, sizeof(buf), NULL, SHMQ_NOWAIT)) >= 0)
		got++;
	if (n == -EAGAIN)
		return;		/* armed: the next message wakes us */
	if (n != SHMQ_EOF)
		die("recv", (int)n);
	printf("got %ld messages, end of stream\n", got);
	uv_poll_stop(h);
	uv_timer_stop(&timer);
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
	ticks++;
}

int main(int argc, char **argv)
{
	struct shmq_config cfg = { .capacity = 1 << 16, .max_message = 64 };
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	struct shmq *q;
	pid_t pid;
	int err, fd;

	if (argc < 2) {
		fprintf(stderr, "usage: uv_consumer PATH [N]\n");
		return 2;
	}
	if ((err = shmq_open(argv[1], SHMQ_OPEN_CREATE, &cfg, &q)) < 0 ||
	    (err = shmq_consumer_open(q, NULL, &cons)) < 0)
		die(argv[1], err);
	fd = shmq_consumer_fd(cons);
	if (fd < 0)
		die("shmq_consumer_fd", fd);
	pid = fork();
	if (pid == 0) {
		struct shmq *pq;
		struct shmq_producer *p;

		if ((err = shmq_open(argv[1], 0, NULL, &pq)) < 0 ||
		    (err = shmq_producer_open(pq, NULL, &p)) < 0)
			die("producer", err);
		for (int i = 0; i < n; i++) {
			if ((err = shmq_send(p, &i, sizeof(i), SHMQ_FOREVER)) < 0)
				die("send", err);
			if (i % 50 == 49)
				usleep(2000);
		}
		_exit(shmq_producer_close(p) < 0);
	}
	uv_poll_init(uv_default_loop(), &poller, fd);
	uv_poll_start(&poller, UV_READABLE, on_readable);
	uv_timer_init(uv_default_loop(), &timer);
	uv_timer_start(&timer, on_tick, 20, 20);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	printf("timer: %s\n", ticks > 0 ? "ran" : "never ran");
	waitpid(pid, NULL, 0);
	uv_loop_close(uv_default_loop());
	shmq_consumer_close(cons);
	shmq_close(q);
	unlink(argv[1]);
	return got == n ? 0 : 1;
}
