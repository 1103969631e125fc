//! `mosh`: starts a mosh session to `[user@]host` over ssh and hands the
//! terminal to `mosh-client`.

use std::ffi::OsString;
use std::process::ExitCode;

use mosh_client::launcher::{self, args};

fn usage(program: &str) -> String {
    format!(
        "Usage: {program} [options] [--] [user@]host [command...]
        --client=PATH        mosh client on this machine (default: mosh-client)
        --server=COMMAND     mosh server on the remote machine (default: mosh-server)

        --predict=adaptive      local echo for slower links [default]
-a      --predict=always        local echo even on fast links
-n      --predict=never         never local echo
        --predict=experimental  local echo even when it may be wrong
-o      --predict-overwrite     predictions overwrite instead of inserting

-4      --family=inet        IPv4 only
-6      --family=inet6       IPv6 only
        --family=auto        the host's only address family
        --family=all         all address families
        --family=prefer-inet all families, IPv4 first [default]
        --family=prefer-inet6 all families, IPv6 first
-p PORT[:PORT2]
        --port=PORT[:PORT2]  server-side UDP port or range
        --bind-server={{ssh|any|IP}}  address the server replies from (default: ssh)

        --ssh=COMMAND        ssh command to run (default: ssh), e.g. \"ssh -p 2222\"
        --no-ssh-pty         no pseudo-terminal for the ssh connection
        --no-init            do not switch the terminal to its alternate screen
        --local              run mosh-server here, without ssh
        --experimental-remote-ip=(local|remote|proxy)
                             how to find the server's IP address (default: proxy)

        --help               this message
        --version            version information
"
    )
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mosh".to_owned());
    let rest: Vec<OsString> = argv.collect();
    let cmdline = rest
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    match args::parse(&rest) {
        Ok(args::Invocation::Help) => {
            print!("{}", usage(&program));
            ExitCode::SUCCESS
        }
        Ok(args::Invocation::Version) => {
            println!(
                "mosh (mosh-daemon {}) [speaks the mosh 1.4 protocol]",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Ok(args::Invocation::FakeProxy { host, port, family }) => {
            match launcher::proxy::run(&host, &port, family) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("{program}: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(args::Invocation::Launch(options)) => {
            let self_program = std::env::current_exe()
                .map(|path| path.to_string_lossy().into_owned())
                .unwrap_or_else(|_| program.clone());
            let error = launcher::launch(&options, &self_program, &cmdline);
            eprintln!("{program}: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            eprint!("{}", usage(&program));
            ExitCode::FAILURE
        }
    }
}
