//! pgate-issued cancel keys and the real upstream keys behind them.
//!
//! A client gets a key pgate drew from the operating system's randomness; the real key
//! never leaves pgate. What this module must never do: hand out a predictable key, or
//! map a key to a session other than the one it was issued to.

use std::collections::HashMap;
use std::sync::Mutex;

use rand_core::{OsRng, RngCore};

/// pgate-issued cancel keys → the real upstream key of the session that holds them.
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<(i32, i32), (i32, i32)>>,
}

impl CancelRegistry {
    /// A fresh key: 63 random bits from the OS (the process-id part is positive, as
    /// clients expect of a PID).
    pub fn issue(&self) -> (i32, i32) {
        let pid = (OsRng.next_u32() & 0x7fff_ffff) as i32;
        let key = OsRng.next_u32() as i32;
        (pid.max(1), key)
    }
    /// Everything random a new session needs, from the OS.
    pub fn entropy(&self) -> crate::session::Entropy {
        let mut scram_nonce = [0u8; crate::session::NONCE_BYTES];
        OsRng.fill_bytes(&mut scram_nonce);
        crate::session::Entropy {
            cancel_key: self.issue(),
            scram_nonce,
        }
    }
    pub(super) fn register(&self, issued: (i32, i32), real: (i32, i32)) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(issued, real);
        }
    }
    pub(super) fn remove(&self, issued: (i32, i32)) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&issued);
        }
    }
    pub(super) fn lookup(&self, issued: (i32, i32)) -> Option<(i32, i32)> {
        self.map.lock().ok()?.get(&issued).copied()
    }
}
