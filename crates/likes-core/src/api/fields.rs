//! Validated fields of requests: a display name, a caption and an image id, each checked once
//! at the boundary so that what reaches Redis and other users' screens is what they may show.

/// Longest display name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest caption, in characters after trimming.
pub const MAX_CAPTION_CHARS: usize = 280;

/// A display name: 1 to [`MAX_NAME_CHARS`] characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("the name contains control characters")]
    Control,
    #[error("the name contains bidirectional override characters")]
    Bidi,
    #[error("the name has no visible character")]
    Invisible,
}

impl DisplayName {
    /// Trims and validates `raw`. A name must show something: one made only of spaces and
    /// invisible format characters (zero-width space, joiners, …) is refused, and so is any
    /// bidirectional override, which would let a name display as another.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        if name.chars().any(is_bidi_control) {
            return Err(NameError::Bidi);
        }
        if name
            .chars()
            .all(|c| c.is_whitespace() || is_invisible_format(c))
        {
            return Err(NameError::Invisible);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caption: at most [`MAX_CAPTION_CHARS`] characters after trimming; may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption(String);

/// Why a caption was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptionError {
    #[error("the caption is longer than {MAX_CAPTION_CHARS} characters")]
    TooLong,
    #[error("the caption contains control characters (only line breaks are allowed)")]
    Control,
    #[error("the caption contains bidirectional override characters")]
    Bidi,
}

impl Caption {
    /// Trims and validates `raw`: line breaks are kept, any other control character (a NUL,
    /// an escape) or a bidirectional override is refused rather than silently dropped, as in a
    /// display name.
    pub fn parse(raw: &str) -> Result<Self, CaptionError> {
        let text = raw.trim();
        if text.chars().count() > MAX_CAPTION_CHARS {
            return Err(CaptionError::TooLong);
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(CaptionError::Control);
        }
        if text.chars().any(is_bidi_control) {
            return Err(CaptionError::Bidi);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `raw` could be an image id (the hex content hash the pipeline produces), checked
/// before it goes into a Redis key.
pub fn is_image_id(raw: &str) -> bool {
    (16..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The bidirectional embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069)
/// and the implicit marks (U+200E, U+200F, U+061C): text that uses them can display as other
/// text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Format characters that draw nothing on their own (Unicode category Cf, the ones a name may
/// meet): soft hyphen, zero-width space and joiners, word joiner and invisible operators, the
/// byte-order mark, and the tag characters. They may sit in a name (a joiner inside an emoji),
/// but cannot be all of it.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E007F}'
    ) || is_bidi_control(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  ann ").expect("valid").as_str(), "ann");
        assert_eq!(DisplayName::parse("   "), Err(NameError::Empty));
        assert_eq!(
            DisplayName::parse(&"é".repeat(32)).map(|n| n.as_str().chars().count()),
            Ok(32)
        );
        assert_eq!(DisplayName::parse(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(DisplayName::parse("a\u{7}b"), Err(NameError::Control));
        assert_eq!(DisplayName::parse("\u{202E}\u{200B}"), Err(NameError::Bidi));
        assert_eq!(
            DisplayName::parse("\u{200B}\u{2060}\u{FEFF}"),
            Err(NameError::Invisible)
        );
        assert_eq!(DisplayName::parse("ann\u{202E}nimda"), Err(NameError::Bidi));
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(
            DisplayName::parse(family).map(|n| n.as_str().to_owned()),
            Ok(family.to_owned()),
            "a joiner inside an emoji is part of a visible name"
        );
    }

    #[test]
    fn captions_and_image_ids() {
        assert_eq!(
            Caption::parse("  first light\nover the bay ")
                .expect("valid")
                .as_str(),
            "first light\nover the bay"
        );
        assert_eq!(Caption::parse("hi\u{7} there"), Err(CaptionError::Control));
        assert_eq!(Caption::parse("a\0b"), Err(CaptionError::Control));
        assert_eq!(Caption::parse("evil\u{202E}gpj"), Err(CaptionError::Bidi));
        assert!(Caption::parse(&"x".repeat(280)).is_ok());
        assert_eq!(Caption::parse(&"x".repeat(281)), Err(CaptionError::TooLong));
        assert!(is_image_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_image_id("../../etc/passwd"));
        assert!(!is_image_id("0123456789ABCDEF0123456789ABCDEF"));
    }
}
