//! Evaluation: lookups in a [`CompiledPolicy`] — the compiler's view of what the table says.
//!
//! Kept apart from [`crate::combine`] (Cedar's separation): combining decides cells from
//! rules; evaluating only reads cells. Verification (invariants, masks) and the property
//! tests use this. It must never consult rules: whatever it answers must be exactly what
//! the cells say.

use pgate_core::class::StatementClass;
use pgate_core::table::model::{Cell, ColumnAccess, CompiledPolicy, Effect, RuleIndex};

const NONE: u32 = u32::MAX;

/// A dense index over a compiled policy's cells.
pub struct Evaluator<'a> {
    pub policy: &'a CompiledPolicy,
    ntables: usize,
    /// Per role: `(tables + 1) × classes` cell indices (slot 0 of each class = class-level).
    index: Vec<Vec<u32>>,
}

impl<'a> Evaluator<'a> {
    pub fn new(policy: &'a CompiledPolicy) -> Self {
        let ntables = policy.catalog.tables.len();
        let stride = ntables + 1;
        let index = policy
            .roles
            .iter()
            .map(|role| {
                let mut v = vec![NONE; stride * StatementClass::COUNT];
                for (i, e) in role.cells.iter().enumerate() {
                    let slot = e.class as usize * stride + e.table.map_or(0, |t| t as usize + 1);
                    if let Some(s) = v.get_mut(slot) {
                        *s = i as u32;
                    }
                }
                v
            })
            .collect();
        Evaluator {
            policy,
            ntables,
            index,
        }
    }

    pub fn role(&self, name: &str) -> Option<usize> {
        self.policy.roles.iter().position(|r| r.name == name)
    }

    /// The cell of (role, class, table); `None` = default deny.
    pub fn cell(&self, role: usize, class: StatementClass, table: Option<u32>) -> Option<&'a Cell> {
        let stride = self.ntables + 1;
        let slot = class as usize * stride + table.map_or(0, |t| t as usize + 1);
        let i = *self.index.get(role)?.get(slot)?;
        if i == NONE {
            return None;
        }
        self.policy
            .roles
            .get(role)?
            .cells
            .get(i as usize)
            .map(|e| &e.cell)
    }

    /// Whether the cell allows (any columns), with its deciding rule.
    pub fn allowed(
        &self,
        role: usize,
        class: StatementClass,
        table: Option<u32>,
    ) -> (bool, Option<RuleIndex>) {
        match self.cell(role, class, table) {
            Some(c) => (c.effect == Effect::Allow, c.rule),
            None => (false, None),
        }
    }

    /// Whether one column is allowed, with the deciding rule (the allow, the column deny,
    /// the table deny, or `None` for default deny).
    pub fn column_allowed(
        &self,
        role: usize,
        class: StatementClass,
        table: u32,
        column: u32,
    ) -> (bool, Option<RuleIndex>) {
        let Some(c) = self.cell(role, class, Some(table)) else {
            return (false, None);
        };
        if c.effect == Effect::Deny {
            return (false, c.rule);
        }
        let ok = match &c.columns {
            ColumnAccess::All => true,
            ColumnAccess::Only(v) => v.binary_search(&column).is_ok(),
        };
        if ok {
            (true, c.rule)
        } else if c.denied_columns.binary_search(&column).is_ok() {
            (false, c.denied_columns_rule)
        } else {
            (false, None)
        }
    }

    /// The verdict for a declared function.
    pub fn function_allowed(&self, role: usize, function: u32) -> (bool, Option<RuleIndex>) {
        let Some(r) = self.policy.roles.get(role) else {
            return (false, None);
        };
        match r.functions.iter().find(|(f, _, _)| *f == function) {
            Some((_, e, rule)) => (*e == Effect::Allow, *rule),
            None => (false, None),
        }
    }
}
