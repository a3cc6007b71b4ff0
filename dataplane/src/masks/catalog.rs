//! The database's side of the masks: which relation OID and attribute number is which
//! table and column of the policy, and what type each masked column has.
//!
//! RowDescription names a result column's source by table OID and attribute number; the
//! policy names tables and columns. A [`MaskCatalog`] ties the two for one database and
//! one decision table. It is built from PostgreSQL's own catalogs with pgate's upstream
//! credential (`runtime/lookup.rs`): a snapshot at start and at every table swap for the
//! configured database, and lazily for any other database and for relations first seen
//! later (a table created, or dropped and created again, after the snapshot: its new OID).
//!
//! It grows with what is masked, not with the estate: the snapshot holds every relation
//! OID (to tell "seen, unmasked" from "never seen"), and for each relation of a masked
//! decision class only the columns some role masks there, with the relation's attribute
//! count (a column added later has a higher number and is looked up again). Lookups after
//! the snapshot go into a small layer of their own, so that one lazy lookup copies that
//! layer, not the snapshot. The queries select masked columns by name and relations by
//! OID, never by a list of the policy's tables (100,000 names in one statement exhaust
//! the server's stack).
//!
//! What this module must never do: call a relation unmasked that it has not looked up
//! (an unknown OID is [`Lookup::Unknown`], and the session waits for its lookup), call a
//! column of a masked relation unmasked when it was added after the lookup, or accept a
//! mask the column's type cannot carry (the table is refused at load, naming the rule).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use pgate_core::table::model::MaskKind;
use pgate_core::table::{ColumnId, RoleId, Table, TableId};

use super::action_of;
use super::value::{Family, supports};

/// A masked column of a relation, as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub attnum: i16,
    /// The policy's column of that name.
    pub column: ColumnId,
    /// `atttypid`, and the base type when that is a domain.
    pub type_oid: u32,
    pub base_type_oid: u32,
    /// What masks can do with values of this type (`None`: only `null`).
    pub family: Option<Family>,
}

/// A relation of a decision class some role masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub table: TableId,
    /// Its decision class: the role's masks on it are those of the class.
    pub class: u32,
    /// `relnatts` at the lookup: a column numbered higher was added since.
    pub natts: i16,
    /// The columns some role masks in this class, by attribute number.
    pub columns: Vec<Column>,
}

impl Relation {
    pub fn column(&self, attnum: i16) -> Option<&Column> {
        self.columns
            .binary_search_by_key(&attnum, |c| c.attnum)
            .ok()
            .and_then(|i| self.columns.get(i))
    }

    /// Whether `attnum` names a column added after the lookup.
    pub fn added_since(&self, attnum: i16) -> bool {
        attnum > self.natts
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

/// A relation as the relations query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationRow {
    pub oid: u32,
    pub schema: String,
    pub relation: String,
    /// `relnatts`: the highest attribute number, dropped columns included.
    pub natts: i16,
}

/// A column as the attributes query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRow {
    pub oid: u32,
    pub attnum: i16,
    pub name: String,
    pub type_oid: u32,
    pub base_type_oid: u32,
    /// The base type's send function (`textsend`, `int4send`, …): its family.
    pub send: String,
    pub generated: bool,
}

/// Per decision class, each (column, kind) some role masks, with the first role and rule
/// (in role order) that does: what type checks need for every table of the class.
type ClassMasks = HashMap<u32, Vec<(ColumnId, MaskKind, RoleId, u32)>>;

/// What the table masks, computed once per table: by class, and the masked columns'
/// names (what the attributes query selects).
#[derive(Debug, Default)]
pub struct MaskIndex {
    classes: ClassMasks,
    names: Vec<String>,
}

impl MaskIndex {
    pub fn new(table: &Table<'_>) -> MaskIndex {
        let mut classes = ClassMasks::new();
        for (role, class, col, kind, rule) in table.masked_classes() {
            let v = classes.entry(class).or_default();
            if !v.iter().any(|(c, k, ..)| *c == col && *k == kind) {
                v.push((col, kind, role, rule));
            }
        }
        // A column's name, from any table of its class (tables of one class have the
        // same columns).
        let mut names = BTreeSet::new();
        let mut named: HashSet<u32> = HashSet::new();
        for t in (0..table.table_count()).map(TableId) {
            let Some(k) = table.table_class(t) else {
                continue;
            };
            let Some(masks) = classes.get(&k) else {
                continue;
            };
            if named.insert(k) {
                for (c, ..) in masks {
                    names.insert(table.column_name(t, *c).to_string());
                }
            }
            if named.len() == classes.len() {
                break;
            }
        }
        MaskIndex {
            classes,
            names: names.into_iter().collect(),
        }
    }
}

/// The snapshot and what is known of the table's masks.
#[derive(Debug, Default)]
struct Base {
    index: MaskIndex,
    masked: HashMap<u32, Relation>,
    /// Every other relation OID seen.
    others: HashSet<u32>,
}

/// A relation looked up after the snapshot.
#[derive(Debug, Clone)]
enum Later {
    Masked(Relation),
    Unmasked,
    /// Looked up and not found (dropped, or not visible to other sessions yet).
    Gone,
}

/// The masks' catalog for one database and one decision table.
#[derive(Debug, Clone, Default)]
pub struct MaskCatalog {
    /// The decision table this was built for.
    pub digest: [u8; 32],
    pub database: String,
    base: Arc<Base>,
    later: HashMap<u32, Later>,
}

/// The most relations a catalog remembers beyond the snapshot (lazy lookups of
/// relations created later); past it, it forgets them (and looks them up again).
pub const MAX_LATER_RELATIONS: usize = 65_536;

impl MaskCatalog {
    pub fn lookup(&self, oid: u32) -> Lookup<'_> {
        match self.later.get(&oid) {
            Some(Later::Masked(r)) => return Lookup::Masked(r),
            Some(Later::Unmasked) => return Lookup::Unmasked,
            Some(Later::Gone) => return Lookup::Unknown,
            None => {}
        }
        if let Some(r) = self.base.masked.get(&oid) {
            Lookup::Masked(r)
        } else if self.base.others.contains(&oid) {
            Lookup::Unmasked
        } else {
            Lookup::Unknown
        }
    }

    /// How many masked relations the snapshot holds.
    pub fn masked_count(&self) -> usize {
        self.base.masked.len()
    }

    /// How many relations the snapshot holds.
    pub fn relation_count(&self) -> usize {
        self.base.masked.len() + self.base.others.len()
    }

    /// The snapshot: every relation of the database (`relations`) and the masked columns'
    /// attributes (`attributes`, from [`attributes_query`]). Refuses a mask that a
    /// column's type cannot carry.
    pub fn build(
        table: &Table<'_>,
        index: MaskIndex,
        digest: [u8; 32],
        database: &str,
        relations: &[RelationRow],
        attributes: &[AttributeRow],
    ) -> Result<MaskCatalog, String> {
        let mut base = Base {
            index,
            ..Base::default()
        };
        let found = relations_of(table, &base.index, relations, attributes)?;
        for (oid, rel) in found {
            match rel {
                Some(r) => {
                    base.masked.insert(oid, r);
                }
                None => {
                    base.others.insert(oid);
                }
            }
        }
        Ok(MaskCatalog {
            digest,
            database: database.to_string(),
            base: Arc::new(base),
            later: HashMap::new(),
        })
    }

    /// A copy with the relations of a lazy lookup of `seen` (OIDs) added or replaced; an
    /// OID the lookup did not find stays unknown. Copies only what was looked up since
    /// the snapshot, not the snapshot.
    pub fn extended(
        &self,
        table: &Table<'_>,
        relations: &[RelationRow],
        attributes: &[AttributeRow],
        seen: &[u32],
    ) -> Result<MaskCatalog, String> {
        let mut c = self.clone();
        if c.later.len() + seen.len() > MAX_LATER_RELATIONS {
            c.later.clear();
        }
        for oid in seen {
            c.later.insert(*oid, Later::Gone);
        }
        for (oid, rel) in relations_of(table, &self.base.index, relations, attributes)? {
            c.later.insert(
                oid,
                match rel {
                    Some(r) => Later::Masked(r),
                    None => Later::Unmasked,
                },
            );
        }
        Ok(c)
    }

    /// The query for the relations `oids` (after the snapshot).
    pub fn lookup_query(&self, oids: &[u32]) -> String {
        lookup_query(&self.base.index, Some(oids))
    }
}

/// A relation of `COPY table TO STDOUT`, looked up by name when the COPY starts: every
/// column in order (what the COPY sends), and the policy's table if it declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRelation {
    pub oid: u32,
    /// The policy's table and its decision class.
    pub table: Option<(TableId, u32)>,
    /// Every live column, by attribute number, with the policy's column of that name.
    pub attributes: Vec<(AttributeRow, Option<ColumnId>)>,
}

impl CopyRelation {
    /// From [`relation_query`]'s answers; `None` if the database has no such relation.
    pub fn from_rows(
        table: &Table<'_>,
        relations: &[RelationRow],
        attributes: Vec<AttributeRow>,
    ) -> Result<Option<CopyRelation>, String> {
        let [r] = relations else {
            return match relations {
                [] => Ok(None),
                _ => Err("more than one relation of that name".to_string()),
            };
        };
        let t = table.table_id(&r.schema, &r.relation);
        let mut attributes: Vec<(AttributeRow, Option<ColumnId>)> = attributes
            .into_iter()
            .filter(|a| a.oid == r.oid)
            .map(|a| {
                let c = t.and_then(|t| table.column_id(t, &a.name));
                (a, c)
            })
            .collect();
        attributes.sort_by_key(|a| a.0.attnum);
        Ok(Some(CopyRelation {
            oid: r.oid,
            table: t.and_then(|t| Some((t, table.table_class(t)?))),
            attributes,
        }))
    }
}

/// Each relation of `relations`: masked (its masked columns from `attributes`, type
/// checked) or not.
fn relations_of(
    table: &Table<'_>,
    index: &MaskIndex,
    relations: &[RelationRow],
    attributes: &[AttributeRow],
) -> Result<Vec<(u32, Option<Relation>)>, String> {
    let mut columns: HashMap<u32, Vec<&AttributeRow>> = HashMap::new();
    for a in attributes {
        columns.entry(a.oid).or_default().push(a);
    }
    let mut out = Vec::with_capacity(relations.len());
    for r in relations {
        let masked = table.table_id(&r.schema, &r.relation).and_then(|t| {
            let class = table.table_class(t)?;
            Some((t, class, index.classes.get(&class)?))
        });
        let Some((t, class, masks)) = masked else {
            out.push((r.oid, None));
            continue;
        };
        let mut rel = Relation {
            table: t,
            class,
            natts: r.natts,
            columns: Vec::new(),
        };
        for a in columns.get(&r.oid).map(Vec::as_slice).unwrap_or(&[]) {
            let Some(c) = table.column_id(t, &a.name) else {
                continue;
            };
            if !masks.iter().any(|m| m.0 == c) {
                continue;
            }
            rel.columns.push(Column {
                attnum: a.attnum,
                column: c,
                type_oid: a.type_oid,
                base_type_oid: a.base_type_oid,
                family: family_of(&a.send),
            });
        }
        rel.columns.sort_by_key(|c| c.attnum);
        check_types(table, &rel, masks)?;
        out.push((r.oid, Some(rel)));
    }
    Ok(out)
}

/// Whether any role masks anything.
pub fn has_masks(table: &Table<'_>) -> bool {
    table.masked_classes().next().is_some()
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
        let Some(c) = rel.columns.iter().find(|c| c.column == col) else {
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
                format_args!(
                    "{}.{}",
                    table.table_name(rel.table).0,
                    table.table_name(rel.table).1
                ),
                table.column_name(rel.table, c.column),
                c.type_oid
            ));
        }
    }
    Ok(())
}

/// The columns a query returns in the attribute rows' order (see [`attribute_rows`]).
const ATTRIBUTE_COLUMNS: &str = "a.attrelid, a.attnum, a.attname, a.atttypid, \
     CASE WHEN t.typbasetype <> 0 THEN t.typbasetype ELSE t.oid END, \
     t.typsend::pg_catalog.text, a.attgenerated <> ''";

/// The relation kinds RowDescription may name.
const RELKINDS: &str = "c.relkind IN ('r', 'v', 'm', 'f', 'p')";

/// The snapshot's statements: every relation ([`relation_rows`]), then the columns of
/// every relation whose name some role masks somewhere ([`attribute_rows`]). The names
/// come from the policy; they are quoted as literals.
pub fn snapshot_query(index: &MaskIndex) -> String {
    lookup_query(index, None)
}

/// The two statements for `oids` (all relations with `None`).
fn lookup_query(index: &MaskIndex, oids: Option<&[u32]>) -> String {
    let mut oid_list = String::new();
    if let Some(oids) = oids {
        if oids.is_empty() {
            oid_list.push('0');
        }
        for (i, o) in oids.iter().enumerate() {
            if i > 0 {
                oid_list.push_str(", ");
            }
            let _ = write!(oid_list, "{o}");
        }
    }
    let by = |column: &str| {
        if oids.is_some() {
            format!(" AND {column} IN ({oid_list})")
        } else {
            String::new()
        }
    };
    let (rel_oid, att_oid) = (by("c.oid"), by("a.attrelid"));
    let mut names = String::new();
    for (i, n) in index.names.iter().enumerate() {
        if i > 0 {
            names.push_str(", ");
        }
        quote_literal(&mut names, n);
    }
    if names.is_empty() {
        names.push_str("NULL");
    }
    format!(
        // Unordered: sorting 100,000 relations' columns spills to disk on the server;
        // each relation's few are sorted here. The attributes are not joined to pg_class:
        // those of other relations (indexes, sequences) are dropped here, their OIDs not
        // being among the relations (a third less work for the server at 100,000 tables).
        "SELECT c.oid, n.nspname, c.relname, c.relnatts \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE {RELKINDS}{rel_oid}; \
         SELECT {ATTRIBUTE_COLUMNS} \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attnum > 0 AND NOT a.attisdropped{att_oid} AND a.attname IN ({names})"
    )
}

/// The statements for one relation by name, every column of it (what `COPY table TO`
/// sends): [`relation_rows`], then [`attribute_rows`].
pub fn relation_query(schema: &str, name: &str) -> String {
    let mut cond = String::from("n.nspname = ");
    quote_literal(&mut cond, schema);
    cond.push_str(" AND c.relname = ");
    quote_literal(&mut cond, name);
    format!(
        "SELECT c.oid, n.nspname, c.relname, c.relnatts \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE {RELKINDS} AND {cond}; \
         SELECT {ATTRIBUTE_COLUMNS} \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE {RELKINDS} AND {cond} ORDER BY c.oid, a.attnum"
    )
}

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

type Rows = [Vec<Option<String>>];

fn field(r: &[Option<String>], i: usize) -> Result<&str, String> {
    r.get(i)
        .and_then(|v| v.as_deref())
        .ok_or_else(|| "a NULL or missing field".to_string())
}

fn number<T: std::str::FromStr>(r: &[Option<String>], i: usize) -> Result<T, String> {
    field(r, i)?
        .parse()
        .map_err(|_| "a malformed number".to_string())
}

/// Parses the relations statement's rows (text format).
pub fn relation_rows(rows: &Rows) -> Result<Vec<RelationRow>, String> {
    rows.iter()
        .map(|r| {
            Ok(RelationRow {
                oid: number(r, 0)?,
                schema: field(r, 1)?.to_string(),
                relation: field(r, 2)?.to_string(),
                natts: number(r, 3)?,
            })
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("the catalog lookup returned {e}"))
}

/// Parses the attributes statement's rows (text format).
pub fn attribute_rows(rows: &Rows) -> Result<Vec<AttributeRow>, String> {
    rows.iter()
        .map(|r| {
            Ok(AttributeRow {
                oid: number(r, 0)?,
                attnum: number(r, 1)?,
                name: field(r, 2)?.to_string(),
                type_oid: number(r, 3)?,
                base_type_oid: number(r, 4)?,
                send: field(r, 5)?.to_string(),
                generated: field(r, 6)? == "t",
            })
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("the catalog lookup returned {e}"))
}
