//! Verification: what a reviewer should know about a policy that resolves.
//!
//! - **rule analysis** (warnings, per role over its own and inherited rules): an allow and
//!   a deny that overlap ("deny wins"); an allow every access of which is denied
//!   (shadowed); an allow every access of which other allows already grant (redundant);
//! - **masks**: a mask naming a column the role cannot read is an error; several masks of
//!   different kinds on one column are a warning (the strongest wins);
//! - **invariants**: checked exhaustively over every (role, class, table, column) cell of
//!   the *compiled* policy (through [`crate::evaluate`], never through the rules), failing
//!   with a counterexample and the allowing rule's `file:line`.
//!
//! The analysis over table cells covers classes that touch tables; classes that do not
//! (`transaction`, `session`, …) are analysed on their class-level cell. This module only
//! reports; it never changes the model or the compiled cells.

use std::collections::{BTreeMap, BTreeSet};

use pgate_core::class::StatementClass;
use pgate_core::table::model::{
    ColumnAccess, CompiledPolicy, Effect, MaskKind, PatternKind, RuleIndex,
};

use crate::bits::ColSet;
use crate::combine::mask_strength;
use crate::diag::{Diagnostic, Diagnostics, codes};
use crate::evaluate::Evaluator;
use crate::glob;
use crate::resolve::{AccessRule, Body, Model, Role};

/// Runs every check.
pub fn verify(model: &Model, policy: &CompiledPolicy, diags: &mut Diagnostics) {
    let eval = Evaluator::new(policy);
    rule_analysis(model, diags);
    masks(model, &eval, diags);
    invariants(model, policy, &eval, diags);
}

fn rule_ref(model: &Model, r: RuleIndex) -> String {
    match model.rule(r) {
        Some(rule) => format!(
            "`{}` at {}:{}",
            rule.info.text, rule.info.file, rule.info.line
        ),
        None => format!("rule {r}"),
    }
}

/// Per-role index of access rules by (class, table).
struct RoleIndex<'m> {
    ntables: usize,
    allows: Vec<Vec<RuleIndex>>,
    denies: Vec<Vec<RuleIndex>>,
    /// Per class: allows of the class (any selector), unfiltered denies.
    class_allows: Vec<Vec<RuleIndex>>,
    class_denies: Vec<Vec<RuleIndex>>,
    /// Slots of `allows` and `denies` filled, to clear for the next role.
    touched: Vec<usize>,
    model: &'m Model,
}

impl<'m> RoleIndex<'m> {
    /// The index of `role`, reusing `previous`'s buffers (a role selects few of the
    /// (class, table) slots: clearing only those keeps this linear in its rules).
    fn new(model: &'m Model, role: &Role, previous: Option<Self>) -> Self {
        let ntables = model.catalog.tables.len();
        let n = StatementClass::COUNT * ntables;
        let mut idx = match previous {
            Some(mut p) => {
                for &slot in &p.touched {
                    if let Some(v) = p.allows.get_mut(slot) {
                        v.clear();
                    }
                    if let Some(v) = p.denies.get_mut(slot) {
                        v.clear();
                    }
                }
                p.touched.clear();
                p.class_allows.iter_mut().for_each(Vec::clear);
                p.class_denies.iter_mut().for_each(Vec::clear);
                p
            }
            None => RoleIndex {
                ntables,
                allows: vec![Vec::new(); n],
                denies: vec![Vec::new(); n],
                class_allows: vec![Vec::new(); StatementClass::COUNT],
                class_denies: vec![Vec::new(); StatementClass::COUNT],
                touched: Vec::new(),
                model,
            },
        };
        for &ri in &role.rules {
            let Some(a) = model.rule(ri).and_then(|r| r.access()) else {
                continue;
            };
            for class in a.classes.iter() {
                let ci = class as usize;
                match a.effect {
                    Effect::Allow => push(&mut idx.class_allows, ci, ri),
                    Effect::Deny if a.target.unfiltered_tables() && a.target.all_columns() => {
                        push(&mut idx.class_denies, ci, ri)
                    }
                    Effect::Deny => {}
                }
                if !class.touches_tables() {
                    continue;
                }
                for (t, _) in a.target.tables.iter() {
                    let slot = ci * ntables + *t as usize;
                    idx.touched.push(slot);
                    match a.effect {
                        Effect::Allow => push(&mut idx.allows, slot, ri),
                        Effect::Deny => push(&mut idx.denies, slot, ri),
                    }
                }
            }
        }
        idx
    }

    /// Columns of table `t` selected by access rule `r` (all when unfiltered).
    fn cols(&self, r: RuleIndex, t: u32) -> Option<ColSet> {
        let a = self.model.rule(r)?.access()?;
        let i = a.target.tables.binary_search_by_key(&t, |(x, _)| *x).ok()?;
        let (_, cols) = a.target.tables.get(i)?;
        Some(match cols {
            Some(c) => c.clone(),
            None => self.full(t),
        })
    }

    fn is_whole(&self, r: RuleIndex) -> bool {
        self.model
            .rule(r)
            .and_then(|r| r.access())
            .is_some_and(|a| a.target.all_columns())
    }

    fn full(&self, t: u32) -> ColSet {
        self.model
            .catalog
            .table(t)
            .map(|t| t.all_columns())
            .unwrap_or_default()
    }
}

fn push(v: &mut [Vec<RuleIndex>], i: usize, r: RuleIndex) {
    if let Some(s) = v.get_mut(i) {
        s.push(r);
    }
}

/// The (class, table) domain of an allow: table classes over matched tables.
fn table_domain(a: &AccessRule) -> impl Iterator<Item = (StatementClass, u32)> + '_ {
    a.classes
        .iter()
        .filter(|c| c.touches_tables())
        .flat_map(|c| a.target.tables.iter().map(move |(t, _)| (c, *t)))
}

/// Whether another rule of `effect` among `rules` (not `ri`, not in `skip`) covers the
/// undeclared tables `a`'s glob `pattern` grants, for all of `a`'s classes.
fn covers_undeclared(
    model: &Model,
    rules: &[RuleIndex],
    ri: RuleIndex,
    a: &AccessRule,
    pattern: &str,
    effect: Effect,
    skip: &BTreeSet<RuleIndex>,
) -> bool {
    rules.iter().any(|&o| {
        o != ri
            && !skip.contains(&o)
            && model.rule(o).and_then(|r| r.access()).is_some_and(|b| {
                b.effect == effect
                    && a.classes.minus(b.classes).is_empty()
                    && b.undeclared_pattern()
                        .is_some_and(|q| glob_covers(q, pattern))
            })
    })
}

/// Whether every name the glob `inner` matches is matched by `outer` (conservatively:
/// `*`, the same glob, or `schema.*` over a glob of that schema).
fn glob_covers(outer: &str, inner: &str) -> bool {
    outer == "*"
        || outer == inner
        || outer.strip_suffix('*').is_some_and(|prefix| {
            prefix.ends_with('.')
                && !prefix[..prefix.len() - 1].contains('*')
                && inner
                    .strip_prefix(prefix)
                    .is_some_and(|rest| !rest.contains('.'))
        })
}

fn rule_analysis(model: &Model, diags: &mut Diagnostics) {
    let mut overlaps: BTreeMap<(RuleIndex, RuleIndex), u32> = BTreeMap::new();
    let mut shadowed: BTreeMap<RuleIndex, RuleIndex> = BTreeMap::new();
    let mut redundant: BTreeMap<RuleIndex, RuleIndex> = BTreeMap::new();
    let mut previous: Option<RoleIndex<'_>> = None;
    for (role_i, role) in model.roles.iter().enumerate() {
        // A variant's rules are its role's and narrowing ones: overlaps there are the
        // point of a `delegated` block, not a mistake to report once per variant.
        if role.variant.is_some() {
            continue;
        }
        let idx = RoleIndex::new(model, role, previous.take());
        let nt = idx.ntables;
        // Overlaps and shadowing, for every allow the role has.
        for &ri in &role.rules {
            let Some(a) = model.rule(ri).and_then(|r| r.access()) else {
                continue;
            };
            if a.effect != Effect::Allow {
                continue;
            }
            let mut any = false;
            let mut covered = true;
            let mut hits: BTreeSet<RuleIndex> = BTreeSet::new();
            for (class, t) in table_domain(a) {
                any = true;
                let ds = idx.denies.get(class as usize * nt + t as usize);
                let ds = ds.map(Vec::as_slice).unwrap_or(&[]);
                let mine = idx.cols(ri, t).unwrap_or_default();
                let mut union = ColSet::new();
                let mut whole = false;
                for &d in ds {
                    if idx.is_whole(d) {
                        whole = true;
                        hits.insert(d);
                    } else if let Some(dc) = idx.cols(d, t) {
                        if dc.intersects(&mine) {
                            hits.insert(d);
                        }
                        union.union_with(&dc);
                    }
                }
                if !whole && !mine.is_subset(&union) {
                    covered = false;
                }
            }
            for class in a.classes.iter().filter(|c| !c.touches_tables()) {
                any = true;
                match idx.class_denies.get(class as usize).and_then(|v| v.first()) {
                    Some(d) => {
                        hits.insert(*d);
                    }
                    None => covered = false,
                }
            }
            if !any {
                continue;
            }
            // A glob allow also grants the tables the catalog does not declare: it is
            // shadowed only if a deny glob takes those back too.
            if covered
                && let Some(p) = a.undeclared_pattern()
                && !covers_undeclared(model, &role.rules, ri, a, p, Effect::Deny, &BTreeSet::new())
            {
                covered = false;
            }
            let own = model.rule(ri).is_some_and(|r| r.role as usize == role_i);
            if own && covered {
                if let Some(first) = hits.first() {
                    shadowed.entry(ri).or_insert(*first);
                }
                continue;
            }
            for d in hits {
                overlaps.entry((ri, d)).or_insert(role_i as u32);
            }
        }
        // Redundancy, for the role's own allows, highest index first (so of two equal
        // allows the later one is reported).
        let mut removed: BTreeSet<RuleIndex> = BTreeSet::new();
        for &ri in role.own_rules.iter().rev() {
            let Some(a) = model.rule(ri).and_then(|r| r.access()) else {
                continue;
            };
            if a.effect != Effect::Allow || shadowed.contains_key(&ri) {
                continue;
            }
            let others = |v: &[RuleIndex]| -> Vec<RuleIndex> {
                v.iter()
                    .copied()
                    .filter(|o| *o != ri && !removed.contains(o))
                    .collect()
            };
            let mut any = false;
            let mut covered = true;
            let mut by: Option<RuleIndex> = None;
            for (class, t) in table_domain(a) {
                any = true;
                let os = others(
                    idx.allows
                        .get(class as usize * nt + t as usize)
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                );
                if let Some(w) = os.iter().find(|o| idx.is_whole(**o)) {
                    by = by.or(Some(*w));
                    continue;
                }
                let mine = idx.cols(ri, t).unwrap_or_default();
                let mut union = ColSet::new();
                for o in &os {
                    if let Some(c) = idx.cols(*o, t) {
                        union.union_with(&c);
                    }
                }
                if !mine.is_subset(&union) {
                    covered = false;
                    break;
                }
                by = by.or(os.first().copied());
            }
            if covered {
                for class in a.classes.iter().filter(|c| !c.touches_tables()) {
                    any = true;
                    let os = others(
                        idx.class_allows
                            .get(class as usize)
                            .map(Vec::as_slice)
                            .unwrap_or(&[]),
                    );
                    match os.first() {
                        Some(o) => by = by.or(Some(*o)),
                        None => {
                            covered = false;
                            break;
                        }
                    }
                }
            }
            // A glob allow adds the tables the catalog does not declare, unless another
            // allow's glob grants them too.
            if covered
                && let Some(p) = a.undeclared_pattern()
                && !covers_undeclared(model, &role.rules, ri, a, p, Effect::Allow, &removed)
            {
                covered = false;
            }
            if any && covered {
                removed.insert(ri);
                redundant.entry(ri).or_insert(by.unwrap_or(ri));
            }
        }
        previous = Some(idx);
    }
    for (a, d) in shadowed {
        let (Some(ar), Some(dr)) = (model.rule(a), model.rule(d)) else {
            continue;
        };
        diags.push(
            Diagnostic::warning(
                codes::SHADOWED_RULE,
                "this allow is shadowed: every access it grants is denied",
            )
            .label(ar.span, "grants nothing")
            .label(dr.span, "denied by this rule")
            .help(format!(
                "deny wins: {} denies it; remove the allow or narrow the deny",
                rule_ref(model, d)
            )),
        );
    }
    for (a, by) in redundant {
        let (Some(ar), Some(br)) = (model.rule(a), model.rule(by)) else {
            continue;
        };
        diags.push(
            Diagnostic::warning(
                codes::REDUNDANT_RULE,
                "this allow is redundant: other allows already grant everything it grants",
            )
            .label(ar.span, "adds nothing")
            .label(br.span, "already granted here")
            .help(format!(
                "remove it, or narrow the other allows (e.g. {})",
                rule_ref(model, by)
            )),
        );
    }
    for ((a, d), role) in overlaps {
        let (Some(ar), Some(dr)) = (model.rule(a), model.rule(d)) else {
            continue;
        };
        let role_name = model
            .roles
            .get(role as usize)
            .map(|r| r.name.as_str())
            .unwrap_or("");
        diags.push(
            Diagnostic::warning(
                codes::ALLOW_DENY_OVERLAP,
                format!("allow and deny overlap in role `{role_name}`: deny wins"),
            )
            .label(ar.span, "this allow…")
            .label(dr.span, "…is partly overridden by this deny")
            .help(format!("where both match, {} decides", rule_ref(model, d))),
        );
    }
}

fn masks(model: &Model, eval: &Evaluator<'_>, diags: &mut Diagnostics) {
    let readable = |role: usize, t: u32, c: u32| {
        eval.column_allowed(role, StatementClass::Select, t, c).0
            || eval.column_allowed(role, StatementClass::CopyOut, t, c).0
    };
    // Each mask with the roles it is checked in: the role it is written in, or — written
    // in a `delegated` block — every variant that applies the block (it must mask
    // something readable in one of them: a variant combining it with a block that denies
    // the column does not make it wrong).
    let mut checks: Vec<(RuleIndex, Vec<usize>)> = Vec::new();
    for (role_i, role) in model.roles.iter().enumerate() {
        checks.extend(role.own_rules.iter().map(|&ri| (ri, vec![role_i])));
    }
    for (bi, block) in model.blocks.iter().enumerate() {
        let variants: Vec<usize> = model
            .roles
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.variant
                    .as_ref()
                    .is_some_and(|v| v.blocks.contains(&(bi as u32)))
            })
            .map(|(i, _)| i)
            .collect();
        if !variants.is_empty() {
            checks.extend(block.rules.iter().map(|&ri| (ri, variants.clone())));
        }
    }
    for (ri, in_roles) in &checks {
        let Some(rule) = model.rule(*ri) else {
            continue;
        };
        let Body::Mask(m) = &rule.body else { continue };
        let role_name = model
            .roles
            .get(rule.role as usize)
            .map_or("", |r| r.name.as_str());
        let readable_any = |t: u32, c: u32| in_roles.iter().any(|&r| readable(r, t, c));
        if !m.explicit {
            // A mask by selector that hits no column its own role can read does nothing.
            let hits = m.target.tables.iter().any(|(t, cols)| {
                let n = model.catalog.table(*t).map_or(0, |t| t.columns.len()) as u32;
                (0..n).any(|c| cols.as_ref().is_none_or(|s| s.contains(c)) && readable_any(*t, c))
            });
            if !hits {
                diags.push(
                    Diagnostic::warning(
                        codes::EMPTY_SELECTION,
                        format!("this mask applies to no column role `{role_name}` can read"),
                    )
                    .label(rule.span, "masks nothing")
                    .help("check its selectors, or remove it"),
                );
            }
            continue;
        }
        for (t, cols) in m.target.tables.iter() {
            for c in cols.iter().flat_map(|c| c.iter()) {
                if readable_any(*t, c) {
                    continue;
                }
                let tname = model
                    .catalog
                    .table(*t)
                    .map(|t| t.qualified.as_str())
                    .unwrap_or("");
                let cname = model
                    .catalog
                    .table(*t)
                    .and_then(|t| t.columns.get(c as usize))
                    .map(|c| c.name.as_str())
                    .unwrap_or("");
                diags.push(
                    Diagnostic::error(
                        codes::MASK_UNREADABLE,
                        format!(
                            "role `{role_name}` masks column `{cname}` of `{tname}`, which it cannot read"
                        ),
                    )
                    .label(rule.span, "mask on an unreadable column")
                    .help("allow `select` (or `copy-out`) on the column, or remove the mask"),
                );
            }
        }
    }
    let mut conflicts: BTreeSet<(RuleIndex, RuleIndex)> = BTreeSet::new();
    for (role_i, role) in model.roles.iter().enumerate() {
        // Conflicting kinds on one readable column.
        let mut seen: BTreeMap<(u32, u32), (MaskKind, RuleIndex)> = BTreeMap::new();
        for &ri in &role.rules {
            let Some(rule) = model.rule(ri) else { continue };
            let Body::Mask(m) = &rule.body else { continue };
            for (t, cols) in m.target.tables.iter() {
                let full = model
                    .catalog
                    .table(*t)
                    .map(|t| t.all_columns())
                    .unwrap_or_default();
                for c in cols.as_ref().unwrap_or(&full).iter() {
                    if !readable(role_i, *t, c) {
                        continue;
                    }
                    match seen.get(&(*t, c)) {
                        Some((k, other)) if *k != m.kind => {
                            conflicts.insert((*other.min(&ri), *other.max(&ri)));
                        }
                        Some(_) => {}
                        None => {
                            seen.insert((*t, c), (m.kind, ri));
                        }
                    }
                }
            }
        }
    }
    for (a, b) in conflicts {
        let (Some(ar), Some(br)) = (model.rule(a), model.rule(b)) else {
            continue;
        };
        let kind = |r: &crate::resolve::Rule| match &r.body {
            Body::Mask(m) => m.kind,
            _ => MaskKind::Redact,
        };
        let (ka, kb) = (kind(ar), kind(br));
        let winner = if mask_strength(ka) >= mask_strength(kb) {
            ka
        } else {
            kb
        };
        diags.push(
            Diagnostic::warning(
                codes::MASK_CONFLICT,
                format!(
                    "masks `{}` and `{}` apply to the same column: `{}` wins",
                    ka.name(),
                    kb.name(),
                    winner.name()
                ),
            )
            .label(br.span, "this mask…")
            .label(ar.span, "…and this one"),
        );
    }
}

/// One counterexample of an invariant.
struct Violation {
    role: usize,
    class: StatementClass,
    what: String,
    rule: Option<RuleIndex>,
}

fn invariants(
    model: &Model,
    policy: &CompiledPolicy,
    eval: &Evaluator<'_>,
    diags: &mut Diagnostics,
) {
    for inv in &model.invariants {
        for f in &inv.forbids {
            // A forbid naming a role holds for its delegated variants too.
            let roles: Vec<usize> = match f.role {
                Some(r) => (0..model.roles.len())
                    .filter(|&i| {
                        i == r as usize
                            || model.roles[i].variant.as_ref().is_some_and(|v| v.base == r)
                    })
                    .collect(),
                None => (0..model.roles.len()).collect(),
            };
            let mut first: Option<Violation> = None;
            let mut count = 0usize;
            let mut note = |v: Violation| {
                count += 1;
                if first.is_none() {
                    first = Some(v);
                }
            };
            let unfiltered = f.target.unfiltered_tables() && f.target.all_columns();
            for &role in &roles {
                for class in f.classes.iter() {
                    if unfiltered && let (true, rule) = eval.allowed(role, class, None) {
                        note(Violation {
                            role,
                            class,
                            what: "statements that touch no table".to_string(),
                            rule,
                        });
                    }
                    for (t, cols) in f.target.tables.iter() {
                        let Some(cell) = eval.cell(role, class, Some(*t)) else {
                            continue;
                        };
                        if cell.effect != Effect::Allow {
                            continue;
                        }
                        let Some(table) = model.catalog.table(*t) else {
                            continue;
                        };
                        let allowed: ColSet = match &cell.columns {
                            ColumnAccess::All => table.all_columns(),
                            ColumnAccess::Only(v) => v.iter().copied().collect(),
                        };
                        let hit = match cols {
                            None => Some(allowed.first()),
                            Some(c) => {
                                let mut i = allowed.clone();
                                i.intersect_with(c);
                                i.first().map(Some)
                            }
                        };
                        if let Some(col) = hit {
                            let what = match col.and_then(|c| table.columns.get(c as usize)) {
                                Some(c) => format!("column `{}` of `{}`", c.name, table.qualified),
                                None => format!("table `{}`", table.qualified),
                            };
                            note(Violation {
                                role,
                                class,
                                what,
                                rule: cell.rule,
                            });
                        }
                    }
                    // Undeclared tables: allow patterns that can match what the forbid
                    // covers, unless a deny pattern covers it all.
                    let fp = f.target.undeclared_pattern();
                    let applies = f.target.all_columns() || !f.target.column_names.is_empty();
                    if let (Some(fp), true) = (fp, applies) {
                        let Some(r) = policy.roles.get(role) else {
                            continue;
                        };
                        let denied = |p: &str| {
                            r.patterns.iter().any(|d| {
                                d.kind == PatternKind::Table
                                    && d.effect == Effect::Deny
                                    && d.classes.contains(class)
                                    && (d.pattern == "*" || d.pattern == fp || d.pattern == p)
                            })
                        };
                        for p in &r.patterns {
                            if p.kind == PatternKind::Table
                                && p.effect == Effect::Allow
                                && p.classes.contains(class)
                                && glob::overlaps(&p.pattern, fp)
                                && !denied(&p.pattern)
                            {
                                note(Violation {
                                    role,
                                    class,
                                    what: format!("undeclared tables matching `{}`", p.pattern),
                                    rule: Some(p.rule),
                                });
                            }
                        }
                    }
                }
            }
            if let Some(v) = first {
                let role = model
                    .roles
                    .get(v.role)
                    .map(|r| r.name.as_str())
                    .unwrap_or("");
                let by = match v.rule {
                    Some(r) => format!("allowed by {}", rule_ref(model, r)),
                    None => "allowed".to_string(),
                };
                let more = if count > 1 {
                    format!(" ({} violating cells in all)", count)
                } else {
                    String::new()
                };
                let mut d = Diagnostic::error(
                    codes::INVARIANT_VIOLATED,
                    format!(
                        "invariant `{}` is violated: role `{role}` may `{}` {}",
                        inv.name, v.class, v.what
                    ),
                )
                .label(f.span, "this forbid fails");
                if let Some(r) = v.rule.and_then(|r| model.rule(r)) {
                    d = d.label(r.span, "allowed here");
                }
                diags.push(d.help(format!("{by}{more}")));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use crate::diag::codes;

    const CAT: &str = r#"
table "public.customers" {
    columns "id" "name"
    column "ssn" { tags "pii" "secret" }
}
table "staging.raw" { columns "id" "blob" }
"#;

    fn diags(roles: &str) -> Vec<crate::Diagnostic> {
        crate::compile_str("p.kdl", &format!("{CAT}{roles}"))
            .diagnostics
            .items
    }

    #[test]
    fn invariant_counterexample_names_role_cell_and_rule() {
        let d = diags(
            "role \"b\" { allow \"select\" table=\"public.customers\" { columns \"id\" } }\nrole \"a\" {\n allow \"select\" table=\"public.customers\"\n}\ninvariant \"no secrets\" { forbid \"select\" column-tag=\"secret\" }\n",
        );
        let v: Vec<_> = d
            .iter()
            .filter(|d| d.code == codes::INVARIANT_VIOLATED)
            .collect();
        assert_eq!(v.len(), 1, "{d:?}");
        assert_eq!(
            v[0].message,
            "invariant `no secrets` is violated: role `a` may `select` column `ssn` of `public.customers`"
        );
        assert!(
            v[0].help.as_deref().unwrap().contains("p.kdl:9"),
            "{:?}",
            v[0].help
        );
    }

    #[test]
    fn invariants_see_undeclared_tables_and_class_cells() {
        let d = diags(
            "role \"a\" { allow \"copy-out\" table=\"staging.*\" }\ninvariant \"no export\" { forbid \"copy-out\" table=\"*\" }\n",
        );
        let v: Vec<_> = d
            .iter()
            .filter(|d| d.code == codes::INVARIANT_VIOLATED)
            .collect();
        assert_eq!(v.len(), 1, "{d:?}");
        assert!(
            v[0].message
                .contains("`copy-out` statements that touch no table"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].help.as_deref().unwrap().contains("3 violating cells"),
            "{:?}",
            v[0].help
        );

        // A deny glob covering the allow glob takes the undeclared tables back.
        let d = diags(
            "role \"a\" { allow \"copy-out\" table=\"staging.*\"\n deny \"copy-out\" table=\"staging.*\" }\ninvariant \"no export\" { forbid \"copy-out\" table=\"staging.*\" }\n",
        );
        assert!(
            !d.iter().any(|d| d.code == codes::INVARIANT_VIOLATED),
            "{d:?}"
        );
    }

    #[test]
    fn inherited_denies_overlap_but_do_not_shadow_the_parent() {
        let d = diags(
            "role \"p\" { allow \"select\" table=\"staging.raw\" }\nrole \"c\" { inherits \"p\"\n deny \"select\" table=\"staging.*\" }\n",
        );
        let codes_: Vec<&str> = d.iter().map(|d| d.code).collect();
        assert_eq!(codes_, [codes::ALLOW_DENY_OVERLAP], "{d:?}");
        assert!(d[0].message.contains("role `c`"));
    }

    #[test]
    fn a_glob_allow_still_grants_undeclared_tables() {
        // `staging.raw` is the only declared table of `staging`: the tag-free exact allow
        // covers it, but the glob also grants tables the catalog does not declare.
        let d = diags(
            "role \"a\" {\n allow \"select\" table=\"staging.raw\"\n allow \"select\" table=\"staging.*\"\n}\n",
        );
        // The exact allow is redundant (the glob grants it); the glob is not.
        let r: Vec<_> = d
            .iter()
            .filter(|d| d.code == codes::REDUNDANT_RULE)
            .collect();
        assert_eq!(r.len(), 1, "{d:?}");
        assert!(
            r[0].help
                .as_deref()
                .is_some_and(|h| h.contains("staging.*")),
            "{d:?}"
        );
        // A deny of the declared table does not shadow what the glob grants beyond it.
        let d = diags(
            "role \"a\" {\n allow \"select\" table=\"staging.*\"\n deny \"select\" table=\"staging.raw\"\n}\n",
        );
        assert!(!d.iter().any(|d| d.code == codes::SHADOWED_RULE), "{d:?}");
        // A wider glob does make it redundant, a deny glob shadows it.
        let d = diags(
            "role \"a\" {\n allow \"select\" table=\"*\"\n allow \"select\" table=\"staging.*\"\n}\n",
        );
        assert!(d.iter().any(|d| d.code == codes::REDUNDANT_RULE), "{d:?}");
        let d = diags(
            "role \"a\" {\n allow \"select\" table=\"staging.*\"\n deny \"select\" table=\"staging.*\"\n}\n",
        );
        assert!(d.iter().any(|d| d.code == codes::SHADOWED_RULE), "{d:?}");
    }

    #[test]
    fn duplicates_are_redundant_once() {
        let roles = "role \"a\" {\n allow \"select\" table=\"staging.raw\"\n allow \"select\" table=\"staging.raw\"\n allow \"transaction\"\n}\n";
        let d = diags(roles);
        let r: Vec<_> = d
            .iter()
            .filter(|d| d.code == codes::REDUNDANT_RULE)
            .collect();
        assert_eq!(r.len(), 1, "{d:?}");
        // The later one (line 9) is reported.
        let sources = crate::Sources::from_memory([("p.kdl", format!("{CAT}{roles}"))]);
        assert_eq!(sources.location(r[0].primary().unwrap()).line, 9);
    }

    #[test]
    fn masks_that_do_nothing_or_conflict_are_reported() {
        let d = diags(
            "role \"a\" {\n allow \"select\" table=\"public.customers\" { columns \"id\" \"ssn\" }\n mask column-tag=\"pii\" with=\"hash\"\n mask table=\"public.customers\" column=\"ssn\" with=\"null\"\n mask table=\"staging.*\" with=\"redact\"\n}\n",
        );
        let codes_: Vec<&str> = d.iter().map(|d| d.code).collect();
        assert!(codes_.contains(&codes::MASK_CONFLICT), "{d:?}");
        let conflict = d.iter().find(|d| d.code == codes::MASK_CONFLICT).unwrap();
        assert!(
            conflict.message.contains("`null` wins"),
            "{}",
            conflict.message
        );
        let empty: Vec<_> = d
            .iter()
            .filter(|d| d.code == codes::EMPTY_SELECTION)
            .collect();
        assert_eq!(empty.len(), 1, "{d:?}");
        assert!(empty[0].message.contains("no column role `a` can read"));
    }
}
