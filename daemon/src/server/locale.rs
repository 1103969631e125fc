//! mosh needs a UTF-8 locale. The server adopts its native locale; if that is
//! not UTF-8 it replaces every locale variable with the client's (`-l`
//! settings) and tries once more, as mosh 1.4 does.
//!
//! This changes the process environment and the C library's locale, so it
//! must run at start-up, before any other thread exists.

use std::ffi::CStr;

/// Environment variables that select a locale.
const LOCALE_VARIABLES: [&str; 2] = ["LANG", "LANGUAGE"];

/// Neither the native nor the client's locale is UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "mosh-server needs a UTF-8 native locale to run.\n\n\
     Unfortunately, the local environment ({native_ctype}) specifies\n\
     the character set \"{native_charset}\",\n\n\
     The client-supplied environment ({client_ctype}) specifies\n\
     the character set \"{client_charset}\".\n"
)]
pub struct NotUtf8 {
    /// The variable that chose the native character type.
    pub native_ctype: String,
    /// The native character set.
    pub native_charset: String,
    /// The variable that chose the client's character type.
    pub client_ctype: String,
    /// The client's character set.
    pub client_charset: String,
}

/// Makes the process locale UTF-8, falling back on `client_settings`
/// (`NAME=VALUE` strings). Call before starting any thread.
pub fn adopt_utf8_locale(client_settings: &[String]) -> Result<(), NotUtf8> {
    let native_charset = set_native_locale();
    if is_utf8(&native_charset) {
        return Ok(());
    }
    let native_ctype = ctype_variable();
    let stale: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("LC_") || LOCALE_VARIABLES.contains(&name.as_str()))
        .collect();
    for name in stale {
        // SAFETY: start-up code, documented to run before any other thread
        // exists, so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    for setting in client_settings {
        if let Some((name, value)) = setting.split_once('=')
            && !name.is_empty()
        {
            // SAFETY: as above, single-threaded start-up.
            unsafe { std::env::set_var(name, value) };
        }
    }
    let client_charset = set_native_locale();
    if is_utf8(&client_charset) {
        return Ok(());
    }
    Err(NotUtf8 {
        native_ctype,
        native_charset,
        client_ctype: ctype_variable(),
        client_charset,
    })
}

/// Whether a character set name is UTF-8.
pub fn is_utf8(charset: &str) -> bool {
    charset.eq_ignore_ascii_case("UTF-8") || charset.eq_ignore_ascii_case("utf8")
}

/// Loads the locale the environment names and returns its character set.
fn set_native_locale() -> String {
    // SAFETY: setlocale is given a valid NUL-terminated string; it is not
    // thread-safe, and this runs during single-threaded start-up.
    unsafe { libc::setlocale(libc::LC_ALL, c"".as_ptr()) };
    // SAFETY: nl_langinfo with a valid item returns a pointer to a
    // NUL-terminated string owned by the C library, valid until the next
    // setlocale call; it is copied out at once.
    let codeset = unsafe { libc::nl_langinfo(libc::CODESET) };
    if codeset.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated, per nl_langinfo's contract.
    unsafe { CStr::from_ptr(codeset) }
        .to_string_lossy()
        .into_owned()
}

/// The variable that decides the character type, as `NAME=value`.
fn ctype_variable() -> String {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .map(|value| format!("{name}={value}"))
        })
        .unwrap_or_else(|| "[no charset variables]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names() {
        assert!(is_utf8("UTF-8"));
        assert!(is_utf8("utf8"));
        assert!(!is_utf8("ANSI_X3.4-1968"));
        assert!(!is_utf8(""));
    }

    #[test]
    fn refusal_names_both_environments() {
        let error = NotUtf8 {
            native_ctype: "LANG=C".into(),
            native_charset: "ANSI_X3.4-1968".into(),
            client_ctype: "[no charset variables]".into(),
            client_charset: "ANSI_X3.4-1968".into(),
        };
        let text = error.to_string();
        assert!(text.starts_with("mosh-server needs a UTF-8 native locale to run."));
        assert!(text.contains("local environment (LANG=C) specifies"));
        assert!(text.contains("client-supplied environment ([no charset variables])"));
    }
}
