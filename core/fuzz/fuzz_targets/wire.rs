//! Any bytes a client may send frame and parse without panicking: the startup phase
//! (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest), then typed messages. A
//! frame never claims more bytes than the buffer holds, or a length over the limit; every
//! frame makes progress.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgate_core::wire::{frame, frame_startup, parse_frontend, parse_startup};

/// A small limit so that the fuzzer reaches "too large" as well as complete messages.
const MAX_MESSAGE_BYTES: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    // The startup phase: until a frame is incomplete, malformed, or not a request that
    // keeps the connection in the startup phase.
    loop {
        match frame_startup(buf, MAX_MESSAGE_BYTES) {
            Ok(Some(f)) => {
                assert!(f.len >= 8 && f.len <= buf.len());
                assert!(f.len as u64 <= u64::from(MAX_MESSAGE_BYTES));
                let startup = parse_startup(&f);
                buf = &buf[f.len..];
                if startup.is_err() {
                    return;
                }
                // Any outcome but an SSL/GSS request ends the startup phase here.
                if f.body.get(..4).is_none_or(|code| {
                    let code = u32::from_be_bytes([code[0], code[1], code[2], code[3]]);
                    code != pgate_core::wire::SSL_REQUEST_CODE
                        && code != pgate_core::wire::GSSENC_REQUEST_CODE
                }) {
                    break;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
    while let Ok(Some(f)) = frame(buf, MAX_MESSAGE_BYTES) {
        assert!(f.len >= 5 && f.len <= buf.len());
        assert_eq!(f.body.len() + 5, f.len);
        let _ = parse_frontend(&f);
        buf = &buf[f.len..];
    }
});
