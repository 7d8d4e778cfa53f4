//! The registry of known inputs (`[[inputs.<name>]]`).
//!
//! Loading, ENV_DEFAULT_ENABLED_INPUTS, rendering and the reference walk
//! the inputs through `each_input`, each with its own typed section, so
//! adding an input is: its section file, an `Input` impl, a field in
//! `Config` and one line in `each_input`.
//!
//! Imports `tree` (for `Config`) and the input sections.

use super::keys::Section;
use super::pushgateway::PushgatewayConfig;
use super::tree::Config;

/// A section that is an input: it has a name and a slot in `Config`.
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

/// Something done once per input type.
pub(crate) trait InputVisitor {
    fn visit<I: Input>(&mut self);
}

/// Calls `v` for every input this agent has, in a fixed order.
pub(crate) fn each_input(v: &mut impl InputVisitor) {
    v.visit::<PushgatewayConfig>();
}

/// The names of every input, in `each_input` order.
pub(crate) fn names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl InputVisitor for Names {
        fn visit<I: Input>(&mut self) {
            self.0.push(I::NAME);
        }
    }
    let mut names = Names(Vec::new());
    each_input(&mut names);
    names.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::input_env_prefix;

    #[test]
    fn inputs_follow_the_env_and_path_rules() {
        struct Check;
        impl InputVisitor for Check {
            fn visit<I: Input>(&mut self) {
                assert_eq!(I::PATH, format!("inputs.{}", I::NAME));
                assert_eq!(I::ENV_PREFIX, Some(input_env_prefix(I::NAME).as_str()));
            }
        }
        each_input(&mut Check);
        assert_eq!(names(), ["pushgateway"]);
    }
}
