/* SPDX-License-Identifier: MIT */
/*
 * A Promela model of the shmq protocol (docs/concurrency.md, "The model"),
 * checked exhaustively by spin through tests/model/check.sh.
 *
 * Records are units: the record at position p lives in cell p % C, which
 * holds the sequence p once sealed and BUSY while the producer writes it.
 * A step (an atomic block, or a lone statement) makes one access to
 * shared memory, named after its pair in docs/concurrency.md, plus the
 * local computation around it. Where two accesses are folded into one
 * step the comment says why no interleaving that matters is lost; the
 * usual reason is that a copy of a cell is only asserted on and a cell's
 * value only moves forward, so reading it at the later instant catches
 * any overwrite the earlier read would have. Steps that run under the
 * attach lock and touch only what that lock protects are one step.
 * Spin's machine is sequentially consistent: the model checks the
 * protocol assuming each labelled fence does its job.
 *
 * Waiting: FUTEX_WAIT(word, v) returns once the word is no longer v, so
 * each sleeper has a bit "moved since I read v", cleared where the C code
 * reads v and set by every bump. A sleeper waits for its bit or, once a
 * process has crashed, for the whole system to be stuck (spin's timeout),
 * which stands for the 100 ms slice; without a crash no wait may need
 * the slice (a stuck system is an invalid end state): no lost wake-up.
 * In the group configurations the slice is the ticker's, which wakes
 * every sleeper at once and counts slices that changed nothing: a crash
 * may cost a slice, never progress for good (liveness, not only safety).
 * Processes that do not run the futex protocol in a configuration wait
 * on the condition that would wake them (abstract wake-up).
 *
 * Crashes: a killer raises one victim's kill flag at any moment (at most
 * MAXCRASH per run); the victim's `unless` abandons it before its next
 * step, and the kernel drops its locks. A dead producer is replaced
 * only with -DRESTART.
 *
 * Configurations:
 *  default  the producer (abstract sleep for space); consumers 0 and 1
 *           attached at position 0 (0 sleeps with F2, 1 waits
 *           abstractly); consumer 2 joins while everything runs
 *           (claim_slot, start_position, the F1 handshake); a dead
 *           anonymous consumer's slot reclaimed by the producer before it
 *           sleeps (shmqi_reclaim_dead) or by the joiner (claim_slot).
 *  -DGROUPS the producer (sleeps with F3) and a group of two members
 *           (both sleep with F2): claim (C1 and the CAS), release (C4),
 *           the frontier (C2, C3), adoption of a dead member's claim and
 *           its flagged redelivery, and D1: idle members, rescuers and
 *           the producer about to sleep advance a lagging frontier. A
 *           slice after which nothing moved, three times running, is a
 *           group stuck for good and fails the run.
 *           -DOLD_CLAIM: the claim code before the stale-claim fix
 *           (d167bc0). -DOLD_ADOPT: adoption before
 *           shmqi_member_take_adopted, which took a claim the dead member
 *           never won and could copy a record being overwritten.
 *           -DOLD_ADVANCE: the advance before issue 11 (only a member
 *           that released, or cleared a stale claim, advanced), which a
 *           member killed between C4 and its advance stops for good.
 *  -DEVICT  with -DGROUPS: the producer, instead of sleeping, may evict
 *           the group (E1: slot state EVICTED, the floor raised); a
 *           member delayed anywhere must end with SHMQ_EVICTED, never a
 *           false -EBADMSG, and never deliver an overwritten record.
 *           -DOLD_EVICT: the claim before issue 11, which called a claim
 *           word more than a ring behind write_pos corrupt.
 *  -DRESTART the broadcast configuration with consumer 0 attached at 0
 *           (sleeping with F2) and a joiner (consumer 1, the F1
 *           handshake), and a producer that, killed at any step, is
 *           replaced by a new process (shmq_producer_open): it takes the
 *           role, recovers (the walk must cut nothing; clamp_cursors
 *           lifts a dead holder below the tail and leaves a live one,
 *           which is inside its attach handshake), and keeps its limit
 *           behind every live holder below the tail (issue 11, defect
 *           4). Consumers wait for the new producer and end at its EOF
 *           (or SHMQ_EDIED if it dies too). -DOLD_RESTART: the open and
 *           recovery before issue 11 (limit = tail without a scan; every
 *           holder below the tail lifted); -DOLD_LIFT, -DOLD_OPEN: only
 *           the recovery, or only the open, as before.
 *  -DOBSERVER an overwrite-policy producer that never waits and one
 *           observer attaching while it laps the ring: the sequence it
 *           learns must be the one at the position it starts at (L1 in
 *           learn_seq), and every message must carry the exact number
 *           lost before it. -DOLD_LEARN: learn_seq before issue 11.
 */

#ifndef C
#define C 2		/* ring capacity, in records */
#endif
#ifndef N
#define N 3		/* messages the producer sends */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1
#endif

#define BUSY	255
#define NONE	255	/* no claim (the HELD bit clear) */

#define FREE	0	/* slot states */
#define ACTIVE	1
#define EVICTED	2

#define OPEN	1	/* prod_state */
#define CLOSED	2

#define EOF	1	/* producer_gone() */
#define EDIED	2
#define GEVICT	3	/* a member's SHMQ_EVICTED */

/* Lock owners (0 = free): the producer, and consumer or member k. */
#define PID_PROD 1
#define PID_C(k) (2 + (k))

#ifndef OBSERVER
#if defined(RESTART) && defined(GROUPS)
#error "RESTART is a broadcast configuration"
#endif
#ifdef GROUPS
#define NS 1		/* slot 0 is the group slot, the only holder */
#define NC 2		/* members */
#elif defined(RESTART)
#define NS 2		/* consumer slots */
#define NC 2		/* consumers 0 (attached), 1 (joins) */
#define JOINER 1
#else
#define NS 3		/* consumer slots */
#define NC 3		/* consumers 0, 1 (attached), 2 (joins) */
#define JOINER 2
#endif
#define NPROC (1 + NC)	/* the producer (also the one that restarts) */

byte ring[C];
byte write_pos, tail_pos, floor_pos;
byte prod_state = OPEN;
byte prod_lock = PID_PROD;	/* the OFD lock on byte 1 */
bool data_waiters, prod_waiting;
bool data_moved[NC];		/* data_futex moved since sleeper k read it */
bool space_moved;		/* space_futex moved since the producer read it */
byte attach_lock;		/* the OFD lock on the slot table */

byte slot_state[NS], slot_pos[NS], slot_lock[NS];

#ifdef GROUPS
/*
 * The group slot is slot 0: gclaim is its claim word, slot_pos[0] its
 * position (the frontier). Member k has mstate[k], mclaim[k] and the lock
 * mlock[k] (its own, or an adopter's).
 */
byte gclaim;
byte mstate[NC], mclaim[NC], mlock[NC];
byte delivered[N];	/* deliveries of each message */
byte wend;		/* the highest write_pos a member stopped at */
byte nprog;		/* deliveries and member slots freed, for PROGRESS */
#endif

bool kill[NPROC];
byte crashes;
#ifdef RESTART
bool restarted;		/* a new producer took the role: the last one */
#endif
byte ndone;		/* processes that finished or died */

#ifdef GROUPS
/*
 * The 100 ms slice, after a crash or an eviction: when the whole system
 * is stuck the ticker ends every sleeper's slice at once, by moving both
 * futex words (a spurious wake-up of everyone). PROGRESS only grows, and
 * moves with every step that matters to liveness (a record written, the
 * frontier or the claim word moved, a delivery, a slot freed, an
 * eviction, a process done).
 */
byte stuck, last_prog;
#define PROGRESS	(write_pos + slot_pos[0] + gclaim + nprog + ndone + \
			 slot_state[0] + prod_state)
#ifdef EVICT
#define SLICE_OK	(crashes > 0 || slot_state[0] == EVICTED)
#else
#define SLICE_OK	(crashes > 0)
#endif
#define SLICE_OVER	false	/* the ticker moves the futex words */
#else
#define SLICE_OVER	(timeout && crashes > 0)
#endif

/* Locks the kernel drops when process ME dies (inside an atomic). */
inline drop_locks(me)
{
	if :: attach_lock == me -> attach_lock = 0 :: else -> skip fi;
	if :: prod_lock == me -> prod_lock = 0 :: else -> skip fi;
	for (i : 0 .. NS - 1) {
		if :: slot_lock[i] == me -> slot_lock[i] = 0 :: else -> skip fi
	}
#ifdef GROUPS
	for (i : 0 .. NC - 1) {
		if :: mlock[i] == me -> mlock[i] = 0 :: else -> skip fi
	}
#endif
	i = 0
}

/* rmw_add(data_futex, 1) (inside an atomic). */
inline bump_data()
{
	for (i : 0 .. NC - 1) { data_moved[i] = true }
	i = 0
}

/*
 * shmqi_wake_producer: prod_waiting read and swapped, space_futex bumped
 * (one step: a crash between the two only costs the slice, which a crash
 * allows anyway).
 */
inline wake_producer()
{
#ifdef GROUPS
	if
	:: atomic { prod_waiting -> prod_waiting = false; space_moved = true }
	:: else -> skip
	fi
#else
	skip	/* the producer's sleep is abstract here */
#endif
}

#ifdef GROUPS
/* A member's claim, if held and below f (one acquire load). */
#define ADV_CLAIM(k)	if :: mstate[k] == ACTIVE && mclaim[k] != NONE && \
			      mclaim[k] < f -> f = mclaim[k] \
			   :: else -> skip fi

/*
 * shmqi_group_advance: C2 (the claim word), every other member's claim
 * (an advancing member's own claim is clear; the producer, ME = NC, reads
 * both), the C3 CAS-max of the frontier, then the producer's wake-up.
 */
inline group_advance()
{
	atomic { f = gclaim };				/* C2 */
	if
	:: me < NC -> atomic { k = 1 - me; ADV_CLAIM(k); k = 0 }
	:: else ->	/* the producer: one member, then the other */
		atomic { ADV_CLAIM(0) };
		atomic { ADV_CLAIM(1) }
	fi;
	atomic {
		if :: slot_pos[0] < f -> slot_pos[0] = f :: else -> skip fi;	/* C3 */
		f = 0
	};
	wake_producer()
}
#endif

/* A2 on slot J: its state and position, into m (minimum) and n. */
inline scan_slot(j)
{
	if
	:: slot_state[j] == ACTIVE ->
		if :: m == NONE || slot_pos[j] < m -> m = slot_pos[j]
		   :: else -> skip fi;
		n++
	:: else -> skip
	fi
}

/*
 * shmqi_holders_min, one step: positions only grow, and F1 needs only
 * that every slot is read after the W2 store (docs/concurrency.md).
 */
inline holders_min()
{
	n = 0; m = NONE;
	for (j : 0 .. NS - 1) { scan_slot(j) }
	j = 0
}

/*
 * refresh_limit, block policy: the tail moves up to the slowest holder
 * (to the floor with none), W2/F1 is the fenced store of tail_pos, then
 * the holders are scanned again; the limit is their minimum or the tail.
 */
inline refresh_limit()
{
	atomic {
		holders_min();				/* A2 */
		if
		:: n == 0 -> m = floor_pos;
			if :: m < tail -> m = tail :: else -> skip fi
		:: else -> skip
		fi;
		if :: pos < m -> m = pos :: else -> skip fi;
		t = tail;
		if :: t < m -> t = m :: else -> skip fi;
		/*
		 * t stays set until the test below: clearing it here made a
		 * refresh that moved nothing "publish" tail_pos = 0 (a model
		 * bug that only bounds past one lap could reach).
		 */
		if :: t == tail -> lim = (n > 0 && m < t -> m : t); m = 0; n = 0
		   :: else -> skip fi
	};
	if
	:: atomic { t != tail -> tail_pos = t; tail = t };	/* W2, F1 */
		atomic {
			holders_min();			/* A2, after F1 */
			lim = (n > 0 && m < t -> m : t);
			m = 0; n = 0; t = 0
		}
	:: else -> t = 0
	fi
}

#define FITS	(pos + 1 - lim <= C)

/* The abstract wake-up for space: the slowest holder (or the floor) moved. */
#define HP(k)		(slot_state[k] == ACTIVE -> slot_pos[k] : NONE)
#define MIN2(a, b)	((a) < (b) -> (a) : (b))
#if NS > 2
#define LOWEST		MIN2(HP(0), MIN2(HP(1), HP(2)))
#else
#define LOWEST		MIN2(HP(0), HP(1))
#endif
#define ROOM		(pos + 1 - C <= (LOWEST == NONE -> floor_pos : LOWEST))

#ifndef GROUPS
/*
 * shmqi_reclaim_dead: the attach lock tried, every dead anonymous slot
 * freed (its position raises the floor), the lock dropped. One step:
 * everything it touches is the slot table's, under that lock, and a dead
 * slot's position no longer moves.
 */
inline reclaim_dead()
{
	atomic {
		if
		:: attach_lock == 0 ->
			for (k : 0 .. NS - 1) {
				if
				:: slot_state[k] != FREE && slot_lock[k] == 0 ->
					if :: floor_pos < slot_pos[k] -> floor_pos = slot_pos[k]
					   :: else -> skip fi;
					slot_state[k] = FREE
				:: else -> skip
				fi
			}
			k = 0
		:: else -> skip		/* the lock try failed: next time */
		fi
	}
}
#endif

/*
 * The producer's sends: the messages from pos (0, or write_pos after a
 * restarted producer's recovery) to N, with its tail and limit.
 */
inline send_loop()
{
	do
	:: pos == N -> break
	:: pos < N ->
		/* wait_space */
		do
		:: FITS -> break
		:: else ->
			refresh_limit();
			if
			:: FITS -> break
#ifdef EVICT
			/* Nobody holds: it waits for a consumer to come. */
			:: slot_state[0] == EVICTED -> goto parked
#endif
			:: else ->
#ifdef GROUPS
#ifndef OLD_ADVANCE
				/*
				 * shmqi_reclaim_dead -> shmqi_groups_advance:
				 * D1, the frontier of a group that lags.
				 */
				if
				:: slot_state[0] == ACTIVE && slot_pos[0] < gclaim ->
					group_advance()
				:: else -> skip
				fi;
#endif
#ifdef EVICT
				/* evict_stalled, as if evict_ms had passed */
				if
				:: atomic { slot_state[0] == ACTIVE ->
					slot_state[0] = EVICTED;	/* E1 */
					if :: floor_pos < pos -> floor_pos = pos
					   :: else -> skip fi };
					goto evicted
				:: true -> skip
				fi;
#endif
				atomic {	/* v = space_futex; F3 */
					space_moved = false;
					prod_waiting = true
				};
				refresh_limit();
				if
				:: FITS -> skip
				:: else ->
					/* FUTEX_WAIT(space_futex, v), one slice */
					(space_moved || SLICE_OVER)
				fi;
				prod_waiting = false;
#ifdef EVICT
evicted:				skip
#endif
#else
				reclaim_dead();
				/* asleep until F3 would wake it, or one slice */
				(ROOM || (timeout && crashes > 0))
#endif
			fi
		od;
		ring[pos % C] = BUSY;		/* the payload ... */
		atomic {
			ring[pos % C] = pos;	/* ... seal() ... */
			pos++;
			write_pos = pos		/* ... W1, F2 */
		};
		/* F2: data_waiters read, swapped, data_futex bumped */
		if
		:: atomic { data_waiters -> data_waiters = false; bump_data() }
		:: else -> skip
		fi
	od
}

#ifdef RESTART
/*
 * shmqi_recover after a process crash, in the new producer that holds
 * the role. write_pos and tail_pos, which only the role's holder writes,
 * in one step with the walk: every published record from the tail is
 * intact (a cut after a mere crash would drop committed messages). Then
 * clamp_cursors, slot by slot in the steps of recover.c: the state and
 * position (acquire), the lock probe of live_below_tail, the fenced store
 * that lifts a position below the tail to it. A live consumer below the
 * tail is inside its attach handshake (it stored its position and read
 * tail_pos before the last producer moved the tail, and that producer
 * died before its re-scan, F1): it is left there. A dead one is lifted.
 * -DOLD_RESTART (or -DOLD_LIFT): recovery before issue 11 lifted both.
 */
inline recover()
{
	atomic {
		pos = write_pos; tail = tail_pos;
		k = tail;
		do
		:: k == pos -> break
		:: else -> assert(ring[k % C] == k); k++	/* the walk cuts nothing */
		od;
		k = 0
	};
	do
	:: j == NS -> break
	:: else ->
		atomic { v = (slot_state[j] != FREE -> slot_pos[j] : NONE) };
		if
		:: v != NONE && v < tail ->
#if !defined(OLD_RESTART) && !defined(OLD_LIFT)
			/* live_below_tail: the slot's lock held, within a ring */
			atomic { live = (slot_lock[j] != 0 && v + C >= pos) };
#endif
			if
			:: !live -> slot_pos[j] = tail		/* clamp (fenced) */
			:: else -> skip
			fi
		:: else -> skip
		fi;
		atomic { j++; v = 0; live = false }
	od;
	atomic {	/* floor_pos into [tail, write_pos] */
		j = 0;
		if :: floor_pos < tail -> floor_pos = tail :: else -> skip fi
	}
}

/*
 * The end of shmq_producer_open: limit = tail, then fence_full and the
 * holders (A2, one step as in refresh_limit): a live consumer that
 * recovery left below the tail holds the limit (if within a ring of
 * write_pos). Either the consumer's F1 store comes before this scan, or
 * its load of tail_pos after it sees the tail, which was published before
 * the producer that moved it died. -DOLD_RESTART (or -DOLD_OPEN): the open
 * before issue 11, limit = tail without a scan.
 */
inline open_limit()
{
	atomic {
		lim = tail;
#if !defined(OLD_RESTART) && !defined(OLD_OPEN)
		holders_min();
		if :: n > 0 && m < tail && m + C >= pos -> lim = m :: else -> skip fi;
		m = 0; n = 0
#endif
	}
}
#endif

active proctype producer()
{
	byte pos, tail, lim, m, n, t, i, j, k;
#ifdef GROUPS
	byte f, me = NC;	/* group_advance() as the producer */
#endif
#ifdef RESTART
	byte v;
	bool live;
#endif

	{
		send_loop();
		atomic { prod_state = CLOSED; bump_data() };	/* S1, wake all */
		atomic { prod_lock = 0; ndone++ };
#ifdef EVICT
		goto out;
parked:		ndone++;	/* alive, holding its lock, waiting for ever */
out:		skip
#endif
	} unless {
		atomic { kill[0] ->
			kill[0] = false; drop_locks(PID_PROD); ndone++ }
	}
#ifdef RESTART
	/*
	 * After a death (not after a close): a new process opens the
	 * producer (shmq_producer_open). It takes the role's lock, recovers,
	 * sets its limit, and sends the rest from write_pos, with the state
	 * of this process's locals reset: nothing of the dead one survives
	 * but the shared file.
	 */
	if
	:: atomic { prod_state == OPEN && prod_lock == 0 ->
		prod_lock = PID_PROD; restarted = true;
		pos = 0; tail = 0; lim = 0; m = 0; n = 0; t = 0;
		i = 0; j = 0; k = 0 };
		{
			recover();
			open_limit();
			send_loop();
			atomic { prod_state = CLOSED; bump_data() };
			atomic { prod_lock = 0; ndone++ }
		} unless {
			atomic { kill[0] ->
				kill[0] = false; drop_locks(PID_PROD); ndone++ }
		}
	:: else -> skip
	fi
#endif
}

/*
 * check_end for a consumer at P: producer_gone() (S1 acquire of
 * prod_state, the lock probe) and the re-read of write_pos as one step.
 * Once CLOSED is read, or the producer's lock is free (nobody replaces
 * it here), write_pos no longer moves, so reading it in the same step
 * loses nothing.
 */
#define GONE_EOF(P)	(prod_state == CLOSED && write_pos == P)
#ifdef RESTART
/*
 * A new producer takes over after the first one dies: until it holds the
 * role, a consumer with nothing to read waits for it (in C it gets
 * SHMQ_EDIED and calls again); once the second one died too, it stops.
 */
#define GONE_DIED(P)	(prod_state == OPEN && prod_lock == 0 && restarted && \
			 write_pos == P)
#else
#define GONE_DIED(P)	(prod_state == OPEN && prod_lock == 0 && write_pos == P)
#endif

/*
 * wait_data() with the futex, sleeper ME at position P: leaves gone set
 * to EOF or EDIED (stop), or 0 (look again).
 */
inline wait_data(me, P)
{
	atomic {		/* v = data_futex; F2: data_waiters = 1 */
		data_moved[me] = false;
		data_waiters = true
	};
	if
	:: atomic { write_pos != P -> gone = 0 }		/* A1 */
	:: atomic { GONE_EOF(P) -> gone = EOF }
	:: atomic { GONE_DIED(P) -> gone = EDIED }
	:: else ->
		/* FUTEX_WAIT(data_futex, v), one slice */
		atomic { (data_moved[me] || SLICE_OVER) -> gone = 0 }
	fi
}

#ifndef GROUPS
/*
 * A broadcast consumer. 0 and 1 are attached at position 0 from the
 * start, in slots 0 and 1; 2 attaches while everything runs. With
 * -DRESTART: 0 is attached, 1 (JOINER) attaches.
 */
proctype consumer(byte id)
{
	byte me, pos, expect, d, gone, s, t, w, m, n, i, j, k;

	{
		if
		:: id < JOINER -> me = id
		:: else ->
			/*
			 * shmq_consumer_open: the attach lock, then claim_slot:
			 * the first free slot or dead anonymous one, freed
			 * (shmqi_free_slot_locked). One step: slot table only.
			 */
			atomic {
				attach_lock == 0 -> attach_lock = PID_C(id);
				k = 0;
				do
				:: slot_lock[k] == 0 -> break
				:: else -> k++; assert(k < NS)	/* NS suffices */
				od;
				me = k; k = 0;
				slot_lock[me] = PID_C(id);
				if
				:: slot_state[me] != FREE ->
					if :: floor_pos < slot_pos[me] -> floor_pos = slot_pos[me]
					   :: else -> skip fi;
					slot_state[me] = FREE
				:: else -> skip
				fi
			};
			/* start_position */
			atomic { w = write_pos };			/* A1 */
			atomic { t = tail_pos };
			atomic {
				holders_min();
				/* floor_pos: written only under our lock */
				if
				:: n == 0 -> s = floor_pos;
					if :: s < t -> s = t :: else -> skip fi
				:: else -> s = m
				fi;
				if :: s < t -> s = t :: else -> skip fi;
				if :: w < s -> s = w :: else -> skip fi;
				w = 0; m = 0; n = 0
			};
			/* publish_start: position, then ACTIVE (release) */
			atomic { slot_pos[me] = s; slot_state[me] = ACTIVE };
			do
			:: slot_pos[me] = s;			/* F1 */
			   atomic { t = tail_pos;
				if :: s < t -> s = t
				   :: else -> t = 0; attach_lock = 0; break fi }
			od;
			pos = s
		fi;
		expect = pos;
		do
		:: pos < write_pos ->				/* A1 */
			/*
			 * The copy (header, payload) and R1 in one step: the
			 * copy is only asserted on, so reading the cell at the
			 * release catches any earlier overwrite as well.
			 */
			atomic {
				d = ring[pos % C];
				assert(d != BUSY);	/* committed */
				assert(d == pos);	/* not overwritten */
				assert(d == expect);	/* no duplicate, no gap */
				expect++; pos++; d = 0;
				slot_pos[me] = pos	/* R1, F3 */
			}
		:: id == 0 && pos == write_pos ->
			wait_data(id, pos);
			if :: gone != 0 -> break :: else -> skip fi
		:: atomic { id != 0 && GONE_EOF(pos) -> gone = EOF; break }
		:: atomic { id != 0 && GONE_DIED(pos) -> gone = EDIED; break }
		od;
		/* No loss: EOF or EDIED once everything committed was read. */
		assert(pos == write_pos);
		ndone++
	} unless {
		atomic { kill[1 + id] ->
			kill[1 + id] = false; drop_locks(PID_C(id)); ndone++ }
	}
}

active proctype killer()
{
	do
	:: crashes < MAXCRASH -> crashes++; kill[0] = true
	:: crashes < MAXCRASH -> crashes++; kill[1] = true
	:: crashes < MAXCRASH -> crashes++; kill[2] = true
#if NPROC > 3
	:: crashes < MAXCRASH -> crashes++; kill[3] = true
#endif
	:: true -> break
	od
}

init {
	atomic {
		slot_state[0] = ACTIVE; slot_lock[0] = PID_C(0);
#if JOINER > 1
		slot_state[1] = ACTIVE; slot_lock[1] = PID_C(1);
#endif
		run consumer(0);
#if JOINER > 1
		run consumer(1);
#endif
		run consumer(JOINER)
	}
}

#else /* GROUPS */

/*
 * The E1 check after a claim word or record that makes no sense
 * (claim_failed in group.c): only an evicted group can be lapped while a
 * member holds its claim word; anything else would be a false -EBADMSG.
 */
inline claim_failed()
{
#ifdef OLD_EVICT
	assert(false)	/* -EBADMSG "group claim word ... outside the ring" */
#else
	atomic { assert(slot_state[0] == EVICTED); gone = GEVICT }	/* E1 */
#endif
}

/*
 * The payload copy of the record at cl (d: its header copy) and the C4
 * clear of the claim in slot S, one step (as for R1 above). FLAGGED:
 * delivered with SHMQ_MSG_REDELIVERED. With eviction the copy is followed
 * by the E1 check (shmq_recv): folded into the same step, the copy is
 * read at the later instant, which catches any overwrite the earlier
 * read would have, and an evicted member delivers nothing.
 */
inline deliver_release(flagged, S)
{
	atomic {
#ifdef EVICT
		if
		:: slot_state[0] == EVICTED -> gone = GEVICT
		:: else ->
#endif
		assert(d != BUSY && ring[cl % C] != BUSY);	/* committed */
		assert(d == cl && ring[cl % C] == cl);		/* not overwritten */
		assert(cl < write_pos);
		assert(flagged || delivered[cl] == 0);	/* no unflagged duplicate */
		delivered[cl]++;
		nprog++;
		d = 0;
		mclaim[S] = NONE			/* C4 */
#ifdef EVICT
		fi
#endif
	}
}

proctype member(byte me)
{
	byte cl, d, gone, f, i, k, a;
	bool stale, ok, freed;

	{
		do
		:: /* member_next */
#ifdef EVICT
		   if	/* next_record: E1 before each read */
		   :: atomic { slot_state[0] == EVICTED -> gone = GEVICT }; break
		   :: else -> skip
		   fi;
#endif
		   /* shmqi_member_claim */
claim:		   do
		   :: atomic { cl = gclaim };
		      if
		      :: write_pos - cl > C ->			/* A1: outside the ring */
			if
			:: atomic { gclaim != cl -> cl = 0 }	/* the others moved on */
			:: else -> claim_failed(); break
			fi
		      :: cl == write_pos ->			/* A1: nothing to claim */
#if defined(OLD_CLAIM)
			skip;
#elif defined(OLD_ADVANCE)
			if
			:: stale || mclaim[me] != NONE ->
				mclaim[me] = NONE;	/* fenced */
				group_advance()
			:: else -> skip
			fi;
#else
			if
			:: stale || mclaim[me] != NONE ->
				mclaim[me] = NONE	/* fenced */
			:: else -> skip
			fi;
			/* D1: the frontier lags the claim word: advance it */
			if
			:: slot_pos[0] < cl -> group_advance()
			:: else -> skip
			fi;
#endif
			atomic { ok = false; stale = false; break }
		      :: else ->
			atomic { d = ring[cl % C] };	/* shmqi_rec_view */
			/*
			 * Not the record cl (torn, or from a later lap): the
			 * header may not parse, or (another lap's) may.
			 */
			if
			:: d != cl ->
				if
				:: atomic { gclaim != cl -> d = 0 }; goto claim
				:: else -> claim_failed(); break
				fi
			:: true -> skip
			fi;
			mclaim[me] = cl;		/* C1: the claim, then the CAS */
			atomic {
				ok = (gclaim == cl);
				if :: ok -> gclaim = cl + 1; stale = false; break
				   :: else -> skip fi
			};
#ifndef OLD_CLAIM
			mclaim[me] = NONE;		/* lost: never ours */
#endif
			atomic { stale = true; d = 0 }
		      fi
		   od;
		   if
		   :: gone == GEVICT -> break
		   :: ok ->
			/* shmq_recv of the claimed record, then the release */
			atomic { deliver_release(false, me); cl = 0; ok = false };
			if
			:: gone == GEVICT -> break
			:: else -> group_advance()
			fi
		   :: else ->
			/*
			 * shmqi_member_rescue: one step, all under the attach
			 * lock, and a dead member's claim no longer moves.
			 * (The lock is never seen held here: waiting for it at
			 * the end of the stream, D5, is the C tests' business.)
			 */
			atomic {
				a = NONE;
				if
				:: attach_lock == 0 ->
					for (k : 0 .. NC - 1) {
						if
						:: a == NONE && k != me && mstate[k] == ACTIVE &&
						   mlock[k] == 0 ->
							if
							:: mclaim[k] != NONE ->
								a = k; mlock[k] = PID_C(me);
								cl = mclaim[k]
							:: else ->
								mstate[k] = FREE;
								freed = true;
								nprog++
							fi
						:: else -> skip
						fi
					}
					k = 0
				:: else -> skip		/* the lock try failed */
				fi
			};
#ifndef OLD_ADVANCE
			/* D1: a freed member may have died before its advance */
			if
			:: freed -> freed = false; group_advance()
			:: else -> skip
			fi;
#else
			freed = false;
#endif
			if
			:: a != NONE ->
#ifndef OLD_ADOPT
				/*
				 * shmqi_member_take_adopted (group.c): a claim the
				 * claim word never passed was never won: drop it, a
				 * CAS will hand the record out once. One the
				 * frontier passed was won by someone else (a won
				 * claim holds the frontier): drop it too.
				 */
				if
				:: gclaim == cl -> skip
				:: else ->
				if
				:: slot_pos[0] > cl -> skip
				:: else ->
#endif
				/* shmqi_member_take_adopted: rec_view, copy */
				if
				:: atomic { write_pos - cl > C -> d = 0 }	/* A1: outside the ring */
				:: else ->
					atomic { d = ring[cl % C] };
#ifndef OLD_ADOPT
					/*
					 * ... and after the copy, L1 as for observers:
					 * a tail past the claim means the claim was a
					 * lost CAS (a won one holds the frontier) and
					 * the copy may be overwritten: drop it.
					 */
					atomic {
						if
						:: tail_pos > cl -> d = 0
						:: else -> deliver_release(true, a)
						fi
					}
#else
					deliver_release(true, a)
#endif
				fi;
#ifndef OLD_ADOPT
				fi
				fi;
#endif
				mclaim[a] = NONE;		/* C4 (again if delivered) */
				/* free the dead slot under the attach lock */
				atomic { attach_lock == 0 ->
					mstate[a] = FREE; mlock[a] = 0; nprog++ };
				atomic { a = NONE; cl = 0 };
				group_advance()
			:: else ->
				wait_data(me, cl);
				atomic {
					cl = 0;
					if
					:: gone != 0 ->
						if :: wend < write_pos -> wend = write_pos
						   :: else -> skip fi;
						break
					:: else -> skip
					fi
				}
#ifdef EVICT
				;
				if	/* member_next: E1 after each wait */
				:: atomic { slot_state[0] == EVICTED -> gone = GEVICT }; break
				:: else -> skip
				fi
#endif
			fi
		   fi
		od;
		ndone++
	} unless {
		atomic { kill[1 + me] ->
			kill[1 + me] = false; drop_locks(PID_C(me)); ndone++ }
	}
}

active proctype killer()
{
	do
	:: crashes < MAXCRASH -> crashes++; kill[0] = true
	:: crashes < MAXCRASH -> crashes++; kill[1] = true
	:: crashes < MAXCRASH -> crashes++; kill[2] = true
	:: true -> break
	od
}

/*
 * The 100 ms slices. Allowed once a process crashed (or the group was
 * evicted): without that, a stuck system is an invalid end state (a lost
 * wake-up). A slice wakes every sleeper; three slices running with no
 * PROGRESS mean every process looked again and none could move: the
 * group is stuck for good (issue 11, defect 1).
 */
active proctype ticker()
{
	byte i;

	do
	:: atomic { timeout && SLICE_OK && ndone < NPROC ->
		if
		:: PROGRESS == last_prog -> stuck++
		:: else -> stuck = 0; last_prog = PROGRESS
		fi;
		assert(stuck < 3);	/* stuck for good */
		bump_data();
		space_moved = true }
	:: ndone == NPROC -> break
	od
}

init {
	byte j;

	atomic {
		slot_state[0] = ACTIVE;
		mstate[0] = ACTIVE; mclaim[0] = NONE; mlock[0] = PID_C(0);
		mstate[1] = ACTIVE; mclaim[1] = NONE; mlock[1] = PID_C(1);
		run member(0);
		run member(1)
	};
#ifndef EVICT
	/*
	 * No loss: once everyone is done, every message committed before a
	 * member stopped was delivered, or is still claimed by a dead member
	 * (the next member to attach adopts it).
	 */
	ndone == NPROC;
	atomic {
		for (j : 0 .. N - 1) {
			assert(j >= wend || delivered[j] > 0 ||
			       (mstate[0] == ACTIVE && mclaim[0] == j) ||
			       (mstate[1] == ACTIVE && mclaim[1] == j))
		}
	}
#endif
}
#endif

#else /* OBSERVER */

/*
 * An observer attaching to an overwrite-policy queue while the producer
 * laps it. The producer never waits: before it overwrites anything it
 * moves tail_pos past it (W2, fenced). The observer holds nothing: it
 * starts at the tail, learns the sequence there (learn_seq, with L1 since
 * issue 11) and reads with L1 after each copy (stream_next). Records are
 * units whose sequence is their position, so the truth is at hand: the
 * sequence learnt must be its start position's, and each message must
 * carry exactly the number lost since the previous one (or the start).
 */
byte ring[C];
byte write_pos, tail_pos;
byte prod_state = OPEN;

active proctype producer()
{
	byte pos;

	do
	:: pos == N -> break
	:: pos < N ->
		/* refresh_limit, nobody holding: the tail first (W2) */
		if
		:: pos + 1 - tail_pos > C -> tail_pos = pos + 1 - C
		:: else -> skip
		fi;
		ring[pos % C] = BUSY;		/* the payload ... */
		atomic {
			ring[pos % C] = pos;	/* ... seal() ... */
			pos++;
			write_pos = pos		/* ... W1 */
		}
	od;
	prod_state = CLOSED			/* S1 */
}

active proctype observer()
{
	byte pos, seq, d, w, lost, expect;
	bool known, resynced;

	/* attach_locked: the oldest intact record */
	atomic { pos = tail_pos };
	/* observer_start: learn_seq, or the header when nothing is there */
	do
	:: known -> break
	:: else ->
		atomic { w = write_pos };		/* A1 */
		if
		:: pos == w ->
			/*
			 * observer_seq: write_pos, pub_seq, next_seq,
			 * write_pos agree only while nothing is written at pos.
			 */
			atomic {
				if :: write_pos == pos -> seq = pos; known = true
				   :: else -> skip fi
			}
		:: else ->
			atomic { d = ring[pos % C] };	/* the header copy */
#ifndef OLD_LEARN
			/* L1: fence_acquire, then tail_pos */
			if
			:: atomic { tail_pos > pos -> pos = tail_pos }	/* lapped */
			:: else -> assert(d == pos); seq = d; known = true
			fi
#else
			if
			:: d != BUSY -> seq = d; known = true
			:: else -> break	/* rec_view failed: unknown */
			fi
#endif
		fi
	od;
	/* What it learnt is the sequence at its start. */
	assert(!known || seq == pos);
	expect = pos;
	do
	:: pos < write_pos ->				/* A1 */
		atomic { d = ring[pos % C] };		/* the copy */
		if
		:: atomic { tail_pos > pos -> pos = tail_pos; resynced = true }	/* L1 */
		:: else ->
			assert(d == pos);		/* not overwritten */
			lost = 0;
			if
			:: known && d != seq ->
				/* else -EBADMSG "sequence S, expected E" */
				assert(resynced && d > seq);
				lost = d - seq
			:: else -> skip
			fi;
			assert(d == expect + lost);	/* the loss is exact */
			atomic {
				expect = d + 1; seq = d + 1; known = true;
				resynced = false; pos++; lost = 0; d = 0
			}
		fi
	:: atomic { pos == write_pos && prod_state == CLOSED -> break }	/* EOF */
	od
}
#endif
