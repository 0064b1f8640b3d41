//! Each tenant's request rate, checked at the edge with its key before any
//! body is read: a tenant sending more than its rate is answered 429 for the
//! cost of a key lookup, not of a decision, so a flood from one tenant's
//! keys leaves the others their share of the machine.

use std::num::NonZeroU32;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use moment_core::model::Name;

/// Requests per second each tenant may send to this replica, with a burst
/// of one second's worth; unlimited when built from 0.
pub struct TenantRate {
    limiter: Option<(DefaultKeyedRateLimiter<Name>, NonZeroU32)>,
    clock: DefaultClock,
}

impl TenantRate {
    /// A rate of `per_second` requests per tenant; 0 means unlimited.
    pub fn new(per_second: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_second)
                .map(|rate| (RateLimiter::keyed(Quota::per_second(rate)), rate)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `tenant`'s rate, or refuses with 429 and the
    /// seconds until the next one is allowed.
    pub fn check(&self, tenant: &Name) -> Result<(), ApiError> {
        let Some((limiter, rate)) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(tenant).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this tenant is over its {rate} requests per second on this server \
                     (--tenant-rate-limit); retry after the Retry-After header's seconds"
                ),
            )
            .retry_after(wait.as_secs() + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_tenant_has_its_own_rate() {
        let rate = TenantRate::new(3);
        let (a, b) = (Name::parse("a").unwrap(), Name::parse("b").unwrap());
        for _ in 0..3 {
            assert!(rate.check(&a).is_ok());
        }
        let refused = rate.check(&a).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(rate.check(&b).is_ok(), "another tenant is not held back");
    }

    #[test]
    fn zero_is_unlimited() {
        let rate = TenantRate::new(0);
        let a = Name::parse("a").unwrap();
        assert!((0..10_000).all(|_| rate.check(&a).is_ok()));
    }
}
