//! Rate limits at the edge: one `lua/rate.lua` call per limited request, before the work it
//! guards, so a refused request costs one small script and reads no body.

use likes_core::rate::{ClientNet, RateCall, Scope, Subject, TrustedProxies, Verdict};
use likes_core::scripts;

use crate::EdgeError;
use crate::redis::{Redis, int_at};

/// Counts one hit of `scope` against `subject`'s budget of `per_minute` (0 = no limit); over it
/// is a 429 with `Retry-After`.
pub fn check(
    redis: &Redis,
    scope: Scope,
    subject: Subject,
    per_minute: u64,
) -> Result<(), EdgeError> {
    let Some(call) = RateCall::new(scope, subject, per_minute) else {
        return Ok(());
    };
    let reply = redis.eval_owned(&scripts::RATE, call.keys().into_iter(), call.args())?;
    match call.verdict(int_at(&reply, 0)?, int_at(&reply, 1)?) {
        Verdict::Allowed => Ok(()),
        Verdict::Limited {
            retry_after_secs,
            detail,
        } => Err(EdgeError::TooManyRequests {
            detail,
            retry_after_secs,
        }),
    }
}

/// The client's network from Spin's `spin-client-addr` header, or from `X-Forwarded-For`
/// (`forwarded_for`: every value, in order) when that address is one of the `trusted_proxies`.
/// Every Spin trigger sets `spin-client-addr`, so a request without one (or with one that is no
/// address) is refused rather than unlimited.
pub fn client(
    spin_client_addr: Option<&[u8]>,
    forwarded_for: &[&[u8]],
) -> Result<ClientNet, EdgeError> {
    let trusted = TrustedProxies::parse(&crate::optional_var("trusted_proxies")?)
        .map_err(|e| EdgeError::Internal(anyhow::anyhow!("trusted_proxies: {e}")))?;
    let hops = forwarded_for
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok());
    spin_client_addr
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|peer| ClientNet::resolve(peer, hops, &trusted))
        .ok_or_else(|| {
            EdgeError::Internal(anyhow::anyhow!(
                "no usable spin-client-addr header: {spin_client_addr:?}"
            ))
        })
}
