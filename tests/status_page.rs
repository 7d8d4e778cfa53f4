//! The status page without a browser: what its HTML holds for groups
//! that were pushed and refused, its filter and pages as plain GET forms
//! (the page without JavaScript), and its delete forms' guards (the token,
//! the origin, the admin API). tests/peer_status_page.rs drives it in
//! Chromium.

mod common;

use common::*;

const TEXT: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4");

fn agent(admin: bool) -> Agent {
    Agent::start(&AgentConf {
        pushgateway: format!("enable_admin_api = {admin}\n"),
        ..AgentConf::default()
    })
}

fn page(agent: &Agent, path: &str) -> String {
    let r = agent.request("GET", path, &[], b"");
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    r.text()
}

/// The `data-labels` of the group rows, in page order.
fn rows(html: &str) -> Vec<String> {
    html.split("<tr class=\"group")
        .skip(1)
        .map(|row| {
            let at = row.find("data-labels=\"").expect("data-labels") + 13;
            row[at..].split('"').next().unwrap().replace("&quot;", "\"")
        })
        .collect()
}

fn token(html: &str) -> String {
    let at = html.find("name=\"token\" value=\"").expect("a token") + 20;
    html[at..at + 32].to_string()
}

#[test]
fn groups_failures_filter_and_pages() {
    let agent = agent(false);
    for i in 0..120 {
        let body = format!("# TYPE g gauge\ng {i}\n");
        let r = agent.request(
            "PUT",
            &format!("/metrics/job/j{i:03}"),
            &[TEXT],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    // A refused push: the group's row is marked failed.
    let r = agent.request(
        "PUT",
        "/metrics/job/j005",
        &[TEXT],
        b"# TYPE g counter\ng 1\n",
    );
    assert_eq!(r.status, 400);

    let html = page(&agent, "/status");
    assert!(html.contains("120 groups · 120 series · ready"), "{html}");
    assert!(
        html.contains("120 groups (of at most 100000, max_groups), 120 series (of at most 1000000, max_series)"),
        "{html}"
    );
    let first = rows(&html);
    assert_eq!(first.len(), 100, "one page");
    assert_eq!(first[0], "job=\"j000\"");
    assert!(html.contains("<tr class=\"group failed\" data-labels=\"job=&quot;j005&quot;\""));
    assert_eq!(html.matches("group failed").count(), 1);
    assert!(html.contains("rel=\"next\""), "a next page");
    assert!(
        !html.contains("Delete"),
        "no delete buttons without the admin API"
    );
    // The group's metrics, in its <details>.
    assert!(html
        .contains("<pre># TYPE g gauge\ng{instance=&quot;&quot;,job=&quot;j007&quot;} 7\n</pre>"));
    let second = rows(&page(&agent, "/status?page=2"));
    assert_eq!(second.len(), 20);
    assert_eq!(second[0], "job=\"j100\"");
    // The filter as a plain form, over every page.
    assert_eq!(
        rows(&page(&agent, "/status?filter=j11")),
        [
            "job=\"j110\"",
            "job=\"j111\"",
            "job=\"j112\"",
            "job=\"j113\"",
            "job=\"j114\"",
            "job=\"j115\"",
            "job=\"j116\"",
            "job=\"j117\"",
            "job=\"j118\"",
            "job=\"j119\""
        ]
    );
    // The root serves it too.
    assert_eq!(rows(&page(&agent, "/")).len(), 100);
    assert_eq!(agent.request("POST", "/status", &[], b"").status, 405);
}

#[test]
fn delete_forms_need_the_token_and_the_admin_api() {
    let off = agent(false);
    assert_eq!(off.request("POST", "/status/delete", &[], b"").status, 404);

    let on = agent(true);
    for job in ["keep", "drop"] {
        let r = on.request("PUT", &format!("/metrics/job/{job}"), &[TEXT], b"m 1\n");
        assert_eq!(r.status, 200);
    }
    let html = page(&on, "/status");
    let token = token(&html);
    let form = |group: &str, token: &str| format!("group={}&token={token}", percent_encode(group));
    let drop_path = "/metrics/job@base64/ZHJvcA";
    assert!(html.contains(&format!("value=\"{drop_path}\"")), "{html}");
    let form_ct = ("Content-Type", "application/x-www-form-urlencoded");

    // Without the token, with a wrong one, or from another site: 403.
    for (body, headers) in [
        (
            format!("group={}", percent_encode(drop_path)),
            vec![form_ct],
        ),
        (
            form(drop_path, "0123456789abcdef0123456789abcdef"),
            vec![form_ct],
        ),
        (
            form(drop_path, &token),
            vec![form_ct, ("Origin", "http://evil.example")],
        ),
        (
            form(drop_path, &token),
            vec![form_ct, ("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let r = on.request("POST", "/status/delete", &headers, body.as_bytes());
        assert_eq!(r.status, 403, "{body} {headers:?}");
        assert!(
            r.text().contains("\"error_code\":\"forbidden\""),
            "{}",
            r.text()
        );
    }
    assert!(on
        .request("GET", "/metrics", &[], b"")
        .text()
        .contains("job=\"drop\""));

    // With it: gone, and back to the page.
    let r = on.request(
        "POST",
        "/status/delete",
        &[form_ct],
        form(drop_path, &token).as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/status"));
    let metrics = on.request("GET", "/metrics", &[], b"").text();
    assert!(
        !metrics.contains("job=\"drop\"") && metrics.contains("job=\"keep\""),
        "{metrics}"
    );
    // Delete all.
    let r = on.request(
        "POST",
        "/status/wipe",
        &[form_ct],
        format!("token={token}").as_bytes(),
    );
    assert_eq!(r.status, 303);
    assert!(rows(&page(&on, "/status")).is_empty());
}
