/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the command-line tools. Everything that turns a library
 * status into a message and an exit status lives here, so that the tools
 * and docs/tools.md cannot drift apart tool by tool.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "common.h"

const char *tool_name = "shmq";
volatile sig_atomic_t tool_stop;
int tool_any_owner;

/* Which of 0-2 were closed at start (bit N: descriptor N); tool_traits. */
static unsigned int std_closed;
static unsigned int traits;

/*
 * The SIGBUS message is formatted ahead of time: the handler may only call
 * async-signal-safe functions, so it just write()s this buffer.
 */
static char sigbus_msg[512];
static size_t sigbus_len;

static void sigbus_prepare(const char *path)
{
	char esc[sizeof(sigbus_msg)];
	int n;

	if (path) {
		tool_escape(esc, sizeof(esc), path, strlen(path), TOOL_ESC_TEXT);
		n = snprintf(sigbus_msg, sizeof(sigbus_msg),
			     "%s: %s: queue file truncated\n", tool_name, esc);
	} else {
		n = snprintf(sigbus_msg, sizeof(sigbus_msg),
			     "%s: queue file truncated\n", tool_name);
	}
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(sigbus_msg))
		n = sizeof(sigbus_msg) - 1;
	sigbus_len = n;
}

/*
 * Where the queue is mapped (shmq_map_range()), and whether a shmq_open()
 * is under way, when the range is not known yet. Plain words written
 * before the handler can need them and only read by it.
 */
static volatile uintptr_t map_start, map_len;
static volatile sig_atomic_t attaching;

static int fault_in_queue(const siginfo_t *si)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	/* A SIGBUS sent with kill(2) is no fault of ours. */
	if (si->si_code <= 0)
		return 0;
	if (map_len && a - map_start < map_len)
		return 1;
	/* Validation may touch the file before the range is known. */
	return attaching && !map_len;
}

/*
 * A SIGBUS inside the queue mapping means a page of the file vanished
 * under us: another process shrank it. Returning would re-fault forever,
 * so exit with the documented status. Any other SIGBUS is not ours to
 * explain: take the default action (a core dump) as if we had no handler.
 */
static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	ssize_t r;

	(void)uctx;
	if (!fault_in_queue(si)) {
		signal(sig, SIG_DFL);
		/* Pending until we return; a fault would also re-fault. */
		raise(sig);
		return;
	}
	r = write(STDERR_FILENO, sigbus_msg, sigbus_len);
	(void)r;
	_exit(EXIT_TRUNCATED);
}

/*
 * Put /dev/null on every standard descriptor that is closed (issue 10),
 * before anything else is opened: otherwise the next open() returns 0, 1
 * or 2 and a printf() or a read of stdin goes to that file. The library
 * never keeps a descriptor below 3 anyway; this covers the tools' own
 * files and stdio. As gnulib's stdopen() does, /dev/null is opened in
 * the contrary mode (write-only for stdin, read-only for stdout and
 * stderr), so that a command that does read or write the closed stream
 * fails with EBADF instead of reading nothing or writing into the void;
 * tool_open() checks first (TOOL_NEEDS_*), so that such a command fails
 * before it attaches. Runs once: descriptors are per process.
 */
static void std_fds_fill(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		std_closed |= 1u << fd;
		/* The lower ones are open now: open() returns FD itself. */
		nfd = open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY);
		if (nfd >= 0 && nfd != fd)
			close(nfd);
	}
}

void tool_traits(unsigned int flags)
{
	traits = flags;
}

void tool_init(const char *name)
{
	struct sigaction sa;

	std_fds_fill();
	tool_name = name;
	sigbus_prepare(NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

void tool_set_path(const char *path)
{
	sigbus_prepare(path);
}

static void on_stop(int sig)
{
	(void)sig;
	tool_stop = 1;
}

/* No SA_RESTART: a blocked read() or library wait returns EINTR at once. */
void tool_catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/*
 * The valid UTF-8 sequence at S (N > 0 bytes left): its length, and its
 * code point in *CP; 0 when S[0] starts no valid sequence. Overlong forms,
 * surrogates and code points above U+10FFFF are invalid (RFC 3629).
 */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c, min;
	size_t len;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] < 0xc2)		/* a continuation byte, or overlong */
		return 0;
	if (s[0] < 0xe0)
		len = 2, c = s[0] & 0x1f, min = 0x80;
	else if (s[0] < 0xf0)
		len = 3, c = s[0] & 0x0f, min = 0x800;
	else if (s[0] < 0xf5)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/*
 * Characters a terminal acts on or hides even when validly encoded: C0,
 * DEL and C1 controls (U+009B is a CSI to some terminals), and the
 * zero-width, line-separator and bidirectional formatting characters that
 * can make one row look like another.
 */
static int hidden_char(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
	       (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/*
 * Escape the character or invalid byte at S into E (at most 24 bytes);
 * returns how many input bytes it covers, and the output length in *ELEN.
 */
static size_t escape_one(const unsigned char *s, size_t n,
			 enum tool_escape_mode mode, char *e, size_t *elen)
{
	uint32_t cp;
	size_t len = utf8_seq(s, n, &cp);
	int k = 0;

	if (len == 0) {
		*elen = sprintf(e, mode == TOOL_ESC_JSON ? "\\u%04x" : "\\x%02x",
				s[0]);
		return 1;
	}
	if (cp == '\\' || (mode == TOOL_ESC_JSON && cp == '"')) {
		e[k++] = '\\';
		e[k++] = (char)cp;
	} else if (mode == TOOL_ESC_JSON && hidden_char(cp)) {
		/* Lossless: the escape stands for the same character. */
		k = sprintf(e, "\\u%04x", (unsigned int)cp);
	} else if (mode == TOOL_ESC_TEXT && hidden_char(cp)) {
		for (size_t i = 0; i < len; i++)
			k += sprintf(e + k, "\\x%02x", s[i]);
	} else {
		memcpy(e, s, len);
		k = (int)len;
	}
	*elen = (size_t)k;
	return len;
}

char *tool_escape(char *out, size_t cap, const char *s, size_t len,
		  enum tool_escape_mode mode)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k = 0, elen;
	char e[32];

	while (i < len) {
		size_t used = escape_one(u + i, len - i, mode, e, &elen);

		if (k + elen >= cap)
			break;
		memcpy(out + k, e, elen);
		k += elen;
		i += used;
	}
	out[k] = '\0';
	return out;
}

void tool_fputs_escaped(const char *s, enum tool_escape_mode mode, FILE *f)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, elen;
	char e[32];

	while (i < len) {
		i += escape_one(u + i, len - i, mode, e, &elen);
		fwrite(e, 1, elen, f);
	}
}

static void vmsg(const char *fmt, va_list ap)
{
	char buf[1024], esc[TOOL_ESC_MAX(sizeof(buf))];
	int n;

	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	/*
	 * One line that cannot drive the terminal, whatever a path, a name
	 * or a library detail (which may quote the file) contains.
	 */
	tool_escape(esc, sizeof(esc), buf, strlen(buf), TOOL_ESC_TEXT);
	fprintf(stderr, "%s: %s\n", tool_name, esc);
}

void tool_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

int tool_usage_error(const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tool_msg("%s (try --help)", buf);
	return EXIT_USAGE;
}

int tool_exit_for(int err)
{
	switch (err) {
	case SHMQ_EDIED:
		return EXIT_DIED;
	case -ETIMEDOUT:
		return EXIT_TIMEOUT;
	case SHMQ_ESTALE:
		return EXIT_TRUNCATED;
	case -EBUSY:
		return EXIT_BUSY;
	case -EPIPE:
		return EXIT_PIPE;
	case SHMQ_EVICTED:
		return EXIT_EVICTED;
	default:
		return EXIT_ERROR;
	}
}

/*
 * The library's detail names the C flag (SHMQ_OPEN_ANY_OWNER); a user of
 * the tools needs the option. Copies DETAIL into BUF with the hint
 * rewritten, or returns DETAIL as it is.
 */
static const char *tool_detail(const char *detail, char *buf, size_t cap)
{
	static const char flag[] = "SHMQ_OPEN_ANY_OWNER allows it";
	const char *at = detail ? strstr(detail, flag) : NULL;

	if (!at)
		return detail;
	snprintf(buf, cap, "%.*s--any-owner accepts it if you trust that user%s",
		 (int)(at - detail), detail, at + strlen(flag));
	return buf;
}

int tool_fail(const char *path, const char *what, int err)
{
	char buf[1024];
	const char *detail = tool_detail(shmq_errdetail(), buf, sizeof(buf));
	const char *text = shmq_strerror(err);

	/* The detail says which of the three happened: it is the message. */
	if (err == SHMQ_ESTALE) {
		text = "queue file truncated, deleted or replaced";
		if (detail && *detail)
			text = detail, detail = NULL;
	}
	/* A detail that restates the code replaces it rather than repeat it. */
	if (detail && *detail && !strncmp(detail, text, strlen(text)))
		text = detail, detail = NULL;
	if (detail && *detail && strcmp(detail, text) != 0)
		tool_msg("%s: %s: %s: %s", path, what, text, detail);
	else
		tool_msg("%s: %s: %s", path, what, text);
	return tool_exit_for(err);
}

int tool_getopt_error(int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return tool_usage_error("option '%s' needs a value", arg);
	if (optopt && strncmp(arg, "--", 2))
		return tool_usage_error("unknown option '-%c'", optopt);
	return tool_usage_error("unknown option '%s'", arg);
}

static int bad_value(const char *opt, const char *s, const char *why)
{
	tool_usage_error("%s: invalid value '%s': %s", opt, s, why);
	return -EINVAL;
}

int parse_u64(const char *opt, const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!*s || !isdigit((unsigned char)*s))
		return bad_value(opt, s, "not a non-negative integer");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return bad_value(opt, s, "too large");
	if (*end)
		return bad_value(opt, s, "not a non-negative integer");
	*out = v;
	return 0;
}

int parse_u32(const char *opt, const char *s, uint32_t *out)
{
	uint64_t v;

	if (parse_u64(opt, s, &v))
		return -EINVAL;
	if (v > UINT32_MAX)
		return bad_value(opt, s, "too large");
	*out = v;
	return 0;
}

/* Digits with an optional K, M or G (powers of 1024), "KiB" and "KB" too. */
int parse_size(const char *opt, const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!*s || !isdigit((unsigned char)*s))
		return bad_value(opt, s, "not a size");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return bad_value(opt, s, "too large");
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (!shift && !strcmp(end, "B"))
		end++;
	if (*end)
		return bad_value(opt, s, "not a size (use K, M or G)");
	if (v > (UINT64_MAX >> shift))
		return bad_value(opt, s, "too large");
	*out = (uint64_t)v << shift;
	return 0;
}

/* Decimal seconds ("2", "0.25"), at most about a year. */
int parse_seconds(const char *opt, const char *s, int64_t *ns_out)
{
	double v;
	char *end;

	/* Decimals only: strtod would also take hex ("0x10" is 16 s). */
	if (!*s || !(isdigit((unsigned char)*s) || *s == '.') ||
	    strpbrk(s, "xXpPeEnN"))
		return bad_value(opt, s, "not a number of seconds");
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < 0)
		return bad_value(opt, s, "not a number of seconds");
	if (v > 366.0 * 86400)
		return bad_value(opt, s, "too large");
	*ns_out = (int64_t)(v * 1e9);
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int writev_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t n = writev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Skip what was written, then finish a partial vector. */
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t now_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t now_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

int tool_queue_fd = -1;

int tool_parse_fd(const char *opt, const char *s, const char **shown)
{
	static char name[32];
	uint32_t n;

	if (parse_u32(opt, s, &n))
		return EXIT_USAGE;
	if (n > INT32_MAX)
		return tool_usage_error("%s %s: not a descriptor number", opt, s);
	if (n < 3)
		return tool_usage_error("%s %s: 0, 1 and 2 are stdin, stdout and "
					"stderr; pass the queue as descriptor 3 "
					"or above", opt, s);
	tool_queue_fd = (int)n;
	snprintf(name, sizeof(name), "fd %u", n);
	*shown = name;
	return 0;
}

int tool_fd_only(int argc, char **argv, int optind_after, int create)
{
	if (create)
		return tool_usage_error("--create needs a PATH, not --fd");
	if (optind_after < argc)
		return tool_usage_error("--fd and PATH '%s' exclude each other",
					argv[optind_after]);
	return 0;
}

/*
 * A stream this command reads or writes was closed when it started: fail
 * now, before the queue is touched, as the command would at its first
 * read or write (status 1, EBADF, like coreutils).
 */
static int closed_stream(const char *shown)
{
	if ((traits & TOOL_NEEDS_STDIN) && (std_closed & 1u << STDIN_FILENO)) {
		tool_msg("%s: reading stdin: %s (it was closed)", shown,
			 strerror(EBADF));
		return EXIT_ERROR;
	}
	if ((traits & TOOL_NEEDS_STDOUT) && (std_closed & 1u << STDOUT_FILENO)) {
		tool_msg("%s: writing stdout: %s (it was closed)", shown,
			 strerror(EBADF));
		return EXIT_ERROR;
	}
	return 0;
}

/* The CFG of tool_open_cfg(), for the tool_try_open() it calls. */
static const struct shmq_config *open_cfg;

int tool_try_open(const char *path, const char *shown, int flags,
		  struct shmq **q)
{
	const void *addr;
	size_t len;
	int r;

	if (tool_any_owner)
		flags |= SHMQ_OPEN_ANY_OWNER;
	/* Set first: a truncated file can fault during validation already. */
	tool_set_path(shown);
	attaching = 1;
	if (tool_queue_fd >= 0)
		r = shmq_open_fd(tool_queue_fd, flags & ~SHMQ_OPEN_CREATE, q);
	else
		r = shmq_open(path, flags, open_cfg, q);
	if (r == 0) {
		shmq_map_range(*q, &addr, &len);
		map_start = (uintptr_t)addr;
		map_len = len;
	}
	attaching = 0;
	return r;
}

int tool_open_as(const char *path, const char *shown, int flags,
		 struct shmq **q)
{
	int r = closed_stream(shown);

	if (r)
		return r;
	r = tool_try_open(path, shown, flags, q);
	if (r == -ENOENT && !(flags & SHMQ_OPEN_CREATE)) {
		/* Only a command that has --create suggests it. */
		if (traits & TOOL_TAKES_CREATE)
			tool_msg("%s: no such queue (create it with 'shmq "
				 "create' or pass --create)", shown);
		else
			tool_msg("%s: no such queue", shown);
		return EXIT_ERROR;
	}
	if (r < 0)
		return tool_fail(shown, "cannot open queue", r);
	return 0;
}

int tool_open(const char *path, int flags, struct shmq **q)
{
	return tool_open_as(path, path, flags, q);
}

int tool_open_cfg(const char *path, int flags, const struct shmq_config *cfg,
		  struct shmq **q)
{
	int r;

	open_cfg = cfg;
	r = tool_open_as(path, path, flags, q);
	open_cfg = NULL;
	return r;
}

int tool_create(const char *path, const struct shmq_config *cfg)
{
	int r;

	/*
	 * shmq_create() writes the new header with pwrite(), not through a
	 * mapping, so a file truncated under it is an error, not a SIGBUS.
	 * Should any page of the file still fault while it runs, the handler
	 * reports truncation (status 7) instead of a signal death.
	 */
	tool_set_path(path);
	attaching = 1;
	r = shmq_create(path, cfg);
	attaching = 0;
	/* Not the slot half of shmq_strerror(-ENOSPC): the disk is full. */
	if (r == -ENOSPC && shmq_errdetail() && *shmq_errdetail()) {
		tool_msg("%s: cannot create queue: not enough space: %s", path,
			 shmq_errdetail());
		return EXIT_ERROR;
	}
	if (r < 0)
		return tool_fail(path, "cannot create queue", r);
	return 0;
}

/* The library's rule (shmq_consumer_open): printable ASCII, no space. */
int tool_check_name(const char *opt, const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SHMQ_NAME_MAX)
		return tool_usage_error("%s: a name has 1 to %d bytes", opt,
					SHMQ_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		if (name[i] < 0x21 || name[i] > 0x7e)
			return tool_usage_error("%s: invalid value '%s': a name "
						"is printable ASCII without "
						"spaces", opt, name);
	return 0;
}

static const char *kind_word(uint32_t kind)
{
	switch (kind) {
	case SHMQ_CONSUMER_BROADCAST:
		return "named consumer";
	case SHMQ_CONSUMER_GROUP:
		return "group";
	case SHMQ_CONSUMER_MEMBER:
		return "group member";
	case SHMQ_CONSUMER_OBSERVER:
		return "observer";
	}
	return "consumer";
}

/*
 * Every slot is taken (-ENOSPC from shmq_consumer_open): name the holders
 * that are gone, since only `shmq drop` frees a dead named consumer's or
 * group's slot (issue 10). Returns EXIT_ERROR.
 */
static int slots_full(struct shmq *q, const char *path)
{
	char list[512] = "";
	struct shmq_stat *st;
	const char *first = NULL;
	uint32_t gone = 0;
	size_t n = 0;

	if (shmq_stat_get(q, &st) < 0) {
		tool_fail(path, "cannot attach a consumer", -ENOSPC);
		return EXIT_ERROR;
	}
	for (uint32_t i = 0; i < st->nconsumers; i++) {
		const struct shmq_consumer_stat *c = &st->consumers[i];

		/* Members go with their group; anonymous dead are reused. */
		if (c->alive || !c->name[0] ||
		    c->kind == SHMQ_CONSUMER_MEMBER)
			continue;
		if (!gone++)
			first = c->name;
		if (n < sizeof(list) && c->kind == SHMQ_CONSUMER_GROUP)
			n += snprintf(list + n, sizeof(list) - n, "%s%s %s (%s)",
				      n ? ", " : "", kind_word(c->kind), c->name,
				      c->evicted ? "evicted" : "no live member");
		else if (n < sizeof(list))
			n += snprintf(list + n, sizeof(list) - n,
				      "%s%s %s (pid %" PRIu32 ", %s)",
				      n ? ", " : "", kind_word(c->kind),
				      c->name, c->pid,
				      c->evicted ? "evicted" : "dead");
	}
	if (!gone)
		tool_msg("%s: cannot attach a consumer: all %" PRIu32 " consumer "
			 "slots are taken by live consumers", path, st->slots);
	else
		tool_msg("%s: cannot attach a consumer: all %" PRIu32 " consumer "
			 "slots are taken; %" PRIu32 " by consumers that are "
			 "gone and keep their slot: %s; 'shmq drop %s %s' frees "
			 "one", path, st->slots, gone, list, path, first);
	shmq_stat_free(st);
	return EXIT_ERROR;
}

int tool_consumer_open(struct shmq *q, const char *path, int kind,
		       const char *name, uint32_t start, uint32_t flags,
		       struct shmq_consumer **out)
{
	struct shmq_consumer_opts opts = {
		.kind = SHMQ_CONSUMER_BROADCAST,
		.start = start,
		.name = name,
		.flags = flags,
	};
	int r;

	if (kind == TOOL_GROUP)
		opts.kind = SHMQ_CONSUMER_GROUP;
	else if (kind == TOOL_OBSERVER)
		opts.kind = SHMQ_CONSUMER_OBSERVER;
	r = shmq_consumer_open(q, &opts, out);
	if (r == SHMQ_EVICTED) {
		tool_msg("%s: %s was evicted earlier; 'shmq drop %s %s' lets it "
			 "start again", path, name ? name : "consumer", path,
			 name ? name : "NAME");
		return EXIT_EVICTED;
	}
	if (r == -ENOSPC)
		return slots_full(q, path);
	if (r < 0)
		return tool_fail(path, "cannot attach a consumer", r);
	return 0;
}

/*
 * What holds a producer that waits for room (issue 10): the slowest
 * holder from a snapshot, its kind, name, pid, whether it is alive and
 * how far behind it is, and how to release it.
 */
char *tool_holder_text(const char *path, struct shmq *q, char *buf,
		       size_t cap)
{
	const struct shmq_consumer_stat *h = NULL;
	struct shmq_stat *st;
	char who[96], how[320];

	if (shmq_stat_get(q, &st) < 0) {
		snprintf(buf, cap, "%s", shmq_errdetail());
		return buf;
	}
	/* A group's own row, not a member's: the group is what holds. */
	for (uint32_t i = 0; i < st->nconsumers; i++) {
		const struct shmq_consumer_stat *c = &st->consumers[i];

		if (c->holding && c->kind != SHMQ_CONSUMER_MEMBER &&
		    (!h || c->lag_bytes > h->lag_bytes))
			h = c;
	}
	if (!h) {
		snprintf(buf, cap, "no consumer holds it: the unread messages "
			 "wait for the first consumer ('shmq get %s')", path);
		shmq_stat_free(st);
		return buf;
	}
	if (h->name[0])
		snprintf(who, sizeof(who), "%s %s", kind_word(h->kind), h->name);
	else
		snprintf(who, sizeof(who), "an anonymous consumer");
	if (h->alive && st->evict_after_ms)
		snprintf(how, sizeof(how), "it is alive: it must read on, or "
			 "be stopped; it is evicted after %" PRIu32 " ms without "
			 "progress", st->evict_after_ms);
	else if (h->alive)
		snprintf(how, sizeof(how), "it is alive: it must read on, or "
			 "be stopped; 'shmq policy %s --evict-after SECONDS' "
			 "lets the producer go on without a consumer that "
			 "stalls", path);
	else if (h->name[0])
		snprintf(how, sizeof(how), "'shmq drop %s %s' releases it",
			 path, h->name);
	else
		snprintf(how, sizeof(how), "its slot is freed at the next check");
	if (h->kind == SHMQ_CONSUMER_GROUP)	/* a group has no pid */
		snprintf(buf, cap, "held by %s (slot %" PRIu32 ", %s), "
			 "%" PRIu64 " messages (%" PRIu64 " bytes) behind; %s", who,
			 h->slot, h->alive ? "a live member" : "no live member",
			 h->lag_messages, h->lag_bytes, how);
	else
		snprintf(buf, cap, "held by %s (slot %" PRIu32 ", pid %" PRIu32 ", %s), "
			 "%" PRIu64 " messages (%" PRIu64 " bytes) behind; %s", who,
			 h->slot, h->pid, h->alive ? "alive" : "dead", h->lag_messages,
			 h->lag_bytes, how);
	shmq_stat_free(st);
	return buf;
}

/*
 * The eviction delay as the tools write it: "never" (or 0) or decimal
 * seconds, rounded up to whole milliseconds so that a small value never
 * becomes "never".
 */
int parse_evict_after(const char *opt, const char *s, uint32_t *ms)
{
	int64_t ns;

	if (!strcmp(s, "never")) {
		*ms = 0;
		return 0;
	}
	if (parse_seconds(opt, s, &ns))
		return -EINVAL;
	if ((ns + 999999) / 1000000 > UINT32_MAX)
		return bad_value(opt, s, "at most 4294967 seconds");
	*ms = (ns + 999999) / 1000000;
	return 0;
}

/*
 * shmq_peek() that reports eviction as such. The library checks for
 * eviction before it waits but not after: a consumer evicted while it
 * slept wakes to a position the producer has since overwritten and gets
 * -EBADMSG ("position outside the ring"). Its next peek checks first, so
 * one more, non-blocking, look tells the two apart; a consumer whose
 * record really failed validation stays where it was and fails again.
 */
int tool_peek(struct shmq_consumer *c, struct shmq_msg *m, int64_t timeout_ns)
{
	int r = shmq_peek(c, m, timeout_ns);
	int again;

	if (r != -EBADMSG)
		return r;
	again = shmq_peek(c, m, SHMQ_NOWAIT);
	return again == SHMQ_EVICTED || again == 0 ? again : r;
}

/*
 * At exit: a write to stdout that failed (now, or earlier: ferror) turns
 * a success R into a write error (EPIPE: the quiet 141); other R stay.
 */
int tool_flush_stdout(int r)
{
	if ((fflush(stdout) == EOF || ferror(stdout)) && r == EXIT_OK) {
		if (errno == EPIPE)
			return EXIT_PIPE;
		tool_msg("write error: %s", strerror(errno ? errno : EIO));
		return EXIT_ERROR;
	}
	return r;
}
