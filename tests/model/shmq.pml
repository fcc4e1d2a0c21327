/* SPDX-License-Identifier: MIT */
/*
 * A Promela model of the shmq ring protocol (docs/concurrency.md), checked
 * exhaustively by spin (tests/model/check.sh). Records are abstract units:
 * the record at position p holds the value p, lives in cell p % C, and a
 * cell being written holds BUSY. Each labelled step is one atomic action
 * named after its pair in docs/concurrency.md (W1/A1, R1/A2, W2, F1, F2,
 * F3, S1; C1-C4 for groups). Spin explores interleavings of a sequentially
 * consistent machine: the model checks the protocol logic (the Dekker
 * arguments assume the full fences the code has); weak-memory reorderings
 * are TSan's and the fences' business, not this model's.
 *
 * Properties, asserted where they can fail:
 *  - a consumer never delivers uncommitted data (BUSY) or overwritten data
 *    (a value other than its position), and the bytes stay intact until
 *    it releases them (R1);
 *  - no duplicate, no loss: a broadcast consumer delivers exactly its
 *    start position, then every following one, up to the final write
 *    position at EOF; group members together deliver every message once,
 *    and more than once only when flagged as redelivered;
 *  - no lost wake-up: without a crash every wait is woken (F2, F3); after
 *    a crash (a dead peer, or a producer killed between clearing a flag
 *    and bumping the futex) the 100 ms slice may end a wait, modelled as
 *    spin's timeout.
 * Every process has a crash transition (an `unless` on its kill flag,
 * raised nondeterministically by the killer).
 *
 * Build with -DGROUPS for the group model, -DCLAIM_FIX for group.c with
 * the stale-claim fix (see docs/security.md).
 */

#ifndef C
#define C 2		/* ring capacity, in records */
#endif
#ifndef N
#define N 3		/* messages the producer sends */
#endif
#define NS 2		/* consumer slots */
#define BUSY 255
#define NONE 255

#define FREE 0
#define ACTIVE 1

byte ring[C];
byte write_pos, tail_pos, floor_pos;
byte prod_state;		/* 0 none, 1 open, 2 closed (S1) */
bool prod_alive;		/* the producer's OFD lock */
byte data_futex, space_futex;
bool data_waiters, prod_waiting;
byte attach_lock;		/* 0 free, else holder + 1 */

byte slot_state[NS], slot_pos[NS];
bool slot_alive[NS];		/* the slot's OFD lock */

bool kill_prod, kill_c[NS];
byte crashes;
#define MAXCRASH 1

#define dead_holder(i)	(slot_state[i] == ACTIVE && !slot_alive[i])

/* Free dead slots under the attach lock, raising the floor (reclaim). */
inline reclaim_dead(me)
{
	atomic { attach_lock == 0 -> attach_lock = me + 1 };
	i = 0;
	do
	:: i < NS ->
		if
		:: dead_holder(i) ->
			if :: floor_pos < slot_pos[i] -> floor_pos = slot_pos[i]
			   :: else -> skip fi;
			slot_state[i] = FREE
		:: else -> skip
		fi;
		i++
	:: else -> break
	od;
	attach_lock = 0
}

/* A2: the slowest holder's position into m, the number of holders into n. */
inline holders_min()
{
	n = 0; m = NONE; i = 0;
	do
	:: i < NS ->
		if
		:: slot_state[i] == ACTIVE ->
			if :: m == NONE || slot_pos[i] < m -> m = slot_pos[i]
			   :: else -> skip fi;
			n++
		:: else -> skip
		fi;
		i++
	:: else -> break
	od
}

/* refresh_limit: move the tail (W2/F1) as far as the holders allow. */
inline refresh_limit()
{
	holders_min();
	if :: n == 0 -> m = floor_pos; if :: m < t -> m = t :: else -> skip fi
	   :: else -> skip fi;
	if :: m > pos -> m = pos :: else -> skip fi;
	if
	:: pos + 1 > C && t < pos + 1 - C && t < m ->
		if :: pos + 1 - C < m -> t = pos + 1 - C :: else -> t = m fi;
		tail_pos = t;			/* W2, F1 */
		holders_min()			/* after F1 */
	:: else -> skip
	fi;
	if :: n > 0 && m < t -> limit = m :: else -> limit = t fi
}

active proctype producer()
{
	byte pos, t, m, n, i, v, limit;
restart:
	{
		atomic { !prod_alive -> prod_alive = true };	/* OFD lock */
		pos = write_pos; t = tail_pos; limit = t;
		prod_state = 1;
		do
		:: pos == N -> break
		:: pos < N ->
			do
			:: pos + 1 - limit <= C -> break
			:: else ->
				refresh_limit();
				if
				:: pos + 1 - limit <= C -> break
				:: else ->
					reclaim_dead(NS);
					v = space_futex;
					prod_waiting = true;	/* F3 */
					refresh_limit();
					if
					:: pos + 1 - limit <= C -> skip
					:: else ->
						/* FUTEX_WAIT, bounded by the slice */
						(space_futex != v || (timeout && crashes > 0))
					fi;
					prod_waiting = false
				fi
			od;
			ring[pos % C] = BUSY;		/* payload ... */
			ring[pos % C] = pos;		/* ... and sealed header */
			write_pos = pos + 1;		/* W1, F2 */
			pos++;
			if :: data_waiters -> data_waiters = false; data_futex++
			   :: else -> skip fi
		od;
		prod_state = 2;				/* S1 */
		data_futex++;
		prod_alive = false
	} unless {
		kill_prod ->
		atomic {
			kill_prod = false;
			prod_alive = false;	/* the kernel drops its locks */
			if :: attach_lock == NS + 1 -> attach_lock = 0 :: else -> skip fi
		};
		/* A new producer takes over at once, or nobody ever does (F3). */
		if :: goto restart :: skip fi
	}
}

#ifndef GROUPS
/*
 * A broadcast consumer. JOIN: attaches while everything runs (start
 * position, F1 handshake); otherwise it is attached before the start.
 */
proctype consumer(byte me; bool join)
{
	byte pos, expect, w, st, v, d, s, t, m, n, i;

	if
	:: join ->
		atomic { attach_lock == 0 -> attach_lock = me + 1 };
		/* claim_slot: ours is free or dead (then reclaimed) */
		if :: dead_holder(me) ->
			if :: floor_pos < slot_pos[me] -> floor_pos = slot_pos[me]
			   :: else -> skip fi;
			slot_state[me] = FREE
		   :: else -> skip fi;
		slot_state[me] == FREE;
		slot_alive[me] = true;
		/* start_position: the slowest holder, else max(floor, tail) */
		w = write_pos; t = tail_pos;
		holders_min();
		if :: n == 0 -> s = floor_pos :: else -> s = m fi;
		if :: s < t -> s = t :: else -> skip fi;
		if :: w < s -> s = w :: else -> skip fi;
		slot_pos[me] = s;
		slot_state[me] = ACTIVE;
		do				/* publish_start */
		:: slot_pos[me] = s;		/* F1 */
		   t = tail_pos;
		   if :: s < t -> s = t :: else -> break fi
		od;
		attach_lock = 0;
		pos = s
	:: else ->
		pos = slot_pos[me]
	fi;
	expect = pos;
	{
		do
		:: w = write_pos;			/* A1 */
		   if
		   :: pos < w ->
			d = ring[pos % C];
			assert(d != BUSY);		/* never uncommitted */
			assert(d == pos);		/* never overwritten */
			assert(pos == expect);		/* no duplicate, no gap */
			expect++;
			d = ring[pos % C];
			assert(d == pos);		/* intact until released */
			pos++;
			slot_pos[me] = pos;		/* R1, F3 */
			if :: prod_waiting -> prod_waiting = false; space_futex++
			   :: else -> skip fi
		   :: else ->
			v = data_futex;
			data_waiters = true;		/* F2 */
			st = prod_state;		/* S1 */
			w = write_pos;
			if
			:: w != pos -> skip
			:: w == pos && st == 2 -> goto eof
			:: w == pos && st == 1 && !prod_alive -> goto died
			:: else ->
				(data_futex != v || (timeout && crashes > 0))
			fi
		   fi
		od;
eof:
		/* No loss: everything up to the final write position. */
		assert(expect == write_pos);
died:
		skip
	} unless {
		kill_c[me] ->
		atomic {
			slot_alive[me] = false;	/* the slot stays until reclaimed */
			if :: attach_lock == me + 1 -> attach_lock = 0 :: else -> skip fi
		}
	}
}

active proctype killer()
{
	do
	:: crashes < MAXCRASH -> crashes++; kill_prod = true
	:: crashes < MAXCRASH -> crashes++; kill_c[0] = true
	:: crashes < MAXCRASH -> crashes++; kill_c[1] = true
	:: break
	od
}

init {
	/* Consumer 0 is attached from the start; consumer 1 joins later. */
	atomic {
		slot_state[0] = ACTIVE; slot_alive[0] = true; slot_pos[0] = 0;
		run consumer(0, false);
		run consumer(1, true)
	}
}

#else /* GROUPS */
/*
 * Group model: slot 0 is the group (claim word gclaim, frontier in
 * slot_pos[0], the only holder the producer sees), members 0 and 1 have
 * claims mclaim[]. C1: claim stored, then CAS on the claim word. C2: the
 * claim word read before the members' claims. C3: CAS-max of the
 * frontier. C4: the claim cleared after the reads. A dead member's claim
 * is adopted by the other and redelivered.
 */
byte gclaim;
byte mclaim[2];
bool malive[2];
byte delivered[N];	/* times each message was delivered */
byte redelivered[N];	/* of which flagged as redelivered */

inline group_advance()
{
	f = gclaim;					/* C2 */
	if :: mclaim[0] != NONE && mclaim[0] < f -> f = mclaim[0] :: else -> skip fi;
	if :: mclaim[1] != NONE && mclaim[1] < f -> f = mclaim[1] :: else -> skip fi;
	atomic { if :: slot_pos[0] < f -> slot_pos[0] = f :: else -> skip fi };	/* C3 */
	if :: prod_waiting -> prod_waiting = false; space_futex++ :: else -> skip fi
}

proctype member(byte me)
{
	byte cl, w, d, f, v, st, other;
	bool ok;

	other = 1 - me;
	{
		do
		:: cl = gclaim; w = write_pos;		/* A1 */
		   if
		   :: cl < w ->
			d = ring[cl % C];
			mclaim[me] = cl;		/* C1: claim, then CAS */
			atomic { ok = (gclaim == cl); if :: ok -> gclaim = cl + 1 :: else -> skip fi };
			if
			:: ok ->
				assert(d == cl);	/* read before the CAS: intact */
				d = ring[cl % C];
				assert(d == cl);	/* still intact at release */
				delivered[cl]++;
				assert(delivered[cl] == 1);	/* exactly once, no death */
				mclaim[me] = NONE;	/* C4 */
				group_advance()
			:: else ->
#ifdef CLAIM_FIX
				mclaim[me] = NONE;	/* drop the stale claim */
#endif
				skip
			fi
		   :: else ->
			/* nothing to claim: adopt a dead member's claim */
			atomic { attach_lock == 0 -> attach_lock = me + 1 };
			if
			:: !malive[other] && mclaim[other] != NONE ->
				cl = mclaim[other];
				attach_lock = 0;
				d = ring[cl % C];
				assert(d == cl);	/* protected by the dead claim */
				if :: delivered[cl] > 0 -> redelivered[cl]++ :: else -> skip fi;
				delivered[cl]++;
				mclaim[other] = NONE;	/* C4 */
				group_advance()
			:: else ->
				attach_lock = 0;
				v = data_futex;
				data_waiters = true;	/* F2 */
				st = prod_state; w = write_pos;
				if
				:: cl != w || gclaim != cl -> skip
				:: cl == w && gclaim == cl && st == 2 -> break
				:: cl == w && gclaim == cl && st == 1 && !prod_alive -> break
				:: else -> (data_futex != v || (timeout && crashes > 0))
				fi
			fi
		   fi
		od;
		/* No loss: every message up to the end went to some member. */
		d = 0;
		do
		:: d < write_pos -> assert(delivered[d] > 0 || mclaim[other] == d); d++
		:: else -> break
		od
	} unless {
		kill_c[me] ->
		atomic {
			malive[me] = false;	/* its claim stays for adoption */
			if :: attach_lock == me + 1 -> attach_lock = 0 :: else -> skip fi
		}
	}
}

active proctype killer()
{
	do
	:: crashes < MAXCRASH -> crashes++; kill_c[0] = true
	:: crashes < MAXCRASH -> crashes++; kill_prod = true
	:: break
	od
}

init {
	atomic {
		/* The group holds from 0; members are not holders themselves. */
		slot_state[0] = ACTIVE; slot_alive[0] = true; slot_pos[0] = 0;
		mclaim[0] = NONE; mclaim[1] = NONE;
		malive[0] = true; malive[1] = true;
		run member(0);
		run member(1)
	}
}
#endif
