//! The standalone `mosh-server`: command line, binding, and (with the
//! session issue) the session it runs.

pub mod args;
pub mod bind;
pub mod cli_model;
pub mod locale;
