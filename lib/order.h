/* SPDX-License-Identifier: MIT */
/*
 * The memory-ordering vocabulary: the only file that touches liburcu's
 * uatomic and cmm_* primitives. Every shared word of the queue file is
 * read and written through these five verbs; a plain access to a shared
 * word is a bug. Labels (W1/A1, R1/A2, F1, ...) pair them up; the table is
 * in docs/concurrency.md.
 *
 * liburcu 0.13 has no acquire/release loads and stores, so they are built
 * from CMM_LOAD_SHARED/CMM_STORE_SHARED (volatile, single-copy atomic for
 * aligned words) and fences:
 *  - acquire: the load, then cmm_smp_rmb(). On x86 (TSO) loads are not
 *    reordered with later loads or stores, so a compiler barrier is enough;
 *    on arm64 rmb is "dmb ishld", which orders the load before later loads
 *    AND stores, which is what acquire means.
 *  - release: a fence, then the store. Release must order earlier loads as
 *    well as stores before the store (a consumer's reads of a payload
 *    before it gives the space back). cmm_smp_wmb() orders stores only, so
 *    off x86 we pay for cmm_smp_mb(); on x86 TSO already forbids those
 *    reorderings and a compiler barrier suffices.
 *  - full: cmm_smp_mb(), for the store-then-load (Dekker) handshakes of
 *    the futex sleep protocol and of consumer attach, which no weaker
 *    fence orders on any architecture, x86 included.
 *
 * ThreadSanitizer does not understand fences around volatile accesses;
 * under it the verbs map to the equivalent __atomic builtins so that the
 * threaded stress harness checks the same orderings.
 */
#ifndef SHMQ_ORDER_H
#define SHMQ_ORDER_H

#include <urcu/arch.h>
#include <urcu/system.h>
#include <urcu/uatomic.h>

#if defined(__SANITIZE_THREAD__)
#define SHMQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMQ_TSAN 1
#endif
#endif

#if defined(__x86_64__) || defined(__i386__)
#define shmqi_release_fence()	cmm_barrier()
#else
#define shmqi_release_fence()	cmm_smp_mb()
#endif

#ifdef SHMQ_TSAN
#define load_relaxed(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define store_relaxed(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define load_acquire(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define fence_full()		__atomic_thread_fence(__ATOMIC_SEQ_CST)
#define fence_acquire()		__atomic_thread_fence(__ATOMIC_ACQUIRE)
#else
/* A single load or store of an aligned word: no tearing, no ordering. */
#define load_relaxed(p)		CMM_LOAD_SHARED(*(p))
#define store_relaxed(p, v)	CMM_STORE_SHARED(*(p), (v))

/* Later loads and stores are not performed before this load. */
#define load_acquire(p)						\
	__extension__ ({						\
		__typeof__(*(p)) _v = CMM_LOAD_SHARED(*(p));		\
		cmm_smp_rmb();						\
		_v;							\
	})

/* Earlier loads and stores are performed before this store. */
#define store_release(p, v)						\
	do {								\
		shmqi_release_fence();					\
		CMM_STORE_SHARED(*(p), (v));				\
	} while (0)

/* Earlier stores are visible before later loads (and everything else). */
#define fence_full()		cmm_smp_mb()

/* Earlier loads are performed before later loads and stores (seqlock read). */
#define fence_acquire()		cmm_smp_rmb()
#endif

/*
 * Atomic read-modify-write; each implies fence_full() before and after it
 * (liburcu's contract for uatomic_add_return, _xchg and _cmpxchg).
 * store_fenced() is a release store that is also a full fence: one locked
 * xchg on x86, cheaper than a store followed by mfence, for the publishes
 * that must be ordered before a later load of a sleep flag.
 */
#ifdef SHMQ_TSAN
#define rmw_add(p, v)		((void)__atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST))
#define rmw_xchg(p, v)		__atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define rmw_cas(p, old, new)						\
	__extension__ ({						\
		__typeof__(*(p)) _o = (old);				\
		__atomic_compare_exchange_n((p), &_o, (new), 0,		\
			__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);		\
		_o;							\
	})
#else
#define rmw_add(p, v)		((void)uatomic_add_return((p), (v)))
#define rmw_xchg(p, v)		uatomic_xchg((p), (v))
#define rmw_cas(p, old, new)	uatomic_cmpxchg((p), (old), (new))
#endif
#define store_fenced(p, v)	((void)rmw_xchg((p), (v)))

/*
 * Set or clear bits of a 32-bit word; full fences before and after (a CAS
 * loop: liburcu's uatomic_or/_and imply no barrier). Returns the old value.
 */
#ifdef SHMQ_TSAN
#define rmw_or(p, v)		__atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
#define rmw_and(p, v)		__atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)
#else
#define rmw_or(p, v)							\
	__extension__ ({						\
		__typeof__(*(p)) _c = CMM_LOAD_SHARED(*(p)), _s;	\
		while ((_s = rmw_cas((p), _c, _c | (v))) != _c)		\
			_c = _s;					\
		_c;							\
	})
#define rmw_and(p, v)							\
	__extension__ ({						\
		__typeof__(*(p)) _c = CMM_LOAD_SHARED(*(p)), _s;	\
		while ((_s = rmw_cas((p), _c, _c & (v))) != _c)		\
			_c = _s;					\
		_c;							\
	})
#endif

#endif /* SHMQ_ORDER_H */
