//! Integration tests in network namespaces against bird2 routers.
//!
//! Run as root: `cargo test --test netns` (tests skip with a message otherwise).
//! Nothing touches the machine's own namespace: see `lab.rs`.

/// Chainable builder setters (`BirdPeer`, `FrrPeer`): each `NAME(ARG: TYPE) => FIELD =
/// VALUE;` is `pub fn NAME(mut self, ARG: TYPE) -> Self` setting `self.FIELD` to VALUE.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $t:ty) => $field:ident = $value:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $arg: $t) -> Self {
                self.$field = $value;
                self
            }
        )*
    };
}

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
