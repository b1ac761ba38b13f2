//! What a client sent, cut to a bounded length before it is logged or quoted back: a
//! client's input never reaches a log line or an error message unbounded.

/// At most `max` bytes of what a client sent, as printable text (invalid UTF-8 and control
/// characters escaped), with the full length noted when cut: what a client sends is never
/// logged unbounded.
pub fn shorten_bytes(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut text: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if bytes.len() > max {
        text.push_str(&format!("…({} bytes)", bytes.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortened_text_is_bounded_escaped_and_says_its_length() {
        assert_eq!(shorten_bytes(b"short", 10), "short");
        let long = shorten_bytes(&[b'a'; 100_000], 8);
        assert_eq!(long, "aaaaaaaa…(100000 bytes)");
        assert_eq!(shorten_bytes(b"a\nb\x1b", 10), "a\\nb\\u{1b}");
    }
}
