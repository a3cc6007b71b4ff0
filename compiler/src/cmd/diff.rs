//! `pgate-compile diff OLD NEW`: what became more or less permissive between two policies.
//!
//! Both sides are read into a name-keyed [`Snapshot`] (role names, `schema.table`, column
//! and function names — never ids), so tables built against catalogs that differ still
//! compare: a table, column or function that exists on one side only counts as default
//! deny on the other. The comparison is exhaustive over every cell of both tables.
//!
//! Directions:
//! - **wider**: an access that was denied is now allowed, a member claim was added, a role
//!   was added, a mask was removed or weakened (none < hash < null < redact), a row/byte cap or a rate was raised or
//!   removed, a rate's `on-exceed` went from `terminate` to `throttle` or its scope from
//!   `identity` to `session`.
//! - **narrower**: the reverse.
//!
//! Exit codes: 0 compared (even with changes), 1 with `--fail-on-widening` when anything
//! became more permissive, 2 when a side cannot be read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use pgate_core::StatementClass;
use pgate_core::table::model::{MaskKind, OnExceed, RateScope};
use pgate_core::table::{ColumnId, FunctionId, RoleId, Table, TableId};
use serde_json::{Value, json};

use super::{DiffArgs, EXIT_POLICY, EXIT_USAGE, OutputFormat};

// ------------------------------------------------------------------------------------------
// CLI

pub fn run(args: &DiffArgs) -> ExitCode {
    let (old, new) = match (load_bytes(&args.old), load_bytes(&args.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (old, new) = match (parsed(&old, &args.old), parsed(&new, &args.new)) {
        (Ok(o), Ok(n)) => Snapshot::pair(&o, &n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = compare(&old, &new);
    let old_name = args.old.display().to_string();
    let new_name = args.new.display().to_string();
    let out = match args.format {
        OutputFormat::Human => render_human(&report, &old_name, &new_name),
        OutputFormat::Json => {
            let mut s = render_json(&report, &old_name, &new_name).to_string();
            s.push('\n');
            s
        }
        OutputFormat::Markdown => render_markdown(&report, &old_name, &new_name),
    };
    print!("{out}");
    if args.fail_on_widening && report.is_widening() {
        if args.format != OutputFormat::Json {
            eprintln!(
                "error: the new policy is more permissive ({} widening change{}); --fail-on-widening",
                report.widening_count(),
                plural(report.widening_count())
            );
        }
        return ExitCode::from(EXIT_POLICY);
    }
    ExitCode::SUCCESS
}

/// Reads one side: a built `.pgt` file as is, or policy sources (a directory or a `.kdl`
/// file) compiled in memory exactly as `build` would.
pub fn load(path: &Path) -> Result<Snapshot, String> {
    let loaded = load_bytes(path)?;
    Ok(Snapshot::from_table(&parsed(&loaded, path)?))
}

/// One side's table bytes: a built `.pgt` as is, or sources compiled as `build` would.
fn load_bytes(path: &Path) -> Result<crate::PolicyTable, String> {
    crate::load_table(path).map_err(|e| {
        let msg = e.to_string();
        if msg.contains(&path.display().to_string()) {
            msg
        } else {
            format!("{}: {msg}", path.display())
        }
    })
}

fn parsed<'b>(loaded: &'b crate::PolicyTable, path: &Path) -> Result<Table<'b>, String> {
    loaded
        .table()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// ------------------------------------------------------------------------------------------
// Snapshot: a policy keyed by names

/// Where a rule was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleLoc {
    pub file: String,
    pub line: u32,
    pub text: String,
}

impl RuleLoc {
    fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// One verdict and the rule that decided it (`None`: default deny).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub rule: Option<RuleLoc>,
}

/// A (role, class, table) cell with its per-column verdicts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCell {
    pub cell: Verdict,
    /// Column name → verdict (effective: a denied cell denies every column).
    pub columns: BTreeMap<String, Verdict>,
    /// Column names in catalog order (for output; may be empty, then names are sorted).
    pub order: Vec<String>,
}

impl TableCell {
    /// Column names: catalog order first, then any others sorted.
    fn names(&self) -> Vec<&String> {
        let mut v: Vec<&String> = self
            .order
            .iter()
            .filter(|c| self.columns.contains_key(*c))
            .collect();
        for c in self.columns.keys() {
            if !self.order.contains(c) {
                v.push(c);
            }
        }
        v
    }
    fn allowed_columns(&self) -> Vec<&str> {
        if !self.cell.allowed {
            return Vec::new();
        }
        self.names()
            .into_iter()
            .filter(|c| self.columns.get(*c).is_some_and(|v| v.allowed))
            .map(String::as_str)
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RateSnap {
    pub bytes_per_second: u64,
    pub burst_bytes: u64,
    pub scope: RateScope,
    pub on_exceed: OnExceed,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleSnap {
    pub members: BTreeSet<(String, String)>,
    /// Class → class-level cell (statements that touch no table).
    pub class_cells: BTreeMap<StatementClass, Verdict>,
    /// (class, "schema.table") → cell.
    pub tables: BTreeMap<(StatementClass, String), TableCell>,
    /// "schema.name" → verdict, for every declared function.
    pub functions: BTreeMap<String, Verdict>,
    /// ("schema.table", column) → mask.
    pub masks: BTreeMap<(String, String), (MaskKind, Option<RuleLoc>)>,
    /// The masked columns that may also be used in predicates (`predicates="allow"`).
    pub mask_predicates: BTreeSet<(String, String)>,
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    pub limit_rule: Option<RuleLoc>,
    /// Sessions per token, in all and at once (`None`: unlimited).
    pub max_sessions: Option<u32>,
    pub max_concurrent: Option<u32>,
    /// `token binding="certificate"`.
    pub certificate_bound: bool,
    pub token_rule: Option<RuleLoc>,
    pub rates: Vec<(RateSnap, Option<RuleLoc>)>,
    /// `delegation max-depth=` (`None`: any chain).
    pub max_depth: Option<u32>,
    /// The tightest budget per (window seconds, rows?) and its rule.
    pub budgets: BTreeMap<(u32, bool), (u64, Option<RuleLoc>)>,
    pub delegation_rule: Option<RuleLoc>,
}

/// A whole policy, keyed by names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub roles: BTreeMap<String, RoleSnap>,
    /// Every declared "schema.table" with its columns (to tell catalog changes apart).
    pub tables: BTreeMap<String, BTreeSet<String>>,
    pub functions: BTreeSet<String>,
    /// A delegated variant the *other* side has and this one does not → the role that
    /// decides the same chain here (or `None`: refused at login here) and that role whole,
    /// so the variant compares with what decided its sessions, not with nothing.
    pub stand_ins: BTreeMap<String, (Option<String>, RoleSnap)>,
}

/// A declared function: (schema, name).
type FunctionName = (String, String);

/// A declared table: id, "schema.name", (column id, column name).
type DeclaredTable = (TableId, String, Vec<(ColumnId, String)>);

fn rule_of(t: &Table<'_>, id: Option<u32>) -> Option<RuleLoc> {
    id.and_then(|id| t.rule(id)).map(|r| RuleLoc {
        file: r.file.to_string(),
        line: r.line,
        text: r.text.to_string(),
    })
}

fn declared(t: &Table<'_>, tid: TableId) -> DeclaredTable {
    let (schema, name) = t.table_name(tid);
    let cols = (0..t.column_count(tid))
        .map(ColumnId)
        .map(|c| (c, t.column_name(tid, c).to_string()))
        .collect();
    (tid, format!("{schema}.{name}"), cols)
}

impl Snapshot {
    /// Every cell of `t`, by names.
    pub fn from_table(t: &Table<'_>) -> Snapshot {
        let mut snap = Snapshot::base(t);
        let tables: Vec<DeclaredTable> = (0..t.table_count())
            .map(|i| declared(t, TableId(i)))
            .collect();
        for (_, n, cols) in &tables {
            snap.tables
                .insert(n.clone(), cols.iter().map(|(_, c)| c.clone()).collect());
        }
        for r in (0..t.role_count()).map(RoleId) {
            let Some(role) = snap.roles.get_mut(t.role_name(r)) else {
                continue;
            };
            for d in &tables {
                add_table(t, r, d, role);
            }
        }
        snap
    }

    /// Both sides, with only the table cells that can differ: per role, tables are paired
    /// by name, and a pair of (group, column list) is compared once on its first table —
    /// every other table with the same pair is decided alike on both sides. Tables that
    /// compare equal are left out of both snapshots, so comparing these gives exactly the
    /// changes comparing [`Snapshot::from_table`]s would, at the cost of the groups rather
    /// than of every (role, class, table, column) cell. A role on one side only is
    /// summarised whole.
    pub fn pair(old: &Table<'_>, new: &Table<'_>) -> (Snapshot, Snapshot) {
        let (mut o, mut n) = (Snapshot::base(old), Snapshot::base(new));
        // Tables by name on each side.
        let mut names: BTreeMap<String, (Option<TableId>, Option<TableId>)> = BTreeMap::new();
        for i in 0..old.table_count() {
            let (s, t) = old.table_name(TableId(i));
            names.entry(format!("{s}.{t}")).or_default().0 = Some(TableId(i));
        }
        for i in 0..new.table_count() {
            let (s, t) = new.table_name(TableId(i));
            names.entry(format!("{s}.{t}")).or_default().1 = Some(TableId(i));
        }
        let one_sided = |snap: &Snapshot, other: &Table<'_>, name: &str| {
            snap.roles.contains_key(name) && other.role(name).is_none()
        };
        for side in [0, 1] {
            let (t, snap, other) = if side == 0 {
                (old, &mut o, new)
            } else {
                (new, &mut n, old)
            };
            for r in (0..t.role_count()).map(RoleId) {
                let name = t.role_name(r).to_string();
                if !one_sided(snap, other, &name) {
                    continue;
                }
                let tables: Vec<DeclaredTable> = (0..t.table_count())
                    .map(|i| declared(t, TableId(i)))
                    .collect();
                if let Some(role) = snap.roles.get_mut(&name) {
                    for d in &tables {
                        add_table(t, r, d, role);
                    }
                }
            }
        }
        // Tables whose classes are the same on both sides are decided alike by every
        // role: pair the classes once, then compare per role per pair of classes.
        let class_of = |t: &Table<'_>, id: Option<TableId>| {
            id.and_then(|id| Some((t.table_class(id)?, t.decision_group(RoleId(0), id)?.1)))
        };
        let mut pairs: BTreeMap<PairKey, Vec<PairMember<'_>>> = BTreeMap::new();
        for (tname, (ot, nt)) in &names {
            pairs
                .entry((class_of(old, *ot), class_of(new, *nt)))
                .or_default()
                .push((tname, *ot, *nt));
        }
        for ro in (0..old.role_count()).map(RoleId) {
            let name = old.role_name(ro).to_string();
            let Some(rn) = new.role(&name) else { continue };
            let mut differs: std::collections::HashMap<PairKey, bool> =
                std::collections::HashMap::new();
            for members in pairs.values() {
                let Some(&(_, ot, nt)) = members.first() else {
                    continue;
                };
                let key: PairKey = (
                    ot.and_then(|t| old.decision_group(ro, t)),
                    nt.and_then(|t| new.decision_group(rn, t)),
                );
                let d = match differs.get(&key) {
                    Some(d) => *d,
                    None => {
                        let d = cells_differ(old, ro, ot, new, rn, nt);
                        differs.insert(key, d);
                        d
                    }
                };
                if !d {
                    continue;
                }
                for &(tname, ot, nt) in members {
                    for (t, snap, id, r) in [(old, &mut o, ot, ro), (new, &mut n, nt, rn)] {
                        let Some(id) = id else { continue };
                        let dt = declared(t, id);
                        snap.tables
                            .insert(tname.clone(), dt.2.iter().map(|(_, c)| c.clone()).collect());
                        if let Some(role) = snap.roles.get_mut(&name) {
                            add_table(t, r, &dt, role);
                        }
                    }
                }
            }
        }
        Snapshot::stand_ins(old, new, &mut n);
        Snapshot::stand_ins(new, old, &mut o);
        (o, n)
    }

    /// For each delegated variant of `t` that `other` lacks, the role of `other` deciding a
    /// chain that variant decides (its actors, padded to its depth with an actor no rule
    /// can name), stored in `other_snap`.
    fn stand_ins(t: &Table<'_>, other: &Table<'_>, other_snap: &mut Snapshot) {
        // Every table of `other`, read only when some variant needs a stand-in (a diff of
        // policies without delegation must not pay for it).
        let mut names: Option<(Vec<FunctionName>, Vec<DeclaredTable>)> = None;
        for r in (0..t.role_count()).map(RoleId) {
            let name = t.role_name(r);
            let Some(base) = t.variant_base(r) else {
                continue;
            };
            if other.role(name).is_some() {
                continue;
            }
            let Some(other_base) = other.role(t.role_name(base)) else {
                continue;
            };
            let (min_depth, actors) = t.variant_condition(r);
            let mut chain: Vec<String> = actors.map(str::to_string).collect();
            while chain.len() < min_depth as usize {
                chain.push(format!("\u{0}filler-{}", chain.len()));
            }
            let (functions, tables) = names.get_or_insert_with(|| {
                (
                    function_names(other),
                    (0..other.table_count())
                        .map(|i| declared(other, TableId(i)))
                        .collect(),
                )
            });
            let stand_in = match other.role_for_chain(other_base, &chain) {
                Ok(or) => {
                    let mut role = role_snap(other, or, functions);
                    // Claims grant the base, never a variant: members are not compared.
                    role.members.clear();
                    for d in tables.iter() {
                        add_table(other, or, d, &mut role);
                    }
                    (Some(other.role_name(or).to_string()), role)
                }
                Err(_) => (None, RoleSnap::default()),
            };
            other_snap.stand_ins.insert(name.to_string(), stand_in);
        }
    }

    /// Roles with their members, class-level cells, functions, limits and rates; no table
    /// cells.
    fn base(t: &Table<'_>) -> Snapshot {
        let functions = function_names(t);
        let mut snap = Snapshot {
            functions: functions.iter().map(|(s, n)| format!("{s}.{n}")).collect(),
            ..Snapshot::default()
        };
        for r in (0..t.role_count()).map(RoleId) {
            snap.roles
                .insert(t.role_name(r).to_string(), role_snap(t, r, &functions));
        }
        snap
    }
}

/// Every declared function as (schema, name).
fn function_names(t: &Table<'_>) -> Vec<(String, String)> {
    (0..t.function_count())
        .map(FunctionId)
        .map(|f| {
            let (s, n) = t.function_name(f);
            (s.to_string(), n.to_string())
        })
        .collect()
}

/// A role's members, class-level cells, functions, limits and rates; no table cells.
fn role_snap(t: &Table<'_>, r: RoleId, functions: &[(String, String)]) -> RoleSnap {
    let rule = |id: Option<u32>| rule_of(t, id);
    let mut role = RoleSnap {
        members: t
            .memberships(r)
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect(),
        ..RoleSnap::default()
    };
    for class in StatementClass::ALL {
        let (allowed, rid) = t.cell(r, class, None);
        role.class_cells.insert(
            class,
            Verdict {
                allowed,
                rule: rule(rid),
            },
        );
    }
    for (schema, name) in functions {
        let (allowed, rid) = t.function_allowed(r, schema, name);
        role.functions.insert(
            format!("{schema}.{name}"),
            Verdict {
                allowed,
                rule: rule(rid),
            },
        );
    }
    let limits = t.limits(r);
    role.max_rows = limits.max_rows;
    role.max_bytes = limits.max_bytes;
    role.limit_rule = rule(limits.rule);
    let tu = t.token_use(r);
    role.max_sessions = tu.max_sessions;
    role.max_concurrent = tu.max_concurrent;
    role.certificate_bound = tu.require_certificate;
    role.token_rule = rule(tu.rule);
    for b in t.budgets(r) {
        for (rows, limit) in [(true, b.max_rows), (false, b.max_bytes)] {
            let Some(limit) = limit else { continue };
            let e = role
                .budgets
                .entry((b.window_secs, rows))
                .or_insert((u64::MAX, None));
            if limit < e.0 {
                *e = (limit, rule(Some(b.rule)));
            }
        }
    }
    if let Some((depth, rid)) = t.max_delegation_depth(r) {
        role.max_depth = Some(depth);
        role.delegation_rule = rule(rid);
    }
    let mut rates: Vec<(RateSnap, Option<RuleLoc>)> = t
        .rates(r)
        .map(|v| {
            (
                RateSnap {
                    bytes_per_second: v.bytes_per_second,
                    burst_bytes: v.burst_bytes,
                    scope: v.scope,
                    on_exceed: v.on_exceed,
                },
                rule(Some(v.rule)),
            )
        })
        .collect();
    rates.sort();
    role.rates = rates;
    role
}

/// A table's decision class and column list on each side (`None`: not declared there).
type PairKey = (Option<(u32, u32)>, Option<(u32, u32)>);
/// A table by name and its id on each side.
type PairMember<'n> = (&'n String, Option<TableId>, Option<TableId>);

/// One table's cells (every class that touches tables) and masks for one role.
fn add_table(t: &Table<'_>, r: RoleId, d: &DeclaredTable, role: &mut RoleSnap) {
    let (cells, masks) = table_cells(t, r, d);
    for (class, cell) in cells {
        role.tables.insert((class, d.1.clone()), cell);
    }
    for (column, kind, rule, predicates) in masks {
        let key = (d.1.clone(), column);
        if predicates {
            role.mask_predicates.insert(key.clone());
        }
        role.masks.insert(key, (kind, rule));
    }
}

type TableMasks = Vec<(String, MaskKind, Option<RuleLoc>, bool)>;

fn table_cells(
    t: &Table<'_>,
    r: RoleId,
    (tid, _, cols): &DeclaredTable,
) -> (Vec<(StatementClass, TableCell)>, TableMasks) {
    let rule = |id: Option<u32>| rule_of(t, id);
    let mut cells = Vec::new();
    for class in StatementClass::ALL
        .into_iter()
        .filter(|c| c.touches_tables())
    {
        let (allowed, rid) = t.cell(r, class, Some(*tid));
        let mut cell = TableCell {
            cell: Verdict {
                allowed,
                rule: rule(rid),
            },
            columns: BTreeMap::new(),
            order: cols.iter().map(|(_, c)| c.clone()).collect(),
        };
        for (cid, cname) in cols {
            let (c_allowed, c_rule) = t.column_allowed(r, class, *tid, *cid);
            cell.columns.insert(
                cname.clone(),
                Verdict {
                    allowed: allowed && c_allowed,
                    rule: rule(c_rule.or(rid)),
                },
            );
        }
        cells.push((class, cell));
    }
    let mut masks = Vec::new();
    for (cid, cname) in cols {
        if let Some((kind, rid)) = t.mask(r, *tid, *cid) {
            masks.push((
                cname.clone(),
                kind,
                rule(Some(rid)),
                t.mask_allows_predicates(r, *tid, *cid),
            ));
        }
    }
    (cells, masks)
}

/// Whether one table (by name, on either side) is decided differently by the two sides.
fn cells_differ(
    old: &Table<'_>,
    ro: RoleId,
    ot: Option<TableId>,
    new: &Table<'_>,
    rn: RoleId,
    nt: Option<TableId>,
) -> bool {
    match (ot, nt) {
        (Some(a), Some(b)) => {
            decisions(old, ro, &declared(old, a)) != decisions(new, rn, &declared(new, b))
        }
        // On one side only: a change unless it allows and masks nothing there.
        (Some(a), None) => grants_anything(old, ro, &declared(old, a)),
        (None, Some(b)) => grants_anything(new, rn, &declared(new, b)),
        (None, None) => false,
    }
}

/// What [`compare`] looks at for one table: whether each cell and each column is allowed,
/// and each mask's kind and predicates flag — not which rule decided (rules move when a
/// file is edited, and are only reported alongside a change).
type Decisions = (
    Vec<(bool, Vec<(String, bool)>)>,
    Vec<(String, MaskKind, bool)>,
);

fn decisions(t: &Table<'_>, r: RoleId, (tid, _, cols): &DeclaredTable) -> Decisions {
    let cells = StatementClass::ALL
        .into_iter()
        .filter(|c| c.touches_tables())
        .map(|class| {
            let (allowed, _) = t.cell(r, class, Some(*tid));
            let columns = cols
                .iter()
                .map(|(cid, cname)| {
                    let ok = allowed && t.column_allowed(r, class, *tid, *cid).0;
                    (cname.clone(), ok)
                })
                .collect();
            (allowed, columns)
        })
        .collect();
    let masks = cols
        .iter()
        .filter_map(|(cid, cname)| {
            let (kind, _) = t.mask(r, *tid, *cid)?;
            Some((cname.clone(), kind, t.mask_allows_predicates(r, *tid, *cid)))
        })
        .collect();
    (cells, masks)
}

fn grants_anything(t: &Table<'_>, r: RoleId, d: &DeclaredTable) -> bool {
    let (cells, masks) = table_cells(t, r, d);
    !masks.is_empty() || cells.iter().any(|(_, c)| c.cell.allowed)
}

// ------------------------------------------------------------------------------------------
// Comparison

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Wider,
    Narrower,
    /// Neither strictly wider nor narrower (e.g. one rate bucket raised, another lowered).
    Changed,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Wider => "wider",
            Direction::Narrower => "narrower",
            Direction::Changed => "changed",
        }
    }
    fn sign(self) -> &'static str {
        match self {
            Direction::Wider => "+",
            Direction::Narrower => "-",
            Direction::Changed => "~",
        }
    }
}

/// What a change is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// A class-level cell (statements that touch no table).
    Class(StatementClass),
    /// A whole table for a class; `columns` lists the columns allowed on the allowed side.
    Table {
        class: StatementClass,
        table: String,
        columns: Vec<String>,
        all_columns: bool,
    },
    /// One column of a table whose cell is allowed on both sides.
    Column {
        class: StatementClass,
        table: String,
        column: String,
    },
    Function(String),
    Member {
        claim: String,
        value: String,
    },
    Mask {
        table: String,
        column: String,
    },
    MaxRows,
    MaxBytes,
    Rate,
    /// `token sessions=`.
    MaxSessions,
    /// `token concurrent=`.
    MaxConcurrent,
    /// `token binding="certificate"`.
    TokenBinding,
    /// `delegation max-depth=`.
    DelegationDepth,
    /// A `budget` (rows or bytes per hour or day), per window and unit.
    Budget {
        per: &'static str,
        rows: bool,
    },
}

impl Subject {
    fn class(&self) -> Option<StatementClass> {
        match self {
            Subject::Class(c) => Some(*c),
            Subject::Table { class, .. } | Subject::Column { class, .. } => Some(*class),
            _ => None,
        }
    }
    /// The group a change is summarised under: a class name, or `functions`, `members`,
    /// `masks`, `limits`.
    pub fn group(&self) -> &'static str {
        match self {
            Subject::Class(c) => c.name(),
            Subject::Table { class, .. } | Subject::Column { class, .. } => class.name(),
            Subject::Function(_) => "functions",
            Subject::Member { .. } => "members",
            Subject::Mask { .. } => "masks",
            Subject::MaxRows
            | Subject::MaxBytes
            | Subject::Rate
            | Subject::MaxSessions
            | Subject::MaxConcurrent
            | Subject::TokenBinding
            | Subject::DelegationDepth
            | Subject::Budget { .. } => "limits",
        }
    }
    fn table(&self) -> Option<&str> {
        match self {
            Subject::Table { table, .. }
            | Subject::Column { table, .. }
            | Subject::Mask { table, .. } => Some(table),
            _ => None,
        }
    }
    fn column(&self) -> Option<&str> {
        match self {
            Subject::Column { column, .. } | Subject::Mask { column, .. } => Some(column),
            _ => None,
        }
    }
    /// Short human description of what changed.
    pub fn describe(&self) -> String {
        match self {
            Subject::Class(_) => "(statements without a table)".to_string(),
            Subject::Table {
                table,
                columns,
                all_columns,
                ..
            } => {
                if *all_columns {
                    format!("{table} (all columns)")
                } else if columns.is_empty() {
                    format!("{table} (no columns)")
                } else {
                    format!("{table} ({})", columns.join(", "))
                }
            }
            Subject::Column { table, column, .. } => format!("{table}.{column}"),
            Subject::Function(f) => format!("function {f}"),
            Subject::Member { claim, value } => format!("member {claim}={value}"),
            Subject::Mask { table, column } => format!("mask {table}.{column}"),
            Subject::MaxRows => "limit rows".to_string(),
            Subject::MaxBytes => "limit bytes".to_string(),
            Subject::Rate => "rate".to_string(),
            Subject::MaxSessions => "sessions per token".to_string(),
            Subject::MaxConcurrent => "concurrent sessions per token".to_string(),
            Subject::TokenBinding => "token binding".to_string(),
            Subject::DelegationDepth => "delegation depth".to_string(),
            Subject::Budget { per, rows } => {
                format!("budget {} per {per}", if *rows { "rows" } else { "bytes" })
            }
        }
    }
}

/// One change of one role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub subject: Subject,
    pub direction: Direction,
    pub old: String,
    pub new: String,
    /// The rule that decides on the new side (or, when the new side is a default deny, the
    /// rule that decided on the old side).
    pub rule: Option<RuleLoc>,
    /// Extra context, e.g. "column not in the old catalog".
    pub note: Option<String>,
}

/// A role that exists on one side only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSummary {
    pub name: String,
    pub members: Vec<(String, String)>,
    /// Human lines: "select: public.orders, public.products (id, name)".
    pub grants: Vec<String>,
    /// Whether the role can do anything at all (any allowed cell or function).
    pub grants_anything: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub roles_added: Vec<RoleSummary>,
    pub roles_removed: Vec<RoleSummary>,
    /// Role → its changes (only roles present on both sides with at least one change).
    pub roles: BTreeMap<String, Vec<Change>>,
    /// Roles present on both sides that decide every cell the same way.
    pub unchanged_roles: Vec<String>,
    /// A delegated variant on one side only → the role it is compared with on the other
    /// (`None`: refused at login there) and whether the variant is the new side's.
    pub stand_ins: BTreeMap<String, (Option<String>, bool)>,
}

impl Report {
    pub fn widening_count(&self) -> usize {
        self.roles_added
            .iter()
            .filter(|r| r.grants_anything || !r.members.is_empty())
            .count()
            + self
                .roles
                .values()
                .flatten()
                .filter(|c| c.direction != Direction::Narrower)
                .count()
    }
    pub fn narrowing_count(&self) -> usize {
        self.roles_removed.len()
            + self
                .roles
                .values()
                .flatten()
                .filter(|c| c.direction != Direction::Wider)
                .count()
    }
    /// Whether anything became more permissive. A `Changed` (neither wider nor narrower)
    /// counts: it may reveal something the old policy did not.
    pub fn is_widening(&self) -> bool {
        self.widening_count() > 0
    }
    pub fn is_empty(&self) -> bool {
        self.roles_added.is_empty() && self.roles_removed.is_empty() && self.roles.is_empty()
    }
}

fn verdict_name(v: Option<&Verdict>) -> String {
    match v {
        None => "absent".to_string(),
        Some(v) if v.allowed => "allow".to_string(),
        Some(_) => "deny".to_string(),
    }
}

fn decisive_rule(old: Option<&Verdict>, new: Option<&Verdict>) -> Option<RuleLoc> {
    new.and_then(|v| v.rule.clone())
        .or_else(|| old.and_then(|v| v.rule.clone()))
}

fn allow_dir(old: bool, new: bool) -> Option<Direction> {
    match (old, new) {
        (false, true) => Some(Direction::Wider),
        (true, false) => Some(Direction::Narrower),
        _ => None,
    }
}

/// Compares two snapshots.
pub fn compare(old: &Snapshot, new: &Snapshot) -> Report {
    let mut report = Report::default();
    let note = |report: &mut Report, name: &String, changes: Vec<Change>| {
        if changes.is_empty() {
            report.unchanged_roles.push(name.clone());
        } else {
            report.roles.insert(name.clone(), changes);
        }
    };
    for (name, role) in &new.roles {
        if old.roles.contains_key(name) {
            continue;
        }
        match old.stand_ins.get(name) {
            // A new delegated variant: against what decided its sessions before.
            Some((was, stand_in)) => {
                report.stand_ins.insert(name.clone(), (was.clone(), true));
                note(&mut report, name, compare_role(old, new, stand_in, role));
            }
            None => report.roles_added.push(summarise(name, role)),
        }
    }
    for (name, role) in &old.roles {
        if new.roles.contains_key(name) {
            continue;
        }
        match new.stand_ins.get(name) {
            Some((now, stand_in)) => {
                report.stand_ins.insert(name.clone(), (now.clone(), false));
                note(&mut report, name, compare_role(old, new, role, stand_in));
            }
            None => report.roles_removed.push(summarise(name, role)),
        }
    }
    for (name, o) in &old.roles {
        let Some(n) = new.roles.get(name) else {
            continue;
        };
        let changes = compare_role(old, new, o, n);
        if changes.is_empty() {
            report.unchanged_roles.push(name.clone());
        } else {
            report.roles.insert(name.clone(), changes);
        }
    }
    report
}

fn compare_role(old_s: &Snapshot, new_s: &Snapshot, o: &RoleSnap, n: &RoleSnap) -> Vec<Change> {
    let mut out = Vec::new();

    // Members.
    for m in n.members.difference(&o.members) {
        out.push(Change {
            subject: Subject::Member {
                claim: m.0.clone(),
                value: m.1.clone(),
            },
            direction: Direction::Wider,
            old: "absent".into(),
            new: "member".into(),
            rule: None,
            note: None,
        });
    }
    for m in o.members.difference(&n.members) {
        out.push(Change {
            subject: Subject::Member {
                claim: m.0.clone(),
                value: m.1.clone(),
            },
            direction: Direction::Narrower,
            old: "member".into(),
            new: "absent".into(),
            rule: None,
            note: None,
        });
    }

    // Class-level cells.
    for class in StatementClass::ALL {
        let ov = o.class_cells.get(&class);
        let nv = n.class_cells.get(&class);
        let oa = ov.is_some_and(|v| v.allowed);
        let na = nv.is_some_and(|v| v.allowed);
        if let Some(direction) = allow_dir(oa, na) {
            out.push(Change {
                subject: Subject::Class(class),
                direction,
                old: verdict_name(ov),
                new: verdict_name(nv),
                rule: decisive_rule(ov, nv),
                note: None,
            });
        }
    }

    // Table cells, over the union of (class, table) keys.
    let keys: BTreeSet<&(StatementClass, String)> =
        o.tables.keys().chain(n.tables.keys()).collect();
    let empty = TableCell::default();
    for key in keys {
        let (class, table) = key;
        let oc = o.tables.get(key);
        let nc = n.tables.get(key);
        let oc_ref = oc.unwrap_or(&empty);
        let nc_ref = nc.unwrap_or(&empty);
        let oa = oc_ref.cell.allowed;
        let na = nc_ref.cell.allowed;
        let table_note = match (
            old_s.tables.contains_key(table),
            new_s.tables.contains_key(table),
        ) {
            (false, true) => Some("table not in the old catalog".to_string()),
            (true, false) => Some("table not in the new catalog".to_string()),
            _ => None,
        };
        if let Some(direction) = allow_dir(oa, na) {
            let allowed_side = if na { nc_ref } else { oc_ref };
            let cols: Vec<String> = allowed_side
                .allowed_columns()
                .into_iter()
                .map(str::to_string)
                .collect();
            let all_columns =
                !allowed_side.columns.is_empty() && cols.len() == allowed_side.columns.len();
            out.push(Change {
                subject: Subject::Table {
                    class: *class,
                    table: table.clone(),
                    columns: cols,
                    all_columns,
                },
                direction,
                old: verdict_name(oc.map(|c| &c.cell)),
                new: verdict_name(nc.map(|c| &c.cell)),
                rule: decisive_rule(oc.map(|c| &c.cell), nc.map(|c| &c.cell)),
                note: table_note,
            });
            continue;
        }
        if !(oa && na) {
            continue;
        }
        // Allowed on both sides: compare column by column.
        let mut cols = nc_ref.names();
        for c in oc_ref.names() {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        for col in cols {
            let ov = oc_ref.columns.get(col);
            let nv = nc_ref.columns.get(col);
            let Some(direction) =
                allow_dir(ov.is_some_and(|v| v.allowed), nv.is_some_and(|v| v.allowed))
            else {
                continue;
            };
            let note = match (ov, nv) {
                (None, Some(_)) => Some("column not in the old catalog".to_string()),
                (Some(_), None) => Some("column not in the new catalog".to_string()),
                _ => None,
            };
            out.push(Change {
                subject: Subject::Column {
                    class: *class,
                    table: table.clone(),
                    column: col.clone(),
                },
                direction,
                old: verdict_name(ov),
                new: verdict_name(nv),
                rule: decisive_rule(ov, nv),
                note,
            });
        }
    }

    // Functions.
    let fnames: BTreeSet<&String> = o.functions.keys().chain(n.functions.keys()).collect();
    for f in fnames {
        let ov = o.functions.get(f);
        let nv = n.functions.get(f);
        if let Some(direction) =
            allow_dir(ov.is_some_and(|v| v.allowed), nv.is_some_and(|v| v.allowed))
        {
            let note = match (ov, nv) {
                (None, Some(_)) => Some("function not declared in the old catalog".to_string()),
                (Some(_), None) => Some("function not declared in the new catalog".to_string()),
                _ => None,
            };
            out.push(Change {
                subject: Subject::Function(f.clone()),
                direction,
                old: verdict_name(ov),
                new: verdict_name(nv),
                rule: decisive_rule(ov, nv),
                note,
            });
        }
    }

    // Masks: none < hash < null < redact (the compiler's strength order: when several
    // masks hit one column the strongest wins).
    fn strength(m: Option<MaskKind>) -> u8 {
        m.map_or(0, crate::combine::mask_strength)
    }
    let mkeys: BTreeSet<&(String, String)> = o.masks.keys().chain(n.masks.keys()).collect();
    for key in mkeys {
        let om = o.masks.get(key);
        let nm = n.masks.get(key);
        let ok = om.map(|m| m.0);
        let nk = nm.map(|m| m.0);
        if ok == nk {
            continue;
        }
        // A mask that went away because the column is no longer readable at all widens
        // nothing (the column's denial is reported on its own).
        let denied = |class: StatementClass| {
            n.tables.get(&(class, key.0.clone())).is_some_and(|c| {
                !c.cell.allowed || c.columns.get(&key.1).is_some_and(|v| !v.allowed)
            })
        };
        if strength(nk) < strength(ok)
            && denied(StatementClass::Select)
            && denied(StatementClass::CopyOut)
        {
            continue;
        }
        // A mask on a column the role cannot read anywhere protects nothing; still report
        // it (it may become readable later) but as its own direction.
        let direction = match strength(nk).cmp(&strength(ok)) {
            std::cmp::Ordering::Less => Direction::Wider,
            std::cmp::Ordering::Greater => Direction::Narrower,
            std::cmp::Ordering::Equal => Direction::Changed,
        };
        out.push(Change {
            subject: Subject::Mask {
                table: key.0.clone(),
                column: key.1.clone(),
            },
            direction,
            old: ok.map_or("none", MaskKind::name).to_string(),
            new: nk.map_or("none", MaskKind::name).to_string(),
            rule: nm
                .and_then(|m| m.1.clone())
                .or_else(|| om.and_then(|m| m.1.clone())),
            note: None,
        });
    }

    // A masked column usable in predicates is wider than one that is not.
    let pkeys: BTreeSet<&(String, String)> = o
        .mask_predicates
        .symmetric_difference(&n.mask_predicates)
        .collect();
    for key in pkeys {
        let now = n.mask_predicates.contains(key);
        out.push(Change {
            subject: Subject::Mask {
                table: key.0.clone(),
                column: key.1.clone(),
            },
            direction: if now {
                Direction::Wider
            } else {
                Direction::Narrower
            },
            old: if now {
                "predicates denied"
            } else {
                "predicates allowed"
            }
            .to_string(),
            new: if now {
                "predicates allowed"
            } else {
                "predicates denied"
            }
            .to_string(),
            rule: n
                .masks
                .get(key)
                .and_then(|m| m.1.clone())
                .or_else(|| o.masks.get(key).and_then(|m| m.1.clone())),
            note: None,
        });
    }

    // Caps and sessions per token: `None` is unlimited.
    let limit_rule = n.limit_rule.clone().or_else(|| o.limit_rule.clone());
    let token_rule = n.token_rule.clone().or_else(|| o.token_rule.clone());
    let count = |v: Option<u32>| v.map(u64::from);
    for (subject, ov, nv, rule) in [
        (Subject::MaxRows, o.max_rows, n.max_rows, &limit_rule),
        (Subject::MaxBytes, o.max_bytes, n.max_bytes, &limit_rule),
        (
            Subject::MaxSessions,
            count(o.max_sessions),
            count(n.max_sessions),
            &token_rule,
        ),
        (
            Subject::MaxConcurrent,
            count(o.max_concurrent),
            count(n.max_concurrent),
            &token_rule,
        ),
    ] {
        if ov == nv {
            continue;
        }
        let direction = match (ov, nv) {
            (None, Some(_)) => Direction::Narrower,
            (Some(_), None) => Direction::Wider,
            (Some(a), Some(b)) if b > a => Direction::Wider,
            _ => Direction::Narrower,
        };
        let bytes = subject == Subject::MaxBytes;
        let fmt = |v: Option<u64>| match v {
            None => "unlimited".to_string(),
            Some(v) if bytes => format_bytes(v),
            Some(v) => v.to_string(),
        };
        out.push(Change {
            subject,
            direction,
            old: fmt(ov),
            new: fmt(nv),
            rule: rule.clone(),
            note: None,
        });
    }

    // `delegation max-depth=`: `None` admits any chain.
    if o.max_depth != n.max_depth {
        let fmt = |v: Option<u32>| match v {
            None => "any".to_string(),
            Some(0) => "none (no delegated sessions)".to_string(),
            Some(d) => format!("at most {d}"),
        };
        out.push(Change {
            subject: Subject::DelegationDepth,
            direction: match (o.max_depth, n.max_depth) {
                (Some(_), None) => Direction::Wider,
                (Some(a), Some(b)) if b > a => Direction::Wider,
                _ => Direction::Narrower,
            },
            old: fmt(o.max_depth),
            new: fmt(n.max_depth),
            rule: n
                .delegation_rule
                .clone()
                .or_else(|| o.delegation_rule.clone()),
            note: None,
        });
    }

    if o.certificate_bound != n.certificate_bound {
        let name = |b: bool| if b { "certificate" } else { "bearer" }.to_string();
        out.push(Change {
            subject: Subject::TokenBinding,
            // A bearer token is usable by whoever holds it: dropping the binding widens.
            direction: if n.certificate_bound {
                Direction::Narrower
            } else {
                Direction::Wider
            },
            old: name(o.certificate_bound),
            new: name(n.certificate_bound),
            rule: token_rule,
            note: None,
        });
    }

    // Budgets: the tightest per window and unit; none is unlimited.
    let keys: BTreeSet<&(u32, bool)> = o.budgets.keys().chain(n.budgets.keys()).collect();
    for key in keys {
        let (ov, nv) = (o.budgets.get(key), n.budgets.get(key));
        let (ol, nl) = (ov.map(|v| v.0), nv.map(|v| v.0));
        if ol == nl {
            continue;
        }
        let (window, rows) = *key;
        let fmt = |v: Option<u64>| match v {
            None => "unlimited".to_string(),
            Some(v) if rows => v.to_string(),
            Some(v) => format_bytes(v),
        };
        out.push(Change {
            subject: Subject::Budget {
                per: if window == 3_600 { "hour" } else { "day" },
                rows,
            },
            direction: match (ol, nl) {
                (None, Some(_)) => Direction::Narrower,
                (Some(_), None) => Direction::Wider,
                (Some(a), Some(b)) if b > a => Direction::Wider,
                _ => Direction::Narrower,
            },
            old: fmt(ol),
            new: fmt(nl),
            rule: nv
                .and_then(|v| v.1.clone())
                .or_else(|| ov.and_then(|v| v.1.clone())),
            note: None,
        });
    }

    // Rates: compared as a whole set of buckets.
    let orates: Vec<RateSnap> = o.rates.iter().map(|r| r.0).collect();
    let nrates: Vec<RateSnap> = n.rates.iter().map(|r| r.0).collect();
    if orates != nrates {
        out.push(Change {
            subject: Subject::Rate,
            direction: rate_direction(&orates, &nrates),
            old: format_rates(&orates),
            new: format_rates(&nrates),
            rule: n
                .rates
                .first()
                .and_then(|r| r.1.clone())
                .or_else(|| o.rates.first().and_then(|r| r.1.clone())),
            note: None,
        });
    }
    out
}

/// Every bucket applies, so the binding constraint per scope is the tightest bucket.
/// Wider when some aspect got looser and none got tighter; narrower the other way round.
fn rate_direction(old: &[RateSnap], new: &[RateSnap]) -> Direction {
    if old.is_empty() {
        return Direction::Narrower;
    }
    if new.is_empty() {
        return Direction::Wider;
    }
    // Per-aspect "tightness" keys: smaller rate/burst is tighter; identity scope and
    // terminate are tighter than session and throttle.
    let key = |rs: &[RateSnap]| {
        let bps = rs
            .iter()
            .map(|r| r.bytes_per_second)
            .min()
            .unwrap_or(u64::MAX);
        let burst = rs.iter().map(|r| r.burst_bytes).min().unwrap_or(u64::MAX);
        let identity = rs.iter().any(|r| r.scope == RateScope::Identity);
        let terminate = rs.iter().any(|r| r.on_exceed == OnExceed::Terminate);
        (bps, burst, identity, terminate)
    };
    let (ob, obu, oi, ot) = key(old);
    let (nb, nbu, ni, nt) = key(new);
    let looser = nb > ob || nbu > obu || (oi && !ni) || (ot && !nt);
    let tighter = nb < ob || nbu < obu || (!oi && ni) || (!ot && nt);
    match (looser, tighter) {
        (true, false) => Direction::Wider,
        (false, true) => Direction::Narrower,
        _ => Direction::Changed,
    }
}

fn format_rates(rs: &[RateSnap]) -> String {
    if rs.is_empty() {
        return "none".to_string();
    }
    rs.iter()
        .map(|r| {
            format!(
                "{}/s burst {} per {} on-exceed {}",
                format_bytes(r.bytes_per_second),
                format_bytes(r.burst_bytes),
                match r.scope {
                    RateScope::Session => "session",
                    RateScope::Identity => "identity",
                },
                match r.on_exceed {
                    OnExceed::Throttle => "throttle",
                    OnExceed::Terminate => "terminate",
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `16777216` → `16MiB`; exact binary units only, else bytes.
pub fn format_bytes(v: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if v >= size && v.is_multiple_of(size) {
            return format!("{}{name}", v / size);
        }
    }
    format!("{v}B")
}

fn summarise(name: &str, role: &RoleSnap) -> RoleSummary {
    let mut grants = Vec::new();
    let mut anything = false;
    for class in StatementClass::ALL {
        let mut parts = Vec::new();
        for ((c, table), cell) in &role.tables {
            if *c != class || !cell.cell.allowed {
                continue;
            }
            let cols = cell.allowed_columns();
            if cols.len() == cell.columns.len() {
                parts.push(table.clone());
            } else {
                parts.push(format!(
                    "{table} ({})",
                    cols.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let class_allowed = role.class_cells.get(&class).is_some_and(|v| v.allowed);
        if parts.is_empty() && class_allowed {
            parts.push("(statements without a table)".to_string());
        }
        if !parts.is_empty() {
            anything = true;
            grants.push(format!("{}: {}", class.name(), parts.join(", ")));
        }
    }
    let fns: Vec<&str> = role
        .functions
        .iter()
        .filter(|(_, v)| v.allowed)
        .map(|(f, _)| f.as_str())
        .collect();
    if !fns.is_empty() {
        anything = true;
        grants.push(format!("functions: {}", fns.join(", ")));
    }
    RoleSummary {
        name: name.to_string(),
        members: role.members.iter().cloned().collect(),
        grants,
        grants_anything: anything,
    }
}

// ------------------------------------------------------------------------------------------
// Rendering

/// (group, wider, narrower, changed) per role, in class-id order, then the other groups.
fn groups(changes: &[Change]) -> Vec<(&'static str, usize, usize, usize)> {
    let order = |g: &str| -> usize {
        StatementClass::from_name(g)
            .map(|c| usize::from(c.id()))
            .unwrap_or_else(|| {
                100 + ["members", "functions", "masks", "limits"]
                    .iter()
                    .position(|x| *x == g)
                    .unwrap_or(9)
            })
    };
    let mut map: BTreeMap<(usize, &'static str), (usize, usize, usize)> = BTreeMap::new();
    for c in changes {
        let g = c.subject.group();
        let e = map.entry((order(g), g)).or_default();
        match c.direction {
            Direction::Wider => e.0 += 1,
            Direction::Narrower => e.1 += 1,
            Direction::Changed => e.2 += 1,
        }
    }
    map.into_iter()
        .map(|((_, g), (w, n, c))| (g, w, n, c))
        .collect()
}

fn group_direction(w: usize, n: usize, c: usize) -> &'static str {
    match (w > 0 || c > 0, n > 0) {
        (true, true) => "mixed",
        (true, false) if w > 0 => "wider",
        (true, false) => "changed",
        (false, true) => "narrower",
        (false, false) => "unchanged",
    }
}

fn sorted_changes<'a>(changes: &'a [Change], group: &str) -> Vec<&'a Change> {
    let mut v: Vec<&Change> = changes
        .iter()
        .filter(|c| c.subject.group() == group)
        .collect();
    v.sort_by(|a, b| (a.direction, &a.subject).cmp(&(b.direction, &b.subject)));
    v
}

pub fn render_human(r: &Report, old: &str, new: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "policy diff: {old} → {new}");
    if r.is_empty() {
        let _ = writeln!(
            s,
            "no differences: every role decides every cell the same way"
        );
        return s;
    }
    for role in &r.roles_added {
        let _ = writeln!(s, "\n+ role {} (added)", role.name);
        for (c, v) in &role.members {
            let _ = writeln!(s, "    member {c}={v}");
        }
        for g in &role.grants {
            let _ = writeln!(s, "    {g}");
        }
    }
    for role in &r.roles_removed {
        let _ = writeln!(s, "\n- role {} (removed)", role.name);
    }
    if !r.unchanged_roles.is_empty() {
        let _ = writeln!(s, "\nunchanged roles: {}", r.unchanged_roles.join(", "));
    }
    for (name, changes) in &r.roles {
        let w = changes
            .iter()
            .filter(|c| c.direction != Direction::Narrower)
            .count();
        let n = changes
            .iter()
            .filter(|c| c.direction != Direction::Wider)
            .count();
        let overall = group_direction(w, n, 0);
        let _ = writeln!(s, "\nrole {name}: {}", overall.to_uppercase());
        if let Some(line) = stand_in_note(r, name) {
            let _ = writeln!(s, "  ({line})");
        }
        for (group, gw, gn, gc) in groups(changes) {
            let _ = writeln!(
                s,
                "  {group}: {} ({gw} wider, {gn} narrower{})",
                group_direction(gw, gn, gc),
                if gc > 0 {
                    format!(", {gc} changed")
                } else {
                    String::new()
                }
            );
            for c in sorted_changes(changes, group) {
                let mut line = format!(
                    "    {} {}: {} → {}",
                    c.direction.sign(),
                    c.subject.describe(),
                    c.old,
                    c.new
                );
                if let Some(rule) = &c.rule {
                    let _ = write!(line, "  [{}]", rule.location());
                }
                if let Some(note) = &c.note {
                    let _ = write!(line, "  ({note})");
                }
                let _ = writeln!(s, "{line}");
            }
        }
    }
    let _ = writeln!(
        s,
        "\nsummary: {} more permissive, {} less permissive{}",
        r.widening_count(),
        r.narrowing_count(),
        if r.is_widening() { " — WIDENING" } else { "" }
    );
    s
}

/// For a variant on one side only: what it is compared with.
fn stand_in_note(r: &Report, name: &str) -> Option<String> {
    let (other, is_new) = r.stand_ins.get(name)?;
    let other = match other {
        Some(o) => format!("`{o}`"),
        None => "nothing: they were refused at login".to_string(),
    };
    Some(if *is_new {
        format!("new delegated variant, compared with {other}, which decided its sessions before")
    } else {
        format!("delegated variant removed, compared with {other}, which decides its sessions now")
    })
}

fn rule_json(rule: &Option<RuleLoc>) -> Value {
    match rule {
        None => Value::Null,
        Some(r) => json!({"file": r.file, "line": r.line, "text": r.text}),
    }
}

pub fn render_json(r: &Report, old: &str, new: &str) -> Value {
    let role_summary = |s: &RoleSummary| {
        json!({
            "role": s.name,
            "members": s.members.iter().map(|(c, v)| json!({"claim": c, "value": v})).collect::<Vec<_>>(),
            "grants": s.grants,
        })
    };
    let roles: Vec<Value> = r
        .roles
        .iter()
        .map(|(name, changes)| {
            let summary: Vec<Value> = groups(changes)
                .into_iter()
                .map(|(g, w, n, c)| {
                    json!({"group": g, "change": group_direction(w, n, c), "wider": w, "narrower": n, "changed": c})
                })
                .collect();
            let cells: Vec<Value> = changes
                .iter()
                .map(|c| {
                    let mut o = json!({
                        "kind": match &c.subject {
                            Subject::Class(_) => "class",
                            Subject::Table { .. } => "table",
                            Subject::Column { .. } => "column",
                            Subject::Function(_) => "function",
                            Subject::Member { .. } => "member",
                            Subject::Mask { .. } => "mask",
                            Subject::MaxRows => "max-rows",
                            Subject::MaxBytes => "max-bytes",
                            Subject::Rate => "rate",
                            Subject::MaxSessions => "max-sessions",
                            Subject::MaxConcurrent => "max-concurrent",
                            Subject::TokenBinding => "token-binding",
                            Subject::DelegationDepth => "delegation-depth",
                            Subject::Budget { .. } => "budget",
                        },
                        "group": c.subject.group(),
                        "class": c.subject.class().map(|c| c.name()),
                        "table": c.subject.table(),
                        "column": c.subject.column(),
                        "direction": c.direction.name(),
                        "old": c.old,
                        "new": c.new,
                        "rule": rule_json(&c.rule),
                        "note": c.note,
                    });
                    if let (Subject::Table { columns, all_columns, .. }, Some(obj)) =
                        (&c.subject, o.as_object_mut())
                    {
                        obj.insert("columns".into(), json!(columns));
                        obj.insert("all_columns".into(), json!(all_columns));
                    }
                    if let (Subject::Function(f), Some(obj)) = (&c.subject, o.as_object_mut()) {
                        obj.insert("function".into(), json!(f));
                    }
                    if let (Subject::Member { claim, value }, Some(obj)) =
                        (&c.subject, o.as_object_mut())
                    {
                        obj.insert("claim".into(), json!(claim));
                        obj.insert("value".into(), json!(value));
                    }
                    o
                })
                .collect();
            // Every class, so tools can read "unchanged" explicitly.
            let mut classes = serde_json::Map::new();
            for class in StatementClass::ALL {
                let (w, n, c) = changes
                    .iter()
                    .filter(|ch| ch.subject.class() == Some(class))
                    .fold((0, 0, 0), |(w, n, c), ch| match ch.direction {
                        Direction::Wider => (w + 1, n, c),
                        Direction::Narrower => (w, n + 1, c),
                        Direction::Changed => (w, n, c + 1),
                    });
                classes.insert(class.name().into(), json!(group_direction(w, n, c)));
            }
            let mut o = json!({"role": name, "summary": summary, "classes": classes, "changes": cells});
            if let Some((other, is_new)) = r.stand_ins.get(name) {
                o["compared_with"] = json!({"role": other, "variant_is_new": is_new});
            }
            o
        })
        .collect();
    json!({
        "old": old,
        "new": new,
        "widening": r.is_widening(),
        "wider": r.widening_count(),
        "narrower": r.narrowing_count(),
        "roles_added": r.roles_added.iter().map(role_summary).collect::<Vec<_>>(),
        "roles_removed": r.roles_removed.iter().map(role_summary).collect::<Vec<_>>(),
        "roles_unchanged": r.unchanged_roles,
        "roles": roles,
    })
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn render_markdown(r: &Report, old: &str, new: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### pgate policy diff\n");
    let _ = writeln!(s, "`{}` → `{}`\n", md_escape(old), md_escape(new));
    if r.is_empty() {
        let _ = writeln!(
            s,
            "✅ No differences: every role decides every cell the same way."
        );
        return s;
    }
    if r.is_widening() {
        let _ = writeln!(
            s,
            "⚠️ **{} change{} make{} the policy more permissive** ({} less permissive).\n",
            r.widening_count(),
            plural(r.widening_count()),
            if r.widening_count() == 1 { "s" } else { "" },
            r.narrowing_count()
        );
    } else {
        let _ = writeln!(
            s,
            "✅ Nothing became more permissive ({} change{} less permissive).\n",
            r.narrowing_count(),
            plural(r.narrowing_count())
        );
    }
    let _ = writeln!(s, "| role | what | change | wider | narrower |");
    let _ = writeln!(s, "|---|---|---|---:|---:|");
    for role in &r.roles_added {
        let _ = writeln!(
            s,
            "| `{}` | role | 🆕 added | — | — |",
            md_escape(&role.name)
        );
    }
    for role in &r.roles_removed {
        let _ = writeln!(
            s,
            "| `{}` | role | 🗑️ removed | — | — |",
            md_escape(&role.name)
        );
    }
    for (name, changes) in &r.roles {
        for (g, w, n, c) in groups(changes) {
            let dir = group_direction(w, n, c);
            let icon = match dir {
                "wider" => "🔺 wider",
                "narrower" => "🔻 narrower",
                "mixed" => "🔀 mixed",
                _ => "〰️ changed",
            };
            let _ = writeln!(
                s,
                "| `{}` | {g} | {icon} | {} | {n} |",
                md_escape(name),
                w + c
            );
        }
    }
    if !r.unchanged_roles.is_empty() {
        let _ = writeln!(
            s,
            "\nUnchanged: {}.",
            r.unchanged_roles
                .iter()
                .map(|n| format!("`{}`", md_escape(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for role in &r.roles_added {
        let _ = writeln!(
            s,
            "\n<details><summary>🆕 role <code>{}</code></summary>\n",
            md_escape(&role.name)
        );
        for (c, v) in &role.members {
            let _ = writeln!(s, "- member `{}={}`", md_escape(c), md_escape(v));
        }
        for g in &role.grants {
            let _ = writeln!(s, "- {}", md_escape(g));
        }
        let _ = writeln!(s, "\n</details>");
    }
    for (name, changes) in &r.roles {
        let _ = writeln!(
            s,
            "\n<details><summary>role <code>{}</code>: {} change{}</summary>\n",
            md_escape(name),
            changes.len(),
            plural(changes.len())
        );
        let _ = writeln!(s, "| | group | subject | old | new | rule |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for (group, _, _, _) in groups(changes) {
            for c in sorted_changes(changes, group) {
                let icon = match c.direction {
                    Direction::Wider => "🔺",
                    Direction::Narrower => "🔻",
                    Direction::Changed => "〰️",
                };
                let mut subject = md_escape(&c.subject.describe());
                if let Some(note) = &c.note {
                    let _ = write!(subject, " <sub>{}</sub>", md_escape(note));
                }
                let rule = c
                    .rule
                    .as_ref()
                    .map(|r| format!("`{}`", md_escape(&r.location())))
                    .unwrap_or_else(|| "default deny".to_string());
                let _ = writeln!(
                    s,
                    "| {icon} | {group} | {subject} | {} | {} | {rule} |",
                    md_escape(&c.old),
                    md_escape(&c.new)
                );
            }
        }
        let _ = writeln!(s, "\n</details>");
    }
    s
}

// ------------------------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn allow(file: &str, line: u32) -> Verdict {
        Verdict {
            allowed: true,
            rule: Some(RuleLoc {
                file: file.into(),
                line,
                text: "allow".into(),
            }),
        }
    }
    fn deny() -> Verdict {
        Verdict::default()
    }

    fn cell(allowed: bool, cols: &[(&str, bool)]) -> TableCell {
        TableCell {
            cell: if allowed { allow("r.kdl", 1) } else { deny() },
            columns: cols
                .iter()
                .map(|(c, a)| {
                    (
                        c.to_string(),
                        if *a && allowed {
                            allow("r.kdl", 1)
                        } else {
                            deny()
                        },
                    )
                })
                .collect(),
            order: cols.iter().rev().map(|(c, _)| c.to_string()).collect(),
        }
    }

    fn snap(roles: Vec<(&str, RoleSnap)>) -> Snapshot {
        Snapshot {
            roles: roles.into_iter().map(|(n, r)| (n.to_string(), r)).collect(),
            tables: [(
                "public.customers".to_string(),
                ["id", "ssn"].iter().map(|s| s.to_string()).collect(),
            )]
            .into_iter()
            .collect(),
            functions: BTreeSet::new(),
            stand_ins: BTreeMap::new(),
        }
    }

    fn role_with(customers: TableCell) -> RoleSnap {
        let mut r = RoleSnap::default();
        r.tables.insert(
            (StatementClass::Select, "public.customers".into()),
            customers,
        );
        r
    }

    #[test]
    fn identical_snapshots_have_no_changes() {
        let a = snap(vec![(
            "analyst",
            role_with(cell(true, &[("id", true), ("ssn", false)])),
        )]);
        let r = compare(&a, &a.clone());
        assert!(r.is_empty());
        assert!(!r.is_widening());
        assert!(render_human(&r, "a", "b").contains("no differences"));
    }

    #[test]
    fn column_allowed_is_wider_and_names_the_rule() {
        let old = snap(vec![(
            "analyst",
            role_with(cell(true, &[("id", true), ("ssn", false)])),
        )]);
        let mut new_role = role_with(cell(true, &[("id", true), ("ssn", true)]));
        if let Some(c) = new_role
            .tables
            .get_mut(&(StatementClass::Select, "public.customers".into()))
        {
            c.columns
                .insert("ssn".into(), allow("roles/analyst.kdl", 7));
        }
        let new = snap(vec![("analyst", new_role)]);
        let r = compare(&old, &new);
        assert!(r.is_widening());
        let changes = &r.roles["analyst"];
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert_eq!(c.direction, Direction::Wider);
        assert_eq!(c.old, "deny");
        assert_eq!(c.new, "allow");
        assert_eq!(
            c.subject,
            Subject::Column {
                class: StatementClass::Select,
                table: "public.customers".into(),
                column: "ssn".into()
            }
        );
        assert_eq!(
            c.rule.as_ref().map(RuleLoc::location).as_deref(),
            Some("roles/analyst.kdl:7")
        );
        let json = render_json(&r, "old.pgt", "new.pgt");
        assert_eq!(json["widening"], true);
        assert_eq!(json["roles"][0]["changes"][0]["column"], "ssn");
        assert_eq!(json["roles"][0]["changes"][0]["rule"]["line"], 7);
        assert!(render_markdown(&r, "o", "n").contains("🔺"));
    }

    #[test]
    fn table_denied_is_narrower() {
        let old = snap(vec![(
            "support",
            role_with(cell(true, &[("id", true), ("ssn", false)])),
        )]);
        let new = snap(vec![(
            "support",
            role_with(cell(false, &[("id", false), ("ssn", false)])),
        )]);
        let r = compare(&old, &new);
        assert!(!r.is_widening());
        assert_eq!(r.narrowing_count(), 1);
        let c = &r.roles["support"][0];
        assert_eq!(c.direction, Direction::Narrower);
        match &c.subject {
            Subject::Table {
                columns,
                all_columns,
                ..
            } => {
                assert_eq!(columns, &vec!["id".to_string()]);
                assert!(!all_columns);
            }
            other => panic!("unexpected subject {other:?}"),
        }
    }

    #[test]
    fn roles_added_and_removed() {
        let old = snap(vec![("old-role", role_with(cell(true, &[("id", true)])))]);
        let mut added = role_with(cell(true, &[("id", true), ("ssn", false)]));
        added.members.insert(("groups".into(), "x".into()));
        let new = snap(vec![("new-role", added)]);
        let r = compare(&old, &new);
        assert_eq!(r.roles_added.len(), 1);
        assert_eq!(r.roles_removed.len(), 1);
        assert!(r.is_widening());
        assert_eq!(
            r.roles_added[0].grants,
            vec!["select: public.customers (id)".to_string()]
        );
    }

    #[test]
    fn a_mask_that_comes_to_allow_predicates_is_wider() {
        let mut o = RoleSnap::default();
        let key = ("public.customers".to_string(), "email".to_string());
        o.masks.insert(key.clone(), (MaskKind::Hash, None));
        let mut n = o.clone();
        n.mask_predicates.insert(key.clone());
        let mask = Subject::Mask {
            table: key.0.clone(),
            column: key.1.clone(),
        };
        let r = compare(&snap(vec![("x", o.clone())]), &snap(vec![("x", n.clone())]));
        let c = r.roles["x"].iter().find(|c| c.subject == mask).unwrap();
        assert_eq!(c.direction, Direction::Wider);
        assert_eq!(c.new, "predicates allowed");
        let r = compare(&snap(vec![("x", n)]), &snap(vec![("x", o)]));
        let c = r.roles["x"].iter().find(|c| c.subject == mask).unwrap();
        assert_eq!(c.direction, Direction::Narrower);
    }

    #[test]
    fn masks_limits_rates_and_members() {
        let mut o = RoleSnap::default();
        o.masks.insert(
            ("public.customers".into(), "email".into()),
            (MaskKind::Redact, None),
        );
        o.masks.insert(
            ("public.customers".into(), "phone".into()),
            (MaskKind::Hash, None),
        );
        o.max_rows = Some(100);
        o.max_bytes = None;
        o.max_sessions = Some(1);
        o.max_concurrent = None;
        o.rates.push((
            RateSnap {
                bytes_per_second: 1 << 20,
                burst_bytes: 8 << 20,
                scope: RateScope::Identity,
                on_exceed: OnExceed::Terminate,
            },
            None,
        ));
        o.members.insert(("groups".into(), "a".into()));
        let mut n = o.clone();
        n.masks.remove(&("public.customers".into(), "email".into()));
        n.masks.insert(
            ("public.customers".into(), "phone".into()),
            (MaskKind::Null, None),
        );
        n.max_rows = Some(1000);
        n.max_bytes = Some(1 << 20);
        n.max_sessions = None;
        n.max_concurrent = Some(4);
        n.certificate_bound = true;
        n.rates[0].0.on_exceed = OnExceed::Throttle;
        n.members.insert(("groups".into(), "b".into()));
        let r = compare(&snap(vec![("x", o)]), &snap(vec![("x", n)]));
        let ch = &r.roles["x"];
        let dir = |s: Subject| ch.iter().find(|c| c.subject == s).map(|c| c.direction);
        assert_eq!(
            dir(Subject::Mask {
                table: "public.customers".into(),
                column: "email".into()
            }),
            Some(Direction::Wider)
        );
        assert_eq!(
            dir(Subject::Mask {
                table: "public.customers".into(),
                column: "phone".into()
            }),
            Some(Direction::Narrower)
        );
        assert_eq!(dir(Subject::MaxRows), Some(Direction::Wider));
        assert_eq!(dir(Subject::MaxBytes), Some(Direction::Narrower));
        // A single-use token made reusable widens; a concurrency cap narrows.
        assert_eq!(dir(Subject::MaxSessions), Some(Direction::Wider));
        assert_eq!(dir(Subject::MaxConcurrent), Some(Direction::Narrower));
        assert_eq!(dir(Subject::TokenBinding), Some(Direction::Narrower));
        assert_eq!(dir(Subject::Rate), Some(Direction::Wider));
        assert_eq!(
            dir(Subject::Member {
                claim: "groups".into(),
                value: "b".into()
            }),
            Some(Direction::Wider)
        );
        let human = render_human(&r, "a", "b");
        assert!(human.contains("limit rows: 100 → 1000"), "{human}");
        assert!(human.contains("limit bytes: unlimited → 1MiB"), "{human}");
    }

    #[test]
    fn byte_formatting() {
        assert_eq!(format_bytes(16 << 20), "16MiB");
        assert_eq!(format_bytes(1536), "1536B");
        assert_eq!(format_bytes(4 << 30), "4GiB");
    }

    /// Comparing only the tables whose (group, column list) pairs differ gives exactly the
    /// report comparing every cell gives.
    #[test]
    fn paired_snapshots_report_what_full_ones_report() {
        let catalog = |extra: &str| {
            let mut c = String::new();
            for s in 0..3 {
                for t in 0..5 {
                    c.push_str(&format!(
                        "table \"s{s}.t{t}\" {{ columns \"id\" \"v\"\n column \"e\" {{ tags \"pii\" }} }}\n"
                    ));
                }
            }
            c.push_str("table \"s0.wide\" { columns \"id\" \"v\" \"w\"\n tags \"pii\" }\n");
            c.push_str(extra);
            c
        };
        let old = format!(
            "{}role \"a\" {{\n allow \"select\" table=\"s1.*\"\n allow \"insert\" table=\"s0.t3\"\n mask column-tag=\"pii\" with=\"hash\"\n}}\nrole \"gone\" {{ allow \"select\" table=\"s2.*\" }}\n",
            catalog("table \"s9.old\" { columns \"id\" }\n")
        );
        let new = format!(
            "{}role \"a\" {{\n allow \"select\" table=\"s1.*\" {{ columns \"id\" }}\n allow \"select\" tag=\"pii\"\n allow \"insert\" table=\"s0.t4\"\n mask column-tag=\"pii\" with=\"redact\"\n}}\nrole \"new\" {{ allow \"delete\" table=\"s2.t1\" }}\n",
            catalog("table \"s9.new\" { columns \"id\" }\n")
        );
        let build = |text: &str| {
            let c = crate::compile_str("p.kdl", text);
            assert!(!c.has_errors(), "{:?}", c.diagnostics.items);
            c.table_bytes().unwrap()
        };
        let (ob, nb) = (build(&old), build(&new));
        let (ot, nt) = (Table::parse(&ob).unwrap(), Table::parse(&nb).unwrap());
        let full = compare(&Snapshot::from_table(&ot), &Snapshot::from_table(&nt));
        let (po, pn) = Snapshot::pair(&ot, &nt);
        let paired = compare(&po, &pn);
        assert!(!full.is_empty());
        assert_eq!(paired, full);
        // And only what differs was materialised.
        assert!(pn.roles["a"].tables.len() < Snapshot::from_table(&nt).roles["a"].tables.len());
    }
}
