//! The vocabulary every layer shares, and the ground floor of the module
//! graph: it imports nothing of pushkit, and anything may import it.
//!
//! - [`family`]: metric families and their samples, the one in-memory model
//!   of what a push carries, whichever format it came in;
//! - [`grouping`]: the grouping key that names a group of pushed metrics;
//! - [`native`]: where a native histogram's buckets lie;
//! - [`point`]: a point (measurement, tags, fields, time), what sinks take;
//! - [`names`]: the Prometheus rules for metric and label names;
//! - [`gofloat`]: Go's `%g` float format, which the Pushgateway's outputs use.

pub mod family;
pub mod gofloat;
pub mod grouping;
pub mod names;
pub mod native;
pub mod point;

pub use grouping::GroupingKey;
