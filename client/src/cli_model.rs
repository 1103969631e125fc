//! A clap model of the `mosh-client` command line, for the man page and
//! shell completions only: the client parses with [`crate::cli`], which
//! follows stock mosh exactly. The tests tie the two together.

use clap::{Arg, ArgAction, Command};

/// The `mosh-client` command line as clap sees it.
pub fn command() -> Command {
    Command::new("mosh-client")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .disable_help_flag(true)
        .about("Client of the mobile shell: shows a running mosh-server's screen")
        .long_about(
            "mosh-client connects to a mosh-server already started on the remote host \
             (normally by the mosh launcher) at IP and PORT, with the session key \
             taken from the MOSH_KEY environment variable, never from the command \
             line. It speaks the mosh 1.4 protocol.",
        )
        .override_usage("MOSH_KEY=KEY mosh-client [-v] [-# 'ARGS'] IP PORT\n       mosh-client -c")
        .args([
            Arg::new("verbose")
                .short('v')
                .action(ArgAction::Count)
                .help("verbose: report network events, and the extensions the server enabled, on stderr"),
            Arg::new("args")
                .short('#')
                .action(ArgAction::Set)
                .value_name("ARGS")
                .help("the mosh command line, shown by ps; otherwise ignored"),
            Arg::new("colors")
                .short('c')
                .action(ArgAction::SetTrue)
                .help("print the number of colours of $TERM and exit"),
            Arg::new("help")
                .long("help")
                .action(ArgAction::Help)
                .help("print usage and exit"),
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("print version information"),
            Arg::new("ip")
                .value_name("IP")
                .help("numeric IP address of the server"),
            Arg::new("port")
                .value_name("PORT")
                .help("UDP port of the server"),
        ])
        .after_long_help(
            "Environment: MOSH_KEY (the session key, required), MOSH_PREDICTION_DISPLAY \
             (adaptive, always, never or experimental), MOSH_PREDICTION_OVERWRITE=yes, \
             MOSH_ESCAPE_KEY, MOSH_TITLE_NOPREFIX, MOSH_NO_TERM_INIT, MOSH_CIPHER (auto, \
             the default: AES-256-GCM with X25519 forward secrecy when the server is \
             mosh-daemon's, AES-128-OCB with a stock server; ocb: always stock \
             AES-128-OCB), MOSH_NO_SCROLLBACK (set: lines that scroll off a \
             mosh-daemon server's screen are not written into this terminal's \
             scrollback). With -v the cipher suite in use is logged as it changes.",
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Command as Parsed};

    const KEY: &str = "zs6ZmRqpU4W6cyNwF9UzTA";

    fn parse(words: &[String]) -> Result<Parsed, cli::CliError> {
        cli::parse(words, |name| (name == "MOSH_KEY").then(|| KEY.to_owned()))
    }

    #[test]
    fn the_model_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn every_option_in_the_model_is_accepted_by_the_real_parser() {
        let mut tried = 0;
        for arg in command().get_arguments().filter(|arg| !arg.is_positional()) {
            let mut line = match (arg.get_short(), arg.get_long()) {
                (Some(short), _) => vec![format!("-{short}")],
                (None, Some(long)) => vec![format!("--{long}")],
                (None, None) => panic!("{:?} has no spelling", arg.get_id()),
            };
            if matches!(arg.get_action(), ArgAction::Set) {
                line.push("mosh host".into());
            }
            line.extend(["127.0.0.1".to_owned(), "60001".to_owned()]);
            let result = parse(&line);
            assert!(result.is_ok(), "{line:?}: {result:?}");
            tried += 1;
        }
        assert_eq!(tried, 5);
    }

    #[test]
    fn every_option_in_the_usage_text_is_in_the_model() {
        let command = command();
        let options: Vec<&str> = cli::USAGE
            .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']'))
            .filter(|word| word.starts_with('-'))
            .collect();
        assert_eq!(options, ["-#", "-c"]);
        for option in options {
            assert!(
                command
                    .get_arguments()
                    .any(|arg| arg.get_short() == option.chars().nth(1)),
                "{option} is in mosh-client's usage text but not in the model"
            );
        }
    }
}
