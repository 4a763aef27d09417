//! Session tokens (`likes_core::session`): tokens issued for arbitrary users, names, clocks and
//! keys; tokens signed correctly over arbitrary headers and claims; arbitrary strings.
//!
//! Properties: a token signed with key K verifies with K until it expires and with no other
//! key; changing any byte of it makes it fail; a correctly signed token is accepted exactly when
//! its header says HS256 with no `crit`, its claims parse and it is within `nbf`..`exp` (an
//! independent oracle), and then yields exactly those claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use likes_core::UserId;
use likes_core::session::{self, Claims, TokenError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let key = input.prefixed();
    let other = input.prefixed();
    let now = input.u64();
    let mode = input.u8();
    let distinct = !equivalent_keys(key, other);
    match mode % 3 {
        0 => issued(key, other, distinct, now, input),
        1 => signed(key, other, distinct, now, input),
        _ => {
            let token = String::from_utf8_lossy(input.rest());
            if session::verify(key, &token, now).is_ok() && distinct {
                assert!(session::verify(other, &token, now).is_err(), "{token}");
            }
        }
    }
}

fn issued(key: &[u8], other: &[u8], distinct: bool, now: u64, mut input: Input<'_>) {
    let user = UserId::new(input.u64() % UserId::MAX + 1).expect("in range");
    let ttl = input.u64() >> (input.u8() % 64);
    let flip = usize::from(input.u8()) | usize::from(input.u8()) << 8;
    let name = String::from_utf8_lossy(input.rest());
    let token = session::issue(key, user, &name, now, ttl);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{token}"
    );
    let exp = now.saturating_add(ttl);
    let verified = session::verify(key, &token, now);
    if exp > now {
        let claims = Claims {
            sub: user,
            name: name.clone().into_owned(),
            iat: now,
            exp,
            nbf: None,
        };
        assert_eq!(verified, Ok(claims.clone()));
        assert_eq!(session::verify(key, &token, exp - 1), Ok(claims));
    } else {
        assert_eq!(verified, Err(TokenError::Expired));
    }
    assert_eq!(session::verify(key, &token, exp), Err(TokenError::Expired));
    if distinct {
        assert_eq!(
            session::verify(other, &token, now),
            Err(TokenError::BadSignature)
        );
    }
    // Base64url without padding is canonical here, so every other string fails.
    let mut tampered = token.into_bytes();
    let at = flip % tampered.len();
    tampered[at] = match tampered[at] {
        b'A' => b'B',
        b'.' => b'x',
        _ => b'A',
    };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    assert!(
        session::verify(key, &tampered, now.min(exp.saturating_sub(1))).is_err(),
        "{tampered} verified after changing byte {at}"
    );
}

/// A token over an arbitrary header and payload, signed with `key` as a real issuer would.
fn signed(key: &[u8], other: &[u8], distinct: bool, now: u64, mut input: Input<'_>) {
    let header = input.prefixed();
    let payload = input.rest();
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        B64.encode(mac.finalize().into_bytes())
    );

    #[derive(Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        crit: Option<serde_json::Value>,
    }
    let header_ok = match serde_json::from_slice::<Header>(header) {
        Err(_) => Err(TokenError::Malformed),
        Ok(h) if h.alg != "HS256" => Err(TokenError::Algorithm),
        Ok(h) if h.crit.is_some() => Err(TokenError::UnsupportedCritical),
        Ok(_) => Ok(()),
    };
    let expected =
        header_ok
            .clone()
            .and_then(|()| match serde_json::from_slice::<Claims>(payload) {
                Err(_) => Err(TokenError::Malformed),
                Ok(c) if c.exp <= now => Err(TokenError::Expired),
                Ok(c) if c.nbf.is_some_and(|nbf| nbf > now) => Err(TokenError::NotYetValid),
                Ok(c) => Ok(c),
            });
    assert_eq!(session::verify(key, &token, now), expected, "{token}");
    // The header is judged before the signature; past it, only the key decides.
    if distinct && header_ok.is_ok() {
        assert_eq!(
            session::verify(other, &token, now),
            Err(TokenError::BadSignature)
        );
    }
}

/// HMAC pads keys up to the SHA-256 block with zeros and hashes longer ones, so `k` and `k\0`
/// (or a long key and its digest) are the same key; only distinct keys must refuse each other.
fn equivalent_keys(a: &[u8], b: &[u8]) -> bool {
    fn normal(k: &[u8]) -> Vec<u8> {
        let mut k = if k.len() > 64 {
            Sha256::digest(k).to_vec()
        } else {
            k.to_vec()
        };
        while k.last() == Some(&0) {
            k.pop();
        }
        k
    }
    normal(a) == normal(b)
}
