use std::fmt;

/// A message text that is not blank and at most a given number of UTF-8 bytes long.
///
/// The text is kept exactly as sent (no trimming): control characters and any Unicode text
/// are stored and returned intact. Only a text with nothing visible is refused (nothing but
/// [`INVISIBLE`] characters: whitespace, controls, zero-width and other default-ignorable
/// characters), since the original refused an empty message and a blank one carries no more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

/// The characters that show nothing, as ranges: Unicode's `White_Space`, the controls (`Cc`),
/// and the `Default_Ignorable_Code_Point`s (zero-width spaces and joiners, direction marks,
/// fillers, variation selectors, tags). A text made of these alone is blank.
pub const INVISIBLE: &[(char, char)] = &[
    ('\u{0000}', '\u{0020}'),
    ('\u{007F}', '\u{00A0}'),
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{2000}', '\u{200F}'),
    ('\u{2028}', '\u{202F}'),
    ('\u{205F}', '\u{206F}'),
    ('\u{3000}', '\u{3000}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` shows nothing (see [`INVISIBLE`]).
pub fn is_invisible(c: char) -> bool {
    INVISIBLE
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// A regular expression (ECMA-262, as JSON Schema's `pattern`) that a text matches when it is
/// not blank by [`MessageText`]'s rule: it has a character outside [`INVISIBLE`]. Written out
/// rather than `\S`, whose meaning differs between regex dialects. The three ranges beyond
/// `U+FFFF` are left out: regex dialects write them in ways that do not agree.
pub const NOT_BLANK_PATTERN: &str = r"[^\u0000-\u0020\u007F-\u00A0\u00AD\u034F\u061C\u115F\u1160\u1680\u17B4\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]";

/// Why a text is not a valid [`MessageText`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageTextError {
    /// Empty, or nothing visible.
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

impl MessageTextError {
    /// What was wrong, for the caller, naming the field that held the text (`text`,
    /// `message`): one wording for every door that takes a text.
    pub fn reason(&self, field: &str) -> String {
        match self {
            Self::Empty => format!("{field} must not be empty or blank"),
            too_long @ Self::TooLong { .. } => too_long.to_string(),
        }
    }

    /// The gRPC answer to it: `INVALID_ARGUMENT` with [`MessageTextError::reason`].
    #[cfg(feature = "server")]
    pub fn to_status(&self, field: &str) -> tonic::Status {
        tonic::Status::invalid_argument(self.reason(field))
    }
}

impl MessageText {
    /// Checks `text` against the rules above with a limit of `max_bytes` UTF-8 bytes.
    pub fn parse(text: String, max_bytes: usize) -> Result<Self, MessageTextError> {
        if text.chars().all(is_invisible) {
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
    fn every_door_words_a_bad_text_alike_naming_its_own_field() {
        assert_eq!(
            MessageTextError::Empty.reason("text"),
            "text must not be empty or blank"
        );
        let too_long = MessageTextError::TooLong { len: 9, max: 8 };
        assert_eq!(
            too_long.reason("message"),
            "message is 9 bytes long; the limit is 8 bytes"
        );
    }

    /// The characters [`NOT_BLANK_PATTERN`]'s class leaves out, read from the pattern itself.
    fn excluded_by_pattern() -> Vec<char> {
        let class = NOT_BLANK_PATTERN
            .strip_prefix("[^")
            .and_then(|rest| rest.strip_suffix(']'))
            .expect("a negated class");
        let mut singles = Vec::new();
        let mut rest = class;
        while let Some(c) = rest.chars().next() {
            let (one, len) = match c {
                '\\' => match rest[1..].chars().next().expect("an escape") {
                    't' => ('\t', 2),
                    'n' => ('\n', 2),
                    'f' => ('\u{c}', 2),
                    'r' => ('\r', 2),
                    'u' => {
                        let code = u32::from_str_radix(&rest[2..6], 16).expect("four hex digits");
                        (char::from_u32(code).expect("a char"), 6)
                    }
                    other => panic!("unexpected escape \\{other}"),
                },
                c => (c, c.len_utf8()),
            };
            singles.push(one);
            rest = &rest[len..];
        }
        // `a-b` ranges: a '-' between two singles.
        let mut chars = Vec::new();
        let mut i = 0;
        while i < singles.len() {
            if singles.get(i + 1) == Some(&'-') && i + 2 < singles.len() {
                chars.extend(singles[i]..=singles[i + 2]);
                i += 3;
            } else {
                chars.push(singles[i]);
                i += 1;
            }
        }
        chars
    }

    #[test]
    fn the_not_blank_pattern_leaves_out_exactly_the_invisible_characters_of_the_bmp() {
        let mut excluded = excluded_by_pattern();
        excluded.sort_unstable();
        let invisible: Vec<char> = (0..=0xFFFF_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_invisible(c))
            .collect();
        assert_eq!(excluded, invisible);
        for c in invisible {
            assert_eq!(
                MessageText::parse(c.to_string(), 10),
                Err(MessageTextError::Empty)
            );
        }
    }

    #[test]
    fn every_whitespace_and_control_character_is_invisible() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            if c.is_whitespace() || c.is_control() {
                assert!(is_invisible(c), "{c:?}");
            }
        }
    }

    #[test]
    fn blank_texts_are_refused() {
        for text in [
            "",
            " ",
            "\t\n",
            "\u{3000}",
            "\u{200B}\u{200B}",
            "\u{200D}\u{FEFF}\u{2060}",
            "\u{0}\u{7}",
            "\u{E0041}\u{E0042}",
            "\u{FE0F}",
        ] {
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
    fn a_text_reads_back_as_itself_every_way() {
        let text = MessageText::parse("  a\u{0}b 😀 ".to_owned(), 100).unwrap();
        assert_eq!(text.as_ref(), "  a\u{0}b 😀 ");
        assert_eq!(text.to_string(), "  a\u{0}b 😀 ");
        assert_eq!(text.as_str(), text.as_ref());
    }

    #[test]
    fn text_is_kept_exactly_as_sent() {
        let text = "  a\u{0}b\u{7}c 😀\u{200B}  ".to_owned();
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
            let blank = text.chars().all(is_invisible);
            let expected_ok = !blank && text.len() <= max;
            match MessageText::parse(text.clone(), max) {
                Ok(parsed) => {
                    proptest::prop_assert!(expected_ok);
                    proptest::prop_assert_eq!(parsed.as_str(), text.as_str());
                }
                Err(MessageTextError::Empty) => proptest::prop_assert!(blank),
                Err(MessageTextError::TooLong { len, max: limit }) => {
                    proptest::prop_assert_eq!((len, limit), (text.len(), max));
                    proptest::prop_assert!(len > max);
                }
            }
        }
    }
}
