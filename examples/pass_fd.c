/* SPDX-License-Identifier: MIT */
/*
 * Handing a queue without a path to an unrelated process: the server
 * creates an anonymous queue and sends its descriptor over a UNIX socket
 * (SCM_RIGHTS); the receiver, which shares nothing else with it, attaches
 * to the descriptor it got, says so, and reads until the end of stream.
 *
 *   pass_fd                  both ends: the receiver is this program run
 *                            again (fork, then exec: it inherits nothing)
 *   pass_fd serve NAME [N]   the server: N messages (default 5)
 *   pass_fd receive NAME     the receiver
 *
 * NAME is an abstract UNIX socket name (no file is made).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

static int die(const char *what, int err)
{
	fprintf(stderr, "pass_fd: %s: %s (%s)\n", what, shmq_strerror(err),
		shmq_errdetail());
	return 1;
}

/* An abstract address: a NUL, then NAME. */
static socklen_t address(const char *name, struct sockaddr_un *a)
{
	size_t n = strlen(name);

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (n > sizeof(a->sun_path) - 1)
		n = sizeof(a->sun_path) - 1;
	memcpy(a->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int send_fd(int sock, int fd)
{
	char byte = 'q';
	struct iovec iov = { &byte, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	memset(&u, 0, sizeof(u));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &m, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	int fd = -1;

	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static int serve(const char *name, int n, int listener)
{
	struct shmq_producer *p;
	struct sockaddr_un a;
	struct shmq *q;
	int sock, r;
	char ok;

	if (listener < 0) {
		socklen_t len = address(name, &a);

		listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (listener < 0 || bind(listener, (struct sockaddr *)&a, len) < 0 ||
		    listen(listener, 1) < 0)
			return perror("pass_fd: listening"), 1;
	}
	r = shmq_create_anon(NULL, &q);
	if (r < 0)
		return die("creating the queue", r);
	sock = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		return perror("pass_fd: accept"), 1;
	/* The receiver gets its own descriptor of the same memfd. */
	if (send_fd(sock, shmq_fd(q)) < 0)
		return perror("pass_fd: sending the queue"), 1;
	/* Produce once the receiver's consumer is attached. */
	if (read(sock, &ok, 1) != 1)
		return fprintf(stderr, "pass_fd: the receiver did not attach\n"), 1;
	r = shmq_producer_open(q, NULL, &p);
	if (r < 0)
		return die("becoming the producer", r);
	for (int i = 1; i <= n && r == 0; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "hello %d", i);
		r = shmq_send(p, msg, strlen(msg), SHMQ_FOREVER);
	}
	if (r < 0)
		return die("sending", r);
	r = shmq_producer_close(p);
	shmq_close(q);
	close(sock);
	close(listener);
	return r < 0 ? die("closing", r) : 0;
}

static int receive(const char *name)
{
	struct timespec nap = { 0, 10000000 };
	struct shmq_consumer *c;
	struct sockaddr_un a;
	socklen_t len = address(name, &a);
	struct shmq *q;
	int sock, fd, r = -1;
	char buf[256];
	ssize_t n;

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* The server may not listen yet: try for about five seconds. */
	for (int i = 0; i < 500 && sock >= 0; i++) {
		r = connect(sock, (struct sockaddr *)&a, len);
		if (r == 0 || (errno != ENOENT && errno != ECONNREFUSED))
			break;
		nanosleep(&nap, NULL);
	}
	if (r < 0)
		return perror("pass_fd: connecting"), 1;
	fd = recv_fd(sock);
	if (fd < 0)
		return fprintf(stderr, "pass_fd: no descriptor received\n"), 1;
	r = shmq_open_fd(fd, 0, &q);
	if (r < 0)
		return die("attaching", r);
	close(fd);	/* the library has its own description now */
	r = shmq_consumer_open(q, NULL, &c);
	if (r < 0)
		return die("attaching the consumer", r);
	if (write(sock, "k", 1) != 1)
		return perror("pass_fd: answering"), 1;
	while ((n = shmq_recv(c, buf, sizeof(buf) - 1, NULL, SHMQ_FOREVER)) >= 0 ||
	       n == -EINTR) {
		if (n < 0)
			continue;
		buf[n] = '\0';
		printf("received: %s\n", buf);
	}
	shmq_consumer_close(c);
	shmq_close(q);
	close(sock);
	if (n != SHMQ_EOF)
		return die("receiving", (int)n);
	printf("end of stream\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un a;
	char name[64];
	int listener, status, r;
	pid_t pid;

	if (argc >= 3 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argc > 3 ? atoi(argv[3]) : 5, -1);
	if (argc == 3 && !strcmp(argv[1], "receive"))
		return receive(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: pass_fd [serve NAME [N] | receive NAME]\n");
		return 2;
	}
	/* Listen first, then start the receiver as a program of its own. */
	snprintf(name, sizeof(name), "shmq-pass-fd-%d", (int)getpid());
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listener < 0 ||
	    bind(listener, (struct sockaddr *)&a, address(name, &a)) < 0 ||
	    listen(listener, 1) < 0)
		return perror("pass_fd: listening"), 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return perror("fork"), 1;
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "receive", name, (char *)NULL);
		perror("pass_fd: exec");
		_exit(127);
	}
	r = serve(name, 5, listener);
	if (waitpid(pid, &status, 0) < 0)
		return perror("waitpid"), 1;
	return r ? r : WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
