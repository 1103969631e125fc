//! Build-time tasks of the workspace.
//!
//! ```text
//! cargo run -p xtask -- gen-docs OUTDIR
//! cargo run -p xtask -- gen-widths term/src/width_table.rs
//! ```
//!
//! `gen-docs` writes the man pages (`OUTDIR/man/NAME.SECTION`) and the bash,
//! zsh and fish completions (`OUTDIR/completions/{bash/NAME,zsh/_NAME,
//! fish/NAME.fish}`) of every installed program from its clap model, and
//! copies the hand-written `mosh-daemon.toml.5`. The packages install them.
//!
//! `gen-widths` writes `mosh-term`'s character width table from the C
//! library's `wcwidth` (module `widths`).

mod widths;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use mosh_stdio::{stderrln, stdoutln};

/// A function returning a program's clap model.
type Model = fn() -> Command;

/// Every installed program: its clap model and its manual section.
const PROGRAMS: &[(Model, &str)] = &[
    (mosh_client::launcher::cli_model::command, "1"),
    (mosh_client::cli_model::command, "1"),
    (mosh_daemon::server::cli_model::command, "1"),
    (mosh_daemon::cli::moshctl_command, "8"),
    (mosh_daemon::cli::daemon_command, "8"),
];

/// The hand-written page of the configuration file.
const CONFIG_PAGE: &str = include_str!("../../packaging/man/mosh-daemon.toml.5");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, outdir] if task == "gen-docs" => match gen_docs(Path::new(outdir)) {
            Ok(written) => {
                stdoutln!("xtask: wrote {} files under {outdir}", written.len());
                ExitCode::SUCCESS
            }
            Err(error) => {
                stderrln!("xtask: gen-docs {outdir}: {error}");
                ExitCode::FAILURE
            }
        },
        [task, table] if task == "gen-widths" => match widths::gen_widths(Path::new(table)) {
            Ok(blocks) => {
                stdoutln!("xtask: wrote {blocks} blocks of widths to {table}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                stderrln!("xtask: gen-widths {table}: {error}");
                ExitCode::FAILURE
            }
        },
        _ => {
            stderrln!(
                "Usage: cargo run -p xtask -- gen-docs OUTDIR\n       \
                 cargo run -p xtask -- gen-widths term/src/width_table.rs"
            );
            ExitCode::from(2)
        }
    }
}

/// Writes every man page and completion under `outdir`; returns the files.
fn gen_docs(outdir: &Path) -> io::Result<Vec<PathBuf>> {
    let man_dir = outdir.join("man");
    fs::create_dir_all(&man_dir)?;
    let mut written = Vec::new();
    let see_also = see_also();
    for (model, section) in PROGRAMS {
        let mut command = model();
        command.build();
        let name = command.get_name().to_owned();
        let path = man_dir.join(format!("{name}.{section}"));
        fs::write(&path, man_page(command.clone(), section, &see_also)?)?;
        written.push(path);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let dir = outdir.join("completions").join(shell.to_string());
            fs::create_dir_all(&dir)?;
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => name.clone(),
            };
            let path = dir.join(file);
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut command, name.clone(), &mut buffer);
            fs::write(&path, buffer)?;
            written.push(path);
        }
    }
    let path = man_dir.join("mosh-daemon.toml.5");
    fs::write(&path, CONFIG_PAGE)?;
    written.push(path);
    Ok(written)
}

/// Every page this project ships, as `name(section)`.
fn see_also() -> Vec<String> {
    PROGRAMS
        .iter()
        .map(|(model, section)| format!("{}({section})", model().get_name()))
        .chain(["mosh-daemon.toml(5)".to_owned()])
        .collect()
}

/// The subcommands a page describes: not hidden, and not clap's `help`.
fn documented_subcommands(command: &Command) -> impl Iterator<Item = &Command> {
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
}

/// Every subcommand of `command`, depth first, in the same page (clap_mangen
/// would only point to separate pages per subcommand): its full name, what
/// it does, its usage line and its options.
fn render_subcommands(page: &mut Vec<u8>, command: &Command, prefix: &str) -> io::Result<()> {
    for sub in documented_subcommands(command) {
        let name = format!("{prefix} {}", sub.get_name());
        let mut roff = Roff::new();
        roff.control("SS", [name.as_str()]);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            roff.text([roman(about.to_string())]);
        }
        let usage = sub.clone().bin_name(&name).render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        roff.control("PP", [] as [&str; 0]).text([bold(usage)]);
        roff.to_writer(page)?;
        if sub.get_arguments().any(|arg| !arg.is_hide_set()) {
            let mut options = Vec::new();
            Man::new(sub.clone()).render_options_section(&mut options)?;
            let options = String::from_utf8_lossy(&options);
            for line in options.lines().filter(|line| *line != ".SH OPTIONS") {
                page.extend_from_slice(line.as_bytes());
                page.push(b'\n');
            }
        }
        render_subcommands(page, sub, &name)?;
    }
    Ok(())
}

/// One program's man page: clap_mangen's sections, every subcommand's
/// options, then the model's long after-help as NOTES and the other pages
/// as SEE ALSO.
fn man_page(command: Command, section: &str, see_also: &[String]) -> io::Result<Vec<u8>> {
    let name = command.get_name().to_owned();
    let subcommands = command.clone();
    let notes = command
        .get_after_long_help()
        .or_else(|| command.get_after_help())
        .map(ToString::to_string);
    let has_options = command.get_arguments().any(|arg| !arg.is_hide_set());
    let man = Man::new(command)
        .section(section)
        .source(format!("mosh-daemon {}", env!("CARGO_PKG_VERSION")))
        .manual("mosh-daemon");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if has_options {
        man.render_options_section(&mut page)?;
    }
    if documented_subcommands(&subcommands).next().is_some() {
        Roff::new()
            .control("SH", ["SUBCOMMANDS"])
            .to_writer(&mut page)?;
        render_subcommands(&mut page, &subcommands, &name)?;
    }
    let mut roff = Roff::new();
    if let Some(notes) = notes {
        roff.control("SH", ["NOTES"]).text([roman(notes)]);
    }
    let others: Vec<&String> = see_also
        .iter()
        .filter(|page| !page.starts_with(&format!("{name}(")))
        .collect();
    roff.control("SH", ["SEE ALSO"]);
    let mut inlines = Vec::new();
    for (index, page) in others.iter().enumerate() {
        let (page_name, page_section) = page.split_once('(').unwrap_or((page, ""));
        inlines.push(bold(page_name));
        let separator = if index + 1 == others.len() { "" } else { ", " };
        inlines.push(roman(format!("({page_section}{separator}")));
    }
    roff.text(inlines);
    roff.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(one_preamble(&page))
}

/// `page` with roff's apostrophe preamble, which every rendered piece
/// starts with, kept only at the top.
fn one_preamble(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut seen = Vec::new();
    let mut out = Vec::with_capacity(page.len());
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if preamble {
            if seen.contains(&line) {
                continue;
            }
            seen.push(line);
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Deserialize;

    use super::*;

    /// The top-level keys `T` accepts, as serde's derive lists them.
    fn struct_fields<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
        /// A deserializer that only records the field names it is asked for.
        struct Fields(Vec<&'static str>);

        #[derive(Debug)]
        struct Stop;

        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("fields recorded")
            }
        }

        impl std::error::Error for Stop {}

        impl serde::de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }

        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = Stop;

            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }

            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0.extend(fields);
                Err(Stop)
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }

        let mut recorder = Fields(Vec::new());
        assert!(T::deserialize(&mut recorder).is_err());
        recorder.0
    }

    #[test]
    fn the_config_page_documents_every_key() {
        let keys = struct_fields::<mosh_daemon::config::Config>();
        assert!(keys.len() >= 7, "{keys:?}");
        let table_keys = struct_fields::<mosh_daemon::config::FirewallConfig>();
        assert_eq!(table_keys, ["backend", "check_interval"]);
        let control_keys = struct_fields::<mosh_daemon::config::ControlConfig>();
        assert_eq!(control_keys.len(), 4, "{control_keys:?}");
        for key in keys.into_iter().chain(table_keys).chain(control_keys) {
            assert!(
                CONFIG_PAGE.contains(&format!(".B {key}\n"))
                    || CONFIG_PAGE.contains(&format!(".B [{key}]\n")),
                "mosh-daemon.toml.5 does not document `{key}`"
            );
        }
        for backend in ["auto", "nftables", "ufw", "iptables", "firewalld", "none"] {
            assert!(
                CONFIG_PAGE.contains(&format!(".B {backend}\n")),
                "mosh-daemon.toml.5 does not describe backend `{backend}`"
            );
        }
    }

    #[test]
    fn the_config_page_example_is_the_shipped_configuration() {
        let shipped = include_str!("../../systemd/config.toml");
        let start = CONFIG_PAGE.find(".EX\n").expect("the page has an example") + 4;
        let end = CONFIG_PAGE.find(".EE\n").expect("the example ends");
        let example = CONFIG_PAGE[start..end]
            .replace("\\-", "-")
            .replace("\\e", "\\");
        let parsed = mosh_daemon::config::Config::parse(Path::new("example"), &example);
        assert_eq!(
            parsed.expect("the example parses"),
            mosh_daemon::config::Config::parse(Path::new("shipped"), shipped).unwrap()
        );
    }

    #[test]
    fn gen_docs_writes_every_page_and_completion() {
        let outdir = std::env::temp_dir().join(format!("xtask-gen-docs-{}", std::process::id()));
        let written = gen_docs(&outdir).unwrap();
        let names: BTreeSet<String> = written
            .iter()
            .map(|path| {
                path.strip_prefix(&outdir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for expected in [
            "man/mosh.1",
            "man/mosh-client.1",
            "man/mosh-server.1",
            "man/mosh-daemon.8",
            "man/moshctl.8",
            "completions/bash/moshctl",
            "man/mosh-daemon.toml.5",
            "completions/bash/mosh",
            "completions/zsh/_mosh-server",
            "completions/fish/mosh-daemon.fish",
        ] {
            assert!(
                names.contains(expected),
                "{expected} missing from {names:?}"
            );
        }
        let mosh = fs::read_to_string(outdir.join("man/mosh.1")).unwrap();
        for needle in [
            ".TH mosh 1",
            "predict\\-overwrite",
            "SEE ALSO",
            "mosh\\-server",
        ] {
            assert!(mosh.contains(needle), "mosh.1 lacks {needle:?}");
        }
        let server = fs::read_to_string(outdir.join("man/mosh-server.1")).unwrap();
        assert!(server.contains(".SS \"mosh-server new\""), "{server}");
        assert!(server.contains("LOCALADDR"), "{server}");
        assert!(!server.contains("mosh\\-server\\-new(1)"), "{server}");
        let moshctl = fs::read_to_string(outdir.join("man/moshctl.8")).unwrap();
        assert!(
            moshctl.contains(".SS \"moshctl firewall status\""),
            "{moshctl}"
        );
        assert!(moshctl.contains("\\-\\-idle"), "{moshctl}");
        for page in [&mosh, &server, &moshctl] {
            assert_eq!(page.matches(".el .ds Aq").count(), 1, "{page}");
            assert_eq!(page.matches(".SH OPTIONS").count(), 1, "{page}");
        }
        let bash = fs::read_to_string(outdir.join("completions/bash/mosh")).unwrap();
        assert!(bash.contains("--experimental-remote-ip"), "{bash}");
        fs::remove_dir_all(&outdir).unwrap();
    }
}
