//! The `.pgt` writer, reader and `decide()`: round trips, determinism, corruption.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests and benches fail loudly

use pgate_core::class::{ClassSet, StatementClass as C};
use pgate_core::facts::{
    Clause, ColumnName, ColumnRef, Facts, FunctionRef, QualifiedName, TableAccess,
};
use pgate_core::table::model::*;
use pgate_core::table::{Decision, DenyReason, LoadError, Table, write};

fn rule(line: u32, kind: RuleKind, role: &str, text: &str) -> RuleInfo {
    RuleInfo {
        file: "roles.kdl".into(),
        line,
        column: 5,
        kind,
        role: role.into(),
        text: text.into(),
    }
}

fn cols(names: &[&str]) -> Vec<ColumnDecl> {
    names
        .iter()
        .map(|n| ColumnDecl {
            name: (*n).into(),
            tags: vec![],
        })
        .collect()
}

fn allow(rule: u32, columns: ColumnAccess) -> Cell {
    Cell {
        effect: Effect::Allow,
        rule: Some(rule),
        columns,
        denied_columns: vec![],
        denied_columns_rule: None,
    }
}

/// analyst: select orders (all columns), select customers (id, name), ssn denied;
/// class-level select and transaction allowed; pg_catalog.* functions allowed except
/// pg_read_file; staging.* tables readable by pattern; email masked; limits.
fn sample() -> CompiledPolicy {
    let catalog = Catalog {
        aliases: vec![],
        tables: vec![
            TableDecl {
                schema: "public".into(),
                name: "orders".into(),
                columns: cols(&["id", "customer_id", "total"]),
                tags: vec![],
            },
            TableDecl {
                schema: "public".into(),
                name: "customers".into(),
                columns: cols(&["id", "name", "email", "ssn"]),
                tags: vec!["pii".into()],
            },
        ],
        functions: vec![
            FunctionDecl {
                schema: "pg_catalog".into(),
                name: "pg_read_file".into(),
                tags: vec![],
                overloads: None,
            },
            FunctionDecl {
                schema: "pg_catalog".into(),
                name: "lower".into(),
                tags: vec![],
                overloads: None,
            },
        ],
    };
    let rules = vec![
        rule(
            3,
            RuleKind::Allow,
            "analyst",
            "allow \"select\" table=\"public.orders\"",
        ),
        rule(
            4,
            RuleKind::Allow,
            "analyst",
            "allow \"select\" table=\"public.customers\"",
        ),
        rule(
            7,
            RuleKind::Deny,
            "analyst",
            "deny \"select\" table=\"public.customers\" { columns \"ssn\" }",
        ),
        rule(
            9,
            RuleKind::Allow,
            "analyst",
            "allow-function \"pg_catalog.*\"",
        ),
        rule(
            10,
            RuleKind::Deny,
            "analyst",
            "deny-function \"pg_catalog.pg_read_file\"",
        ),
        rule(11, RuleKind::Mask, "analyst", "mask …"),
        rule(12, RuleKind::Limit, "analyst", "limit rows=100"),
        rule(
            13,
            RuleKind::Allow,
            "analyst",
            "allow \"select\" table=\"staging.*\"",
        ),
        rule(14, RuleKind::Allow, "analyst", "allow \"transaction\""),
        rule(20, RuleKind::Allow, "admin", "allow \"*\" table=\"*\""),
    ];
    let analyst = CompiledRole {
        groups: None,
        name: "analyst".into(),
        members: vec![Membership {
            claim: "groups".into(),
            value: "data-analysts".into(),
        }],
        cells: vec![
            CellEntry {
                class: C::Select,
                table: Some(0),
                cell: allow(0, ColumnAccess::All),
            },
            CellEntry {
                class: C::Select,
                table: Some(1),
                cell: Cell {
                    effect: Effect::Allow,
                    rule: Some(1),
                    columns: ColumnAccess::Only(vec![0, 1, 2]),
                    denied_columns: vec![3],
                    denied_columns_rule: Some(2),
                },
            },
            CellEntry {
                class: C::Select,
                table: None,
                cell: allow(0, ColumnAccess::All),
            },
            CellEntry {
                class: C::Transaction,
                table: None,
                cell: allow(8, ColumnAccess::All),
            },
        ],
        functions: vec![(0, Effect::Deny, Some(4)), (1, Effect::Allow, Some(3))],
        patterns: vec![
            PatternRule {
                kind: PatternKind::Table,
                classes: ClassSet::single(C::Select),
                pattern: "staging.*".into(),
                effect: Effect::Allow,
                rule: 7,
            },
            PatternRule {
                kind: PatternKind::Function,
                classes: ClassSet::ALL,
                pattern: "pg_catalog.*".into(),
                effect: Effect::Allow,
                rule: 3,
            },
        ],
        masks: vec![MaskEntry {
            table: 1,
            column: 2,
            kind: MaskKind::Redact,
            rule: 5,
            predicates: false,
        }],
        limits: Limits {
            max_rows: Some(100),
            max_bytes: Some(1 << 20),
            rule: Some(6),
        },
        token_use: TokenUse {
            max_sessions: Some(3),
            max_concurrent: Some(1),
            require_certificate: true,
            rule: Some(6),
        },
        rates: vec![RateLimit {
            bytes_per_second: 1 << 20,
            burst_bytes: 8 << 20,
            scope: RateScope::Identity,
            on_exceed: OnExceed::Throttle,
            rule: 6,
        }],
        budgets: vec![Budget {
            max_rows: Some(10_000),
            max_bytes: None,
            window_secs: 86_400,
            rule: 6,
        }],
        delegation: Delegation {
            max_depth: Some(3),
            rule: Some(6),
            variant: None,
        },
    };
    let admin = CompiledRole {
        groups: None,
        name: "admin".into(),
        members: vec![],
        cells: C::ALL
            .iter()
            .filter(|c| **c != C::Unknown)
            .flat_map(|c| {
                [None, Some(0), Some(1)].into_iter().map(|t| CellEntry {
                    class: *c,
                    table: t,
                    cell: allow(9, ColumnAccess::All),
                })
            })
            .collect(),
        functions: vec![],
        patterns: vec![PatternRule {
            kind: PatternKind::Function,
            classes: ClassSet::ALL,
            pattern: "*".into(),
            effect: Effect::Allow,
            rule: 9,
        }],
        masks: vec![],
        limits: Limits::default(),
        token_use: Default::default(),
        rates: vec![],
        budgets: vec![],
        delegation: Default::default(),
    };
    CompiledPolicy {
        source_digest: [7; 32],
        catalog,
        rules,
        roles: vec![analyst, admin],
    }
}

struct Stmt<'a> {
    classes: &'a [C],
    tables: &'a [(C, &'a str, &'a str)],
    columns: &'a [(Option<usize>, Option<&'a str>, bool)],
    functions: &'a [(&'a str, &'a str)],
}

/// Builds facts by hand (the classifier is tested on its own).
fn facts(s: &Stmt<'_>) -> Facts {
    let mut f = Facts::default();
    f.begin_statement(0, 1).unwrap();
    for c in s.classes {
        f.current_mut().unwrap().classes.insert(*c);
    }
    let mut all = 0u64;
    for (class, schema, name) in s.tables {
        let schema = f.push_name(schema).unwrap();
        let name = f.push_name(name).unwrap();
        let i = f
            .push_table(TableAccess {
                class: *class,
                name: QualifiedName { schema, name },
            })
            .unwrap();
        all |= 1 << i;
    }
    for (table, name, qualified) in s.columns {
        let name = match name {
            Some(n) => ColumnName::Named(f.push_name(n).unwrap()),
            None => ColumnName::All,
        };
        f.push_column(ColumnRef {
            name,
            candidates: table.map(|t| 1u64 << t).unwrap_or(all),
            whole_row: 0,
            qualified: *qualified,
            clause: Clause::SelectList,
            output_alias: false,
            plain: true,
        })
        .unwrap();
    }
    for (schema, name) in s.functions {
        let schema = f.push_name(schema).unwrap();
        let name = f.push_name(name).unwrap();
        f.push_function(FunctionRef::call(QualifiedName { schema, name }))
            .unwrap();
    }
    f
}

#[test]
fn round_trip_lookups() {
    let bytes = write(&sample()).expect("the policy lays out");
    let t = Table::parse(&bytes).unwrap();
    assert_eq!(t.role_count(), 2);
    let analyst = t.role("analyst").unwrap();
    assert_eq!(t.role_name(analyst), "analyst");
    assert!(t.role("nobody").is_none());
    assert_eq!(
        t.memberships(analyst).collect::<Vec<_>>(),
        vec![("groups", "data-analysts")]
    );
    let cust = t.table_id("public", "customers").unwrap();
    let orders = t.table_id("public", "orders").unwrap();
    assert!(t.table_id("public", "customer").is_none());
    assert!(t.table_id("publi", "ccustomers").is_none());
    assert_eq!(t.table_name(cust), ("public", "customers"));
    let ssn = t.column_id(cust, "ssn").unwrap();
    let email = t.column_id(cust, "email").unwrap();
    assert!(t.column_id(orders, "ssn").is_none());
    assert_eq!(t.column_name(cust, ssn), "ssn");
    assert_eq!(
        t.column_allowed(analyst, C::Select, cust, ssn),
        (false, Some(2))
    );
    assert_eq!(
        t.column_allowed(analyst, C::Select, cust, email),
        (true, Some(1))
    );
    assert_eq!(t.cell(analyst, C::Delete, Some(cust)), (false, None));
    assert_eq!(t.cell(analyst, C::Transaction, None), (true, Some(8)));
    assert_eq!(t.mask(analyst, cust, email), Some((MaskKind::Redact, 5)));
    assert_eq!(t.mask(analyst, cust, ssn), None);
    assert_eq!(t.limits(analyst).max_rows, Some(100));
    assert_eq!(
        t.token_use(analyst),
        TokenUse {
            max_sessions: Some(3),
            max_concurrent: Some(1),
            require_certificate: true,
            rule: Some(6)
        }
    );
    assert_eq!(t.rates(analyst).count(), 1);
    assert_eq!(
        t.function_allowed(analyst, "pg_catalog", "pg_read_file"),
        (false, Some(4))
    );
    assert_eq!(
        t.function_allowed(analyst, "pg_catalog", "lower"),
        (true, Some(3))
    );
    // Undeclared: decided by patterns.
    assert_eq!(
        t.function_allowed(analyst, "pg_catalog", "upper"),
        (true, Some(3))
    );
    assert_eq!(t.function_allowed(analyst, "public", "evil"), (false, None));
    let r = t.rule(2).unwrap();
    assert_eq!((r.file, r.line, r.kind), ("roles.kdl", 7, RuleKind::Deny));
    assert_eq!(t.source_digest(), [7; 32]);
}

/// Narrow tables are searched column by column, wide ones through the name index: both
/// find every column at its position and nothing else.
#[test]
fn column_lookup_narrow_and_wide_tables() {
    for width in [1usize, 3, 8, 9, 20, 70] {
        let names: Vec<String> = (0..width).map(|i| format!("c{}_{}", i % 7, i)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut p = sample();
        p.catalog.tables.push(TableDecl {
            schema: "public".into(),
            name: "wide".into(),
            columns: cols(&refs),
            tags: vec![],
        });
        let bytes = write(&p).expect("the policy lays out");
        let t = Table::parse(&bytes).unwrap();
        let w = t.table_id("public", "wide").unwrap();
        assert_eq!(t.column_count(w) as usize, width);
        for (i, n) in names.iter().enumerate() {
            let c = t.column_id(w, n).unwrap_or_else(|| panic!("{width}: {n}"));
            assert_eq!(t.column_name(w, c), n.as_str(), "{width}");
            assert!(t.column_id(w, &format!("{n}x")).is_none());
            assert!(t.column_id(w, &n[..n.len() - 1]).is_none() || i >= 10);
        }
        assert!(t.column_id(w, "").is_none());
        assert!(t.column_id(w, "id").is_none(), "another table's column");
    }
}

#[test]
fn decide_statements() {
    let bytes = write(&sample()).expect("the policy lays out");
    let t = Table::parse(&bytes).unwrap();
    let analyst = t.role("analyst").unwrap();
    let admin = t.role("admin").unwrap();
    let cust = ("public", "customers");

    // select id, name from customers → allowed, masked (email mask on the table)
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, cust.0, cust.1)],
        columns: &[(None, Some("id"), false), (None, Some("name"), false)],
        functions: &[("pg_catalog", "lower")],
    });
    let v = t.decide_all(analyst, &f);
    assert!(v.is_allow(), "{v:?}");
    assert!(v.masked);
    assert_eq!(v.limits.max_rows, Some(100));

    // ssn in any clause → denied by the column deny, naming rule 2
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, cust.0, cust.1)],
        columns: &[(None, Some("id"), false), (Some(0), Some("ssn"), true)],
        functions: &[],
    });
    let v = t.decide_all(analyst, &f);
    assert!(matches!(
        v.decision,
        Decision::Deny {
            rule: Some(2),
            reason: DenyReason::Column { column: 1, .. },
            ..
        }
    ));

    // select * from customers → denied (not every column is allowed)
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, cust.0, cust.1)],
        columns: &[(None, None, false)],
        functions: &[],
    });
    assert!(!t.decide_all(analyst, &f).is_allow());
    assert!(t.decide_all(admin, &f).is_allow());

    // select * from orders → allowed
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, "public", "orders")],
        columns: &[(None, None, false)],
        functions: &[],
    });
    assert!(t.decide_all(analyst, &f).is_allow());

    // delete from orders → default deny (no rule)
    let f = facts(&Stmt {
        classes: &[C::Delete],
        tables: &[(C::Delete, "public", "orders")],
        columns: &[],
        functions: &[],
    });
    assert!(matches!(
        t.decide_all(analyst, &f).decision,
        Decision::Deny {
            rule: None,
            reason: DenyReason::Table {
                class: C::Delete,
                access: 0
            },
            ..
        }
    ));

    // undeclared tables: staging.* allowed by pattern, public.secret not
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, "staging", "events")],
        columns: &[(None, None, false)],
        functions: &[],
    });
    assert!(t.decide_all(analyst, &f).is_allow());
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, "public", "secret")],
        columns: &[],
        functions: &[],
    });
    assert!(matches!(
        t.decide_all(analyst, &f).decision,
        Decision::Deny {
            reason: DenyReason::UndeclaredTable { .. },
            ..
        }
    ));

    // functions
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[],
        columns: &[],
        functions: &[("pg_catalog", "pg_read_file")],
    });
    assert!(matches!(
        t.decide_all(analyst, &f).decision,
        Decision::Deny {
            rule: Some(4),
            reason: DenyReason::Function { function: 0 },
            ..
        }
    ));

    // unknown: denied for everyone (admin's "*" does not include unknown)
    let f = facts(&Stmt {
        classes: &[C::Unknown],
        tables: &[],
        columns: &[],
        functions: &[],
    });
    assert!(matches!(
        t.decide_all(admin, &f).decision,
        Decision::Deny {
            reason: DenyReason::UnknownStatement,
            ..
        }
    ));

    // table-free classes: transaction allowed, session not
    let f = facts(&Stmt {
        classes: &[C::Transaction],
        tables: &[],
        columns: &[],
        functions: &[],
    });
    assert!(t.decide_all(analyst, &f).is_allow());
    let f = facts(&Stmt {
        classes: &[C::Session],
        tables: &[],
        columns: &[],
        functions: &[],
    });
    assert!(matches!(
        t.decide_all(analyst, &f).decision,
        Decision::Deny {
            reason: DenyReason::Class(C::Session),
            ..
        }
    ));
}

#[test]
fn build_is_deterministic_and_independent_of_input_order() {
    let p = sample();
    let a = write(&p).expect("the policy lays out");
    assert_eq!(a, write(&p).expect("the policy lays out"));
    // Shuffle the catalog (remapping indices), roles, cells, members and patterns.
    let mut q = p.clone();
    q.catalog.tables.reverse();
    q.catalog.functions.reverse();
    for r in &mut q.roles {
        for c in &mut r.cells {
            c.table = c.table.map(|t| 1 - t);
        }
        r.cells.reverse();
        r.functions = r
            .functions
            .iter()
            .map(|(f, e, ru)| (1 - f, *e, *ru))
            .collect();
        r.patterns.reverse();
        for m in &mut r.masks {
            m.table = 1 - m.table;
        }
    }
    q.roles.reverse();
    assert_eq!(a, write(&q).expect("the policy lays out"));
}

#[test]
fn every_flipped_byte_and_every_truncation_is_a_typed_error() {
    let bytes = write(&sample()).expect("the policy lays out");
    assert!(Table::parse(&bytes).is_ok());
    let mut copy = bytes.clone();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            copy[i] ^= bit;
            assert!(
                Table::parse(&copy).is_err(),
                "flip of bit {bit:#x} at byte {i} was accepted"
            );
            copy[i] ^= bit;
        }
    }
    for len in 0..bytes.len() {
        match Table::parse(&bytes[..len]) {
            Err(LoadError::Truncated(_) | LoadError::BadMagic) => {}
            other => panic!("truncation at {len}: {other:?}"),
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Table::parse(&longer),
        Err(LoadError::Malformed(_))
    ));
}

#[test]
fn wrong_version_and_magic_are_named() {
    let mut bytes = write(&sample()).expect("the policy lays out");
    // Tables of earlier formats (3: one cell row per table; 4: no sessions per token;
    // 5: no delegation; 6: no budgets) are refused by name.
    for old in [3u8, 4, 5, 6] {
        bytes[8] = old;
        let e = Table::parse(&bytes).unwrap_err();
        assert!(matches!(
            e,
            LoadError::Version { found, expected: 7 } if found == u32::from(old)
        ));
        assert!(
            e.to_string().contains(&format!("version {old}")) && e.to_string().contains("rebuild")
        );
    }
    bytes[8] = 99;
    assert!(matches!(
        Table::parse(&bytes),
        Err(LoadError::Version { found: 99, .. })
    ));
    bytes[0] = b'X';
    assert!(matches!(Table::parse(&bytes), Err(LoadError::BadMagic)));
    let msg = LoadError::Checksum.to_string();
    assert!(msg.contains("corrupt") && msg.contains("rebuild"));
}

#[test]
fn empty_policy_denies_everything() {
    let p = CompiledPolicy {
        source_digest: [0; 32],
        catalog: Catalog::default(),
        rules: vec![],
        roles: vec![],
    };
    let bytes = write(&p).expect("the policy lays out");
    let t = Table::parse(&bytes).unwrap();
    assert!(t.role("x").is_none());
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[],
        columns: &[],
        functions: &[],
    });
    assert!(!t.decide_all(pgate_core::table::RoleId(0), &f).is_allow());
}

#[test]
fn unqualified_functions_must_be_allowed_under_every_declared_schema() {
    let mut p = sample();
    // public.lower shadows nothing by default, but a search_path could put it first.
    p.catalog.functions.push(FunctionDecl {
        schema: "public".into(),
        name: "lower".into(),
        tags: vec![],
        overloads: None,
    });
    p.roles[0].functions.push((2, Effect::Deny, Some(4)));
    let bytes = write(&p).expect("the policy lays out");
    let t = Table::parse(&bytes).unwrap();
    let analyst = t.role("analyst").unwrap();
    // Qualified: each decided on its own.
    assert!(t.function_allowed(analyst, "pg_catalog", "lower").0);
    assert!(!t.function_allowed(analyst, "public", "lower").0);
    // Unqualified: denied, because public.lower is declared and denied.
    assert_eq!(
        t.unqualified_function_allowed(analyst, "lower"),
        (false, Some(4))
    );
    // Unqualified upper: only pg_catalog's pattern applies.
    assert!(t.unqualified_function_allowed(analyst, "upper").0);
    // Through decide(): an empty schema means unqualified.
    let mut f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[],
        columns: &[],
        functions: &[],
    });
    let name = f.push_name("lower").unwrap();
    f.push_function(FunctionRef::call(QualifiedName {
        schema: pgate_core::facts::NameRef::EMPTY,
        name,
    }))
    .unwrap();
    assert!(matches!(
        t.decide_all(analyst, &f).decision,
        Decision::Deny {
            reason: DenyReason::Function { function: 0 },
            ..
        }
    ));
}

#[test]
fn undeclared_columns_are_denied_on_column_restricted_grants_only() {
    let bytes = write(&sample()).expect("the policy lays out");
    let t = Table::parse(&bytes).unwrap();
    let analyst = t.role("analyst").unwrap();
    // customers: analyst may read id, name, email — `SSN` (quoted, upper case) is not a
    // declared column and must not pass as "unknown".
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, "public", "customers")],
        columns: &[(None, Some("SSN"), false)],
        functions: &[],
    });
    assert!(matches!(
        t.decide_all(analyst, &f).decision,
        Decision::Deny {
            reason: DenyReason::Column { column: 0, .. },
            ..
        }
    ));
    // orders: every column is granted, so a column the catalog does not know is allowed
    // (the grant covers it, and PostgreSQL rejects it if it does not exist).
    let f = facts(&Stmt {
        classes: &[C::Select],
        tables: &[(C::Select, "public", "orders")],
        columns: &[(None, Some("note"), false)],
        functions: &[],
    });
    assert!(t.decide_all(analyst, &f).is_allow());
}

/// The analyst with delegated variants: any chain, one naming `bot`, depth ≥ 2, and depth
/// ≥ 2 naming `bot` (what the compiler makes from three blocks).
fn with_variants() -> CompiledPolicy {
    let mut p = sample();
    let base = p.roles[0].clone();
    let variant = |name: &str, min_depth: u32, actors: &[&str], rows: u64| {
        let mut v = base.clone();
        v.name = name.into();
        v.members = vec![];
        v.limits.max_rows = Some(rows);
        v.delegation = Delegation {
            max_depth: None,
            rule: Some(6),
            variant: Some(Variant {
                base: 0,
                min_depth,
                actors: actors.iter().map(|a| a.to_string()).collect(),
            }),
        };
        v
    };
    // Out of name order on purpose: the writer sorts roles and renumbers the base.
    p.roles.push(variant(
        "zz analyst [delegated depth>=2 actor=bot]",
        2,
        &["bot"],
        4,
    ));
    p.roles.push(variant("analyst [delegated]", 1, &[], 1));
    p.roles
        .push(variant("analyst [delegated actor=bot]", 1, &["bot"], 2));
    p.roles
        .push(variant("analyst [delegated depth>=2]", 2, &[], 3));
    p
}

#[test]
fn a_delegation_chain_picks_the_variant_with_the_largest_depth_then_the_most_actors() {
    let bytes = write(&with_variants()).expect("the policy lays out");
    let t = Table::parse(&bytes).unwrap();
    let analyst = t.role("analyst").unwrap();
    let pick = |chain: &[&str]| {
        t.role_for_chain(analyst, chain)
            .map(|r| t.role_name(r).to_string())
    };
    assert_eq!(pick(&[]).unwrap(), "analyst", "no chain: the granted role");
    assert_eq!(pick(&["agent"]).unwrap(), "analyst [delegated]");
    assert_eq!(pick(&["bot"]).unwrap(), "analyst [delegated actor=bot]");
    assert_eq!(
        pick(&["tool", "agent"]).unwrap(),
        "analyst [delegated depth>=2]"
    );
    // `bot` anywhere in the chain, not only as the current actor.
    assert_eq!(
        pick(&["tool", "bot"]).unwrap(),
        "zz analyst [delegated depth>=2 actor=bot]"
    );
    let refused = t
        .role_for_chain(analyst, &["a", "b", "c", "d"])
        .unwrap_err();
    assert_eq!(
        (refused.depth, refused.max_depth, refused.rule),
        (4, 3, Some(6))
    );
    assert!(
        refused.describe(&t, analyst).contains(
            "at most 3 actor(s), and this token's act claim names 4 (rule at roles.kdl:12)"
        ),
        "{}",
        refused.describe(&t, analyst)
    );
    // Variants are never granted and name their base.
    let v = t.role("analyst [delegated actor=bot]").unwrap();
    assert_eq!(t.variant_base(v), Some(analyst));
    assert_eq!(t.memberships(v).count(), 0);
    let (depth, actors) = t.variant_condition(v);
    assert_eq!((depth, actors.collect::<Vec<_>>()), (1, vec!["bot"]));
    assert_eq!(t.max_delegation_depth(analyst), Some((3, Some(6))));
    assert_eq!(
        t.budgets(analyst).collect::<Vec<_>>(),
        vec![Budget {
            max_rows: Some(10_000),
            max_bytes: None,
            window_secs: 86_400,
            rule: 6
        }]
    );
    assert!(
        t.features()
            .any(|(f, _)| f == pgate_core::table::Feature::Budget)
    );
    assert_eq!(t.variant_base(analyst), None);
    assert!(
        t.features()
            .any(|(f, _)| f == pgate_core::table::Feature::Delegation),
        "a table with delegation names the feature"
    );
}

#[test]
fn a_variant_of_a_variant_or_with_members_is_refused_at_load() {
    let mut p = with_variants();
    // "analyst [delegated]" (index 5 in `p.roles`) made a variant of another variant.
    p.roles[5].delegation.variant.as_mut().unwrap().base = 6;
    assert!(matches!(
        Table::parse(&write(&p).unwrap()),
        Err(LoadError::Malformed(_))
    ));
    let mut p = with_variants();
    p.roles[5].members = vec![Membership {
        claim: "groups".into(),
        value: "x".into(),
    }];
    assert!(matches!(
        Table::parse(&write(&p).unwrap()),
        Err(LoadError::Malformed(_))
    ));
}
