//! The client's messages in the Ready state: framing them off the client's bytes,
//! deciding each Query, Parse, Bind, Describe and FunctionCall against the table, and
//! forwarding, refusing or answering it.
//!
//! What it must never do: forward a message it has not framed and decided, or anything of an
//! extended-query batch after a denied message in it (`batch` tracks the batch).

use super::*;

impl Session {
    /// Consumes complete messages from the start of `input`; returns how many bytes were
    /// consumed (the rest is an incomplete message: feed it again with more bytes).
    /// `scratch` is the worker's classifier buffers, lent for this call.
    pub fn handle_client(
        &mut self,
        input: &[u8],
        table: &Table<'_>,
        auth: &dyn Authenticator,
        now: Clock,
        scratch: &mut Scratch,
    ) -> usize {
        self.lend_scratch(scratch);
        let n = self.client_messages(input, table, auth, now);
        self.return_scratch(scratch);
        n
    }

    fn client_messages(
        &mut self,
        input: &[u8],
        table: &Table<'_>,
        auth: &dyn Authenticator,
        now: Clock,
    ) -> usize {
        self.now = now;
        self.handle_table(table, auth);
        let mut consumed = 0;
        while !matches!(self.state, State::Closed) {
            if self.holding_client() {
                break;
            }
            let rest = &input[consumed..];
            if self.proxy_pending {
                match self.proxy_header(rest) {
                    Some(n) => {
                        consumed += n;
                        continue;
                    }
                    None => break,
                }
            }
            let framed = match self.state {
                // Before login, messages are small: PostgreSQL caps startup packets at
                // 10,000 bytes (MAX_STARTUP_PACKET_LENGTH); a token is a few KiB.
                State::Startup { .. } => {
                    frame_startup(rest, self.cfg.max_message_bytes.min(MAX_STARTUP_BYTES))
                }
                State::AwaitToken { .. } => frame(
                    rest,
                    self.cfg.max_message_bytes.min(MAX_TOKEN_MESSAGE_BYTES),
                ),
                _ => frame(rest, self.cfg.max_message_bytes),
            };
            let f = match framed {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.protocol_violation(e);
                    break;
                }
            };
            consumed += f.len;
            let raw = &rest[..f.len];
            let result = match self.state {
                State::Startup { .. } => parse_startup(&f).map(|s| self.on_startup(s)),
                State::AwaitToken { .. } => parse_frontend(&f).map(|m| match m {
                    Frontend::Password(p) => self.on_token(p, table, auth),
                    Frontend::Terminate => self.close_quietly("the client sent Terminate"),
                    _ => self.fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "pgate: expected a password message carrying the token",
                    ),
                }),
                State::Ready => parse_frontend(&f).map(|m| self.on_frontend(m, raw, table)),
                // libpq waits for ReadyForQuery before sending more; anything else here is
                // a client that does not follow the protocol.
                _ => parse_frontend(&f).map(|m| match m {
                    Frontend::Terminate => self.close_quietly("the client sent Terminate"),
                    _ => self.fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "pgate: message received before authentication completed",
                    ),
                }),
            };
            if let Err(e) = result {
                self.protocol_violation(e);
                break;
            }
            // After 'S' the TLS handshake comes next: bytes the client pipelined behind its
            // SSLRequest are plaintext and must not be read as protocol (the driver refuses
            // them; CVE-2021-23214).
            if self.actions.contains(&Action::StartTls) {
                break;
            }
        }
        consumed
    }

    pub(super) fn on_frontend(&mut self, m: Frontend<'_>, raw: &[u8], table: &Table<'_>) {
        // Inside a denied extended-query batch everything up to Sync is dropped.
        if self.ready.skipping_batch {
            match m {
                Frontend::Sync => self.end_refused_batch(raw),
                Frontend::Terminate => self.close_quietly("the client sent Terminate"),
                _ => {}
            }
            return;
        }
        // In copy-in mode only the copy sub-protocol (and Flush, Sync, Terminate) may come;
        // anything else would be decided against unit counts the server no longer keeps.
        if self.ready.copy_in
            && !matches!(
                m,
                Frontend::CopyData(_)
                    | Frontend::CopyDone
                    | Frontend::CopyFail { .. }
                    | Frontend::Flush
                    | Frontend::Sync
                    | Frontend::Terminate
            )
        {
            return self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: unexpected message during COPY FROM STDIN",
            );
        }
        if !self.audit_accepting
            && matches!(
                m,
                Frontend::Query { .. } | Frontend::Parse { .. } | Frontend::FunctionCall { .. }
            )
        {
            const MSG: &str =
                "pgate: the audit log is unavailable, so statements are refused; try again shortly";
            if let Frontend::Parse { statement, .. } = m {
                self.refuse_parse(statement, sqlstate::AUDIT_UNAVAILABLE, MSG);
            } else {
                self.refuse_alone(sqlstate::AUDIT_UNAVAILABLE, MSG);
            }
            return;
        }
        // PostgreSQL skips a Query or FunctionCall that follows an error in an unsynced
        // extended batch (it ignores everything until Sync), so whether it gets a
        // ReadyForQuery depends on that batch's answers. Drivers that do this (asyncpg:
        // Parse, Describe, Flush, then a Query) wait for the answers first; pgate allows it
        // when every answer is in and none was an error, and otherwise refuses rather than
        // lose count of the server's answers.
        let batch_answered = self.ready.inflight == 0
            && self.ready.unit_finals == self.ready.batch_finals
            && !self.ready.unit_error;
        if self.ready.batch_forwarded
            && !batch_answered
            && matches!(m, Frontend::Query { .. } | Frontend::FunctionCall { .. })
        {
            return self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: a Query or FunctionCall inside an extended-protocol batch (before its Sync) is not supported",
            );
        }
        match m {
            Frontend::Query { sql } => self.on_query(sql, raw, table),
            Frontend::Parse { statement, sql, .. } => self.on_parse(statement, sql, raw, table),
            Frontend::Bind {
                portal, statement, ..
            } => {
                if let Some(summary) = self.allowed_statement(statement, table)
                    && self.bind_portal(portal, statement, summary)
                {
                    self.forward_in_batch(raw);
                }
            }
            Frontend::Describe { kind: b'S', name } => {
                if self.allowed_statement(name, table).is_some() {
                    self.client_describe();
                    self.forward_in_batch(raw);
                }
            }
            Frontend::Describe { .. } => {
                self.client_describe();
                self.forward_in_batch(raw);
            }
            Frontend::Execute { portal, .. } => {
                // Portals exist only through allowed Binds or DECLAREs pgate checked; an
                // unknown portal name fails upstream.
                let Ok(found) = self.portal_for_execute(portal, table) else {
                    return;
                };
                // Its result's RowDescription, for the masks (the answer is pgate's).
                self.describe_before_execute(portal);
                if let Some(run) = found {
                    self.slot_ref(run.summary);
                    let path_step = run.path_effect != PathEffect::None
                        && self.record_execute_path(portal, run.path_effect);
                    self.ready.pending.push_back(Pending {
                        summary: run.summary,
                        unit: self.ready.unit_seq,
                        position: Some(self.ready.batch_finals),
                        started_us: self.now.mono_us,
                        digest: self.table_digest,
                        effect: run.effect,
                        portal: run.portal,
                        carried: run.carried,
                        path_step,
                    });
                }
                self.ready.syncs_since_execute = 0;
                self.forward_in_batch(raw);
                self.ready.sent_after_command = 0;
                self.ready.copy_ended_early = false;
            }
            Frontend::Close { kind, name } => self.on_close(kind, name, raw),
            Frontend::Sync => {
                self.forward(raw);
                if self.ready.copy_in {
                    // Ignored by the server in copy-in mode: no ReadyForQuery will answer it.
                    return;
                }
                self.ready.syncs_since_execute += 1;
                self.unit_forwarded();
            }
            Frontend::Flush => self.forward(raw),
            Frontend::Terminate => {
                // An idle connection stays open for the next session; any other gets
                // the client's Terminate.
                self.parkable = self.upstream_idle();
                if !self.parkable {
                    self.forward(raw);
                }
                self.close_quietly("the client sent Terminate");
            }
            // The copy sub-protocol: only while the upstream is in COPY FROM STDIN (outside
            // it PostgreSQL ignores these too).
            Frontend::CopyData(_) | Frontend::CopyDone | Frontend::CopyFail { .. } => {
                // Forwarded in order whether or not the server has entered copy-in yet:
                // drivers (asyncpg) send the data right behind the COPY command, and the
                // server reads it once CopyInResponse is out; outside copy-in it ignores
                // these messages ("Accept but ignore these messages, per protocol spec").
                self.ready.bytes += raw.len() as u64;
                if !matches!(m, Frontend::CopyData(_)) {
                    if self.ready.copy_in {
                        self.ready.copy_in = false;
                    } else {
                        self.ready.copy_ended_early = true;
                    }
                }
                // Not counted as pipelined bytes: COPY data streams, it is not queued
                // behind unanswered commands.
                self.to_upstream.extend_from_slice(raw);
            }
            Frontend::FunctionCall { oid, .. } => {
                // The fast-path interface names the function by OID alone, which function
                // rules (by name, with tags) cannot be checked against: refused for every
                // role (fail closed). `SELECT f(…)` is decided like any statement.
                const MSG: &str = "pgate: FunctionCall messages (the fast-path interface, e.g. libpq's large-object calls) are not supported: they name the function by OID, which pgate cannot check against the policy's function rules; call it with SELECT instead";
                self.audit_function_call(oid, MSG);
                self.refuse_alone(sqlstate::INSUFFICIENT_PRIVILEGE, MSG);
            }
            Frontend::Password(_) => self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: unexpected password message after authentication",
            ),
        }
    }

    pub(super) fn role(&self) -> RoleId {
        self.identity
            .as_ref()
            .map(|i| i.role)
            .unwrap_or(RoleId(u32::MAX))
    }

    /// Classifies `sql` into `self.facts` and decides it; resolves `EXECUTE name`, and
    /// decides again any stored statement it uses (`EXECUTE`, `FETCH`) that an earlier
    /// table decided.
    pub(super) fn decide_sql(&mut self, sql: &str, table: &Table<'_>) -> Verdict {
        self.ready.recheck_msg = None;
        let role = self.role();
        let flags = (
            self.ready.path_optimistic.tx_dirty(),
            self.ready.path_optimistic.is_unknown(),
        );
        let verdict = decide_text(
            &mut self.facts,
            sql,
            &self.ready.search_path,
            flags,
            role,
            table,
        );
        if !verdict.is_allow() {
            return verdict;
        }
        self.check_sql_uses(verdict, table)
    }

    /// Decides a stored statement's text again under `table` (into the scratch facts); on
    /// a denial, keeps the message for the client in `recheck_msg`.
    pub(super) fn recheck_stored(
        &mut self,
        sql: &str,
        path: &[String],
        table: &Table<'_>,
    ) -> Verdict {
        let role = self.role();
        let v = decide_text(
            &mut self.ready.recheck,
            sql,
            path,
            (false, false),
            role,
            table,
        );
        if !v.is_allow() {
            let why = deny_message(&self.ready.recheck, &v, self.role_name(), table);
            self.ready.recheck_msg = Some(format!(
                "{why}; the statement was allowed under an earlier policy and decided again after a reload"
            ));
        }
        v
    }

    pub(super) fn on_query(&mut self, sql: &str, raw: &[u8], table: &Table<'_>) {
        let verdict = self.decide_sql(sql, table);
        if verdict.is_allow() {
            if let Some(msg) = self.limit_exceeded() {
                self.audit_denied(&verdict, table, msg, sql);
                self.refuse_alone(sqlstate::TOO_MANY, msg);
                return;
            }
            // One audit line per statement of the string, each completed by its
            // CommandComplete (or error) from the upstream; object effects apply then.
            for i in 0..self.facts.statements().len() {
                let effect = self.sql_effect(i, sql, table);
                let slot = self.summary_for_statement(i, &verdict, table, sql);
                let path_step = self.record_query_path(i);
                self.ready.pending.push_back(Pending {
                    summary: slot,
                    unit: self.ready.unit_seq,
                    position: None,
                    started_us: self.now.mono_us,
                    digest: self.table_digest,
                    effect,
                    portal: 0,
                    carried: (0, 0),
                    path_step,
                });
            }
            self.forward(raw);
            self.ready.syncs_since_execute = 0;
            self.ready.sent_after_command = 0;
            self.ready.copy_ended_early = false;
            self.unit_forwarded();
        } else {
            let msg = self.denial_text(&verdict, table);
            self.audit_denied(&verdict, table, &msg, sql);
            self.refuse_alone(sqlstate::INSUFFICIENT_PRIVILEGE, &msg);
        }
    }

    /// The message for a denial of the current facts (or of the stored statement a
    /// re-decision refused).
    pub(super) fn denial_text(&mut self, verdict: &Verdict, table: &Table<'_>) -> String {
        match self.ready.recheck_msg.take() {
            Some(m) => m,
            None => deny_message(&self.facts, verdict, self.role_name(), table),
        }
    }

    /// The deciding role's name (a delegated variant's, if one decides).
    pub(super) fn role_name(&self) -> &str {
        self.identity.as_ref().map_or("", Identity::decided_as)
    }
}
