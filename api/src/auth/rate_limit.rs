//! Brute-force protection for sign-in, registration and the other endpoints that take secrets.
//!
//! - **Per client address** (a `tower_governor` layer on those routes): the address comes from
//!   [`ClientIpKeyExtractor`], so behind a trusted proxy each user has their own bucket.
//! - **Per account and client address** (checked in the handler, before the password): one
//!   address guessing at one account is refused with 429 after a burst.
//! - **Per account, from anywhere**: failures slow the account's sign-ins down (an exponential
//!   delay, capped) rather than refusing them, so someone spraying wrong passwords from rotating
//!   addresses cannot lock the owner out; they only make every guess slower.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::IntoResponse;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sightline_config::RateLimitSettings;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::{GovernorLayer, governor::GovernorConfig};

use crate::client_addr::ClientIpKeyExtractor;
use crate::error::ApiError;

/// Keys tracked before stale ones are dropped, bounding memory under a spray of emails.
const MAX_TRACKED_ACCOUNTS: usize = 10_000;
/// Failures an account takes before its sign-ins are slowed down.
const FREE_FAILURES: u32 = 3;
/// The first delay; each further failure doubles it.
const BASE_DELAY: Duration = Duration::from_millis(250);
/// The longest an account's sign-in is ever held.
const MAX_DELAY: Duration = Duration::from_secs(3);
/// Failures older than this are forgotten.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

fn quota(burst: u32, period_ms: u64) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_millis(period_ms.max(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Recent failures of one account.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Limits attempts per (account, client address) and slows an account down after failures.
#[derive(Clone)]
pub struct AccountLimiter {
    attempts: Arc<DefaultKeyedRateLimiter<(String, IpAddr)>>,
    failures: Arc<Mutex<HashMap<String, Failures>>>,
}

impl AccountLimiter {
    /// A limiter with the configured per-account quota (applied per client address).
    pub fn new(settings: &RateLimitSettings) -> AccountLimiter {
        AccountLimiter {
            attempts: Arc::new(RateLimiter::keyed(quota(
                settings.per_account_burst,
                settings.per_account_period_ms,
            ))),
            failures: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one attempt at `account` from `client`; an error once that pair's bucket is empty.
    pub fn check(&self, account: &str, client: IpAddr) -> Result<(), ApiError> {
        if self.attempts.len() > MAX_TRACKED_ACCOUNTS {
            self.attempts.retain_recent();
        }
        self.attempts
            .check_key(&(account.to_owned(), client))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                ApiError::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                }
            })
    }

    /// How long an attempt at `account` is held before its password is checked.
    pub fn delay(&self, account: &str) -> Duration {
        let failures = self.lock();
        let Some(f) = failures.get(account) else {
            return Duration::ZERO;
        };
        if f.last.elapsed() > FAILURE_WINDOW || f.count <= FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (f.count - FREE_FAILURES - 1).min(16);
        BASE_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
    }

    /// Notes a wrong password for `account`.
    pub fn failed(&self, account: &str) {
        let mut failures = self.lock();
        if failures.len() > MAX_TRACKED_ACCOUNTS {
            failures.retain(|_, f| f.last.elapsed() <= FAILURE_WINDOW);
        }
        let now = Instant::now();
        let entry = failures.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if entry.last.elapsed() > FAILURE_WINDOW {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// Forgets `account`'s failures after a correct password.
    pub fn succeeded(&self, account: &str) {
        self.lock().remove(account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The per-IP layer type.
pub type IpLimitLayer =
    GovernorLayer<ClientIpKeyExtractor, NoOpMiddleware<governor::clock::QuantaInstant>, Body>;

/// A per-client-address limit layer; needs the server to provide `ConnectInfo<SocketAddr>`.
pub fn per_ip_layer(settings: &sightline_config::Settings) -> IpLimitLayer {
    let limits = &settings.auth.rate_limit;
    let config: GovernorConfig<ClientIpKeyExtractor, _> = GovernorConfigBuilder::default()
        .key_extractor(ClientIpKeyExtractor::new(&settings.http.trusted_proxies))
        .per_millisecond(limits.per_ip_period_ms.max(1))
        .burst_size(limits.per_ip_burst.max(1))
        .finish()
        // `finish` refuses only a zero period or burst, and both are at least 1 here.
        .expect("period and burst are at least 1");
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

    fn limiter() -> AccountLimiter {
        AccountLimiter::new(&RateLimitSettings {
            per_ip_burst: 1,
            per_ip_period_ms: 1000,
            per_account_burst: 2,
            per_account_period_ms: 60_000,
        })
    }

    #[test]
    fn attempts_are_limited_per_account_and_address() {
        let limiter = limiter();
        let home: IpAddr = [198, 51, 100, 7].into();
        let other: IpAddr = [203, 0, 113, 9].into();
        assert!(limiter.check("a@example.com", home).is_ok());
        assert!(limiter.check("a@example.com", home).is_ok());
        match limiter.check("a@example.com", home) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Someone else's address, or another account, is not held back by it.
        assert!(limiter.check("a@example.com", other).is_ok());
        assert!(limiter.check("b@example.com", home).is_ok());
    }

    #[test]
    fn failures_slow_an_account_down_up_to_a_cap() {
        let limiter = limiter();
        for _ in 0..FREE_FAILURES {
            limiter.failed("a@example.com");
        }
        assert_eq!(limiter.delay("a@example.com"), Duration::ZERO);
        limiter.failed("a@example.com");
        assert_eq!(limiter.delay("a@example.com"), BASE_DELAY);
        limiter.failed("a@example.com");
        assert_eq!(limiter.delay("a@example.com"), BASE_DELAY * 2);
        for _ in 0..100 {
            limiter.failed("a@example.com");
        }
        assert_eq!(limiter.delay("a@example.com"), MAX_DELAY);
        assert_eq!(limiter.delay("b@example.com"), Duration::ZERO);
        limiter.succeeded("a@example.com");
        assert_eq!(limiter.delay("a@example.com"), Duration::ZERO);
    }
}
