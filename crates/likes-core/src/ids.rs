//! Identifiers, parsed once at the boundary. On the wire they are prefixed decimal strings
//! (`"u_42"`, `"p_7"`) so a user id can never be mistaken for a post id; inside Redis and
//! PostgreSQL they are the bare integers, which Redis allocates densely with `INCR`. They are
//! bounded by 2^53 − 1, so the Lua scripts, whose numbers are doubles, hold each exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {what} id (expected `{prefix}` followed by a positive integer)")]
pub struct IdError {
    what: &'static str,
    prefix: &'static str,
    input: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// Wire prefix, e.g. `u_`.
            pub const PREFIX: &'static str = $prefix;

            /// The largest id: 2^53 − 1, the last integer a Lua number (a double) holds
            /// exactly, so every layer, the scripts included, sees the same id.
            pub const MAX: u64 = (1 << 53) - 1;

            /// Wraps a raw id; zero is reserved as "none", and ids above [`Self::MAX`] are
            /// rejected.
            pub fn new(raw: u64) -> Option<Self> {
                (raw > 0 && raw <= Self::MAX).then_some(Self(raw))
            }

            /// The bare integer used in Redis keys and SQL rows.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let err = || IdError { what: $what, prefix: $prefix, input: s.chars().take(64).collect() };
                let digits = s.strip_prefix($prefix).ok_or_else(err)?;
                // `u64::from_str` accepts a leading `+`; a canonical id is digits only.
                if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
                    return Err(err());
                }
                digits.parse::<u64>().ok().and_then(Self::new).ok_or_else(err)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A user, allocated by `POST /api/session`.
    UserId, "u_", "user"
);
id_type!(
    /// An image post.
    PostId, "p_", "post"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_wire_format() {
        let id: PostId = "p_42".parse().expect("valid");
        assert_eq!(id.get(), 42);
        assert_eq!(id.to_string(), "p_42");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"p_42\"");
        let back: PostId = serde_json::from_str("\"p_42\"").expect("json");
        assert_eq!(back, id);
    }

    #[test]
    fn rejects_everything_that_is_not_canonical() {
        for bad in [
            "",
            "p_",
            "42",
            "u_42",
            "p_0",
            "p_-1",
            "p_+1",
            "p_01",
            "p_1a",
            "p_ 1",
            "p_99999999999999999999",
        ] {
            assert!(bad.parse::<PostId>().is_err(), "{bad:?} should be rejected");
        }
        assert!(UserId::new(0).is_none());
    }

    /// `u_9007199254740993` and `u_9007199254740992` are one double in Lua: ids stop at 2^53 − 1.
    #[test]
    fn ids_stop_where_lua_numbers_stop_being_exact() {
        assert_eq!(UserId::MAX, 9_007_199_254_740_991);
        assert_eq!(UserId::MAX as f64 as u64, UserId::MAX, "exact as a double");
        assert!(UserId::new(UserId::MAX).is_some());
        assert!(UserId::new(UserId::MAX + 1).is_none());
        for bad in [
            "u_9007199254740992",
            "u_9007199254740993",
            "u_18446744073709551615",
        ] {
            assert!(bad.parse::<UserId>().is_err(), "{bad} should be rejected");
        }
        assert!("p_9007199254740992".parse::<PostId>().is_err());
    }
}
