//! Upstream connection reuse, sans-IO: what an authenticated upstream connection carries
//! from one client session to the next ([`Parked`]), and the reset it goes through between
//! them ([`Reset`]).
//!
//! A connection is offered for reuse only when its session ended at a message boundary,
//! idle, outside a transaction (the session decides: `Session::park`). It is then reset
//! with `DISCARD ALL` — "releases all temporary resources associated with the current
//! session and resets the session to its initial state": `CLOSE ALL`, `SET SESSION
//! AUTHORIZATION DEFAULT`, `RESET ALL`, `DEALLOCATE ALL`, `UNLISTEN *`,
//! `pg_advisory_unlock_all()`, `DISCARD PLANS`, `DISCARD TEMP`, `DISCARD SEQUENCES` —
//! what PgBouncer's session pooling runs as its default `server_reset_query`. `RESET ALL`
//! returns every setting to its session default, which for the startup packet's
//! parameters is the startup packet's value; so a connection is reused only for a session
//! whose StartupMessage would have been byte-identical ([`Parked::startup`] is the key).
//!
//! What this module must never do: hand a connection on whose reset did not end in
//! `ReadyForQuery` with status idle after `DISCARD ALL`'s own CommandComplete, or keep a
//! message it does not understand (the connection is closed instead).

use pgate_core::wire::{self, frame};

/// An authenticated, reset upstream connection's session-level facts: what the next
/// client is told at its login instead of the startup answers of a new backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked {
    /// The StartupMessage bytes the connection was opened with: the reuse key.
    pub startup: Vec<u8>,
    /// The database connected to.
    pub database: String,
    /// ParameterStatus values as the server last reported them, in first-report order.
    pub params: Vec<(String, String)>,
    /// The real BackendKeyData (for cancels; the client never sees it).
    pub backend_key: (i32, i32),
    /// ParameterStatus `is_superuser` said `on`.
    pub superuser: bool,
}

/// Records a ParameterStatus in `params` (replacing an earlier value of that name).
/// "ParameterStatus (B) … String The name of the parameter being reported. String The
/// current value of the parameter."
pub fn note_parameter(params: &mut Vec<(String, String)>, body: &[u8]) {
    let mut r = wire::Reader::new(body, "ParameterStatus");
    let (Ok(name), Ok(value)) = (r.cstr(), r.cstr()) else {
        return;
    };
    match params.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => {
            v.clear();
            v.push_str(value);
        }
        None => params.push((name.to_owned(), value.to_owned())),
    }
}

/// The SQL of the reset.
pub const RESET_SQL: &str = "DISCARD ALL";

/// Where a reset stands after input was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetStep {
    /// More messages are needed.
    Pending,
    /// ReadyForQuery (idle) after DISCARD ALL completed: the connection may be reused.
    Done,
    /// The connection must be closed; the cause is for the operator's log.
    Failed(String),
}

/// One reset: `DISCARD ALL` written, the answers read until ReadyForQuery.
pub struct Reset {
    completed: bool,
    step: ResetStep,
}

impl Reset {
    /// Starts a reset: appends the Query to `out` (to be written upstream).
    pub fn start(out: &mut Vec<u8>) -> Reset {
        let mut q = Vec::with_capacity(RESET_SQL.len() + 1);
        q.extend_from_slice(RESET_SQL.as_bytes());
        q.push(0);
        wire::write_message(out, b'Q', &q);
        Reset {
            completed: false,
            step: ResetStep::Pending,
        }
    }

    /// Feeds bytes read from the upstream (including any left unread when the session
    /// ended: a NotificationResponse that came after the last ReadyForQuery); parameter
    /// reports update `parked`. Returns the bytes consumed and the step.
    pub fn handle(
        &mut self,
        input: &[u8],
        parked: &mut Parked,
        max_message_bytes: u32,
    ) -> (usize, ResetStep) {
        let mut consumed = 0;
        while self.step == ResetStep::Pending {
            let f = match frame(&input[consumed..], max_message_bytes) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.step = ResetStep::Failed(format!("malformed message: {e}"));
                    break;
                }
            };
            consumed += f.len;
            match f.tag {
                // Asynchronous messages may come at any time.
                b'N' | b'A' => {}
                b'S' => {
                    note_parameter(&mut parked.params, f.body);
                    if let Some((_, v)) = parked.params.iter().find(|(n, _)| n == "is_superuser") {
                        parked.superuser = v == "on";
                    }
                }
                b'C' if f.body == b"DISCARD ALL\0" && !self.completed => self.completed = true,
                b'Z' if self.completed && f.body == b"I" => self.step = ResetStep::Done,
                b'E' => {
                    let what = wire::error_field(f.body, b'M').unwrap_or("an error");
                    self.step = ResetStep::Failed(format!("{RESET_SQL} failed: {what}"));
                }
                other => {
                    self.step = ResetStep::Failed(format!(
                        "unexpected message {:?} during {RESET_SQL}",
                        char::from(other)
                    ));
                }
            }
        }
        (consumed, self.step.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        wire::write_message(&mut m, tag, body);
        m
    }

    fn parked() -> Parked {
        Parked {
            startup: vec![],
            database: "app".into(),
            params: vec![
                ("application_name".into(), "changed".into()),
                ("is_superuser".into(), "off".into()),
            ],
            backend_key: (1, 2),
            superuser: false,
        }
    }

    #[test]
    fn a_reset_ends_at_idle_ready_for_query_after_its_command_complete() {
        let mut out = Vec::new();
        let mut r = Reset::start(&mut out);
        assert_eq!(out, msg(b'Q', b"DISCARD ALL\0"));
        let mut p = parked();
        // A late notification, the reset's parameter report, its completion, in pieces.
        let mut input = msg(b'A', &[0, 0, 0, 7, b'c', 0, b'x', 0]);
        input.extend(msg(b'S', b"application_name\0psql\0"));
        input.extend(msg(b'C', b"DISCARD ALL\0"));
        input.extend(msg(b'Z', b"I"));
        let (n, step) = r.handle(&input[..input.len() - 2], &mut p, 1 << 20);
        assert_eq!(step, ResetStep::Pending);
        let (m, step) = r.handle(&input[n..], &mut p, 1 << 20);
        assert_eq!(step, ResetStep::Done);
        assert_eq!(n + m, input.len());
        assert_eq!(p.params[0], ("application_name".into(), "psql".into()));
    }

    #[test]
    fn anything_else_fails_the_reset() {
        for input in [
            // An error (DISCARD ALL inside a transaction block, say).
            [
                msg(
                    b'E',
                    b"SERROR\0C25001\0MDISCARD ALL cannot run inside a transaction block\0\0",
                ),
                msg(b'Z', b"E"),
            ]
            .concat(),
            // Ready before the command completed, or not idle after it.
            msg(b'Z', b"I"),
            [msg(b'C', b"DISCARD ALL\0"), msg(b'Z', b"T")].concat(),
            // A result row: someone else's answer.
            msg(b'D', &[0, 0]),
        ] {
            let mut out = Vec::new();
            let mut r = Reset::start(&mut out);
            let (_, step) = r.handle(&input, &mut parked(), 1 << 20);
            assert!(matches!(step, ResetStep::Failed(_)), "{input:?}: {step:?}");
        }
    }
}
