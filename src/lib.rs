//! pushkit: a DataKit-style collector agent that takes Prometheus
//! Pushgateway pushes and forwards them as points.
//!
//! The data path runs one way: `http` (routes, errors) → `pushgateway`
//! (grouping key, body decoding) → `expfmt` (parsing) → `convert`
//! (measurement mapping, written as `lineproto` lines or built as `point`s,
//! whichever the sinks take) → `sink` (queues, delivery). `config` loads
//! what `agent` assembles.

pub mod agent;
pub mod config;
pub mod convert;
pub mod durable;
pub mod expfmt;
pub mod http;
pub mod lineproto;
pub mod metrics;
pub mod model;
pub mod pushgateway;
pub mod sink;
pub mod store;
