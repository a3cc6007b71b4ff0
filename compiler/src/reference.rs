//! A deliberately simple reference evaluator, for property tests.
//!
//! It answers from the resolved rules directly — scanning every rule of the role for every
//! question, re-matching selectors from what was written (pattern, tag, column names, column
//! tags) — instead of from combined cells. If [`crate::combine`] and this module ever
//! disagree, one of them is wrong. It must stay obviously correct rather than fast: no
//! indexes, no caches, no shared code with `combine` beyond the glob matcher.

use pgate_core::class::StatementClass;
use pgate_core::table::model::Effect;

use crate::glob;
use crate::resolve::{AccessRule, Body, Model, TablePattern, Target};

pub struct Reference<'m> {
    pub model: &'m Model,
}

impl<'m> Reference<'m> {
    pub fn new(model: &'m Model) -> Self {
        Reference { model }
    }

    fn access_rules(&self, role: u32) -> impl Iterator<Item = &'m AccessRule> + 'm {
        let model = self.model;
        model
            .roles
            .get(role as usize)
            .map(|r| r.rules.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter_map(move |i| model.rule(*i))
            .filter_map(|r| match &r.body {
                Body::Access(a) => Some(a),
                _ => None,
            })
    }

    fn table_matches(&self, target: &Target, table: u32) -> bool {
        let Some(t) = self.model.catalog.table(table) else {
            return false;
        };
        let name_ok = match &target.table {
            TablePattern::Any => true,
            TablePattern::Exact(q) => *q == t.qualified,
            TablePattern::Glob(g) => glob::matches(g, &t.qualified),
        };
        let tag_ok = match &target.tag {
            None => true,
            Some(tag) => t.tags.contains(tag),
        };
        // A column-filtered rule applies only to tables where it selects some column.
        let has_column = target.all_columns()
            || (0..t.columns.len() as u32).any(|c| self.column_matches(target, table, c));
        name_ok && tag_ok && has_column
    }

    fn column_matches(&self, target: &Target, table: u32, column: u32) -> bool {
        if target.all_columns() {
            return true;
        }
        let Some(c) = self
            .model
            .catalog
            .table(table)
            .and_then(|t| t.columns.get(column as usize))
        else {
            return false;
        };
        target.column_names.contains(&c.name)
            || c.tags.iter().any(|t| target.column_tags.contains(t))
    }

    /// Statements that touch no table: some allow for the class, no unfiltered deny.
    pub fn class_allowed(&self, role: u32, class: StatementClass) -> bool {
        let mut allowed = false;
        for a in self.access_rules(role) {
            if !a.classes.contains(class) {
                continue;
            }
            match a.effect {
                Effect::Allow => allowed = true,
                Effect::Deny => {
                    let unfiltered_table = a.target.tag.is_none()
                        && match &a.target.table {
                            TablePattern::Any => true,
                            TablePattern::Glob(g) => g == "*",
                            TablePattern::Exact(_) => false,
                        };
                    if unfiltered_table && a.target.all_columns() {
                        return false;
                    }
                }
            }
        }
        allowed
    }

    /// Table access (any columns): some allow matches and no whole-table deny does.
    pub fn table_allowed(&self, role: u32, class: StatementClass, table: u32) -> bool {
        let mut allowed = false;
        for a in self.access_rules(role) {
            if !a.classes.contains(class) || !self.table_matches(&a.target, table) {
                continue;
            }
            match a.effect {
                Effect::Allow => allowed = true,
                Effect::Deny if a.target.all_columns() => return false,
                Effect::Deny => {}
            }
        }
        allowed
    }

    /// One column: some allow matches it and no deny (whole-table or column) does.
    pub fn column_allowed(
        &self,
        role: u32,
        class: StatementClass,
        table: u32,
        column: u32,
    ) -> bool {
        let mut allowed = false;
        for a in self.access_rules(role) {
            if !a.classes.contains(class)
                || !self.table_matches(&a.target, table)
                || !self.column_matches(&a.target, table, column)
            {
                continue;
            }
            match a.effect {
                Effect::Allow => allowed = true,
                Effect::Deny => return false,
            }
        }
        allowed
    }

    /// A declared function: some allow-function matches and no deny-function does.
    pub fn function_allowed(&self, role: u32, function: u32) -> bool {
        let Some(f) = self.model.catalog.functions.get(function as usize) else {
            return false;
        };
        let mut allowed = false;
        let rules = self
            .model
            .roles
            .get(role as usize)
            .map(|r| r.rules.as_slice())
            .unwrap_or(&[]);
        for r in rules.iter().filter_map(|i| self.model.rule(*i)) {
            let Body::Function(fr) = &r.body else {
                continue;
            };
            let hit = fr.exact.contains(&f.qualified)
                || fr.patterns.iter().any(|p| glob::matches(p, &f.qualified))
                || fr.tag.as_ref().is_some_and(|t| f.tags.contains(t));
            if hit {
                match fr.effect {
                    Effect::Allow => allowed = true,
                    Effect::Deny => return false,
                }
            }
        }
        allowed
    }
}
