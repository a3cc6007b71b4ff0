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
    let counts = format!(
        "{} table{} and {} function{}",
        catalog.tables.len(),
        if catalog.tables.len() == 1 { "" } else { "s" },
        catalog.functions.len(),
        if catalog.functions.len() == 1 {
            ""
        } else {
            "s"
        },
    );
    if let Some(dir) = &args.output_dir {
        let parts = render_parts(&catalog, TABLES_PER_FILE);
        if let Err(e) = write_parts(dir, &parts) {
            eprintln!("error: cannot write the schema into {}: {e}", dir.display());
            return ExitCode::from(EXIT_USAGE);
        }
        eprintln!(
            "wrote {counts} to {} in {} file{}",
            dir.display(),
            parts.len(),
            if parts.len() == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    let text = render(&catalog);
    let too_large = text.len() as u64 > crate::source::MAX_FILE_BYTES;
    let size_mib = text.len() as f64 / (1024.0 * 1024.0);
    match &args.output {
        None => {
            if too_large {
                eprintln!(
                    "warning: the catalog is {size_mib:.1} MiB, more than one policy file may hold ({} MiB): write it with --output-dir DIR",
                    crate::source::MAX_FILE_BYTES >> 20
                );
            }
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                eprintln!("error: cannot write the schema: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
        Some(path) => {
            if too_large {
                eprintln!(
                    "error: the catalog ({counts}) is {size_mib:.1} MiB, more than one policy file may hold ({} MiB): write it with --output-dir DIR instead of -o",
                    crate::source::MAX_FILE_BYTES >> 20
                );
                return ExitCode::from(EXIT_USAGE);
            }
            if let Err(e) = crate::write_atomically(path, text.as_bytes()) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
            eprintln!("wrote {counts} to {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// Writes `parts` into `dir` (created if missing), each atomically, then removes the
/// `catalog-NNN.kdl` files there that this run did not write (a smaller catalog than
/// last time must not leave stale declarations behind).
fn write_parts(dir: &std::path::Path, parts: &[(String, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in parts {
        crate::write_atomically(&dir.join(name), text.as_bytes())?;
    }
    let written: BTreeSet<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let generated = name
            .strip_prefix("catalog-")
            .and_then(|r| r.strip_suffix(".kdl"))
            .is_some_and(|n| n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()));
        if generated && !written.contains(name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A relation as read from the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table.
    pub kind: char,
    pub tags: Vec<String>,
    /// (name, tags) in column order. Names are shared: estates repeat them across
    /// thousands of tables.
    pub columns: Vec<(std::sync::Arc<str>, Vec<String>)>,
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

    // Three reads in one snapshot (REPEATABLE READ: a DDL committed meanwhile is seen by
    // all or none): relations, their columns, column comments. Comments are joined from
    // pg_description directly (obj_description/col_description per row cost a catalog
    // probe each: seconds at a million columns), system schemas are left out by the
    // server, and nothing is sorted there: rows are grouped and sorted here, by bytes, so
    // the order does not depend on the database's collation.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off")
        .map_err(|e| format!("cannot read the catalog of {shown}: {}", error_chain(&e)))?;
    let schema_filter = if wanted.is_empty() {
        "n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname::text NOT LIKE 'pg\\_toast%' AND n.nspname::text NOT LIKE 'pg\\_temp\\_%'"
    } else {
        "n.nspname::text = ANY ($1)"
    };
    let from = format!(
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {schema_filter}"
    );
    let wanted_list: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = if wanted.is_empty() {
        Vec::new()
    } else {
        vec![&wanted_list]
    };
    let read_error =
        |e: postgres::Error| format!("cannot read the catalog of {shown}: {}", error_chain(&e));
    let rels = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
                        coalesce((SELECT d.description FROM pg_catalog.pg_description d \
                                  WHERE d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                                    AND d.objoid = c.oid AND d.objsubid = 0), '') {from}"
            ),
            &params,
        )
        .map_err(read_error)?;
    let mut catalog = DbCatalog {
        database,
        ..DbCatalog::default()
    };
    let mut tables: Vec<Relation> = Vec::with_capacity(rels.len());
    let mut index: std::collections::HashMap<u32, usize> =
        std::collections::HashMap::with_capacity(rels.len());
    for row in &rels {
        let schema: String = row.get(1);
        if !keep(&schema) {
            continue;
        }
        let kind: String = row.get(3);
        let comment: String = row.get(4);
        index.insert(row.get(0), tables.len());
        tables.push(Relation {
            schema,
            name: row.get(2),
            kind: kind.chars().next().unwrap_or('r'),
            tags: tags_from_comment(&comment),
            columns: Vec::new(),
        });
    }
    drop(rels);
    // Columns, streamed (a million rows are not held as rows): per relation, (attnum,
    // name, tags).
    type Col = (i16, std::sync::Arc<str>, Vec<String>);
    let mut columns: Vec<Vec<Col>> = vec![Vec::new(); tables.len()];
    let mut names: std::collections::HashSet<std::sync::Arc<str>> = Default::default();
    {
        use postgres::fallible_iterator::FallibleIterator as _;
        let mut rows = client
            .query_raw(
                &format!(
                    "SELECT a.attrelid, a.attnum, a.attname::text \
                     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE a.attnum > 0 AND NOT a.attisdropped \
                       AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {schema_filter}"
                ),
                params.iter().copied(),
            )
            .map_err(read_error)?;
        while let Some(row) = rows.next().map_err(read_error)? {
            let oid: u32 = row.get(0);
            if let Some(&i) = index.get(&oid) {
                let name: &str = row.get(2);
                let name = match names.get(name) {
                    Some(n) => n.clone(),
                    None => {
                        let n: std::sync::Arc<str> = name.into();
                        names.insert(n.clone());
                        n
                    }
                };
                columns[i].push((row.get(1), name, Vec::new()));
            }
        }
    }
    for cols in &mut columns {
        cols.sort_unstable_by_key(|c| c.0);
    }
    // Column comments are few: every one, matched here.
    let comments = client
        .query(
            "SELECT d.objoid, d.objsubid, d.description FROM pg_catalog.pg_description d \
             WHERE d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid > 0",
            &[],
        )
        .map_err(read_error)?;
    for row in &comments {
        let (oid, attnum): (u32, i32) = (row.get(0), row.get(1));
        let Some(cols) = index.get(&oid).and_then(|&i| columns.get_mut(i)) else {
            continue;
        };
        if let Ok(pos) = cols.binary_search_by_key(&attnum, |c| i32::from(c.0)) {
            cols[pos].2 = tags_from_comment(row.get(2));
        }
    }
    drop(comments);
    for (rel, cols) in tables.iter_mut().zip(columns) {
        rel.columns = cols
            .into_iter()
            .map(|(_, name, tags)| (name, tags))
            .collect();
    }
    tables.sort_unstable_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    let mut schemas = BTreeSet::new();
    for rel in tables {
        let (schema, name) = (&rel.schema, &rel.name);
        if schema.contains('.') || name.contains('.') {
            catalog.skipped.push(format!(
                "{schema:?}.{name:?}: a dot inside a schema or table name cannot be written as \"schema.name\""
            ));
            continue;
        }
        if schemas.last() != Some(schema) {
            schemas.insert(schema.clone());
        }
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
    // Read only: nothing to keep.
    let _ = client.batch_execute("COMMIT");
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

/// Renders the catalog as KDL (deterministic), all in one text.
pub fn render(c: &DbCatalog) -> String {
    let mut s = String::new();
    render_header(&mut s, c, None);
    render_tables(&mut s, &c.tables);
    render_functions(&mut s, c);
    s
}

/// Most tables in one file of [`render_parts`]: 10,000 tables of 30 columns are about
/// 3 MiB, well within the 16 MiB a policy file may hold.
pub const TABLES_PER_FILE: usize = 10_000;

/// Renders the catalog as files `catalog-NNN.kdl` of at most `tables_per_file` tables,
/// whole schemas together where they fit (a larger schema spans files), functions and
/// skipped objects in the first: for a catalog too large for one policy file.
pub fn render_parts(c: &DbCatalog, tables_per_file: usize) -> Vec<(String, String)> {
    let max = tables_per_file.max(1);
    let mut chunks: Vec<&[Relation]> = Vec::new();
    let (mut from, mut i) = (0, 0);
    while i < c.tables.len() {
        // The run of one schema: c.tables[i..end].
        let schema = &c.tables[i].schema;
        let mut end = i;
        while end < c.tables.len() && &c.tables[end].schema == schema {
            end += 1;
        }
        if i > from && end - from > max {
            chunks.push(&c.tables[from..i]);
            from = i;
        }
        while end - from > max {
            chunks.push(&c.tables[from..from + max]);
            from += max;
        }
        i = end;
    }
    if from < c.tables.len() || chunks.is_empty() {
        chunks.push(&c.tables[from..]);
    }
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(k, tables)| {
            let mut s = String::new();
            render_header(&mut s, c, Some((k, n, tables.len())));
            render_tables(&mut s, tables);
            if k == 0 {
                render_functions(&mut s, c);
            }
            (format!("catalog-{k:03}.kdl"), s)
        })
        .collect()
}

/// The opening comments; `part`: (index, files, tables in this file) of a split catalog.
fn render_header(s: &mut String, c: &DbCatalog, part: Option<(usize, usize, usize)>) {
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
    if let Some((k, n, tables)) = part {
        let _ = writeln!(s, "// File {} of {n}: {tables} of the tables.", k + 1);
        if k > 0 {
            return;
        }
    }
    for skipped in &c.skipped {
        let _ = writeln!(s, "// skipped {skipped}");
    }
}

fn render_tables(s: &mut String, tables: &[Relation]) {
    const WIDTH: usize = 96;
    for t in tables {
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
                    flush(s, &mut line);
                }
                line.push(' ');
                line.push_str(&q);
            } else {
                flush(s, &mut line);
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
        flush(s, &mut line);
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
}

fn render_functions(s: &mut String, c: &DbCatalog) {
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
                columns: (0..40)
                    .map(|i| (format!("column_{i}").into(), vec![]))
                    .collect(),
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

    #[test]
    fn parts_keep_schemas_whole_and_hold_every_table_once() {
        let rel = |schema: &str, n: usize| Relation {
            schema: schema.into(),
            name: format!("t{n}"),
            kind: 'r',
            tags: vec![],
            columns: vec![("id".into(), vec![])],
        };
        // Schemas of 3, 2, 7 and 1 tables, in files of at most 4.
        let mut tables = Vec::new();
        for (schema, count) in [("a", 3), ("b", 2), ("c", 7), ("d", 1)] {
            tables.extend((0..count).map(|n| rel(schema, n)));
        }
        let cat = DbCatalog {
            database: "d".into(),
            tables,
            functions: [(("a".into(), "f".into()), DbFunction::default())]
                .into_iter()
                .collect(),
            skipped: vec!["\"x.y\".\"z\": why".into()],
            ..DbCatalog::default()
        };
        let parts = render_parts(&cat, 4);
        let schemas_of = |text: &str| -> Vec<String> {
            let doc: kdl::KdlDocument = text.parse().expect("valid KDL");
            doc.nodes()
                .iter()
                .filter(|n| n.name().value() == "table")
                .map(|n| n.entries()[0].value().as_string().unwrap().to_string())
                .collect()
        };
        let files: Vec<Vec<String>> = parts.iter().map(|(_, t)| schemas_of(t)).collect();
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "catalog-000.kdl",
                "catalog-001.kdl",
                "catalog-002.kdl",
                "catalog-003.kdl"
            ]
        );
        // a (3) alone: a + b would be 5; b waits for c, which is split at 4.
        assert_eq!(files[0], ["a.t0", "a.t1", "a.t2"]);
        assert_eq!(files[1], ["b.t0", "b.t1"]);
        assert_eq!(files[2], ["c.t0", "c.t1", "c.t2", "c.t3"]);
        assert_eq!(files[3], ["c.t4", "c.t5", "c.t6", "d.t0"]);
        // Functions and skipped objects once, in the first file.
        assert!(parts[0].1.contains("function \"a.f\""));
        assert!(parts[0].1.contains("// skipped"));
        assert!(
            parts[1..]
                .iter()
                .all(|(_, t)| !t.contains("function") && !t.contains("skipped"))
        );
        // Together they declare exactly what the single file does.
        let all: Vec<String> = files.concat();
        assert_eq!(all, schemas_of(&render(&cat)));
        // An empty catalog is still one (parseable) file.
        let empty = render_parts(&DbCatalog::default(), 4);
        assert_eq!(empty.len(), 1);
        assert!(schemas_of(&empty[0].1).is_empty());
    }
}
