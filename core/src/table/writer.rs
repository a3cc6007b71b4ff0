//! Serialises a [`CompiledPolicy`] into `.pgt` bytes, deterministically.
//!
//! The writer lays out; it never decides. Catalog tables and roles are sorted by name (and
//! every index remapped); column lists, cell values, groups, maps and column sets are
//! interned in the order they are first met while walking that sorted order, so the same
//! input always gives the same bytes. It runs in the compiler only, so it may allocate
//! freely.

use std::collections::HashMap;

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

use super::format::*;
use super::model::{
    Catalog, Cell, ColumnAccess, CompiledPolicy, CompiledRole, Effect, Group, GroupMask, OnExceed,
    PatternKind, RateScope, RoleGroups, TableDecl,
};
use crate::class::StatementClass;

/// BLAKE3 over a canonical serialisation of the catalog (every declared table — aliases
/// as the table they decide as — sorted; names and tags). How the compiler grouped tables
/// does not change it.
pub fn catalog_digest(catalog: &Catalog) -> [u8; 32] {
    let mut tables: Vec<(&str, &str, &TableDecl)> = catalog
        .tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str(), t))
        .chain(catalog.aliases.iter().filter_map(|a| {
            let t = catalog.tables.get(a.table as usize)?;
            Some((a.schema.as_str(), a.name.as_str(), t))
        }))
        .collect();
    tables.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut funcs: Vec<_> = catalog.functions.iter().collect();
    funcs.sort();
    let mut h = blake3::Hasher::new();
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put("tables");
    for (schema, name, t) in tables {
        put(schema);
        put(name);
        for tag in &t.tags {
            put(tag);
        }
        put("columns");
        for c in &t.columns {
            put(&c.name);
            for tag in &c.tags {
                put(tag);
            }
            put("");
        }
    }
    put("functions");
    for f in funcs {
        put(&f.schema);
        put(&f.name);
        for tag in &f.tags {
            put(tag);
        }
        put("");
        if let Some(o) = &f.overloads {
            put("overloads");
            for sig in o {
                put(sig);
            }
            put("");
        }
    }
    *h.finalize().as_bytes()
}

#[derive(Default)]
struct Strings {
    bytes: Vec<u8>,
    seen: HashMap<String, StrRef>,
}

impl Strings {
    fn add(&mut self, s: &str) -> StrRef {
        if let Some(r) = self.seen.get(s) {
            return *r;
        }
        let r = StrRef {
            offset: U32::new(self.bytes.len() as u32),
            len: U32::new(s.len() as u32),
        };
        self.bytes.extend_from_slice(s.as_bytes());
        self.seen.insert(s.to_owned(), r);
        r
    }
}

fn opt(v: Option<u32>) -> U32 {
    U32::new(v.unwrap_or(NONE))
}

struct Interner<K> {
    map: HashMap<K, u32>,
    next: u32,
}

impl<K: std::hash::Hash + Eq> Interner<K> {
    fn new() -> Self {
        Interner {
            map: HashMap::new(),
            next: 0,
        }
    }
    /// Returns (id, whether it is new).
    fn intern(&mut self, k: K) -> (u32, bool) {
        if let Some(id) = self.map.get(&k) {
            return (*id, false);
        }
        let id = self.next;
        self.next += 1;
        self.map.insert(k, id);
        (id, true)
    }
}

/// Why a policy cannot be laid out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error(
        "role `{role}` tells {groups} groups of tables apart; a table holds at most {max} per role: split the role or give its rules fewer distinct table selectors"
    )]
    TooManyGroups {
        role: String,
        groups: usize,
        max: usize,
    },
    #[error("the policy has more than {max} {what}; a table holds at most that many")]
    TooMany { what: &'static str, max: usize },
}

/// Most groups (of tables a role decides alike) one role may have: map entries are u16.
pub const MAX_GROUPS_PER_ROLE: usize = u16::MAX as usize;

/// One group's decisions while laying a role out: the cell value per statement class, its
/// masks (column, kind, rule, flags) and the column count those refer to (0 if none).
type GroupKey = ([u32; StatementClass::COUNT], Vec<(u32, u8, u32, u8)>, u32);

/// Lays out the compiled policy. The same input always gives the same bytes.
///
/// Tables are laid out by decision class: each [`TableDecl`] is one class, its
/// [`TableAlias`]es members of it. Per role, classes with the same cells and masks form one
/// group, so a role that treats every table alike costs one record, not one per table.
pub fn write(policy: &CompiledPolicy) -> Result<Vec<u8>, WriteError> {
    let mut strings = Strings::default();
    let catalog = &policy.catalog;
    let too_many = |what, n: usize| {
        if n >= NONE as usize {
            Err(WriteError::TooMany {
                what,
                max: NONE as usize - 1,
            })
        } else {
            Ok(())
        }
    };
    too_many("tables", catalog.tables.len() + catalog.aliases.len())?;
    too_many("rules", policy.rules.len())?;

    // --- classes: the declared tables in (schema, name) order, remapped ---
    let mut class_order: Vec<u32> = (0..catalog.tables.len() as u32).collect();
    class_order.sort_by(|a, b| {
        let (ta, tb) = (&catalog.tables[*a as usize], &catalog.tables[*b as usize]);
        (&ta.schema, &ta.name).cmp(&(&tb.schema, &tb.name))
    });
    let mut class_remap = vec![0u32; class_order.len()];
    for (new, old) in class_order.iter().enumerate() {
        class_remap[*old as usize] = new as u32;
    }
    let nclasses = class_order.len();

    let mut func_order: Vec<u32> = (0..catalog.functions.len() as u32).collect();
    func_order.sort_by(|a, b| {
        let (fa, fb) = (
            &catalog.functions[*a as usize],
            &catalog.functions[*b as usize],
        );
        // By name first: the functions of one name are contiguous (KEY_FUNCTION_NAME).
        (&fa.name, &fa.schema).cmp(&(&fb.name, &fb.schema))
    });
    let mut func_remap = vec![0u32; func_order.len()];
    for (new, old) in func_order.iter().enumerate() {
        func_remap[*old as usize] = new as u32;
    }
    let mut role_order: Vec<usize> = (0..policy.roles.len()).collect();
    role_order.sort_by(|a, b| policy.roles[*a].name.cmp(&policy.roles[*b].name));
    let nfuncs = func_order.len();

    // --- rules (kept in the compiler's order: their ids are referenced everywhere) ---
    let rules: Vec<RuleRec> = policy
        .rules
        .iter()
        .map(|r| RuleRec {
            file: strings.add(&r.file),
            line: U32::new(r.line),
            column: U32::new(r.column),
            role: strings.add(&r.role),
            text: strings.add(&r.text),
            kind: r.kind as u8,
            pad: [0; 7],
        })
        .collect();

    // --- column lists (interned by names), classes ---
    let mut index_keys: Vec<(u64, u32, u32)> = Vec::new();
    let mut columns = Vec::new();
    let mut column_lists: Vec<ColumnListRec> = Vec::new();
    let mut list_interner: Interner<Vec<&str>> = Interner::new();
    let mut classes = Vec::with_capacity(nclasses);
    for &old in &class_order {
        let t = &catalog.tables[old as usize];
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        let (list, new) = list_interner.intern(names);
        if new {
            let first = columns.len() as u32;
            for c in &t.columns {
                let gid = columns.len() as u32;
                columns.push(ColumnRec {
                    name: strings.add(&c.name),
                });
                index_keys.push((
                    key_hash(KEY_COLUMN, list, &[c.name.as_bytes()]),
                    KEY_COLUMN,
                    gid,
                ));
            }
            column_lists.push(ColumnListRec {
                first_column: U32::new(first),
                column_count: U32::new(t.columns.len() as u32),
            });
        }
        classes.push(ClassRec {
            column_list: U32::new(list),
        });
    }

    // --- tables: every declared name, sorted, with its class ---
    let mut named: Vec<(&str, &str, u32)> = Vec::with_capacity(nclasses + catalog.aliases.len());
    for (old, t) in catalog.tables.iter().enumerate() {
        named.push((&t.schema, &t.name, class_remap[old]));
    }
    for a in &catalog.aliases {
        if let Some(&class) = class_remap.get(a.table as usize) {
            named.push((&a.schema, &a.name, class));
        }
    }
    named.sort_unstable();
    named.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    let mut tables = Vec::with_capacity(named.len());
    for (id, (schema, name, class)) in named.iter().enumerate() {
        tables.push(TableRec {
            schema: strings.add(schema),
            name: strings.add(name),
            class: U32::new(*class),
            column_list: classes[*class as usize].column_list,
        });
        index_keys.push((
            key_hash(KEY_TABLE, 0, &[schema.as_bytes(), name.as_bytes()]),
            KEY_TABLE,
            id as u32,
        ));
    }
    drop(named);

    let mut functions = Vec::with_capacity(nfuncs);
    let mut last_name: Option<&str> = None;
    for (new, old) in func_order.iter().enumerate() {
        let f = &catalog.functions[*old as usize];
        if last_name != Some(f.name.as_str()) {
            index_keys.push((
                key_hash(KEY_FUNCTION_NAME, 0, &[f.name.as_bytes()]),
                KEY_FUNCTION_NAME,
                new as u32,
            ));
            last_name = Some(f.name.as_str());
        }
        let overloads = match &f.overloads {
            Some(list) => {
                let mut sorted: Vec<&str> = list.iter().map(String::as_str).collect();
                sorted.sort_unstable();
                sorted.dedup();
                let mut text = String::new();
                for sig in sorted {
                    text.push_str(sig);
                    text.push('\n');
                }
                text
            }
            None => String::new(),
        };
        functions.push(FunctionRec {
            schema: strings.add(&f.schema),
            name: strings.add(&f.name),
            overloads: strings.add(&overloads),
        });
        index_keys.push((
            key_hash(KEY_FUNCTION, 0, &[f.schema.as_bytes(), f.name.as_bytes()]),
            KEY_FUNCTION,
            new as u32,
        ));
    }

    // --- roles: groups, maps, cells ---
    let mut roles = Vec::with_capacity(role_order.len());
    let mut members = Vec::new();
    let mut maps: Vec<MapRec> = Vec::new();
    let mut map_entries: Vec<U16> = Vec::new();
    let mut map_interner: Interner<Vec<u16>> = Interner::new();
    let mut locals: Vec<LocalRec> = Vec::new();
    let mut func_verdicts: Vec<U32> = Vec::new();
    let mut patterns = Vec::new();
    let mut masks: Vec<MaskRec> = Vec::new();
    let mut rates = Vec::new();
    let mut actors: Vec<StrRef> = Vec::new();
    let mut budgets: Vec<BudgetRec> = Vec::new();
    let mut values = Values::new();
    // Where each role lands (variants name their base by its new index).
    let mut new_index = vec![0u32; policy.roles.len()];
    for (new, &old) in role_order.iter().enumerate() {
        new_index[old] = new as u32;
    }

    for &ri in &role_order {
        let role = &policy.roles[ri];
        let new_role = roles.len() as u32;
        index_keys.push((
            key_hash(KEY_ROLE, 0, &[role.name.as_bytes()]),
            KEY_ROLE,
            new_role,
        ));
        let members_first = members.len() as u32;
        let mut ms = role.members.clone();
        ms.sort();
        ms.dedup();
        for m in &ms {
            members.push(MemberRec {
                claim: strings.add(&m.claim),
                value: strings.add(&m.value),
            });
        }

        // The class-level record first, then the role's groups in class order.
        let mut class_level = [0u32; StatementClass::COUNT];
        let mut listed: Vec<_> = role.cells.iter().filter(|e| e.table.is_none()).collect();
        listed.sort_by_key(|e| e.class);
        for e in listed {
            class_level[e.class as usize] = values.cell(&e.cell, None);
        }
        let locals_first = locals.len() as u32;
        locals.push(LocalRec {
            cells: class_level.map(U32::new),
            columns: U32::new(0),
            masks_first: U32::new(masks.len() as u32),
            masks_count: U32::new(0),
        });
        let per_table;
        let rg = match &role.groups {
            Some(g) => g,
            None => {
                per_table = groups_of_tables(role, catalog);
                &per_table
            }
        };
        let mut groups: HashMap<GroupKey, u16> = HashMap::new();
        let mut local_of: Vec<Option<u16>> = vec![None; rg.groups.len()];
        let mut map: Vec<u16> = Vec::with_capacity(nclasses);
        for &old in &class_order {
            let gi = rg.group_of.get(old as usize).copied().unwrap_or(NONE) as usize;
            if let Some(Some(e)) = local_of.get(gi) {
                map.push(*e);
                continue;
            }
            let empty = Group::default();
            let g = rg.groups.get(gi).unwrap_or(&empty);
            let key = values.group_key(g);
            let next = groups.len();
            let entry = match groups.get(&key) {
                Some(e) => *e,
                None => {
                    if next >= MAX_GROUPS_PER_ROLE {
                        return Err(WriteError::TooManyGroups {
                            role: role.name.clone(),
                            groups: next + 1,
                            max: MAX_GROUPS_PER_ROLE,
                        });
                    }
                    let masks_first = masks.len() as u32;
                    for (column, kind, rule, flags) in &key.1 {
                        masks.push(MaskRec {
                            column: U32::new(*column),
                            rule: U32::new(*rule),
                            kind: *kind,
                            flags: *flags,
                            pad: [0; 2],
                        });
                    }
                    locals.push(LocalRec {
                        cells: key.0.map(U32::new),
                        columns: U32::new(key.2),
                        masks_first: U32::new(masks_first),
                        masks_count: U32::new(key.1.len() as u32),
                    });
                    groups.insert(key, next as u16);
                    next as u16
                }
            };
            if let Some(slot) = local_of.get_mut(gi) {
                *slot = Some(entry);
            }
            map.push(entry);
        }
        let ngroups = groups.len() as u32;
        let (map_id, new) = map_interner.intern(map.clone());
        if new {
            maps.push(MapRec {
                first: U32::new(map_entries.len() as u32),
                groups: U32::new(ngroups),
            });
            map_entries.extend(map.into_iter().map(U16::new));
        }

        // Function verdicts, dense per role.
        let mut fv = vec![0u32; nfuncs];
        for (f, effect, rule) in &role.functions {
            let Some(&nf) = func_remap.get(*f as usize) else {
                continue;
            };
            let rec = CellRec {
                effect: match effect {
                    Effect::Allow => EFFECT_ALLOW,
                    Effect::Deny => EFFECT_DENY,
                },
                pad: [0; 3],
                rule: opt(*rule),
                allow_cols: U32::new(NONE),
                denied_cols: U32::new(NONE),
                denied_rule: U32::new(NONE),
            };
            fv[nf as usize] = values.intern(rec);
        }
        func_verdicts.extend(fv.into_iter().map(U32::new));

        let patterns_first = patterns.len() as u32;
        let mut ps = role.patterns.clone();
        ps.sort();
        ps.dedup();
        for p in &ps {
            patterns.push(PatternRec {
                kind: match p.kind {
                    PatternKind::Table => 0,
                    PatternKind::Function => 1,
                },
                effect: match p.effect {
                    Effect::Allow => EFFECT_ALLOW,
                    Effect::Deny => EFFECT_DENY,
                },
                pad: [0; 2],
                classes: U32::new(p.classes.0),
                pattern: strings.add(&p.pattern),
                rule: U32::new(p.rule),
                pad2: U32::new(0),
            });
        }

        let rates_first = rates.len() as u32;
        let mut rs = role.rates.clone();
        rs.sort();
        rs.dedup();
        for r in &rs {
            rates.push(RateRec {
                bytes_per_second: U64::new(r.bytes_per_second),
                burst_bytes: U64::new(r.burst_bytes),
                rule: U32::new(r.rule),
                scope: match r.scope {
                    RateScope::Session => 0,
                    RateScope::Identity => 1,
                },
                on_exceed: match r.on_exceed {
                    OnExceed::Throttle => 0,
                    OnExceed::Terminate => 1,
                },
                pad: [0; 2],
            });
        }

        let budgets_first = budgets.len() as u32;
        let mut bs = role.budgets.clone();
        bs.sort();
        bs.dedup();
        for b in &bs {
            budgets.push(BudgetRec {
                max_rows: U64::new(b.max_rows.unwrap_or(NO_LIMIT)),
                max_bytes: U64::new(b.max_bytes.unwrap_or(NO_LIMIT)),
                window_secs: U32::new(b.window_secs),
                rule: U32::new(b.rule),
            });
        }

        let variant = role.delegation.variant.as_ref();
        let actors_first = actors.len() as u32;
        let mut names: Vec<&String> = variant
            .map(|v| v.actors.iter().collect())
            .unwrap_or_default();
        names.sort();
        names.dedup();
        actors.extend(names.into_iter().map(|a| strings.add(a)));
        roles.push(RoleRec {
            name: strings.add(&role.name),
            members_first: U32::new(members_first),
            members_count: U32::new(members.len() as u32 - members_first),
            patterns_first: U32::new(patterns_first),
            patterns_count: U32::new(patterns.len() as u32 - patterns_first),
            rates_first: U32::new(rates_first),
            rates_count: U32::new(rates.len() as u32 - rates_first),
            map: U32::new(map_id),
            locals_first: U32::new(locals_first),
            locals_count: U32::new(locals.len() as u32 - locals_first),
            limit_rule: opt(role.limits.rule),
            max_rows: U64::new(role.limits.max_rows.unwrap_or(NO_LIMIT)),
            max_bytes: U64::new(role.limits.max_bytes.unwrap_or(NO_LIMIT)),
            token_rule: opt(role.token_use.rule),
            max_sessions: U32::new(role.token_use.max_sessions.unwrap_or(u32::MAX)),
            max_concurrent: U32::new(role.token_use.max_concurrent.unwrap_or(u32::MAX)),
            token_flags: U32::new(u32::from(role.token_use.require_certificate)),
            delegation_rule: opt(role.delegation.rule),
            max_depth: U32::new(role.delegation.max_depth.unwrap_or(u32::MAX)),
            variant_of: U32::new(variant.map_or(NONE, |v| {
                new_index.get(v.base as usize).copied().unwrap_or(NONE)
            })),
            min_depth: U32::new(variant.map_or(0, |v| v.min_depth)),
            actors_first: U32::new(actors_first),
            actors_count: U32::new(actors.len() as u32 - actors_first),
            budgets_first: U32::new(budgets_first),
            budgets_count: U32::new(budgets.len() as u32 - budgets_first),
        });
    }

    // --- name index: open addressing, linear probing, ≤ 50% load ---
    let capacity = (index_keys.len() * 2).next_power_of_two().max(16);
    let empty = IndexSlot {
        hash: U64::new(0),
        kind: U32::new(0),
        id: U32::new(0),
    };
    let mut index = vec![empty; capacity];
    // Sorted insertion makes the probe layout independent of input order.
    index_keys.sort();
    for (hash, kind, id) in index_keys {
        let mut pos = (hash as usize) & (capacity - 1);
        while index[pos].kind.get() != 0 {
            pos = (pos + 1) & (capacity - 1);
        }
        index[pos] = IndexSlot {
            hash: U64::new(hash),
            kind: U32::new(kind),
            id: U32::new(id),
        };
    }

    // --- assemble ---
    fn section<T: IntoBytes + zerocopy::Immutable>(
        kind: SectionKind,
        records: &[T],
    ) -> (SectionKind, u32, Vec<u8>) {
        (kind, records.len() as u32, records.as_bytes().to_vec())
    }
    let sections: Vec<(SectionKind, u32, Vec<u8>)> = vec![
        section(SectionKind::Strings, &strings.bytes[..]),
        section(SectionKind::Rules, &rules),
        section(SectionKind::Tables, &tables),
        section(SectionKind::Classes, &classes),
        section(SectionKind::ColumnLists, &column_lists),
        section(SectionKind::Columns, &columns),
        section(SectionKind::Functions, &functions),
        section(SectionKind::NameIndex, &index),
        section(SectionKind::Roles, &roles),
        section(SectionKind::Members, &members),
        section(SectionKind::Maps, &maps),
        section(SectionKind::MapEntries, &map_entries),
        section(SectionKind::Locals, &locals),
        section(SectionKind::Cells, &values.cells),
        section(SectionKind::ColumnSets, &values.colsets),
        section(SectionKind::FunctionVerdicts, &func_verdicts),
        section(SectionKind::Patterns, &patterns),
        section(SectionKind::Masks, &masks),
        section(SectionKind::Rates, &rates),
        section(SectionKind::Actors, &actors),
        section(SectionKind::Budgets, &budgets),
    ];
    for (_, count, bytes) in &sections {
        too_many("records in a section", *count as usize)?;
        too_many("bytes in a section", bytes.len())?;
    }

    let table_len = sections.len() * std::mem::size_of::<SectionEntry>();
    let mut offset = align8(HEADER_LEN + table_len);
    let mut entries = Vec::with_capacity(sections.len());
    for (kind, count, bytes) in &sections {
        entries.push(SectionEntry {
            kind: U32::new(*kind as u32),
            count: U32::new(*count),
            offset: U64::new(offset as u64),
            len: U64::new(bytes.len() as u64),
        });
        offset = align8(offset + bytes.len());
    }
    let total = offset;
    let mut out = vec![0u8; total];
    out[HEADER_LEN..HEADER_LEN + table_len].copy_from_slice(entries.as_bytes());
    for ((_, _, bytes), e) in sections.iter().zip(&entries) {
        let o = e.offset.get() as usize;
        out[o..o + bytes.len()].copy_from_slice(bytes);
    }
    let header = Header {
        magic: MAGIC,
        version: U32::new(FORMAT_VERSION),
        flags: U32::new(0),
        section_count: U32::new(sections.len() as u32),
        reserved: U32::new(0),
        source_digest: policy.source_digest,
        catalog_digest: catalog_digest(&policy.catalog),
        body_checksum: [0; 32],
        body_len: U64::new((total - HEADER_LEN) as u64),
    };
    out[..HEADER_LEN].copy_from_slice(header.as_bytes());
    let checksum = file_checksum(&out);
    out[CHECKSUM_RANGE].copy_from_slice(&checksum);
    Ok(out)
}

/// Interned cell values and column sets.
struct Values {
    cells: Vec<CellRec>,
    cell_ids: Interner<CellRec>,
    colsets: Vec<U64>,
    colset_ids: Interner<Vec<u64>>,
    colset_offsets: Vec<u32>,
}

impl Values {
    fn new() -> Self {
        let mut v = Values {
            cells: Vec::new(),
            cell_ids: Interner::new(),
            colsets: Vec::new(),
            colset_ids: Interner::new(),
            colset_offsets: Vec::new(),
        };
        // Cell value 0 is the default deny.
        v.intern(CellRec {
            effect: EFFECT_DEFAULT_DENY,
            pad: [0; 3],
            rule: U32::new(NONE),
            allow_cols: U32::new(NONE),
            denied_cols: U32::new(NONE),
            denied_rule: U32::new(NONE),
        });
        v
    }

    fn intern(&mut self, rec: CellRec) -> u32 {
        let (id, new) = self.cell_ids.intern(rec);
        if new {
            self.cells.push(rec);
        }
        id
    }

    /// Word offset of a column set of a table `width` columns wide.
    fn colset(&mut self, cols: &[u32], width: u32) -> u32 {
        let mut words = vec![0u64; colset_words(width) as usize];
        for c in cols {
            if let Some(w) = words.get_mut((*c / 64) as usize) {
                *w |= 1u64 << (c % 64);
            }
        }
        let (id, new) = self.colset_ids.intern(words.clone());
        if new {
            self.colset_offsets.push(self.colsets.len() as u32);
            self.colsets.extend(words.into_iter().map(U64::new));
        }
        self.colset_offsets[id as usize]
    }

    /// A cell's value id; `width` is the column count of its table (`None`: class-level,
    /// no column sets).
    fn cell(&mut self, c: &Cell, width: Option<u32>) -> u32 {
        let rec = CellRec {
            effect: match c.effect {
                Effect::Allow => EFFECT_ALLOW,
                Effect::Deny => EFFECT_DENY,
            },
            pad: [0; 3],
            rule: opt(c.rule),
            // A deny's column sets would never be read.
            allow_cols: match (&c.columns, width, c.effect) {
                (ColumnAccess::Only(cols), Some(w), Effect::Allow) => {
                    U32::new(self.colset(cols, w))
                }
                _ => U32::new(NONE),
            },
            denied_cols: match width {
                Some(w) if !c.denied_columns.is_empty() && c.effect == Effect::Allow => {
                    U32::new(self.colset(&c.denied_columns, w))
                }
                _ => U32::new(NONE),
            },
            denied_rule: opt(c.denied_columns_rule),
        };
        self.intern(rec)
    }

    /// A group as laid out: cell values per statement class, masks, column count.
    fn group_key(&mut self, g: &Group) -> GroupKey {
        let mut cells = [0u32; StatementClass::COUNT];
        // Interned in statement-class order, whatever order the compiler listed them in.
        let mut listed: Vec<&(StatementClass, Cell)> = g.cells.iter().collect();
        listed.sort_by_key(|(class, _)| *class);
        for (class, cell) in listed {
            cells[*class as usize] = self.cell(cell, Some(g.columns));
        }
        let mut masks: Vec<(u32, u8, u32, u8)> = g
            .masks
            .iter()
            .map(|m| {
                let flags = if m.predicates { MASK_PREDICATES } else { 0 };
                (m.column, m.kind as u8, m.rule, flags)
            })
            .collect();
        masks.sort();
        masks.dedup_by_key(|m| m.0);
        let uses_columns = !masks.is_empty()
            || cells.iter().any(|&id| {
                self.cells
                    .get(id as usize)
                    .is_some_and(|c| c.allow_cols.get() != NONE || c.denied_cols.get() != NONE)
            });
        (cells, masks, if uses_columns { g.columns } else { 0 })
    }
}

/// A role given per table (hand-built tables) as one group per table.
fn groups_of_tables(role: &CompiledRole, catalog: &Catalog) -> RoleGroups {
    let mut groups: Vec<Group> = catalog
        .tables
        .iter()
        .map(|t| Group {
            cells: Vec::new(),
            masks: Vec::new(),
            columns: t.columns.len() as u32,
        })
        .collect();
    for e in &role.cells {
        if let Some(g) = e.table.and_then(|t| groups.get_mut(t as usize)) {
            g.cells.push((e.class, e.cell.clone()));
        }
    }
    for m in &role.masks {
        if let Some(g) = groups.get_mut(m.table as usize) {
            g.masks.push(GroupMask {
                column: m.column,
                kind: m.kind,
                rule: m.rule,
                predicates: m.predicates,
            });
        }
    }
    RoleGroups {
        group_of: (0..catalog.tables.len() as u32).collect(),
        groups,
    }
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
