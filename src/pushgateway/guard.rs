//! The door of the API: which class each route is in, and for each
//! request, its rate limit and then its credentials.
//!
//! Order matters: the rate limit comes first, so that a flood of wrong
//! passwords is refused before it can cost a bcrypt check each. A refused
//! request changes nothing; its body, if any, is read and dropped (up to
//! `DRAIN_MAX`) so that the reply is not lost to a connection reset.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Cidr, RouteClass};
use crate::http::auth::{Authenticator, Verdict};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::rate_limit::RateLimiter;
use crate::http::reply::{error_reply, Reply};
use crate::http::Request;
use crate::metrics::Metrics;

/// Body bytes read and dropped from a refused request.
const DRAIN_MAX: u64 = 1 << 20;

/// The class of a path (after the prefix); None for the probes, which are
/// always open.
pub fn class_of(rest: &str, is_push: bool) -> Option<RouteClass> {
    if is_push {
        return Some(RouteClass::Push);
    }
    match rest {
        "/-/healthy" | "/-/ready" => None,
        "/api/v1/admin/wipe" | "/-/quit" | "/status/delete" | "/status/wipe" => {
            Some(RouteClass::Admin)
        }
        _ => Some(RouteClass::Read),
    }
}

/// Rate limits and credentials, as configured.
pub struct Guard {
    pub auth: Option<Authenticator>,
    /// The classes that need credentials (when `auth` is set).
    pub auth_routes: Vec<RouteClass>,
    pub limiter: RateLimiter,
    pub trusted_proxies: Vec<Cidr>,
    pub metrics: Arc<Metrics>,
}

impl Guard {
    /// A guard that lets everything through.
    pub fn open(metrics: Arc<Metrics>) -> Guard {
        Guard {
            auth: None,
            auth_routes: Vec::new(),
            limiter: RateLimiter::new(None, None),
            trusted_proxies: Vec::new(),
            metrics,
        }
    }

    /// The client's address: the peer's, or, from a trusted proxy, the
    /// last address in `X-Forwarded-For` that is not itself a trusted
    /// proxy (earlier entries are the client's own word). None on the
    /// Unix socket.
    pub fn client(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.peer?.ip();
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted(*ip))
                .unwrap_or(peer),
        )
    }

    /// Lets a request of `class` in, or gives the reply that refuses it.
    pub async fn admit(&self, class: RouteClass, req: &mut Request) -> Result<(), Reply> {
        if self.limiter.is_on() {
            if let Err(wait) = self.limiter.check(self.client(req), class as u8) {
                self.metrics
                    .http_rate_limited
                    .with(&[class.as_str()])
                    .add(1.0);
                let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
                return Err(self
                    .refuse(
                        req,
                        ApiError::new(
                            ErrorCode::RateLimited,
                            format!(
                                "too many {} requests from this client; retry in {secs} s",
                                class.as_str()
                            ),
                        )
                        .retry_after(secs),
                    )
                    .await);
            }
        }
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if !self.auth_routes.contains(&class) {
            return Ok(());
        }
        match auth.check(req.header("authorization")).await {
            Verdict::Ok => Ok(()),
            Verdict::Busy => Err(self
                .refuse(
                    req,
                    ApiError::new(
                        ErrorCode::AuthBusy,
                        "too many password checks at once; retry shortly",
                    )
                    .retry_after(1),
                )
                .await),
            verdict => {
                self.metrics
                    .http_unauthorized
                    .with(&[class.as_str()])
                    .add(1.0);
                let message = if verdict == Verdict::Missing {
                    format!("{} requests need credentials", class.as_str())
                } else {
                    "the credentials are not valid".to_string()
                };
                let mut reply = self
                    .refuse(req, ApiError::new(ErrorCode::Unauthorized, message))
                    .await;
                for challenge in auth.challenges() {
                    reply
                        .headers_mut()
                        .append("WWW-Authenticate", challenge.parse().unwrap());
                }
                Err(reply)
            }
        }
    }

    async fn refuse(&self, req: &mut Request, e: ApiError) -> Reply {
        crate::http::body::discard_body(&mut req.body, DRAIN_MAX).await;
        error_reply(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class_of("/metrics/job/x", true), Some(RouteClass::Push));
        assert_eq!(class_of("/-/healthy", false), None);
        assert_eq!(class_of("/-/ready", false), None);
        assert_eq!(class_of("/-/quit", false), Some(RouteClass::Admin));
        assert_eq!(
            class_of("/api/v1/admin/wipe", false),
            Some(RouteClass::Admin)
        );
        assert_eq!(class_of("/status/wipe", false), Some(RouteClass::Admin));
        assert_eq!(class_of("/metrics", false), Some(RouteClass::Read));
        assert_eq!(class_of("/api/v1/status", false), Some(RouteClass::Read));
        assert_eq!(class_of("/", false), Some(RouteClass::Read));
        assert_eq!(class_of("/nope", false), Some(RouteClass::Read));
    }
}
