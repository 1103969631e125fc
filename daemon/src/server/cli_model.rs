//! A clap model of the `mosh-server` command line, for the man page and
//! shell completions only: `mosh-server` parses with [`super::args`], which
//! follows stock mosh's getopt rules exactly. The tests tie the two
//! together.

use clap::{Arg, ArgAction, Command};

/// The `mosh-server` command line as clap sees it.
pub fn command() -> Command {
    let value = |id: &'static str, short: char, name: &'static str| {
        Arg::new(id)
            .short(short)
            .action(ArgAction::Set)
            .value_name(name)
    };
    let new = Command::new("new")
        .about("start a session and print MOSH CONNECT PORT KEY")
        .override_usage(
            "mosh-server new [-s] [-v] [-i LOCALADDR] [-p PORT[:PORT2]] [-c COLORS] \
             [-l NAME=VALUE]... [--scrollback=LINES] [-- COMMAND...]",
        )
        .disable_help_flag(true)
        .args([
            Arg::new("ssh-address")
                .short('s')
                .action(ArgAction::SetTrue)
                .help("bind to the address ssh arrived at (from SSH_CONNECTION)"),
            Arg::new("verbose")
                .short('v')
                .action(ArgAction::Count)
                .help("verbose: log to stderr and stay in the foreground"),
            value("local-address", 'i', "LOCALADDR")
                .help("IP address to bind to (default: any interface)"),
            value("port", 'p', "PORT[:PORT2]")
                .help("UDP port or inclusive range to bind (default: 60001:60999)"),
            value("colors", 'c', "COLORS")
                .help("number of colours of the client's terminal; 256 selects xterm-256color"),
            value("locale", 'l', "NAME=VALUE")
                .action(ArgAction::Append)
                .help("locale variable to use if the server's own locale is not UTF-8"),
            Arg::new("scrollback")
                .long("scrollback")
                .action(ArgAction::Set)
                .value_name("LINES")
                .help(
                    "lines of scrollback history kept for mosh-daemon's own client \
                     (default 10000, or the daemon's scrollback setting; 0: none)",
                ),
            value("ignored", '@', "ARG")
                .hide(true)
                .help("accepted and ignored, as by stock mosh-server"),
            Arg::new("command")
                .value_name("COMMAND")
                .num_args(1..)
                .last(true)
                .help("command to run instead of the login shell"),
        ]);
    Command::new("mosh-server")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .about("Server of the mobile shell, started over ssh by mosh")
        .long_about(
            "mosh-server new starts a mosh session for the invoking user and prints \
             MOSH CONNECT PORT KEY. When mosh-daemon answers on \
             /run/mosh-daemon/control.sock the daemon runs the session; otherwise \
             mosh-server detaches and serves it itself, as stock mosh-server does. \
             It speaks the mosh 1.4 protocol.",
        )
        .args_conflicts_with_subcommands(true)
        .disable_help_subcommand(true)
        .args([
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("print version information"),
            Arg::new("ip")
                .value_name("IP")
                .help("legacy form: address to bind to"),
            Arg::new("legacy-port")
                .value_name("PORT")
                .help("legacy form: UDP port or range to bind"),
        ])
        .subcommand(new)
        .after_long_help(
            "Environment: MOSH_SERVER_NETWORK_TMOUT and MOSH_SERVER_SIGNAL_TMOUT (seconds \
             without contact after which the session ends, always or on SIGUSR1), LANG and \
             LC_* (a UTF-8 locale is required).",
        )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::server::args::{self, Invocation};

    const SSH_CONNECTION: &str = "192.0.2.1 50000 127.0.0.1 22";

    fn sample(short: char) -> &'static str {
        match short {
            'i' => "127.0.0.1",
            'p' => "60001:60010",
            'c' => "256",
            'l' => "LANG=C.UTF-8",
            '-' => "100",
            _ => "x",
        }
    }

    fn new_command() -> Command {
        command()
            .find_subcommand("new")
            .expect("the model has `new`")
            .clone()
    }

    #[test]
    fn the_model_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn every_option_in_the_model_is_accepted_by_the_real_parser() {
        let mut tried = 0;
        for arg in new_command()
            .get_arguments()
            .filter(|arg| !arg.is_positional())
        {
            let flag = match (arg.get_short(), arg.get_long()) {
                (Some(short), None) => format!("-{short}"),
                (None, Some("scrollback")) => "--scrollback".to_owned(),
                _ => panic!("unexpected option {:?} of mosh-server new", arg.get_id()),
            };
            let short = arg.get_short().unwrap_or('-');
            let mut line = vec![OsString::from("new"), OsString::from(flag)];
            if matches!(arg.get_action(), ArgAction::Set | ArgAction::Append) {
                line.push(sample(short).into());
            }
            line.extend(["--", "true"].map(OsString::from));
            match args::parse(&line, Some(SSH_CONNECTION)) {
                Ok(Invocation::Run { warnings, options }) => {
                    assert!(warnings.is_empty(), "{line:?}: {warnings:?}");
                    assert_eq!(options.command, Some(vec![OsString::from("true")]));
                }
                other => panic!("{line:?}: {other:?}"),
            }
            tried += 1;
        }
        assert_eq!(tried, 8);
        for top in ["--version", "--help", "-h"] {
            let parsed = args::parse(&[OsString::from(top)], None);
            assert!(
                matches!(parsed, Ok(Invocation::Help | Invocation::Version)),
                "{top}: {parsed:?}"
            );
        }
    }

    #[test]
    fn every_option_in_the_usage_text_is_in_the_model() {
        let new = new_command();
        let usage = args::usage("mosh-server");
        let options: Vec<&str> = usage
            .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']'))
            .filter(|word| word.starts_with('-') && *word != "--")
            .collect();
        assert_eq!(options, ["-s", "-v", "-i", "-p", "-c", "-l"]);
        for option in options {
            assert!(
                new.get_arguments()
                    .any(|arg| arg.get_short() == option.chars().nth(1)),
                "{option} is in mosh-server's usage text but not in the model"
            );
        }
    }
}
