//! `/etc/mosh-daemon/config.toml` as the daemon parses it (at start and on
//! SIGHUP): a configuration that parses keeps every documented bound, and
//! a refusal names a line of the file and a non-empty key.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mosh_daemon::config::{Config, ConfigError};
use mosh_daemon::server::args::MAX_SCROLLBACK;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the file as UTF-8 text; other bytes never get here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("/etc/mosh-daemon/config.toml"), text) {
        Ok(config) => {
            let pool = config.port_range;
            assert!(1 <= pool.low && pool.low <= pool.high);
            assert!(pool.size() >= 1 && pool.contains(pool.low) && pool.contains(pool.high));
            assert!(config.max_sessions > 0 && config.max_sessions_per_user > 0);
            assert!(config.attach_burst > 0 && config.attach_per_minute > 0);
            assert!(config.scrollback <= MAX_SCROLLBACK);
            assert!(config.firewall.check_interval > 0);
            let _ = (config.idle_timeout(), config.firewall.check_interval());
        }
        Err(ref error @ ConfigError::Invalid { line, ref key, .. }) => {
            let message = error.to_string();
            if let Some(line) = line {
                assert!(line >= 1 && line <= text.lines().count() + 1, "{message}");
            }
            if let Some(key) = key {
                assert!(!key.is_empty(), "{message}");
            }
        }
        Err(error) => panic!("parsing text read a file: {error}"),
    }
});
