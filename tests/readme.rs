//! Keeps the README's reference tables in step with the code.

const README: &str = include_str!("../README.md");

/// The rows of the table that follows `marker`, as cells, header and
/// separator left out.
fn table_after(marker: &str) -> Vec<Vec<String>> {
    let start = README
        .find(marker)
        .unwrap_or_else(|| panic!("README lacks {marker}"));
    README[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn error_code_table_matches_the_code() {
    let rows = table_after("<!-- error-codes:");
    let want: Vec<Vec<String>> = pushkit::http::error::ErrorCode::ALL
        .iter()
        .map(|c| {
            vec![
                format!("`{}`", c.as_str()),
                c.status().to_string(),
                c.meaning().to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, want);
}

#[test]
fn self_metrics_table_matches_the_code() {
    let rows = table_after("<!-- self-metrics:");
    let want: Vec<Vec<String>> = pushkit::metrics::CATALOG
        .iter()
        .map(|m| {
            vec![
                format!("`{}`", m.name),
                m.kind.as_str().to_string(),
                m.labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                m.help.to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, want);
}

#[test]
fn config_reference_matches_the_code() {
    let rows = table_after("<!-- config-reference:");
    let want: Vec<Vec<String>> = pushkit::config::reference()
        .into_iter()
        .map(|d| {
            vec![
                format!("`{}`", d.section),
                format!("`{}`", d.key),
                d.default.clone(),
                d.env.clone().unwrap_or_else(|| "—".to_string()),
                d.description.to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, want);
}

#[test]
fn env_exceptions_table_matches_the_code() {
    let rows = table_after("<!-- env-exceptions:");
    let want: Vec<Vec<String>> = pushkit::config::reference()
        .into_iter()
        .filter(|d| d.env_exception)
        .map(|d| {
            vec![
                d.env.clone().expect("an exception names its variable"),
                format!("`{}`", d.section),
                format!("`{}`", d.key),
            ]
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(rows, want);
}
