//! Decision classes: declared tables that nothing in the policy tells apart.
//!
//! Two tables are in one class when every table selector of the policy (`table=` of a
//! rule, a mask or a forbid) matches both or neither by name, they carry the same tags and
//! they have the same columns with the same tags. Then every rule, mask and invariant
//! treats them alike, so every later pass (combining, verification, the table) computes
//! one class once: cost follows the rules and the number of classes, not roles × tables.
//! A class is represented by its first member in name order, so a diagnostic or a
//! counterexample always names a concrete table.
//!
//! This module only partitions; it never decides anything about access.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::ast::{Ast, RuleBodyNode, TableSelector};
use crate::glob;
use crate::resolve::{Column, Table};

/// Every table-name selector in the policy, indexed for matching many tables.
#[derive(Default)]
pub struct Selectors {
    /// Exact `schema.name` selectors.
    exact: HashMap<String, u32>,
    /// `schema.*` globs by their literal schema.
    schema_globs: HashMap<String, Vec<(String, u32)>>,
    /// Every other glob except `*` (which matches every table alike).
    other_globs: Vec<(String, u32)>,
    next: u32,
    /// Selector id → its pattern.
    patterns: Vec<String>,
    /// Every table apart (its own class): for tests comparing against the unfolded policy.
    apart: bool,
}

impl Selectors {
    /// The table selectors of every rule, mask and forbid in `ast`.
    pub fn of(ast: &Ast) -> Self {
        let mut s = Selectors::default();
        for role in &ast.roles {
            let blocks = role.delegated.iter().flat_map(|d| d.rules.iter());
            for rule in role.rules.iter().chain(blocks) {
                match &rule.body {
                    RuleBodyNode::Access { tables, .. } | RuleBodyNode::Mask { tables, .. } => {
                        s.add(tables)
                    }
                    _ => {}
                }
            }
        }
        for inv in &ast.invariants {
            for f in &inv.forbids {
                s.add(&f.tables);
            }
        }
        s
    }

    /// Selectors that tell every table apart.
    pub fn apart() -> Self {
        Selectors {
            apart: true,
            ..Selectors::default()
        }
    }

    fn add(&mut self, sel: &TableSelector) {
        let Some(t) = &sel.table else { return };
        let p = t.value.as_str();
        if !glob::is_glob(p) {
            if !self.exact.contains_key(p) {
                self.exact.insert(p.to_string(), self.next);
                self.patterns.push(p.to_string());
                self.next += 1;
            }
            return;
        }
        if p == "*" {
            return;
        }
        let id = self.next;
        if let Some(schema) = p.strip_suffix(".*").filter(|s| !glob::is_glob(s)) {
            let list = self.schema_globs.entry(schema.to_string()).or_default();
            if list.iter().any(|(q, _)| q == p) {
                return;
            }
            list.push((p.to_string(), id));
        } else {
            if self.other_globs.iter().any(|(q, _)| q == p) {
                return;
            }
            self.other_globs.push((p.to_string(), id));
        }
        self.patterns.push(p.to_string());
        self.next += 1;
    }

    /// The selectors matching `t` by name, ascending.
    fn matching(&self, t: &Table, out: &mut Vec<u32>) {
        out.clear();
        if let Some(&id) = self.exact.get(&t.qualified) {
            out.push(id);
        }
        // Each candidate is confirmed with the matcher the rules use, so the index can
        // only narrow the search, never change a match.
        for (p, id) in self.schema_globs.get(&t.schema).into_iter().flatten() {
            if glob::matches(p, &t.qualified) {
                out.push(*id);
            }
        }
        for (p, id) in &self.other_globs {
            if glob::matches(p, &t.qualified) {
                out.push(*id);
            }
        }
        out.sort_unstable();
    }
}

/// A declared table folded into a class: its name and where it was declared.
#[derive(Clone, Debug)]
pub struct Member {
    pub qualified: String,
    pub schema: String,
    pub name: String,
    /// Index into the classes.
    pub class: u32,
}

/// Which classes each selector pattern and each tag matches, ascending: selecting tables
/// for a rule then costs the classes it matches, not every class.
#[derive(Clone, Debug, Default)]
pub struct ClassIndex {
    /// Every pattern of the policy except `*` (and none when tables are kept apart).
    pub by_pattern: HashMap<String, Vec<u32>>,
    pub by_tag: HashMap<String, Vec<u32>>,
}

/// Partitions `tables` (sorted by name) into classes. Returns the classes (each its first
/// member, in name order), every table as a member (in name order) and the index.
///
/// Column lists are compared by identity: the resolver shares one list among all tables
/// with the same columns and column tags.
pub fn partition(
    tables: Vec<Table>,
    selectors: &Selectors,
) -> (Vec<Table>, Vec<Member>, Option<ClassIndex>) {
    let mut class_of: HashMap<(Vec<u32>, &BTreeSet<String>, usize), u32> = HashMap::new();
    let mut index = ClassIndex::default();
    let mut assignment = Vec::with_capacity(tables.len());
    let mut reps: Vec<usize> = Vec::new();
    let mut matched = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        if selectors.apart {
            reps.push(i);
            assignment.push(i as u32);
            continue;
        }
        let list = Arc::as_ptr(&t.columns) as *const Column as usize;
        selectors.matching(t, &mut matched);
        let next = reps.len() as u32;
        let class = *class_of
            .entry((matched.clone(), &t.tags, list))
            .or_insert_with(|| {
                reps.push(i);
                for &id in &matched {
                    if let Some(p) = selectors.patterns.get(id as usize) {
                        index.by_pattern.entry(p.clone()).or_default().push(next);
                    }
                }
                for tag in &t.tags {
                    index.by_tag.entry(tag.clone()).or_default().push(next);
                }
                next
            });
        assignment.push(class);
    }
    drop(class_of);
    let members = tables
        .iter()
        .zip(&assignment)
        .map(|(t, &class)| Member {
            qualified: t.qualified.clone(),
            schema: t.schema.clone(),
            name: t.name.clone(),
            class,
        })
        .collect();
    let mut is_rep = vec![false; tables.len()];
    for &r in &reps {
        is_rep[r] = true;
    }
    // Representatives come in name order (the first member of each class is met first),
    // so the classes stay sorted by their representative's name.
    let classes = tables
        .into_iter()
        .zip(is_rep)
        .filter_map(|(t, rep)| rep.then_some(t))
        .collect();
    (classes, members, (!selectors.apart).then_some(index))
}

#[cfg(test)]
mod tests {
    use crate::compile_str;

    /// Only what a selector, a tag or the columns tell apart is kept apart.
    #[test]
    fn tables_no_selector_tells_apart_share_a_class() {
        let mut text = String::new();
        for s in 0..3 {
            for t in 0..4 {
                text.push_str(&format!("table \"s{s}.t{t}\" {{ columns \"id\" \"v\" }}\n"));
            }
        }
        text.push_str("table \"s0.wide\" { columns \"id\" \"v\" \"w\" }\n");
        text.push_str("table \"s2.tagged\" { columns \"id\" \"v\"\n tags \"pii\" }\n");
        text.push_str(
            "role \"r\" {\n allow \"select\" table=\"s1.*\"\n allow \"insert\" table=\"s0.t3\"\n deny \"select\" tag=\"pii\"\n}\n",
        );
        let c = compile_str("p.kdl", &text);
        assert!(!c.has_errors(), "{:?}", c.diagnostics.items);
        let classes: Vec<&str> = c
            .model
            .catalog
            .tables
            .iter()
            .map(|t| t.qualified.as_str())
            .collect();
        // s0.t0 stands for s0.t1, s0.t2 and s2.t0…s2.t3; s0.t3 is named; s0.wide has
        // other columns; s1.* is selected; s2.tagged has a tag.
        assert_eq!(classes, ["s0.t0", "s0.t3", "s0.wide", "s1.t0", "s2.tagged"]);
        assert_eq!(c.model.catalog.members.len(), 14);
        let bytes = c.table_bytes().expect("builds");
        let t = pgate_core::table::Table::parse(&bytes).expect("loads");
        assert_eq!((t.table_count(), t.class_count()), (14, 5));
    }
}
