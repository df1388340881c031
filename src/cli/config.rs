//! `smimekit config show`, and applying the configuration file to the global options: the effective home and
//! passphrase file (file < environment < flag) replace the flags' values before any command runs.

use anyhow::Result;
use clap::Subcommand;
use smimekit::config::{Config, Flags};

use super::{Global, output};

/// `smimekit config …`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and where each came from (default, file, environment, flag).
    Show,
}

/// Loads the configuration (`--config`, `$SMIMEKIT_CONFIG`, the default path) and applies it to `g`.
pub fn apply(g: &mut Global) -> Result<()> {
    let cfg = Config::load(
        g.config.as_deref(),
        &Flags {
            home: g.home.clone(),
            passphrase_file: g.passphrase_file.clone(),
            ..Flags::default()
        },
    )?;
    g.home = cfg.home.value.clone();
    g.passphrase_file = cfg.passphrase_file.value.clone();
    g.settings = Some(cfg);
    Ok(())
}

/// Runs `config show`.
pub fn run(g: &Global, c: &ConfigCommand) -> Result<i32> {
    let ConfigCommand::Show = c;
    let cfg = match &g.settings {
        Some(c) => c.clone(),
        None => Config::load(g.config.as_deref(), &Flags::default())?,
    };
    let file = cfg.file.as_ref().map(|p| p.display().to_string());
    if g.json {
        let settings: Vec<serde_json::Value> = cfg
            .entries()
            .into_iter()
            .map(|(k, v, s)| serde_json::json!({"key": k, "value": v, "source": s.name()}))
            .collect();
        output::json(&serde_json::json!({"file": file, "settings": settings}))?;
    } else {
        let mut t = format!(
            "configuration file: {}\n",
            file.unwrap_or_else(|| match smimekit::config::default_path() {
                Some(p) => format!("(none; the default is {})", p.display()),
                None => "(none)".into(),
            })
        );
        for (k, v, s) in cfg.entries() {
            let v = v.unwrap_or_else(|| "(none)".into());
            t += &format!("{k:<22} {v}  ({})\n", s.name());
        }
        output::print(&output::clean(&t))?;
    }
    Ok(0)
}
