//! The pushgateway input: the Prometheus Pushgateway's push API, turning
//! pushes into points (see `handler` for where it differs from the
//! Pushgateway and from DataKit).

pub mod body;
pub mod grouping;
pub mod handler;
