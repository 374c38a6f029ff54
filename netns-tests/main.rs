//! Integration tests in network namespaces against bird2 routers.
//!
//! Run as root: `cargo test --test netns` (tests skip with a message otherwise).
//! Nothing touches the machine's own namespace: see `lab.rs`.

mod bird;
mod datapath;
mod hostbgp;
mod lab;
mod selftest;
mod speaker;
