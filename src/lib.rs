//! hostbgp: kernel routes for instances' external addresses, advertised over BGP.
pub mod agent;
pub mod bfd;
pub mod bgp;
pub mod config;
pub mod control;
pub mod kernel;
pub mod logging;
pub mod lxd;
pub mod metrics;
pub mod nd;
pub mod plan;
pub mod privileges;
pub mod status;
pub mod time;
