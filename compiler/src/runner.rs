//! Policy tests: `test` blocks run through exactly the data plane's path — the table bytes
//! from [`pgate_core::table::write`], parsed by [`Table::parse`], SQL classified by
//! [`pgate_core::sql::classify`], decided by [`Table::decide_all`].
//!
//! Also reports which allow/deny rules no test exercised (a rule is exercised when it was
//! the deciding rule or the allow rule of some test's verdict). This module never decides
//! anything itself.

use std::collections::BTreeSet;

use pgate_core::facts::Facts;
use pgate_core::table::Table;
use pgate_core::table::model::RuleKind;
use serde::Serialize;

use crate::ast::Expect;
use crate::explain::{classify_sql, deciding_rule, describe_deny, rule_location};
use crate::resolve::PolicyTest;
use crate::source::{Location, Sources};

#[derive(Clone, Debug, Serialize)]
pub struct TestResult {
    pub name: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub role: String,
    pub passed: bool,
    pub expected: &'static str,
    pub actual: &'static str,
    /// `file:line` of the deciding rule, if any.
    pub rule: Option<String>,
    pub expected_rule: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnexercisedRule {
    pub id: u32,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub role: String,
    pub text: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TestRun {
    pub results: Vec<TestResult>,
    pub unexercised: Vec<UnexercisedRule>,
}

impl TestRun {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// Whether a rule location `file:line:col` satisfies an expected `file:line[:col]`.
fn rule_matches(table: &Table<'_>, id: u32, expected: &str) -> bool {
    match table.rule(id) {
        Some(r) => {
            expected == format!("{}:{}", r.file, r.line)
                || expected == format!("{}:{}:{}", r.file, r.line, r.column)
        }
        None => false,
    }
}

/// Runs `tests` against `table`.
pub fn run(tests: &[PolicyTest], sources: &Sources, table: &Table<'_>) -> TestRun {
    let mut run = TestRun::default();
    let mut exercised: BTreeSet<u32> = BTreeSet::new();
    let mut facts = Facts::default();
    for t in tests {
        let loc: Location = sources.location(t.span);
        let path: Vec<&str> = t.search_path.iter().map(String::as_str).collect();
        classify_sql(table, &t.sql, &path, &mut facts);
        let role = table
            .role(&t.role)
            .ok_or_else(|| format!("role `{}` is not in the policy table", t.role))
            .and_then(|r| crate::explain::session_role(table, r, &t.act));
        let (actual, rule, reason) = match role {
            Err(why) => (Expect::Deny, None, why),
            Ok(role) => {
                let name = table.role_name(role);
                let v = table.decide_all(role, &facts);
                if let pgate_core::table::Decision::Deny { rule: Some(r), .. } = v.decision {
                    exercised.insert(r);
                }
                if let Some(r) = v.allow_rule {
                    exercised.insert(r);
                }
                let rule = deciding_rule(&v);
                let reason = match v.decision {
                    pgate_core::table::Decision::Allow => "allowed".to_string(),
                    pgate_core::table::Decision::Deny {
                        statement, reason, ..
                    } => match facts.statements().get(statement as usize) {
                        Some(s) => describe_deny(&facts, s, reason, name),
                        None => format!("denied ({reason:?})"),
                    },
                };
                let actual = if v.is_allow() {
                    Expect::Allow
                } else {
                    Expect::Deny
                };
                (actual, rule, reason)
            }
        };
        let rule_ok = match (&t.expect_rule, rule) {
            (None, _) => true,
            (Some(e), Some(r)) => rule_matches(table, r, e),
            (Some(_), None) => false,
        };
        run.results.push(TestResult {
            name: t.name.clone(),
            file: loc.file,
            line: loc.line,
            column: loc.column,
            role: t.role.clone(),
            passed: actual == t.expect && rule_ok,
            expected: t.expect.name(),
            actual: actual.name(),
            rule: rule.map(|r| rule_location(table, r)),
            expected_rule: t.expect_rule.clone(),
            reason,
        });
    }
    for id in 0..table.rule_count() {
        if exercised.contains(&id) {
            continue;
        }
        if let Some(r) = table.rule(id)
            && matches!(r.kind, RuleKind::Allow | RuleKind::Deny)
        {
            run.unexercised.push(UnexercisedRule {
                id,
                file: r.file.to_string(),
                line: r.line,
                column: r.column,
                role: r.role.to_string(),
                text: r.text.to_string(),
            });
        }
    }
    run
}
