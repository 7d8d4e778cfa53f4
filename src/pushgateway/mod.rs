//! The pushgateway input: the Prometheus Pushgateway's API in one place.
//! [`routes`] serves it over `crate::http`; [`grouping`] reads the grouping
//! key from a push's URL, [`body`] decodes and parses its body, [`limits`]
//! holds it to the push limits, and
//! [`push`] stores and forwards it (see there for where it differs from
//! the Pushgateway and from DataKit); [`export`] sends the whole store to
//! the sinks that ask for it every `export_interval`; [`status_page`] is the HTML page at
//! `P/` and `P/status`; [`guard`] applies the rate limit and
//! credentials to each route class.

pub mod body;
pub mod export;
pub mod grouping;
pub mod guard;
pub mod limits;
pub mod push;
pub mod routes;
pub mod status_page;

pub use push::PushgatewayInput;
pub use routes::Api;
