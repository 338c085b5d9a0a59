//! Brute-force protection for sign-in and registration.
//!
//! Two limits, both token buckets from `governor`: per client IP (a `tower_governor` layer on the
//! auth routes) and per account (checked in the login handler, keyed by the lower-cased email, so
//! one account cannot be guessed at from many addresses). Both answer 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sightline_config::RateLimitSettings;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorLayer, governor::GovernorConfig};

use crate::error::ApiError;

/// Keys tracked before stale ones are dropped, bounding memory under a spray of emails.
const MAX_TRACKED_ACCOUNTS: usize = 10_000;

fn quota(burst: u32, period_ms: u64) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_millis(period_ms.max(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Limits attempts per account.
#[derive(Clone)]
pub struct AccountLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl AccountLimiter {
    /// A limiter with the configured per-account quota.
    pub fn new(settings: &RateLimitSettings) -> AccountLimiter {
        AccountLimiter {
            limiter: Arc::new(RateLimiter::keyed(quota(
                settings.per_account_burst,
                settings.per_account_period_ms,
            ))),
        }
    }

    /// Counts one attempt for `account`; an error once its bucket is empty.
    pub fn check(&self, account: &str) -> Result<(), ApiError> {
        if self.limiter.len() > MAX_TRACKED_ACCOUNTS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&account.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                ApiError::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                }
            })
    }
}

/// The per-IP layer type.
pub type IpLimitLayer =
    GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware<governor::clock::QuantaInstant>, Body>;

/// A per-client-IP limit layer; needs the server to provide `ConnectInfo<SocketAddr>`.
pub fn per_ip_layer(settings: &RateLimitSettings) -> IpLimitLayer {
    let config: GovernorConfig<PeerIpKeyExtractor, _> = GovernorConfigBuilder::default()
        .per_millisecond(settings.per_ip_period_ms.max(1))
        .burst_size(settings.per_ip_burst.max(1))
        .finish()
        .unwrap_or_default();
    GovernorLayer::new(config).error_handler(|err| {
        let api_error = match err {
            GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited {
                retry_after_secs: wait_time.max(1),
            },
            GovernorError::UnableToExtractKey => {
                ApiError::Internal("rate limiter has no client address".into())
            }
            GovernorError::Other { msg, .. } => {
                ApiError::Internal(format!("rate limiter: {}", msg.unwrap_or_default()))
            }
        };
        api_error.into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limit_applies_per_key() {
        let limiter = AccountLimiter::new(&RateLimitSettings {
            per_ip_burst: 1,
            per_ip_period_ms: 1000,
            per_account_burst: 2,
            per_account_period_ms: 60_000,
        });
        assert!(limiter.check("a@example.com").is_ok());
        assert!(limiter.check("a@example.com").is_ok());
        match limiter.check("a@example.com") {
            Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(limiter.check("b@example.com").is_ok());
    }
}
