//! hostbgp: kernel routes for instances' external addresses, advertised over BGP.
pub mod agent;
pub mod bfd;
pub mod bgp;
pub mod config;
pub mod control;
pub mod kernel;
pub mod plan;
pub mod privileges;
