//! Replay: every statement of a real audit log decided again under a proposed policy — the
//! review a policy PR needs next to `diff`: what it would break (statements the proxy
//! allowed that the new policy denies) and what it would open (statements it denied that
//! the new policy allows), per role, with counts and the deciding rules.
//!
//! Each line is decided as the proxy decided it: its role, its statement's text and the
//! session's search path when it was decided (the audit line carries both), through the
//! data plane's own classifier and `decide()` ([`crate::explain`]). Lines the proxy
//! refused for reasons other than policy (limits, an unavailable audit log) and lines
//! whose text was cut are counted, not replayed.
//!
//! What this module must never do: report a verdict it did not compute from the table.

use std::collections::BTreeMap;
use std::io::BufRead;

use pgate_core::table::Table;
use serde::Serialize;

/// One statement whose verdict changes.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    pub sql: String,
    pub search_path: Vec<String>,
    /// How many audit lines had this statement (same role, path and text).
    pub count: u64,
    /// The rule that decided it under the new policy (`file:line`), if any.
    pub rule: Option<String>,
    pub reason: String,
}

/// What replay found for one role.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RoleReport {
    pub statements: u64,
    pub unchanged: u64,
    /// Allowed by the proxy, denied by the new policy: what the change would break.
    pub newly_denied: Vec<Change>,
    /// Denied by the proxy, allowed by the new policy: what the change would open.
    pub newly_allowed: Vec<Change>,
    /// The role is not in the new policy: every statement of it is denied.
    pub role_removed: bool,
}

/// The whole report, roles in name order.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub lines: u64,
    pub statements: u64,
    /// Lines refused for reasons other than policy, or with cut text.
    pub skipped: u64,
    /// Lines that are not JSON objects.
    pub unreadable: u64,
    pub roles: BTreeMap<String, RoleReport>,
}

impl Report {
    pub fn changes(&self) -> usize {
        self.roles
            .values()
            .map(|r| r.newly_denied.len() + r.newly_allowed.len())
            .sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the audit log: {0}")]
    Io(#[from] std::io::Error),
}

/// Key of a distinct statement: (role, delegation chain, allowed-then, search path, text).
type Key = (String, Vec<String>, bool, Vec<String>, String);

/// Replays the audit lines of `reader` against `table`.
pub fn replay(table: &Table<'_>, reader: impl BufRead) -> Result<Report, ReplayError> {
    let mut report = Report::default();
    let mut seen: BTreeMap<Key, u64> = BTreeMap::new();
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(&line)
        else {
            report.unreadable += 1;
            continue;
        };
        if v.get("event").and_then(|e| e.as_str()) != Some("statement") {
            continue;
        }
        report.statements += 1;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let allowed = text("verdict") == "allow";
        let policy_denial = text("reason").contains("permission denied");
        let cut = v.get("sql_truncated").and_then(|x| x.as_bool()) == Some(true);
        if (!allowed && !policy_denial) || cut || text("sql").is_empty() {
            report.skipped += 1;
            continue;
        }
        let path: Vec<String> = match v.get("search_path").and_then(|p| p.as_array()) {
            Some(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            None => vec!["public".to_owned()],
        };
        // The session's delegation chain: decided again as the new policy decides it.
        let act: Vec<String> = v
            .get("act")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let key = (
            text("role").to_owned(),
            act,
            allowed,
            path,
            text("sql").to_owned(),
        );
        *seen.entry(key).or_default() += 1;
    }
    for ((role, act, allowed, path, sql), count) in seen {
        let r = report.roles.entry(role.clone()).or_default();
        r.statements += count;
        let paths: Vec<&str> = path.iter().map(String::as_str).collect();
        let (now_allowed, rule, reason) =
            match crate::explain::explain(table, &role, &act, &sql, &paths) {
                Ok(e) => (e.verdict == "allow", e.rule, e.reason),
                Err(e) => {
                    r.role_removed = true;
                    (false, None, e.to_string())
                }
            };
        if now_allowed == allowed {
            r.unchanged += count;
            continue;
        }
        let change = Change {
            sql,
            search_path: path,
            count,
            rule,
            reason,
        };
        if allowed {
            r.newly_denied.push(change);
        } else {
            r.newly_allowed.push(change);
        }
    }
    for r in report.roles.values_mut() {
        // Most frequent first: what a reviewer should look at.
        r.newly_denied
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.sql.cmp(&b.sql)));
        r.newly_allowed
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.sql.cmp(&b.sql)));
    }
    Ok(report)
}

/// The report as Markdown (a PR comment).
pub fn render_markdown(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Policy replay: {} statement(s) from the audit log, {} change(s) of verdict\n",
        r.statements,
        r.changes()
    );
    if r.skipped > 0 || r.unreadable > 0 {
        let _ = writeln!(
            out,
            "_{} line(s) not replayed (refused for other reasons than policy, or cut); {} unreadable._\n",
            r.skipped, r.unreadable
        );
    }
    let _ = writeln!(
        out,
        "| role | statements | unchanged | newly denied | newly allowed |\n|---|---:|---:|---:|---:|"
    );
    for (name, role) in &r.roles {
        let sum = |c: &[Change]| c.iter().map(|c| c.count).sum::<u64>();
        let _ = writeln!(
            out,
            "| `{name}`{} | {} | {} | {} | {} |",
            if role.role_removed { " (removed)" } else { "" },
            role.statements,
            role.unchanged,
            sum(&role.newly_denied),
            sum(&role.newly_allowed)
        );
    }
    for (name, role) in &r.roles {
        for (title, list) in [
            ("newly denied — this change would break", &role.newly_denied),
            (
                "newly allowed — this change would open",
                &role.newly_allowed,
            ),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n#### `{name}`: {title}\n\n| count | statement | rule | why |\n|---:|---|---|---|"
            );
            for c in list {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} |",
                    c.count,
                    cell(&c.sql),
                    c.rule.as_deref().unwrap_or("default deny"),
                    cell(&c.reason)
                );
            }
        }
    }
    out
}

/// The report as plain text (a terminal).
pub fn render_human(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (name, role) in &r.roles {
        let _ = writeln!(
            out,
            "role {name}{}: {} statements, {} unchanged",
            if role.role_removed {
                " (not in the new policy)"
            } else {
                ""
            },
            role.statements,
            role.unchanged
        );
        for (what, list) in [
            ("newly denied", &role.newly_denied),
            ("newly allowed", &role.newly_allowed),
        ] {
            for c in list {
                let _ = writeln!(
                    out,
                    "  {what} ×{}: {}\n    {} ({})",
                    c.count,
                    c.sql,
                    c.reason,
                    c.rule.as_deref().unwrap_or("default deny")
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{} statements replayed, {} changes of verdict, {} not replayed, {} unreadable lines",
        r.statements - r.skipped,
        r.changes(),
        r.skipped,
        r.unreadable
    );
    out
}

/// Text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ").replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
table "public.customers" { columns "id" "name"; column "ssn" { tags "secret"; } }
table "public.orders" { columns "id" "total"; }
role "analyst" {
    allow "select" table="public.orders"
    allow "select" table="public.customers" { columns "id" "name"; }
}
"#;

    fn line(role: &str, verdict: &str, sql: &str, path: &str) -> String {
        let reason = if verdict == "deny" {
            r#","reason":"pgate: permission denied for select""#
        } else {
            ""
        };
        format!(
            r#"{{"event":"statement","role":"{role}","verdict":"{verdict}","sql":"{sql}","search_path":{path}{reason},"chain":"00"}}"#
        )
    }

    #[test]
    fn a_narrowing_and_a_widening_are_both_reported_with_counts_and_rules() {
        let log = [
            r#"{"event":"audit-start","prev":"00"}"#.to_owned(),
            line("analyst", "allow", "select total from orders", r#"["public"]"#),
            line("analyst", "allow", "select total from orders", r#"["public"]"#),
            line("analyst", "allow", "select name from customers", r#"["public"]"#),
            line("analyst", "deny", "select ssn from customers", r#"["public"]"#),
            // Decided under its session's search path: `orders` is not found in `other`.
            line("analyst", "deny", "select id from orders", r#"["other"]"#),
            r#"{"event":"statement","role":"analyst","verdict":"deny","sql":"select 1","reason":"pgate: too many prepared statements"}"#.to_owned(),
            "not json".to_owned(),
        ]
        .join("\n");
        // The proposal: orders no longer readable, ssn readable.
        let new = OLD
            .replace(r#"allow "select" table="public.orders""#, "")
            .replace(
                r#"columns "id" "name"; }"#,
                r#"columns "id" "name" "ssn"; }"#,
            );
        let c = crate::compile_str("new.kdl", &new);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        let bytes = c.table_bytes().unwrap();
        let table = Table::parse(&bytes).unwrap();
        let r = replay(&table, log.as_bytes()).unwrap();
        assert_eq!(
            (r.lines, r.statements, r.skipped, r.unreadable),
            (8, 6, 1, 1)
        );
        let a = &r.roles["analyst"];
        assert_eq!(a.newly_denied.len(), 1);
        assert_eq!(a.newly_denied[0].sql, "select total from orders");
        assert_eq!(a.newly_denied[0].count, 2);
        assert_eq!(a.newly_allowed.len(), 1);
        assert_eq!(a.newly_allowed[0].sql, "select ssn from customers");
        assert!(
            a.newly_allowed[0]
                .rule
                .as_deref()
                .unwrap()
                .starts_with("new.kdl:")
        );
        assert_eq!(a.unchanged, 2);
        let md = render_markdown(&r);
        assert!(
            md.contains("newly denied — this change would break"),
            "{md}"
        );
        assert!(md.contains("| 2 | `select total from orders` |"), "{md}");

        // The same policy: nothing changes.
        let c = crate::compile_str("old.kdl", OLD);
        let bytes = c.table_bytes().unwrap();
        let table = Table::parse(&bytes).unwrap();
        let r = replay(&table, log.as_bytes()).unwrap();
        assert_eq!(r.changes(), 0, "{r:#?}");
    }

    #[test]
    fn a_removed_role_denies_everything_it_did() {
        let c = crate::compile_str("new.kdl", &OLD.replace("\"analyst\"", "\"reader\""));
        let bytes = c.table_bytes().unwrap();
        let table = Table::parse(&bytes).unwrap();
        let log = line(
            "analyst",
            "allow",
            "select total from orders",
            r#"["public"]"#,
        );
        let r = replay(&table, log.as_bytes()).unwrap();
        let a = &r.roles["analyst"];
        assert!(a.role_removed);
        assert_eq!(a.newly_denied.len(), 1);
    }
}
