//! Test harness shared by the end-to-end tests: finding and running stock
//! mosh, tmux sessions, the UDP impairment proxy, and small protocol helpers.

pub mod impair;
