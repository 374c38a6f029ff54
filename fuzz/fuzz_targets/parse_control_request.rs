#![no_main]
//! Any bytes as a control-socket request: a request or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hostbgp::control::parse_request(data);
});
