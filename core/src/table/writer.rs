//! Serialises a [`CompiledPolicy`] into `.pgt` bytes, deterministically.
//!
//! The writer lays out; it never decides. Catalog tables and roles are sorted by name (and
//! every index remapped), cell values, rows and column sets are interned in the order they
//! are first met while walking that sorted order, so the same input always gives the same
//! bytes. It runs in the compiler only, so it may allocate freely.

use std::collections::HashMap;

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

use super::format::*;
use super::model::{
    Catalog, CellEntry, ColumnAccess, CompiledPolicy, Effect, OnExceed, PatternKind, RateScope,
};
use crate::class::StatementClass;

/// BLAKE3 over a canonical serialisation of the catalog (sorted; names and tags).
pub fn catalog_digest(catalog: &Catalog) -> [u8; 32] {
    let mut tables: Vec<_> = catalog.tables.iter().collect();
    tables.sort();
    let mut funcs: Vec<_> = catalog.functions.iter().collect();
    funcs.sort();
    let mut h = blake3::Hasher::new();
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put("tables");
    for t in tables {
        put(&t.schema);
        put(&t.name);
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

/// Lays out the compiled policy. The same input always gives the same bytes.
pub fn write(policy: &CompiledPolicy) -> Vec<u8> {
    let mut strings = Strings::default();

    // --- catalog, sorted, with index remaps ---
    let mut table_order: Vec<u32> = (0..policy.catalog.tables.len() as u32).collect();
    table_order.sort_by(|a, b| {
        let (ta, tb) = (
            &policy.catalog.tables[*a as usize],
            &policy.catalog.tables[*b as usize],
        );
        (&ta.schema, &ta.name).cmp(&(&tb.schema, &tb.name))
    });
    let mut table_remap = vec![0u32; table_order.len()];
    for (new, old) in table_order.iter().enumerate() {
        table_remap[*old as usize] = new as u32;
    }
    let mut func_order: Vec<u32> = (0..policy.catalog.functions.len() as u32).collect();
    func_order.sort_by(|a, b| {
        let (fa, fb) = (
            &policy.catalog.functions[*a as usize],
            &policy.catalog.functions[*b as usize],
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

    let ntables = table_order.len();
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

    // --- tables and columns ---
    let mut tables = Vec::with_capacity(ntables);
    let mut columns = Vec::new();
    let mut index_keys: Vec<(u64, u32, u32)> = Vec::new();
    for (new, old) in table_order.iter().enumerate() {
        let t = &policy.catalog.tables[*old as usize];
        let first = columns.len() as u32;
        for c in &t.columns {
            let gid = columns.len() as u32;
            columns.push(ColumnRec {
                name: strings.add(&c.name),
            });
            index_keys.push((
                key_hash(KEY_COLUMN, new as u32, &[c.name.as_bytes()]),
                KEY_COLUMN,
                gid,
            ));
        }
        tables.push(TableRec {
            schema: strings.add(&t.schema),
            name: strings.add(&t.name),
            first_column: U32::new(first),
            column_count: U32::new(t.columns.len() as u32),
        });
        index_keys.push((
            key_hash(KEY_TABLE, 0, &[t.schema.as_bytes(), t.name.as_bytes()]),
            KEY_TABLE,
            new as u32,
        ));
    }
    let mut functions = Vec::with_capacity(nfuncs);
    let mut last_name: Option<&str> = None;
    for (new, old) in func_order.iter().enumerate() {
        let f = &policy.catalog.functions[*old as usize];
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

    // --- roles, cells, rows ---
    let mut roles = Vec::with_capacity(role_order.len());
    let mut members = Vec::new();
    let mut role_rows: Vec<U32> = Vec::new();
    let mut rows: Vec<U32> = Vec::new();
    let mut row_interner: Interner<Vec<u32>> = Interner::new();
    let mut cells: Vec<CellRec> = Vec::new();
    let mut cell_interner: Interner<CellRec> = Interner::new();
    let mut colsets: Vec<U64> = Vec::new();
    let mut colset_interner: Interner<Vec<u64>> = Interner::new();
    let mut colset_offsets: Vec<u32> = Vec::new();
    let mut func_verdicts: Vec<U32> = Vec::new();
    let mut patterns = Vec::new();
    let mut masks = Vec::new();
    let mut rates = Vec::new();

    let default_cell = CellRec {
        effect: EFFECT_DEFAULT_DENY,
        pad: [0; 3],
        rule: U32::new(NONE),
        allow_cols: U32::new(NONE),
        denied_cols: U32::new(NONE),
        denied_rule: U32::new(NONE),
    };
    cell_interner.intern(default_cell);
    cells.push(default_cell);

    let mut intern_colset = |cols: &[u32], width: u32| -> u32 {
        let mut words = vec![0u64; colset_words(width) as usize];
        for c in cols {
            if let Some(w) = words.get_mut((*c / 64) as usize) {
                *w |= 1u64 << (c % 64);
            }
        }
        let (id, new) = colset_interner.intern(words.clone());
        if new {
            colset_offsets.push(colsets.len() as u32);
            colsets.extend(words.into_iter().map(U64::new));
        }
        colset_offsets[id as usize]
    };

    for (new_role, &ri) in role_order.iter().enumerate() {
        let role = &policy.roles[ri];
        index_keys.push((
            key_hash(KEY_ROLE, 0, &[role.name.as_bytes()]),
            KEY_ROLE,
            new_role as u32,
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

        // Cells for this role: [class][0 = class-level, 1.. = tables]
        let mut grid: Vec<Vec<u32>> = vec![vec![0u32; ntables + 1]; StatementClass::COUNT];
        let mut entries: Vec<&CellEntry> = role.cells.iter().collect();
        entries.sort_by_key(|e| {
            (
                e.class,
                e.table.map(|t| table_remap.get(t as usize).copied()),
            )
        });
        for e in entries {
            let (slot, width) = match e.table {
                None => (0usize, 0u32),
                Some(t) => {
                    let Some(&nt) = table_remap.get(t as usize) else {
                        continue;
                    };
                    let width = policy.catalog.tables[t as usize].columns.len() as u32;
                    (nt as usize + 1, width)
                }
            };
            let c = &e.cell;
            let rec = CellRec {
                effect: match c.effect {
                    Effect::Allow => EFFECT_ALLOW,
                    Effect::Deny => EFFECT_DENY,
                },
                pad: [0; 3],
                rule: opt(c.rule),
                allow_cols: match &c.columns {
                    ColumnAccess::All => U32::new(NONE),
                    ColumnAccess::Only(cols) => U32::new(intern_colset(cols, width)),
                },
                denied_cols: if c.denied_columns.is_empty() || e.table.is_none() {
                    U32::new(NONE)
                } else {
                    U32::new(intern_colset(&c.denied_columns, width))
                },
                denied_rule: opt(c.denied_columns_rule),
            };
            let (id, new) = cell_interner.intern(rec);
            if new {
                cells.push(rec);
            }
            grid[e.class as usize][slot] = id;
        }
        for row in grid {
            let (id, new) = row_interner.intern(row.clone());
            if new {
                rows.extend(row.into_iter().map(U32::new));
            }
            role_rows.push(U32::new(id));
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
            let (id, new) = cell_interner.intern(rec);
            if new {
                cells.push(rec);
            }
            fv[nf as usize] = id;
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

        let masks_first = masks.len() as u32;
        let mut ms: Vec<_> = role
            .masks
            .iter()
            .filter_map(|m| {
                let nt = *table_remap.get(m.table as usize)?;
                Some((nt, m.column, m.kind as u8, m.rule, m.predicates))
            })
            .collect();
        ms.sort();
        ms.dedup_by_key(|m| (m.0, m.1));
        for (t, c, kind, rule, predicates) in &ms {
            masks.push(MaskRec {
                table: U32::new(*t),
                column: U32::new(*c),
                rule: U32::new(*rule),
                kind: *kind,
                flags: if *predicates { MASK_PREDICATES } else { 0 },
                pad: [0; 2],
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

        roles.push(RoleRec {
            name: strings.add(&role.name),
            members_first: U32::new(members_first),
            members_count: U32::new(ms_len(&members, members_first)),
            patterns_first: U32::new(patterns_first),
            patterns_count: U32::new(patterns.len() as u32 - patterns_first),
            masks_first: U32::new(masks_first),
            masks_count: U32::new(masks.len() as u32 - masks_first),
            rates_first: U32::new(rates_first),
            rates_count: U32::new(rates.len() as u32 - rates_first),
            limit_rule: opt(role.limits.rule),
            pad: U32::new(0),
            max_rows: U64::new(role.limits.max_rows.unwrap_or(NO_LIMIT)),
            max_bytes: U64::new(role.limits.max_bytes.unwrap_or(NO_LIMIT)),
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
    let sections: Vec<(SectionKind, u32, Vec<u8>)> = vec![
        (
            SectionKind::Strings,
            strings.bytes.len() as u32,
            strings.bytes.clone(),
        ),
        (
            SectionKind::Rules,
            rules.len() as u32,
            rules.as_bytes().to_vec(),
        ),
        (
            SectionKind::Tables,
            tables.len() as u32,
            tables.as_bytes().to_vec(),
        ),
        (
            SectionKind::Columns,
            columns.len() as u32,
            columns.as_bytes().to_vec(),
        ),
        (
            SectionKind::Functions,
            functions.len() as u32,
            functions.as_bytes().to_vec(),
        ),
        (
            SectionKind::NameIndex,
            index.len() as u32,
            index.as_bytes().to_vec(),
        ),
        (
            SectionKind::Roles,
            roles.len() as u32,
            roles.as_bytes().to_vec(),
        ),
        (
            SectionKind::Members,
            members.len() as u32,
            members.as_bytes().to_vec(),
        ),
        (
            SectionKind::RoleRows,
            role_rows.len() as u32,
            role_rows.as_bytes().to_vec(),
        ),
        (
            SectionKind::Rows,
            rows.len() as u32,
            rows.as_bytes().to_vec(),
        ),
        (
            SectionKind::Cells,
            cells.len() as u32,
            cells.as_bytes().to_vec(),
        ),
        (
            SectionKind::ColumnSets,
            colsets.len() as u32,
            colsets.as_bytes().to_vec(),
        ),
        (
            SectionKind::FunctionVerdicts,
            func_verdicts.len() as u32,
            func_verdicts.as_bytes().to_vec(),
        ),
        (
            SectionKind::Patterns,
            patterns.len() as u32,
            patterns.as_bytes().to_vec(),
        ),
        (
            SectionKind::Masks,
            masks.len() as u32,
            masks.as_bytes().to_vec(),
        ),
        (
            SectionKind::Rates,
            rates.len() as u32,
            rates.as_bytes().to_vec(),
        ),
    ];

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
    out
}

fn ms_len(members: &[MemberRec], first: u32) -> u32 {
    members.len() as u32 - first
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
