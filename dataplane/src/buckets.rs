//! Byte-rate token buckets for result streams (`rate bytes=… per=… burst=…`).
//!
//! A bucket holds up to `burst` bytes of tokens and gains `bytes_per_second` of them as
//! time passes (time is passed in: monotonic microseconds). A message may go out while
//! the bucket is not empty, and takes its whole size, so the bucket can go into debt: the
//! average rate is the configured one, a message larger than the burst still passes (after
//! the bucket refilled), and nothing is ever split.
//!
//! `scope="session"` buckets belong to their session. `scope="identity"` buckets are
//! shared by every session (on every worker) of this instance with the same token subject,
//! through [`IdentityBuckets`]; a session holds its shared buckets for its lifetime.
//!
//! What this module must never do: let more through than the rate and burst allow, or
//! block: a caller that must wait is told until when.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// One token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    bytes_per_second: u64,
    burst_bytes: u64,
    /// Tokens in bytes; negative: debt from a message larger than what was left.
    tokens: i64,
    last_us: u64,
}

impl Bucket {
    /// A full bucket at `now_us`.
    pub fn new(bytes_per_second: u64, burst_bytes: u64, now_us: u64) -> Bucket {
        let bytes_per_second = bytes_per_second.max(1);
        let burst_bytes = burst_bytes.max(bytes_per_second);
        Bucket {
            bytes_per_second,
            burst_bytes,
            tokens: i64::try_from(burst_bytes).unwrap_or(i64::MAX),
            last_us: now_us,
        }
    }

    fn refill(&mut self, now_us: u64) {
        let elapsed = now_us.saturating_sub(self.last_us);
        if elapsed == 0 {
            return;
        }
        // Whole tokens only; the remainder of the time is kept for the next refill.
        let gained = u128::from(elapsed) * u128::from(self.bytes_per_second) / 1_000_000;
        if gained == 0 {
            return;
        }
        let used_us = gained * 1_000_000 / u128::from(self.bytes_per_second);
        self.last_us += u64::try_from(used_us).unwrap_or(elapsed);
        let burst = i64::try_from(self.burst_bytes).unwrap_or(i64::MAX);
        let gained = i64::try_from(gained).unwrap_or(i64::MAX);
        self.tokens = self.tokens.saturating_add(gained).min(burst);
        if self.tokens == burst {
            // Full: time spent full earns nothing.
            self.last_us = now_us;
        }
    }

    /// When the bucket will have a token again (`None`: it has one now).
    pub fn ready_at(&mut self, now_us: u64) -> Option<u64> {
        self.refill(now_us);
        if self.tokens > 0 {
            return None;
        }
        let missing = u128::from(self.tokens.unsigned_abs()) + 1;
        let wait = missing * 1_000_000 / u128::from(self.bytes_per_second) + 1;
        Some(
            self.last_us
                .saturating_add(u64::try_from(wait).unwrap_or(u64::MAX)),
        )
    }

    /// Takes `bytes` (call after [`Bucket::ready_at`] said it may).
    pub fn take(&mut self, bytes: u64) {
        self.tokens = self
            .tokens
            .saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// A bucket shared by the sessions of one identity.
#[derive(Debug)]
pub struct SharedBucket(Mutex<Bucket>);

impl SharedBucket {
    pub fn ready_at(&self, now_us: u64) -> Option<u64> {
        match self.0.lock() {
            Ok(mut b) => b.ready_at(now_us),
            // A poisoned lock: a panic elsewhere; fail closed (wait a second).
            Err(_) => Some(now_us + 1_000_000),
        }
    }
    pub fn take(&self, bytes: u64) {
        if let Ok(mut b) = self.0.lock() {
            b.take(bytes);
        }
    }
}

/// The identity-scoped buckets of this instance, keyed by token subject and the bucket's
/// rate and size (not by rule id: ids change from one table to the next). Entries go when
/// their last session does.
#[derive(Debug, Default)]
pub struct IdentityBuckets {
    map: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    buckets: HashMap<(String, u64, u64), Weak<SharedBucket>>,
    /// Buckets created since the last sweep of the ones no session holds.
    created: usize,
}

impl IdentityBuckets {
    /// The bucket of `subject` of this rate and size, created full if no session holds it.
    pub fn get(
        &self,
        subject: &str,
        bytes_per_second: u64,
        burst_bytes: u64,
        now_us: u64,
    ) -> Arc<SharedBucket> {
        let fresh = || {
            Arc::new(SharedBucket(Mutex::new(Bucket::new(
                bytes_per_second,
                burst_bytes,
                now_us,
            ))))
        };
        let Ok(mut map) = self.map.lock() else {
            return fresh();
        };
        let key = (subject.to_owned(), bytes_per_second, burst_bytes);
        if let Some(b) = map.buckets.get(&key).and_then(Weak::upgrade) {
            return b;
        }
        // Swept now and then, not at every miss: a reload makes every session miss.
        map.created += 1;
        if map.created >= 64.max(map.buckets.len() / 2) {
            map.created = 0;
            map.buckets.retain(|_, w| w.strong_count() > 0);
        }
        let b = fresh();
        map.buckets.insert(key, Arc::downgrade(&b));
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_passes_its_burst_then_the_rate() {
        let mut b = Bucket::new(1000, 4000, 0);
        let mut sent = 0;
        let mut t = 0;
        // 10 s of 100-byte messages as fast as allowed: burst + 10 s × rate, about.
        while t < 10_000_000 {
            match b.ready_at(t) {
                None => {
                    b.take(100);
                    sent += 100;
                }
                Some(at) => t = at,
            }
        }
        assert!((13_900..=14_100).contains(&sent), "{sent}");
    }

    #[test]
    fn a_message_larger_than_the_burst_passes_into_debt() {
        let mut b = Bucket::new(1000, 1000, 0);
        assert_eq!(b.ready_at(0), None);
        b.take(5000);
        let at = b.ready_at(0).unwrap();
        assert!((4_000_000..=4_100_000).contains(&at), "{at}");
        assert_eq!(b.ready_at(at), None);
    }

    #[test]
    fn sessions_of_one_identity_share_a_bucket_until_the_last_goes() {
        let reg = IdentityBuckets::default();
        let a = reg.get("alice", 1000, 1000, 0);
        let b = reg.get("alice", 1000, 1000, 0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &reg.get("bob", 1000, 1000, 0)));
        a.take(1000);
        assert!(b.ready_at(0).is_some(), "b sees what a took");
        drop((a, b));
        let c = reg.get("alice", 1000, 1000, 0);
        assert_eq!(c.ready_at(0), None, "a new bucket once no session held it");
    }
}
