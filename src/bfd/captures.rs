//! Control packets bird 2.0.12 sent, captured with tcpdump between two bird instances
//! on a veth pair (`protocol bfd`, `interval 300 ms; multiplier 3;`), then one of them
//! killed. A is 10.99.0.1 (discriminator 0x5c4dcc60), B is 10.99.0.2 (0xb7b92b48).
//! The same bytes are the fuzzer's seeds (`fuzz/seeds/decode_bfd/`).
//!
//! Each capture is written as six 32-bit words in hex, a row of the RFC 5880 §4.1
//! diagram each: Vers/Diag/Sta/flags/Detect Mult/Length, My Discriminator, Your
//! Discriminator, Desired Min TX, Required Min RX, Required Min Echo RX.

/// A, alone: Down, your discriminator 0, 1 s desired tx (the floor while not Up),
/// 300 ms required rx, no echo.
pub const A_DOWN: [u8; 24] = words("20400318 5c4dcc60 00000000 000f4240 000493e0 00000000");

/// B starts: the same as A's, with its own discriminator.
pub const B_DOWN: [u8; 24] = words("20400318 b7b92b48 00000000 000f4240 000493e0 00000000");

/// A heard B's Down: Init, sent at once.
pub const A_INIT: [u8; 24] = words("20800318 5c4dcc60 b7b92b48 000f4240 000493e0 00000000");

/// B heard A's Init: Up, polling for 300 ms desired tx.
pub const B_UP_POLL: [u8; 24] = words("20e00318 b7b92b48 5c4dcc60 000493e0 000493e0 00000000");

/// A's answer to the Poll (A went Up on B's Up).
pub const A_UP_FINAL: [u8; 24] = words("20d00318 5c4dcc60 b7b92b48 000493e0 000493e0 00000000");

/// A's own Poll for its 300 ms.
pub const A_UP_POLL: [u8; 24] = words("20e00318 5c4dcc60 b7b92b48 000493e0 000493e0 00000000");

/// B's answer to A's Poll.
pub const B_UP_FINAL: [u8; 24] = words("20d00318 b7b92b48 5c4dcc60 000493e0 000493e0 00000000");

/// B, Up, steady at 300 ms.
pub const B_UP: [u8; 24] = words("20c00318 b7b92b48 5c4dcc60 000493e0 000493e0 00000000");

/// A after B went silent: Down, diag 1 (control detection time expired), B's
/// discriminator forgotten, back to 1 s.
pub const A_DOWN_TIMED_OUT: [u8; 24] =
    words("21400318 5c4dcc60 00000000 000f4240 000493e0 00000000");

/// Every capture, with a file name for the fuzzer's seeds.
pub const ALL: [(&str, [u8; 24]); 9] = [
    ("bird_a_down", A_DOWN),
    ("bird_b_down", B_DOWN),
    ("bird_a_init", A_INIT),
    ("bird_b_up_poll", B_UP_POLL),
    ("bird_a_up_final", A_UP_FINAL),
    ("bird_a_up_poll", A_UP_POLL),
    ("bird_b_up_final", B_UP_FINAL),
    ("bird_b_up", B_UP),
    ("bird_a_down_timed_out", A_DOWN_TIMED_OUT),
];

/// The 24 bytes of six space-separated 8-digit hex words; anything else fails to
/// compile (every capture is a `const`).
const fn words(hex: &str) -> [u8; 24] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lower-case hex digit"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 6 * 8 + 5, "six words of eight hex digits");
    let mut out = [0u8; 24];
    let mut i = 0;
    while i < 24 {
        // Word w starts at 9 * w (eight digits and a space).
        let at = i / 4 * 9 + i % 4 * 2;
        if i % 4 == 0 && i > 0 {
            assert!(hex[at - 1] == b' ', "words are separated by one space");
        }
        out[i] = nibble(hex[at]) << 4 | nibble(hex[at + 1]);
        i += 1;
    }
    out
}
