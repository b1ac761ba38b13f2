//! A deployment's shared secrets, read from files (never from a flag's value, which any user of
//! the machine can read in the process list): the bearer token logging requires of its callers,
//! and the key the facade derives name-based ids under.

use std::{fmt, path::Path};

use anyhow::Context as _;
use http::HeaderValue;

/// The fewest bytes a secret may have: 16, as a 128-bit random value written in hex has 32.
pub const MIN_LEN: usize = 16;

/// A secret read from a file: its contents without surrounding whitespace (a file written by
/// `echo` ends with a newline). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads the secret in `path`: at least [`MIN_LEN`] visible ASCII characters, so that it
    /// fits in a header and cannot be guessed. What is wrong is said without the secret.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let contents = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?;
        Self::parse(contents.trim()).with_context(|| format!("in {}", path.display()))
    }

    /// Checks a secret's text (see [`Secret::read`]).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            text.len() >= MIN_LEN,
            "a secret has at least {MIN_LEN} characters; this one has {}",
            text.len()
        );
        anyhow::ensure!(
            text.bytes().all(|byte| byte.is_ascii_graphic()),
            "a secret is visible ASCII (no spaces or control characters)"
        );
        Ok(Self(text.to_owned()))
    }

    /// The secret's bytes, to key a derivation with.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// `Bearer <secret>`, the `authorization` value that presents it.
    pub fn bearer(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// Whether `authorization` presents this secret as a bearer token. Takes the same time
    /// wherever the first difference is, so the secret cannot be found a byte at a time.
    pub fn is_presented_by(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = authorization.and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        let expected = self.0.as_bytes();
        let differences = token
            .iter()
            .zip(expected)
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b));
        differences == 0 && token.len() == expected.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_invisible_secrets_are_refused_and_never_shown() {
        assert!(Secret::parse("short").is_err());
        assert!(Secret::parse("sixteen chars   but spaces").is_err());
        let secret = Secret::parse("0123456789abcdef0123").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert!(secret.bearer().is_sensitive());
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let secret = Secret::parse("0123456789abcdef0123").unwrap();
        let value = |text: &str| HeaderValue::from_str(text).unwrap();
        assert!(secret.is_presented_by(Some(&secret.bearer())));
        for wrong in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "Bearer 0123456789abcdef0124",
            "bearer 0123456789abcdef0123",
            "Basic 0123456789abcdef0123",
            "0123456789abcdef0123",
            "",
        ] {
            assert!(!secret.is_presented_by(Some(&value(wrong))), "{wrong:?}");
        }
        assert!(!secret.is_presented_by(None));
    }

    #[test]
    fn a_file_s_trailing_newline_is_not_part_of_the_secret() {
        let path = std::env::temp_dir().join(format!("msglog-secret-{}", std::process::id()));
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let secret = Secret::read(&path).unwrap();
        assert!(secret.is_presented_by(Some(&HeaderValue::from_static(
            "Bearer 0123456789abcdef0123"
        ))));
        let _ = std::fs::remove_file(&path);
    }
}
