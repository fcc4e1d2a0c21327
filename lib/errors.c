/* SPDX-License-Identifier: MIT */
/* Error texts: shmq_strerror() for codes, a per-thread detail line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static __thread char detail[256];

int shmqi_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return err;
}

void shmqi_clear_error(void)
{
	detail[0] = '\0';
}

const char *shmq_errdetail(void)
{
	return detail;
}

const char *shmq_strerror(int err)
{
	switch (err) {
	case 0:			return "success";
	case -EAGAIN:		return "would block";
	case -ETIMEDOUT:	return "timed out";
	case -EINTR:		return "interrupted by a signal";
	case -EMSGSIZE:		return "message larger than the queue's maximum or the buffer";
	case -EPIPE:		return "every consumer has gone";
	case -ESHUTDOWN:	return "end of stream: the producer closed";
	case -EOWNERDEAD:	return "the producer died without closing";
	case -ECONNRESET:	return "this consumer was evicted";
	case -ESTALE:		return "queue file truncated, deleted or replaced";
	case -ECANCELED:	return "end of stream: the producer aborted";
	case -ENOTRECOVERABLE:	return "recovery would cut data acknowledged as durable";
	case -EBADMSG:		return "corrupt queue file or record";
	case SHMQ_ENOTQUEUE:	return "not a queue file";
	case -EPROTO:		return "incompatible queue format (version, layout or byte order)";
	case -EBUSY:		return "role already taken";
	case -EEXIST:		return "queue file already exists";
	case -ENOENT:		return "no such queue file or consumer";
	case -EINVAL:		return "invalid argument";
	case -ENOSPC:		return "no space (disk full, or no free consumer slot)";
	case -ENOMEM:		return "out of memory";
	case -EACCES:		return "permission denied";
	case -EPERM:		return "operation not permitted";
	case -ELOOP:		return "refusing to follow a symbolic link";
	case -EROFS:		return "queue opened read-only";
	case -EIO:		return "I/O error: data may not be durable";
	case -ENOLCK:		return "no file locks available";
	case -EFBIG:		return "file too large";
	case -EMFILE:		return "too many open files";
	case -ENFILE:		return "too many open files in the system";
	case -EBADFD:		return "handle inherited across fork(): attach afresh in the child";
	case -EBADF:		return "bad file descriptor";
	default:
		break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}
