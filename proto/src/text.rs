use std::fmt;

/// A message text that is not blank and at most a given number of UTF-8 bytes long.
///
/// The text is kept exactly as sent (no trimming): control characters and any Unicode text
/// are stored and returned intact. Only a text with nothing but whitespace is refused, since
/// the original refused an empty message and a blank one carries no more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

/// Why a text is not a valid [`MessageText`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageTextError {
    /// Empty, or only whitespace.
    #[error("message is empty")]
    Empty,
    /// Longer than the configured limit.
    #[error("message is {len} bytes long; the limit is {max} bytes")]
    TooLong {
        /// Length of the text in UTF-8 bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

impl MessageText {
    /// Checks `text` against the rules above with a limit of `max_bytes` UTF-8 bytes.
    pub fn parse(text: String, max_bytes: usize) -> Result<Self, MessageTextError> {
        if text.trim().is_empty() {
            return Err(MessageTextError::Empty);
        }
        if text.len() > max_bytes {
            return Err(MessageTextError::TooLong {
                len: text.len(),
                max: max_bytes,
            });
        }
        Ok(Self(text))
    }

    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owned text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl AsRef<str> for MessageText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_texts_are_refused() {
        for text in ["", " ", "\t\n", "\u{3000}"] {
            assert_eq!(
                MessageText::parse(text.to_owned(), 100),
                Err(MessageTextError::Empty),
                "{text:?}"
            );
        }
    }

    #[test]
    fn limit_counts_utf8_bytes_not_chars() {
        // Four characters, sixteen bytes.
        let text = "😀😀😀😀".to_owned();
        assert_eq!(
            MessageText::parse(text.clone(), 15),
            Err(MessageTextError::TooLong { len: 16, max: 15 })
        );
        assert_eq!(
            MessageText::parse(text.clone(), 16).map(MessageText::into_inner),
            Ok(text)
        );
    }

    #[test]
    fn text_is_kept_exactly_as_sent() {
        let text = "  a\u{0}b\u{7}c 😀  ".to_owned();
        let parsed = MessageText::parse(text.clone(), 100);
        assert_eq!(parsed.map(MessageText::into_inner), Ok(text));
    }

    proptest::proptest! {
        /// Any text and any limit: accepted exactly when it is not blank and fits, and then
        /// kept as sent.
        #[test]
        fn any_text_is_accepted_exactly_when_not_blank_and_within_the_limit(
            text in proptest::prelude::any::<String>(),
            max in 0_usize..64,
        ) {
            let expected_ok = !text.trim().is_empty() && text.len() <= max;
            match MessageText::parse(text.clone(), max) {
                Ok(parsed) => {
                    proptest::prop_assert!(expected_ok);
                    proptest::prop_assert_eq!(parsed.as_str(), text.as_str());
                }
                Err(MessageTextError::Empty) => proptest::prop_assert!(text.trim().is_empty()),
                Err(MessageTextError::TooLong { len, max: limit }) => {
                    proptest::prop_assert_eq!((len, limit), (text.len(), max));
                    proptest::prop_assert!(len > max);
                }
            }
        }
    }
}
