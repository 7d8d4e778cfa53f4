//! pushkit: a DataKit-style collector agent that takes Prometheus
//! Pushgateway pushes and forwards them as points.
//!
//! The data path runs one way: `http` (serving) → `pushgateway` (routes,
//! grouping key, body decoding) → `expfmt` (parsing) → `store` (the last
//! push of every group) and `convert` (measurement mapping, written as
//! `lineproto` lines or built as points, whichever the sinks take) →
//! `sink` (queues, delivery). `config` loads what `agent` assembles.
//!
//! Imports run down the layers only, from `agent` at the top to `model`,
//! `metrics` and `logging` at the bottom; the README's Layout section
//! lists them.

pub mod agent;
pub mod config;
pub mod convert;
pub mod durable;
pub mod expfmt;
pub mod http;
pub mod lineproto;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pushgateway;
pub mod sink;
pub mod store;
