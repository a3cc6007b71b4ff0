//! The database's side of the masks: which relation OID and attribute number is which
//! table and column of the policy, and what type each masked column has.
//!
//! RowDescription names a result column's source by table OID and attribute number; the
//! policy names tables and columns. A [`MaskCatalog`] ties the two for one database and
//! one decision table. It is built from PostgreSQL's own catalogs with pgate's upstream
//! credential (`lookup.rs`): at start and at every table swap for the configured
//! database, and lazily for any other database and for relations first seen later (a
//! table created, or dropped and created again, after the snapshot: its new OID).
//!
//! What this module must never do: call a relation unmasked that it has not looked up
//! (an unknown OID is [`Lookup::Unknown`], and the session waits for its lookup), or
//! accept a mask the column's type cannot carry (the table is refused at load, naming the
//! rule).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use pgate_core::table::model::MaskKind;
use pgate_core::table::{ColumnId, RoleId, Table, TableId};

use super::action_of;
use super::value::{Family, supports};

/// One column of a masked relation, as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    /// The policy's column of that name, if the policy declares it (only declared
    /// columns can be masked).
    pub column: Option<ColumnId>,
    /// `atttypid`, and the base type when that is a domain.
    pub type_oid: u32,
    pub base_type_oid: u32,
    /// What masks can do with values of this type (`None`: only `null`).
    pub family: Option<Family>,
    /// A generated column: `COPY t TO` without a column list leaves it out.
    pub generated: bool,
}

/// A relation of the policy that some role masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub table: TableId,
    /// `schema.name`, for messages.
    pub name: String,
    /// Live columns (not dropped), by attribute number.
    pub columns: Vec<Column>,
}

impl Relation {
    pub fn column(&self, attnum: i16) -> Option<&Column> {
        self.columns
            .binary_search_by_key(&attnum, |c| c.attnum)
            .ok()
            .and_then(|i| self.columns.get(i))
    }
}

/// What the catalog says about a relation OID.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// A table of the policy with masks.
    Masked(&'a Relation),
    /// Seen, and no role masks it.
    Unmasked,
    /// Not seen: it must be looked up before a result from it passes.
    Unknown,
}

/// A relation's columns as the lookup query returns them (one row per column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRow {
    pub oid: u32,
    pub schema: String,
    pub relation: String,
    pub attnum: i16,
    pub name: String,
    pub type_oid: u32,
    pub base_type_oid: u32,
    /// The base type's send function (`textsend`, `int4send`, …): its family.
    pub send: String,
    pub generated: bool,
}

/// The masks' catalog for one database and one decision table.
#[derive(Debug, Clone, Default)]
pub struct MaskCatalog {
    /// The decision table this was built for.
    pub digest: [u8; 32],
    pub database: String,
    masked: HashMap<u32, Relation>,
    /// Every other relation OID seen.
    others: HashSet<u32>,
    /// Policy tables with masks, by id: their OID once seen.
    by_table: HashMap<TableId, u32>,
}

/// The most relations a catalog remembers beyond the snapshot (lazy lookups of
/// relations created later); past it, it forgets them (and looks them up again).
pub const MAX_LATER_RELATIONS: usize = 65_536;

impl MaskCatalog {
    pub fn lookup(&self, oid: u32) -> Lookup<'_> {
        if let Some(r) = self.masked.get(&oid) {
            Lookup::Masked(r)
        } else if self.others.contains(&oid) {
            Lookup::Unmasked
        } else {
            Lookup::Unknown
        }
    }

    /// Every masked policy table the database has: OID and columns.
    pub fn masked_relations(&self) -> impl Iterator<Item = (u32, &Relation)> {
        self.masked.iter().map(|(oid, r)| (*oid, r))
    }

    /// A masked policy table, by id: its OID and columns, if the database has it.
    pub fn relation_of(&self, table: TableId) -> Option<(u32, &Relation)> {
        let oid = *self.by_table.get(&table)?;
        Some((oid, self.masked.get(&oid)?))
    }

    /// A masked policy table by `schema.name`: its OID and columns.
    pub fn relation_named(&self, name: &str) -> Option<(u32, &Relation)> {
        self.masked
            .iter()
            .find(|(_, r)| r.name == name)
            .map(|(oid, r)| (*oid, r))
    }

    /// The snapshot: `attributes` of the policy's masked tables, and every relation OID
    /// of the database (`all_oids`). Refuses a mask that a column's type cannot carry.
    pub fn build(
        table: &Table<'_>,
        digest: [u8; 32],
        database: &str,
        attributes: &[AttributeRow],
        all_oids: impl IntoIterator<Item = u32>,
    ) -> Result<MaskCatalog, String> {
        let mut c = MaskCatalog {
            digest,
            database: database.to_string(),
            ..MaskCatalog::default()
        };
        c.others.extend(all_oids);
        c.add(table, attributes)?;
        Ok(c)
    }

    /// A copy with the relations of `attributes` (a lazy lookup) added or replaced, and
    /// `seen` (OIDs the lookup asked for) remembered as unmasked where they are not.
    pub fn extended(
        &self,
        table: &Table<'_>,
        attributes: &[AttributeRow],
        seen: &[u32],
    ) -> Result<MaskCatalog, String> {
        let mut c = self.clone();
        if c.others.len() + c.masked.len() > MAX_LATER_RELATIONS * 16 {
            c.others.clear();
        }
        for oid in seen {
            c.masked.remove(oid);
            c.others.remove(oid);
        }
        c.add(table, attributes)?;
        let found: HashSet<u32> = attributes.iter().map(|a| a.oid).collect();
        for oid in seen {
            if found.contains(oid) && !c.masked.contains_key(oid) {
                c.others.insert(*oid);
            }
        }
        Ok(c)
    }

    fn add(&mut self, table: &Table<'_>, attributes: &[AttributeRow]) -> Result<(), String> {
        let by_class = class_masks(table);
        let mut i = 0;
        while i < attributes.len() {
            let oid = attributes[i].oid;
            let end = attributes[i..]
                .iter()
                .position(|a| a.oid != oid)
                .map_or(attributes.len(), |n| i + n);
            let rows = &attributes[i..end];
            i = end;
            let first = &rows[0];
            let Some(t) = table.table_id(&first.schema, &first.relation) else {
                self.others.insert(oid);
                continue;
            };
            let Some(masks) = table.table_class(t).and_then(|k| by_class.get(&k)) else {
                self.others.insert(oid);
                continue;
            };
            let mut columns: Vec<Column> = rows
                .iter()
                .map(|a| Column {
                    attnum: a.attnum,
                    name: a.name.clone(),
                    column: table.column_id(t, &a.name),
                    type_oid: a.type_oid,
                    base_type_oid: a.base_type_oid,
                    family: family_of(&a.send),
                    generated: a.generated,
                })
                .collect();
            columns.sort_by_key(|c| c.attnum);
            let rel = Relation {
                table: t,
                name: format!("{}.{}", first.schema, first.relation),
                columns,
            };
            check_types(table, &rel, masks)?;
            self.others.remove(&oid);
            if let Some(old) = self.by_table.insert(t, oid)
                && old != oid
            {
                // Dropped and created again: the old OID is no longer this table.
                self.masked.remove(&old);
            }
            self.masked.insert(oid, rel);
        }
        Ok(())
    }
}

/// The policy tables some role masks. Walks (role, decision class), not (role, table).
pub fn masked_tables(table: &Table<'_>) -> HashSet<TableId> {
    let classes: HashSet<u32> = table.masked_classes().map(|(_, k, ..)| k).collect();
    (0..table.table_count())
        .map(TableId)
        .filter(|t| table.table_class(*t).is_some_and(|k| classes.contains(&k)))
        .collect()
}

/// Whether any role masks anything.
pub fn has_masks(table: &Table<'_>) -> bool {
    table.masked_classes().next().is_some()
}

/// Per decision class, each (column, kind) some role masks, with the first role and rule
/// (in role order) that does: what [`check_types`] needs for every table of the class.
type ClassMasks = HashMap<u32, Vec<(ColumnId, MaskKind, RoleId, u32)>>;

fn class_masks(table: &Table<'_>) -> ClassMasks {
    let mut out = ClassMasks::new();
    for (role, class, col, kind, rule) in table.masked_classes() {
        let v = out.entry(class).or_default();
        if !v.iter().any(|(c, k, ..)| *c == col && *k == kind) {
            v.push((col, kind, role, rule));
        }
    }
    out
}

/// What masks can do with a type, by its send function (a domain's is its base type's).
pub fn family_of(send: &str) -> Option<Family> {
    Some(match send {
        "textsend" | "varcharsend" | "bpcharsend" | "namesend" | "citextsend" => Family::Text,
        "int2send" => Family::Int2,
        "int4send" => Family::Int4,
        "int8send" => Family::Int8,
        "uuid_send" => Family::Uuid,
        "byteasend" => Family::Bytea,
        _ => return None,
    })
}

/// Every mask on `rel` (`masks`: those of its class) must be one its column's type can
/// carry.
fn check_types(
    table: &Table<'_>,
    rel: &Relation,
    masks: &[(ColumnId, MaskKind, RoleId, u32)],
) -> Result<(), String> {
    for &(col, kind, role, rule) in masks {
        let Some(c) = rel.columns.iter().find(|c| c.column == Some(col)) else {
            continue;
        };
        let ok = match c.family {
            Some(f) => supports(action_of(kind), f),
            None => kind == MaskKind::Null,
        };
        if !ok {
            let at = table
                .rule(rule)
                .map(|r| format!("{}:{}", r.file, r.line))
                .unwrap_or_default();
            let can = match c.family {
                Some(_) => "null or hash",
                None => "null",
            };
            return Err(format!(
                "the mask `with=\"{}\"` of role \"{}\" on {}.{} (the mask rule at {at}) cannot be applied: the column's type (OID {}) cannot carry such a value; use {can}",
                kind.name(),
                table.role_name(role),
                rel.name,
                c.name,
                c.type_oid
            ));
        }
    }
    Ok(())
}

/// The query for the columns of `oids` and, with `by_name`, of the policy's masked tables
/// (by name). The names come from the policy; they are quoted as literals.
pub fn attributes_query(table: &Table<'_>, oids: &[u32], by_name: bool) -> String {
    let mut names = String::new();
    let mut tables: Vec<TableId> = if by_name {
        masked_tables(table).into_iter().collect()
    } else {
        Vec::new()
    };
    tables.sort();
    for t in tables {
        let (schema, name) = table.table_name(t);
        if !names.is_empty() {
            names.push_str(", ");
        }
        names.push('(');
        quote_literal(&mut names, schema);
        names.push_str(", ");
        quote_literal(&mut names, name);
        names.push(')');
    }
    let mut cond = String::new();
    if !names.is_empty() {
        let _ = write!(cond, "(n.nspname, c.relname) IN ({names})");
    }
    if !oids.is_empty() {
        if !cond.is_empty() {
            cond.push_str(" OR ");
        }
        cond.push_str("c.oid IN (");
        for (i, o) in oids.iter().enumerate() {
            if i > 0 {
                cond.push_str(", ");
            }
            let _ = write!(cond, "{o}");
        }
        cond.push(')');
    }
    if cond.is_empty() {
        cond.push_str("false");
    }
    format!(
        // A domain's send function is its base type's (CREATE DOMAIN copies it).
        "SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname, a.atttypid, \
         CASE WHEN t.typbasetype <> 0 THEN t.typbasetype ELSE t.oid END, \
         t.typsend::pg_catalog.text, a.attgenerated <> '' \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE {cond} ORDER BY c.oid, a.attnum"
    )
}

/// Every relation OID of the database (what RowDescription may name).
pub const RELATIONS_QUERY: &str =
    "SELECT oid FROM pg_catalog.pg_class WHERE relkind IN ('r', 'v', 'm', 'f', 'p')";

/// `'…'` with quotes doubled (the catalog connection runs with
/// standard_conforming_strings on, PostgreSQL's default, set explicitly).
fn quote_literal(out: &mut String, s: &str) {
    out.push('\'');
    for ch in s.chars() {
        if ch == '\'' {
            out.push('\'');
        }
        out.push(ch);
    }
    out.push('\'');
}

/// Parses the attribute query's rows (text format).
pub fn attribute_rows(rows: &[Vec<Option<String>>]) -> Result<Vec<AttributeRow>, String> {
    rows.iter()
        .map(|r| {
            let get = |i: usize| {
                r.get(i)
                    .and_then(|v| v.as_deref())
                    .ok_or("a NULL or missing field")
            };
            let num = |i: usize| -> Result<u32, String> {
                get(i)?.parse().map_err(|_| "a malformed OID".to_string())
            };
            Ok(AttributeRow {
                oid: num(0)?,
                schema: get(1)?.to_string(),
                relation: get(2)?.to_string(),
                attnum: get(3)?
                    .parse()
                    .map_err(|_| "a malformed attnum".to_string())?,
                name: get(4)?.to_string(),
                type_oid: num(5)?,
                base_type_oid: num(6)?,
                send: get(7)?.to_string(),
                generated: get(8)? == "t",
            })
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("the catalog lookup returned {e}"))
}
