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
             [-l NAME=VALUE]... [--scrollback=LINES] [--reattach] [-- COMMAND...]",
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
            Arg::new("reattach")
                .long("reattach")
                .action(ArgAction::SetTrue)
                .help(
                    "attach to your most recently active detached session when mosh-daemon \
                     has one (a COMMAND is then not run), else start a new session; also \
                     accepted before `new`, so that mosh --server=\"mosh-server --reattach\" \
                     works",
                ),
            Arg::new("command")
                .value_name("COMMAND")
                .num_args(1..)
                .last(true)
                .help("command to run instead of the login shell"),
        ]);
    let attach = Command::new("attach")
        .about("give one of your running sessions a new key and print MOSH CONNECT PORT KEY")
        .long_about(
            "Asks mosh-daemon to re-key one of your sessions and prints MOSH CONNECT PORT KEY \
             as `new` does: a new client (any mosh client) connects with it and gets the \
             session's whole current screen; the old key stops working at once. Without ID, \
             the most recently active detached session (no client heard from in the last 10 \
             seconds) is chosen, and stderr says so when there were several. Exits 1 with one \
             line on stderr when there is no detached session (so `mosh-server attach || \
             mosh-server new` works), when the session is another user's (root included), \
             unknown or ending, when its client is live and --force is not given, when \
             attach requests come too often, and without mosh-daemon.",
        )
        .override_usage("mosh-server attach [-v] [--force] [ID]")
        .disable_help_flag(true)
        .args([
            Arg::new("force")
                .long("force")
                .short('f')
                .action(ArgAction::SetTrue)
                .help("take the session over even if its client is live (the old client stops)"),
            Arg::new("verbose")
                .short('v')
                .action(ArgAction::Count)
                .help("say why mosh-daemon could not be reached"),
            Arg::new("id")
                .value_name("ID")
                .help("the session, as `moshctl list` shows it"),
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
        .subcommand(attach)
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
                (None, Some("reattach")) => "--reattach".to_owned(),
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
        assert_eq!(tried, 9);
        for top in ["--version", "--help", "-h"] {
            let parsed = args::parse(&[OsString::from(top)], None);
            assert!(
                matches!(parsed, Ok(Invocation::Help | Invocation::Version)),
                "{top}: {parsed:?}"
            );
        }
    }

    #[test]
    fn every_attach_option_in_the_model_is_accepted_by_the_real_parser() {
        let attach = command()
            .find_subcommand("attach")
            .expect("the model has `attach`")
            .clone();
        let mut line = vec![OsString::from("attach")];
        for arg in attach.get_arguments() {
            if arg.is_positional() {
                line.push("0a1b2c3d".into());
                continue;
            }
            if let Some(long) = arg.get_long() {
                line.push(format!("--{long}").into());
            }
            if let Some(short) = arg.get_short() {
                line.push(format!("-{short}").into());
            }
        }
        match args::parse(&line, None) {
            Ok(Invocation::Attach(options)) => {
                assert_eq!(options.id.as_deref(), Some("0a1b2c3d"));
                assert!(options.force);
                assert_eq!(options.verbose, 1);
            }
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn every_option_in_the_usage_text_is_in_the_model() {
        let new = new_command();
        let usage = args::usage("mosh-server");
        let new_line = usage.lines().next().unwrap_or_default();
        let options: Vec<&str> = new_line
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
