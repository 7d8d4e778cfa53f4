//! The group store over HTTP, in process: what PUT, POST and DELETE leave
//! at `GET /metrics`, the consistency check's 400 (nothing stored, nothing
//! forwarded, the failure time set), content negotiation, the JSON API,
//! the admin and lifecycle routes, and `store = false`.

use pushkit::config::{Config, PushgatewayConfig};
use pushkit::expfmt::delimited::parse_delimited;
use std::io::Read;
use std::time::Duration;

mod inprocess;
use inprocess::start;

fn config(pg: PushgatewayConfig) -> Config {
    Config {
        pushgateway: Some(pg),
        ..Config::default()
    }
}

/// The exposition's sample lines for pushed series (no self metrics).
fn pushed_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("pushkit_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn put_post_delete_as_the_pushgateway() {
    let agent = start(config(PushgatewayConfig::default())).await;
    assert_eq!(
        agent
            .put_text("/metrics/job/j/instance/i", "a 1\nb 2\n")
            .await
            .status,
        200
    );
    let post = agent
        .send(
            "POST",
            "/metrics/job/j/instance/i",
            &[],
            b"b{x=\"1\"} 3\nc 4\n".to_vec(),
        )
        .await;
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(agent.put_text("/metrics/job/j", "a 5\n").await.status, 200);
    let lines = pushed_lines(&agent.get("/metrics").await.body);
    for want in [
        "a{instance=\"i\",job=\"j\"} 1",
        "b{instance=\"i\",job=\"j\",x=\"1\"} 3",
        "c{instance=\"i\",job=\"j\"} 4",
        "a{instance=\"\",job=\"j\"} 5",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want} missing from {lines:#?}"
        );
    }
    assert!(
        !lines.iter().any(|l| l == "b{instance=\"i\",job=\"j\"} 2"),
        "POST replaced b"
    );
    // DELETE of {job=j} leaves {job=j,instance=i}.
    let del = agent
        .send("DELETE", "/metrics/job/j", &[], Vec::new())
        .await;
    assert_eq!(del.status, 202);
    let lines = pushed_lines(&agent.get("/metrics").await.body);
    assert!(
        !lines.iter().any(|l| l.contains("instance=\"\"")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l == "a{instance=\"i\",job=\"j\"} 1"));
    // Deleting an absent group is fine too.
    let del = agent
        .send("DELETE", "/metrics/job/nope", &[], Vec::new())
        .await;
    assert_eq!(del.status, 202);
    agent.stop().await.unwrap();
}

/// `%2F` inside a path segment is a slash in that value (RFC 3986), for
/// the job and for label values, plain or `@base64`-named; a PUT and its
/// DELETE reach the same group.
#[tokio::test]
async fn an_encoded_slash_stays_inside_its_value() {
    let agent = start(config(PushgatewayConfig::default())).await;
    let path = "/metrics/job/batch%2Fnightly/instance/a%2Fb/path/%2Ftmp%2F";
    assert_eq!(agent.put_text(path, "up 1\n").await.status, 200);
    let lines = pushed_lines(&agent.get("/metrics").await.body);
    let want = "up{instance=\"a/b\",job=\"batch/nightly\",path=\"/tmp/\"} 1";
    assert!(
        lines.iter().any(|l| l == want),
        "{want} missing from {lines:#?}"
    );
    let r = agent.send("DELETE", path, &[], Vec::new()).await;
    assert_eq!(r.status, 202);
    let lines = pushed_lines(&agent.get("/metrics").await.body);
    assert!(!lines.iter().any(|l| l.starts_with("up{")), "{lines:#?}");
    // An odd count is still odd, and a malformed escape still a 400.
    let r = agent.put_text("/metrics/job/j/instance", "up 1\n").await;
    assert_eq!(r.status, 400);
    let r = agent
        .put_text("/metrics/job/j/instance/a%zz", "up 1\n")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("invalidPath"), "{}", r.body);
}

/// An empty label is an absent one: `m{a=""}` and `m` are one series,
/// so a push holding both is refused as a duplicate, by the store's
/// check, and nothing of it is stored or forwarded.
#[tokio::test]
async fn an_empty_label_is_an_absent_one() {
    let agent = start(config(PushgatewayConfig::default())).await;
    for body in [
        "m{a=\"\"} 1\nm 2\n",
        "m 2\nm{a=\"\"} 1\n",
        "m{a=\"\",b=\"x\"} 1\nm{b=\"x\",c=\"\"} 2\n",
    ] {
        let r = agent.put_text("/metrics/job/j", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains("appears twice"), "{body}: {}", r.body);
    }
    assert_eq!(agent.output(), "", "nothing forwarded");
    let lines = pushed_lines(&agent.get("/metrics").await.body);
    assert!(!lines.iter().any(|l| l.starts_with("m")), "{lines:#?}");
    // Alone, either is fine, and they are the same series.
    assert_eq!(
        agent
            .put_text("/metrics/job/j", "m{a=\"\"} 1\n")
            .await
            .status,
        200
    );
    assert_eq!(agent.put_text("/metrics/job/k", "m 2\n").await.status, 200);

    // A forwarder (no store) refuses the push alike.
    let forwarder = start(config(PushgatewayConfig {
        store: false,
        ..PushgatewayConfig::default()
    }))
    .await;
    let r = forwarder
        .put_text("/metrics/job/j", "m{a=\"\"} 1\nm 2\n")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("inconsistentMetrics"), "{}", r.body);
    assert_eq!(forwarder.output(), "", "nothing forwarded");
    assert_eq!(
        forwarder
            .put_text("/metrics/job/j", "m{a=\"\"} 1\nm{a=\"x\"} 2\n")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_inconsistent_push_is_refused_whole() {
    let agent = start(config(PushgatewayConfig::default())).await;
    let ok = agent
        .put_text("/metrics/job/a", "# TYPE m counter\nm 1\n")
        .await;
    assert_eq!(ok.status, 200);
    agent.take_output();
    let refused = agent
        .put_text(
            "/metrics/job/b",
            "# TYPE m gauge\nm 2\n# TYPE other gauge\nother 3\n",
        )
        .await;
    let msg = refused.assert_error(400, "inconsistentMetrics", "type conflict");
    assert!(msg.contains("\"m\""), "{msg}");
    let text = agent.get("/metrics").await.body;
    let lines = pushed_lines(&text);
    assert!(
        !lines.iter().any(|l| l.starts_with("other")),
        "nothing stored: {lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l == "push_time_seconds{instance=\"\",job=\"b\"} 0"));
    assert!(lines.iter().any(|l| l
        .starts_with("push_failure_time_seconds{instance=\"\",job=\"b\"} ")
        && !l.ends_with(" 0")));
    // Nothing of it was forwarded.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = agent.stop().await;
    assert_eq!(out, Ok(0));
}

#[tokio::test]
async fn same_series_from_another_group_is_refused() {
    let agent = start(config(PushgatewayConfig::default())).await;
    assert_eq!(
        agent
            .put_text("/metrics/job/j/instance/i1", "m 1\n")
            .await
            .status,
        200
    );
    let r = agent
        .put_text("/metrics/job/j", "m{instance=\"i1\"} 2\n")
        .await;
    r.assert_error(400, "inconsistentMetrics", "series of another group");
    let r = agent
        .put_text(
            "/metrics/job/k",
            "# TYPE s summary\ns_sum 1\ns_count 1\ns_count{x=\"1\"} 2\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = agent.put_text("/metrics/job/l", "s_count 1\n").await;
    r.assert_error(400, "inconsistentMetrics", "_count collision");
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn exposition_negotiates_protobuf_and_gzip() {
    let agent = start(config(PushgatewayConfig::default())).await;
    agent
        .put_text(
            "/metrics/job/j",
            "# HELP m Help.\n# TYPE m counter\nm{a=\"1\"} 7\n",
        )
        .await;
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    let r = agent
        .client
        .get(format!("{}/metrics", agent.base))
        .header("Accept", accept)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.contains("encoding=delimited"), "{ct}");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap();
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut body)
        .unwrap();
    let families = parse_delimited(&body).unwrap();
    let m = families.iter().find(|f| f.name == "m").expect("m exposed");
    assert_eq!(m.help.as_deref(), Some("Help."));
    assert_eq!(m.metrics.len(), 1);
    assert!(families.iter().any(|f| f.name == "push_time_seconds"));
    // Default: text 0.0.4, uncompressed.
    let r = agent.get("/metrics").await;
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(r.headers.get("content-encoding").is_none());
    assert!(
        r.body.contains("m{a=\"1\",instance=\"\",job=\"j\"} 7\n"),
        "{}",
        r.body
    );
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn json_api_has_the_pushgateway_shape() {
    let agent = start(config(PushgatewayConfig::default())).await;
    agent
        .put_text(
            "/metrics/job/j/instance/i",
            "# HELP m Help.\n# TYPE m counter\nm{a=\"1\"} 1e6\n",
        )
        .await;
    let r = agent.get("/api/v1/metrics").await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "success");
    let group = &v["data"][0];
    assert_eq!(
        group["labels"],
        serde_json::json!({"job": "j", "instance": "i"})
    );
    assert_eq!(group["last_push_successful"], true);
    assert_eq!(group["m"]["type"], "COUNTER");
    assert_eq!(group["m"]["help"], "Help.");
    assert_eq!(group["m"]["metrics"][0]["value"], "1e+06");
    assert_eq!(group["m"]["metrics"][0]["labels"]["a"], "1");
    assert!(group["m"]["time_stamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(group["push_time_seconds"]["type"], "GAUGE");
    let status: serde_json::Value =
        serde_json::from_str(&agent.get("/api/v1/status").await.body).unwrap();
    let flags = &status["data"]["flags"];
    assert_eq!(flags["inputs.pushgateway.consistency_check"], "true");
    // Every option of the input, the mapping's included, as `pushkit
    // check` writes them.
    assert_eq!(flags["inputs.pushgateway.group_ttl"], "0s");
    assert_eq!(flags["inputs.pushgateway.keep_exist_metric_name"], "true");
    assert_eq!(flags["inputs.pushgateway.honor_timestamps"], "true");
    assert_eq!(flags["inputs.pushgateway.job_as_measurement"], "false");
    assert_eq!(flags["io.flush_interval"], "10s");
    assert_eq!(flags["http_api.max_body_size"], "16MiB");
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn admin_wipe_only_when_enabled() {
    let agent = start(config(PushgatewayConfig::default())).await;
    agent.put_text("/metrics/job/j", "m 1\n").await;
    let r = agent
        .send("PUT", "/api/v1/admin/wipe", &[], Vec::new())
        .await;
    r.assert_error(404, "notFound", "wipe disabled");
    assert!(agent
        .get("/metrics")
        .await
        .body
        .contains("m{instance=\"\",job=\"j\"} 1"));
    agent.stop().await.unwrap();

    let agent = start(config(PushgatewayConfig {
        enable_admin_api: true,
        ..PushgatewayConfig::default()
    }))
    .await;
    agent.put_text("/metrics/job/j", "m 1\n").await;
    let r = agent
        .send("PUT", "/api/v1/admin/wipe", &[], Vec::new())
        .await;
    assert_eq!(r.status, 202);
    let body = agent.get("/metrics").await.body;
    assert!(!body.contains("job=\"j\""), "{body}");
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn quit_only_when_enabled() {
    let agent = start(config(PushgatewayConfig::default())).await;
    let r = agent.send("PUT", "/-/quit", &[], Vec::new()).await;
    r.assert_error(403, "lifecycleDisabled", "quit disabled");
    assert_eq!(agent.get("/-/ready").await.status, 200);
    agent.stop().await.unwrap();

    let mut agent = start(config(PushgatewayConfig {
        enable_lifecycle: true,
        ..PushgatewayConfig::default()
    }))
    .await;
    let r = agent.send("POST", "/-/quit", &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    let handle = &mut agent.handle;
    let result = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the agent stops after /-/quit")
        .unwrap();
    assert_eq!(result.map_err(|e| e.to_string()), Ok(0));
}

#[tokio::test]
async fn without_the_store_it_only_forwards() {
    let agent = start(config(PushgatewayConfig {
        store: false,
        ..PushgatewayConfig::default()
    }))
    .await;
    assert_eq!(
        agent
            .put_text("/metrics/job/a", "# TYPE m counter\nm 1\n")
            .await
            .status,
        200
    );
    // No check without a store: the same name as a gauge elsewhere is fine.
    assert_eq!(
        agent
            .put_text("/metrics/job/b", "# TYPE m gauge\nm 1\n")
            .await
            .status,
        200
    );
    assert_eq!(
        agent
            .send("DELETE", "/metrics/job/a", &[], Vec::new())
            .await
            .status,
        202
    );
    let body = agent.get("/metrics").await.body;
    assert!(pushed_lines(&body).is_empty(), "{body}");
    assert!(
        body.contains("pushkit_pushes_total"),
        "own metrics still served"
    );
    agent.stop().await.unwrap();
}
