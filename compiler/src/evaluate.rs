//! Evaluation: lookups in a [`CompiledPolicy`] — the compiler's view of what the table says.
//!
//! Kept apart from [`crate::combine`] (Cedar's separation): combining decides cells from
//! rules; evaluating only reads cells. Verification (invariants, masks) and the property
//! tests use this. It must never consult rules: whatever it answers must be exactly what
//! the cells say.

use pgate_core::class::StatementClass;
use pgate_core::table::model::{Cell, ColumnAccess, CompiledPolicy, Effect, RuleIndex};

/// An index over a compiled policy's cells.
pub struct Evaluator<'a> {
    pub policy: &'a CompiledPolicy,
    roles: Vec<RoleCells<'a>>,
}

/// One role's cells: class-level, and per group (or per table, for a role given per
/// table), each by statement class.
struct RoleCells<'a> {
    class_level: [Option<&'a Cell>; StatementClass::COUNT],
    /// Per table: its group (`None`: each table is its own).
    group_of: Option<&'a [u32]>,
    groups: Vec<[Option<&'a Cell>; StatementClass::COUNT]>,
}

impl<'a> Evaluator<'a> {
    pub fn new(policy: &'a CompiledPolicy) -> Self {
        let ntables = policy.catalog.tables.len();
        let roles = policy
            .roles
            .iter()
            .map(|role| {
                let mut r = RoleCells {
                    class_level: [None; StatementClass::COUNT],
                    group_of: role.groups.as_ref().map(|g| g.group_of.as_slice()),
                    groups: Vec::new(),
                };
                match &role.groups {
                    Some(g) => {
                        r.groups = g
                            .groups
                            .iter()
                            .map(|group| {
                                let mut by_class = [None; StatementClass::COUNT];
                                for (class, cell) in &group.cells {
                                    by_class[*class as usize] = Some(cell);
                                }
                                by_class
                            })
                            .collect();
                    }
                    None => r.groups = vec![[None; StatementClass::COUNT]; ntables],
                }
                for e in &role.cells {
                    match e.table {
                        None => r.class_level[e.class as usize] = Some(&e.cell),
                        Some(t) if role.groups.is_none() => {
                            if let Some(g) = r.groups.get_mut(t as usize) {
                                g[e.class as usize] = Some(&e.cell);
                            }
                        }
                        Some(_) => {}
                    }
                }
                r
            })
            .collect();
        Evaluator { policy, roles }
    }

    pub fn role(&self, name: &str) -> Option<usize> {
        self.policy.roles.iter().position(|r| r.name == name)
    }

    /// The cell of (role, class, table); `None` = default deny.
    pub fn cell(&self, role: usize, class: StatementClass, table: Option<u32>) -> Option<&'a Cell> {
        let r = self.roles.get(role)?;
        match table {
            None => r.class_level[class as usize],
            Some(t) => {
                let g = match r.group_of {
                    Some(of) => *of.get(t as usize)? as usize,
                    None => t as usize,
                };
                r.groups.get(g)?[class as usize]
            }
        }
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
