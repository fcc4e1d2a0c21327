# SPDX-License-Identifier: MIT
"""The C declarations of libshmq that the package uses, and the library.

ABI mode (``ffi.dlopen``): nothing is compiled at install or at import.
The declarations follow include/shmq.h; only the calls and structs the
package uses are declared. Every struct is declared in full, so that its
size here is the C size (checked below). Two buffer parameters are
declared ``const char *`` where the header says ``const void *``: the same
ABI, and cffi then passes a ``bytes`` object without a copy or a wrapper.
"""
from __future__ import annotations

import ctypes.util
import os

from cffi import FFI

CDEF = """
typedef long ssize_t;

struct shmq;
struct shmq_producer;
struct shmq_consumer;

struct iovec {
	void *iov_base;
	size_t iov_len;
};

struct shmq_config {
	uint64_t capacity;
	uint32_t max_message;
	uint32_t slots;
	uint32_t mode;
	uint32_t when_full;
	uint32_t evict_after_ms;
	uint64_t initial_pos;
	uint32_t checksum;
	uint32_t reserved0;
	uint64_t reserved[5];
};

struct shmq_producer_opts {
	uint32_t flags;
	uint32_t sync_mode;
	uint32_t sync_every_n;
	uint32_t sync_every_ms;
	uint32_t reserved[12];
};

struct shmq_consumer_opts {
	uint32_t kind;
	uint32_t start;
	const char *name;
	uint32_t flags;
	uint32_t reserved0;
	uint64_t reserved[5];
};

struct shmq_msg {
	const void *data;
	size_t len;
	uint64_t seq;
	uint32_t flags;
	uint32_t reserved0;
	uint64_t lost;
	uint64_t reserved[3];
};

struct shmq_info {
	uint32_t size;
	uint32_t version;
	uint64_t capacity;
	uint64_t file_size;
	uint32_t max_message;
	uint32_t slots;
	uint32_t when_full;
	uint32_t checksum;
	uint32_t evict_after_ms;
	uint32_t flags;
	int32_t sync_error;
	uint32_t reserved;
	uint64_t write_pos;
	uint64_t durable_pos;
};

int shmq_create(const char *path, const struct shmq_config *cfg);
int shmq_open(const char *path, int flags, const struct shmq_config *cfg,
	      struct shmq **out);
void shmq_close(struct shmq *q);
int shmq_create_anon(const struct shmq_config *cfg, struct shmq **out);
int shmq_fd(const struct shmq *q);
int shmq_open_fd(int fd, int flags, struct shmq **out);

int shmq_producer_open(struct shmq *q, const struct shmq_producer_opts *opts,
		       struct shmq_producer **out);
int shmq_send(struct shmq_producer *p, const char *buf, size_t len,
	      int64_t timeout_ns);
int shmq_send_until(struct shmq_producer *p, const char *buf, size_t len,
		    int64_t deadline_ns);
ssize_t shmq_send_batch(struct shmq_producer *p, const struct iovec *msgs,
			size_t n, int64_t timeout_ns);
int shmq_producer_close(struct shmq_producer *p);
int shmq_producer_abort(struct shmq_producer *p);

int shmq_consumer_open(struct shmq *q, const struct shmq_consumer_opts *opts,
		       struct shmq_consumer **out);
int shmq_peek(struct shmq_consumer *c, struct shmq_msg *msg,
	      int64_t timeout_ns);
int shmq_peek_until(struct shmq_consumer *c, struct shmq_msg *msg,
		    int64_t deadline_ns);
ssize_t shmq_peek_many(struct shmq_consumer *c, struct shmq_msg *msgs,
		       size_t n, int64_t timeout_ns);
int shmq_release(struct shmq_consumer *c);
int shmq_release_n(struct shmq_consumer *c, size_t n);
ssize_t shmq_recv(struct shmq_consumer *c, void *buf, size_t cap,
		  struct shmq_msg *msg, int64_t timeout_ns);
ssize_t shmq_recv_until(struct shmq_consumer *c, void *buf, size_t cap,
			struct shmq_msg *msg, int64_t deadline_ns);
void shmq_consumer_close(struct shmq_consumer *c);
int shmq_consumer_remove(struct shmq *q, const char *name);
int shmq_consumer_fd(struct shmq_consumer *c);

int shmq_set_evict_after(struct shmq *q, uint32_t ms);
int shmq_info(struct shmq *q, struct shmq_info *info, size_t size);
int shmq_sync(struct shmq *q);
void shmq_map_range(const struct shmq *q, const void **addr, size_t *len);
const char *shmq_strerror(int err);
const char *shmq_errdetail(void);
"""

ffi = FFI()
ffi.cdef(CDEF)

# The layouts the fast paths read through array('Q') views (msg, iovec)
# and the ABI's reserved space: a mismatch would read garbage, so refuse
# to load (not an assert: python -O must check too).
for _decl, _size in (("struct shmq_msg", 64), ("struct iovec", 16),
                     ("struct shmq_config", 88),
                     ("struct shmq_consumer_opts", 64),
                     ("struct shmq_producer_opts", 64),
                     ("struct shmq_info", 72)):
    if ffi.sizeof(_decl) != _size:
        raise ImportError(f"shmq: {_decl} is {ffi.sizeof(_decl)} bytes, "
                          f"libshmq's is {_size}: unsupported platform")


def library_name() -> str:
    """Return what ``ffi.dlopen`` is given: ``$SHMQ_LIBRARY`` (a path,
    for tests against a build directory), else what
    ``ctypes.util.find_library("shmq")`` finds, else ``libshmq.so.1``."""
    env = os.environ.get("SHMQ_LIBRARY")
    if env:
        return env
    return ctypes.util.find_library("shmq") or "libshmq.so.1"


try:
    lib = ffi.dlopen(library_name())
except OSError as e:
    raise ImportError(f"shmq: cannot load libshmq ({library_name()}): {e}; "
                      "install libshmq or set SHMQ_LIBRARY to the path of "
                      "libshmq.so.1") from e
