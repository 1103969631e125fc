//! Test harness shared by the end-to-end tests: finding and running stock
//! mosh, tmux sessions, and small protocol helpers.
