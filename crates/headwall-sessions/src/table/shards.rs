//! The map under [`super::SessionTable`]: open addressing with linear probing, the entries
//! inline in each shard's slot array, split into [`SHARDS`] shards behind one `RwLock` each
//! (crates/headwall-sessions/BENCH.md, "One miss per lookup").
//!
//! Why not a general-purpose concurrent map: at 10 M bindings almost every lookup misses the
//! CPU caches, and what a lookup costs is how many dependent misses it makes. papaya's entries
//! are boxed (a metadata byte, a slot pointer, then the entry: three misses); here an IPv4
//! lookup reads one 64-byte, cache-line-aligned slot, usually the first it probes, and the
//! lock word of its shard (256 of them, 16 KiB: cache-resident). Readers share a shard's lock;
//! a writer holds it for one insert or removal, or for one doubling of that shard (1/256 of the
//! table: ~49,000 entries rehashed at 10 M bindings, a few milliseconds; estimated, not
//! measured).
//!
//! Removal shifts the following entries of the probe run back (no tombstones), so a table
//! that churns for years never fills with dead slots and never needs a rebuild.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::Compact;

/// Shard count: a power of two, chosen so that at 10 M bindings a shard holds ~40 k (its
/// doubling stalls only its own lookups, briefly) and the lock words stay in cache.
pub(super) const SHARDS: usize = 256;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();
/// A shard doubles when an insert would fill more than 3/4 of its slots.
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;
const MIN_SLOTS: usize = 16;

/// A key and its binding, as one slot of a shard holds them.
pub(super) trait Slot: Sized {
    type Key: Copy + Eq;

    fn new(key: Self::Key, compact: Compact) -> Self;
    fn key(&self) -> &Self::Key;
    fn compact(&self) -> &Compact;
    /// `key`'s hash under the table's random `seed`: its top bits pick the shard, its low bits
    /// the first slot.
    fn hash(key: &Self::Key, seed: u64) -> u64;
}

/// An IPv4 network (address and prefix length, `table::v4_key`) and the 56-byte binding: one
/// cache line.
#[repr(align(64))]
pub(super) struct V4Slot {
    key: u64,
    compact: Compact,
}

impl Slot for V4Slot {
    type Key = u64;

    fn new(key: u64, compact: Compact) -> V4Slot {
        V4Slot { key, compact }
    }

    fn key(&self) -> &u64 {
        &self.key
    }

    fn compact(&self) -> &Compact {
        &self.compact
    }

    fn hash(key: &u64, seed: u64) -> u64 {
        mix(*key ^ seed, MULTIPLIER)
    }
}

/// An IPv6 prefix (its network bits and its length) and its binding: 80 bytes, not padded to
/// two cache lines (IPv6 bindings are per /64, and the IPv4 table is the one at scale).
pub(super) struct V6Slot {
    key: V6Key,
    compact: Compact,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct V6Key {
    pub(super) high: u64,
    pub(super) low: u64,
    pub(super) len: u8,
}

impl Slot for V6Slot {
    type Key = V6Key;

    fn new(key: V6Key, compact: Compact) -> V6Slot {
        V6Slot { key, compact }
    }

    fn key(&self) -> &V6Key {
        &self.key
    }

    fn compact(&self) -> &Compact {
        &self.compact
    }

    fn hash(key: &V6Key, seed: u64) -> u64 {
        let high = mix(key.high ^ seed, MULTIPLIER);
        mix(high ^ key.low ^ (u64::from(key.len) << 56), MULTIPLIER)
    }
}

/// An odd constant with well-spread bits (the golden ratio's), for the folded multiply.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// The folded multiply: the 128-bit product's halves xor-ed, so every input bit reaches both
/// the top bits (shard) and the low bits (slot).
fn mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

struct Shard<S> {
    slots: Vec<Option<S>>,
    len: usize,
}

impl<S: Slot> Shard<S> {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `key`, if any.
    ///
    /// Two slots at a time: both keys are read before either is compared, so the two loads
    /// go to memory together, and an entry one slot past its home (a third of them at 0.6
    /// load) costs no second wait for memory.
    fn position(&self, key: &S::Key, hash: u64) -> Option<usize> {
        let mask = self.mask();
        let mut index = (hash as usize) & mask;
        // At most every slot once; a shard is never full (load ≤ 3/4), so an empty slot ends
        // the run long before that.
        for _ in 0..self.slots.len().div_ceil(2) {
            let next = (index + 1) & mask;
            let first = self.slots.get(index)?.as_ref().map(Slot::key);
            let second = self.slots.get(next)?.as_ref().map(Slot::key);
            match (first, second) {
                (Some(found), _) if found == key => return Some(index),
                (None, _) => return None,
                (_, Some(found)) if found == key => return Some(next),
                (_, None) => return None,
                _ => index = (next + 1) & mask,
            }
        }
        None
    }

    /// Where `key` is or would go: its slot, or the empty slot ending its probe run.
    fn place(&self, key: &S::Key, hash: u64) -> Option<usize> {
        let mask = self.mask();
        let mut index = (hash as usize) & mask;
        for _ in 0..self.slots.len() {
            match self.slots.get(index)? {
                Some(slot) if slot.key() != key => index = (index + 1) & mask,
                _ => return Some(index),
            }
        }
        None
    }

    /// Makes room for `additional` more entries at ≤ 3/4 load, rehashing into a new array when
    /// it must grow.
    fn reserve(&mut self, additional: usize, seed: u64) {
        let wanted = self.len.saturating_add(additional);
        let mut slots = self.slots.len().max(MIN_SLOTS);
        while wanted.saturating_mul(MAX_LOAD_DENOMINATOR) > slots.saturating_mul(MAX_LOAD_NUMERATOR)
        {
            slots = slots.saturating_mul(2);
        }
        if slots == self.slots.len() {
            return;
        }
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(slots, || None);
        for slot in old.into_iter().flatten() {
            let hash = S::hash(slot.key(), seed);
            if let Some(index) = self.place(slot.key(), hash)
                && let Some(empty) = self.slots.get_mut(index)
            {
                *empty = Some(slot);
            }
        }
    }

    /// Empties slot `hole` and moves later entries of its probe run back into the gap, so that
    /// every entry stays reachable from its home slot without passing an empty one.
    fn remove_at(&mut self, mut hole: usize, seed: u64) -> Option<S> {
        let removed = self.slots.get_mut(hole)?.take()?;
        self.len -= 1;
        let mask = self.mask();
        let mut next = (hole + 1) & mask;
        while let Some(Some(slot)) = self.slots.get(next) {
            let home = (S::hash(slot.key(), seed) as usize) & mask;
            // The entry at `next` may fill the hole unless its home lies cyclically in
            // (hole, next]: then moving it before its home would hide it.
            let distance_to_next = next.wrapping_sub(home) & mask;
            let distance_to_hole = hole.wrapping_sub(home) & mask;
            if distance_to_hole <= distance_to_next {
                let moved = self.slots.get_mut(next).and_then(Option::take);
                if let Some(gap) = self.slots.get_mut(hole) {
                    *gap = moved;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        Some(removed)
    }
}

/// The sharded map. Every operation takes one shard's lock, never two.
pub(super) struct Shards<S> {
    shards: Box<[Padded<RwLock<Shard<S>>>]>,
    seed: u64,
    len: AtomicUsize,
}

/// A shard's lock alone on its cache line, so readers of neighbouring shards on the two cores
/// do not invalidate each other's line.
#[repr(align(64))]
struct Padded<T>(T);

impl<S: Slot> Shards<S> {
    pub(super) fn new(seed: u64) -> Shards<S> {
        Shards {
            shards: (0..SHARDS)
                .map(|_| {
                    Padded(RwLock::new(Shard {
                        slots: Vec::new(),
                        len: 0,
                    }))
                })
                .collect(),
            seed,
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, hash: u64) -> Option<&RwLock<Shard<S>>> {
        let index = (hash >> (u64::BITS - SHARD_BITS)) as usize;
        self.shards.get(index).map(|padded| &padded.0)
    }

    fn read(&self, hash: u64) -> Option<RwLockReadGuard<'_, Shard<S>>> {
        self.shard(hash)
            .map(|lock| lock.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self, hash: u64) -> Option<RwLockWriteGuard<'_, Shard<S>>> {
        self.shard(hash)
            .map(|lock| lock.write().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Sizes every shard for its share of `additional` more entries (with four standard
    /// deviations of slack for how unevenly a hash spreads them), so a bulk load never grows.
    pub(super) fn reserve(&self, additional: usize) {
        let share = additional / SHARDS;
        let slack = 4 * share.isqrt() + 1;
        for padded in &self.shards {
            let mut shard = padded.0.write().unwrap_or_else(PoisonError::into_inner);
            shard.reserve(share + slack, self.seed);
        }
    }

    /// Reads the binding of `key` under its shard's read lock.
    pub(super) fn get<R>(&self, key: &S::Key, read: impl FnOnce(&Compact) -> R) -> Option<R> {
        let hash = S::hash(key, self.seed);
        let shard = self.read(hash)?;
        let index = shard.position(key, hash)?;
        let slot = shard.slots.get(index)?.as_ref()?;
        Some(read(slot.compact()))
    }

    /// Puts `compact` at `key` when `allowed` says so of what is there now; one write lock, so
    /// the check and the insert are one step. `None`: not allowed; `Some(replaced)`: done.
    pub(super) fn insert_if(
        &self,
        key: S::Key,
        compact: Compact,
        allowed: impl FnOnce(Option<&Compact>) -> bool,
    ) -> Option<bool> {
        let hash = S::hash(&key, self.seed);
        let mut shard = self.write(hash)?;
        let current = shard
            .position(&key, hash)
            .and_then(|index| shard.slots.get(index)?.as_ref());
        if !allowed(current.map(Slot::compact)) {
            return None;
        }
        if current.is_none() {
            shard.reserve(1, self.seed);
        }
        let index = shard.place(&key, hash)?;
        let slot = shard.slots.get_mut(index)?;
        let replaced = slot.replace(S::new(key, compact)).is_some();
        if !replaced {
            shard.len += 1;
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Some(replaced)
    }

    /// Removes `key` when `matches` says so of its binding. Returns whether it removed one.
    pub(super) fn remove_if(&self, key: &S::Key, matches: impl FnOnce(&Compact) -> bool) -> bool {
        let hash = S::hash(key, self.seed);
        let Some(mut shard) = self.write(hash) else {
            return false;
        };
        let Some(index) = shard.position(key, hash) else {
            return false;
        };
        let wanted = shard
            .slots
            .get(index)
            .and_then(Option::as_ref)
            .is_some_and(|slot| matches(slot.compact()));
        if !wanted || shard.remove_at(index, self.seed).is_none() {
            return false;
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Removes every binding `remove` picks, one shard at a time (each shard write-locked while
    /// it is scanned). Returns how many.
    pub(super) fn remove_where(&self, remove: impl Fn(&Compact) -> bool) -> usize {
        let mut removed = 0;
        for padded in &self.shards {
            let mut shard = padded.0.write().unwrap_or_else(PoisonError::into_inner);
            let doomed: Vec<S::Key> = shard
                .slots
                .iter()
                .flatten()
                .filter(|slot| remove(slot.compact()))
                .map(|slot| *slot.key())
                .collect();
            for key in doomed {
                let hash = S::hash(&key, self.seed);
                let taken = shard
                    .position(&key, hash)
                    .and_then(|index| shard.remove_at(index, self.seed));
                if taken.is_some() {
                    removed += 1;
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::SmallStr;

    fn compact(n: u64) -> Compact {
        Compact {
            msisdn: n,
            imsi: 0,
            updated_at: n,
            session_id: SmallStr::new("s"),
            nas: 0,
            imsi_digits: 0,
        }
    }

    /// A fixed seed whose hash collides often in a small shard: removal has to shift runs that
    /// wrap around the end of the array.
    #[test]
    fn inserts_and_removals_agree_with_a_std_map() {
        let shards: Shards<V4Slot> = Shards::new(7);
        let mut model = std::collections::HashMap::new();
        // Keys from a narrow range so that they collide, and operations mixed 2:1
        // insert:remove so the table grows and shrinks.
        let mut random = headwall_testkit::SplitMix64::new(0x2545_f491);
        for step in 0..200_000u64 {
            let key = random.below(5_000);
            if random.below(3) == 0 {
                let removed = shards.remove_if(&key, |_| true);
                assert_eq!(removed, model.remove(&key).is_some(), "step {step}");
            } else {
                let replaced = shards.insert_if(key, compact(step), |_| true);
                assert_eq!(
                    replaced,
                    Some(model.insert(key, step).is_some()),
                    "step {step}"
                );
            }
            if step.is_multiple_of(10_000) {
                for (key, value) in &model {
                    assert_eq!(shards.get(key, |c| c.msisdn), Some(*value), "step {step}");
                }
            }
        }
        assert_eq!(shards.len(), model.len());
        for key in 0..5_000u64 {
            assert_eq!(
                shards.get(&key, |c| c.msisdn),
                model.get(&key).copied(),
                "key {key}"
            );
        }
        let odd = shards.remove_where(|c| c.msisdn % 2 == 1);
        model.retain(|_, value| *value % 2 == 0);
        assert_eq!(shards.len(), model.len());
        assert!(odd > 0);
        for key in 0..5_000u64 {
            assert_eq!(shards.get(&key, |c| c.msisdn), model.get(&key).copied());
        }
    }

    #[test]
    fn a_v4_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Option<V4Slot>>(), 64);
        assert_eq!(std::mem::align_of::<Option<V4Slot>>(), 64);
        assert_eq!(std::mem::size_of::<Option<V6Slot>>(), 80);
    }

    #[test]
    fn insert_if_checks_and_inserts_in_one_step() {
        let shards: Shards<V4Slot> = Shards::new(1);
        assert_eq!(shards.insert_if(1, compact(1), |_| true), Some(false));
        assert_eq!(shards.insert_if(1, compact(2), |c| c.is_none()), None);
        assert_eq!(shards.get(&1, |c| c.msisdn), Some(1));
        assert_eq!(shards.insert_if(1, compact(3), |c| c.is_some()), Some(true));
        assert_eq!(shards.get(&1, |c| c.msisdn), Some(3));
        assert_eq!(shards.len(), 1);
    }
}
