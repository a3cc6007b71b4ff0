//! Result masks in the session: each result's plan from its RowDescription (table OID and
//! attribute number → the policy's column → the role's mask), DataRow rewritten into the
//! client's buffer, COPY TO STDOUT data through the streaming rewriter, and the wait for
//! the catalog that ties OIDs to the policy ([`crate::masks::catalog`]).
//!
//! Every extended-protocol result needs its RowDescription, which the database sends only
//! when asked (Describe): for a role with masks, pgate sends a Describe of the portal of
//! its own before each Execute and keeps the answer from the client.
//!
//! The decision already refused every statement that uses a masked column other than as
//! a plain output column (`DenyReason::MaskedColumn`), so a masked value can only come
//! out where RowDescription names its table and column, or in `COPY table TO STDOUT`.
//!
//! What this module must never do: let a row through before its plan is known (a result
//! from a relation the catalog has not seen waits for the lookup; a DataRow without a
//! plan ends the session), or rewrite a value into one its type cannot decode.

use super::*;
use crate::masks::catalog::{CopyRelation, Lookup, MaskCatalog};
use crate::masks::copy::{CopyColumn, CopyPlan, CopyRewriter};
use crate::masks::value::{Family, Format, HashKey, MaskAction, mask_value};
use crate::masks::{self, action_of};
use pgate_core::sql::copy_options::{CopyFormat, CopyOptions, CopySource, copy_to_options};
use pgate_core::table::ColumnId;
use std::sync::Arc;

/// `COPY table [(columns)] TO STDOUT`, as decided: what the rewriter needs at
/// CopyOutResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CopySpec {
    /// (schema, name) as pgate resolved it.
    pub table: (String, String),
    /// The column list, if any (else every column but generated ones, in order).
    pub columns: Option<Vec<String>>,
    /// `COPY (query) TO STDOUT`: no table column to mask (the decision refused any use of
    /// a masked column in the query).
    pub query: bool,
    pub options: CopyOptions,
    /// The table's decision class under the decision table it was decided with (by
    /// digest): a class the role does not mask needs no lookup when the COPY starts.
    pub class: ([u8; 32], Option<u32>),
}

/// One field of the result being answered: its mask (if any) and format.
#[derive(Debug, Clone, Copy)]
struct Field {
    mask: Option<(MaskAction, Family)>,
    format: Format,
}

/// The role's masks of one decision class: (policy column, action).
type ClassMask = Vec<(ColumnId, MaskAction)>;

/// What a session asks the driver to look up ([`Session::catalog_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogRequest<'a> {
    pub database: &'a str,
    /// Relation OIDs to look up (none, without `copy_table`: the snapshot itself).
    pub oids: &'a [u32],
    /// The table of a `COPY table TO STDOUT` about to start: (schema, name), every column.
    pub copy_table: Option<(&'a str, &'a str)>,
}

/// The driver's answer: the catalog for the database, and the COPY's table if asked.
#[derive(Debug, Clone)]
pub struct CatalogAnswer {
    pub catalog: Arc<MaskCatalog>,
    pub copy: Option<CopyRelation>,
}

/// The session's mask state; present only for a role with masks.
pub(super) struct Masking {
    /// The role has masks (under the current table).
    active: bool,
    /// Relations the catalog does not show (created in this session's open transaction):
    /// unmasked until the transaction ends.
    tx_unseen: Vec<u32>,
    /// The `hash` key; without one configured (`has_key` false), a key no plan uses: a
    /// hash mask is refused before any value would be hashed.
    key: Arc<HashKey>,
    has_key: bool,
    /// pgate's own Describe message, written once per Execute into the same buffer.
    describe_msg: Vec<u8>,
    catalog: Option<Arc<MaskCatalog>>,
    /// The role's masks by decision class (from the table).
    role: HashMap<u32, ClassMask>,
    pub database: String,
    /// Waiting for the catalog: the upstream is not read meanwhile.
    pub waiting: bool,
    /// OIDs to look up (empty with `waiting`: the snapshot itself), and the table of a
    /// COPY about to start.
    pub request: Vec<u32>,
    pub copy_table: Option<(String, String)>,
    /// OIDs looked up for the message being planned: if still unknown, the database does
    /// not show them to other sessions (created in this session's open transaction).
    looked_up: Vec<u32>,
    /// The COPY's table as looked up for the COPY being planned.
    /// (the table's name, what the lookup found).
    copy_relation: Option<((String, String), Option<CopyRelation>)>,
    plan: Vec<Field>,
    plan_any: bool,
    plan_set: bool,
    /// Describes answered in order: (unit, pgate's own).
    describes: VecDeque<(u64, bool)>,
    copy: Option<Box<CopyRewriter>>,
}

/// What planning a message needs.
pub(super) enum Planned {
    Ready,
    /// The catalog must answer first (the session asked the driver).
    Wait,
}

impl Masking {
    pub fn new(key: Option<Arc<HashKey>>) -> Self {
        Masking {
            active: true,
            tx_unseen: Vec::new(),
            has_key: key.is_some(),
            key: key.unwrap_or_else(|| Arc::new(HashKey::new([0; 32]))),
            describe_msg: Vec::new(),
            catalog: None,
            role: HashMap::new(),
            database: String::new(),
            waiting: false,
            request: Vec::new(),
            copy_table: None,
            looked_up: Vec::new(),
            copy_relation: None,
            plan: Vec::new(),
            plan_any: false,
            plan_set: false,
            describes: VecDeque::new(),
            copy: None,
        }
    }
}

impl Session {
    /// The COPY-data plan of `COPY table TO STDOUT` (`None` for `COPY (query)`, whose
    /// columns the decision keeps free of masked ones).
    pub(super) fn copy_spec(
        &self,
        s: &pgate_core::facts::StatementFacts,
        text: &str,
        table: &Table<'_>,
    ) -> Option<Result<Box<CopySpec>, &'static str>> {
        let (source, options) = match copy_to_options(text) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        if source != CopySource::Table {
            return Some(Ok(Box::new(CopySpec {
                table: (String::new(), String::new()),
                columns: None,
                query: true,
                options,
                class: (table.digest(), None),
            })));
        }
        let Some(a) = self.facts.tables(s).first() else {
            return Some(Err("a COPY whose table pgate did not find"));
        };
        let table_name = (
            self.facts.name(a.name.schema).to_string(),
            self.facts.name(a.name.name).to_string(),
        );
        let mut names = Vec::new();
        let mut all = false;
        for c in self.facts.columns(s) {
            match c.name {
                ColumnName::Named(n) => names.push(self.facts.name(n).to_string()),
                ColumnName::All | ColumnName::Common { .. } => all = true,
            }
        }
        let class = table
            .table_id(&table_name.0, &table_name.1)
            .and_then(|t| table.table_class(t));
        Some(Ok(Box::new(CopySpec {
            table: table_name,
            columns: (!all).then_some(names),
            query: false,
            options,
            class: (table.digest(), class),
        })))
    }

    /// At login and at every swap: masks on or off for the role. The state stays once
    /// made (pgate's own Describes may be in flight), inactive when the role has none.
    pub(super) fn masks_for_role(&mut self, table: &Table<'_>) {
        if !table.role_has_masks(self.role()) {
            if let Some(m) = self.ready.masking.as_mut() {
                m.active = false;
                m.role.clear();
            }
            return;
        }
        let database = self.upstream_db.clone();
        let role_map = role_masks(table, self.role());
        let m = self
            .ready
            .masking
            .get_or_insert_with(|| Box::new(Masking::new(self.cfg.mask_hash_key.clone())));
        m.active = true;
        m.database = database;
        m.role = role_map;
        // A catalog of another table: rebuilt when next needed.
        if m.catalog
            .as_ref()
            .is_some_and(|c| c.digest != table.digest())
        {
            m.catalog = None;
        }
    }

    /// What the driver is to look up for [`Action::LookupCatalog`].
    pub fn catalog_request(&self) -> Option<CatalogRequest<'_>> {
        let m = self.ready.masking.as_ref()?;
        Some(CatalogRequest {
            database: &m.database,
            oids: &m.request,
            copy_table: m.copy_table.as_ref().map(|(s, n)| (s.as_str(), n.as_str())),
        })
    }

    /// The driver's answer to [`Action::LookupCatalog`]: the catalog for this database
    /// (built for `table`), or why it could not be had (the statement's result cannot be
    /// masked: the session ends, closing the upstream, which stops the statement).
    pub fn handle_catalog(&mut self, answer: Result<CatalogAnswer, String>, table: &Table<'_>) {
        let Some(m) = self.ready.masking.as_mut() else {
            return;
        };
        match answer {
            Ok(a)
                if a.catalog.digest == table.digest()
                    && a.catalog.digest == self.table_digest_raw =>
            {
                m.catalog = Some(a.catalog);
                m.looked_up = std::mem::take(&mut m.request);
                if let Some(name) = m.copy_table.take() {
                    m.copy_relation = Some((name, a.copy));
                }
                m.waiting = false;
            }
            Ok(_) => {
                // Built for another table than this session's: ask again (the session
                // takes the swap first, see the driver).
                self.actions.push_back(Action::LookupCatalog);
            }
            Err(why) => {
                m.waiting = false;
                let msg = format!(
                    "pgate: the result has masked columns and pgate could not look up the database's catalog for them ({why}); the session ends"
                );
                self.fatal(sqlstate::CONNECTION_FAILURE, &msg);
            }
        }
    }

    /// Whether the role's results are masked.
    pub(super) fn masks_active(&self) -> bool {
        self.ready.masking.as_ref().is_some_and(|m| m.active)
    }

    /// Whether the driver must not feed upstream bytes: the catalog is being looked up.
    pub(super) fn catalog_wait(&self) -> bool {
        self.ready.masking.as_ref().is_some_and(|m| m.waiting)
    }

    fn ask_catalog(&mut self) -> Planned {
        if let Some(m) = self.ready.masking.as_mut() {
            m.waiting = true;
        }
        self.actions.push_back(Action::LookupCatalog);
        Planned::Wait
    }

    /// Before a RowDescription or CopyOutResponse is taken: the catalog must know every
    /// relation it names. Also builds the plan.
    pub(super) fn plan_result(&mut self, tag: u8, body: &[u8]) -> Planned {
        let Some(m) = self.ready.masking.as_mut().filter(|m| m.active) else {
            return Planned::Ready;
        };
        if m.catalog.is_none() {
            m.request.clear();
            return self.ask_catalog();
        }
        match tag {
            b'T' => self.plan_row_description(body),
            b'H' => self.plan_copy(body),
            _ => Planned::Ready,
        }
    }

    fn plan_row_description(&mut self, body: &[u8]) -> Planned {
        let Some(m) = self.ready.masking.as_mut() else {
            return Planned::Ready;
        };
        let Some(catalog) = m.catalog.clone() else {
            return Planned::Ready;
        };
        let in_tx = self.ready.tx_status != b'I';
        if !in_tx {
            m.tx_unseen.clear();
        }
        m.plan.clear();
        m.plan_any = false;
        m.plan_set = false;
        let mut r = wire::Reader::new(body, "RowDescription");
        let Ok(n) = r.i16() else {
            return self.mask_failure("a malformed RowDescription");
        };
        let mut unknown: Vec<u32> = Vec::new();
        for _ in 0..n.max(0) {
            let field = (|| {
                r.cstr()?;
                let table = r.u32()?;
                let attnum = r.i16()?;
                let type_oid = r.u32()?;
                r.i16()?;
                r.i32()?;
                let format = r.i16()?;
                Ok::<_, wire::WireError>((table, attnum, type_oid, format))
            })();
            let Ok((table, attnum, type_oid, format)) = field else {
                return self.mask_failure("a malformed RowDescription");
            };
            let format = if format == 1 {
                Format::Binary
            } else {
                Format::Text
            };
            let mut mask = None;
            if table != 0 {
                match catalog.lookup(table) {
                    Lookup::Masked(rel) if rel.added_since(attnum) => {
                        // A column added after the lookup: what it is must be known.
                        if m.looked_up.contains(&table) {
                            return self.mask_failure(
                                "a column of a masked relation that pgate's lookup did not show",
                            );
                        }
                        unknown.push(table);
                        continue;
                    }
                    Lookup::Masked(rel) => {
                        let role_mask = rel.column(attnum).and_then(|c| {
                            let (_, action) =
                                m.role.get(&rel.class)?.iter().find(|x| x.0 == c.column)?;
                            Some((*action, c.family, c.type_oid, c.base_type_oid))
                        });
                        if let Some((action, family, t, base)) = role_mask {
                            if type_oid != t && type_oid != base {
                                // The column's type changed since the lookup.
                                if m.looked_up.contains(&table) {
                                    return self.mask_failure(
                                        "a masked column whose type is not the one pgate looked up",
                                    );
                                }
                                unknown.push(table);
                                continue;
                            }
                            mask = match (action, family) {
                                (_, Some(f)) => Some((action, f)),
                                // `null` suits every type (checked at load).
                                (MaskAction::Null, None) => Some((action, Family::Text)),
                                _ => {
                                    return self
                                        .mask_failure("a mask the column's type cannot carry");
                                }
                            };
                        }
                    }
                    Lookup::Unmasked => {}
                    Lookup::Unknown if m.tx_unseen.contains(&table) => {}
                    Lookup::Unknown if m.looked_up.contains(&table) => {
                        // Looked up, and the database's catalog does not show it: created
                        // in this session's open transaction (other sessions see it once
                        // committed), or gone.
                        if !in_tx {
                            return self
                                .mask_failure("a relation the database's catalog does not show");
                        }
                        m.tx_unseen.push(table);
                    }
                    Lookup::Unknown => unknown.push(table),
                }
            }
            m.plan_any |= mask.is_some();
            m.plan.push(Field { mask, format });
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            m.request = unknown;
            return self.ask_catalog();
        }
        m.looked_up.clear();
        m.plan_set = true;
        if m.plan_any
            && !m.has_key
            && m.plan
                .iter()
                .any(|f| matches!(f.mask, Some((MaskAction::Hash, _))))
        {
            return self
                .mask_failure("a hash mask without a key (configure `masks hash-key-file=`)");
        }
        Planned::Ready
    }

    fn plan_copy(&mut self, body: &[u8]) -> Planned {
        let spec = match self.ready.pending.front().and_then(|p| p.effect.as_deref()) {
            Some(SqlEffect::CopyOut(Ok(spec))) if spec.query => {
                // COPY (query): the decision refused any use of a masked column in it.
                if let Some(m) = self.ready.masking.as_mut() {
                    m.copy = None;
                }
                return Planned::Ready;
            }
            Some(SqlEffect::CopyOut(Ok(spec))) => spec.clone(),
            Some(SqlEffect::CopyOut(Err(why))) => {
                // The role masks something, and this COPY's data cannot be read.
                let why = *why;
                return self.mask_failure(why);
            }
            _ => return self.mask_failure("a COPY pgate did not see decided"),
        };
        let digest = self.table_digest_raw;
        let Some(m) = self.ready.masking.as_mut() else {
            return Planned::Ready;
        };
        if spec.class.0 == digest && spec.class.1.is_none_or(|k| !m.role.contains_key(&k)) {
            // Decided under this table, and the role masks nothing of its class.
            m.copy = None;
            return Planned::Ready;
        }
        // Only an answer for this COPY's table, taken once: the next COPY looks up again.
        let Some((_, found)) = m.copy_relation.take().filter(|(n, _)| *n == spec.table) else {
            // The table's columns as they are now (the COPY holds its lock: they cannot
            // change while it runs).
            m.request.clear();
            m.copy_table = Some(spec.table.clone());
            return self.ask_catalog();
        };
        let Some(rel) = found else {
            // Not visible to pgate's own connection: created in this session's open
            // transaction, so its columns cannot be known.
            return self.mask_failure("a COPY of a table pgate's catalog lookup did not find");
        };
        let masks = rel.table.and_then(|(_, k)| m.role.get(&k));
        let columns: Vec<_> = match &spec.columns {
            None => rel.attributes.iter().filter(|c| !c.0.generated).collect(),
            Some(names) => {
                let mut v = Vec::with_capacity(names.len());
                for n in names {
                    match rel.attributes.iter().find(|c| &c.0.name == n) {
                        Some(c) => v.push(c),
                        None => {
                            return self.mask_failure(
                                "a COPY column list naming a column pgate did not find",
                            );
                        }
                    }
                }
                v
            }
        };
        let mut cols = Vec::with_capacity(columns.len());
        for (a, c) in &columns {
            let action = c.and_then(|c| masks?.iter().find(|x| x.0 == c).map(|x| x.1));
            let mask = match (action, masks::catalog::family_of(&a.send)) {
                (None, _) => None,
                (Some(action), Some(f)) => Some((action, f)),
                // `null` suits every type.
                (Some(MaskAction::Null), None) => Some((MaskAction::Null, Family::Text)),
                (Some(_), None) => {
                    return self.mask_failure("a mask the column's type cannot carry");
                }
            };
            cols.push(CopyColumn { mask });
        }
        // CopyOutResponse: "Int8 0 indicates the overall COPY format is textual …, 1
        // indicates … binary", then "Int16 The number of columns in the data".
        let mut r = wire::Reader::new(body, "CopyOutResponse");
        let binary = r.u8().map(|f| f == 1);
        let count = r.i16();
        if binary.ok() != Some(spec.options.format == CopyFormat::Binary) {
            return self.mask_failure("a COPY whose format is not the one pgate read");
        }
        if count.ok() != Some(columns.len() as i16) {
            return self.mask_failure("a COPY whose columns are not those pgate looked up");
        }
        let o = &spec.options;
        let format = match o.format {
            CopyFormat::Text => masks::copy::CopyFormat::Text {
                delimiter: o.delimiter,
                null: o.null.as_bytes().to_vec(),
            },
            CopyFormat::Csv => masks::copy::CopyFormat::Csv {
                delimiter: o.delimiter,
                null: o.null.as_bytes().to_vec(),
                quote: o.quote,
                escape: o.escape,
            },
            CopyFormat::Binary => masks::copy::CopyFormat::Binary,
        };
        let any = cols.iter().any(|c| c.mask.is_some());
        if any
            && !m.has_key
            && cols
                .iter()
                .any(|c| matches!(c.mask, Some((MaskAction::Hash, _))))
        {
            return self
                .mask_failure("a hash mask without a key (configure `masks hash-key-file=`)");
        }
        if !any {
            m.copy = None;
            return Planned::Ready;
        }
        match CopyRewriter::new(CopyPlan {
            format,
            header: o.header,
            columns: cols,
        }) {
            Ok(c) => m.copy = Some(Box::new(c)),
            Err(e) => return self.mask_failure(&e.to_string()),
        }
        Planned::Ready
    }

    /// A masked result cannot be rewritten: nothing more of it may pass.
    fn mask_failure(&mut self, what: &str) -> Planned {
        if let Some(m) = self.ready.masking.as_mut() {
            m.waiting = false;
        }
        let msg = format!(
            "pgate: the result has masked columns and pgate cannot mask it ({what}); the session ends"
        );
        self.fatal(sqlstate::INTERNAL_ERROR, &msg);
        Planned::Ready
    }

    /// A Describe the client sent (answered by RowDescription or NoData, in order).
    pub(super) fn client_describe(&mut self) {
        let unit = self.ready.unit_seq;
        if let Some(m) = self.ready.masking.as_mut() {
            m.describes.push_back((unit, false));
        }
    }

    /// Before an Execute of the portal `portal`: pgate's own Describe of it, so that the
    /// result comes with its RowDescription.
    pub(super) fn describe_before_execute(&mut self, portal: &str) {
        let unit = self.ready.unit_seq;
        let Some(m) = self.ready.masking.as_mut().filter(|m| m.active) else {
            return;
        };
        m.describes.push_back((unit, true));
        // Describe: "Byte1('P') to describe a portal … String The name of the portal".
        let mut msg = std::mem::take(&mut m.describe_msg);
        msg.clear();
        msg.push(b'D');
        msg.extend_from_slice(&((portal.len() + 6) as u32).to_be_bytes());
        msg.push(b'P');
        msg.extend_from_slice(portal.as_bytes());
        msg.push(0);
        self.forward_in_batch(&msg);
        if let Some(m) = self.ready.masking.as_mut() {
            m.describe_msg = msg;
        }
    }

    /// An upstream message, before the rest of `on_upstream_message`: the mask plan's
    /// bookkeeping. True if the message is pgate's own (the answer to its Describe) and
    /// must not reach the client.
    pub(super) fn masks_on_message(&mut self, tag: u8) -> bool {
        let unit = self.upstream_unit();
        let Some(m) = self.ready.masking.as_mut() else {
            return false;
        };
        // Describes of units answered (or skipped) before this one.
        while m.describes.front().is_some_and(|d| d.0 < unit) {
            m.describes.pop_front();
        }
        match tag {
            b'T' | b'n' => {
                if m.describes.front().is_some_and(|d| d.0 == unit) {
                    return m.describes.pop_front().is_some_and(|d| d.1);
                }
                false
            }
            b'C' | b'I' | b's' => {
                m.plan_set = false;
                m.plan_any = false;
                false
            }
            b'E' | b'Z' => {
                // An error skips the rest of the batch: its Describes go unanswered.
                while m.describes.front().is_some_and(|d| d.0 == unit) {
                    m.describes.pop_front();
                }
                m.plan_set = false;
                m.plan_any = false;
                m.copy = None;
                false
            }
            _ => false,
        }
    }

    /// A DataRow for the client: rewritten if the plan masks a field. False if it cannot
    /// be (the session is ending).
    pub(super) fn pass_data_row(&mut self, body: &[u8], raw: &[u8]) -> bool {
        let Some(m) = self.ready.masking.as_mut().filter(|m| m.active) else {
            self.to_client.extend_from_slice(raw);
            return true;
        };
        if !m.plan_set {
            self.mask_failure("a row without its row description");
            return false;
        }
        if !m.plan_any {
            self.to_client.extend_from_slice(raw);
            return true;
        }
        let at = self.to_client.len();
        match rewrite_row(m, body, &mut self.to_client) {
            Ok(()) => true,
            Err(why) => {
                self.to_client.truncate(at);
                self.mask_failure(&why);
                false
            }
        }
    }

    /// COPY data for the client: through the rewriter if this COPY masks a column.
    pub(super) fn pass_copy_data(&mut self, body: &[u8], raw: &[u8]) -> bool {
        let Some(m) = self.ready.masking.as_mut().filter(|m| m.copy.is_some()) else {
            self.to_client.extend_from_slice(raw);
            return true;
        };
        let Some(copy) = m.copy.as_mut() else {
            return true;
        };
        let at = self.to_client.len();
        self.to_client.push(b'd');
        self.to_client.extend_from_slice(&[0; 4]);
        match copy.rewrite(body, &m.key, &mut self.to_client) {
            Ok(()) => {
                let len = (self.to_client.len() - at - 1) as u32;
                self.to_client[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
                true
            }
            Err(e) => {
                self.to_client.truncate(at);
                self.mask_failure(&e.to_string());
                false
            }
        }
    }

    /// CopyDone: the masked COPY data must have ended at a row's end.
    pub(super) fn copy_done(&mut self) -> bool {
        let Some(copy) = self.ready.masking.as_mut().and_then(|m| m.copy.take()) else {
            return true;
        };
        let mut copy = copy;
        match copy.finish() {
            Ok(()) => true,
            Err(e) => {
                self.mask_failure(&e.to_string());
                false
            }
        }
    }
}

/// The role's masks by decision class.
fn role_masks(table: &Table<'_>, role: RoleId) -> HashMap<u32, ClassMask> {
    let mut out: HashMap<u32, ClassMask> = HashMap::new();
    for (class, column, kind, _) in table.role_masked_classes(role) {
        out.entry(class)
            .or_default()
            .push((column, action_of(kind)));
    }
    out
}
/// DataRow: "Int16 The number of column values that follow … Int32 The length of the
/// column value, in bytes … -1 indicates a NULL column value … Byten The value of the
/// column, in the format indicated by the associated format code".
fn rewrite_row(m: &Masking, body: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut r = wire::Reader::new(body, "DataRow");
    let n = r.i16().map_err(|_| "a malformed DataRow".to_string())?;
    if n as usize != m.plan.len() {
        return Err("a DataRow whose fields do not match its row description".into());
    }
    let at = out.len();
    out.push(b'D');
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&n.to_be_bytes());
    let key = &*m.key;
    for f in &m.plan {
        let len = r.i32().map_err(|_| "a malformed DataRow".to_string())?;
        let value = if len < 0 {
            None
        } else {
            Some(
                r.bytes(len as usize)
                    .map_err(|_| "a malformed DataRow".to_string())?,
            )
        };
        match f.mask {
            None => {
                out.extend_from_slice(&len.to_be_bytes());
                if let Some(v) = value {
                    out.extend_from_slice(v);
                }
            }
            Some((action, family)) => {
                let lpos = out.len();
                out.extend_from_slice(&[0; 4]);
                let wrote = mask_value(action, family, f.format, key, value, out)
                    .map_err(|e| e.to_string())?;
                let l: i32 = if wrote {
                    (out.len() - lpos - 4) as i32
                } else {
                    -1
                };
                out[lpos..lpos + 4].copy_from_slice(&l.to_be_bytes());
            }
        }
    }
    let len = (out.len() - at - 1) as u32;
    out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
