//! Property tests over random policies: the combining semantics the language promises.
//!
//! Policies are generated as KDL text (so parsing and resolution are exercised too), over
//! small random catalogs, roles with inheritance, and allow/deny rules with random class,
//! table and column selectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pgate_compile::evaluate::Evaluator;
use pgate_compile::reference::Reference;
use pgate_compile::{Compilation, Sources, compile};
use pgate_core::class::StatementClass;
use proptest::prelude::*;

const COLS: [&str; 4] = ["id", "a", "b", "c"];
const CLASSES: [&str; 6] = [
    "select",
    "insert",
    "copy-out",
    "transaction",
    "unknown",
    "*",
];

#[derive(Clone, Debug)]
struct GTable {
    schema: u8,
    cols: Vec<bool>,    // which of COLS[1..] exist (id always does)
    col_tag: Vec<u8>,   // per COLS entry: 0 none, 1 "p", 2 "q"
    tags: (bool, bool), // "x", "y"
}

#[derive(Clone, Debug)]
enum GTarget {
    None,
    Exact(usize),
    SchemaGlob(u8),
    Star,
    Tag(bool),
}

#[derive(Clone, Debug)]
enum GCols {
    All,
    Names(Vec<usize>),
    Tag(bool),
}

#[derive(Clone, Debug)]
enum GRule {
    Access {
        allow: bool,
        classes: Vec<usize>,
        target: GTarget,
        cols: GCols,
    },
    Function {
        allow: bool,
        which: u8, // 0 pattern pg_catalog.*, 1 exact f1, 2 tag, 3 star
    },
}

#[derive(Clone, Debug)]
struct GRole {
    parent: Option<usize>,
    rules: Vec<GRule>,
}

#[derive(Clone, Debug)]
struct GPolicy {
    tables: Vec<GTable>,
    roles: Vec<GRole>,
}

fn table_strategy() -> impl Strategy<Value = GTable> {
    (
        0u8..2,
        prop::collection::vec(any::<bool>(), 3),
        prop::collection::vec(0u8..3, 4),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(|(schema, cols, col_tag, tags)| GTable {
            schema,
            cols,
            col_tag,
            tags,
        })
}

fn target_strategy(ntables: usize) -> impl Strategy<Value = GTarget> {
    prop_oneof![
        Just(GTarget::None),
        (0..ntables).prop_map(GTarget::Exact),
        (0u8..2).prop_map(GTarget::SchemaGlob),
        Just(GTarget::Star),
        any::<bool>().prop_map(GTarget::Tag),
    ]
}

fn cols_strategy() -> impl Strategy<Value = GCols> {
    prop_oneof![
        2 => Just(GCols::All),
        1 => prop::collection::vec(0usize..4, 1..3).prop_map(GCols::Names),
        1 => any::<bool>().prop_map(GCols::Tag),
    ]
}

fn rule_strategy(ntables: usize) -> impl Strategy<Value = GRule> {
    prop_oneof![
        5 => (
            any::<bool>(),
            prop::collection::vec(0usize..CLASSES.len(), 1..3),
            target_strategy(ntables),
            cols_strategy(),
        )
            .prop_map(|(allow, classes, target, cols)| GRule::Access {
                allow,
                classes,
                target,
                cols,
            }),
        1 => (any::<bool>(), 0u8..4).prop_map(|(allow, which)| GRule::Function { allow, which }),
    ]
}

fn policy_strategy() -> impl Strategy<Value = GPolicy> {
    prop::collection::vec(table_strategy(), 1..4).prop_flat_map(|tables| {
        let n = tables.len();
        let roles = prop::collection::vec(
            (
                prop::option::of(0usize..4),
                prop::collection::vec(rule_strategy(n), 0..6),
            ),
            1..4,
        )
        .prop_map(|roles| {
            roles
                .into_iter()
                .enumerate()
                // Parents only among earlier roles: no cycles.
                .map(|(i, (p, rules))| GRole {
                    parent: p.filter(|p| *p < i),
                    rules,
                })
                .collect::<Vec<_>>()
        });
        (Just(tables), roles).prop_map(|(tables, roles)| GPolicy { tables, roles })
    })
}

/// Many tables of few shapes (so several fall into one class), rules naming only the
/// first two exactly.
fn wide_policy_strategy() -> impl Strategy<Value = GPolicy> {
    let shape =
        (0u8..2, 0u8..2, 0u8..2, any::<bool>()).prop_map(|(schema, cols, col_tags, x)| GTable {
            schema,
            cols: if cols == 0 {
                vec![true, false, true]
            } else {
                vec![true, true, true]
            },
            col_tag: if col_tags == 0 {
                vec![0, 1, 0, 2]
            } else {
                vec![0, 0, 1, 0]
            },
            tags: (x, false),
        });
    (
        prop::collection::vec(shape, 6..14),
        prop::collection::vec(
            (
                prop::option::of(0usize..3),
                prop::collection::vec(rule_strategy(2), 0..6),
            ),
            1..3,
        ),
    )
        .prop_map(|(tables, roles)| GPolicy {
            tables,
            roles: roles
                .into_iter()
                .enumerate()
                .map(|(i, (p, rules))| GRole {
                    parent: p.filter(|p| *p < i),
                    rules,
                })
                .collect(),
        })
}

fn table_name(p: &GPolicy, i: usize) -> String {
    format!("s{}.t{i}", p.tables[i].schema)
}

fn table_has(t: &GTable, col: usize) -> bool {
    col == 0 || t.cols[col - 1]
}

fn render_catalog(p: &GPolicy, reverse: bool) -> String {
    let mut out = String::new();
    // A table carrying every tag and column name, so every selector resolves.
    out.push_str(
        "table \"s9.meta\" {\n columns \"id\" \"a\" \"b\"\n column \"c\" { tags \"p\" \"q\" }\n tags \"x\" \"y\"\n}\n",
    );
    out.push_str("function \"pg_catalog.f1\" { tags \"fx\" }\nfunction \"pg_catalog.f2\"\nfunction \"other.f3\"\n");
    let mut order: Vec<usize> = (0..p.tables.len()).collect();
    if reverse {
        order.reverse();
    }
    for i in order {
        let t = &p.tables[i];
        let _ = writeln!(out, "table \"{}\" {{", table_name(p, i));
        for (ci, c) in COLS.iter().enumerate() {
            if !table_has(t, ci) {
                continue;
            }
            match t.col_tag[ci] {
                0 => {
                    let _ = writeln!(out, "  columns \"{c}\"");
                }
                1 => {
                    let _ = writeln!(out, "  column \"{c}\" {{ tags \"p\" }}");
                }
                _ => {
                    let _ = writeln!(out, "  column \"{c}\" {{ tags \"q\" }}");
                }
            }
        }
        let mut tags = Vec::new();
        if t.tags.0 {
            tags.push("\"x\"");
        }
        if t.tags.1 {
            tags.push("\"y\"");
        }
        if !tags.is_empty() {
            let _ = writeln!(out, "  tags {}", tags.join(" "));
        }
        out.push_str("}\n");
    }
    out
}

fn render_rule(p: &GPolicy, r: &GRule) -> String {
    match r {
        GRule::Function { allow, which } => {
            let kw = if *allow {
                "allow-function"
            } else {
                "deny-function"
            };
            match which {
                0 => format!("{kw} \"pg_catalog.*\""),
                1 => format!("{kw} \"pg_catalog.f1\""),
                2 => format!("{kw} tag=\"fx\""),
                _ => format!("{kw} \"*\""),
            }
        }
        GRule::Access {
            allow,
            classes,
            target,
            cols,
        } => {
            let mut s = String::from(if *allow { "allow" } else { "deny" });
            for c in classes {
                let _ = write!(s, " \"{}\"", CLASSES[*c]);
            }
            match target {
                GTarget::None => {}
                GTarget::Exact(i) => {
                    let _ = write!(s, " table=\"{}\"", table_name(p, *i));
                }
                GTarget::SchemaGlob(g) => {
                    let _ = write!(s, " table=\"s{g}.*\"");
                }
                GTarget::Star => s.push_str(" table=\"*\""),
                GTarget::Tag(x) => {
                    let _ = write!(s, " tag=\"{}\"", if *x { "x" } else { "y" });
                }
            }
            match cols {
                GCols::All => {}
                GCols::Names(names) => {
                    // Exact tables only name their own columns.
                    let names: Vec<usize> = match target {
                        GTarget::Exact(i) => {
                            let v: Vec<usize> = names
                                .iter()
                                .copied()
                                .filter(|c| table_has(&p.tables[*i], *c))
                                .collect();
                            if v.is_empty() { vec![0] } else { v }
                        }
                        _ => names.clone(),
                    };
                    s.push_str(" { columns");
                    for c in names {
                        let _ = write!(s, " \"{}\"", COLS[c]);
                    }
                    s.push_str(" }");
                }
                GCols::Tag(x) => {
                    let _ = write!(s, " {{ column-tag \"{}\" }}", if *x { "p" } else { "q" });
                }
            }
            s
        }
    }
}

/// Renders the policy; `perm` reorders and `dup` duplicates rules (semantics must not move).
fn render(p: &GPolicy, shuffle: Option<u64>) -> Vec<(String, String)> {
    render_with(p, shuffle, "")
}

/// [`render`], with `r0_extra` written into role `r0`.
fn render_with(p: &GPolicy, shuffle: Option<u64>, r0_extra: &str) -> Vec<(String, String)> {
    let mut roles = String::new();
    let mut order: Vec<usize> = (0..p.roles.len()).collect();
    let mut rng = shuffle.unwrap_or(0) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    if shuffle.is_some() {
        order.reverse();
    }
    for ri in order {
        let role = &p.roles[ri];
        let _ = writeln!(roles, "role \"r{ri}\" {{");
        if let Some(parent) = role.parent {
            let _ = writeln!(roles, "  inherits \"r{parent}\"");
        }
        if ri == 0 {
            roles.push_str(r0_extra);
        }
        let mut rules: Vec<String> = role.rules.iter().map(|r| render_rule(p, r)).collect();
        if shuffle.is_some() {
            // Fisher–Yates, then duplicate some rules.
            for i in (1..rules.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                rules.swap(i, j);
            }
            let extra: Vec<String> = rules.iter().filter(|_| next() % 3 == 0).cloned().collect();
            rules.extend(extra);
        }
        for r in rules {
            let _ = writeln!(roles, "  {r}");
        }
        roles.push_str("}\n");
    }
    let catalog = render_catalog(p, shuffle.is_some());
    if shuffle.is_some() {
        vec![
            ("a/roles.kdl".into(), roles),
            ("z-catalog.kdl".into(), catalog),
        ]
    } else {
        vec![("catalog.kdl".into(), catalog), ("roles.kdl".into(), roles)]
    }
}

fn build(files: Vec<(String, String)>) -> Compilation {
    let c = compile(Sources::from_memory(files.clone()));
    assert!(
        !c.has_errors(),
        "generated policy does not compile: {:?}\n{}",
        c.diagnostics.items,
        files
            .iter()
            .map(|(n, t)| format!("--- {n}\n{t}"))
            .collect::<String>()
    );
    c
}

type Key = (String, &'static str, Option<String>, Option<String>);

/// Every cell by names: (role, class, table, column) → allowed, plus function verdicts.
fn semantics(c: &Compilation) -> BTreeMap<Key, bool> {
    let policy = c.policy.as_ref().unwrap();
    let eval = Evaluator::new(policy);
    let mut out = BTreeMap::new();
    for (ri, role) in policy.roles.iter().enumerate() {
        for class in StatementClass::ALL {
            out.insert(
                (role.name.clone(), class.name(), None, None),
                eval.allowed(ri, class, None).0,
            );
            for (ti, t) in policy.catalog.tables.iter().enumerate() {
                let tn = format!("{}.{}", t.schema, t.name);
                out.insert(
                    (role.name.clone(), class.name(), Some(tn.clone()), None),
                    eval.allowed(ri, class, Some(ti as u32)).0,
                );
                for (ci, col) in t.columns.iter().enumerate() {
                    out.insert(
                        (
                            role.name.clone(),
                            class.name(),
                            Some(tn.clone()),
                            Some(col.name.clone()),
                        ),
                        eval.column_allowed(ri, class, ti as u32, ci as u32).0,
                    );
                }
            }
        }
        for (fi, f) in policy.catalog.functions.iter().enumerate() {
            out.insert(
                (
                    role.name.clone(),
                    "function",
                    Some(format!("{}.{}", f.schema, f.name)),
                    None,
                ),
                eval.function_allowed(ri, fi as u32).0,
            );
        }
    }
    out
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// A `delegated` block compiles to a variant that decides every cell exactly as its
    /// role would with the block's rules written in, and never allows what its role does
    /// not (the block's selectors take part in folding tables into classes like any).
    #[test]
    fn a_delegated_variant_is_its_role_plus_the_block(
        p in policy_strategy(),
        block in prop::collection::vec(rule_strategy(1), 1..4),
    ) {
        let denies: Vec<String> = block
            .into_iter()
            .map(|r| match r {
                GRule::Access { classes, target, cols, .. } => {
                    GRule::Access { allow: false, classes, target, cols }
                }
                GRule::Function { which, .. } => GRule::Function { allow: false, which },
            })
            .map(|r| render_rule(&p, &r))
            .collect();
        let member = "  member claim=\"g\" value=\"x\"\n";
        let delegated = format!("{member}  delegated {{\n    {}\n  }}\n", denies.join("\n    "));
        let inline = format!("{member}  {}\n", denies.join("\n  "));
        let with_block = semantics(&build(render_with(&p, None, &delegated)));
        let written_in = semantics(&build(render_with(&p, None, &inline)));
        let mut compared = 0;
        for ((role, class, table, column), allowed) in &with_block {
            if role != "r0 [delegated]" {
                continue;
            }
            let base = ("r0".to_string(), *class, table.clone(), column.clone());
            let inline_key = base.clone();
            prop_assert_eq!(Some(allowed), written_in.get(&inline_key), "{:?}", inline_key);
            prop_assert!(!*allowed || with_block.get(&base) == Some(&true), "{:?} wider than r0", base);
            compared += 1;
        }
        prop_assert!(compared > 0, "no variant made");
    }

    /// The combined cells agree with the rule-scanning reference evaluator on every cell.
    #[test]
    fn compiled_cells_agree_with_the_reference(p in policy_strategy()) {
        let c = build(render(&p, None));
        let policy = c.policy.as_ref().unwrap();
        let eval = Evaluator::new(policy);
        let reference = Reference::new(&c.model);
        for ri in 0..policy.roles.len() {
            for class in StatementClass::ALL {
                prop_assert_eq!(eval.allowed(ri, class, None).0, reference.class_allowed(ri as u32, class),
                    "class-level {} {}", policy.roles[ri].name, class);
                for t in 0..policy.catalog.tables.len() as u32 {
                    prop_assert_eq!(eval.allowed(ri, class, Some(t)).0, reference.table_allowed(ri as u32, class, t),
                        "table {} {} {}", policy.roles[ri].name, class, t);
                    for col in 0..policy.catalog.tables[t as usize].columns.len() as u32 {
                        prop_assert_eq!(
                            eval.column_allowed(ri, class, t, col).0,
                            reference.column_allowed(ri as u32, class, t, col),
                            "column {} {} {} {}", policy.roles[ri].name, class, t, col);
                    }
                }
            }
            for f in 0..policy.catalog.functions.len() as u32 {
                prop_assert_eq!(eval.function_allowed(ri, f).0, reference.function_allowed(ri as u32, f));
            }
        }
    }

    /// The table the data plane loads (write → Table::parse) says what the cells say.
    #[test]
    fn table_bytes_agree_with_the_reference(p in policy_strategy()) {
        let c = build(render(&p, None));
        let bytes = c.table_bytes().unwrap();
        let table = pgate_core::table::Table::parse(&bytes).expect("the written table loads");
        let policy = c.policy.as_ref().unwrap();
        let reference = Reference::new(&c.model);
        for (ri, role) in policy.roles.iter().enumerate() {
            let rid = table.role(&role.name).expect("role in table");
            for class in StatementClass::ALL {
                prop_assert_eq!(table.cell(rid, class, None).0, reference.class_allowed(ri as u32, class));
                for (ti, t) in policy.catalog.tables.iter().enumerate() {
                    let tid = table.table_id(&t.schema, &t.name).expect("table in table");
                    prop_assert_eq!(table.cell(rid, class, Some(tid)).0,
                        reference.table_allowed(ri as u32, class, ti as u32),
                        "table {} {} {}.{}", role.name, class, t.schema, t.name);
                    for (ci, col) in t.columns.iter().enumerate() {
                        let cid = table.column_id(tid, &col.name).expect("column in table");
                        prop_assert_eq!(table.column_allowed(rid, class, tid, cid).0,
                            reference.column_allowed(ri as u32, class, ti as u32, ci as u32),
                            "column {} {} {}.{}.{}", role.name, class, t.schema, t.name, col.name);
                    }
                }
            }
            for (fi, f) in policy.catalog.functions.iter().enumerate() {
                prop_assert_eq!(table.function_allowed(rid, &f.schema, &f.name).0,
                    reference.function_allowed(ri as u32, fi as u32));
            }
        }
    }

    /// Folding tables into classes changes no decision: every declared table, looked up by
    /// name in the built table, decides as the rule-scanning reference decides it over the
    /// unfolded catalog (where every table is its own class).
    #[test]
    fn folding_tables_into_classes_changes_no_decision(p in wide_policy_strategy()) {
        let files = render(&p, None);
        let c = build(files.clone());
        let u = pgate_compile::compile_unpartitioned(Sources::from_memory(files));
        prop_assert!(!u.has_errors());
        let bytes = c.table_bytes().unwrap();
        let table = pgate_core::table::Table::parse(&bytes).expect("the written table loads");
        let unfolded = &u.model.catalog.tables;
        prop_assert_eq!(table.table_count() as usize, unfolded.len());
        prop_assert!(table.class_count() as usize <= unfolded.len());
        let reference = Reference::new(&u.model);
        for (ri, role) in u.model.roles.iter().enumerate() {
            let rid = table.role(&role.name).expect("role in table");
            for class in StatementClass::ALL {
                for (ti, t) in unfolded.iter().enumerate() {
                    let tid = table.table_id(&t.schema, &t.name).expect("table in table");
                    prop_assert_eq!(table.cell(rid, class, Some(tid)).0,
                        reference.table_allowed(ri as u32, class, ti as u32),
                        "table {} {} {}", role.name, class, t.qualified);
                    for (ci, col) in t.columns.iter().enumerate() {
                        let cid = table.column_id(tid, &col.name).expect("column in table");
                        prop_assert_eq!(table.column_allowed(rid, class, tid, cid).0,
                            reference.column_allowed(ri as u32, class, ti as u32, ci as u32),
                            "column {} {} {}.{}", role.name, class, t.qualified, col.name);
                    }
                }
            }
        }
    }

    /// Without allows, nothing is allowed.
    #[test]
    fn default_deny(mut p in policy_strategy()) {
        for r in &mut p.roles {
            r.rules.retain(|rule| matches!(rule, GRule::Access { allow: false, .. } | GRule::Function { allow: false, .. }));
        }
        let c = build(render(&p, None));
        prop_assert!(semantics(&c).values().all(|allowed| !allowed));
    }

    /// Whatever a deny matches is denied, whatever allows it.
    #[test]
    fn deny_beats_allow(p in policy_strategy()) {
        let c = build(render(&p, None));
        let policy = c.policy.as_ref().unwrap();
        let eval = Evaluator::new(policy);
        for (ri, role) in c.model.roles.iter().enumerate() {
            for &rule in &role.rules {
                let Some(a) = c.model.rule(rule).and_then(|r| r.access()) else { continue };
                if a.effect != pgate_core::table::model::Effect::Deny {
                    continue;
                }
                for class in a.classes.iter() {
                    for (t, cols) in a.target.tables.iter() {
                        let n = policy.catalog.tables[*t as usize].columns.len() as u32;
                        for col in 0..n {
                            if cols.as_ref().is_none_or(|s| s.contains(col)) {
                                prop_assert!(!eval.column_allowed(ri, class, *t, col).0);
                            }
                        }
                        if cols.is_none() {
                            prop_assert!(!eval.allowed(ri, class, Some(*t)).0);
                        }
                    }
                }
            }
        }
    }

    /// Reordering rules, tables and files and duplicating rules changes no verdict.
    #[test]
    fn order_and_duplication_do_not_matter(p in policy_strategy(), seed in any::<u64>()) {
        let a = build(render(&p, None));
        let b = build(render(&p, Some(seed)));
        prop_assert_eq!(semantics(&a), semantics(&b));
    }

    /// Adding an allow never removes access; adding a deny never adds any.
    #[test]
    fn rules_are_monotonic(p in policy_strategy(), extra in rule_strategy(3), role in 0usize..4) {
        let role = role % p.roles.len();
        let extra = match extra {
            GRule::Access { target: GTarget::Exact(i), allow, classes, cols } =>
                GRule::Access { target: GTarget::Exact(i % p.tables.len()), allow, classes, cols },
            other => other,
        };
        let before = semantics(&build(render(&p, None)));
        let mut q = p.clone();
        q.roles[role].rules.push(extra.clone());
        let after = semantics(&build(render(&q, None)));
        let allow = matches!(extra, GRule::Access { allow: true, .. } | GRule::Function { allow: true, .. });
        for (k, was) in &before {
            let now = after[k];
            if allow {
                prop_assert!(!was || now, "adding an allow removed {:?}", k);
            } else {
                prop_assert!(!now || *was, "adding a deny added {:?}", k);
            }
        }
    }

    /// Same sources → same bytes, whatever order the files are given in.
    #[test]
    fn build_is_deterministic(p in policy_strategy()) {
        let files = render(&p, None);
        let mut reversed = files.clone();
        reversed.reverse();
        let a = build(files).table_bytes().unwrap();
        let b = build(reversed).table_bytes().unwrap();
        prop_assert_eq!(a, b);
    }
}

const TOKENS: [&str; 30] = [
    "role",
    "table",
    "allow",
    "deny",
    "mask",
    "limit",
    "rate",
    "invariant",
    "forbid",
    "test",
    "\"select\"",
    "\"*\"",
    "\"public.t\"",
    "\"s.*\"",
    "table=",
    "tag=",
    "column=",
    "with=",
    "\"redact\"",
    "rows=",
    "bytes=",
    "\"1MiB\"",
    "5",
    "-1",
    "{",
    "}",
    ";",
    "\n",
    "columns",
    "inherits",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the compiler.
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = pgate_compile::compile_str("x.kdl", &s);
    }

    /// Token soup close to the language never panics, and every diagnostic has a location.
    #[test]
    fn token_soup_never_panics(toks in prop::collection::vec(0usize..TOKENS.len(), 0..60)) {
        let s: String = toks.iter().map(|t| TOKENS[*t]).collect::<Vec<_>>().join(" ");
        let c = pgate_compile::compile_str("x.kdl", &s);
        for d in &c.diagnostics.items {
            prop_assert!(d.primary().is_some(), "{:?}", d);
        }
    }
}
