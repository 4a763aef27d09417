//! Session tokens: standard HS256 JWTs whose claims are `sub` (user id), `name`, `iat`, `exp`
//! (and `nbf`, honoured when present), signed with a [`SessionSecret`].
//!
//! HS256 is written here over RustCrypto's `hmac` and `sha2` rather than taken from
//! `jsonwebtoken`: that crate's pure-Rust backend links RSA and ECDSA code we never call, which
//! made every edge component ~600 KB larger. The tests check interoperability with
//! `jsonwebtoken` both ways. Time is passed in, never read, so expiry is testable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::UserId;

/// Default token lifetime: 30 days.
pub const DEFAULT_TTL_SECS: u64 = 30 * 24 * 3600;

/// `{"alg":"HS256","typ":"JWT"}`, the only header we issue.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Fewest bytes a session secret may have: HS256's key is 256 bits, and a shorter secret is a
/// password an attacker can guess offline from any one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// The development secret the docs name. Anyone can read it here, so it is accepted only where
/// the edge is told it is a dev run (the `dev_mode` variable); nowhere else can a token forged
/// with it pass.
pub const DEV_SECRET: &str = "likes-dev-only-secret-published-in-the-source";

/// A session secret fit to sign tokens: at least [`MIN_SECRET_BYTES`], and not the published
/// [`DEV_SECRET`] outside dev mode.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

/// Why a configured secret was refused; the message is one line an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "session_secret is {len} bytes; it must be at least {MIN_SECRET_BYTES} (generate one with `openssl rand -base64 48`)"
    )]
    TooShort { len: usize },
    #[error("session_secret is the published development secret, accepted only with dev_mode=true")]
    PublicDevSecret,
}

impl SessionSecret {
    /// Checks `raw` as configured; `dev_mode` allows [`DEV_SECRET`].
    pub fn parse(raw: &str, dev_mode: bool) -> Result<Self, SecretError> {
        if raw.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: raw.len() });
        }
        if raw == DEV_SECRET && !dev_mode {
            return Err(SecretError::PublicDevSecret);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The HMAC key.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log line.
        f.write_str("SessionSecret(..)")
    }
}

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub name: String,
    pub iat: u64,
    pub exp: u64,
    /// Not valid before (unix seconds). We never issue it, but a token that carries it is
    /// refused until then, as RFC 7519 asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Why a token was refused. Every variant is a 401; the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not signed with HS256")]
    Algorithm,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token requires header extensions this server does not support")]
    UnsupportedCritical,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    /// Extensions the verifier must understand (RFC 7515 §4.1.11); we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Signs a token for `user` valid from `now` for `ttl_secs`.
pub fn issue(secret: &[u8], user: UserId, name: &str, now: u64, ttl_secs: u64) -> String {
    let claims = Claims {
        sub: user,
        name: name.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_secs),
        nbf: None,
    };
    // Serialising a struct of strings and integers cannot fail.
    sign(secret, &serde_json::to_vec(&claims).unwrap_or_default())
}

/// An HS256 token over the claims `payload` exactly as given (JSON): what [`issue`] signs, and
/// what tests use to sign claims [`issue`] would never write.
pub fn sign(secret: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies the algorithm, the signature (in constant time) and expiry against `now`.
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: JoseHeader =
        serde_json::from_slice(&B64.decode(header).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    if header.crit.is_some() {
        return Err(TokenError::UnsupportedCritical);
    }
    let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(&token.as_bytes()[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1]);
    m.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims =
        serde_json::from_slice(&B64.decode(payload).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    const KEY: &[u8] = b"test-secret";

    fn user() -> UserId {
        UserId::new(42).expect("nonzero")
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let t = issue(KEY, user(), "ann", 1_000, 60);
        let c = verify(KEY, &t, 1_059).expect("valid");
        assert_eq!(
            (c.sub, c.name.as_str(), c.iat, c.exp),
            (user(), "ann", 1_000, 1_060)
        );
        assert_eq!(verify(KEY, &t, 1_060), Err(TokenError::Expired));
    }

    #[test]
    fn forged_tampered_and_garbage_tokens_are_refused() {
        let forged = issue(b"other-secret", user(), "ann", 1_000, 60);
        assert_eq!(verify(KEY, &forged, 1_001), Err(TokenError::BadSignature));
        let good = issue(KEY, user(), "ann", 1_000, 60);
        let parts: Vec<&str> = good.split('.').collect();
        let other_payload = B64.encode(r#"{"sub":"u_1","name":"ann","iat":1000,"exp":1060}"#);
        let tampered = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
        assert_eq!(verify(KEY, &tampered, 1_001), Err(TokenError::BadSignature));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(verify(KEY, &none, 1_001), Err(TokenError::Algorithm));
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", "not.a.token"] {
            assert!(verify(KEY, garbage, 1_001).is_err(), "{garbage:?}");
        }
    }

    /// A correctly signed token for a user id no layer can hold exactly (above 2^53 − 1, where
    /// the scripts' Lua numbers would merge two users) is refused, not truncated.
    #[test]
    fn a_sub_beyond_the_id_range_is_refused() {
        let token = sign(
            KEY,
            br#"{"sub":"u_9007199254740993","name":"eve","iat":1000,"exp":1060}"#,
        );
        assert_eq!(verify(KEY, &token, 1_001), Err(TokenError::Malformed));
        let in_range = sign(
            KEY,
            br#"{"sub":"u_9007199254740991","name":"eve","iat":1000,"exp":1060}"#,
        );
        assert!(verify(KEY, &in_range, 1_001).is_ok());
    }

    #[test]
    fn interoperates_with_jsonwebtoken() {
        let ours = issue(KEY, user(), "ann", 1_000, 60);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        let theirs =
            jsonwebtoken::decode::<Claims>(&ours, &DecodingKey::from_secret(KEY), &validation)
                .expect("jsonwebtoken accepts ours");
        assert_eq!(theirs.claims.sub, user());

        let claims = Claims {
            sub: user(),
            name: "bo".into(),
            iat: 5,
            exp: 500,
            nbf: None,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(KEY),
        )
        .expect("signed");
        assert_eq!(verify(KEY, &token, 10), Ok(claims));
    }

    /// An HS256 token with `header` (JSON) over `payload` (JSON), for headers we never write.
    fn with_header(key: &[u8], header: &str, payload: &str) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let mut m = mac(key);
        m.update(input.as_bytes());
        format!("{input}.{}", B64.encode(m.finalize().into_bytes()))
    }

    #[test]
    fn a_token_with_a_crit_header_is_refused() {
        let claims = r#"{"sub":"u_42","name":"ann","iat":1000,"exp":2000}"#;
        let plain = with_header(KEY, HEADER, claims);
        assert!(verify(KEY, &plain, 1_001).is_ok());
        let crit = with_header(KEY, r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#, claims);
        assert_eq!(
            verify(KEY, &crit, 1_001),
            Err(TokenError::UnsupportedCritical)
        );
    }

    #[test]
    fn nbf_is_honoured() {
        let token = sign(
            KEY,
            br#"{"sub":"u_42","name":"ann","iat":1000,"exp":2000,"nbf":1500}"#,
        );
        assert_eq!(verify(KEY, &token, 1_499), Err(TokenError::NotYetValid));
        assert_eq!(verify(KEY, &token, 1_500).map(|c| c.nbf), Ok(Some(1_500)));
    }

    #[test]
    fn secrets_shorter_than_32_bytes_and_the_dev_secret_outside_dev_mode_are_refused() {
        assert_eq!(
            SessionSecret::parse("", false),
            Err(SecretError::TooShort { len: 0 })
        );
        assert_eq!(
            SessionSecret::parse(&"x".repeat(31), false),
            Err(SecretError::TooShort { len: 31 })
        );
        assert!(SessionSecret::parse(&"x".repeat(32), false).is_ok());
        assert!(DEV_SECRET.len() >= MIN_SECRET_BYTES);
        assert_eq!(
            SessionSecret::parse(DEV_SECRET, false),
            Err(SecretError::PublicDevSecret)
        );
        assert!(SessionSecret::parse(DEV_SECRET, true).is_ok());
        assert_eq!(
            format!("{:?}", SessionSecret::parse(DEV_SECRET, true)),
            "Ok(SessionSecret(..))"
        );
    }
}
