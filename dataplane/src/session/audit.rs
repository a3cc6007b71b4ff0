//! Audit lines: one JSON line per statement (allowed, denied, not run, unknown) and per
//! connection event, each with the identity, the delegation chain and the digest of the
//! table that decided it. Statement summaries live in reference-counted slots, written
//! when a statement is decided and completed by its result.
//!
//! What this module must never do: write a line naming another statement than the one
//! it describes, or drop a statement that was forwarded.

use super::*;

impl Session {
    /// A summary slot with no references yet.
    pub(super) fn new_summary(&mut self) -> usize {
        match self.ready.free_summaries.pop() {
            Some(i) => i,
            None => {
                self.ready.summaries.push(String::with_capacity(256));
                self.ready.summary_refs.push(0);
                self.ready.summaries.len() - 1
            }
        }
    }

    /// Writes the summary of statement `stmt` of `self.facts` into a summary slot.
    /// Simple queries use one slot per statement of the string, reused across queries.
    pub(super) fn summary_for_statement(
        &mut self,
        stmt: usize,
        verdict: &Verdict,
        table: &Table<'_>,
        sql: &str,
    ) -> usize {
        // Slot 0 serves the common case (one statement, nothing outstanding) without
        // taking a slot; otherwise a free slot, released when its line is written.
        let slot = if stmt == 0 && self.ready.pending.is_empty() {
            0
        } else {
            let slot = self.new_summary();
            self.slot_ref(slot);
            slot
        };
        self.write_summary(slot, stmt, verdict, table, sql);
        slot
    }

    pub(super) fn write_summary(
        &mut self,
        slot: usize,
        stmt: usize,
        verdict: &Verdict,
        table: &Table<'_>,
        sql: &str,
    ) {
        let mut out = std::mem::take(&mut self.ready.summaries[slot]);
        write_summary(
            &mut out,
            &self.facts,
            stmt,
            verdict,
            table,
            sql,
            &self.ready.search_path,
        );
        self.ready.summaries[slot] = out;
    }

    pub(super) fn line_start(&mut self, event: &str, digest: &DigestHex) {
        self.audit.push_str("{\"ts_ms\":");
        self.audit
            .push_str(itoa::Buffer::new().format(self.now.unix_ms));
        self.audit.push_str(",\"event\":\"");
        self.audit.push_str(event);
        self.audit.push('"');
        self.audit.push_str(&self.audit_who);
        // The digest of the table that decided (a swap may come before a statement's line
        // is written).
        self.audit.push_str(",\"table\":\"");
        self.audit
            .push_str(std::str::from_utf8(digest).unwrap_or(""));
        self.audit.push('"');
    }

    /// Escapes, once, the fields every line of this session carries: its connection,
    /// client address, subject, actors and role. Called when the session is made and when
    /// its identity or role changes.
    pub(super) fn refresh_audit_who(&mut self) {
        let mut w = std::mem::take(&mut self.audit_who);
        w.clear();
        let id = self.identity.as_ref();
        let _ = write!(w, ",\"conn\":\"{}\",\"client\":\"", self.conn_id);
        json_escape_into(&mut w, &self.client_addr);
        w.push_str("\",\"sub\":\"");
        json_escape_into(&mut w, id.map(|i| i.subject.as_str()).unwrap_or(""));
        w.push_str("\",\"act\":[");
        if let Some(i) = id {
            for (n, a) in i.actors.iter().enumerate() {
                if n > 0 {
                    w.push(',');
                }
                w.push('"');
                json_escape_into(&mut w, a);
                w.push('"');
            }
        }
        w.push_str("],\"role\":\"");
        json_escape_into(&mut w, id.map(|i| i.role_name.as_str()).unwrap_or(""));
        w.push('"');
        // The delegated variant that decides, when the chain picked one.
        if let Some(v) = id.and_then(|i| i.variant.as_deref()) {
            w.push_str(",\"variant\":\"");
            json_escape_into(&mut w, v);
            w.push('"');
        }
        self.audit_who = w;
    }

    /// A connection event (`open`, `close`, `rebind`, `revoked`), with the table in force.
    pub(super) fn audit_connection(&mut self, event: &str, reason: Option<&str>) {
        let digest = self.table_digest;
        self.line_start(event, &digest);
        if event == "open" {
            // The backend serving the session (PostgreSQL's %p in its log); with reuse,
            // several sessions in turn.
            if let Some((pid, _)) = self.keys.upstream {
                let _ = write!(self.audit, ",\"backend_pid\":{pid}");
            }
            if self.upstream_reused {
                self.audit.push_str(",\"upstream\":\"reused\"");
            }
        }
        if let Some(r) = reason {
            self.audit.push_str(",\"reason\":\"");
            json_escape_into(&mut self.audit, r);
            self.audit.push('"');
        }
        self.audit.push_str("}\n");
    }

    /// A login that did not succeed: who asked (as the startup packet and the token say,
    /// unverified), from where, and why it was refused.
    pub(super) fn audit_login_refused(&mut self, cause: &str) {
        let digest = self.table_digest;
        let reuse = self.reuse_refusal.take();
        // A token used past its role's `token sessions=`/`concurrent=`: its own event,
        // with the session that used it first.
        self.line_start(
            if reuse.is_some() {
                "token-reused"
            } else {
                "login-refused"
            },
            &digest,
        );
        if let Some(r) = reuse {
            self.audit.push_str(",\"token\":{\"iss\":\"");
            json_escape_into(&mut self.audit, &r.iss);
            self.audit.push_str("\",\"jti\":\"");
            json_escape_into(&mut self.audit, &r.jti);
            self.audit.push_str("\",\"sub\":\"");
            json_escape_into(&mut self.audit, &r.sub);
            self.audit.push_str("\"},\"first_conn\":\"");
            json_escape_into(&mut self.audit, &r.first_conn);
            self.audit.push_str("\",\"first_client\":\"");
            json_escape_into(&mut self.audit, &r.first_client);
            self.audit.push('"');
        }
        let Some(l) = self.login.take() else {
            self.audit.push_str("}\n");
            return;
        };
        self.audit.push_str(",\"user\":\"");
        json_escape_into(&mut self.audit, &l.user);
        self.audit.push_str("\",\"database\":\"");
        json_escape_into(&mut self.audit, &l.database);
        self.audit.push('"');
        if let Some(t) = &l.token {
            self.audit.push_str(",\"token_unverified\":{");
            let mut first = true;
            for (k, v) in [
                ("kid", &t.kid),
                ("iss", &t.iss),
                ("sub", &t.sub),
                ("jti", &t.jti),
            ] {
                let Some(v) = v else { continue };
                if !first {
                    self.audit.push(',');
                }
                first = false;
                let _ = write!(self.audit, "\"{k}\":\"");
                json_escape_into(&mut self.audit, v);
                self.audit.push('"');
            }
            if !t.act.is_empty() {
                if !first {
                    self.audit.push(',');
                }
                self.audit.push_str("\"act\":[");
                for (i, a) in t.act.iter().enumerate() {
                    if i > 0 {
                        self.audit.push(',');
                    }
                    self.audit.push('"');
                    json_escape_into(&mut self.audit, a);
                    self.audit.push('"');
                }
                self.audit.push(']');
            }
            self.audit.push('}');
        }
        self.audit.push_str(",\"reason\":\"");
        json_escape_into(&mut self.audit, cause);
        self.audit.push_str("\"}\n");
    }

    pub(super) fn audit_denied(
        &mut self,
        verdict: &Verdict,
        table: &Table<'_>,
        msg: &str,
        sql: &str,
    ) {
        let path = std::mem::take(&mut self.ready.search_path);
        self.audit_denied_in(false, verdict, table, msg, sql, &path);
        self.ready.search_path = path;
    }

    /// The deny line of statement `verdict.statement` of the current facts, or of the
    /// re-decision's facts (`recheck`).
    pub(super) fn audit_denied_in(
        &mut self,
        recheck: bool,
        verdict: &Verdict,
        table: &Table<'_>,
        msg: &str,
        sql: &str,
        path: &[String],
    ) {
        self.denied_count += 1;
        let stmt = match verdict.decision {
            Decision::Deny { statement, .. } => statement as usize,
            Decision::Allow => 0,
        };
        let slot = self.new_summary();
        let mut out = std::mem::take(&mut self.ready.summaries[slot]);
        let f = if recheck {
            &self.ready.recheck
        } else {
            &self.facts
        };
        write_summary(&mut out, f, stmt, verdict, table, sql, path);
        self.ready.summaries[slot] = out;
        let digest = self.table_digest;
        self.line_start("statement", &digest);
        self.audit.push_str(",\"verdict\":\"deny\",");
        let summary = std::mem::take(&mut self.ready.summaries[slot]);
        self.audit.push_str(&summary);
        self.ready.summaries[slot] = summary;
        self.audit.push_str(",\"reason\":\"");
        json_escape_into(&mut self.audit, msg);
        self.audit
            .push_str("\",\"rows\":0,\"bytes\":0,\"duration_us\":0}\n");
        self.ready.free_summaries.push(slot);
    }

    /// The deny line of a FunctionCall message: no SQL, the function's OID.
    pub(super) fn audit_function_call(&mut self, oid: u32, msg: &str) {
        self.denied_count += 1;
        let digest = self.table_digest;
        self.line_start("statement", &digest);
        let _ = write!(
            self.audit,
            ",\"verdict\":\"deny\",\"sql\":\"\",\"function_call_oid\":{oid},\"classes\":[\"call\"],\"rule\":null,\"reason\":\""
        );
        json_escape_into(&mut self.audit, msg);
        self.audit
            .push_str("\",\"rows\":0,\"bytes\":0,\"duration_us\":0}\n");
    }

    /// A final response (at `position` of the unit the upstream is answering) ended the
    /// oldest pending statement — if it is that statement's: a Query's statements end in
    /// order; an Execute's at its own position. An error at an earlier position came from
    /// a message before the Execute (a Parse or Bind), so the Execute did not run: its line
    /// is written at ReadyForQuery ([`Session::finish_unit`]).
    pub(super) fn complete_statement(&mut self, status: &str, position: u32) {
        let unit = self.upstream_unit();
        let mine = self
            .ready
            .pending
            .front()
            .is_some_and(|p| p.unit == unit && p.position.is_none_or(|q| q == position));
        if !mine {
            self.ready.rows = 0;
            self.ready.bytes = 0;
            return;
        }
        let Some(mut p) = self.ready.pending.pop_front() else {
            return;
        };
        self.write_statement_line(&p, status);
        if status == "ok" && p.path_step {
            self.path_step_done(p.unit);
        }
        if status == "ok"
            && let Some(e) = p.effect.take()
        {
            self.apply_sql_effect(*e, p.unit);
        }
    }

    pub(super) fn write_statement_line(&mut self, p: &Pending, status: &str) {
        self.allowed_count += 1;
        let duration = self.now.mono_us.saturating_sub(p.started_us);
        self.line_start("statement", &p.digest);
        self.audit.push_str(",\"verdict\":\"allow\",");
        let summary = std::mem::take(&mut self.ready.summaries[p.summary]);
        self.audit.push_str(&summary);
        self.ready.summaries[p.summary] = summary;
        self.audit.push_str(",\"status\":\"");
        self.audit.push_str(status);
        self.audit.push('"');
        if status == "cut"
            && let Some(note) = self.ready.cut_note.take()
        {
            self.audit.push_str(&note);
        }
        let mut n = itoa::Buffer::new();
        if self.ready.throttled_us > 0 {
            self.audit.push_str(",\"throttled_ms\":");
            self.audit
                .push_str(n.format(std::mem::take(&mut self.ready.throttled_us) / 1000));
        }
        // Integers without core::fmt: these fields are on every statement's line.
        self.audit.push_str(",\"rows\":");
        self.audit.push_str(n.format(self.ready.rows));
        self.audit.push_str(",\"bytes\":");
        self.audit.push_str(n.format(self.ready.bytes));
        self.audit.push_str(",\"duration_us\":");
        self.audit.push_str(n.format(duration));
        self.audit.push_str("}\n");
        self.ready.rows = 0;
        self.ready.bytes = 0;
        self.slot_unref(p.summary);
    }

    /// ReadyForQuery: statements of the finished unit that never completed did not run
    /// (an earlier error in the same string or batch).
    pub(super) fn finish_unit(&mut self) {
        let done_unit = self
            .ready
            .unit_seq
            .saturating_sub(self.ready.inflight as u64);
        while let Some(p) = self.ready.pending.front() {
            if p.unit >= done_unit {
                break;
            }
            let Some(p) = self.ready.pending.pop_front() else {
                break;
            };
            self.write_statement_line(&p, "not-run");
        }
    }
}

/// The row count of a CommandComplete tag ("INSERT 0 5", "UPDATE 3", "SELECT 7",
/// "COPY 10", "FETCH 2", "MERGE 1"); `None` for tags without one (MOVE counts rows it did
/// not send).
pub(super) fn command_rows(body: &[u8]) -> Option<u64> {
    let tag = body.split(|b| *b == 0).next()?;
    let tag = std::str::from_utf8(tag).ok()?;
    let (command, rest) = tag.split_once(' ')?;
    if !matches!(
        command,
        "INSERT" | "UPDATE" | "DELETE" | "SELECT" | "COPY" | "FETCH" | "MERGE"
    ) {
        return None;
    }
    rest.rsplit(' ').next()?.parse().ok()
}

/// Statement text kept in an audit line.
const MAX_AUDIT_SQL_BYTES: usize = 4096;

pub(super) fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// An audit summary (`"sql":…,"classes":[…],"tables":[…],"search_path":[…],"rule":…`)
/// of statement `stmt` of `f`, decided under `path`: what `pgate-compile replay` needs to
/// decide it again as the proxy did.
pub(super) fn write_summary(
    out: &mut String,
    f: &Facts,
    stmt: usize,
    verdict: &Verdict,
    table: &Table<'_>,
    sql: &str,
    path: &[String],
) {
    out.clear();
    if let Some(s) = f.statements().get(stmt) {
        // The statement's text, bounded: enough to match the database's own log.
        let text = sql
            .get(s.start as usize..s.end as usize)
            .unwrap_or("")
            .trim();
        let mut cut = text.len().min(MAX_AUDIT_SQL_BYTES);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str("\"sql\":\"");
        json_escape_into(out, &text[..cut]);
        out.push('"');
        if cut < text.len() {
            out.push_str(",\"sql_truncated\":true");
        }
        out.push_str(",\"classes\":[");
        for (i, c) in s.classes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\"", c.name());
        }
        out.push_str("],\"tables\":[");
        let mut first = true;
        for a in f.tables(s) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            json_escape_into(out, f.name(a.name.schema));
            out.push('.');
            json_escape_into(out, f.name(a.name.name));
            out.push('"');
        }
        out.push_str("],\"search_path\":[");
        for (i, p) in path.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            json_escape_into(out, p);
            out.push('"');
        }
        out.push(']');
    }
    let rule = verdict.rule().and_then(|r| table.rule(r));
    match rule {
        Some(r) => {
            out.push_str(",\"rule\":\"");
            json_escape_into(out, r.file);
            let _ = write!(out, ":{}\"", r.line);
        }
        None => out.push_str(",\"rule\":null"),
    }
}
