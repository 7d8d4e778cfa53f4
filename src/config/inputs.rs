//! The registry of known inputs (`[[inputs.<name>]]`).
//!
//! Loading, ENV_DEFAULT_ENABLED_INPUTS, rendering and the reference all go
//! through `INPUTS`, so adding an input is: a config struct, its key table
//! (schema.rs), an `Input` impl, a field in `Config` and one line here.

use super::env::{apply_env, env_set_keys, Env};
use super::error::ConfigError;
use super::load::{apply_table, Block};
use super::render::render_table;
use super::schema::Section;
use super::{Config, KeyDoc, PushgatewayConfig};

/// A config section that is an input: it has a name and a slot in `Config`.
pub(crate) trait Input: Section {
    /// The name in `[[inputs.<name>]]` and in ENV_DEFAULT_ENABLED_INPUTS.
    const NAME: &'static str;
    fn slot(config: &mut Config) -> &mut Option<Self>;
    fn get(config: &Config) -> Option<&Self>;
}

impl Input for PushgatewayConfig {
    const NAME: &'static str = "pushgateway";
    fn slot(config: &mut Config) -> &mut Option<Self> {
        &mut config.pushgateway
    }
    fn get(config: &Config) -> Option<&Self> {
        config.pushgateway.as_ref()
    }
}

/// Reads an input's file block (if any), applies ENV if the input is
/// enabled (the `bool`), stores it in `Config` and adds warnings.
type BuildFn =
    fn(&mut Config, Option<&Block>, bool, Env, &mut Vec<String>) -> Result<(), ConfigError>;

/// One known input, type-erased so the registry can be a plain list.
pub(crate) struct InputDef {
    pub name: &'static str,
    /// Reads the file block (if any), applies ENV if enabled and stores the
    /// result (`None` when not enabled) in `Config`.
    pub build: BuildFn,
    /// Appends `[[inputs.<name>]]` to the rendered config when enabled.
    pub render: fn(&Config, &mut String),
    /// The reference entries of its options.
    pub docs: fn() -> Vec<KeyDoc>,
}

impl InputDef {
    const fn of<S: Input>() -> InputDef {
        InputDef {
            name: S::NAME,
            build: build_input::<S>,
            render: render_input::<S>,
            docs: super::docs_for::<S>,
        }
    }
}

/// Every input this agent has.
pub(crate) static INPUTS: [InputDef; 1] = [InputDef::of::<PushgatewayConfig>()];

/// Finds a known input by name.
pub(crate) fn find(name: &str) -> Option<usize> {
    INPUTS.iter().position(|d| d.name == name)
}

/// "inputs.pushgateway" or "inputs.a, inputs.b", for error messages.
pub(crate) fn known_list() -> String {
    let names: Vec<String> = INPUTS
        .iter()
        .map(|d| format!("inputs.{}", d.name))
        .collect();
    names.join(", ")
}

fn build_input<S: Input>(
    config: &mut Config,
    block: Option<&Block>,
    enabled: bool,
    env: Env,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let mut input = S::default();
    // A file block is checked even when ENV disables the input, so
    // `pushkit check` reports a broken file whatever the ENV.
    if let Some(block) = block {
        let base = format!("{}[{}]", S::PATH, block.index);
        apply_table(&mut input, &block.table, &block.file, &base)?;
    }
    if enabled {
        apply_env(&mut input, env)?;
        *S::slot(config) = Some(input);
    } else {
        for var in env_set_keys::<S>(env) {
            warnings.push(format!(
                "{var} is set but input {} is not enabled, so it is ignored; \
                 configure [[{}]] or list {} in ENV_DEFAULT_ENABLED_INPUTS",
                S::NAME,
                S::PATH,
                S::NAME
            ));
        }
        *S::slot(config) = None;
    }
    Ok(())
}

fn render_input<S: Input>(config: &Config, out: &mut String) {
    if let Some(input) = S::get(config) {
        render_table(out, &format!("[[{}]]", S::PATH), input);
    }
}
