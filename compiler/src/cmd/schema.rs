//! `pgate-compile schema --from postgres://…`: writes the catalog of a live database as
//! policy-language declarations (`table` and `function` nodes).
//!
//! - Tables, partitioned tables, views, materialized views and foreign tables become
//!   `table "schema.name"` nodes; their columns are listed in column order (`attnum`).
//! - Functions and procedures of the selected schemas become `function "schema.name"`
//!   nodes (overloads collapse into one name: policies name functions without arguments);
//!   `overloads` lists each overload's identity arguments (types schema-qualified) unless
//!   one has defaults or `VARIADIC`, so the classifier knows which unqualified calls an
//!   earlier schema of the search path hides.
//! - Tags can be kept in the database: a table, column or function comment containing
//!   `pgate-tags: pii, secret` becomes `tags "pii" "secret"`.
//! - `pg_catalog`, `information_schema`, `pg_toast*` and `pg_temp*` are left out unless a
//!   `--schema` names them.
//! - Output is sorted by schema and name and contains nothing that varies between runs
//!   (no time, no host), so it can be committed and diffed.
//!
//! Exit codes: 0 written, 2 connection, query or write failure (one line on stderr).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use super::{EXIT_USAGE, SchemaArgs};

pub fn run(args: &SchemaArgs) -> ExitCode {
    let catalog = match fetch(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = render(&catalog);
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                eprintln!("error: cannot write the schema: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
        Some(path) => {
            if let Err(e) = crate::write_atomically(path, text.as_bytes()) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
            eprintln!(
                "wrote {} table{} and {} function{} to {}",
                catalog.tables.len(),
                if catalog.tables.len() == 1 { "" } else { "s" },
                catalog.functions.len(),
                if catalog.functions.len() == 1 {
                    ""
                } else {
                    "s"
                },
                path.display()
            );
        }
    }
    ExitCode::SUCCESS
}

/// A relation as read from the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table.
    pub kind: char,
    pub tags: Vec<String>,
    /// (name, tags) in column order.
    pub columns: Vec<(String, Vec<String>)>,
}

/// A function name of one schema, all its overloads together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbFunction {
    pub tags: Vec<String>,
    /// Every overload's `pg_get_function_identity_arguments` (types schema-qualified:
    /// read with `search_path = pg_catalog`), unless one has defaults or `VARIADIC`.
    pub overloads: Option<Vec<String>>,
}

/// What `schema` writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbCatalog {
    pub database: String,
    pub schemas: Vec<String>,
    pub tables: Vec<Relation>,
    /// (schema, name) → what is known of the function.
    pub functions: BTreeMap<(String, String), DbFunction>,
    /// Objects left out, with the reason (written as comments).
    pub skipped: Vec<String>,
}

const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

fn is_system_schema(s: &str) -> bool {
    SYSTEM_SCHEMAS.contains(&s) || s.starts_with("pg_toast") || s.starts_with("pg_temp_")
}

/// The connection string with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .map(|r| ("postgres://", r))
        .or_else(|| {
            url.strip_prefix("postgresql://")
                .map(|r| ("postgresql://", r))
        })
    {
        let (scheme, rest) = rest;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{scheme}{}:***{}{}",
                    &userinfo[..colon],
                    &authority[at..],
                    redact_query(tail)
                );
            }
        }
        return format!("{scheme}{authority}{}", redact_query(tail));
    }
    // key=value form.
    url.split_whitespace()
        .map(|kv| {
            if kv.to_ascii_lowercase().starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, query) = tail.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| {
            if kv.to_ascii_lowercase().starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{path}{}", parts.join("&"))
}

/// One line: the error and its causes, without line breaks.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Connects and reads the catalog.
pub fn fetch(args: &SchemaArgs) -> Result<DbCatalog, String> {
    let shown = redact(&args.from);
    let mut config: postgres::Config = args.from.parse().map_err(|e: postgres::Error| {
        format!("invalid connection string {shown}: {}", error_chain(&e))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_password().is_none()
        && let Ok(pw) = std::env::var("PGPASSWORD")
    {
        config.password(pw);
    }
    if config.get_user().is_none()
        && let Ok(user) = std::env::var("PGUSER").or_else(|_| std::env::var("USER"))
    {
        config.user(&user);
    }
    config.application_name("pgate-compile schema");
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|e| format!("cannot connect to {shown}: {}", error_chain(&e)))?;
    let q = |client: &mut postgres::Client, sql: &str| {
        client
            .query(sql, &[])
            .map_err(|e| format!("cannot read the catalog of {shown}: {}", error_chain(&e)))
    };

    // Types in overload signatures are printed schema-qualified unless pg_catalog's.
    client
        .batch_execute("SET search_path = pg_catalog")
        .map_err(|e| format!("cannot read the catalog of {shown}: {}", error_chain(&e)))?;
    let database: String = q(&mut client, "SELECT current_database()")?
        .first()
        .map(|r| r.get(0))
        .unwrap_or_default();

    let wanted: BTreeSet<&str> = args.schemas.iter().map(String::as_str).collect();
    let keep = |schema: &str| {
        if wanted.is_empty() {
            !is_system_schema(schema)
        } else {
            wanted.contains(schema)
        }
    };

    let rels = q(
        &mut client,
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, \
                coalesce(obj_description(c.oid, 'pg_class'), '') \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         ORDER BY 1, 2",
    )?;
    let cols = q(
        &mut client,
        "SELECT n.nspname::text, c.relname::text, a.attname::text, a.attnum::int4, \
                coalesce(col_description(c.oid, a.attnum), '') \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY 1, 2, 4",
    )?;
    let mut catalog = DbCatalog {
        database,
        ..DbCatalog::default()
    };
    let mut by_name: BTreeMap<(String, String), Relation> = BTreeMap::new();
    for row in &rels {
        let schema: String = row.get(0);
        if !keep(&schema) {
            continue;
        }
        let name: String = row.get(1);
        let kind: String = row.get(2);
        let comment: String = row.get(3);
        by_name.insert(
            (schema.clone(), name.clone()),
            Relation {
                schema,
                name,
                kind: kind.chars().next().unwrap_or('r'),
                tags: tags_from_comment(&comment),
                columns: Vec::new(),
            },
        );
    }
    for row in &cols {
        let key: (String, String) = (row.get(0), row.get(1));
        if let Some(rel) = by_name.get_mut(&key) {
            let comment: String = row.get(4);
            rel.columns.push((row.get(2), tags_from_comment(&comment)));
        }
    }
    let mut schemas = BTreeSet::new();
    for ((schema, name), rel) in by_name {
        if schema.contains('.') || name.contains('.') {
            catalog.skipped.push(format!(
                "{schema:?}.{name:?}: a dot inside a schema or table name cannot be written as \"schema.name\""
            ));
            continue;
        }
        schemas.insert(schema);
        catalog.tables.push(rel);
    }

    {
        let funcs = q(
            &mut client,
            // Overloads with defaults or VARIADIC are matched by expanded argument lists:
            // their function's overloads are then not listed (NULL).
            "SELECT n.nspname::text, p.proname::text, \
                    coalesce(string_agg(obj_description(p.oid, 'pg_proc'), ' '), ''), \
                    CASE WHEN bool_and(p.pronargdefaults = 0 AND p.provariadic = 0) \
                         THEN array_agg(pg_catalog.pg_get_function_identity_arguments(p.oid)::text \
                                        ORDER BY pg_catalog.pg_get_function_identity_arguments(p.oid)) END \
             FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )?;
        for row in &funcs {
            let schema: String = row.get(0);
            // Functions of system schemas are built-ins: listed only when asked for.
            let listed = if wanted.is_empty() {
                !is_system_schema(&schema)
            } else {
                wanted.contains(schema.as_str())
            };
            if !listed {
                continue;
            }
            let name: String = row.get(1);
            if schema.contains('.') || name.contains('.') {
                catalog.skipped.push(format!(
                    "function {schema:?}.{name:?}: a dot inside a name cannot be written as \"schema.name\""
                ));
                continue;
            }
            let comment: String = row.get(2);
            let overloads: Option<Vec<String>> = row.get(3);
            schemas.insert(schema.clone());
            catalog.functions.insert(
                (schema, name),
                DbFunction {
                    tags: tags_from_comment(&comment),
                    overloads,
                },
            );
        }
    }
    catalog.schemas = if wanted.is_empty() {
        schemas.into_iter().collect()
    } else {
        wanted.iter().map(|s| s.to_string()).collect()
    };
    Ok(catalog)
}

/// Tags from a comment: `… pgate-tags: pii, secret …` (up to the end of the line or a `;`).
pub fn tags_from_comment(comment: &str) -> Vec<String> {
    let mut tags = BTreeSet::new();
    let lower = comment.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("pgate-tags:") {
        let start = from + pos + "pgate-tags:".len();
        let rest = &comment[start..];
        let end = rest.find(['\n', ';']).unwrap_or(rest.len());
        for t in rest[..end].split([',', ' ', '\t']) {
            let t = t.trim();
            if !t.is_empty() {
                tags.insert(t.to_string());
            }
        }
        from = start + end;
    }
    tags.into_iter().collect()
}

/// A KDL v2 quoted string.
pub fn kdl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control()
                || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn kind_comment(kind: char) -> Option<&'static str> {
    match kind {
        'v' => Some("view"),
        'm' => Some("materialized view"),
        'p' => Some("partitioned table"),
        'f' => Some("foreign table"),
        _ => None,
    }
}

/// Renders the catalog as KDL (deterministic).
pub fn render(c: &DbCatalog) -> String {
    const WIDTH: usize = 96;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by `pgate-compile schema` from database {}.",
        kdl_string(&c.database)
    );
    let _ = writeln!(
        s,
        "// Schemas: {}. Tables: {}. Functions: {}.",
        if c.schemas.is_empty() {
            "(none)".to_string()
        } else {
            c.schemas.join(", ")
        },
        c.tables.len(),
        c.functions.len()
    );
    let _ = writeln!(
        s,
        "// Tags come from comments containing `pgate-tags: a, b`; add the rest by hand."
    );
    for skipped in &c.skipped {
        let _ = writeln!(s, "// skipped {skipped}");
    }
    for t in &c.tables {
        s.push('\n');
        if let Some(k) = kind_comment(t.kind) {
            let _ = writeln!(s, "// {k}");
        }
        let _ = write!(
            s,
            "table {}",
            kdl_string(&format!("{}.{}", t.schema, t.name))
        );
        if t.columns.is_empty() && t.tags.is_empty() {
            s.push('\n');
            continue;
        }
        s.push_str(" {\n");
        // Runs of untagged columns go on `columns` lines (wrapped), tagged ones on their own.
        let mut line = String::new();
        let flush = |s: &mut String, line: &mut String| {
            if !line.is_empty() {
                let _ = writeln!(s, "    columns{line}");
                line.clear();
            }
        };
        for (name, tags) in &t.columns {
            if tags.is_empty() {
                let q = kdl_string(name);
                if !line.is_empty() && 12 + line.len() + 1 + q.len() > WIDTH {
                    flush(&mut s, &mut line);
                }
                line.push(' ');
                line.push_str(&q);
            } else {
                flush(&mut s, &mut line);
                let _ = writeln!(
                    s,
                    "    column {} {{ tags {} }}",
                    kdl_string(name),
                    tags.iter()
                        .map(|t| kdl_string(t))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        flush(&mut s, &mut line);
        if !t.tags.is_empty() {
            let _ = writeln!(
                s,
                "    tags {}",
                t.tags
                    .iter()
                    .map(|t| kdl_string(t))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        s.push_str("}\n");
    }
    if !c.functions.is_empty() {
        s.push('\n');
    }
    let words = |list: &[String]| {
        list.iter()
            .map(|t| kdl_string(t))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for ((schema, name), f) in &c.functions {
        let q = kdl_string(&format!("{schema}.{name}"));
        let mut children = Vec::new();
        if !f.tags.is_empty() {
            children.push(format!("tags {}", words(&f.tags)));
        }
        if let Some(o) = &f.overloads {
            children.push(format!("overloads {}", words(o)));
        }
        match children.as_slice() {
            [] => {
                let _ = writeln!(s, "function {q}");
            }
            [one] => {
                let _ = writeln!(s, "function {q} {{ {one} }}");
            }
            many => {
                let _ = writeln!(s, "function {q} {{");
                for c in many {
                    let _ = writeln!(s, "    {c}");
                }
                s.push_str("}\n");
            }
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgresql://h/db?user=u&password=pw&sslmode=require"),
            "postgresql://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact("host=h password=pw dbname=x"),
            "host=h password=*** dbname=x"
        );
    }

    #[test]
    fn tags_come_from_comments() {
        assert_eq!(
            tags_from_comment("Social security number. pgate-tags: pii, secret"),
            vec!["pii".to_string(), "secret".to_string()]
        );
        assert_eq!(
            tags_from_comment("PGATE-TAGS: pii; more text"),
            vec!["pii".to_string()]
        );
        assert!(tags_from_comment("no tags here").is_empty());
    }

    #[test]
    fn kdl_strings_escape() {
        assert_eq!(kdl_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(kdl_string("x\ny"), r#""x\ny""#);
        assert_eq!(kdl_string("\u{202e}"), r#""\u{202e}""#);
    }

    #[test]
    fn renders_sorted_declarations_that_parse() {
        let cat = DbCatalog {
            database: "shop".into(),
            schemas: vec!["public".into()],
            tables: vec![
                Relation {
                    schema: "public".into(),
                    name: "customers".into(),
                    kind: 'r',
                    tags: vec!["pii".into()],
                    columns: vec![
                        ("id".into(), vec![]),
                        ("name".into(), vec![]),
                        ("ssn".into(), vec!["pii".into(), "secret".into()]),
                        ("created_at".into(), vec![]),
                    ],
                },
                Relation {
                    schema: "public".into(),
                    name: "Weird \"name\"".into(),
                    kind: 'v',
                    tags: vec![],
                    columns: vec![("a b".into(), vec![])],
                },
            ],
            functions: [
                (
                    ("public".into(), "order_total".into()),
                    DbFunction::default(),
                ),
                (
                    ("public".into(), "f".into()),
                    DbFunction {
                        tags: vec![],
                        overloads: Some(vec!["".into(), "x integer".into()]),
                    },
                ),
            ]
            .into_iter()
            .collect(),
            skipped: vec![],
        };
        let text = render(&cat);
        assert!(text.contains("table \"public.customers\" {\n    columns \"id\" \"name\"\n    column \"ssn\" { tags \"pii\" \"secret\" }\n    columns \"created_at\"\n    tags \"pii\"\n}"), "{text}");
        assert!(
            text.contains("// view\ntable \"public.Weird \\\"name\\\"\""),
            "{text}"
        );
        assert!(text.contains("function \"public.order_total\"\n"), "{text}");
        assert!(
            text.contains("function \"public.f\" { overloads \"\" \"x integer\" }\n"),
            "{text}"
        );
        let doc: kdl::KdlDocument = text.parse().expect("valid KDL");
        let names: Vec<_> = doc
            .nodes()
            .iter()
            .map(|n| n.name().value().to_string())
            .collect();
        assert_eq!(names, vec!["table", "table", "function", "function"]);
    }

    #[test]
    fn long_column_lists_wrap() {
        let cat = DbCatalog {
            tables: vec![Relation {
                schema: "s".into(),
                name: "t".into(),
                kind: 'r',
                tags: vec![],
                columns: (0..40).map(|i| (format!("column_{i}"), vec![])).collect(),
            }],
            ..DbCatalog::default()
        };
        let text = render(&cat);
        assert!(text.lines().all(|l| l.len() <= 100), "{text}");
        assert!(text.matches("columns ").count() > 1);
        let doc: kdl::KdlDocument = text.parse().expect("valid KDL");
        let cols: usize = doc.nodes()[0]
            .children()
            .expect("children")
            .nodes()
            .iter()
            .map(|n| n.entries().len())
            .sum();
        assert_eq!(cols, 40);
    }
}
