//! The agent assembled: sinks, inputs and the HTTP API, from a loaded
//! configuration, until a shutdown signal.

use crate::config::Config;
use crate::convert::{Mapping, Naming};
use crate::http::{self, Api};
use crate::metrics::Metrics;
use crate::pushgateway::handler::PushgatewayInput;
use crate::sink::{stdout::LineOutput, SinkSet};
use std::sync::Arc;

/// Runs the agent on `listener` until `shutdown` resolves; then stops
/// accepting, flushes the sinks within `[io] shutdown_timeout` and returns
/// the number of points not delivered.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    lines: LineOutput,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<usize, String> {
    let metrics = Arc::new(Metrics::default());
    let sinks = SinkSet::start(&config.sinks, &config.io, lines, metrics.clone())?;
    let (prefix, pushgateway) = match &config.pushgateway {
        Some(pg) => (
            pg.route_prefix.clone(),
            Some(Arc::new(PushgatewayInput {
                mapping: Mapping {
                    naming: Naming {
                        measurement_name: pg.measurement_name.clone(),
                        job_as_measurement: pg.job_as_measurement,
                        keep_exist_metric_name: pg.keep_exist_metric_name,
                    },
                    honor_timestamps: pg.honor_timestamps,
                },
                max_decompressed_size: config.http_api.max_decompressed_size,
                sinks: sinks.clone(),
                metrics: metrics.clone(),
            })),
        ),
        None => (String::new(), None),
    };
    let api = Arc::new(Api {
        prefix,
        pushgateway,
        metrics,
        max_body_size: config.http_api.max_body_size,
    });
    http::serve(listener, api, shutdown).await;
    tracing::info!("stopped accepting; flushing sinks");
    Ok(sinks.shutdown(config.io.shutdown_timeout).await)
}
