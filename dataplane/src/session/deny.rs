//! The one deny-message renderer: what the client reads when pgate refuses a statement,
//! naming what was refused, the role and the deciding rule (file:line).

use super::*;

/// The client's message for a denial of statement `v.statement` of `f`.
pub(super) fn deny_message(f: &Facts, v: &Verdict, role: &str, table: &Table<'_>) -> String {
    let Decision::Deny {
        rule,
        statement,
        reason,
    } = v.decision
    else {
        return String::new();
    };
    let stmt = f.statements().get(statement as usize);
    let what = match (reason, stmt) {
        (DenyReason::UnknownStatement, Some(s))
            if s.flags.contains(StatementFlags::EXECUTES_PREPARED) =>
        {
            format!(
                "EXECUTE of \"{}\", which pgate has not allowed in this session",
                f.name(s.prepared_name)
            )
        }
        (DenyReason::UnknownStatement, Some(s)) => format!(
            "a statement pgate cannot classify ({})",
            s.unknown_reason.unwrap_or("not understood")
        ),
        (DenyReason::Class(c), _) => format!("{c} statements"),
        (
            DenyReason::Table { class, access } | DenyReason::UndeclaredTable { class, access },
            Some(s),
        ) => match f.tables(s).get(access as usize) {
            Some(a) => format!(
                "{class} on table {}.{}",
                f.name(a.name.schema),
                f.name(a.name.name)
            ),
            None => class.to_string(),
        },
        (
            DenyReason::Column {
                class,
                access,
                column,
            },
            Some(s),
        ) => match column_of(f, s, access, column) {
            Some((name, _)) => format!("{class} of column {name}"),
            None => format!("{class} of a column"),
        },
        (DenyReason::Function { function }, Some(s)) => {
            match f.functions(s).get(function as usize) {
                Some(func) if func.name.schema.is_empty() => {
                    format!("function {}", f.name(func.name.name))
                }
                Some(func) => format!(
                    "function {}.{}",
                    f.name(func.name.schema),
                    f.name(func.name.name)
                ),
                None => "a function call".into(),
            }
        }
        (DenyReason::MaskedColumn { access, column }, Some(s)) => {
            match column_of(f, s, access, column) {
                Some((name, clause)) => format!(
                    "a use of masked column {name} {} (a masked column may only be selected as itself, where pgate masks its value)",
                    masked_use_place(clause)
                ),
                None => "a use of a masked column".into(),
            }
        }
        (DenyReason::UnknownRole, _) => "any statement (the role is not in the policy)".into(),
        (_, None) => "an empty statement".into(),
    };
    deny_text(&what, rule, role, table)
}

/// `schema.table.column` of column reference `column` through access `access`, and where
/// it was written.
fn column_of(
    f: &Facts,
    s: &pgate_core::facts::StatementFacts,
    access: u16,
    column: u16,
) -> Option<(String, pgate_core::facts::Clause)> {
    let t = f.tables(s).get(access as usize)?;
    let c = f.columns(s).get(column as usize)?;
    let table = format!("{}.{}", f.name(t.name.schema), f.name(t.name.name));
    let name = match c.name {
        // `SELECT c FROM customers c`: the alias read as a whole row is every column.
        ColumnName::Named(n) if access < 64 && c.whole_row & (1u64 << access) != 0 => {
            format!("{table}.* (the whole-row reference {})", f.name(n))
        }
        ColumnName::Named(n) => format!("{table}.{}", f.name(n)),
        ColumnName::All => format!("{table}.*"),
        ColumnName::Common { .. } => format!("{table}.* (a column NATURAL JOIN compares)"),
    };
    Some((name, c.clause))
}

/// Where a masked column was used, for the denial.
fn masked_use_place(clause: pgate_core::facts::Clause) -> String {
    match clause {
        pgate_core::facts::Clause::SelectList => {
            "in a select list that is not the plain result (a subquery, a set operation, DISTINCT, an expression, or sorted or grouped by it)".into()
        }
        c => format!("in {}", c.name()),
    }
}

pub(super) fn deny_text(what: &str, rule: Option<u32>, role: &str, table: &Table<'_>) -> String {
    match rule.and_then(|r| table.rule(r)) {
        Some(r) => format!(
            "pgate: permission denied for {what} (role \"{role}\", rule {}:{})",
            r.file, r.line
        ),
        None => {
            format!("pgate: permission denied for {what} (role \"{role}\": no rule allows it)")
        }
    }
}
