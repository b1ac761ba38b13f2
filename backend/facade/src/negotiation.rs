//! What a client's headers ask of an answer, read one way for every route: the content
//! codings it accepts (`Accept-Encoding`, and Connect's `Connect-Accept-Encoding`), and
//! whether the copy it holds is current (`ETag`, `If-None-Match`).

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};

/// Whether the header `name` (a list of codings, each with an optional `q`) accepts `coding`:
/// named in it, and not with `q=0`.
pub(crate) fn accepts_coding(headers: &HeaderMap, name: &HeaderName, coding: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|named| {
            let mut parts = named.split(';').map(str::trim);
            parts.next() == Some(coding)
                && !parts.any(|parameter| {
                    parameter
                        .replace(' ', "")
                        .strip_prefix("q=")
                        .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
                })
        })
}

/// A strong `ETag` for content: its SHA-256, the first 16 bytes in base64url, quoted.
pub(crate) fn content_tag(content: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(content);
    let tag = format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    );
    // Quotes and base64url characters: always a valid header value.
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
}

/// Whether an `If-None-Match` value names `tag` (weakly or not, alone or in a list) or is `*`.
pub(crate) fn matches_tag(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else {
        return false;
    };
    wanted
        .split(',')
        .map(|one| one.trim().trim_start_matches("W/"))
        .any(|one| one == "*" || one == tag)
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    fn accept(value: &'static str) -> HeaderMap {
        HeaderMap::from_iter([(header::ACCEPT_ENCODING, HeaderValue::from_static(value))])
    }

    #[test]
    fn a_coding_is_accepted_when_named_without_q_0() {
        let name = header::ACCEPT_ENCODING;
        assert!(accepts_coding(&accept("gzip"), &name, "gzip"));
        assert!(accepts_coding(&accept("br;q=1, gzip;q=0.5"), &name, "gzip"));
        assert!(accepts_coding(&accept("*"), &name, "*"));
        assert!(!accepts_coding(&accept("gzip;q=0"), &name, "gzip"));
        assert!(!accepts_coding(&accept("gzip; q = 0.000"), &name, "gzip"));
        assert!(!accepts_coding(&accept("*;q=0"), &name, "*"));
        assert!(!accepts_coding(&accept("br"), &name, "gzip"));
        assert!(!accepts_coding(&HeaderMap::new(), &name, "gzip"));
    }

    #[test]
    fn a_content_tag_follows_the_content() {
        assert_eq!(content_tag(b"page"), content_tag(b"page"));
        assert_ne!(content_tag(b"page"), content_tag(b"page 2"));
        let tag = content_tag(b"page");
        assert_eq!(tag.len(), 24, "22 base64url characters in quotes: {tag:?}");
    }
}
