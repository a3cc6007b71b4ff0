//! Explaining a decision: classes, tables, columns, functions per statement and the
//! deciding rule, computed through exactly the data plane's path — [`classify`] into
//! [`Facts`], then [`Table::decide`] / [`Table::decide_all`] on a parsed table.
//!
//! This module never re-implements a decision; it only describes what `decide()` said.

use pgate_core::facts::{ColumnName, Facts, StatementFacts};
use pgate_core::table::{Decision, DenyReason, RoleId, Table, Verdict};
use serde::Serialize;

/// `file:line` of a rule id.
pub fn rule_location(table: &Table<'_>, id: u32) -> String {
    match table.rule(id) {
        Some(r) => format!("{}:{}", r.file, r.line),
        None => format!("rule #{id}"),
    }
}

/// Classifies `sql` as the data plane would (the one decision path of pgate-core).
pub fn classify_sql(table: &Table<'_>, sql: &str, search_path: &[&str], facts: &mut Facts) {
    let session = pgate_core::decide::SessionState::with_path(search_path);
    pgate_core::decide::classify_in(table, sql, &session, facts);
}

fn qualified(facts: &Facts, n: pgate_core::facts::QualifiedName) -> String {
    let schema = facts.name(n.schema);
    let name = facts.name(n.name);
    if schema.is_empty() {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// A human sentence for a deny.
pub fn describe_deny(
    facts: &Facts,
    stmt: &StatementFacts,
    reason: DenyReason,
    role: &str,
) -> String {
    let table = |access: u16| {
        facts
            .tables(stmt)
            .get(access as usize)
            .map(|a| qualified(facts, a.name))
            .unwrap_or_else(|| "?".to_string())
    };
    match reason {
        DenyReason::UnknownStatement => format!(
            "the statement is `unknown`{} and role `{role}` has no rule allowing `unknown`",
            stmt.unknown_reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        DenyReason::Class(c) => format!("role `{role}` may not run `{c}` statements"),
        DenyReason::Table { class, access } => {
            format!("role `{role}` may not `{class}` table `{}`", table(access))
        }
        DenyReason::UndeclaredTable { class, access } => format!(
            "table `{}` is not declared in the policy and no pattern lets role `{role}` `{class}` it",
            table(access)
        ),
        DenyReason::Column {
            class,
            access,
            column,
        } => match facts.columns(stmt).get(column as usize) {
            // `SELECT c FROM customers c`: the alias read as a whole row is every column.
            Some(c) if access < 64 && c.whole_row & (1u64 << access) != 0 => format!(
                "role `{role}` may not `{class}` every column of `{}` (`{}` is a whole-row reference)",
                table(access),
                match c.name {
                    ColumnName::Named(n) => facts.name(n),
                    ColumnName::All | ColumnName::Common { .. } => "*",
                }
            ),
            c => format!(
                "role `{role}` may not `{class}` column `{}` of `{}`",
                match c.map(|c| c.name) {
                    Some(ColumnName::Named(n)) => facts.name(n),
                    Some(ColumnName::All) => "*",
                    Some(ColumnName::Common { .. }) => "(compared by NATURAL JOIN)",
                    None => "?",
                },
                table(access)
            ),
        },
        DenyReason::Function { function } => {
            let f = facts
                .functions(stmt)
                .get(function as usize)
                .map(|f| qualified(facts, f.name))
                .unwrap_or_else(|| "?".to_string());
            format!("role `{role}` may not call `{f}`")
        }
        DenyReason::MaskedColumn { access, column } => {
            let c = facts.columns(stmt).get(column as usize);
            let col = c
                .map(|c| match c.name {
                    ColumnName::Named(n) => facts.name(n).to_string(),
                    ColumnName::All | ColumnName::Common { .. } => "*".to_string(),
                })
                .unwrap_or_else(|| "?".to_string());
            let clause = c.map(|c| c.clause.name()).unwrap_or("?");
            format!(
                "role `{role}` reads column `{col}` of `{}` masked, and uses it in {clause}: a masked column may only be selected as itself",
                table(access)
            )
        }
        DenyReason::UnknownRole => format!("role `{role}` is not in the policy table"),
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TableUse {
    pub class: String,
    pub table: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatementExplanation {
    pub sql: String,
    pub verdict: &'static str,
    pub rule: Option<String>,
    pub reason: String,
    pub classes: Vec<String>,
    pub tables: Vec<String>,
    pub accesses: Vec<TableUse>,
    pub columns: Vec<String>,
    pub functions: Vec<String>,
    pub unknown_reason: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub role: String,
    /// The session's delegation chain (`--act`), outermost first.
    pub act: Vec<String>,
    /// The role that decides: `role`, or its delegated variant for `act`.
    pub decided_as: String,
    pub verdict: &'static str,
    pub rule: Option<String>,
    pub reason: String,
    pub statements: Vec<StatementExplanation>,
    pub limits: LimitsView,
    pub masked: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LimitsView {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    /// The identity budgets of the deciding role: "2000 rows per hour (roles/x.kdl:12)".
    pub budgets: Vec<String>,
}

/// The deciding rule of a verdict: the deny that won, else the allow consulted.
pub fn deciding_rule(v: &Verdict) -> Option<u32> {
    match v.decision {
        Decision::Deny { rule, .. } => rule,
        Decision::Allow => v.allow_rule,
    }
}

fn verdict_parts(
    table: &Table<'_>,
    facts: &Facts,
    v: &Verdict,
    role: &str,
) -> (&'static str, Option<String>, String) {
    let rule = deciding_rule(v).map(|r| rule_location(table, r));
    match v.decision {
        Decision::Allow => (
            "allow",
            rule.clone(),
            match &rule {
                Some(r) => format!("allowed by the rule at {r}"),
                None => "allowed".to_string(),
            },
        ),
        Decision::Deny {
            rule: deny_rule,
            statement,
            reason,
        } => {
            let stmt = facts.statements().get(statement as usize);
            let mut text = match stmt {
                Some(s) => describe_deny(facts, s, reason, role),
                None => format!("denied ({reason:?})"),
            };
            match deny_rule {
                Some(r) => text.push_str(&format!(
                    " (denied by the rule at {})",
                    rule_location(table, r)
                )),
                None => text.push_str(" (no rule allows it: default deny)"),
            }
            ("deny", rule, text)
        }
    }
}

/// Why [`explain`] could not explain.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown role `{role}`{}", suggestion.as_ref().map(|s| format!("; {s}")).unwrap_or_default())]
    UnknownRole {
        role: String,
        suggestion: Option<String>,
    },
    /// The data plane refuses such a session at login.
    #[error("{0}")]
    Refused(String),
}

/// The role that decides a session of `role` whose token carries the chain `act`
/// (outermost first), as the data plane picks it; the error is why it refuses the login.
pub fn session_role(table: &Table<'_>, role: RoleId, act: &[String]) -> Result<RoleId, String> {
    table
        .role_for_chain(role, act)
        .map_err(|r| format!("{}: the login is refused", r.describe(table, role)))
}

/// Explains how `role` is decided for `sql`.
pub fn explain(
    table: &Table<'_>,
    role: &str,
    act: &[String],
    sql: &str,
    search_path: &[&str],
) -> Result<Explanation, ExplainError> {
    let Some(granted) = table.role(role) else {
        let names: Vec<&str> = (0..table.role_count())
            .map(|i| table.role_name(RoleId(i)))
            .collect();
        return Err(ExplainError::UnknownRole {
            role: role.to_string(),
            suggestion: crate::diag::did_you_mean(role, names),
        });
    };
    let role_id = session_role(table, granted, act).map_err(ExplainError::Refused)?;
    let decided_as = table.role_name(role_id).to_string();
    let role = decided_as.as_str();
    let mut facts = Facts::default();
    classify_sql(table, sql, search_path, &mut facts);
    let all = table.decide_all(role_id, &facts);
    let (verdict, rule, reason) = verdict_parts(table, &facts, &all, role);
    let mut statements = Vec::new();
    for stmt in facts.statements() {
        let v = table.decide(role_id, &facts, stmt);
        let (sv, srule, sreason) = verdict_parts(table, &facts, &v, role);
        let accesses: Vec<TableUse> = facts
            .tables(stmt)
            .iter()
            .map(|a| TableUse {
                class: a.class.name().to_string(),
                table: qualified(&facts, a.name),
            })
            .collect();
        let mut tables: Vec<String> = accesses.iter().map(|a| a.table.clone()).collect();
        tables.dedup();
        let columns = facts
            .columns(stmt)
            .iter()
            .map(|c| {
                let name = match c.name {
                    ColumnName::Named(n) => facts.name(n).to_string(),
                    ColumnName::All => "*".to_string(),
                    ColumnName::Common { .. } => "(natural join)".to_string(),
                };
                let cands: Vec<String> = facts
                    .tables(stmt)
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && c.candidates & (1u64 << i) != 0)
                    .map(|(_, a)| qualified(&facts, a.name))
                    .collect();
                match cands.as_slice() {
                    [one] => format!("{one}.{name}"),
                    _ => name,
                }
            })
            .collect();
        let functions = facts
            .functions(stmt)
            .iter()
            .map(|f| qualified(&facts, f.name))
            .collect();
        let text = sql
            .get(stmt.start as usize..stmt.end as usize)
            .unwrap_or("")
            .trim()
            .to_string();
        statements.push(StatementExplanation {
            sql: text,
            verdict: sv,
            rule: srule,
            reason: sreason,
            classes: stmt.classes.iter().map(|c| c.name().to_string()).collect(),
            tables,
            accesses,
            columns,
            functions,
            unknown_reason: stmt.unknown_reason,
        });
    }
    Ok(Explanation {
        role: table.role_name(granted).to_string(),
        act: act.to_vec(),
        decided_as: decided_as.clone(),
        verdict,
        rule,
        reason,
        statements,
        limits: LimitsView {
            max_rows: all.limits.max_rows,
            max_bytes: all.limits.max_bytes,
            budgets: table
                .budgets(role_id)
                .flat_map(|b| {
                    let per = if b.window_secs == 3_600 {
                        "hour"
                    } else {
                        "day"
                    };
                    let at = table
                        .rule(b.rule)
                        .map(|r| format!(" ({}:{})", r.file, r.line))
                        .unwrap_or_default();
                    [(b.max_rows, "rows"), (b.max_bytes, "bytes")]
                        .into_iter()
                        .filter_map(move |(v, unit)| {
                            v.map(|v| format!("{v} {unit} per {per} per identity{at}"))
                        })
                })
                .collect(),
        },
        masked: all.masked,
    })
}

/// Renders an explanation for a terminal.
pub fn render_human(e: &Explanation) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}: {}\n", e.verdict.to_uppercase(), e.reason));
    if !e.act.is_empty() {
        out.push_str(&format!(
            "delegated: acting through {}, decided as role `{}`\n",
            e.act.join(" ← "),
            e.decided_as
        ));
    }
    if let Some(r) = &e.rule {
        out.push_str(&format!("rule: {r}\n"));
    }
    for (i, s) in e.statements.iter().enumerate() {
        out.push_str(&format!("\nstatement {}: {}\n", i + 1, s.sql));
        out.push_str(&format!("  verdict:   {}", s.verdict));
        if let Some(r) = &s.rule {
            out.push_str(&format!(" ({r})"));
        }
        out.push('\n');
        out.push_str(&format!("  reason:    {}\n", s.reason));
        out.push_str(&format!("  classes:   {}\n", list(&s.classes)));
        let acc: Vec<String> = s
            .accesses
            .iter()
            .map(|a| format!("{} ({})", a.table, a.class))
            .collect();
        out.push_str(&format!("  tables:    {}\n", list(&acc)));
        out.push_str(&format!("  columns:   {}\n", list(&s.columns)));
        out.push_str(&format!("  functions: {}\n", list(&s.functions)));
        if let Some(u) = s.unknown_reason {
            out.push_str(&format!("  unknown:   {u}\n"));
        }
    }
    if e.limits.max_rows.is_some() || e.limits.max_bytes.is_some() {
        out.push_str(&format!(
            "\nlimits: rows {}, bytes {}\n",
            e.limits.max_rows.map_or("-".to_string(), |v| v.to_string()),
            e.limits
                .max_bytes
                .map_or("-".to_string(), |v| v.to_string())
        ));
    }
    for b in &e.limits.budgets {
        out.push_str(&format!("budget: {b}\n"));
    }
    if e.masked {
        out.push_str("masking applies to the result\n");
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_string()
    } else {
        v.join(", ")
    }
}
