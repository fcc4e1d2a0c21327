/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the command-line tools: argument parsing, exit statuses
 * (docs/tools.md), one-line error reports, signal setup, full writes.
 */
#ifndef SHMQ_TOOLS_COMMON_H
#define SHMQ_TOOLS_COMMON_H

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

struct shmq;

/* Exit statuses; docs/tools.md is the reference and must match. */
enum tool_exit {
	EXIT_OK = 0,
	EXIT_ERROR = 1,		/* any runtime failure not listed below */
	EXIT_USAGE = 2,		/* bad command line */
	EXIT_DIED = 3,		/* the producer died without closing */
	EXIT_TIMEOUT = 4,	/* get or put --timeout expired */
	EXIT_OVERRUN = 5,	/* messages were lost before being read */
	EXIT_EVICTED = 6,	/* this consumer was evicted for stalling */
	EXIT_TRUNCATED = 7,	/* queue file truncated, deleted or replaced */
	EXIT_BUSY = 8,		/* role or name taken, or queue in use (rm) */
	EXIT_ABORTED = 9,	/* the producer aborted its stream (get) */
	EXIT_PIPE = 141,	/* the other end is gone, as a pipe writer */
};

/* Set by tool_init(); used in every message ("shmq put", "shmq-consumer"). */
extern const char *tool_name;

/*
 * tool_init - name the tool for messages, ignore SIGPIPE (EPIPE is handled
 * where it happens) and turn a SIGBUS inside the queue mapping into
 * "queue file truncated"; any other SIGBUS keeps its default action.
 */
void tool_init(const char *name);

/*
 * What the command does with the standard streams and whether it takes
 * --create, for tool_open(): a command that reads stdin or writes stdout
 * fails (status 1) before it attaches when that stream was closed at
 * start (tool_init() put /dev/null there, issue 10), and only commands
 * with --create suggest it for a missing queue.
 */
#define TOOL_NEEDS_STDIN	0x1
#define TOOL_NEEDS_STDOUT	0x2
#define TOOL_TAKES_CREATE	0x4
void tool_traits(unsigned int flags);

/*
 * --any-owner: tool_open() passes SHMQ_OPEN_ANY_OWNER. Put
 * TOOL_OPT_ANY_OWNER in a command's long options; getopt_long() then sets
 * the flag itself and returns 0, which the loop skips.
 */
extern int tool_any_owner;
#define TOOL_OPT_ANY_OWNER { "any-owner", no_argument, &tool_any_owner, 1 }

/* Name the queue in the SIGBUS message; PATH must outlive the process. */
void tool_set_path(const char *path);

/*
 * Escaping of bytes that are not ours: names read from a queue file (any
 * user who can write it sets them), paths and library details. TEXT is for
 * a terminal: control bytes (C0, DEL), C1 controls and bidirectional or
 * invisible format characters (even when validly encoded) and bytes that
 * are not valid UTF-8 become \xNN, and a backslash becomes \\, so that
 * nothing printed can move the cursor, change the title or forge a line.
 * JSON is for the body of a JSON string: '"' and '\\' are escaped, the
 * same characters become \uNNNN (the same character again once decoded),
 * and each byte that is not valid UTF-8 becomes \u00NN of the byte, which
 * decodes to U+00NN (docs/tools.md).
 */
enum tool_escape_mode {
	TOOL_ESC_TEXT,
	TOOL_ESC_JSON,
};

/* Room tool_escape() needs for LEN input bytes, with the NUL. */
#define TOOL_ESC_MAX(len) (6 * (size_t)(len) + 1)

/*
 * Escape LEN bytes of S into OUT (CAP bytes, CAP > 0), always
 * NUL-terminated; an escape is never cut in half. Returns OUT.
 */
char *tool_escape(char *out, size_t cap, const char *s, size_t len,
		  enum tool_escape_mode mode);

/* fputs() of the NUL-terminated S, escaped. */
void tool_fputs_escaped(const char *s, enum tool_escape_mode mode, FILE *f);

/* Print "NAME: fmt\n" on stderr. */
void tool_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a usage error and the --help hint; returns EXIT_USAGE. */
int tool_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * Report a failed library call on PATH in one line, with shmq_errdetail()
 * when it has one, and return the exit status that ERR maps to.
 */
int tool_fail(const char *path, const char *what, int err);

/*
 * Attach to PATH with shmq_open() FLAGS (SHMQ_OPEN_CREATE: default
 * geometry) and name it in the SIGBUS message. Returns 0, or the exit
 * status after reporting the failure.
 */
int tool_open(const char *path, int flags, struct shmq **q);

/*
 * --fd N (put, get; stat of /proc/PID/fd/N): tool_open() attaches
 * through descriptor TOOL_QUEUE_FD with shmq_open_fd() instead of PATH
 * when it is >= 0. tool_parse_fd() sets it from the option's value
 * (N >= 3: 0-2 are the data streams) and *SHOWN to "fd N" for messages;
 * tool_fd_only() refuses a PATH or --create besides it. Both return 0
 * or EXIT_USAGE (reported).
 */
extern int tool_queue_fd;
int tool_parse_fd(const char *opt, const char *s, const char **shown);
int tool_fd_only(int argc, char **argv, int optind_after, int create);

/* tool_open(), but messages name SHOWN instead of PATH. */
int tool_open_as(const char *path, const char *shown, int flags,
		 struct shmq **q);

/* tool_open_as() without any report: the library's status. */
int tool_try_open(const char *path, const char *shown, int flags,
		  struct shmq **q);

/*
 * Who holds a producer that waits for room in Q, in words, into BUF (CAP
 * bytes): the slowest holder's kind, name, slot, pid, liveness and lag,
 * and how to release it. Returns BUF.
 */
char *tool_holder_text(const char *path, struct shmq *q, char *buf,
		       size_t cap);

struct shmq_config;

/* tool_open() with shmq_open()'s CFG for SHMQ_OPEN_CREATE (NULL: defaults). */
int tool_open_cfg(const char *path, int flags, const struct shmq_config *cfg,
		  struct shmq **q);

/*
 * shmq_create() PATH with CFG, marked as attaching for the SIGBUS handler.
 * Returns 0, or the exit status after reporting the failure.
 */
int tool_create(const char *path, const struct shmq_config *cfg);

/* Consumer kinds as the tools name them (--group, --observe). */
enum tool_consumer_kind {
	TOOL_BROADCAST,
	TOOL_GROUP,
	TOOL_OBSERVER,
};

struct shmq_consumer;

/*
 * Attach a consumer of KIND to Q; NAME is the --name or --group name (or
 * NULL), START an enum shmq_start, FLAGS SHMQ_CONSUMER_* flags. Returns 0, or the exit status after
 * reporting the failure.
 */
int tool_consumer_open(struct shmq *q, const char *path, int kind,
		       const char *name, uint32_t start, uint32_t flags,
		       struct shmq_consumer **out);

struct shmq_msg;

/* shmq_peek(), but SHMQ_EVICTED for a consumer evicted while it waited. */
int tool_peek(struct shmq_consumer *c, struct shmq_msg *m, int64_t timeout_ns);

/* Check a --name / --group value; 0 or EXIT_USAGE (reported). */
int tool_check_name(const char *opt, const char *name);

/* The exit status a library error maps to (see enum tool_exit). */
int tool_exit_for(int err);

/*
 * Report getopt_long()'s '?' (unknown option) or ':' (missing value) for
 * an optstring that starts with ':'; returns EXIT_USAGE.
 */
int tool_getopt_error(int c, char **argv);

/* Parsers: 0 on success, -EINVAL on bad input (already reported). */
int parse_size(const char *opt, const char *s, uint64_t *out);
int parse_u64(const char *opt, const char *s, uint64_t *out);
int parse_u32(const char *opt, const char *s, uint32_t *out);
int parse_seconds(const char *opt, const char *s, int64_t *ns_out);
/* "never", 0 or seconds -> milliseconds for shmq_set_evict_after(). */
int parse_evict_after(const char *opt, const char *s, uint32_t *ms);

/* write() all of BUF; 0, -EPIPE when the reader is gone, or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* writev() all of IOV (modified); same returns as write_all(). */
int writev_all(int fd, struct iovec *iov, int iovcnt);

/* Monotonic and realtime clocks in nanoseconds. */
int64_t now_mono_ns(void);
int64_t now_real_ns(void);

/* SIGINT/SIGTERM set this instead of killing, so tools close cleanly. */
extern volatile sig_atomic_t tool_stop;
void tool_catch_stop_signals(void);

/* Flush stdout at exit; a failed write turns success into status 1. */
int tool_flush_stdout(int r);

#endif /* SHMQ_TOOLS_COMMON_H */
