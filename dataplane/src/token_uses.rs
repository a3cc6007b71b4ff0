//! Sessions per token (`token sessions=N concurrent=M` in a role): how many sessions each
//! token has opened on this instance, and how many are open now.
//!
//! A token is keyed by its issuer and `jti` (RFC 7519 §4.1.7), never by its text: an
//! ECDSA signature can be re-randomised by anyone who holds a token, without the key, so
//! the same claims can arrive as many different strings. A role with a limit refuses a
//! token without `jti`. An entry lives until the token's validity ends (`exp` plus the
//! leeway): after that the token is refused anyway, and its entry may be dropped.
//!
//! This is the instance's own record (the embedded default): with several pgate replicas
//! each counts its own sessions, so a token may open up to N sessions on each. With a
//! shared store ([`crate::shared_store`]) Redis counts instead: a use is then asked for
//! ([`Begun::Asked`]) and the session waits for the answer ([`TokenUses::poll`]).
//!
//! What this module must never do: let a session in past a limit, lose count of a
//! session that is still open (a [`Lease`] gives its place back when dropped, once), or
//! grow without bound (at [`MAX_TOKENS`] live tokens a new limited token is refused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pgate_core::table::model::TokenUse;

/// The most tokens with a limit tracked at once (each at most about 500 bytes with a
/// 256-byte `jti`: 32 MiB at most).
pub const MAX_TOKENS: usize = 1 << 16;

/// Issuer and `jti`.
type Key = (String, String);

#[derive(Debug)]
struct Uses {
    /// Sessions opened with the token, in all.
    sessions: u32,
    /// Sessions open now.
    open: u32,
    /// The first session's connection id and client address.
    first_conn: String,
    first_client: String,
    /// When the token stops being valid (seconds since the Unix epoch).
    valid_until_unix: u64,
}

/// Every limited token's uses on this instance, shared by the workers (or, with a shared
/// store, the way to Redis's record).
#[derive(Debug, Default)]
pub struct TokenUses {
    tokens: Mutex<HashMap<Key, Uses>>,
    shared: Option<Arc<crate::shared_store::SharedStore>>,
}

/// A session's use of a token, counted or asked for.
#[derive(Debug)]
pub enum Begun {
    Now(Lease),
    /// The shared store is being asked: [`TokenUses::poll`] this.
    Asked(Asked),
}

/// A use the shared store has been asked for.
#[derive(Debug)]
pub struct Asked {
    ticket: u64,
    key: Key,
    limit: TokenUse,
    valid_until_unix: u64,
}

/// Why a session was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The role limits sessions per token and the token has no `jti`.
    NoTokenId,
    /// The token opened its `max` sessions already.
    Used {
        sessions: u32,
        max: u32,
        first_conn: String,
        first_client: String,
    },
    /// The token holds its `max` sessions open now.
    Concurrent {
        open: u32,
        max: u32,
        first_conn: String,
        first_client: String,
    },
    /// [`MAX_TOKENS`] tokens are tracked.
    Full,
    /// The shared store cannot be reached, and token uses fail closed.
    Unavailable,
}

impl Refusal {
    /// The client's message, after "token rejected: ".
    pub fn message(&self) -> String {
        match self {
            Refusal::NoTokenId => {
                "the role limits sessions per token and the token has no `jti`".to_string()
            }
            Refusal::Used { max: 1, .. } => {
                "the token was already used: it is good for one session".to_string()
            }
            Refusal::Used { max, .. } => {
                format!("the token was already used for its {max} sessions")
            }
            Refusal::Concurrent { max, .. } => format!(
                "the token already holds {max} open session{}, as many as its role allows at once",
                if *max == 1 { "" } else { "s" }
            ),
            Refusal::Full => "pgate tracks too many tokens now; try again later".to_string(),
            Refusal::Unavailable => {
                "the shared store that counts sessions per token cannot be reached; try again later"
                    .to_string()
            }
        }
    }

    /// The first session's (connection id, client address), for the audit line.
    pub fn first(&self) -> Option<(&str, &str)> {
        match self {
            Refusal::Used {
                first_conn,
                first_client,
                ..
            }
            | Refusal::Concurrent {
                first_conn,
                first_client,
                ..
            } => Some((first_conn, first_client)),
            _ => None,
        }
    }
}

/// A session's place among its token's open sessions; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    uses: Arc<TokenUses>,
    key: Key,
    /// Counted by the shared store (else by this instance).
    shared: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.shared {
            if let Some(s) = &self.uses.shared {
                s.token_end(&self.key.0, &self.key.1);
            }
            return;
        }
        if let Ok(mut t) = self.uses.tokens.lock()
            && let Some(u) = t.get_mut(&self.key)
        {
            u.open = u.open.saturating_sub(1);
        }
    }
}

/// The session asking: its connection id and client address.
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    pub conn: &'a str,
    pub client: &'a str,
}

impl TokenUses {
    /// Counted by `store` (shared by the replicas) instead of this instance.
    pub fn shared(store: Arc<crate::shared_store::SharedStore>) -> TokenUses {
        TokenUses {
            tokens: Mutex::default(),
            shared: Some(store),
        }
    }

    /// A session of the token `(issuer, jti)` under `limit`, at `now_unix`: its lease (or,
    /// with a shared store, the question asked), or why not. `valid_until_unix`: when the
    /// token stops being admitted.
    pub fn begin(
        self: &Arc<Self>,
        issuer: &str,
        jti: Option<&str>,
        limit: TokenUse,
        valid_until_unix: u64,
        now_unix: u64,
        asking: Asking<'_>,
    ) -> Result<Begun, Refusal> {
        let Some(jti) = jti else {
            return Err(Refusal::NoTokenId);
        };
        if let Some(store) = &self.shared
            && (store.is_up() || !store.falls_back_local())
        {
            let ticket = store
                .token_begin(
                    issuer,
                    jti,
                    limit,
                    valid_until_unix,
                    asking.conn,
                    asking.client,
                )
                .ok_or(Refusal::Unavailable)?;
            return Ok(Begun::Asked(Asked {
                ticket,
                key: (issuer.to_string(), jti.to_string()),
                limit,
                valid_until_unix,
            }));
        }
        self.begin_here(issuer, jti, limit, valid_until_unix, now_unix, asking)
            .map(Begun::Now)
    }

    /// The shared store's answer to `asked`, once it has come: the lease, or why not.
    /// Unreachable, it refuses — or, with `on-unavailable="local"`, counts here.
    pub fn poll(
        self: &Arc<Self>,
        asked: &Asked,
        now_unix: u64,
        asking: Asking<'_>,
    ) -> Option<Result<Lease, Refusal>> {
        let store = self.shared.as_ref()?;
        Some(match store.token_answer(asked.ticket)? {
            crate::shared_store::TokenAnswer::Granted => Ok(Lease {
                uses: Arc::clone(self),
                key: asked.key.clone(),
                shared: true,
            }),
            crate::shared_store::TokenAnswer::Refused(r) => Err(r),
            crate::shared_store::TokenAnswer::Unavailable if store.falls_back_local() => self
                .begin_here(
                    &asked.key.0,
                    &asked.key.1,
                    asked.limit,
                    asked.valid_until_unix,
                    now_unix,
                    asking,
                ),
            crate::shared_store::TokenAnswer::Unavailable => Err(Refusal::Unavailable),
        })
    }

    /// A session that asked and went away before the answer.
    pub fn abandon(&self, asked: &Asked) {
        if let Some(s) = &self.shared {
            s.token_abandon(asked.ticket);
        }
    }

    fn begin_here(
        self: &Arc<Self>,
        issuer: &str,
        jti: &str,
        limit: TokenUse,
        valid_until_unix: u64,
        now_unix: u64,
        asking: Asking<'_>,
    ) -> Result<Lease, Refusal> {
        // A poisoned lock means a panic elsewhere: refuse rather than count wrongly.
        let mut tokens = self.tokens.lock().map_err(|_| Refusal::Full)?;
        let key: Key = (issuer.to_string(), jti.to_string());
        if !tokens.contains_key(&key) && tokens.len() >= MAX_TOKENS {
            // Tokens no longer admitted need no record.
            tokens.retain(|_, u| u.valid_until_unix > now_unix || u.open > 0);
            if tokens.len() >= MAX_TOKENS {
                return Err(Refusal::Full);
            }
        }
        let u = tokens.entry(key.clone()).or_insert_with(|| Uses {
            sessions: 0,
            open: 0,
            first_conn: asking.conn.to_string(),
            first_client: asking.client.to_string(),
            valid_until_unix,
        });
        if let Some(max) = limit.max_sessions
            && u.sessions >= max
        {
            return Err(Refusal::Used {
                sessions: u.sessions,
                max,
                first_conn: u.first_conn.clone(),
                first_client: u.first_client.clone(),
            });
        }
        if let Some(max) = limit.max_concurrent
            && u.open >= max
        {
            return Err(Refusal::Concurrent {
                open: u.open,
                max,
                first_conn: u.first_conn.clone(),
                first_client: u.first_client.clone(),
            });
        }
        u.sessions = u.sessions.saturating_add(1);
        u.open = u.open.saturating_add(1);
        u.valid_until_unix = u.valid_until_unix.max(valid_until_unix);
        Ok(Lease {
            uses: Arc::clone(self),
            key,
            shared: false,
        })
    }

    /// How many tokens are tracked (for metrics and tests).
    pub fn len(&self) -> usize {
        self.tokens.lock().map_or(0, |t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const A: Asking<'static> = Asking {
        conn: "c1",
        client: "127.0.0.1:1000",
    };
    const B: Asking<'static> = Asking {
        conn: "c2",
        client: "127.0.0.1:2000",
    };

    /// `begin` on this instance's own record.
    fn here(
        u: &Arc<TokenUses>,
        iss: &str,
        jti: Option<&str>,
        l: TokenUse,
        valid: u64,
        now: u64,
        a: Asking<'_>,
    ) -> Result<Lease, Refusal> {
        match u.begin(iss, jti, l, valid, now, a)? {
            Begun::Now(lease) => Ok(lease),
            Begun::Asked(_) => panic!("no shared store here"),
        }
    }

    fn limit(sessions: Option<u32>, concurrent: Option<u32>) -> TokenUse {
        TokenUse {
            max_sessions: sessions,
            max_concurrent: concurrent,
            require_certificate: false,
            rule: Some(0),
        }
    }

    #[test]
    fn a_single_use_token_opens_one_session_and_names_it_to_the_second() {
        let u = Arc::new(TokenUses::default());
        let l = limit(Some(1), None);
        let first = here(&u, "iss", Some("j1"), l, 100, 10, A).unwrap();
        let again = here(&u, "iss", Some("j1"), l, 100, 11, B).unwrap_err();
        assert_eq!(
            again,
            Refusal::Used {
                sessions: 1,
                max: 1,
                first_conn: "c1".into(),
                first_client: "127.0.0.1:1000".into()
            }
        );
        // Closing the first does not make the token usable again.
        drop(first);
        assert!(here(&u, "iss", Some("j1"), l, 100, 12, B).is_err());
        // Another jti, or the same jti from another issuer, is another token.
        assert!(here(&u, "iss", Some("j2"), l, 100, 12, B).is_ok());
        assert!(here(&u, "other", Some("j1"), l, 100, 12, B).is_ok());
    }

    #[test]
    fn concurrent_sessions_are_counted_while_open() {
        let u = Arc::new(TokenUses::default());
        let l = limit(None, Some(2));
        let a = here(&u, "iss", Some("j"), l, 100, 10, A).unwrap();
        let b = here(&u, "iss", Some("j"), l, 100, 10, B).unwrap();
        assert!(matches!(
            here(&u, "iss", Some("j"), l, 100, 10, B),
            Err(Refusal::Concurrent {
                open: 2,
                max: 2,
                ..
            })
        ));
        drop(a);
        let c = here(&u, "iss", Some("j"), l, 100, 10, B).unwrap();
        drop((b, c));
        // Both limits: the total one holds across closes.
        let l = limit(Some(3), Some(1));
        for _ in 0..3 {
            let s = here(&u, "iss", Some("k"), l, 100, 10, A).unwrap();
            assert!(matches!(
                here(&u, "iss", Some("k"), l, 100, 10, B),
                Err(Refusal::Concurrent { .. }) | Err(Refusal::Used { .. })
            ));
            drop(s);
        }
        assert!(matches!(
            here(&u, "iss", Some("k"), l, 100, 10, A),
            Err(Refusal::Used { sessions: 3, .. })
        ));
    }

    #[test]
    fn no_jti_is_refused() {
        let u = Arc::new(TokenUses::default());
        assert_eq!(
            here(&u, "iss", None, limit(Some(5), None), 100, 10, A).unwrap_err(),
            Refusal::NoTokenId
        );
        assert!(u.is_empty());
    }
}
