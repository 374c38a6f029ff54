#![no_main]
//! Any bytes as a configuration file: parse and validate, never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = hostbgp::config::parse_str(text, "node1") {
            let _ = config.peers();
        }
    }
});
