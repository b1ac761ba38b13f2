//! Random (version 4) UUIDs from the thread's own generator.
//!
//! `Uuid::new_v4` asks the kernel for 16 bytes on every call: a system call per id, and the
//! facade makes two per request (the request id and the message id). The thread-local
//! generator (ChaCha, seeded from the kernel and reseeded as it goes) gives ids just as
//! unpredictable without leaving the process.

use uuid::{Builder, Uuid};

/// A fresh random UUID (version 4, RFC 9562 variant).
pub fn random_uuid() -> Uuid {
    Builder::from_random_bytes(rand::random()).into_uuid()
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
}
