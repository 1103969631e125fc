//! libnftables, the library the `nft` program is a thin front end to,
//! loaded at run time: one context, kept by the firewall thread, runs the
//! same JSON documents `nft -j -f -` reads, each as one transaction,
//! without starting a process.
//!
//! The library is opened with `dlopen` (`libnftables.so.1`, resolving
//! every symbol at once), not linked, so the daemon starts and falls back
//! to the `nft` program where the library is missing or unusable; Python's
//! `nftables` module binds it the same way. Opening it happens once per
//! process; its failure is remembered and reported by every
//! [`Context::new`].
//!
//! Two properties of libnftables 1.0 are guarded against here. Creating a
//! context opens a netfilter netlink socket and ends the whole process
//! when that fails, so [`Context::new`] first opens one itself and gives
//! up with an error if it cannot. And that socket is not close-on-exec, so
//! it is marked so at once: the daemon's other children (workers, other
//! firewall tools) must not inherit a root netlink socket.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

/// The library's name and ABI version.
pub const SONAME: &str = "libnftables.so.1";

/// `NFT_CTX_DEFAULT`: a context for the `nft` program's defaults.
const NFT_CTX_DEFAULT: u32 = 0;
/// `NFT_CTX_OUTPUT_JSON`: list in JSON, and read commands as JSON.
const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;

/// libnftables could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The library could not be opened.
    #[error("{SONAME} could not be loaded: {0}")]
    Library(String),
    /// The library lacks a function.
    #[error("{SONAME} has no {symbol}: {reason}")]
    Symbol {
        /// The function.
        symbol: &'static str,
        /// What `dlsym` said.
        reason: String,
    },
    /// No netfilter netlink socket can be opened here, so the library
    /// would end the process.
    #[error("no netfilter netlink socket could be opened: {0}")]
    Netlink(String),
    /// `nft_ctx_new` returned no context.
    #[error("{SONAME}: nft_ctx_new failed")]
    Context,
}

/// The functions the daemon uses, and the library that holds them.
struct Api {
    ctx_new: unsafe extern "C" fn(u32) -> *mut c_void,
    ctx_free: unsafe extern "C" fn(*mut c_void),
    output_set_flags: unsafe extern "C" fn(*mut c_void, c_uint),
    buffer_output: unsafe extern "C" fn(*mut c_void) -> c_int,
    buffer_error: unsafe extern "C" fn(*mut c_void) -> c_int,
    output_buffer: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    error_buffer: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    run_cmd_from_buffer: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    /// Kept open for the life of the process: the pointers above point
    /// into it.
    _library: Library,
}

static API: OnceLock<Result<Api, LoadError>> = OnceLock::new();

/// Looks `name` up in `library` as a value of type `T` (a function
/// pointer).
///
/// # Safety
///
/// `T` must be the type of the function `name` names.
unsafe fn symbol<T: Copy>(library: &Library, name: &'static str) -> Result<T, LoadError> {
    // SAFETY: the caller promises that `T` is the symbol's type.
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|error| LoadError::Symbol {
            symbol: name,
            reason: error.to_string(),
        })
}

impl Api {
    fn load() -> Result<Api, LoadError> {
        // SAFETY: libnftables' initialisers only set up its own state; it
        // is opened with RTLD_NOW so that a missing symbol of its own
        // dependencies fails here instead of at a later call.
        let library = unsafe { Library::open(Some(SONAME), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|error| LoadError::Library(error.to_string()))?;
        // SAFETY: each type is the function's prototype in
        // <nftables/libnftables.h> (libnftables 0.9.1 and later).
        unsafe {
            Ok(Api {
                ctx_new: symbol(&library, "nft_ctx_new")?,
                ctx_free: symbol(&library, "nft_ctx_free")?,
                output_set_flags: symbol(&library, "nft_ctx_output_set_flags")?,
                buffer_output: symbol(&library, "nft_ctx_buffer_output")?,
                buffer_error: symbol(&library, "nft_ctx_buffer_error")?,
                output_buffer: symbol(&library, "nft_ctx_get_output_buffer")?,
                error_buffer: symbol(&library, "nft_ctx_get_error_buffer")?,
                run_cmd_from_buffer: symbol(&library, "nft_run_cmd_from_buffer")?,
                _library: library,
            })
        }
    }
}

/// A libnftables context: a netlink socket and a cache of the ruleset,
/// used by one thread at a time.
pub struct Context {
    api: &'static Api,
    ctx: NonNull<c_void>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

// SAFETY: a libnftables context has no tie to the thread that made it;
// the library only requires that one thread at a time uses it, which
// `&mut self` on every use ensures.
unsafe impl Send for Context {}

impl Context {
    /// Opens the library (the first time) and makes a context whose
    /// commands and listings are JSON, with its output and errors kept
    /// for [`Context::run`] instead of printed.
    pub fn new() -> Result<Context, LoadError> {
        let api = API.get_or_init(Api::load).as_ref().map_err(Clone::clone)?;
        // The library exits the process when it cannot open this socket.
        socket2::Socket::new(
            socket2::Domain::from(libc::AF_NETLINK),
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::NETLINK_NETFILTER)),
        )
        .map_err(|error| LoadError::Netlink(error.to_string()))?;
        // SAFETY: nft_ctx_new takes flags by value and returns a new
        // context or null.
        let ctx =
            NonNull::new(unsafe { (api.ctx_new)(NFT_CTX_DEFAULT) }).ok_or(LoadError::Context)?;
        mark_netfilter_sockets_close_on_exec();
        let context = Context { api, ctx };
        // SAFETY: the context is valid until `drop`; these calls only set
        // its flags and give it in-memory output and error streams.
        unsafe {
            (api.output_set_flags)(ctx.as_ptr(), NFT_CTX_OUTPUT_JSON);
            if (api.buffer_output)(ctx.as_ptr()) != 0 || (api.buffer_error)(ctx.as_ptr()) != 0 {
                return Err(LoadError::Context);
            }
        }
        Ok(context)
    }

    /// Runs `commands` (nft's syntax or a JSON document) as one
    /// transaction; returns what it listed, or the library's error
    /// messages.
    pub fn run(&mut self, commands: &str) -> Result<String, String> {
        let commands =
            CString::new(commands).map_err(|_| "the commands contain a NUL byte".to_owned())?;
        let ctx = self.ctx.as_ptr();
        // SAFETY: the context is valid and used by this thread only
        // (`&mut self`); the command text is NUL-terminated and outlives
        // the call; the buffers returned are NUL-terminated, owned by the
        // context, and copied before the next call into it.
        unsafe {
            let status = (self.api.run_cmd_from_buffer)(ctx, commands.as_ptr());
            let output = text((self.api.output_buffer)(ctx));
            let errors = text((self.api.error_buffer)(ctx));
            if status == 0 {
                Ok(output)
            } else if errors.trim().is_empty() {
                Err(format!("failed without a message (status {status})"))
            } else {
                Err(errors)
            }
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context is valid and nothing uses it after this.
        unsafe { (self.api.ctx_free)(self.ctx.as_ptr()) };
    }
}

/// A copy of a NUL-terminated buffer the library returned (empty for null).
///
/// # Safety
///
/// `buffer` is null or points to a NUL-terminated string that stays valid
/// during the call.
unsafe fn text(buffer: *const c_char) -> String {
    if buffer.is_null() {
        return String::new();
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(buffer) }
        .to_string_lossy()
        .into_owned()
}

/// Sets close-on-exec on every netfilter netlink socket of this process
/// that lacks it (the one a new libnftables context opened).
fn mark_netfilter_sockets_close_on_exec() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(number) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the number was just listed as open. Should another thread
        // close it meanwhile, the calls below fail, or see whatever now has
        // the number, which is checked before anything changes: nothing
        // but the close-on-exec flag of a netfilter netlink socket is set.
        let fd = unsafe { BorrowedFd::borrow_raw(number) };
        let Ok(flags) = rustix::io::fcntl_getfd(fd) else {
            continue;
        };
        let netfilter = rustix::net::sockopt::socket_domain(fd)
            .is_ok_and(|domain| domain == rustix::net::AddressFamily::NETLINK)
            && rustix::net::sockopt::socket_protocol(fd)
                .is_ok_and(|protocol| protocol == Some(rustix::net::netlink::NETFILTER));
        if netfilter && !flags.contains(rustix::io::FdFlags::CLOEXEC) {
            let _ = rustix::io::fcntl_setfd(fd, flags | rustix::io::FdFlags::CLOEXEC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Netfilter netlink sockets of this process without close-on-exec.
    fn inheritable_netfilter_sockets() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<RawFd>().ok())
            .filter(|&number| {
                // SAFETY: a descriptor of this process, only inspected.
                let fd = unsafe { BorrowedFd::borrow_raw(number) };
                rustix::net::sockopt::socket_protocol(fd)
                    .is_ok_and(|p| p == Some(rustix::net::netlink::NETFILTER))
                    && rustix::io::fcntl_getfd(fd)
                        .is_ok_and(|flags| !flags.contains(rustix::io::FdFlags::CLOEXEC))
            })
            .count()
    }

    #[test]
    fn a_context_lists_in_json_and_reports_refusals() {
        let mut context = Context::new().expect("libnftables (installed with nftables)");
        assert_eq!(inheritable_netfilter_sockets(), 0);
        let listing = context.run("list tables").expect("listing the tables");
        assert!(listing.contains(r#""metainfo""#), "{listing}");
        let error = context
            .run(
                r#"{"nftables": [{"delete": {"table": {"family": "inet", "name": "mosh_daemon_unit_test_absent"}}}]}"#,
            )
            .unwrap_err();
        assert!(error.contains("No such file or directory"), "{error}");
        // The context goes on working after a refusal.
        assert!(context.run("list tables").is_ok());
        assert!(context.run("list\0tables").is_err());
    }
}
