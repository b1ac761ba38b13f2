//! How the facade picks a message's id.
//!
//! The id is the idempotency key of the logging service, so picking it well is what makes
//! retries safe: every attempt of one request sends the same id.
//!
//! - With an `Idempotency-Key` header: a name-based UUID (v5) of the key, so a client that
//!   resends a POST (say, after a dropped connection) is answered, not stored again.
//! - Otherwise, in [`DedupMode::Content`] (the default, the original's behaviour): a v5 UUID of
//!   the text, so the same text twice is one message, found in O(1).
//! - In [`DedupMode::Unique`]: a new time-ordered UUID (v7) per request; equal texts are
//!   separate messages. Version 7 rather than a random v4: ids that grow with time keep the
//!   store's id index appending at its end, which measured 20 % more POSTs a second on SQLite.

use std::sync::LazyLock;

use msglog_common::secret::Secret;
use msglog_proto::MessageText;
use uuid::Uuid;

pub use crate::settings::DedupMode;

/// Namespace of ids derived from message texts: a v5 UUID of a name of our own.
static CONTENT_NAMESPACE: LazyLock<Uuid> =
    LazyLock::new(|| Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:msglog:message-text"));
/// Namespace of ids derived from `Idempotency-Key` headers.
static KEY_NAMESPACE: LazyLock<Uuid> =
    LazyLock::new(|| Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:msglog:idempotency-key"));

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdempotencyKey(String);

/// The key's rule, said to the client when it is broken.
pub(crate) const IDEMPOTENCY_KEY_RULE: &str =
    "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)";

impl IdempotencyKey {
    /// Longest key accepted.
    pub(crate) const MAX_LEN: usize = 255;

    /// Checks a raw header value.
    pub(crate) fn parse(raw: &[u8]) -> Option<Self> {
        let valid = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw.iter().all(|byte| byte.is_ascii_graphic());
        // Visible ASCII is valid UTF-8.
        valid.then(|| Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// The key as sent.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The rules of the module's documentation, for one deployment: its mode, and the namespaces
/// of its name-based ids.
///
/// With a deployment secret (`--id-secret-file`) each namespace is itself a v5 UUID of the
/// secret under the public one, so only a holder of the secret can tell which id a text or a
/// key will get: nobody can store a guessed id first with another text (squat it) and have the
/// real message refused. Every facade of the deployment is given the same secret, so a restart
/// or a second facade maps the same text or key to the same id.
#[derive(Debug, Clone)]
pub(crate) struct IdRule {
    /// How ids are picked without a key.
    mode: DedupMode,
    /// The namespace of ids of texts.
    content: Uuid,
    /// The namespace of ids of keys.
    key: Uuid,
}

impl IdRule {
    /// The rule for `mode`, keyed by `secret` when there is one.
    pub(crate) fn new(mode: DedupMode, secret: Option<&Secret>) -> Self {
        let keyed = |namespace: &Uuid| match secret {
            Some(secret) => Uuid::new_v5(namespace, secret.as_bytes()),
            None => *namespace,
        };
        Self {
            mode,
            content: keyed(&CONTENT_NAMESPACE),
            key: keyed(&KEY_NAMESPACE),
        }
    }

    /// How ids are picked without a key.
    pub(crate) fn mode(&self) -> DedupMode {
        self.mode
    }

    /// The id for a message.
    pub(crate) fn id(&self, key: Option<&IdempotencyKey>, text: &MessageText) -> Uuid {
        match (key, self.mode) {
            (Some(key), _) => Uuid::new_v5(&self.key, key.as_str().as_bytes()),
            (None, DedupMode::Content) => Uuid::new_v5(&self.content, text.as_str().as_bytes()),
            (None, DedupMode::Unique) => msglog_common::random_id::time_ordered_uuid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> MessageText {
        MessageText::parse(s.to_owned(), 1024).unwrap()
    }

    #[test]
    fn content_ids_are_stable_per_text_and_differ_between_texts() {
        let a = IdRule::new(DedupMode::Content, None).id(None, &text("hello"));
        assert_eq!(
            a,
            IdRule::new(DedupMode::Content, None).id(None, &text("hello"))
        );
        assert_ne!(
            a,
            IdRule::new(DedupMode::Content, None).id(None, &text("hello "))
        );
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn a_secret_keys_every_name_based_id_and_the_same_secret_gives_the_same_ids() {
        let secret = Secret::parse("a deployment's secret".replace(' ', "-").as_str()).unwrap();
        let other = Secret::parse("another-deployment-secret").unwrap();
        let key = IdempotencyKey::parse(b"order-42").unwrap();
        for (key, mode) in [(None, DedupMode::Content), (Some(&key), DedupMode::Unique)] {
            let public = IdRule::new(mode, None).id(key, &text("hello"));
            let keyed = IdRule::new(mode, Some(&secret)).id(key, &text("hello"));
            assert_ne!(public, keyed, "a guess without the secret misses");
            assert_eq!(
                keyed,
                IdRule::new(mode, Some(&secret.clone())).id(key, &text("hello"))
            );
            assert_ne!(
                keyed,
                IdRule::new(mode, Some(&other)).id(key, &text("hello"))
            );
            assert_eq!(keyed.get_version_num(), 5);
        }
    }

    #[test]
    fn each_key_has_an_id_of_its_own_and_reads_back_as_sent() {
        let (a, b) = (
            IdempotencyKey::parse(b"order-42").unwrap(),
            IdempotencyKey::parse(b"order-43").unwrap(),
        );
        assert_eq!(a.as_str(), "order-42");
        let rule = IdRule::new(DedupMode::Content, None);
        assert_ne!(rule.id(Some(&a), &text("x")), rule.id(Some(&b), &text("x")));
    }

    #[test]
    fn a_rule_keeps_the_mode_it_was_made_with() {
        for mode in [DedupMode::Content, DedupMode::Unique] {
            assert_eq!(IdRule::new(mode, None).mode(), mode);
        }
    }

    #[test]
    fn unique_ids_are_new_time_ordered_v7() {
        let a = IdRule::new(DedupMode::Unique, None).id(None, &text("hello"));
        let b = IdRule::new(DedupMode::Unique, None).id(None, &text("hello"));
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(b.get_version_num(), 7);
    }

    #[test]
    fn a_key_decides_the_id_whatever_the_mode_or_text() {
        let key = IdempotencyKey::parse(b"order-42").unwrap();
        let by_key = IdRule::new(DedupMode::Unique, None).id(Some(&key), &text("a"));
        assert_eq!(
            by_key,
            IdRule::new(DedupMode::Content, None).id(Some(&key), &text("b"))
        );
        // A key never collides with the content id of the same string.
        assert_ne!(
            by_key,
            IdRule::new(DedupMode::Content, None).id(None, &text("order-42"))
        );
    }

    #[test]
    fn keys_must_be_1_to_255_visible_ascii() {
        assert!(IdempotencyKey::parse(b"a").is_some());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_some());
        assert!(IdempotencyKey::parse(b"").is_none());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_none());
        assert!(IdempotencyKey::parse(b"has space").is_none());
        assert!(IdempotencyKey::parse(b"tab\t").is_none());
        assert!(IdempotencyKey::parse("ключ".as_bytes()).is_none());
    }

    proptest::proptest! {
        /// Any bytes as an `Idempotency-Key`: taken exactly when 1 to 255 visible ASCII
        /// characters, as sent; never a panic.
        #[test]
        fn any_key_is_taken_exactly_when_1_to_255_visible_ascii(raw in proptest::collection::vec(
            proptest::prelude::any::<u8>(),
            0..300,
        )) {
            let valid = (1..=255).contains(&raw.len()) && raw.iter().all(u8::is_ascii_graphic);
            match IdempotencyKey::parse(&raw) {
                Some(key) => {
                    proptest::prop_assert!(valid);
                    proptest::prop_assert_eq!(key.as_str().as_bytes(), raw.as_slice());
                }
                None => proptest::prop_assert!(!valid),
            }
        }

        /// The same text always gives the same id, and two texts that differ never share one;
        /// nor does a key share an id with the text of the same string.
        #[test]
        fn ids_follow_the_text_and_differ_with_it(
            a in "\\PC{1,40}",
            b in "\\PC{1,40}",
        ) {
            proptest::prop_assume!(!a.trim().is_empty() && !b.trim().is_empty());
            let id_a = IdRule::new(DedupMode::Content, None).id(None, &text(&a));
            proptest::prop_assert_eq!(id_a, IdRule::new(DedupMode::Content, None).id(None, &text(&a)));
            let id_b = IdRule::new(DedupMode::Content, None).id(None, &text(&b));
            proptest::prop_assert_eq!(a == b, id_a == id_b);
            if let Some(key) = IdempotencyKey::parse(a.as_bytes()) {
                proptest::prop_assert_ne!(IdRule::new(DedupMode::Content, None).id(Some(&key), &text(&b)), id_a);
            }
        }
    }
}
