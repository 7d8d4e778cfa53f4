//! The status page, `GET P/` and `GET P/status`: one HTML page with no
//! external assets, readable without JavaScript.
//!
//! - **Groups**: each group's labels, last push and last failure (relative
//!   times; a group whose last push failed is highlighted), its families
//!   and series, and its metrics in a `<details>` (the group's own text
//!   exposition). 100 groups a page, sorted by labels, so that 10,000
//!   groups cost one page's rendering; `?filter=` keeps the groups whose
//!   labels contain the text, `?page=` pages.
//! - **Delivery**: each sink's name and redacted URL, queued points,
//!   bytes and oldest age, delivered, retried and dropped counts, and its
//!   last error with its time (from the agent's own metrics).
//! - **Agent**: version, uptime, readiness, groups and series, and the
//!   effective configuration as `pushkit check` prints it (secrets
//!   redacted).
//!
//! With JavaScript the filter applies as one types, and the page refreshes
//! its sections every 10 s, keeping open groups open; without, a
//! `<noscript>` refresh reloads it every 30 s and the filter is a form.
//!
//! With `enable_admin_api`, each group has a delete button and the page a
//! "delete all" button: forms that `POST P/status/delete` and
//! `P/status/wipe`. They change state, so they carry a token only this page
//! shows (random per process; another site cannot read it) and are refused
//! (403) when the browser says the request comes from another origin.

use super::grouping::parse_push_path;
use crate::expfmt::expose::{ExpositionFormat, ExpositionWriter};
use crate::metrics::{self, Metrics};
use crate::model::family::Value;
use crate::model::point::now_ns;
use crate::model::GroupingKey;
use crate::store::{Group, Store};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// Groups shown on one page.
pub const GROUPS_PER_PAGE: usize = 100;

/// A sink as the page shows it.
#[derive(Debug, Clone)]
pub struct SinkRow {
    pub name: String,
    /// With secrets redacted.
    pub url: String,
}

/// What the page shows that does not change while the agent runs.
pub struct StatusPage {
    pub sinks: Vec<SinkRow>,
    /// As `pushkit check` prints it.
    pub config: String,
    pub started: Instant,
    /// The forms' token: 128 random bits from the OS, per process.
    pub token: String,
    /// The store's `max_groups` and `max_series` (0: none).
    pub max_groups: u64,
    pub max_series: u64,
}

/// What one request asks of the page.
#[derive(Debug, Default, Clone)]
pub struct PageQuery {
    pub filter: String,
    /// From 1.
    pub page: usize,
}

impl PageQuery {
    /// From a query string (`filter=...&page=...`); unknown keys and bad
    /// numbers are ignored.
    pub fn parse(query: &str) -> PageQuery {
        let form = parse_form(query);
        PageQuery {
            filter: form.get("filter").cloned().unwrap_or_default(),
            page: form
                .get("page")
                .and_then(|p| p.parse().ok())
                .filter(|&p| p > 0)
                .unwrap_or(1),
        }
    }
}

/// Everything a rendering reads.
pub struct PageInput<'a> {
    pub store: Option<&'a Store>,
    pub metrics: &'a Metrics,
    /// The API's prefix ("" or "/a/b").
    pub prefix: &'a str,
    pub admin: bool,
    /// Why pushes are refused now, if they are (`/-/ready`'s reason).
    pub not_ready: Option<String>,
    pub query: &'a PageQuery,
}

impl StatusPage {
    pub fn new(
        sinks: Vec<SinkRow>,
        config: String,
        max_groups: u64,
        max_series: u64,
    ) -> StatusPage {
        StatusPage {
            sinks,
            config,
            started: Instant::now(),
            token: random_token(),
            max_groups,
            max_series,
        }
    }

    /// The whole page.
    pub fn render(&self, input: &PageInput<'_>) -> String {
        let mut out = String::with_capacity(64 << 10);
        let p = esc(input.prefix);
        let _ = write!(
            out,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>pushkit</title><noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>\
             <style>{STYLE}</style></head><body>\n"
        );
        let snapshot = input.store.map(Store::snapshot);
        let mut groups: Vec<&Group> = snapshot.iter().flat_map(|s| s.groups()).collect();
        let total_groups = groups.len();
        let total_series: usize = groups.iter().map(|g| series_of(g)).sum();
        let _ = write!(
            out,
            "<header><h1>pushkit</h1><p id=\"summary\">{} groups · {} series · {}</p></header>",
            total_groups,
            total_series,
            match &input.not_ready {
                None => "ready".to_string(),
                Some(why) => format!("<span class=\"bad\">not ready: {}</span>", esc(why)),
            }
        );

        // Groups.
        let filter = input.query.filter.to_lowercase();
        let mut keyed: Vec<(String, &Group)> = groups
            .drain(..)
            .map(|g| (labels_text(&g.key), g))
            .filter(|(text, _)| filter.is_empty() || text.to_lowercase().contains(&filter))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let pages = keyed.len().div_ceil(GROUPS_PER_PAGE).max(1);
        let page = input.query.page.min(pages);
        let first = (page - 1) * GROUPS_PER_PAGE;
        let shown = &keyed[first.min(keyed.len())..(first + GROUPS_PER_PAGE).min(keyed.len())];
        let _ = write!(
            out,
            "<section id=\"groups\"><h2>Groups</h2>\
             <form method=\"get\" action=\"{p}/status\" id=\"filter-form\">\
             <input type=\"search\" name=\"filter\" id=\"filter\" value=\"{}\" \
             placeholder=\"filter by label, e.g. job=backup\" autocomplete=\"off\">\
             <button type=\"submit\">Filter</button></form>",
            esc(&input.query.filter)
        );
        if input.admin {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"{p}/status/wipe\" class=\"inline\" \
                 onsubmit=\"return confirm('Delete every group?')\">\
                 <input type=\"hidden\" name=\"token\" value=\"{}\">\
                 <button type=\"submit\" class=\"danger\" id=\"delete-all\">Delete all</button></form>",
                self.token
            );
        }
        let _ = write!(
            out,
            "<p class=\"count\">Showing <span id=\"shown\">{}</span> of {} groups{}.</p>\
             <table><thead><tr><th>Group</th><th>Last push</th><th>Last failure</th>\
             <th>Families</th><th>Series</th>{}</tr></thead><tbody id=\"group-rows\">",
            shown.len(),
            keyed.len(),
            if filter.is_empty() {
                String::new()
            } else {
                format!(" matching “{}”", esc(&input.query.filter))
            },
            if input.admin { "<th></th>" } else { "" }
        );
        let now = now_ns();
        for (text, g) in shown {
            self.group_row(&mut out, input, text, g, now);
        }
        out.push_str("</tbody></table>");
        if pages > 1 {
            let link = |n: usize| {
                format!(
                    "{p}/status?filter={}&amp;page={n}",
                    esc(&encode_query(&input.query.filter))
                )
            };
            out.push_str("<nav>");
            if page > 1 {
                let _ = write!(
                    out,
                    "<a href=\"{}\" rel=\"prev\">← previous</a> ",
                    link(page - 1)
                );
            }
            let _ = write!(out, "page {page} of {pages}");
            if page < pages {
                let _ = write!(
                    out,
                    " <a href=\"{}\" rel=\"next\">next →</a>",
                    link(page + 1)
                );
            }
            out.push_str("</nav>");
        }
        out.push_str("</section>\n");

        self.delivery(&mut out, input.metrics, now);
        self.agent(&mut out, total_groups, total_series, &input.not_ready);
        out.push_str(SCRIPT);
        out.push_str("</body></html>\n");
        out
    }

    fn group_row(&self, out: &mut String, input: &PageInput<'_>, text: &str, g: &Group, now: i64) {
        let failed = g.failure_ns > g.push_ns;
        let mut exposition = ExpositionWriter::new(ExpositionFormat::Text);
        for (name, family) in &g.families {
            let f = family.unpack(name, &g.labels);
            exposition.write_family(&f.name, f.help.as_deref(), f.kind, f.metrics.iter());
        }
        let exposition = String::from_utf8_lossy(&exposition.finish()).into_owned();
        let _ = write!(
            out,
            "<tr class=\"group{}\" data-labels=\"{}\" data-key=\"{}\">\
             <td><details><summary>{}</summary><pre>{}</pre></details></td>\
             <td title=\"{}\">{}</td><td title=\"{}\"{}>{}</td><td>{}</td><td>{}</td>",
            if failed { " failed" } else { "" },
            esc(text),
            esc(&group_path(&g.key)),
            labels_html(&g.key),
            esc(&exposition),
            rfc3339(g.push_ns),
            ago(g.push_ns, now),
            rfc3339(g.failure_ns),
            if failed { " class=\"bad\"" } else { "" },
            ago(g.failure_ns, now),
            g.families.len(),
            series_of(g),
        );
        if input.admin {
            let _ = write!(
                out,
                "<td><form method=\"post\" action=\"{}/status/delete\">\
                 <input type=\"hidden\" name=\"group\" value=\"{}\">\
                 <input type=\"hidden\" name=\"token\" value=\"{}\">\
                 <button type=\"submit\" class=\"danger\">Delete</button></form></td>",
                esc(input.prefix),
                esc(&group_path(&g.key)),
                self.token
            );
        }
        out.push_str("</tr>\n");
    }

    fn delivery(&self, out: &mut String, metrics: &Metrics, now: i64) {
        out.push_str(
            "<section id=\"delivery\"><h2>Delivery</h2><table><thead><tr><th>Sink</th>\
             <th>URL</th><th>Queued points</th><th>Queued bytes</th><th>Oldest queued</th>\
             <th>Delivered</th><th>Retried</th><th>Dropped</th><th>Last error</th></tr></thead><tbody>\n",
        );
        if self.sinks.is_empty() {
            out.push_str("<tr><td colspan=\"9\">No sinks: points go to stdout.</td></tr>\n");
        }
        let values = sink_values(metrics);
        let errors = metrics.sink_errors();
        for sink in &self.sinks {
            let v = |metric: &str| {
                values
                    .get(&(metric, sink.name.clone()))
                    .copied()
                    .unwrap_or(0.0)
            };
            let error = match errors.get(&sink.name) {
                Some((message, at)) => format!(
                    "<span class=\"bad\">{}</span> <small title=\"{}\">{}</small>",
                    esc(message),
                    rfc3339(*at),
                    ago(*at, now)
                ),
                None => "none".to_string(),
            };
            let _ = writeln!(
                out,
                "<tr class=\"sink\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{error}</td></tr>",
                esc(&sink.name),
                esc(&sink.url),
                v(metrics::SINK_QUEUE_POINTS),
                v(metrics::SINK_QUEUE_BYTES),
                duration_text(v(metrics::SINK_QUEUE_OLDEST_AGE)),
                v(metrics::SINK_DELIVERED),
                v(metrics::SINK_RETRIED),
                v(metrics::SINK_DROPPED),
            );
        }
        out.push_str("</tbody></table></section>\n");
    }

    fn agent(&self, out: &mut String, groups: usize, series: usize, not_ready: &Option<String>) {
        let _ = write!(
            out,
            "<section id=\"agent\"><h2>Agent</h2><dl>\
             <dt>Version</dt><dd>pushkit {}</dd>\
             <dt>Uptime</dt><dd>{}</dd>\
             <dt>Pushes</dt><dd>{}</dd>\
             <dt>Store</dt><dd>{groups} groups {}, {series} series {}</dd>\
             </dl><details><summary>Configuration</summary><pre>{}</pre></details></section>",
            env!("CARGO_PKG_VERSION"),
            duration_text(self.started.elapsed().as_secs_f64()),
            match not_ready {
                None => "accepted".to_string(),
                Some(why) => format!("refused: {}", esc(why)),
            },
            limit_text("max_groups", self.max_groups),
            limit_text("max_series", self.max_series),
            esc(&self.config),
        );
    }
}

/// "(of at most N, max_groups)" or "(no max_groups)".
fn limit_text(name: &str, limit: u64) -> String {
    if limit == 0 {
        format!("(no {name})")
    } else {
        format!("(of at most {limit}, {name})")
    }
}

/// Per (metric name, sink): the value of the sink metrics the page shows,
/// summed over their other labels (a drop's reason, say).
fn sink_values(metrics: &Metrics) -> BTreeMap<(&'static str, String), f64> {
    const SHOWN: [&str; 6] = [
        metrics::SINK_QUEUE_POINTS,
        metrics::SINK_QUEUE_BYTES,
        metrics::SINK_QUEUE_OLDEST_AGE,
        metrics::SINK_DELIVERED,
        metrics::SINK_RETRIED,
        metrics::SINK_DROPPED,
    ];
    let mut out = BTreeMap::new();
    for family in metrics.families() {
        let Some(&name) = SHOWN.iter().find(|n| **n == family.name) else {
            continue;
        };
        for m in &family.metrics {
            let (Some((_, sink)), Value::Simple(v)) =
                (m.labels.iter().find(|(k, _)| k == "sink"), &m.value)
            else {
                continue;
            };
            *out.entry((name, sink.to_string())).or_insert(0.0) += v;
        }
    }
    out
}

fn series_of(g: &Group) -> usize {
    g.families.values().map(|f| f.series_count()).sum()
}

/// `job="x" instance="y"`, the job first, as the filter matches it.
fn labels_text(key: &GroupingKey) -> String {
    let mut text = format!("job={:?}", key.job());
    for (k, v) in key.labels() {
        if k != "job" {
            let _ = write!(text, " {k}={v:?}");
        }
    }
    text
}

fn labels_html(key: &GroupingKey) -> String {
    let mut html = format!("<span class=\"label\">job=<b>{}</b></span>", esc(key.job()));
    for (k, v) in key.labels() {
        if k != "job" {
            let _ = write!(
                html,
                " <span class=\"label\">{}=<b>{}</b></span>",
                esc(k),
                esc(v)
            );
        }
    }
    html
}

/// The group's push path (after the prefix), every value in `@base64`
/// (`=` for an empty one), so that any value survives a form and
/// [`parse_push_path`] reads it back.
pub fn group_path(key: &GroupingKey) -> String {
    let b64 = |v: &str| {
        if v.is_empty() {
            "=".to_string()
        } else {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
        }
    };
    let mut path = format!("/metrics/job@base64/{}", b64(key.job()));
    for (k, v) in key.labels() {
        if k != "job" {
            let _ = write!(path, "/{k}@base64/{}", b64(v));
        }
    }
    path
}

/// The grouping key of a [`group_path`]; None for anything else.
pub fn group_of_path(path: &str, utf8_names: bool) -> Option<GroupingKey> {
    parse_push_path(path, utf8_names)?.ok()
}

/// `a=1&b=x+y` → its pairs, `+` and `%XX` decoded; the last of a repeated
/// key wins.
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| crate::http::percent_decode(&s.replace('+', " "));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// A query value, percent-encoded.
fn encode_query(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// HTML-escaped text, for element content and quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "never", or how long before `now` (ns) `at_ns` was, roughly.
fn ago(at_ns: i64, now: i64) -> String {
    if at_ns == 0 {
        return "never".to_string();
    }
    format!("{} ago", duration_text((now - at_ns).max(0) as f64 / 1e9))
}

fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min", s / 60),
        3_600..=86_399 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

fn rfc3339(ns: i64) -> String {
    if ns == 0 {
        String::new()
    } else {
        crate::store::json::rfc3339_nano(ns)
    }
}

/// 32 hex digits from the OS's random source.
fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !filled {
        // No /dev/urandom: the time and the process, hashed. Weaker, but
        // the token only has to be unknown to other sites' pages.
        let seed = now_ns() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.fill(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}\
h1{margin:0;font-size:1.4em}header{display:flex;gap:1em;align-items:baseline}\
h2{font-size:1.1em;margin-top:1.5em}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #ddd;vertical-align:top}\
tr.failed{background:#fde8e8}.bad{color:#b00020;font-weight:600}\
.label{background:#eef;border-radius:3px;padding:0 .3em;margin-right:.2em;white-space:nowrap}\
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:20em;font-size:12px}\
button.danger{color:#fff;background:#b00020;border:0;border-radius:3px;padding:.2em .6em;cursor:pointer}\
#filter-form,form.inline{display:inline}form.inline{margin-left:1em}#filter{width:20em}.count{color:#555}\
summary{cursor:pointer}code{font-size:12px}";

const SCRIPT: &str = r#"<script>
(() => {
  const input = document.getElementById('filter');
  const apply = () => {
    const f = input.value.toLowerCase();
    let shown = 0;
    for (const tr of document.querySelectorAll('#group-rows tr.group')) {
      const hit = tr.dataset.labels.toLowerCase().includes(f);
      tr.hidden = !hit;
      if (hit) shown++;
    }
    document.getElementById('shown').textContent = shown;
  };
  input.addEventListener('input', apply);
  async function refresh() {
    try {
      const r = await fetch(location.href, {headers: {'Accept': 'text/html'}});
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      const open = new Set([...document.querySelectorAll('#group-rows details[open]')]
        .map(d => d.closest('tr').dataset.key));
      for (const id of ['summary', 'group-rows', 'delivery', 'agent']) {
        const fresh = doc.getElementById(id);
        const old = document.getElementById(id);
        if (fresh && old) old.replaceWith(fresh);
      }
      for (const tr of document.querySelectorAll('#group-rows tr.group')) {
        if (open.has(tr.dataset.key)) tr.querySelector('details').open = true;
      }
      apply();
    } catch (e) { /* the next refresh tries again */ }
  }
  setInterval(refresh, 10000);
})();
</script>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_paths_read_back() {
        for pairs in [
            &[][..],
            &["instance", "a/b"][..],
            &["instance", "", "zone", "ü é"][..],
        ] {
            let key = GroupingKey::from_pairs("my job/x", pairs);
            let path = group_path(&key);
            assert!(!path.contains('%') && !path.contains(' '), "{path}");
            assert_eq!(group_of_path(&path, false), Some(key));
        }
    }

    #[test]
    fn forms_and_queries() {
        let f = parse_form("group=%2Fmetrics%2Fjob&token=ab12&x=a+b&bad=%zz");
        assert_eq!(f["group"], "/metrics/job");
        assert_eq!(f["token"], "ab12");
        assert_eq!(f["x"], "a b");
        assert!(!f.contains_key("bad"));
        let q = PageQuery::parse("filter=job%3Dbackup&page=3");
        assert_eq!((q.filter.as_str(), q.page), ("job=backup", 3));
        assert_eq!(PageQuery::parse("page=0").page, 1);
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(random_token().len(), 32);
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn times_read_at_a_glance() {
        let now = 1_000_000_000_000_000_000;
        assert_eq!(ago(0, now), "never");
        assert_eq!(ago(now - 5_000_000_000, now), "5 s ago");
        assert_eq!(ago(now - 7_200_000_000_000, now), "2 h ago");
        assert_eq!(duration_text(90.0), "1 min");
    }
}
