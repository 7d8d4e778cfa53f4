//! `[http_api.auth]`: who may use which routes. Credentials are basic-auth
//! users with bcrypt hashes (as in Prometheus' web config) and bearer
//! tokens from a file; `routes` names the route classes that need them.
//!
//! Imports the config folder's syntax layer only (`keys`, `syntax`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::{Key, Section, Show};
use super::syntax::{self, Choice};

/// A class of routes, for auth and the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    /// PUT, POST and DELETE of `P/metrics/job/...`.
    Push,
    /// Wipe and quit, and the status page's forms.
    Admin,
    /// `GET P/metrics`, `P/api/v1/*` and the status page.
    Read,
}

impl Choice for RouteClass {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("push", RouteClass::Push),
        ("admin", RouteClass::Admin),
        ("read", RouteClass::Read),
    ];
}

impl RouteClass {
    /// The class as config and self metrics name it: "push", "admin", "read".
    pub fn as_str(self) -> &'static str {
        self.word()
    }
}

/// `[http_api.auth]`: credentials, and the routes that need them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// User names to bcrypt hashes (`htpasswd -nBC 10 user`), checked
    /// against HTTP basic auth.
    /// Default: `unset`. ENV: `ENV_HTTP_AUTH_BASIC_AUTH_USERS`.
    #[serde(
        with = "syntax::bcrypt_users",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub basic_auth_users: BTreeMap<String, String>,
    /// A file of bearer tokens, one per line (blank lines and `#` comments
    /// skipped); reread when it changes.
    /// Default: `unset`. ENV: `ENV_HTTP_AUTH_BEARER_TOKENS_FILE`.
    #[serde(with = "syntax::opt_text", skip_serializing_if = "Option::is_none")]
    pub bearer_tokens_file: Option<String>,
    /// The route classes that need credentials once any are configured:
    /// "push", "admin", "read". `/-/healthy` and `/-/ready` stay open.
    /// Default: `["push", "admin", "read"]`. ENV: `ENV_HTTP_AUTH_ROUTES`.
    #[serde(with = "syntax::choices")]
    pub routes: Vec<RouteClass>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            basic_auth_users: BTreeMap::new(),
            bearer_tokens_file: None,
            routes: vec![RouteClass::Push, RouteClass::Admin, RouteClass::Read],
        }
    }
}

impl AuthConfig {
    /// Whether any credential is configured (and so auth is on).
    pub fn is_on(&self) -> bool {
        !self.basic_auth_users.is_empty() || self.bearer_tokens_file.is_some()
    }

    /// Whether requests of `class` need credentials.
    pub fn guards(&self, class: RouteClass) -> bool {
        self.is_on() && self.routes.contains(&class)
    }
}

impl Section for AuthConfig {
    const PATH: &'static str = "http_api.auth";
    const ENV_PREFIX: Option<&'static str> = Some("ENV_HTTP_AUTH_");
    const KEYS: &'static [Key] = &[
        Key::new(
            "basic_auth_users",
            "user names to bcrypt hashes for basic auth; ENV as user:hash,user:hash",
        )
        .pairs()
        .show(Show::Secret),
        Key::new(
            "bearer_tokens_file",
            "file of bearer tokens, one per line, reread when it changes",
        ),
        Key::new(
            "routes",
            "route classes that need credentials: push, admin, read",
        )
        .list(),
    ];

    fn applies(&self, name: &str) -> bool {
        name != "routes" || self.is_on()
    }
}
