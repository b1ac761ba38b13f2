//! Random UUIDs from the thread's own generator.
//!
//! `Uuid::new_v4` asks the kernel for 16 bytes on every call: a system call per id, and the
//! facade makes two per request (the request id and the message id). The thread-local
//! generator (ChaCha, seeded from the kernel and reseeded as it goes) gives ids just as
//! unpredictable without leaving the process.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::{Builder, Uuid};

/// A fresh random UUID (version 4, RFC 9562 variant).
pub fn random_uuid() -> Uuid {
    Builder::from_random_bytes(rand::random()).into_uuid()
}

/// A fresh time-ordered UUID (version 7): the Unix time in milliseconds, then 74 random bits.
/// Ids made later sort later (within a millisecond, in any order), so a database index keyed
/// on them grows at its end instead of touching a random page for each new id.
pub fn time_ordered_uuid() -> Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_and_distinct() {
        let ids: std::collections::HashSet<Uuid> = (0..10_000).map(|_| random_uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.get_version_num(), 4, "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn time_ordered_ids_are_version_7_distinct_and_sort_by_their_millisecond() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| time_ordered_uuid()).collect();
        let distinct: std::collections::HashSet<&Uuid> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let millis = |id: &Uuid| id.get_timestamp().unwrap().to_unix();
        for pair in ids.windows(2) {
            assert_eq!(pair[0].get_version_num(), 7, "{}", pair[0]);
            assert_eq!(pair[0].get_variant(), uuid::Variant::RFC4122);
            assert!(
                millis(&pair[0]) <= millis(&pair[1]),
                "{} {}",
                pair[0],
                pair[1]
            );
            if millis(&pair[0]) < millis(&pair[1]) {
                assert!(pair[0] < pair[1], "{} {}", pair[0], pair[1]);
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (seconds, _) = ids[0].get_timestamp().unwrap().to_unix();
        assert!(now.as_secs().abs_diff(seconds) <= 1);
    }
}
