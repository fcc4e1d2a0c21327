/* SPDX-License-Identifier: MIT */
/*
 * shmq stat: a snapshot of a queue, as a table for people or as JSON
 * (schema in docs/tools.md), once or every N seconds with live rates.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "cmds.h"
#include "common.h"
#include "progress.h"

#define STAT_JSON_SCHEMA 1

/*
 * Rates count ring bytes: records with their headers, the unit of
 * positions and lags, the only one the library reports for consumers.
 * The producer's payload rate (its `bytes` counter) is shown beside it.
 */
struct rate {
	int known;
	double msgs;		/* per second */
	double bytes;		/* ring bytes per second */
	double payload;		/* producer only: payload bytes per second */
};

struct view {
	const char *path;
	int sync_error;			/* shmq_sync_error(): 0 or -errno */
	const struct shmq_stat *st;
	const struct shmq_stat *prev;	/* NULL: no rates yet */
	double dt;			/* seconds between prev and st */
	int64_t now_ns;			/* CLOCK_REALTIME */
};

static const char stat_usage[] =
"Usage: shmq stat PATH [--json | --prometheus] [--watch SECONDS]\n"
"Show the geometry, fill level, producer and consumers of the queue PATH.\n"
"Lags and rates are in ring bytes (payload plus record headers).\n"
"\n"
"  --json           one JSON object (schema in shmq(1) and docs/tools.md)\n"
"  --prometheus     the Prometheus text format, for node_exporter's textfile\n"
"                   collector (not with --watch)\n"
"  --watch SECS     repeat every SECS seconds with rates, until interrupted\n"
"\n"
"PATH may be /proc/PID/fd/N for a queue without a path that process PID\n"
"holds as descriptor N (the one kind of link stat follows).\n";

static const char *producer_state_name(uint32_t s)
{
	static const char *const names[] = { "none", "open", "closed", "died",
					     "aborted" };

	return s < 5 ? names[s] : "unknown";
}

static const char *kind_name(uint32_t k)
{
	static const char *const names[] = {
		[SHMQ_CONSUMER_BROADCAST] = "broadcast",
		[SHMQ_CONSUMER_GROUP] = "group",
		[SHMQ_CONSUMER_OBSERVER] = "observer",
		[SHMQ_CONSUMER_MEMBER] = "member",
	};

	return k < 4 ? names[k] : "unknown";
}

/*
 * The kind as a person names it: a broadcast consumer with a name keeps
 * its position, which matters more to the reader of the table than the
 * kind the library stores. JSON keeps the library's kinds (schema 1).
 */
static const char *table_kind(const struct shmq_consumer_stat *c)
{
	if (c->kind == SHMQ_CONSUMER_BROADCAST && c->name[0])
		return "named";
	return kind_name(c->kind);
}

/*
 * A consumer's lag in ring bytes and messages, made to agree. A member
 * has no lag of its own: it reads its group's stream, and the group's row
 * has the lag (the library keeps no position for a member). The library
 * reads the write position before the sequence and the slots, and each
 * may move meanwhile: a consumer at (or past) the write position it saw
 * has read everything of that snapshot, whatever a later sequence says.
 * Only non-data records (a session's end, padding) make bytes without
 * messages.
 */
static uint64_t lag_bytes(const struct shmq_consumer_stat *c)
{
	return c->kind == SHMQ_CONSUMER_MEMBER ? 0 : c->lag_bytes;
}

static uint64_t lag_messages(const struct shmq_consumer_stat *c)
{
	return lag_bytes(c) ? c->lag_messages : 0;
}

static const char *state_name(const struct shmq_consumer_stat *c)
{
	if (c->evicted)
		return "evicted";
	return c->alive ? "live" : "dead";
}

/*
 * Age of the oldest message a consumer has not read: the library gives
 * the send time of each consumer's next record (next_ns, ms resolution);
 * for groups and members it does not, and the ring's tail time is right
 * only when the consumer stands at the tail.
 */
static int64_t lag_age_ns(const struct view *v,
			  const struct shmq_consumer_stat *c)
{
	if (lag_messages(c) == 0)
		return 0;
	if (c->next_ns)
		return (int64_t)c->next_ns < v->now_ns ?
		       v->now_ns - (int64_t)c->next_ns : 0;
	if (c->position == v->st->tail_pos && v->st->tail_ns &&
	    (int64_t)v->st->tail_ns <= v->now_ns)
		return v->now_ns - (int64_t)v->st->tail_ns;
	return -1;
}

static int64_t oldest_age_ns(const struct view *v)
{
	const struct shmq_stat *st = v->st;

	if (!st->tail_ns || st->write_pos == st->tail_pos ||
	    (int64_t)st->tail_ns > v->now_ns)
		return -1;
	return v->now_ns - (int64_t)st->tail_ns;
}

/* The same consumer in the previous snapshot: same slot, same attach. */
static struct rate consumer_rate(const struct view *v,
				 const struct shmq_consumer_stat *c)
{
	struct rate r = { 0 };

	if (!v->prev || v->dt <= 0)
		return r;
	for (uint32_t i = 0; i < v->prev->nconsumers; i++) {
		const struct shmq_consumer_stat *p = &v->prev->consumers[i];

		if (p->slot != c->slot || p->attach_ns != c->attach_ns ||
		    p->next_seq > c->next_seq || p->position > c->position)
			continue;
		r.known = 1;
		r.msgs = (c->next_seq - p->next_seq) / v->dt;
		r.bytes = (c->position - p->position) / v->dt;
	}
	return r;
}

static struct rate producer_rate(const struct view *v)
{
	struct rate r = { 0 };

	if (!v->prev || v->dt <= 0 || v->prev->messages > v->st->messages ||
	    v->prev->bytes > v->st->bytes ||
	    v->prev->write_pos > v->st->write_pos)
		return r;
	r.known = 1;
	r.msgs = (v->st->messages - v->prev->messages) / v->dt;
	r.bytes = (v->st->write_pos - v->prev->write_pos) / v->dt;
	r.payload = (v->st->bytes - v->prev->bytes) / v->dt;
	return r;
}

/* ---- JSON ---------------------------------------------------------- */

/* Names come from the file: see tool_escape() for what is escaped. */
static void json_string(const char *s)
{
	putchar('"');
	tool_fputs_escaped(s, TOOL_ESC_JSON, stdout);
	putchar('"');
}

static void json_age(const char *key, int64_t ns)
{
	if (ns < 0)
		printf("\"%s\":null", key);
	else
		printf("\"%s\":%" PRId64, key, ns);
}

/* PAYLOAD: also the producer's payload_bytes_per_s. */
static void json_rate(struct rate r, int payload)
{
	if (r.known)
		printf(",\"messages_per_s\":%.1f,\"bytes_per_s\":%.1f",
		       r.msgs, r.bytes);
	else
		printf(",\"messages_per_s\":null,\"bytes_per_s\":null");
	if (payload && r.known)
		printf(",\"payload_bytes_per_s\":%.1f", r.payload);
	else if (payload)
		printf(",\"payload_bytes_per_s\":null");
}

static void json_consumer(const struct view *v,
			  const struct shmq_consumer_stat *c)
{
	printf("{\"slot\":%" PRIu32 ",\"kind\":\"%s\",\"name\":", c->slot,
	       kind_name(c->kind));
	if (c->name[0])
		json_string(c->name);
	else
		printf("null");
	printf(",\"pid\":%" PRIu32 ",\"alive\":%s,\"holding\":%s"
	       ",\"evicted\":%s,\"state\":\"%s\"", c->pid,
	       c->alive ? "true" : "false", c->holding ? "true" : "false",
	       c->evicted ? "true" : "false", state_name(c));
	if (c->kind == SHMQ_CONSUMER_MEMBER)
		printf(",\"group_slot\":%" PRIu32 ",\"claimed\":%s",
		       c->group_slot, c->claimed ? "true" : "false");
	printf(",\"position\":%" PRIu64 ",\"next_seq\":%" PRIu64
	       ",\"lag_messages\":%" PRIu64 ",\"lag_bytes\":%" PRIu64 ",",
	       c->position, c->next_seq, lag_messages(c), lag_bytes(c));
	json_age("lag_age_ns", lag_age_ns(v, c));
	printf(",\"attach_ns\":%" PRIu64, c->attach_ns);
	if (v->prev)
		json_rate(consumer_rate(v, c), 0);
	putchar('}');
}

static void json_header(const struct view *v)
{
	const struct shmq_stat *st = v->st;

	printf("{\"schema\":%d,\"path\":", STAT_JSON_SCHEMA);
	json_string(v->path);
	printf(",\"time_ns\":%" PRId64 ",\"version\":%" PRIu32
	       ",\"capacity\":%" PRIu64 ",\"max_message\":%" PRIu32
	       ",\"slots\":%" PRIu32 ",\"when_full\":\"%s\""
	       ",\"evict_after_ms\":%" PRIu32 ",\"checksum\":\"%s\""
	       ",\"created_ns\":%" PRIu64 ",\"file_size\":%" PRIu64,
	       v->now_ns, st->version, st->capacity, st->max_message,
	       st->slots, st->when_full ? "overwrite" : "block",
	       st->evict_after_ms,
	       st->checksum == SHMQ_CHECKSUM_HEADER ? "header" : "full",
	       st->created_ns, st->file_size);
	printf(",\"producer\":{\"state\":\"%s\",\"pid\":",
	       producer_state_name(st->producer_state));
	if (st->producer_state == SHMQ_PRODUCER_NONE)
		printf("null}");
	else
		printf("%" PRIu32 "}", st->producer_pid);
}

static void json_positions(const struct view *v)
{
	const struct shmq_stat *st = v->st;

	printf(",\"write_pos\":%" PRIu64 ",\"tail_pos\":%" PRIu64
	       ",\"floor_pos\":%" PRIu64 ",\"durable_pos\":%" PRIu64
	       ",\"unsynced_bytes\":%" PRIu64 ",\"next_seq\":%" PRIu64
	       ",\"tail_seq\":%" PRIu64 ",\"tail_ns\":%" PRIu64
	       ",\"fill_bytes\":%" PRIu64 ",\"fill_ratio\":%.4f,",
	       st->write_pos, st->tail_pos, st->floor_pos, st->durable_pos,
	       st->write_pos - st->durable_pos, st->next_seq, st->tail_seq,
	       st->tail_ns, st->fill_bytes,
	       st->capacity ? (double)st->fill_bytes / st->capacity : 0.0);
	json_age("oldest_age_ns", oldest_age_ns(v));
	printf(",\"sync_error\":%d", v->sync_error);
	printf(",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"full_waits\":%" PRIu64, st->messages, st->bytes,
	       st->full_waits);
	printf(",\"incarnation\":%" PRIu32 ",\"cut_bytes\":%" PRIu64
	       ",\"cut_messages\":%" PRIu64 ",\"cut_durable\":%s"
	       ",\"cut_time\":%" PRIu64, st->incarnation, st->cut_bytes,
	       st->cut_messages, st->cut_durable ? "true" : "false",
	       st->cut_time);
}

static void print_json(const struct view *v)
{
	json_header(v);
	json_positions(v);
	if (v->prev) {
		printf(",\"interval_s\":%.3f", v->dt);
		json_rate(producer_rate(v), 1);
	}
	printf(",\"consumers\":[");
	for (uint32_t i = 0; i < v->st->nconsumers; i++) {
		if (i)
			putchar(',');
		json_consumer(v, &v->st->consumers[i]);
	}
	printf("]}\n");
}

/* ---- Prometheus text format ------------------------------------------ */

/*
 * A label value (text exposition format 0.0.4): the format escapes only
 * \\, \" and the newline (\n). The value goes through tool_escape()'s
 * JSON mode first, which escapes \\ and \" as the format does and turns
 * every control or invisible formatting character, and every byte that
 * is not valid UTF-8, into \uNNNN: the newline's becomes \n, the others
 * the text \uNNNN (written \\uNNNN). The file stays valid UTF-8 and
 * cannot drive a terminal that shows it.
 */
static void prom_label_value(const char *s)
{
	char buf[TOOL_ESC_MAX(PATH_MAX)];
	const char *e;

	tool_escape(buf, sizeof(buf), s, strlen(s), TOOL_ESC_JSON);
	for (e = buf; *e; e++) {
		if (e[0] != '\\') {
			putchar(*e);
		} else if (e[1] == 'u') {
			if (!strncmp(e + 2, "000a", 4)) {
				fputs("\\n", stdout);
				e += 5;
			} else {
				fputs("\\\\", stdout);	/* the text \uNNNN */
			}
		} else {
			putchar(*e++);			/* \\ or \" as they are */
			putchar(*e);
		}
	}
}

static void prom_family(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{queue="PATH"} VALUE, for a queue-wide sample. */
static void prom_queue(const struct view *v, const char *name,
		       const char *type, const char *help, const char *fmt,
		       double value)
{
	prom_family(name, type, help);
	printf("%s{queue=\"", name);
	prom_label_value(v->path);
	printf("\"} ");
	printf(fmt, value);
	putchar('\n');
}

static void prom_u64(const struct view *v, const char *name,
		     const char *type, const char *help, uint64_t value)
{
	prom_family(name, type, help);
	printf("%s{queue=\"", name);
	prom_label_value(v->path);
	printf("\"} %" PRIu64 "\n", value);
}

static void prom_consumer_labels(const struct view *v, const char *name,
				 const struct shmq_consumer_stat *c)
{
	printf("%s{queue=\"", name);
	prom_label_value(v->path);
	printf("\",slot=\"%" PRIu32 "\",kind=\"%s\",name=\"", c->slot,
	       table_kind(c));
	prom_label_value(c->name);
	printf("\"} ");
}

/* One family with a sample per consumer; FIELD picks the value. */
enum prom_field { P_ALIVE, P_HOLDING, P_EVICTED, P_LAG_MSGS, P_LAG_BYTES,
		  P_LAG_AGE };

static void prom_consumers(const struct view *v, const char *name,
			   const char *help, enum prom_field f)
{
	prom_family(name, "gauge", help);
	for (uint32_t i = 0; i < v->st->nconsumers; i++) {
		const struct shmq_consumer_stat *c = &v->st->consumers[i];
		int64_t age = lag_age_ns(v, c);

		if (f == P_LAG_AGE && age < 0)
			continue;	/* unknown: no sample rather than a lie */
		prom_consumer_labels(v, name, c);
		switch (f) {
		case P_ALIVE:
			printf("%d\n", c->alive ? 1 : 0);
			break;
		case P_HOLDING:
			printf("%d\n", c->holding ? 1 : 0);
			break;
		case P_EVICTED:
			printf("%d\n", c->evicted ? 1 : 0);
			break;
		case P_LAG_MSGS:
			printf("%" PRIu64 "\n", lag_messages(c));
			break;
		case P_LAG_BYTES:
			printf("%" PRIu64 "\n", lag_bytes(c));
			break;
		case P_LAG_AGE:
			printf("%.3f\n", age / 1e9);
			break;
		}
	}
}

/*
 * The counters for node_exporter's textfile collector: one family per
 * metric, HELP and TYPE first, no timestamps (the collector refuses
 * them). Counters end in _total; values are exact integers where the
 * library's are.
 */
static void print_prometheus(const struct view *v)
{
	const struct shmq_stat *st = v->st;
	int64_t oldest = oldest_age_ns(v);
	uint32_t consumers = 0;

	prom_u64(v, "shmq_capacity_bytes", "gauge",
		 "Size of the data ring.", st->capacity);
	prom_u64(v, "shmq_max_message_bytes", "gauge",
		 "Largest message payload.", st->max_message);
	prom_u64(v, "shmq_slots", "gauge", "Consumer slots.", st->slots);
	prom_u64(v, "shmq_fill_bytes", "gauge",
		 "Ring bytes between the slowest holder and the write position.",
		 st->fill_bytes);
	prom_queue(v, "shmq_fill_ratio", "gauge",
		   "fill_bytes as a share of the ring.", "%.6f",
		   st->capacity ? (double)st->fill_bytes / st->capacity : 0);
	if (oldest >= 0)
		prom_queue(v, "shmq_oldest_age_seconds", "gauge",
			   "Age of the oldest message in the ring.", "%.3f",
			   oldest / 1e9);
	prom_u64(v, "shmq_messages_total", "counter",
		 "Messages sent since the queue was created.", st->messages);
	prom_u64(v, "shmq_payload_bytes_total", "counter",
		 "Payload bytes sent since the queue was created.", st->bytes);
	prom_u64(v, "shmq_full_waits_total", "counter",
		 "Times the producer waited for room in the ring.",
		 st->full_waits);
	prom_u64(v, "shmq_unsynced_bytes", "gauge",
		 "Ring bytes written but not yet synced to disk.",
		 st->write_pos - st->durable_pos);
	prom_u64(v, "shmq_durability_failed", "gauge",
		 "1 once an msync of the queue failed.", v->sync_error != 0);
	prom_family("shmq_producer_state", "gauge",
		    "1 for the producer's state (none, open, closed, died, aborted).");
	for (uint32_t i = 0; i < 5; i++) {
		printf("shmq_producer_state{queue=\"");
		prom_label_value(v->path);
		printf("\",state=\"%s\"} %d\n", producer_state_name(i),
		       st->producer_state == i);
	}
	if (st->producer_state != SHMQ_PRODUCER_NONE)
		prom_u64(v, "shmq_producer_pid", "gauge",
			 "Pid of the last producer (for display: pids lie).",
			 st->producer_pid);
	for (uint32_t i = 0; i < st->nconsumers; i++)
		consumers += st->consumers[i].kind != SHMQ_CONSUMER_MEMBER;
	prom_u64(v, "shmq_consumers", "gauge",
		 "Consumers in the slot table (a group counts once).",
		 consumers);
	prom_consumers(v, "shmq_consumer_alive",
		       "1 while the consumer (a group: a member) is attached.",
		       P_ALIVE);
	prom_consumers(v, "shmq_consumer_holding",
		       "1 when the consumer is (one of) the slowest holding the "
		       "producer back.", P_HOLDING);
	prom_consumers(v, "shmq_consumer_evicted",
		       "1 when the consumer was evicted for stalling.",
		       P_EVICTED);
	prom_consumers(v, "shmq_consumer_lag_messages",
		       "Messages the consumer has not read yet.", P_LAG_MSGS);
	prom_consumers(v, "shmq_consumer_lag_bytes",
		       "Ring bytes the consumer has not read yet.", P_LAG_BYTES);
	prom_consumers(v, "shmq_consumer_lag_age_seconds",
		       "Age of the oldest message the consumer has not read.",
		       P_LAG_AGE);
}

/* ---- table ----------------------------------------------------------- */

static const char *human_age(int64_t ns, char *buf, size_t len)
{
	double s = ns / 1e9;

	if (ns < 0)
		snprintf(buf, len, "?");
	else if (s < 120)
		snprintf(buf, len, "%.1fs", s);
	else if (s < 7200)
		snprintf(buf, len, "%.0fm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%.1fh", s / 3600);
	else
		snprintf(buf, len, "%.1fd", s / 86400);
	return buf;
}

static const char *human_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = ns / 1000000000;
	struct tm tm;

	if (!ns || !localtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "unknown");
	return buf;
}

static void table_header(const struct view *v)
{
	const struct shmq_stat *st = v->st;
	char a[32], b[32], c[32];

	printf("queue      ");
	tool_fputs_escaped(v->path, TOOL_ESC_TEXT, stdout);
	printf(" (format %" PRIu32 ", created %s, %" PRIu64
	       " bytes)\n", st->version,
	       human_time(st->created_ns, a, sizeof(a)), st->file_size);
	printf("geometry   ring %s, max message %s, %" PRIu32
	       " slots, when full: %s",
	       fmt_bytes(st->capacity, a, sizeof(a)),
	       fmt_bytes(st->max_message, b, sizeof(b)), st->slots,
	       st->when_full ? "overwrite" : "block");
	if (st->evict_after_ms)
		printf(", evict after %" PRIu32 " ms", st->evict_after_ms);
	if (st->checksum == SHMQ_CHECKSUM_HEADER)
		printf(", checksums: headers only");
	putchar('\n');
	printf("producer   %s", producer_state_name(st->producer_state));
	if (st->producer_state != SHMQ_PRODUCER_NONE)
		printf(", pid %" PRIu32, st->producer_pid);
	printf("\nfill       %s of %s (%.1f%%)\n",
	       fmt_bytes(st->fill_bytes, a, sizeof(a)),
	       fmt_bytes(st->capacity, b, sizeof(b)),
	       st->capacity ? 100.0 * st->fill_bytes / st->capacity : 0.0);
	printf("oldest     seq %" PRIu64 " at position %" PRIu64 ", age %s\n",
	       st->tail_seq, st->tail_pos,
	       human_age(oldest_age_ns(v), a, sizeof(a)));
	printf("sent       %" PRIu64 " messages, %s payload; next seq %" PRIu64
	       "; %" PRIu64 " full waits\n", st->messages,
	       fmt_bytes(st->bytes, a, sizeof(a)), st->next_seq,
	       st->full_waits);
	printf("durable    up to position %" PRIu64 " (%s not synced)",
	       st->durable_pos,
	       fmt_bytes(st->write_pos - st->durable_pos, c, sizeof(c)));
	if (v->sync_error)
		printf(", DURABILITY FAILED: %s", shmq_strerror(v->sync_error));
	putchar('\n');
	if (st->cut_time)
		printf("last cut   %s, %s, up to %" PRIu64 " messages%s\n",
		       human_time(st->cut_time * 1000000000ull, a, sizeof(a)),
		       fmt_bytes(st->cut_bytes, b, sizeof(b)), st->cut_messages,
		       st->cut_durable ? ", durable data went (accepted)" : "");
}

static void table_rates(const struct view *v)
{
	struct rate r = producer_rate(v);
	char a[32];

	if (!v->prev)
		return;
	if (r.known) {
		printf("rate       %.0f messages/s, %s/s in the ring, ", r.msgs,
		       fmt_bytes(r.bytes, a, sizeof(a)));
		printf("%s/s payload\n", fmt_bytes(r.payload, a, sizeof(a)));
	} else
		printf("rate       -\n");
}

static void table_consumer(const struct view *v,
			   const struct shmq_consumer_stat *c)
{
	struct rate r = consumer_rate(v, c);
	char age[32], bytes[32], rate[48], pid[16], pos[24], lag[24];
	char name[TOOL_ESC_MAX(sizeof(c->name))];
	/*
	 * A member reads its group's stream: the group's row has the
	 * position and the lag; the member's own position is not kept.
	 */
	int member = c->kind == SHMQ_CONSUMER_MEMBER;

	if (!v->prev)
		rate[0] = '\0';
	else if (r.known && member)
		snprintf(rate, sizeof(rate), "  %9.0f %9s", r.msgs, "-");
	else if (r.known)
		snprintf(rate, sizeof(rate), "  %9.0f %9.0f", r.msgs, r.bytes);
	else
		snprintf(rate, sizeof(rate), "  %9s %9s", "-", "-");
	snprintf(pos, sizeof(pos), "%" PRIu64, c->position);
	snprintf(lag, sizeof(lag), "%" PRIu64, lag_messages(c));
	fmt_bytes(lag_bytes(c), bytes, sizeof(bytes));
	human_age(lag_age_ns(v, c), age, sizeof(age));
	if (member) {
		strcpy(pos, "-");
		strcpy(lag, "-");
		strcpy(bytes, "-");
		strcpy(age, "-");
	}
	/* Any user who can write the file names slots: never print it raw. */
	if (c->name[0])
		tool_escape(name, sizeof(name), c->name, strlen(c->name),
			    TOOL_ESC_TEXT);
	else
		strcpy(name, "-");
	/* A group has no process of its own: its members have rows. */
	if (c->kind == SHMQ_CONSUMER_GROUP)
		strcpy(pid, "-");
	else
		snprintf(pid, sizeof(pid), "%" PRIu32, c->pid);
	printf("%4" PRIu32 " %-9s %-16s %7s %-7s %-4s %12s %10" PRIu64
	       " %10s %10s %8s%s\n",
	       c->slot, table_kind(c), name,
	       pid, state_name(c), c->holding ? "yes" : "",
	       pos, c->next_seq, lag, bytes, age, rate);
}

static void print_table(const struct view *v)
{
	table_header(v);
	table_rates(v);
	printf("consumers  %" PRIu32, v->st->nconsumers);
	if (!v->st->nconsumers) {
		putchar('\n');
		return;
	}
	printf(" (positions, lags and rates in ring bytes: payload and record "
	       "headers)\n");
	printf("%4s %-9s %-16s %7s %-7s %-4s %12s %10s %10s %10s %8s%s\n",
	       "SLOT", "KIND", "NAME", "PID", "STATE", "HOLD", "POSITION",
	       "NEXT_SEQ", "LAG_MSGS", "LAG_BYTES", "LAG_AGE",
	       v->prev ? "      MSG/S       B/S" : "");
	for (uint32_t i = 0; i < v->st->nconsumers; i++)
		table_consumer(v, &v->st->consumers[i]);
}

/* ---- command --------------------------------------------------------- */

static int sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	/* SIGINT/SIGTERM interrupt the sleep and end the watch. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !tool_stop)
		;
	return tool_stop;
}

enum stat_format { FMT_TABLE, FMT_JSON, FMT_PROMETHEUS };

static int stat_watch(const char *path, struct shmq *q, int fmt,
		      int64_t every_ns)
{
	struct shmq_stat *st, *prev = NULL;
	int64_t t, prev_t = 0;
	struct view v;
	int r = 0;

	tool_catch_stop_signals();
	do {
		r = shmq_stat_get(q, &st);
		if (r < 0) {
			r = tool_fail(path, "cannot read queue state", r);
			break;
		}
		t = now_mono_ns();
		v = (struct view){ path, shmq_sync_error(q), st, prev,
				   (t - prev_t) / 1e9, now_real_ns() };
		if (fmt == FMT_TABLE && isatty(STDOUT_FILENO))
			printf("\033[H\033[2J");
		else if (fmt == FMT_TABLE && prev)
			putchar('\n');
		if (fmt == FMT_JSON)
			print_json(&v);
		else if (fmt == FMT_PROMETHEUS)
			print_prometheus(&v);
		else
			print_table(&v);
		if (fflush(stdout) == EOF) {
			r = errno == EPIPE ? EXIT_PIPE : EXIT_ERROR;
			break;
		}
		shmq_stat_free(prev);
		prev = st;
		prev_t = t;
	} while (every_ns >= 0 && !sleep_ns(every_ns));
	shmq_stat_free(prev);
	return r;
}

/*
 * `shmq stat /proc/PID/fd/N`: the one kind of symbolic link stat follows,
 * so that a queue without a path (a memfd that process PID holds) can be
 * looked at, read-only. Only a link to a regular file without a name is
 * followed; at any other path tool_open() refuses a link as always.
 * Sets tool_queue_fd when it opened one.
 */
static void open_proc_fd(const char *path)
{
	const char *p = path + 6;
	struct stat st, st2;
	size_t n;
	int fd;

	if (strncmp(path, "/proc/", 6))
		return;
	n = strspn(p, "0123456789");
	if (!n && !strncmp(p, "self", 4))
		n = 4;
	if (!n || strncmp(p + n, "/fd/", 4))
		return;
	p += n + 4;
	n = strspn(p, "0123456789");
	if (!n || p[n])
		return;
	/* stat() first: opening a device or a FIFO may have effects. */
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return;
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev ||
	    st2.st_ino != st.st_ino) {
		close(fd);
		return;
	}
	tool_queue_fd = fd;	/* tool_open() validates it as a queue */
}

int cmd_stat(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "watch", required_argument, NULL, 'w' },
		TOOL_OPT_ANY_OWNER,	/* accepted; stat reads any owner's */
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int64_t every = -1;
	struct shmq *q;
	const char *path;
	int c, r, fmt = FMT_TABLE, formats = 0;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h')
			return fputs(stat_usage, stdout), EXIT_OK;
		if (c == 0)	/* a flag option: --any-owner */
			continue;
		if (c == 'V')
			return cmd_version();
		if (c == 'j' || c == 'p') {
			fmt = c == 'j' ? FMT_JSON : FMT_PROMETHEUS;
			formats++;
		} else if (c == 'w') {
			if (parse_seconds("--watch", optarg, &every))
				return EXIT_USAGE;
			if (every < 1000000)
				return tool_usage_error("--watch: at least "
							"0.001 seconds");
		} else
			return tool_getopt_error(c, argv);
	}
	if (formats > 1)
		return tool_usage_error("--json and --prometheus exclude each "
					"other");
	/* The textfile collector wants one whole snapshot per file. */
	if (fmt == FMT_PROMETHEUS && every >= 0)
		return tool_usage_error("--prometheus does not combine with "
					"--watch");
	path = one_path(argc, argv, optind);
	if (!path)
		return EXIT_USAGE;
	open_proc_fd(path);
	/* Looking never writes: another user's queue may be inspected. */
	r = tool_open(path, SHMQ_OPEN_RDONLY | SHMQ_OPEN_ANY_OWNER, &q);
	if (r)
		return r;
	r = stat_watch(path, q, fmt, every);
	shmq_close(q);
	return r;
}
