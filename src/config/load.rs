//! Loading: the files' tables, the ENV overlay, serde, then `validate`.
//!
//! Files are merged as tables, not as values: [http_api] and [io] may each
//! come from one file only, [[sinks]] add up across files, and each input
//! may be configured by one block in all files. Each table is deserialized
//! into its typed section as soon as its file is read, so a broken file is
//! reported whatever the ENV says; then the ENV overlay is written into
//! the table and the section deserialized again. Errors name the file and
//! dotted key, or the ENV variable, a value came from (`SectionOrigin`).
//!
//! Imports everything below it: sections, `tree`, `env`, `files`, `de`.

use std::collections::BTreeMap;
use std::path::Path;

use super::de::{from_table, DeErrorKind};
use super::env::{dataway_sinks, env_set_vars, overlay, Env, InputSelection};
use super::error::{shown_path, ConfigError, Place};
use super::files::{conf_files, read_toml};
use super::http_api::HttpApiConfig;
use super::http_auth::AuthConfig;
use super::http_tls::TlsConfig;
use super::inputs::{self, each_input, Input, InputVisitor};
use super::io::IoConfig;
use super::keys::{Section, Show, ENV_DATAWAY};
use super::sink::SinkConfig;
use super::tree::{validate_sinks, Config, Loaded, Origins, SectionOrigin};
use super::web_config;

/// A table found in a file.
struct Found {
    /// The file path as shown in errors.
    file: String,
    /// Its index among the file's tables of that name ([[sinks]], inputs).
    index: usize,
    table: toml::Table,
}

/// Everything gathered from the files.
#[derive(Default)]
struct Gathered {
    http_api: Option<Found>,
    /// `[http_api.tls]` and `[http_api.auth]`, taken out of `http_api`'s
    /// table: each is a section of its own.
    http_tls: Option<Found>,
    http_auth: Option<Found>,
    io: Option<Found>,
    /// Each [[sinks]] entry, read, with where it came from.
    sinks: Vec<(SinkConfig, SectionOrigin)>,
    /// The one block of each input configured in a file, by input name.
    inputs: BTreeMap<&'static str, Found>,
    /// Found on the way: blocks of inputs this agent does not have.
    warnings: Vec<String>,
}

/// See `super::load`.
pub(crate) fn load(dir: &Path, env: Env) -> Result<Loaded, ConfigError> {
    let mut got = Gathered::default();
    for path in conf_files(dir)? {
        let file = shown_path(&path);
        let table = read_toml(&path, &file)?;
        gather_file(&mut got, &file, table)?;
    }
    let mut warnings = std::mem::take(&mut got.warnings);
    let (mut http_api, http_origin) =
        section::<HttpApiConfig>(got.http_api, HttpApiConfig::PATH.into(), env)?;
    let (tls, tls_origin) = section::<TlsConfig>(got.http_tls, TlsConfig::PATH.into(), env)?;
    http_api.tls = tls;
    http_api.auth = section::<AuthConfig>(got.http_auth, AuthConfig::PATH.into(), env)?.0;
    if let Some(path) = http_api.web_config_file.clone() {
        web_config::apply(&mut http_api, &path)?;
    }
    let mut config = Config {
        http_api,
        io: section::<IoConfig>(got.io, IoConfig::PATH.into(), env)?.0,
        ..Config::default()
    };

    // Unnamed sinks are named by their position among all file sinks.
    let (mut sinks, mut origins): (Vec<_>, Vec<_>) = got.sinks.into_iter().unzip();
    for (pos, (sink, origin)) in sinks.iter_mut().zip(&origins).enumerate() {
        if !origin.in_file.contains("name") {
            sink.name = format!("sink{pos}");
        }
    }
    // Checked even when ENV_DATAWAY replaces them, as a file is checked
    // whatever the ENV.
    validate_sinks(&sinks, &origins)?;
    if let Some(dataway) = dataway_sinks(env, &mut warnings)? {
        if !sinks.is_empty() {
            warnings.push(format!(
                "{ENV_DATAWAY} is set, so it replaces the {} [[sinks]] of the config files",
                sinks.len()
            ));
        }
        // Their url is the variable's; the text is not needed, as a url
        // that ENV_DATAWAY accepted is never refused again.
        origins = (0..dataway.len())
            .map(|i| SectionOrigin {
                base: format!("sinks[{i}]"),
                env: [("url".into(), (ENV_DATAWAY.into(), String::new()))].into(),
                ..SectionOrigin::default()
            })
            .collect();
        sinks = dataway;
    }
    config.sinks = sinks;

    let mut inputs = LoadInputs {
        selection: InputSelection::from_env(env, &mut warnings),
        blocks: got.inputs,
        env,
        config: &mut config,
        warnings: &mut warnings,
        result: Ok(()),
    };
    each_input(&mut inputs);
    inputs.result?;

    config.validate_from(&Origins {
        sinks: origins,
        http: http_origin,
        tls: tls_origin,
    })?;
    Ok(Loaded { config, warnings })
}

/// Reads one input's block, if any, with its ENV when it is enabled.
struct LoadInputs<'a> {
    selection: InputSelection,
    blocks: BTreeMap<&'static str, Found>,
    env: Env<'a>,
    config: &'a mut Config,
    warnings: &'a mut Vec<String>,
    /// The first error; later inputs are skipped after it.
    result: Result<(), ConfigError>,
}

impl InputVisitor for LoadInputs<'_> {
    fn visit<I: Input>(&mut self) {
        if self.result.is_err() {
            return;
        }
        let block = self.blocks.remove(I::NAME);
        if !self.selection.is_enabled(I::NAME, block.is_some()) {
            // Its file block, if any, was checked when its file was read.
            for var in env_set_vars::<I>(self.env) {
                self.warnings.push(format!(
                    "{var} is set but input {} is not enabled, so it is ignored; \
                     configure [[{}]] or list {} in ENV_DEFAULT_ENABLED_INPUTS",
                    I::NAME,
                    I::PATH,
                    I::NAME
                ));
            }
            *I::slot(self.config) = None;
            return;
        }
        let base = match &block {
            Some(found) => format!("{}[{}]", I::PATH, found.index),
            None => I::PATH.to_string(),
        };
        self.result = section::<I>(block, base, self.env)
            .map(|(input, _)| *I::slot(self.config) = Some(input));
    }
}

/// A section from its file table (if any) with its ENV written over it.
fn section<S: Section>(
    found: Option<Found>,
    base: String,
    env: Env,
) -> Result<(S, SectionOrigin), ConfigError> {
    let (file, mut table) = match found {
        Some(found) => (Some(found.file), found.table),
        None => (None, toml::Table::new()),
    };
    let mut origin = SectionOrigin {
        file,
        base,
        in_file: table.keys().cloned().collect(),
        ..SectionOrigin::default()
    };
    origin.env = overlay::<S>(&mut table, env)?;
    let section = deserialize(&table, &origin)?;
    Ok((section, origin))
}

/// Reads `table` into `S`; errors name where the failing value came from
/// and show it as read (secrets redacted).
fn deserialize<S: Section>(table: &toml::Table, origin: &SectionOrigin) -> Result<S, ConfigError> {
    from_table::<S>(table).map_err(|e| {
        let key = e.path.join(".");
        match e.kind {
            // ENV writes only known keys: an unknown key is always a file's.
            DeErrorKind::UnknownKey(known) => ConfigError::UnknownKey {
                file: origin.file.clone().unwrap_or_default(),
                key: format!("{}.{key}", origin.base),
                known: known.to_vec(),
            },
            DeErrorKind::Expected(expected) => {
                let top = e.path.first().map_or("", String::as_str);
                let show = S::key(top).map_or(Show::Plain, |k| k.show);
                let value = match origin.env.get(top) {
                    Some((_, text)) => show.text(text),
                    None => value_at(table, &e.path).map_or_else(|| "?".into(), |v| show.toml(v)),
                };
                ConfigError::Invalid {
                    at: origin.place(&key),
                    value,
                    expected,
                }
            }
        }
    })
}

/// The value at a key path in `table`.
fn value_at<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut value = table.get(first)?;
    for key in rest {
        value = match value {
            toml::Value::Table(t) => t.get(key)?,
            toml::Value::Array(items) => {
                let index = key
                    .strip_prefix('[')?
                    .strip_suffix(']')?
                    .parse::<usize>()
                    .ok()?;
                items.get(index)?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// Takes what one file says into `got`, checking each table as it goes.
fn gather_file(got: &mut Gathered, file: &str, table: toml::Table) -> Result<(), ConfigError> {
    for (name, value) in table {
        match name.as_str() {
            "http_api" => {
                let mut value = value;
                if let toml::Value::Table(table) = &mut value {
                    for (sub, slot) in [("tls", &mut got.http_tls), ("auth", &mut got.http_auth)] {
                        if let Some(inner) = table.remove(sub) {
                            gather_sub(slot, file, sub, inner)?;
                        }
                    }
                }
                gather_once::<HttpApiConfig>(&mut got.http_api, file, value)?
            }
            "io" => gather_once::<IoConfig>(&mut got.io, file, value)?,
            "sinks" => {
                let toml::Value::Array(items) = value else {
                    return Err(wrong_shape(
                        file,
                        "sinks",
                        &value,
                        "an array of tables [[sinks]]",
                    ));
                };
                for (index, item) in items.into_iter().enumerate() {
                    let base = format!("sinks[{index}]");
                    let toml::Value::Table(table) = item else {
                        return Err(wrong_shape(file, &base, &item, "a table [[sinks]]"));
                    };
                    let origin = SectionOrigin {
                        file: Some(file.to_string()),
                        base,
                        in_file: table.keys().cloned().collect(),
                        ..SectionOrigin::default()
                    };
                    let sink = deserialize(&table, &origin)?;
                    got.sinks.push((sink, origin));
                }
            }
            "inputs" => {
                let toml::Value::Table(inputs_table) = value else {
                    return Err(wrong_shape(
                        file,
                        "inputs",
                        &value,
                        &format!("tables such as [[{}]]", known_inputs()),
                    ));
                };
                for (input, blocks) in inputs_table {
                    gather_input(got, file, &input, blocks)?;
                }
            }
            _ if value.is_table() || value.is_array() => {
                return Err(ConfigError::UnknownTable {
                    file: file.to_string(),
                    name,
                });
            }
            _ => {
                return Err(ConfigError::UnknownTopLevelKey {
                    file: file.to_string(),
                    name,
                });
            }
        }
    }
    Ok(())
}

/// [http_api] / [io]: one file only; checked alone first.
fn gather_once<S: Section>(
    seen: &mut Option<Found>,
    file: &str,
    value: toml::Value,
) -> Result<(), ConfigError> {
    if let Some(first) = seen {
        return Err(ConfigError::SectionRepeated {
            file: file.to_string(),
            section: S::PATH,
            first: first.file.clone(),
        });
    }
    let toml::Value::Table(table) = value else {
        return Err(wrong_shape(
            file,
            S::PATH,
            &value,
            &format!("a table [{}]", S::PATH),
        ));
    };
    check_file_table::<S>(file, S::PATH.to_string(), &table)?;
    *seen = Some(Found {
        file: file.to_string(),
        index: 0,
        table,
    });
    Ok(())
}

/// `[http_api.tls]` or `[http_api.auth]`, found inside `[http_api]`: it
/// comes from the same one file, so it needs no check of its own for that.
fn gather_sub(
    slot: &mut Option<Found>,
    file: &str,
    sub: &str,
    value: toml::Value,
) -> Result<(), ConfigError> {
    let path = format!("http_api.{sub}");
    let toml::Value::Table(table) = value else {
        return Err(wrong_shape(
            file,
            &path,
            &value,
            &format!("a table [{path}]"),
        ));
    };
    match sub {
        "tls" => check_file_table::<TlsConfig>(file, path, &table)?,
        _ => check_file_table::<AuthConfig>(file, path, &table)?,
    }
    *slot = Some(Found {
        file: file.to_string(),
        index: 0,
        table,
    });
    Ok(())
}

/// Reads a file's table alone, for its errors.
fn check_file_table<S: Section>(
    file: &str,
    base: String,
    table: &toml::Table,
) -> Result<(), ConfigError> {
    let origin = SectionOrigin {
        file: Some(file.to_string()),
        base,
        ..SectionOrigin::default()
    };
    deserialize::<S>(table, &origin).map(drop)
}

/// Records the block of `inputs.<input>`; a second block anywhere is an
/// error.
fn gather_input(
    got: &mut Gathered,
    file: &str,
    input: &str,
    value: toml::Value,
) -> Result<(), ConfigError> {
    let path = format!("inputs.{input}");
    let Some(name) = inputs::names().into_iter().find(|n| *n == input) else {
        // A DataKit conf.d holds blocks of inputs this agent does not have
        // (cpu.conf, ...): like unknown names in ENV_DEFAULT_ENABLED_INPUTS,
        // they are skipped with a warning so that pushkit can share it.
        got.warnings.push(format!(
            "{file}: [[{path}]] skipped: this agent is not a full DataKit and has only {}",
            known_inputs()
        ));
        return Ok(());
    };
    // DataKit writes [[inputs.x]]; a single [inputs.x] table is taken as one block.
    let tables: Vec<(usize, toml::Table)> = match value {
        toml::Value::Table(t) => vec![(0, t)],
        toml::Value::Array(items) => {
            let mut tables = Vec::new();
            for (index, item) in items.into_iter().enumerate() {
                let toml::Value::Table(t) = item else {
                    return Err(wrong_shape(
                        file,
                        &format!("{path}[{index}]"),
                        &item,
                        &format!("a table [[{path}]]"),
                    ));
                };
                tables.push((index, t));
            }
            tables
        }
        other => {
            return Err(wrong_shape(
                file,
                &path,
                &other,
                &format!("a table [[{path}]]"),
            ))
        }
    };
    for (index, table) in tables {
        if let Some(first) = got.inputs.get(name) {
            return Err(ConfigError::InputRepeated {
                file: file.to_string(),
                name: name.to_string(),
                index,
                first: format!("{}: {path}[{}]", first.file, first.index),
            });
        }
        check_input_block(name, file, format!("{path}[{index}]"), &table)?;
        got.inputs.insert(
            name,
            Found {
                file: file.to_string(),
                index,
                table,
            },
        );
    }
    Ok(())
}

/// Checks a file block of input `name` with its own section type.
fn check_input_block(
    name: &str,
    file: &str,
    base: String,
    table: &toml::Table,
) -> Result<(), ConfigError> {
    struct Check<'a> {
        name: &'a str,
        file: &'a str,
        base: String,
        table: &'a toml::Table,
        result: Result<(), ConfigError>,
    }
    impl InputVisitor for Check<'_> {
        fn visit<I: Input>(&mut self) {
            if I::NAME == self.name {
                self.result = check_file_table::<I>(self.file, self.base.clone(), self.table);
            }
        }
    }
    let mut check = Check {
        name,
        file,
        base,
        table,
        result: Ok(()),
    };
    each_input(&mut check);
    check.result
}

/// "inputs.pushgateway" or "inputs.a, inputs.b", for error messages.
fn known_inputs() -> String {
    let names: Vec<String> = inputs::names()
        .iter()
        .map(|n| format!("inputs.{n}"))
        .collect();
    names.join(", ")
}

fn wrong_shape(file: &str, key: &str, value: &toml::Value, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        at: Place::File {
            file: file.to_string(),
            key: key.to_string(),
        },
        value: Show::Plain.toml(value),
        expected: format!("expected {expected}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crate::config::{
        load, Config, ConfigError, HttpApiConfig, IoConfig, Loaded, PushgatewayConfig, SinkConfig,
    };

    /// A conf dir in a temp dir, loaded with a fake environment.
    struct Case {
        dir: tempfile::TempDir,
        env: Vec<(String, String)>,
    }

    impl Case {
        fn new(files: &[(&str, &str)]) -> Case {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in files {
                let path = dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            Case {
                dir,
                env: Vec::new(),
            }
        }

        fn env(mut self, name: &str, value: &str) -> Case {
            self.env.push((name.to_string(), value.to_string()));
            self
        }

        fn load(&self) -> Result<Loaded, ConfigError> {
            let env = |k: &str| {
                self.env
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            load(self.dir.path(), &env)
        }

        fn ok(&self) -> Loaded {
            self.load().unwrap_or_else(|e| panic!("{e}"))
        }

        fn config(&self) -> Config {
            let loaded = self.ok();
            assert_eq!(loaded.warnings, Vec::<String>::new());
            loaded.config
        }

        /// The error, with the temp dir shown as "conf.d/".
        fn err(&self) -> String {
            let err = self.load().expect_err("should fail").to_string();
            assert!(!err.contains('\n'), "not one line: {err}");
            err.replace(&format!("{}/", self.dir.path().display()), "conf.d/")
        }
    }

    fn shipped_conf_d() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf.d")
    }

    #[test]
    fn shipped_conf_d_loads_to_the_defaults() {
        let loaded = load(&shipped_conf_d(), &|_| None).unwrap();
        assert_eq!(loaded.warnings, Vec::<String>::new());
        assert_eq!(
            loaded.config,
            Config {
                http_api: HttpApiConfig::default(),
                io: IoConfig::default(),
                sinks: vec![],
                pushgateway: Some(PushgatewayConfig::default()),
            }
        );
        // Uncommenting every option of pushgateway.conf keeps the defaults.
        let text = include_str!("../../conf.d/pushgateway.conf");
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            Case::new(&[("pushgateway.conf", &uncommented)])
                .config()
                .pushgateway,
            Some(PushgatewayConfig::default())
        );
        // So does uncommenting the sink example, which adds one sink.
        let text = include_str!("../../conf.d/pushkit.conf");
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.starts_with("[[sinks]]") || r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = Case::new(&[("pushkit.conf", &uncommented)]).config();
        assert_eq!(config.http_api, HttpApiConfig::default());
        assert_eq!(
            config.sinks,
            [SinkConfig {
                name: "vm".into(),
                url: "http://127.0.0.1:8428/write".into(),
                gzip: true,
                timeout: Duration::from_secs(30),
                ..SinkConfig::default()
            }]
        );
    }

    #[test]
    fn empty_dir_gives_defaults_without_inputs() {
        assert_eq!(Case::new(&[]).config(), Config::default());
        assert_eq!(Config::default().pushgateway, None);
    }

    #[test]
    fn effective_config_loads_back() {
        let case = Case::new(&[(
            "a.conf",
            "[[sinks]]\nurl = \"http://h:1/w\"\n[io]\nflush_interval = \"1.5h\"\n",
        )])
        .env("ENV_DEFAULT_ENABLED_INPUTS", "pushgateway")
        .env("ENV_INPUT_PUSHGATEWAY_MEASUREMENT_NAME", "pg")
        .env("ENV_HTTP_MAX_BODY_SIZE", "1000");
        let config = case.config();
        let back = Case::new(&[("effective.conf", &config.to_toml())]).config();
        assert_eq!(back, config);
    }

    #[test]
    fn precedence_default_file_env() {
        let files = [(
            "pushkit.conf",
            "[http_api]\nlisten = \"0.0.0.0:1\"\nmax_body_size = 2048\n",
        )];
        let config = Case::new(&files).config();
        assert_eq!(config.http_api.listen, "0.0.0.0:1");
        assert_eq!(config.http_api.max_body_size, 2048);
        assert_eq!(config.http_api.max_decompressed_size, 64 << 20);

        let config = Case::new(&files).env("ENV_HTTP_LISTEN", "[::]:2").config();
        assert_eq!(config.http_api.listen, "[::]:2");
        assert_eq!(config.http_api.max_body_size, 2048);

        // Set to "" counts as unset: the file value stays.
        let config = Case::new(&files)
            .env("ENV_HTTP_LISTEN", "")
            .env("ENV_HTTP_MAX_BODY_SIZE", "")
            .config();
        assert_eq!(config.http_api.listen, "0.0.0.0:1");
        assert_eq!(config.http_api.max_body_size, 2048);
    }

    #[test]
    fn every_http_and_io_key_has_env() {
        let config = Case::new(&[])
            .env("ENV_HTTP_LISTEN", "h:3")
            .env("ENV_HTTP_MAX_BODY_SIZE", "1024")
            .env("ENV_HTTP_MAX_DECOMPRESSED_SIZE", "1GiB")
            .env("ENV_IO_MAX_CACHE_COUNT", "5")
            .env("ENV_IO_FLUSH_INTERVAL", "1m30s")
            .env("ENV_IO_SHUTDOWN_TIMEOUT", "0")
            .config();
        assert_eq!(
            config.http_api,
            HttpApiConfig {
                listen: "h:3".into(),
                max_body_size: 1024,
                max_decompressed_size: 1 << 30,
                ..HttpApiConfig::default()
            }
        );
        assert_eq!(
            config.io,
            IoConfig {
                max_cache_count: 5,
                flush_interval: Duration::from_secs(90),
                shutdown_timeout: Duration::ZERO,
                queue_dir: None,
            }
        );
    }

    #[test]
    fn sinks_add_up_across_files() {
        let config = Case::new(&[
            ("a.conf", "[[sinks]]\nurl = \"http://a:1/w\"\n[[sinks]]\nname = \"vm\"\nurl = \"https://b/w?x=1\"\ngzip = false\ntimeout = \"5s\"\n"),
            ("b/c.conf", "[[sinks]]\nurl = \"http://[::1]:8428/write\"\n"),
        ])
        .config();
        let names: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["sink0", "vm", "sink2"]);
        assert_eq!(config.sinks[0].url, "http://a:1/w");
        assert!(config.sinks[0].gzip);
        assert_eq!(config.sinks[0].timeout, Duration::from_secs(30));
        assert!(!config.sinks[1].gzip);
        assert_eq!(config.sinks[1].timeout, Duration::from_secs(5));
        assert_eq!(config.sinks[1].url, "https://b/w?x=1");
        assert_eq!(config.sinks[2].url, "http://[::1]:8428/write");
    }

    #[test]
    fn dataway_replaces_file_sinks() {
        let loaded = Case::new(&[(
            "a.conf",
            "[[sinks]]\nname = \"vm\"\nurl = \"http://a:1/w\"\ngzip = false\n",
        )])
        .env(
            "ENV_DATAWAY",
            "https://openway.example?token=tkn_x,http://127.0.0.1:8428/write",
        )
        .ok();
        assert_eq!(
            loaded.config.sinks,
            [
                SinkConfig {
                    name: "sink0".into(),
                    url: "https://openway.example/v1/write/metric?token=tkn_x".into(),
                    gzip: true,
                    timeout: Duration::from_secs(30),
                    ..SinkConfig::default()
                },
                SinkConfig {
                    name: "sink1".into(),
                    url: "http://127.0.0.1:8428/write".into(),
                    gzip: true,
                    timeout: Duration::from_secs(30),
                    ..SinkConfig::default()
                },
            ]
        );
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].starts_with("ENV_DATAWAY is set, so it replaces the 1 [[sinks]]")
        );

        let case = Case::new(&[]).env("ENV_DATAWAY", "https://openway.example?token=tkn_x");
        assert_eq!(case.config().sinks.len(), 1);
        let case = Case::new(&[]).env("ENV_DATAWAY", "");
        assert_eq!(case.config().sinks, []);
    }

    const PG: (&str, &str) = (
        "pushgateway.conf",
        "[[inputs.pushgateway]]\nroute_prefix = \"v1/pg/\"\n",
    );

    #[test]
    fn inputs_from_files_and_env() {
        let config = Case::new(&[PG]).config();
        assert_eq!(config.pushgateway.unwrap().route_prefix, "/v1/pg");

        // ENV options override the file ...
        let pg = Case::new(&[PG])
            .env("ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX", "/")
            .env("ENV_INPUT_PUSHGATEWAY_MEASUREMENT_NAME", "m")
            .env("ENV_INPUT_PUSHGATEWAY_JOB_AS_MEASUREMENT", "T")
            .env("ENV_INPUT_PUSHGATEWAY_KEEP_EXIST_METRIC_NAME", "0")
            .env("ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS", "False")
            .env("ENV_INPUT_PUSHGATEWAY_STORE", "0")
            .env("ENV_INPUT_PUSHGATEWAY_CONSISTENCY_CHECK", "f")
            .env("ENV_INPUT_PUSHGATEWAY_PERSISTENCE_DIR", "/var/lib/pushkit")
            .env("ENV_INPUT_PUSHGATEWAY_GROUP_TTL", "1h30m")
            .env("ENV_INPUT_PUSHGATEWAY_ENABLE_ADMIN_API", "TRUE")
            .env("ENV_INPUT_PUSHGATEWAY_ENABLE_LIFECYCLE", "t")
            .env("ENV_INPUT_PUSHGATEWAY_UTF8_NAMES", "true")
            .env("ENV_INPUT_PUSHGATEWAY_SAMPLE_LIMIT", "5000")
            .env("ENV_INPUT_PUSHGATEWAY_LABEL_LIMIT", "0")
            .env("ENV_INPUT_PUSHGATEWAY_LABEL_NAME_LENGTH_LIMIT", "100")
            .env("ENV_INPUT_PUSHGATEWAY_LABEL_VALUE_LENGTH_LIMIT", "1024")
            .env("ENV_INPUT_PUSHGATEWAY_MAX_GROUPS", "10")
            .env("ENV_INPUT_PUSHGATEWAY_MAX_SERIES", "200")
            .config()
            .pushgateway
            .unwrap();
        assert_eq!(
            pg,
            PushgatewayConfig {
                route_prefix: "".into(),
                measurement_name: Some("m".into()),
                job_as_measurement: true,
                keep_exist_metric_name: false,
                honor_timestamps: false,
                store: false,
                consistency_check: false,
                persistence_dir: Some("/var/lib/pushkit".into()),
                group_ttl: Duration::from_secs(5400),
                enable_admin_api: true,
                enable_lifecycle: true,
                utf8_names: true,
                sample_limit: 5000,
                label_limit: 0,
                label_name_length_limit: 100,
                label_value_length_limit: 1024,
                max_groups: 10,
                max_series: 200,
            }
        );

        // ... but do not enable the input by themselves.
        let loaded = Case::new(&[])
            .env("ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX", "/x")
            .ok();
        assert_eq!(loaded.config.pushgateway, None);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].starts_with(
            "ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX is set but input pushgateway is not enabled"
        ));
    }

    #[test]
    fn default_enabled_inputs() {
        // Listed without a file: defaults plus its ENV.
        let config = Case::new(&[])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "pushgateway")
            .config();
        assert_eq!(config.pushgateway, Some(PushgatewayConfig::default()));
        let config = Case::new(&[])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "pushgateway")
            .env("ENV_INPUT_PUSHGATEWAY_ROUTE_PREFIX", "a/b/")
            .config();
        assert_eq!(config.pushgateway.unwrap().route_prefix, "/a/b");

        // Listed and in a file: the file's block.
        let config = Case::new(&[PG])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "pushgateway")
            .config();
        assert_eq!(config.pushgateway.unwrap().route_prefix, "/v1/pg");

        // "-" alone disables all, "-name" one, even when a file enables it.
        assert_eq!(
            Case::new(&[PG])
                .env("ENV_DEFAULT_ENABLED_INPUTS", "-")
                .config()
                .pushgateway,
            None
        );
        assert_eq!(
            Case::new(&[PG])
                .env("ENV_DEFAULT_ENABLED_INPUTS", "-pushgateway")
                .config()
                .pushgateway,
            None
        );

        // DataKit-style lists: unknown names warn once each and are skipped.
        let loaded = Case::new(&[])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "dk,cpu,container,pushgateway")
            .ok();
        assert_eq!(
            loaded.config.pushgateway,
            Some(PushgatewayConfig::default())
        );
        assert_eq!(
            loaded.warnings,
            [
                r#"ENV_DEFAULT_ENABLED_INPUTS: unknown input "dk" skipped (this agent has: pushgateway)"#,
                r#"ENV_DEFAULT_ENABLED_INPUTS: unknown input "cpu" skipped (this agent has: pushgateway)"#,
                r#"ENV_DEFAULT_ENABLED_INPUTS: unknown input "container" skipped (this agent has: pushgateway)"#,
            ]
        );
        let loaded = Case::new(&[])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "cpu mem")
            .ok();
        assert_eq!(loaded.config.pushgateway, None);
        assert_eq!(loaded.warnings.len(), 2);

        // Empty counts as unset: the files decide.
        let config = Case::new(&[PG])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "")
            .config();
        assert!(config.pushgateway.is_some());
    }

    #[test]
    fn a_disabled_input_block_is_still_checked() {
        let case = Case::new(&[("p.conf", "[[inputs.pushgateway]]\nhonor_timestamps = 1\n")])
            .env("ENV_DEFAULT_ENABLED_INPUTS", "-");
        assert_eq!(
            case.err(),
            "conf.d/p.conf: inputs.pushgateway[0].honor_timestamps = 1: expected a TOML boolean, true or false"
        );
    }

    #[test]
    fn single_input_table_is_one_block() {
        let config =
            Case::new(&[("p.conf", "[inputs.pushgateway]\nroute_prefix = \"/x\"\n")]).config();
        assert_eq!(config.pushgateway.unwrap().route_prefix, "/x");
    }

    fn file_err(text: &str) -> String {
        Case::new(&[("pushkit.conf", text)]).err()
    }

    fn env_err(name: &str, value: &str) -> String {
        Case::new(&[PG]).env(name, value).err()
    }

    #[test]
    fn value_errors_name_file_key_value_and_expectation() {
        assert_eq!(
            file_err("[io]\nflush_interval = \"10x\"\n"),
            r#"conf.d/pushkit.conf: io.flush_interval = "10x": expected a duration such as "300ms", "10s" or "1m30s""#
        );
        assert_eq!(
            file_err("[io]\nshutdown_timeout = \"-1s\"\n"),
            r#"conf.d/pushkit.conf: io.shutdown_timeout = "-1s": expected a duration such as "300ms", "10s" or "1m30s""#
        );
        assert_eq!(
            file_err("[io]\nflush_interval = \"0s\"\n"),
            r#"conf.d/pushkit.conf: io.flush_interval = "0s": expected a duration above zero, such as "300ms", "10s" or "1m30s""#
        );
        assert_eq!(
            file_err("[io]\nmax_cache_count = 0\n"),
            "conf.d/pushkit.conf: io.max_cache_count = 0: expected a whole number of at least 1"
        );
        assert_eq!(
            file_err("[io]\nmax_cache_count = \"10\"\n"),
            r#"conf.d/pushkit.conf: io.max_cache_count = "10": expected a TOML integer of at least 1, not a string"#
        );
        assert_eq!(
            file_err("[http_api]\nmax_body_size = 0\n"),
            r#"conf.d/pushkit.conf: http_api.max_body_size = 0: expected a size of at least 1 byte such as 1024, "512KiB", "16MiB" or "1GiB""#
        );
        assert_eq!(
            file_err("[http_api]\nmax_decompressed_size = \"64MB\"\n"),
            r#"conf.d/pushkit.conf: http_api.max_decompressed_size = "64MB": expected a size of at least 1 byte such as 1024, "512KiB", "16MiB" or "1GiB""#
        );
        assert_eq!(
            file_err("[http_api]\nlisten = \"9529\"\n"),
            r#"conf.d/pushkit.conf: http_api.listen = "9529": expected "host:port" with a port 0-65535, such as "localhost:9529", "0.0.0.0:9529", "[::1]:9529" or ":9529" (every interface)"#
        );
        assert_eq!(
            file_err("[http_api]\nlisten = 9529\n"),
            r#"conf.d/pushkit.conf: http_api.listen = 9529: expected "host:port" with a port 0-65535, such as "localhost:9529", "0.0.0.0:9529", "[::1]:9529" or ":9529" (every interface)"#
        );
        assert_eq!(
            file_err(
                "[[sinks]]\nurl = \"http://a/w\"\n[[sinks]]\nurl = \"http://b/w\"\ntimeout = 30\n"
            ),
            r#"conf.d/pushkit.conf: sinks[1].timeout = 30: expected a duration such as "300ms", "10s" or "1m30s""#
        );
        assert_eq!(
            file_err("[[sinks]]\nurl = \"http://a/w\"\ngzip = \"true\"\n"),
            r#"conf.d/pushkit.conf: sinks[0].gzip = "true": expected a TOML boolean, true or false"#
        );
        assert_eq!(
            file_err("[[sinks]]\nname = \"\"\nurl = \"http://a/w\"\n"),
            r#"conf.d/pushkit.conf: sinks[0].name = "": expected a non-empty string"#
        );
        assert_eq!(
            file_err("[[inputs.pushgateway]]\nhonor_timestamps = \"yes\"\n"),
            r#"conf.d/pushkit.conf: inputs.pushgateway[0].honor_timestamps = "yes": expected a TOML boolean, true or false"#
        );
        assert_eq!(
            file_err("[[inputs.pushgateway]]\nmeasurement_name = false\n"),
            "conf.d/pushkit.conf: inputs.pushgateway[0].measurement_name = false: expected a TOML string"
        );
        assert_eq!(
            file_err("[[inputs.pushgateway]]\nroute_prefix = \"/a b\"\n"),
            r##"conf.d/pushkit.conf: inputs.pushgateway[0].route_prefix = "/a b": expected a URL path such as "/v1/pushgateway" (no spaces, "?" or "#")"##
        );
    }

    #[test]
    fn sink_url_errors_are_redacted() {
        assert_eq!(
            file_err("[[sinks]]\nurl = \"ftp://u:pw@h/w?token=tkn_x\"\n"),
            r#"conf.d/pushkit.conf: sinks[0].url = "ftp://u:REDACTED@h/w?token=REDACTED": expected an http:// or https:// URL such as "http://127.0.0.1:8428/write""#
        );
        assert_eq!(
            file_err("[[sinks]]\nname = \"vm\"\n"),
            r#"conf.d/pushkit.conf: sinks[0].url is missing: expected an http:// or https:// URL such as "http://127.0.0.1:8428/write""#
        );
    }

    #[test]
    fn env_errors_name_variable_value_and_expectation() {
        assert_eq!(
            env_err("ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS", "yes"),
            r#"ENV_INPUT_PUSHGATEWAY_HONOR_TIMESTAMPS = "yes": expected a bool (1, t, true, TRUE, 0, f, false, FALSE, ...)"#
        );
        assert_eq!(
            env_err("ENV_IO_MAX_CACHE_COUNT", "1e3"),
            r#"ENV_IO_MAX_CACHE_COUNT = "1e3": expected a whole number of at least 1"#
        );
        assert_eq!(
            env_err("ENV_IO_FLUSH_INTERVAL", "10"),
            r#"ENV_IO_FLUSH_INTERVAL = "10": expected a duration such as "300ms", "10s" or "1m30s""#
        );
        assert_eq!(
            env_err("ENV_HTTP_LISTEN", ":95290"),
            r#"ENV_HTTP_LISTEN = ":95290": expected "host:port" with a port 0-65535, such as "localhost:9529", "0.0.0.0:9529", "[::1]:9529" or ":9529" (every interface)"#
        );
        assert_eq!(
            env_err("ENV_DATAWAY", "http://ok/w,https://:1?token=tkn_x"),
            r#"ENV_DATAWAY = "https://:1?token=REDACTED": expected comma-separated http:// or https:// URLs such as "https://openway.example?token=tkn_x" or "http://127.0.0.1:8428/write""#
        );
    }

    #[test]
    fn unknown_keys_tables_and_inputs() {
        assert_eq!(
            Case::new(&[("x.conf", "[http_api]\nlisen = \"h:1\"\n")]).err(),
            r#"conf.d/x.conf: unknown key "http_api.lisen": expected one of listen, listen_socket, max_body_size, max_decompressed_size, max_inflight_bytes, read_header_timeout, read_timeout, idle_timeout, timeout, close_idle_connection, max_connections, request_rate_limit, request_rate_limit_burst, trusted_proxies, web_config_file"#
        );
        assert_eq!(
            file_err("[[sinks]]\nurl = \"http://a/w\"\ncompress = true\n"),
            r#"conf.d/pushkit.conf: unknown key "sinks[0].compress": expected one of name, url, gzip, timeout, max_queue_bytes, overflow, format, lp_dialect, max_disk_bytes, retry_base, retry_max, export_interval, headers, bearer_token, bearer_token_file, basic_auth, ca_file, cert_file, key_file, tls_insecure_skip_verify"#
        );
        assert_eq!(
            file_err("[[inputs.pushgateway]]\nstores = true\n"),
            r#"conf.d/pushkit.conf: unknown key "inputs.pushgateway[0].stores": expected one of route_prefix, measurement_name, job_as_measurement, keep_exist_metric_name, honor_timestamps, store, consistency_check, persistence_dir, group_ttl, enable_admin_api, enable_lifecycle, utf8_names, sample_limit, label_limit, label_name_length_limit, label_value_length_limit, max_groups, max_series"#
        );
        assert_eq!(
            file_err("[[inputs.pushgateway]]\nstore = \"memory\"\n"),
            r#"conf.d/pushkit.conf: inputs.pushgateway[0].store = "memory": expected a TOML boolean, true or false"#
        );
        assert_eq!(
            file_err("[global_tags]\nhost = \"x\"\n"),
            r#"conf.d/pushkit.conf: unknown table "global_tags": expected [http_api], [io], [[sinks]] or [[inputs.<name>]]"#
        );
        assert_eq!(
            file_err("listen = \"h:1\"\n"),
            r#"conf.d/pushkit.conf: unknown key "listen": expected only the tables [http_api], [io], [[sinks]] and [[inputs.<name>]] at the top level"#
        );
    }

    #[test]
    fn inputs_this_agent_lacks_are_skipped_with_a_warning() {
        let case = Case::new(&[
            ("cpu.conf", "[[inputs.cpu]]\npercpu = true\n"),
            ("mem.conf", "[inputs]\nmem = 1\n"),
            PG,
        ]);
        let loaded = case.ok();
        let dir = format!("{}/", case.dir.path().display());
        let warnings: Vec<String> = loaded
            .warnings
            .iter()
            .map(|w| w.replace(&dir, "conf.d/"))
            .collect();
        assert_eq!(
            warnings,
            [
                "conf.d/cpu.conf: [[inputs.cpu]] skipped: this agent is not a full DataKit and has only inputs.pushgateway",
                "conf.d/mem.conf: [[inputs.mem]] skipped: this agent is not a full DataKit and has only inputs.pushgateway",
            ]
        );
        assert!(loaded.config.pushgateway.is_some());
    }

    #[test]
    fn wrong_shapes() {
        assert_eq!(
            file_err("[[http_api]]\n"),
            "conf.d/pushkit.conf: http_api = [...]: expected a table [http_api]"
        );
        assert_eq!(
            file_err("io = 1\n"),
            "conf.d/pushkit.conf: io = 1: expected a table [io]"
        );
        assert_eq!(
            file_err("[sinks]\nurl = \"http://a/w\"\n"),
            "conf.d/pushkit.conf: sinks = {...}: expected an array of tables [[sinks]]"
        );
        assert_eq!(
            file_err("sinks = [1]\n"),
            "conf.d/pushkit.conf: sinks[0] = 1: expected a table [[sinks]]"
        );
        assert_eq!(
            file_err("inputs = \"pushgateway\"\n"),
            r#"conf.d/pushkit.conf: inputs = "pushgateway": expected tables such as [[inputs.pushgateway]]"#
        );
        assert_eq!(
            file_err("[inputs]\npushgateway = true\n"),
            "conf.d/pushkit.conf: inputs.pushgateway = true: expected a table [[inputs.pushgateway]]"
        );
    }

    #[test]
    fn toml_syntax_errors_name_file_and_line() {
        let err = file_err("[io]\nflush_interval = \"10s\"\nmax_cache_count = \n");
        assert!(
            err.starts_with("conf.d/pushkit.conf: TOML syntax error at line 3, column "),
            "{err}"
        );
        let err = file_err("[io]\nflush_interval = 10s\n");
        assert!(
            err.starts_with("conf.d/pushkit.conf: TOML syntax error at line 2, column "),
            "{err}"
        );
    }

    #[test]
    fn sections_come_from_one_file() {
        assert_eq!(
            Case::new(&[("a.conf", "[http_api]\n"), ("b/b.conf", "[http_api]\nlisten = \"h:1\"\n")]).err(),
            "conf.d/b/b.conf: [http_api] is also in conf.d/a.conf: expected [http_api] in one file only"
        );
        assert_eq!(
            Case::new(&[("b.conf", "[io]\n"), ("a.conf", "[io]\n")]).err(),
            "conf.d/b.conf: [io] is also in conf.d/a.conf: expected [io] in one file only"
        );
        // In one file TOML itself rejects the repeat.
        assert!(file_err("[io]\n[io]\n").contains("TOML syntax error at line 2"));
    }

    #[test]
    fn an_input_is_configured_once() {
        assert_eq!(
            Case::new(&[("a.conf", "[[inputs.pushgateway]]\n[[inputs.pushgateway]]\n")]).err(),
            "conf.d/a.conf: inputs.pushgateway[1]: a second [[inputs.pushgateway]] block (the first is conf.d/a.conf: inputs.pushgateway[0]): expected the input to be configured once"
        );
        assert_eq!(
            Case::new(&[("a.conf", "[[inputs.pushgateway]]\n"), ("b.conf", "[[inputs.pushgateway]]\n")]).err(),
            "conf.d/b.conf: inputs.pushgateway[0]: a second [[inputs.pushgateway]] block (the first is conf.d/a.conf: inputs.pushgateway[0]): expected the input to be configured once"
        );
    }

    #[test]
    fn an_export_needs_the_store() {
        let sink = "[[sinks]]\nurl = \"http://a/w\"\nexport_interval = \"30s\"\n";
        assert_eq!(
            Case::new(&[(
                "a.conf",
                &format!("{sink}[[inputs.pushgateway]]\nstore = false\n")
            )])
            .err(),
            r#"conf.d/a.conf: sinks[0].export_interval = "30s": expected 0s: an export sends the store of [[inputs.pushgateway]], which is off (store = false) or not enabled"#
        );
        assert_eq!(
            file_err("[[sinks]]\nurl = \"http://a/w\"\nexport_interval = \"500ms\"\n[[inputs.pushgateway]]\n"),
            r#"conf.d/pushkit.conf: sinks[0].export_interval = "500ms": expected 0s (off) or at least 1s"#
        );
        let config = Case::new(&[("a.conf", &format!("{sink}[[inputs.pushgateway]]\n"))]).config();
        assert_eq!(config.sinks[0].export_interval, Duration::from_secs(30));
    }

    #[test]
    fn sink_names_are_unique() {
        assert_eq!(
            Case::new(&[
                ("a.conf", "[[sinks]]\nname = \"vm\"\nurl = \"http://a/w\"\n"),
                ("b.conf", "[[sinks]]\nname = \"vm\"\nurl = \"http://b/w\"\n"),
            ])
            .err(),
            r#"conf.d/b.conf: sinks[0].name = "vm": expected a unique sink name; conf.d/a.conf: sinks[0] already has it"#
        );
        assert_eq!(
            file_err("[[sinks]]\nname = \"sink1\"\nurl = \"http://a/w\"\n[[sinks]]\nurl = \"http://b/w\"\n"),
            r#"conf.d/pushkit.conf: sinks[1].name = "sink1" (its default name): expected a unique sink name; conf.d/pushkit.conf: sinks[0] already has it"#
        );
    }

    #[test]
    fn missing_dir_is_an_error() {
        let err = load(Path::new("/nonexistent/pushkit/conf.d"), &|_| None).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("/nonexistent/pushkit/conf.d: cannot read directory: "));
    }
}
