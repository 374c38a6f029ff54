//! Integration tests in network namespaces against bird2 routers.
//!
//! Run as root: `cargo test --test netns` (tests skip with a message otherwise).
//! Nothing touches the machine's own namespace: see `lab.rs`.

// The harness is an API for present and future tests; not every helper is used yet.
mod attrs;
mod bfd;
#[allow(dead_code)]
mod bird;
mod capture;
mod cluster;
mod crash;
mod datapath;
mod frr;
#[allow(dead_code)]
mod frrd;
mod graceful;
#[allow(dead_code)]
mod hostbgp;
mod hostile;
mod instances;
mod kernel_routes;
#[allow(dead_code)]
mod lab;
mod lifecycle;
mod lxd;
mod nd;
mod neighbours;
mod policy;
mod selftest;
mod speaker;
