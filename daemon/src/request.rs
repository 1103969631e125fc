//! The daemon's checked form of a control request: [`parse_request`] turns
//! one request line into a [`CheckedRequest`], whose new-session part is a
//! [`SessionRequest`] of typed fields, or says what is wrong with it
//! ([`RequestError`]). Nothing unchecked reaches a worker: every field of
//! a new session is parsed here, before any port is reserved or process
//! started; only what depends on the configuration (the port pool, the
//! limits) is left to the registry.
//!
//! The helper (`mosh-server new`) uses the same parsers on what it is about
//! to send, so that it only asks for what the daemon accepts.

use std::fmt;
use std::net::{IpAddr, UdpSocket};

use crate::control::{AttachSession, KillTarget, NewSession, Request};
use crate::server::args::MAX_SCROLLBACK;
use crate::worker::is_locale_variable;

/// A request whose every field has been checked.
pub type CheckedRequest = Request<SessionRequest>;

/// Longest `SSH_CONNECTION` accepted, in bytes: four fields of at most an
/// IPv6 address with a zone, or a port.
pub const MAX_SSH_CONNECTION: usize = 256;

/// Most locale settings in one request (there are 15 locale variables).
pub const MAX_LOCALE_SETTINGS: usize = 32;

/// Longest value of one locale setting, in bytes.
pub const MAX_LOCALE_VALUE: usize = 256;

/// Longest user name in a kill request, in bytes.
pub const MAX_USER_NAME: usize = 256;

/// Bytes of a refused value quoted back in an error message.
const QUOTED: usize = 64;

/// Parses one request line (without its newline) and checks every field.
pub fn parse_request(line: &[u8]) -> Result<CheckedRequest, RequestError> {
    let request: Request = serde_json::from_slice(line).map_err(RequestError::Malformed)?;
    Ok(check(request)?)
}

/// Checks every field of a request as the helper or a client sent it.
pub fn check(request: Request) -> Result<CheckedRequest, InvalidRequest> {
    Ok(match request {
        Request::New(new) => Request::New(SessionRequest::try_from(new)?),
        Request::Attach(attach) => Request::Attach(check_attach(attach)?),
        Request::List {} => Request::List {},
        Request::Kill(target) => Request::Kill(check_kill(target)?),
        Request::Status {} => Request::Status {},
        Request::Firewall { action } => Request::Firewall { action },
    })
}

/// Why a request line was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The line is not a request (not JSON, an unknown request or field,
    /// a value of the wrong type).
    #[error("bad request: {0}")]
    Malformed(serde_json::Error),
    /// A field of the request has a value the daemon does not accept.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
}

/// A field of a request that the daemon refuses; one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// The bind address is not an IP address.
    #[error("bind address {0} is not an IP address")]
    BindNotAnAddress(Quoted),
    /// The bind address is not one of this host's addresses.
    #[error("bind address {0} is not an address of this host")]
    BindNotLocal(IpAddr),
    /// The command is an empty list.
    #[error("the command is empty (leave it out for the login shell)")]
    EmptyCommand,
    /// The command's program is an empty string.
    #[error("the command's program name is empty")]
    EmptyProgram,
    /// A word of the command holds a NUL byte.
    #[error("word {index} of the command contains a NUL byte")]
    NulInCommand {
        /// Which word, from 0 (the program).
        index: usize,
    },
    /// A locale setting is not `NAME=VALUE`.
    #[error("locale setting {0} is not NAME=VALUE")]
    LocaleNotAssignment(Quoted),
    /// A locale setting names a variable that is not a locale variable.
    #[error("{0} is not a locale variable (LANG, LANGUAGE or LC_*)")]
    NotLocaleVariable(Quoted),
    /// A locale setting's value holds a control character or is too long.
    #[error(
        "the value of locale variable {name} has a control character or is longer than {MAX_LOCALE_VALUE} bytes"
    )]
    BadLocaleValue {
        /// The variable.
        name: String,
    },
    /// More locale settings than [`MAX_LOCALE_SETTINGS`].
    #[error("{0} locale settings (at most {MAX_LOCALE_SETTINGS})")]
    TooManyLocaleSettings(usize),
    /// The colour count is not a C `int`, as `mosh-server -c` takes.
    #[error("colour count {0} is not a number from -2147483648 to 2147483647")]
    Colors(i64),
    /// `SSH_CONNECTION` is longer than [`MAX_SSH_CONNECTION`].
    #[error("SSH_CONNECTION is {0} bytes long (at most {MAX_SSH_CONNECTION})")]
    SshConnectionTooLong(usize),
    /// `SSH_CONNECTION` is not `CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`.
    #[error("SSH_CONNECTION {0} is not CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT")]
    SshConnectionMalformed(Quoted),
    /// The client's port range is backwards or starts at 0.
    #[error("port range {low}:{high} is not LOW:HIGH with 1 <= LOW <= HIGH (or 0 for any)")]
    PortRange {
        /// The first port.
        low: u16,
        /// The last port.
        high: u16,
    },
    /// More scrollback lines than a session may keep.
    #[error("scrollback of {0} lines (at most {MAX_SCROLLBACK})")]
    Scrollback(usize),
    /// A session id is not one the daemon makes (8 hex digits).
    #[error("{0} is not a session id")]
    SessionId(Quoted),
    /// A user name in a kill request is empty or too long.
    #[error("user name {0} is empty or longer than {MAX_USER_NAME} bytes")]
    UserName(Quoted),
}

/// A refused value as it appears in a message: quoted and escaped, its
/// first [`QUOTED`] characters only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted(String);

impl Quoted {
    fn new(text: &str) -> Self {
        let shown: String = text.chars().take(QUOTED).collect();
        let more = if shown.len() < text.len() { "…" } else { "" };
        Self(format!("{shown:?}{more}"))
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `mosh-server new` asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The command, or `None` for the login shell.
    pub command: Option<SessionCommand>,
    /// The client's colour count.
    pub colors: i32,
    /// An address of this host to bind first, if any.
    pub bind: Option<IpAddr>,
    /// The ports the client accepts, `LOW <= HIGH`, or `None` for any.
    pub ports: Option<(u16, u16)>,
    /// The locale for the session.
    pub locale: Vec<LocaleSetting>,
    /// The helper's `SSH_CONNECTION`.
    pub ssh_connection: Option<SshConnection>,
    /// Lines of history to keep, or `None` for the daemon's setting.
    pub scrollback: Option<usize>,
}

impl TryFrom<NewSession> for SessionRequest {
    type Error = InvalidRequest;

    fn try_from(new: NewSession) -> Result<Self, InvalidRequest> {
        if new.locale.len() > MAX_LOCALE_SETTINGS {
            return Err(InvalidRequest::TooManyLocaleSettings(new.locale.len()));
        }
        if let Some(lines) = new.scrollback.filter(|&lines| lines > MAX_SCROLLBACK) {
            return Err(InvalidRequest::Scrollback(lines));
        }
        Ok(Self {
            command: new.command.map(SessionCommand::new).transpose()?,
            colors: i32::try_from(new.colors).map_err(|_| InvalidRequest::Colors(new.colors))?,
            bind: new.bind.as_deref().map(local_address).transpose()?,
            ports: new.ports.map(port_range).transpose()?.flatten(),
            locale: new
                .locale
                .iter()
                .map(|setting| LocaleSetting::parse(setting))
                .collect::<Result<_, _>>()?,
            ssh_connection: new
                .ssh_connection
                .as_deref()
                .map(SshConnection::parse)
                .transpose()?,
            scrollback: new.scrollback,
        })
    }
}

/// Parses a bind address and checks that this host has it (or that it is
/// the unspecified address): a UDP socket can be bound to it.
pub fn local_address(text: &str) -> Result<IpAddr, InvalidRequest> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| InvalidRequest::BindNotAnAddress(Quoted::new(text)))?;
    if ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(InvalidRequest::BindNotLocal(ip));
    }
    match UdpSocket::bind((ip, 0)) {
        Ok(_) => Ok(ip),
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::EADDRNOTAVAIL | libc::EINVAL)
            ) =>
        {
            Err(InvalidRequest::BindNotLocal(ip))
        }
        // Out of descriptors or memory says nothing about the address; the
        // port allocation that follows reports it.
        Err(_) => Ok(ip),
    }
}

/// `(0, 0)` is any port (`None`); otherwise `1 <= low <= high`.
fn port_range((low, high): (u16, u16)) -> Result<Option<(u16, u16)>, InvalidRequest> {
    match (low, high) {
        (0, 0) => Ok(None),
        (low, high) if low != 0 && low <= high => Ok(Some((low, high))),
        (low, high) => Err(InvalidRequest::PortRange { low, high }),
    }
}

/// A session's command: a program and its arguments, none with a NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCommand(Vec<String>);

impl SessionCommand {
    /// Checks a command line.
    pub fn new(words: Vec<String>) -> Result<Self, InvalidRequest> {
        match words.first() {
            None => return Err(InvalidRequest::EmptyCommand),
            Some(program) if program.is_empty() => return Err(InvalidRequest::EmptyProgram),
            Some(_) => {}
        }
        if let Some(index) = words.iter().position(|word| word.contains('\0')) {
            return Err(InvalidRequest::NulInCommand { index });
        }
        Ok(Self(words))
    }

    /// The words, program first.
    pub fn into_words(self) -> Vec<String> {
        self.0
    }
}

/// One locale variable for the session: `LANG`, `LANGUAGE` or `LC_*`, with
/// a value of at most [`MAX_LOCALE_VALUE`] bytes and no control character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocaleSetting {
    name: String,
    value: String,
}

impl LocaleSetting {
    /// Parses `NAME=VALUE`.
    pub fn parse(text: &str) -> Result<Self, InvalidRequest> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| InvalidRequest::LocaleNotAssignment(Quoted::new(text)))?;
        if !is_locale_variable(name) {
            return Err(InvalidRequest::NotLocaleVariable(Quoted::new(name)));
        }
        if value.len() > MAX_LOCALE_VALUE || value.chars().any(char::is_control) {
            return Err(InvalidRequest::BadLocaleValue { name: name.into() });
        }
        Ok(Self {
            name: name.into(),
            value: value.into(),
        })
    }
}

impl fmt::Display for LocaleSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// An `SSH_CONNECTION` value: client address and port, server address and
/// port (an address may carry an IPv6 zone, `%eth0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConnection(String);

impl SshConnection {
    /// Parses `CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`.
    pub fn parse(text: &str) -> Result<Self, InvalidRequest> {
        if text.len() > MAX_SSH_CONNECTION {
            return Err(InvalidRequest::SshConnectionTooLong(text.len()));
        }
        let malformed = || InvalidRequest::SshConnectionMalformed(Quoted::new(text));
        let fields: Vec<&str> = text.split(' ').collect();
        let [client, client_port, server, server_port] = fields[..] else {
            return Err(malformed());
        };
        let address = |field: &str| {
            let bare = field.split_once('%').map_or(field, |(address, _)| address);
            bare.parse::<IpAddr>().is_ok()
        };
        let port = |field: &str| field.parse::<u16>().is_ok();
        if address(client) && port(client_port) && address(server) && port(server_port) {
            Ok(Self(text.to_owned()))
        } else {
            Err(malformed())
        }
    }

    /// The value, as the session's environment gets it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn session_id(id: &str) -> Result<(), InvalidRequest> {
    let valid = id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(())
    } else {
        Err(InvalidRequest::SessionId(Quoted::new(id)))
    }
}

fn check_attach(attach: AttachSession) -> Result<AttachSession, InvalidRequest> {
    if let Some(id) = &attach.id {
        session_id(id)?;
    }
    Ok(attach)
}

fn check_kill(target: KillTarget) -> Result<KillTarget, InvalidRequest> {
    for id in &target.ids {
        session_id(id)?;
    }
    if let Some(name) = &target.user
        && (name.is_empty() || name.len() > MAX_USER_NAME)
    {
        return Err(InvalidRequest::UserName(Quoted::new(name)));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "request": "new", "command": null, "colors": 256, "bind": null,
            "ports": null, "locale": ["LANG=C.UTF-8"], "ssh_connection": null,
        })
    }

    fn with(field: &str, value: &str) -> serde_json::Value {
        let mut request = base();
        request[field] = serde_json::from_str(value).unwrap();
        request
    }

    fn new_session(request: &serde_json::Value) -> Result<SessionRequest, String> {
        match parse_request(&serde_json::to_vec(request).unwrap()) {
            Ok(Request::New(session)) => Ok(session),
            Ok(other) => panic!("not a new session: {other:?}"),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn a_helpers_request_is_accepted() {
        let session = new_session(&base()).unwrap();
        assert_eq!(session.colors, 256);
        assert_eq!(session.locale[0].to_string(), "LANG=C.UTF-8");
        let session = new_session(&with(
            "ssh_connection",
            "\"fe80::1%eth0 40000 127.0.0.1 22\"",
        ))
        .unwrap();
        assert_eq!(
            session.ssh_connection.unwrap().as_str(),
            "fe80::1%eth0 40000 127.0.0.1 22"
        );
        for bind in ["\"127.0.0.1\"", "\"0.0.0.0\"", "\"::1\""] {
            new_session(&with("bind", bind)).unwrap();
        }
        assert_eq!(new_session(&with("ports", "[0,0]")).unwrap().ports, None);
        assert_eq!(
            new_session(&with("ports", "[60001,60010]")).unwrap().ports,
            Some((60001, 60010))
        );
    }

    #[test]
    fn each_bad_field_has_its_own_message() {
        let long = format!("\"{}\"", "1".repeat(60_000));
        for (field, value, message) in [
            (
                "bind",
                "\"8.8.8.8\"",
                "bind address 8.8.8.8 is not an address of this host",
            ),
            (
                "bind",
                "\"localhost\"",
                "bind address \"localhost\" is not an IP address",
            ),
            (
                "bind",
                "\"224.0.0.1\"",
                "bind address 224.0.0.1 is not an address of this host",
            ),
            (
                "command",
                "[]",
                "the command is empty (leave it out for the login shell)",
            ),
            ("command", "[\"\"]", "the command's program name is empty"),
            (
                "command",
                "[\"/bin/sh\",\"a\\u0000b\"]",
                "word 1 of the command contains a NUL byte",
            ),
            (
                "locale",
                "[\"LANG\"]",
                "locale setting \"LANG\" is not NAME=VALUE",
            ),
            (
                "locale",
                "[\"LD_PRELOAD=/tmp/x.so\"]",
                "\"LD_PRELOAD\" is not a locale variable (LANG, LANGUAGE or LC_*)",
            ),
            (
                "locale",
                "[\"LANG=C\\nX=1\"]",
                "the value of locale variable LANG has a control character or is longer than 256 bytes",
            ),
            (
                "colors",
                "4294967296",
                "colour count 4294967296 is not a number from -2147483648 to 2147483647",
            ),
            (
                "ssh_connection",
                &long,
                "SSH_CONNECTION is 60000 bytes long (at most 256)",
            ),
            (
                "ssh_connection",
                "\"1.2.3.4 22\"",
                "SSH_CONNECTION \"1.2.3.4 22\" is not CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT",
            ),
            (
                "ports",
                "[22,21]",
                "port range 22:21 is not LOW:HIGH with 1 <= LOW <= HIGH (or 0 for any)",
            ),
            (
                "ports",
                "[0,9]",
                "port range 0:9 is not LOW:HIGH with 1 <= LOW <= HIGH (or 0 for any)",
            ),
        ] {
            assert_eq!(
                new_session(&with(field, value)).unwrap_err(),
                message,
                "{field} = {value:.80}"
            );
        }
        let many: Vec<String> = (0..33).map(|_| "\"LANG=C\"".to_owned()).collect();
        assert_eq!(
            new_session(&with("locale", &format!("[{}]", many.join(",")))).unwrap_err(),
            "33 locale settings (at most 32)"
        );
        assert_eq!(
            new_session(&with("scrollback", "1000001")).unwrap_err(),
            "scrollback of 1000001 lines (at most 1000000)"
        );
    }

    #[test]
    fn long_values_are_quoted_short() {
        let error = new_session(&with("bind", &format!("\"{}\"", "x".repeat(1000)))).unwrap_err();
        assert!(error.len() < 120, "{error}");
    }

    #[test]
    fn ids_and_user_names_are_checked() {
        let parse = |line: &str| parse_request(line.as_bytes()).map_err(|e| e.to_string());
        parse("{\"request\":\"kill\",\"ids\":[\"0badc0de\"]}").unwrap();
        assert_eq!(
            parse("{\"request\":\"kill\",\"ids\":[\"../../x\"]}").unwrap_err(),
            "\"../../x\" is not a session id"
        );
        assert_eq!(
            parse("{\"request\":\"attach\",\"id\":\"\"}").unwrap_err(),
            "\"\" is not a session id"
        );
        assert_eq!(
            parse("{\"request\":\"kill\",\"user\":\"\"}").unwrap_err(),
            "user name \"\" is empty or longer than 256 bytes"
        );
        assert!(parse("not json").unwrap_err().starts_with("bad request: "));
    }
}
