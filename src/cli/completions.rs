//! `smimekit completions SHELL` (clap_complete) and `smimekit man [-o DIR]` (clap_mangen): generated from
//! the same argument definitions the parser uses, so they never drift from the commands.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;
use smimekit::Error;

use super::output;

/// `smimekit completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `smimekit man`.
#[derive(Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand into DIR (smimekit.1, smimekit-sign.1, smimekit-id-import.1…);
    /// without it, smimekit.1 goes to standard output.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Prints the completion script.
pub fn run_completions(a: &CompletionsArgs) -> Result<i32> {
    let mut cmd = super::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "smimekit", &mut buf);
    output::write_output(None, &buf)?;
    Ok(0)
}

/// Writes the manual pages.
pub fn run_man(a: &ManArgs) -> Result<i32> {
    let mut cmd = super::command();
    // Propagates the global options into every subcommand, so each page lists them.
    cmd.build();
    match &a.output {
        None => {
            let mut buf = Vec::new();
            man_page(cmd).render(&mut buf)?;
            output::write_output(None, &buf)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create the folder", dir, e))?;
            let mut n = 0;
            write_pages(&cmd, None, dir, &mut n)?;
            output::note(&format!("wrote {n} manual pages to {}", dir.display()));
        }
    }
    Ok(0)
}

/// A page for `cmd`, dated `$SOURCE_DATE_EPOCH` (reproducible builds) or today.
fn man_page(cmd: clap::Command) -> clap_mangen::Man {
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(smimekit::cert::now);
    let date: String = smimekit::cert::rfc3339(t).chars().take(10).collect();
    clap_mangen::Man::new(cmd)
        .date(date)
        .source(format!("smimekit {}", env!("CARGO_PKG_VERSION")))
        .manual("smimekit manual")
}

/// Writes the page of `cmd` (named `parent-name`) and, recursively, of its subcommands.
fn write_pages(cmd: &clap::Command, parent: Option<&str>, dir: &Path, n: &mut usize) -> Result<()> {
    let name = match parent {
        Some(p) => format!("{p}-{}", cmd.get_name()),
        None => cmd.get_name().to_string(),
    };
    let page = cmd
        .clone()
        .name(name.clone())
        .display_name(name.clone())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    man_page(page).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    // Not secret: written with the umask's permissions, unlike the store's files.
    std::fs::write(&path, &buf).map_err(|e| Error::io("write", &path, e))?;
    *n += 1;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, Some(&name), dir, n)?;
    }
    Ok(())
}
