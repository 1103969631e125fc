//! A clap model of the `mosh` command line, for the man page and shell
//! completions only: the launcher itself parses with [`super::args`], which
//! follows stock mosh exactly. The tests below tie the two together, so an
//! option added to one and not the other fails the build's tests.

use clap::{Arg, ArgAction, Command};

/// The `mosh` command line as clap sees it.
pub fn command() -> Command {
    let flag = |id: &'static str| Arg::new(id).action(ArgAction::SetTrue);
    let value =
        |id: &'static str, name: &'static str| Arg::new(id).action(ArgAction::Set).value_name(name);
    Command::new("mosh")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .about("Mobile shell: a roaming, local-echoing remote terminal started over ssh")
        .long_about(
            "mosh logs in to HOST with ssh, starts mosh-server there and hands the \
             terminal to mosh-client, which keeps the session alive over UDP through \
             roaming, sleep and packet loss, and echoes keystrokes locally on slow \
             links. It speaks the mosh 1.4 protocol and works with stock mosh-server.",
        )
        .override_usage("mosh [OPTIONS] [--] [user@]host [command...]")
        .args([
            value("client", "PATH")
                .long("client")
                .help("mosh client on this machine (default: mosh-client)"),
            value("server", "COMMAND")
                .long("server")
                .help("mosh server on the remote machine (default: mosh-server)"),
            value("predict", "MODE")
                .long("predict")
                .value_parser(["adaptive", "always", "never", "experimental"])
                .help("local echo: adaptive (default), always, never or experimental"),
            flag("always").short('a').help("same as --predict=always"),
            flag("never").short('n').help("same as --predict=never"),
            flag("predict-overwrite")
                .short('o')
                .long("predict-overwrite")
                .help("predictions overwrite instead of inserting"),
            value("cipher", "CIPHER")
                .long("cipher")
                .value_parser(["auto", "ocb"])
                .help(
                    "auto (default): AES-256-GCM with X25519 forward secrecy when the \
                     server is mosh-daemon's, AES-128-OCB with a stock one; ocb: stock \
                     AES-128-OCB for this session",
                ),
            value("family", "FAMILY")
                .long("family")
                .value_parser([
                    "inet",
                    "inet6",
                    "auto",
                    "all",
                    "prefer-inet",
                    "prefer-inet6",
                ])
                .help("address families to use (default: prefer-inet)"),
            flag("inet").short('4').help("IPv4 only (--family=inet)"),
            flag("inet6").short('6').help("IPv6 only (--family=inet6)"),
            value("port", "PORT[:PORT2]")
                .short('p')
                .long("port")
                .help("server-side UDP port or range"),
            value("bind-server", "ssh|any|IP")
                .long("bind-server")
                .help("address the server replies from (default: ssh)"),
            value("ssh", "COMMAND")
                .long("ssh")
                .help("ssh command to run (default: ssh), e.g. \"ssh -p 2222\""),
            flag("ssh-pty")
                .long("ssh-pty")
                .help("give the ssh connection a pseudo-terminal (default)"),
            flag("no-ssh-pty")
                .long("no-ssh-pty")
                .help("no pseudo-terminal for the ssh connection"),
            flag("init")
                .long("init")
                .help("switch the terminal to its alternate screen (default)"),
            flag("no-init")
                .long("no-init")
                .help("do not switch the terminal to its alternate screen"),
            flag("no-scrollback").long("no-scrollback").help(
                "keep lines that scroll off the server's screen out of this terminal's \
                 scrollback (with mosh-daemon's server; stock servers send none)",
            ),
            flag("local")
                .long("local")
                .help("run mosh-server on this machine, without ssh"),
            value("experimental-remote-ip", "METHOD")
                .long("experimental-remote-ip")
                .value_parser(["proxy", "local", "remote"])
                .help("how to find the server's IP address (default: proxy)"),
            flag("fake-proxy")
                .long("fake-proxy")
                .hide(true)
                .help("internal: act as ssh's ProxyCommand"),
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("print version information"),
            Arg::new("host")
                .value_name("[user@]host")
                .required(true)
                .help("the machine to log in to"),
            Arg::new("command")
                .value_name("command")
                .num_args(0..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .help("command to run instead of the login shell"),
        ])
        .after_long_help(
            "MOSH_PREDICTION_DISPLAY sets the default of --predict, MOSH_CIPHER that of \
             --cipher. The escape key is Ctrl-^ (Ctrl-^ . quits, Ctrl-^ Ctrl-Z \
             suspends); MOSH_ESCAPE_KEY changes it.",
        )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::launcher::args::{self, Invocation};

    fn parse(words: &[String]) -> Result<Invocation, args::ArgsError> {
        let words: Vec<OsString> = words.iter().map(OsString::from).collect();
        args::parse(&words)
    }

    /// Values each option is tried with: its possible values, else one
    /// the real parser accepts.
    fn samples(arg: &Arg) -> Vec<String> {
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|value| value.get_name().to_owned())
            .collect();
        if !possible.is_empty() {
            return possible;
        }
        match arg.get_id().as_str() {
            "port" => vec!["60001".into(), "60001:60010".into()],
            "bind-server" => vec!["ssh".into(), "any".into(), "127.0.0.1".into()],
            _ => vec!["word".into()],
        }
    }

    #[test]
    fn the_model_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn every_option_in_the_model_is_accepted_by_the_real_parser() {
        let mut command = command();
        command.build();
        let mut tried = 0;
        for arg in command.get_arguments().filter(|arg| !arg.is_positional()) {
            let takes_value = matches!(arg.get_action(), ArgAction::Set);
            let mut spellings = Vec::new();
            if let Some(long) = arg.get_long() {
                spellings.push(format!("--{long}"));
            }
            if let Some(short) = arg.get_short() {
                spellings.push(format!("-{short}"));
            }
            assert!(!spellings.is_empty(), "{:?} has no spelling", arg.get_id());
            for spelling in spellings {
                let lines: Vec<Vec<String>> = if takes_value {
                    samples(arg)
                        .into_iter()
                        .map(|value| vec![spelling.clone(), value])
                        .collect()
                } else {
                    vec![vec![spelling.clone()]]
                };
                for mut line in lines {
                    line.extend(["host".to_owned(), "22".to_owned()]);
                    let result = parse(&line);
                    assert!(result.is_ok(), "{line:?}: {result:?}");
                    tried += 1;
                }
            }
        }
        assert!(tried > 20, "only {tried} command lines tried");
    }

    #[test]
    fn every_option_in_the_usage_text_is_in_the_model() {
        let mut command = command();
        command.build();
        let options = option_words(&args::usage("mosh"));
        assert!(options.len() > 15, "{options:?}");
        for option in options {
            let known = command
                .get_arguments()
                .any(|arg| match option.strip_prefix("--") {
                    Some(long) => arg.get_long() == Some(long),
                    None => option.chars().nth(1) == arg.get_short(),
                });
            assert!(
                known,
                "{option} is in mosh's usage text but not in the model"
            );
        }
    }

    #[test]
    fn positional_arguments_reach_the_same_place() {
        let line: Vec<String> = ["-a", "alice@example.org", "top", "-d", "1"]
            .iter()
            .map(|word| word.to_string())
            .collect();
        let Ok(Invocation::Launch(options)) = parse(&line) else {
            panic!("not a launch");
        };
        let matches = command()
            .try_get_matches_from(std::iter::once("mosh").chain(line.iter().map(String::as_str)));
        let matches = matches.expect("the model accepts the same line");
        assert_eq!(
            matches.get_one::<String>("host"),
            Some(&options.destination)
        );
        let command: Vec<&String> = matches.get_many("command").unwrap().collect();
        assert_eq!(command, options.command.iter().collect::<Vec<_>>());
    }

    /// The `-x` and `--name` words of a usage text (values after `=`
    /// dropped).
    fn option_words(text: &str) -> Vec<String> {
        text.split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '"' | '(' | ','))
            .filter(|word| word.starts_with('-') && *word != "--" && word.len() > 1)
            .map(|word| word.split('=').next().unwrap_or(word).to_owned())
            .collect()
    }
}
