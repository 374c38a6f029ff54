#![no_main]
//! frame_len + Message::decode under every codec; whatever decodes must re-encode to
//! bytes that decode to the same message.
use hostbgp::bgp::wire::{frame_len, Codec, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for four_octet_as in [false, true] {
        for extended_message in [false, true] {
            let codec = Codec {
                four_octet_as,
                extended_message,
            };
            let _ = frame_len(data, &codec);
            // Also try the input with a correct marker and length prepended.
            let mut framed = vec![0xff; 16];
            framed.extend_from_slice(&((data.len() + 18).min(65535) as u16).to_be_bytes());
            framed.extend_from_slice(data);
            for buf in [data, &framed[..]] {
                if let Ok(Some(len)) = frame_len(buf, &codec) {
                    assert!(len <= codec.max_len());
                }
                if let Ok(msg) = Message::decode(buf, &codec) {
                    let mut again = Vec::new();
                    msg.encode(&codec, &mut again);
                    assert_eq!(Message::decode(&again, &codec), Ok(msg));
                }
            }
        }
    }
});
