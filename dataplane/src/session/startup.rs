//! The client's side of login: SSLRequest, GSSENCRequest, CancelRequest, the startup
//! packet (its parameters checked against an allow-list) and the token as password.
//!
//! What this module must never do: accept a startup parameter that changes how the
//! database reads SQL, or a token over plaintext unless configured.

use super::*;

impl Session {
    pub(super) fn on_startup(&mut self, s: Startup<'_>) {
        let State::Startup { tls } = self.state else {
            return;
        };
        match s {
            Startup::SslRequest if tls => self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: SSLRequest received on an encrypted connection",
            ),
            // "The server then responds with a single byte containing S or N, indicating
            // that it is willing or unwilling to perform SSL, respectively."
            Startup::SslRequest if self.cfg.tls_available => {
                self.to_client.push(b'S');
                self.actions.push_back(Action::StartTls);
            }
            Startup::SslRequest | Startup::GssEncRequest => self.to_client.push(b'N'),
            Startup::Cancel {
                process_id,
                secret_key,
            } => {
                self.actions.push_back(Action::Cancel {
                    process_id,
                    secret_key,
                });
                self.state = State::Closed;
                self.actions.push_back(Action::Close);
            }
            Startup::Startup { minor: _, params } => {
                let user = params.get("user").map(str::to_owned);
                let database = params.get("database").map(str::to_owned);
                // From here on, a refusal is a refused login, and audited as one.
                self.login = Some(Box::new(LoginAttempt {
                    user: user.clone().unwrap_or_default(),
                    database: database.clone().unwrap_or_default(),
                    token: None,
                }));
                let mut forward = Vec::new();
                for (k, v) in params.iter() {
                    match k {
                        "user" | "database" => {}
                        // Command-line switches for the backend: only settings (`-c
                        // name=value`, `--name=value`), each checked like a parameter and
                        // forwarded as one — the database never parses `options` itself,
                        // so pgate's reading of it is the only one.
                        "options" => match options_settings(v) {
                            Ok(settings) => {
                                for (k, v) in settings {
                                    if let Err(why) = startup_param_allowed(&k, &v) {
                                        let msg = format!(
                                            "pgate: setting `{k}` in the startup parameter `options` {why}"
                                        );
                                        return self.fatal(sqlstate::FEATURE_NOT_SUPPORTED, &msg);
                                    }
                                    forward.push((k, v));
                                }
                            }
                            Err(why) => {
                                let msg = format!("pgate: startup parameter `options`: {why}");
                                return self.fatal(sqlstate::FEATURE_NOT_SUPPORTED, &msg);
                            }
                        },
                        "replication" => {
                            return self.fatal(
                                sqlstate::FEATURE_NOT_SUPPORTED,
                                "pgate: replication connections are not allowed",
                            );
                        }
                        // Protocol extensions: pgate speaks 3.0 and forwards none.
                        k if k.starts_with("_pq_.") => {}
                        _ => match startup_param_allowed(k, v) {
                            Ok(()) => forward.push((k.to_owned(), v.to_owned())),
                            Err(why) => {
                                let msg = format!("pgate: startup parameter `{k}` {why}");
                                return self.fatal(sqlstate::FEATURE_NOT_SUPPORTED, &msg);
                            }
                        },
                    }
                }
                let Some(user) = user else {
                    return self.fatal(
                        sqlstate::INVALID_AUTHORIZATION,
                        "pgate: no user name in the startup packet",
                    );
                };
                let database = database.unwrap_or_else(|| user.clone());
                if !tls && !self.cfg.allow_plaintext_auth {
                    return self.fatal(
                        sqlstate::INVALID_AUTHORIZATION,
                        "pgate requires TLS: connect with sslmode=require (tokens are never accepted in plaintext)",
                    );
                }
                // AuthenticationCleartextPassword: the token travels as the password.
                self.to_client
                    .extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                self.state = State::AwaitToken {
                    user,
                    database,
                    params: forward,
                };
            }
        }
    }

    pub(super) fn on_token(&mut self, p: &[u8], table: &Table<'_>, auth: &dyn Authenticator) {
        let State::AwaitToken {
            user,
            database,
            params,
        } = std::mem::replace(&mut self.state, State::Startup { tls: false })
        else {
            return;
        };
        // PasswordMessage: "The password (encrypted, if requested)", a String.
        let token = p
            .strip_suffix(&[0])
            .and_then(|t| std::str::from_utf8(t).ok());
        let Some(token) = token else {
            return self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: malformed password message",
            );
        };
        let now_unix = self.now.unix_ms / 1000;
        let rejected = |why: String| {
            (
                sqlstate::INVALID_PASSWORD,
                format!("pgate: token rejected: {why}"),
            )
        };
        let verified = auth
            .authenticate(&user, token, table, now_unix)
            .map_err(rejected)
            .and_then(|identity| {
                // A valid token the policy does not admit: as pg_hba.conf's `reject`.
                Self::delegation(identity, table)
                    .map_err(|why| (sqlstate::INVALID_AUTHORIZATION, format!("pgate: {why}")))
            })
            .and_then(|identity| self.sender_constraint(identity, table).map_err(rejected))
            .and_then(|identity| self.token_use(identity, table, now_unix));
        match verified {
            Ok((identity, asked)) => {
                self.table_digest_raw = table.digest();
                self.table_digest = digest_hex(&self.table_digest_raw);
                let expiry = identity
                    .expires_at_unix
                    .saturating_add(self.cfg.token_grace_secs);
                self.ready.caps = results::Caps::of(table, identity.role);
                self.ready.rates = results::Rate::of(
                    table,
                    identity.role,
                    &identity.subject,
                    &self.identity_buckets,
                    self.now.mono_us,
                );
                self.ready.budgets = super::budget::Spend::of(
                    table,
                    identity.role,
                    &identity.subject,
                    &self.budget_store,
                );
                self.identity = Some(identity);
                self.refresh_audit_who();
                self.masks_for_role(table);
                self.set_expiry_deadline(expiry);
                match asked {
                    // The shared store counts this token's sessions: the login waits for
                    // its answer (`poll_token_check`), unseen until then.
                    Some((asked, rule)) => {
                        // For the audit line, should the store refuse.
                        if let Some(l) = self.login.as_mut() {
                            l.token = TokenHints::peek(token);
                        }
                        let identity = self.identity.take().map(Box::new);
                        self.refresh_audit_who();
                        if let Some(identity) = identity {
                            self.state = State::TokenCheck {
                                database,
                                params,
                                check: Box::new(TokenCheck {
                                    asked,
                                    identity,
                                    rule,
                                }),
                            };
                        }
                    }
                    None => {
                        self.state = State::Connecting { database, params };
                        self.actions.push_back(Action::ConnectUpstream);
                    }
                }
            }
            Err((code, msg)) => {
                if let Some(l) = self.login.as_mut() {
                    l.token = TokenHints::peek(token);
                }
                self.fatal(code, &msg);
            }
        }
    }
}

impl Session {
    /// The PROXY protocol v2 header a trusted load balancer sends before anything else:
    /// the client it names becomes the session's client (its audit lines, the
    /// per-address limit). The bytes it took, or `None` while more are needed or when the
    /// session ended (a malformed header, an address over its limit).
    pub(super) fn proxy_header(&mut self, input: &[u8]) -> Option<usize> {
        use crate::proxy_protocol::{Source, parse};
        let refuse = |s: &mut Session, code: &str, msg: &str| {
            // Before any login: the connection's own line, as for max-connections.
            s.audit_connection("connection-refused", Some(&format!("FATAL {code}: {msg}")));
            s.fatal(code, msg);
            None
        };
        match parse(input) {
            Ok(None) => None,
            Ok(Some((n, source))) => {
                self.proxy_pending = false;
                // The address counted: the client the header names, or for LOCAL (the
                // balancer's own health check) the balancer itself.
                let counted = match source {
                    Source::Client(client) => Some(client.ip().to_canonical()),
                    Source::Peer => self
                        .client_addr
                        .parse::<std::net::SocketAddr>()
                        .ok()
                        .map(|a| a.ip().to_canonical()),
                };
                if let Source::Client(client) = source {
                    // Plaintext tokens are for loopback clients: the balancer being local
                    // says nothing of the network between it and the client.
                    if !client.ip().to_canonical().is_loopback() {
                        self.cfg.allow_plaintext_auth = false;
                    }
                    self.client_addr = client.to_string();
                    self.refresh_audit_who();
                }
                if let (Some(ip), Some((counts, max))) = (counted, &self.address_counts) {
                    match counts.lease(ip, *max) {
                        Some(l) => self.address_lease = Some(l),
                        None => {
                            return refuse(
                                self,
                                sqlstate::TOO_MANY_CONNECTIONS,
                                "sorry, too many connections from this address (pgate max-connections-per-address)",
                            );
                        }
                    }
                }
                Some(n)
            }
            Err(e) => refuse(
                self,
                sqlstate::PROTOCOL_VIOLATION,
                &format!("pgate: {e} from a trusted load balancer (proxy-protocol)"),
            ),
        }
    }
}

/// A login refused because its token had opened its sessions: who (verified), which
/// token, and the first session it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReuseRefusal {
    pub sub: String,
    pub iss: String,
    pub jti: String,
    pub first_conn: String,
    pub first_client: String,
}

impl Session {
    /// RFC 8693: a session whose token carries an `act` chain is decided by its role's
    /// delegated variant for that chain (`delegated` blocks); a chain longer than the
    /// role's `delegation max-depth=` is refused. Before the token's uses are counted: the
    /// variant's `token` rules count them.
    fn delegation(mut identity: Identity, table: &Table<'_>) -> Result<Identity, String> {
        let granted = identity.role;
        match table.role_for_chain(granted, &identity.actors) {
            Ok(role) => {
                identity.decide_as(role, granted, table);
                Ok(identity)
            }
            Err(refused) => Err(refused.describe(table, granted)),
        }
    }

    /// RFC 8705 §3: a token bound to a client certificate is good only over a TLS
    /// connection whose client presented that certificate (and proved it holds its key);
    /// a role with `token binding="certificate"` takes no other. Checked before a use is
    /// counted: a stolen bound token spends nothing.
    fn sender_constraint(&self, identity: Identity, table: &Table<'_>) -> Result<Identity, String> {
        let limit = table.token_use(identity.role);
        match (identity.bound_cert, self.client_cert) {
            (Some(want), Some(got)) if want == got => Ok(identity),
            (Some(_), Some(_)) => Err(
                "the token is bound to another client certificate than this connection's (cnf x5t#S256)"
                    .to_string(),
            ),
            (Some(_), None) => Err(
                "the token is bound to a client certificate (cnf x5t#S256) and this connection presented none"
                    .to_string(),
            ),
            (None, _) if limit.require_certificate => {
                let rule = limit
                    .rule
                    .and_then(|r| table.rule(r))
                    .map(|r| format!(" (rule at {}:{})", r.file, r.line))
                    .unwrap_or_default();
                Err(format!(
                    "role \"{}\" takes only tokens bound to the client certificate (cnf x5t#S256){rule}",
                    identity.decided_as()
                ))
            }
            (None, _) => Ok(identity),
        }
    }

    /// The role's `token sessions= concurrent=`: this session's place among its token's
    /// (or, with a shared store, the question asked, and the rule for its refusal), or the
    /// refusal (kept for the audit line when the token was used up).
    fn token_use(
        &mut self,
        identity: Identity,
        table: &Table<'_>,
        now_unix: u64,
    ) -> Result<(Identity, Option<(crate::token_uses::Asked, String)>), Refused> {
        let limit = table.token_use(identity.role);
        if !limit.is_limited() {
            return Ok((identity, None));
        }
        let rule = limit
            .rule
            .and_then(|r| table.rule(r))
            .map(|r| {
                format!(
                    " (role \"{}\", rule at {}:{})",
                    identity.decided_as(),
                    r.file,
                    r.line
                )
            })
            .unwrap_or_default();
        let conn = self.conn_id.to_string();
        let asking = crate::token_uses::Asking {
            conn: &conn,
            client: &self.client_addr,
        };
        match self.token_uses.begin(
            &identity.issuer,
            identity.token_id.as_deref(),
            limit,
            identity.expires_at_unix,
            now_unix,
            asking,
        ) {
            Ok(crate::token_uses::Begun::Now(lease)) => {
                self.token_lease = Some(lease);
                Ok((identity, None))
            }
            Ok(crate::token_uses::Begun::Asked(asked)) => Ok((identity, Some((asked, rule)))),
            Err(r) => Err(self.token_refused(&identity, r, &rule)),
        }
    }

    /// A token use refused: the client's error (28P01, or 57P03 while the shared store
    /// cannot be reached), with the first session kept for the audit line.
    fn token_refused(
        &mut self,
        identity: &Identity,
        r: crate::token_uses::Refusal,
        rule: &str,
    ) -> Refused {
        if let (Some((conn, client)), Some(jti)) = (r.first(), &identity.token_id) {
            self.reuse_refusal = Some(Box::new(ReuseRefusal {
                sub: identity.subject.clone(),
                iss: identity.issuer.clone(),
                jti: jti.clone(),
                first_conn: conn.to_string(),
                first_client: client.to_string(),
            }));
        }
        if r == crate::token_uses::Refusal::Unavailable {
            return (
                sqlstate::CANNOT_CONNECT_NOW,
                format!("pgate: {}{rule}", r.message()),
            );
        }
        (
            sqlstate::INVALID_PASSWORD,
            format!("pgate: token rejected: {}{rule}", r.message()),
        )
    }

    /// While the login waits for the shared store: its answer, once it has come, lets the
    /// session on (upstream login) or ends it.
    pub(super) fn poll_token_check(&mut self) {
        let State::TokenCheck { check, .. } = &self.state else {
            return;
        };
        let now_unix = self.now.unix_ms / 1000;
        let conn = self.conn_id.to_string();
        let asking = crate::token_uses::Asking {
            conn: &conn,
            client: &self.client_addr,
        };
        let Some(answer) = self.token_uses.poll(&check.asked, now_unix, asking) else {
            return;
        };
        let State::TokenCheck {
            database,
            params,
            check,
        } = std::mem::replace(&mut self.state, State::Startup { tls: false })
        else {
            return;
        };
        let TokenCheck { identity, rule, .. } = *check;
        match answer {
            Ok(lease) => {
                self.token_lease = Some(lease);
                self.identity = Some(*identity);
                self.refresh_audit_who();
                self.state = State::Connecting { database, params };
                self.actions.push_back(Action::ConnectUpstream);
            }
            Err(r) => {
                let (code, msg) = self.token_refused(&identity, r, &rule);
                self.fatal(code, &msg);
            }
        }
    }
}

/// A refused login: the SQLSTATE and the client's message.
type Refused = (&'static str, String);

/// A login waiting for the shared store to count its token's use.
#[derive(Debug)]
pub(super) struct TokenCheck {
    pub asked: crate::token_uses::Asked,
    /// The verified identity, the session's once the use is granted.
    pub identity: Box<Identity>,
    /// " (role …, rule at file:line)" for a refusal.
    pub rule: String,
}

/// What a token says about itself, read without verifying it: for the audit line of a
/// refused login (which key, which issuer, whom, which token). Each value is bounded and
/// marked unverified where it is written; the token itself is never kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenHints {
    pub kid: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub jti: Option<String>,
    /// The `act` chain's subjects, outermost first (at most the depth pgate reads).
    pub act: Vec<String>,
}

/// Longest value kept from an unverified token.
const MAX_HINT_CHARS: usize = 128;

impl TokenHints {
    /// The hints of a compact JWS (`header.payload.signature`), if it parses that far.
    pub(crate) fn peek(token: &str) -> Option<TokenHints> {
        use base64::Engine as _;
        let mut parts = token.split('.');
        let (h, p) = (parts.next()?, parts.next()?);
        let decode = |part: &str| -> Option<serde_json::Map<String, serde_json::Value>> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .ok()?;
            match serde_json::from_slice(&bytes) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                _ => None,
            }
        };
        let header = decode(h)?;
        let payload = decode(p).unwrap_or_default();
        let get = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
            m.get(k)
                .and_then(|v| v.as_str())
                .map(|s| s.chars().take(MAX_HINT_CHARS).collect::<String>())
        };
        let mut act = Vec::new();
        let mut next = payload.get("act");
        while let Some(serde_json::Value::Object(a)) = next {
            if act.len() == crate::identity::MAX_DELEGATION_DEPTH {
                break;
            }
            act.extend(get(a, "sub"));
            next = a.get("act");
        }
        Some(TokenHints {
            kid: get(&header, "kid"),
            iss: get(&payload, "iss"),
            sub: get(&payload, "sub"),
            jti: get(&payload, "jti"),
            act,
        })
    }
}

/// Startup parameters are settings the upstream applies before any statement — outside
/// policy, and with the upstream user's rights (often a superuser's). Only settings known
/// not to change how SQL is read (`client_encoding`, `standard_conforming_strings`), how
/// names resolve (`search_path`, `role`, `session_authorization`) or what is checked and
/// logged (`session_replication_role`, `log_*`, `*preload_libraries`, …) pass; anything
/// else is refused by name. Names are case-insensitive, as PostgreSQL's are; values are
/// read as PostgreSQL reads them for these settings.
pub(super) fn startup_param_allowed(name: &str, value: &str) -> Result<(), &'static str> {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        // PostgreSQL compares encoding names after dropping everything but letters and
        // digits (`clean_encoding_name`): 'utf-8' with its quotes is UTF8.
        "client_encoding" => {
            let clean: String = value
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            match clean.as_str() {
                "utf8" | "unicode" | "sqlascii" => Ok(()),
                _ => Err("must be UTF8 through pgate (other encodings change how SQL is read)"),
            }
        }
        "standard_conforming_strings" => match parse_bool(value) {
            Some(true) => Ok(()),
            _ => Err("must be on through pgate (off changes how string literals are read)"),
        },
        "search_path" | "role" | "session_authorization" => Err(
            "is not allowed through pgate (it changes how names resolve); use SET after connecting if policy allows",
        ),
        n if HARMLESS_SETTINGS.contains(&n)
            || n.starts_with("enable_")
            || n.starts_with("lc_")
            || n.starts_with("geqo") =>
        {
            Ok(())
        }
        _ => Err(
            "is not allowed through pgate: only settings known not to change how statements are read, resolved, checked or logged pass at startup; set it with SET after connecting if policy allows",
        ),
    }
}

/// Settings a client may pass at startup: formats, timeouts, planner and resource knobs.
const HARMLESS_SETTINGS: &[&str] = &[
    "application_name",
    "fallback_application_name",
    "datestyle",
    "timezone",
    "intervalstyle",
    "extra_float_digits",
    "bytea_output",
    "xmlbinary",
    "xmloption",
    "client_min_messages",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "default_transaction_deferrable",
    "synchronous_commit",
    "work_mem",
    "maintenance_work_mem",
    "hash_mem_multiplier",
    "temp_buffers",
    "jit",
    "plan_cache_mode",
    "random_page_cost",
    "seq_page_cost",
    "effective_cache_size",
    "cpu_tuple_cost",
    "cpu_index_tuple_cost",
    "cpu_operator_cost",
    "parallel_setup_cost",
    "parallel_tuple_cost",
    "max_parallel_workers_per_gather",
    "from_collapse_limit",
    "join_collapse_limit",
    "cursor_tuple_fraction",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
];

/// PostgreSQL's `parse_bool`: on/off, true/false, yes/no, 1/0, and unique prefixes,
/// case-insensitive.
fn parse_bool(v: &str) -> Option<bool> {
    let v = v.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || v == "on" || v == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// The settings in a startup `options` value, read as PostgreSQL reads it: split at
/// unescaped whitespace, a backslash taking the next character literally
/// (`pg_split_opts`), then `-c name=value`, `-cname=value` or `--name=value`, dashes in
/// the name read as underscores (`ParseLongOption`). Any other switch is refused.
pub(super) fn options_settings(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut args = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            if c.is_ascii_whitespace() {
                break;
            }
            if c == '\\' {
                if let Some(n) = chars.next() {
                    arg.push(n);
                }
            } else {
                arg.push(c);
            }
        }
        args.push(arg);
    }
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let setting = if let Some(rest) = a.strip_prefix("--") {
            rest.to_owned()
        } else if let Some(rest) = a.strip_prefix("-c") {
            if rest.is_empty() {
                it.next().ok_or("-c requires a value")?
            } else {
                rest.to_owned()
            }
        } else {
            return Err(format!(
                "only settings (-c name=value) are allowed through pgate, not `{a}`"
            ));
        };
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("-c {setting} requires a value"))?;
        out.push((name.replace('-', "_"), value.to_owned()));
    }
    Ok(out)
}

/// The largest startup packet PostgreSQL reads (`MAX_STARTUP_PACKET_LENGTH`).
pub(super) const MAX_STARTUP_BYTES: u32 = 10_000;
/// The largest password message (the token) read before login.
pub(super) const MAX_TOKEN_MESSAGE_BYTES: u32 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_as_postgresql_reads_them() {
        for ok in ["UTF8", "utf-8", "'utf-8'", "Unicode", "SQL_ASCII"] {
            assert!(startup_param_allowed("client_encoding", ok).is_ok(), "{ok}");
        }
        for bad in ["LATIN1", "sjis", "'big5'", ""] {
            assert!(
                startup_param_allowed("client_encoding", bad).is_err(),
                "{bad}"
            );
        }
        for ok in ["on", "ON", "true", "t", "yes", "1"] {
            assert!(
                startup_param_allowed("standard_conforming_strings", ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["off", "of", "false", "0", "o", "'on'"] {
            assert!(
                startup_param_allowed("standard_conforming_strings", bad).is_err(),
                "{bad}"
            );
        }
        assert!(startup_param_allowed("DateStyle", "ISO, MDY").is_ok());
        assert!(startup_param_allowed("enable_seqscan", "off").is_ok());
        for refused in [
            "search_path",
            "Search_Path",
            "role",
            "session_authorization",
            "session_replication_role",
            "session_preload_libraries",
            "log_statement",
            "lo_compat_privileges",
        ] {
            assert!(startup_param_allowed(refused, "x").is_err(), "{refused}");
        }
    }

    #[test]
    fn options_are_split_as_postgresql_splits_them() {
        assert_eq!(
            options_settings("-c statement_timeout=5s --lock-timeout=1s -cDateStyle=ISO").unwrap(),
            [
                ("statement_timeout".to_owned(), "5s".to_owned()),
                ("lock_timeout".to_owned(), "1s".to_owned()),
                ("DateStyle".to_owned(), "ISO".to_owned()),
            ]
        );
        // An escaped space stays in the value.
        assert_eq!(
            options_settings(r"-c application_name=a\ b").unwrap(),
            [("application_name".to_owned(), "a b".to_owned())]
        );
        assert_eq!(
            options_settings("-c search_path=evil").unwrap(),
            [("search_path".to_owned(), "evil".to_owned())]
        );
        assert!(options_settings("-F").is_err());
        assert!(options_settings("-c").is_err());
        assert!(options_settings("-c novalue").is_err());
        assert_eq!(options_settings("   ").unwrap(), []);
    }
}
