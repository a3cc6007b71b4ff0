//! Combining: resolved rules → one [`Cell`] per (role, class, table), Cedar style.
//!
//! For every role (its own and inherited rules) and every (class, declared table):
//!
//! - default deny: no matching allow → no cell (the table reads "deny, no rule");
//! - any matching whole-table deny wins: `Deny`, deciding rule = the lowest such rule;
//! - column denies go to `denied_columns` (deciding rule = the lowest such rule) and are
//!   removed from the allowed columns;
//! - allowed columns = the union over matching allows; deciding allow = the lowest one.
//!
//! The class-level cell (`table: None`, for statements that touch no table) is allowed
//! iff the role has an allow for the class and no deny without a table or column filter.
//!
//! Every choice is by rule index (source position), every union is commutative, and the
//! output is sorted, so rule order and duplication cannot change the result. Combining
//! only *produces* cells; looking them up is [`crate::evaluate`]'s job.

use pgate_core::class::StatementClass;
use pgate_core::table::model::{
    Budget, Catalog as OutCatalog, Cell, CellEntry, ColumnAccess, ColumnDecl, CompiledPolicy,
    CompiledRole, Delegation, Effect, FunctionDecl, Group, GroupMask, Limits, MaskKind,
    PatternKind, PatternRule, RateLimit, RoleGroups, TableAlias, TableDecl, TokenUse, Variant,
};

use crate::bits::ColSet;
use crate::resolve::{Body, Model, Role, RuleIndex};

const CLASSES: usize = StatementClass::COUNT;

/// Per (class, table) accumulator.
#[derive(Clone, Default)]
struct Acc {
    deny: Option<RuleIndex>,
    col_deny: Option<ColSet>,
    col_deny_rule: Option<RuleIndex>,
    allow: Option<RuleIndex>,
    allow_all: bool,
    allow_cols: Option<ColSet>,
}

fn min_rule(slot: &mut Option<RuleIndex>, r: RuleIndex) {
    if slot.is_none_or(|s| r < s) {
        *slot = Some(r);
    }
}

/// Mask strength when several masks hit one column: the strongest wins.
pub fn mask_strength(k: MaskKind) -> u8 {
    match k {
        MaskKind::Hash => 1,
        MaskKind::Null => 2,
        MaskKind::Redact => 3,
    }
}

/// Combines a resolved model (without errors) into the writer's input.
pub fn combine(model: &Model) -> CompiledPolicy {
    let catalog = OutCatalog {
        tables: model
            .catalog
            .tables
            .iter()
            .map(|t| TableDecl {
                schema: t.schema.clone(),
                name: t.name.clone(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| ColumnDecl {
                        name: c.name.clone(),
                        tags: c.tags.iter().cloned().collect(),
                    })
                    .collect(),
                tags: t.tags.iter().cloned().collect(),
            })
            .collect(),
        functions: model
            .catalog
            .functions
            .iter()
            .map(|f| FunctionDecl {
                schema: f.schema.clone(),
                name: f.name.clone(),
                tags: f.tags.iter().cloned().collect(),
                overloads: f.overloads.as_ref().map(|o| o.iter().cloned().collect()),
            })
            .collect(),
        aliases: model
            .catalog
            .members
            .iter()
            .filter(|m| {
                model
                    .catalog
                    .tables
                    .get(m.class as usize)
                    .is_some_and(|t| t.qualified != m.qualified)
            })
            .map(|m| TableAlias {
                schema: m.schema.clone(),
                name: m.name.clone(),
                table: m.class,
            })
            .collect(),
    };
    let rules = model.rules.iter().map(|r| r.info.clone()).collect();
    let mut scratch = Scratch::default();
    let roles = model
        .roles
        .iter()
        .map(|role| combine_role(model, role, &mut scratch))
        .collect();
    CompiledPolicy {
        source_digest: model.source_digest,
        catalog,
        rules,
        roles,
    }
}

#[derive(Default)]
struct Scratch {
    acc: Vec<Acc>,
    /// Per class: the role's rules selecting it.
    sigs: Vec<Vec<RuleIndex>>,
    /// Per class: whether one of those names columns or masks.
    sensitive: Vec<bool>,
}

/// Whether a rule's decision depends on a table's columns.
fn column_sensitive(body: &Body) -> bool {
    match body {
        Body::Access(a) => !a.target.all_columns(),
        Body::Mask(_) => true,
        _ => false,
    }
}

/// Groups the classes `role` cannot tell apart: the same of its rules select them and,
/// when one of those names columns or masks, they have the same columns. Every table of a
/// group then has the same cells and masks, so they are combined once, on the group's
/// first class. Returns (group per class, first class per group, whether the group's
/// decisions depend on columns).
fn group_classes(
    model: &Model,
    role: &Role,
    scratch: &mut Scratch,
) -> (Vec<u32>, Vec<u32>, Vec<bool>) {
    let nclasses = model.catalog.tables.len();
    scratch.sigs.resize_with(nclasses, Vec::new);
    scratch.sigs.iter_mut().for_each(Vec::clear);
    scratch.sensitive.clear();
    scratch.sensitive.resize(nclasses, false);
    for &ri in &role.rules {
        let Some(rule) = model.rule(ri) else { continue };
        let target = match &rule.body {
            Body::Access(a) => &a.target,
            Body::Mask(m) => &m.target,
            _ => continue,
        };
        let sensitive = column_sensitive(&rule.body);
        for (t, _) in target.tables.iter() {
            if let Some(sig) = scratch.sigs.get_mut(*t as usize) {
                // Rules come in ascending order and a target lists a class once.
                sig.push(ri);
            }
            if sensitive && let Some(s) = scratch.sensitive.get_mut(*t as usize) {
                *s = true;
            }
        }
    }
    let mut ids: std::collections::HashMap<(&[RuleIndex], usize), u32> =
        std::collections::HashMap::new();
    let mut group_of = Vec::with_capacity(nclasses);
    let mut reps = Vec::new();
    let mut sensitive = Vec::new();
    for (k, t) in model.catalog.tables.iter().enumerate() {
        let columns = if scratch.sensitive[k] {
            std::sync::Arc::as_ptr(&t.columns) as *const crate::resolve::Column as usize
        } else {
            0
        };
        let next = reps.len() as u32;
        let g = *ids
            .entry((&scratch.sigs[k][..], columns))
            .or_insert_with(|| {
                reps.push(k as u32);
                sensitive.push(scratch.sensitive[k]);
                next
            });
        group_of.push(g);
    }
    (group_of, reps, sensitive)
}

fn combine_role(model: &Model, role: &Role, scratch: &mut Scratch) -> CompiledRole {
    let (group_of, reps, sensitive) = group_classes(model, role, scratch);
    let ngroups = reps.len();
    // The slot of (class, table) if the table is its group's first class.
    let slot_of = |ci: usize, t: u32| -> Option<usize> {
        let g = *group_of.get(t as usize)? as usize;
        (reps.get(g) == Some(&t)).then_some(ci * ngroups + g)
    };
    scratch.acc.clear();
    scratch.acc.resize(CLASSES * ngroups, Acc::default());
    let acc = &mut scratch.acc;
    let mut class_allow: [Option<RuleIndex>; CLASSES] = [None; CLASSES];
    let mut class_deny: [Option<RuleIndex>; CLASSES] = [None; CLASSES];
    let mut patterns: Vec<PatternRule> = Vec::new();
    let mut fn_allow: Vec<Option<RuleIndex>> = vec![None; model.catalog.functions.len()];
    let mut fn_deny: Vec<Option<RuleIndex>> = vec![None; model.catalog.functions.len()];
    let mut rows_min: Option<(u64, RuleIndex)> = None;
    let mut sessions_min: Option<(u32, RuleIndex)> = None;
    let mut concurrent_min: Option<(u32, RuleIndex)> = None;
    let mut certificate_rule: Option<RuleIndex> = None;
    let mut bytes_min: Option<(u64, RuleIndex)> = None;
    let mut rates: Vec<RateLimit> = Vec::new();
    let mut depth_min: Option<(u32, RuleIndex)> = None;
    let mut budgets: Vec<Budget> = Vec::new();

    for &ri in &role.rules {
        let Some(rule) = model.rule(ri) else { continue };
        match &rule.body {
            Body::Access(a) => {
                let unfiltered = a.target.unfiltered_tables() && a.target.all_columns();
                for class in a.classes.iter() {
                    let ci = class as usize;
                    match a.effect {
                        Effect::Allow => min_rule(&mut class_allow[ci], ri),
                        Effect::Deny if unfiltered => min_rule(&mut class_deny[ci], ri),
                        Effect::Deny => {}
                    }
                    for (t, cols) in a.target.tables.iter() {
                        let Some(slot) = slot_of(ci, *t).and_then(|i| acc.get_mut(i)) else {
                            continue;
                        };
                        match (a.effect, cols) {
                            (Effect::Deny, None) => min_rule(&mut slot.deny, ri),
                            (Effect::Deny, Some(c)) => {
                                slot.col_deny.get_or_insert_with(ColSet::new).union_with(c);
                                min_rule(&mut slot.col_deny_rule, ri);
                            }
                            (Effect::Allow, None) => {
                                slot.allow_all = true;
                                min_rule(&mut slot.allow, ri);
                            }
                            (Effect::Allow, Some(c)) => {
                                slot.allow_cols
                                    .get_or_insert_with(ColSet::new)
                                    .union_with(c);
                                min_rule(&mut slot.allow, ri);
                            }
                        }
                    }
                }
                if let Some(p) = a.undeclared_pattern() {
                    patterns.push(PatternRule {
                        kind: PatternKind::Table,
                        classes: a.classes,
                        pattern: p.to_string(),
                        effect: a.effect,
                        rule: ri,
                    });
                }
            }
            Body::Function(f) => {
                let slots = match f.effect {
                    Effect::Allow => &mut fn_allow,
                    Effect::Deny => &mut fn_deny,
                };
                for &fi in &f.functions {
                    if let Some(s) = slots.get_mut(fi as usize) {
                        min_rule(s, ri);
                    }
                }
                for p in &f.patterns {
                    patterns.push(PatternRule {
                        kind: PatternKind::Function,
                        classes: pgate_core::ClassSet::EMPTY,
                        pattern: p.clone(),
                        effect: f.effect,
                        rule: ri,
                    });
                }
            }
            Body::Mask(_) => {}
            Body::Budget {
                rows,
                bytes,
                window_secs,
            } => budgets.push(Budget {
                max_rows: *rows,
                max_bytes: *bytes,
                window_secs: *window_secs,
                rule: ri,
            }),
            Body::Delegation { max_depth } => {
                if depth_min.is_none_or(|(m, _)| *max_depth < m) {
                    depth_min = Some((*max_depth, ri));
                }
            }
            Body::TokenUse {
                sessions,
                concurrent,
                certificate,
            } => {
                if *certificate && certificate_rule.is_none() {
                    certificate_rule = Some(ri);
                }
                if let Some(n) = sessions
                    && sessions_min.is_none_or(|(m, _)| *n < m)
                {
                    sessions_min = Some((*n, ri));
                }
                if let Some(n) = concurrent
                    && concurrent_min.is_none_or(|(m, _)| *n < m)
                {
                    concurrent_min = Some((*n, ri));
                }
            }
            Body::Limit { rows, bytes } => {
                // Rules come in index order, so strict `<` keeps the lowest rule on ties.
                if let Some(r) = rows
                    && rows_min.is_none_or(|(m, _)| *r < m)
                {
                    rows_min = Some((*r, ri));
                }
                if let Some(b) = bytes
                    && bytes_min.is_none_or(|(m, _)| *b < m)
                {
                    bytes_min = Some((*b, ri));
                }
            }
            Body::Rate {
                bytes_per_second,
                burst_bytes,
                scope,
                on_exceed,
            } => rates.push(RateLimit {
                bytes_per_second: *bytes_per_second,
                burst_bytes: *burst_bytes,
                scope: *scope,
                on_exceed: *on_exceed,
                rule: ri,
            }),
        }
    }

    let limits = Limits {
        max_rows: rows_min.map(|(v, _)| v),
        max_bytes: bytes_min.map(|(v, _)| v),
        rule: rows_min.or(bytes_min).map(|(_, r)| r),
    };
    let token_use = TokenUse {
        max_sessions: sessions_min.map(|(v, _)| v),
        max_concurrent: concurrent_min.map(|(v, _)| v),
        require_certificate: certificate_rule.is_some(),
        rule: sessions_min
            .or(concurrent_min)
            .map(|(_, r)| r)
            .or(certificate_rule),
    };

    // Cells: class-level, then per group.
    let mut cells = Vec::new();
    let mut groups: Vec<Group> = reps
        .iter()
        .zip(&sensitive)
        .map(|(&t, &sens)| Group {
            cells: Vec::new(),
            masks: Vec::new(),
            columns: if sens {
                model.catalog.table(t).map_or(0, |t| t.columns.len() as u32)
            } else {
                0
            },
        })
        .collect();
    for class in StatementClass::ALL {
        let ci = class as usize;
        if let Some(d) = class_deny[ci] {
            cells.push(CellEntry {
                class,
                table: None,
                cell: deny_cell(Some(d)),
            });
        } else if let Some(a) = class_allow[ci] {
            cells.push(CellEntry {
                class,
                table: None,
                cell: Cell {
                    effect: Effect::Allow,
                    rule: Some(a),
                    columns: ColumnAccess::All,
                    denied_columns: Vec::new(),
                    denied_columns_rule: None,
                },
            });
        }
        for (g, group) in groups.iter_mut().enumerate() {
            let ncols = reps
                .get(g)
                .and_then(|&t| model.catalog.table(t))
                .map_or(0, |t| t.columns.len());
            if let Some(cell) = acc.get(ci * ngroups + g).and_then(|s| cell_of(s, ncols)) {
                group.cells.push((class, cell));
            }
        }
    }

    // Functions.
    let functions = fn_allow
        .iter()
        .zip(&fn_deny)
        .enumerate()
        .filter_map(|(i, (a, d))| match (a, d) {
            (_, Some(d)) => Some((i as u32, Effect::Deny, Some(*d))),
            (Some(a), None) => Some((i as u32, Effect::Allow, Some(*a))),
            (None, None) => None,
        })
        .collect();

    // Masks: only on columns the role can read (select or copy-out).
    for ((g, c), (kind, rule, predicates)) in masks_of(model, role, acc, &group_of, &reps) {
        if let Some(group) = groups.get_mut(g as usize) {
            group.masks.push(GroupMask {
                column: c,
                kind,
                rule,
                predicates,
            });
        }
    }

    patterns.sort();
    patterns.dedup();
    rates.sort();
    rates.dedup();
    budgets.sort();
    budgets.dedup();
    CompiledRole {
        name: role.name.clone(),
        members: role.members.clone(),
        cells,
        functions,
        patterns,
        masks: Vec::new(),
        limits,
        token_use,
        rates,
        budgets,
        delegation: delegation(model, role, depth_min),
        groups: Some(RoleGroups { group_of, groups }),
    }
}

/// A granted role's `delegation max-depth=`; a variant's conditions (its depth limit is
/// its base's, checked before a variant is chosen) and the first rule of its blocks.
fn delegation(model: &Model, role: &Role, depth_min: Option<(u32, RuleIndex)>) -> Delegation {
    match &role.variant {
        None => Delegation {
            max_depth: depth_min.map(|(d, _)| d),
            rule: depth_min.map(|(_, r)| r),
            variant: None,
        },
        Some(v) => Delegation {
            max_depth: None,
            rule: v
                .blocks
                .iter()
                .filter_map(|b| model.blocks.get(*b as usize)?.rules.first().copied())
                .min(),
            variant: Some(Variant {
                base: v.base,
                min_depth: v.min_depth,
                actors: v.actors.clone(),
            }),
        },
    }
}

fn deny_cell(rule: Option<RuleIndex>) -> Cell {
    Cell {
        effect: Effect::Deny,
        rule,
        columns: ColumnAccess::Only(Vec::new()),
        denied_columns: Vec::new(),
        denied_columns_rule: None,
    }
}

/// The allowed columns of an accumulator (after column denies), `None` when not allowed.
fn allowed_columns(slot: &Acc, ncols: usize) -> Option<ColSet> {
    if slot.deny.is_some() || slot.allow.is_none() {
        return None;
    }
    let mut cols = if slot.allow_all {
        ColSet::full(ncols)
    } else {
        slot.allow_cols.clone().unwrap_or_default()
    };
    if let Some(d) = &slot.col_deny {
        cols.subtract(d);
    }
    Some(cols)
}

fn cell_of(slot: &Acc, ncols: usize) -> Option<Cell> {
    if let Some(d) = slot.deny {
        return Some(deny_cell(Some(d)));
    }
    let allow = slot.allow?;
    let denied: Vec<u32> = slot
        .col_deny
        .as_ref()
        .map(|d| d.iter().filter(|c| (*c as usize) < ncols).collect())
        .unwrap_or_default();
    let columns = if slot.allow_all && denied.is_empty() {
        ColumnAccess::All
    } else {
        ColumnAccess::Only(allowed_columns(slot, ncols).unwrap_or_default().to_vec())
    };
    let denied_columns_rule = if denied.is_empty() {
        None
    } else {
        slot.col_deny_rule
    };
    Some(Cell {
        effect: Effect::Allow,
        rule: Some(allow),
        columns,
        denied_columns: denied,
        denied_columns_rule,
    })
}

/// The masks of each group, by (group, column): on columns the role can read, the
/// strongest mask, the lowest rule among equals.
type GroupMasks = std::collections::BTreeMap<(u32, u32), (MaskKind, RuleIndex, bool)>;

fn masks_of(model: &Model, role: &Role, acc: &[Acc], group_of: &[u32], reps: &[u32]) -> GroupMasks {
    let ngroups = reps.len();
    let mut best = GroupMasks::new();
    let readable = |t: u32, g: usize| -> ColSet {
        let ncols = model.catalog.table(t).map(|t| t.columns.len()).unwrap_or(0);
        let mut out = ColSet::new();
        for class in [StatementClass::Select, StatementClass::CopyOut] {
            if let Some(slot) = acc.get(class as usize * ngroups + g)
                && let Some(c) = allowed_columns(slot, ncols)
            {
                out.union_with(&c);
            }
        }
        out
    };
    for &ri in &role.rules {
        let Some(rule) = model.rule(ri) else { continue };
        let Body::Mask(m) = &rule.body else { continue };
        for (t, cols) in m.target.tables.iter() {
            let Some(&g) = group_of.get(*t as usize) else {
                continue;
            };
            if reps.get(g as usize) != Some(t) {
                continue;
            }
            let read = readable(*t, g as usize);
            let ncols = model
                .catalog
                .table(*t)
                .map(|t| t.columns.len())
                .unwrap_or(0);
            let selected = cols.clone().unwrap_or_else(|| ColSet::full(ncols));
            for c in selected.iter() {
                if !read.contains(c) {
                    continue;
                }
                let e = best.entry((g, c)).or_insert((m.kind, ri, m.predicates));
                let stronger = mask_strength(m.kind) > mask_strength(e.0);
                let same_lower = m.kind == e.0 && ri < e.1;
                if stronger || same_lower {
                    *e = (m.kind, ri, m.predicates);
                }
            }
        }
    }
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use pgate_core::table::model::{PatternKind, RateScope};

    use super::*;
    use crate::evaluate::Evaluator;

    const CAT: &str = r#"
table "public.customers" {
    columns "id" "name"
    column "email" { tags "pii" }
    column "ssn" { tags "pii" "secret" }
    tags "pii"
}
table "public.orders" { columns "id" "total" }
function "pg_catalog.lower"
function "pg_catalog.pg_read_file" { tags "files" }
"#;

    fn compiled(roles: &str) -> CompiledPolicy {
        let c = crate::compile_str("p.kdl", &format!("{CAT}{roles}"));
        assert!(!c.has_errors(), "{:?}", c.diagnostics.items);
        c.policy.unwrap()
    }

    fn names(p: &CompiledPolicy, cell: &Cell, t: usize) -> Vec<String> {
        let cols = &p.catalog.tables[t].columns;
        match &cell.columns {
            ColumnAccess::All => vec!["*".into()],
            ColumnAccess::Only(v) => v.iter().map(|c| cols[*c as usize].name.clone()).collect(),
        }
    }

    #[test]
    fn column_denies_are_removed_and_named() {
        let p = compiled(
            "role \"a\" {\n allow \"select\" table=\"public.customers\"\n deny \"select\" tag=\"pii\" { column-tag \"secret\" }\n}\n",
        );
        let e = Evaluator::new(&p);
        let cell = e.cell(0, StatementClass::Select, Some(0)).unwrap();
        assert_eq!(cell.effect, Effect::Allow);
        assert_eq!(cell.rule, Some(0));
        // Columns are sorted by name: email, id, name, ssn.
        assert_eq!(names(&p, cell, 0), ["email", "id", "name"]);
        assert_eq!(cell.denied_columns, vec![3]);
        assert_eq!(cell.denied_columns_rule, Some(1));
        assert_eq!(
            e.column_allowed(0, StatementClass::Select, 0, 3),
            (false, Some(1))
        );
        // Other classes and tables: default deny, no cell.
        assert!(e.cell(0, StatementClass::Insert, Some(0)).is_none());
        assert!(e.cell(0, StatementClass::Select, Some(1)).is_none());
        // The tag-filtered deny does not block statements without tables.
        assert_eq!(e.allowed(0, StatementClass::Select, None), (true, Some(0)));
    }

    #[test]
    fn the_lowest_rule_decides_whatever_the_order() {
        let p = compiled(
            "role \"a\" {\n deny \"copy-out\" table=\"*\"\n allow \"select\" \"copy-out\"\n deny \"copy-out\" table=\"public.orders\"\n allow \"select\" table=\"public.orders\"\n}\n",
        );
        let e = Evaluator::new(&p);
        // Whole-table deny wins with the first deny (rule 0), not the later exact one.
        assert_eq!(
            e.allowed(0, StatementClass::CopyOut, Some(1)),
            (false, Some(0))
        );
        // The unfiltered deny also denies the class-level cell.
        assert_eq!(
            e.allowed(0, StatementClass::CopyOut, None),
            (false, Some(0))
        );
        // Two allows: the first (rule 1) decides.
        assert_eq!(
            e.allowed(0, StatementClass::Select, Some(1)),
            (true, Some(1))
        );
        // `*` never includes unknown.
        assert_eq!(e.allowed(0, StatementClass::Unknown, None), (false, None));
        // Glob rules are kept for undeclared tables.
        let pats: Vec<(&str, Effect)> = p.roles[0]
            .patterns
            .iter()
            .filter(|r| r.kind == PatternKind::Table)
            .map(|r| (r.pattern.as_str(), r.effect))
            .collect();
        assert!(pats.contains(&("*", Effect::Deny)) && pats.contains(&("*", Effect::Allow)));
        assert_eq!(pats.len(), 2);
    }

    #[test]
    fn functions_masks_limits_rates() {
        let p = compiled(
            "role \"a\" {\n allow \"select\" table=\"public.customers\" { columns \"id\" \"email\" }\n allow-function \"pg_catalog.*\"\n deny-function tag=\"files\"\n mask column-tag=\"pii\" with=\"hash\"\n mask table=\"public.customers\" column=\"email\" with=\"redact\"\n limit rows=100\n limit rows=50 bytes=\"1KiB\"\n limit bytes=\"2KiB\"\n rate bytes=\"60KiB\" per=\"minute\"\n}\nrole \"b\" { inherits \"a\"\n limit rows=10 }\n",
        );
        let a = &p.roles[0];
        // lower allowed by the glob (rule 1), pg_read_file denied by the tag rule (rule 2).
        assert_eq!(
            a.functions,
            vec![(0, Effect::Allow, Some(1)), (1, Effect::Deny, Some(2))]
        );
        // Masks only on readable pii columns; redact beats hash on email; ssn unreadable.
        let masks = a.table_masks();
        assert_eq!(masks.len(), 1);
        assert_eq!(
            (masks[0].column, masks[0].kind, masks[0].rule),
            (0, MaskKind::Redact, 4)
        );
        assert_eq!(a.limits.max_rows, Some(50));
        assert_eq!(a.limits.max_bytes, Some(1024));
        assert_eq!(a.limits.rule, Some(6));
        assert_eq!(a.rates[0].bytes_per_second, 1024);
        assert_eq!(a.rates[0].scope, RateScope::Session);
        // The child inherits everything and tightens rows.
        let b = &p.roles[1];
        assert_eq!(b.limits.max_rows, Some(10));
        assert_eq!(b.table_masks(), a.table_masks());
        assert!(b.members.is_empty());
    }

    #[test]
    fn sessions_per_token_take_the_smallest_of_own_and_inherited() {
        let p = compiled(
            "role \"parent\" {\n allow \"select\" table=\"public.customers\"\n token sessions=5 concurrent=2\n}\nrole \"copilot\" { inherits \"parent\"\n token sessions=1\n}\nrole \"free\" {\n allow \"select\" table=\"public.customers\"\n}\n",
        );
        let role = |n: &str| p.roles.iter().find(|r| r.name == n).unwrap();
        let parent = role("parent");
        assert_eq!(parent.token_use.max_sessions, Some(5));
        assert_eq!(parent.token_use.max_concurrent, Some(2));
        assert_eq!(parent.token_use.rule, Some(1));
        // The child's own single use wins; the parent's concurrency still applies.
        let copilot = role("copilot");
        assert_eq!(copilot.token_use.max_sessions, Some(1));
        assert_eq!(copilot.token_use.max_concurrent, Some(2));
        assert_eq!(copilot.token_use.rule, Some(2));
        assert!(!role("free").token_use.is_limited());
    }
}
