//! The compiled policy in owned form: what `pgate-compile` hands to [`crate::table::write`].
//!
//! Everything here is already resolved: inheritance flattened, globs over declared names
//! expanded, allow/deny combined into one [`Cell`] per (role, class, table). The writer only
//! lays it out; it never decides anything. Indices (`table`, `column`, `function`, `rule`)
//! point into the vectors of [`CompiledPolicy`].

use crate::class::{ClassSet, StatementClass};

/// Index into [`CompiledPolicy::rules`]; in the file, the id a deny names.
pub type RuleIndex = u32;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnDecl {
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableDecl {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDecl>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionDecl {
    pub schema: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Every overload's identity arguments (`pg_get_function_identity_arguments`, types
    /// schema-qualified), sorted, when the catalog lists them all and none has defaults
    /// or `VARIADIC`; `None` when not known. See `CatalogLookup::function_overloads`.
    pub overloads: Option<Vec<String>>,
}

/// A declared table with exactly another's decisions: `table`'s columns, tags and cells
/// for every role. The compiler folds tables no rule tells apart into one [`TableDecl`]
/// and names the others here, so what it computes grows with the rules, not the catalog.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableAlias {
    pub schema: String,
    pub name: String,
    /// Index into [`Catalog::tables`].
    pub table: u32,
}

/// The schema the policy was written against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Each stands for itself and for its aliases.
    pub tables: Vec<TableDecl>,
    pub functions: Vec<FunctionDecl>,
    /// Further declared tables, each deciding as the table it names.
    pub aliases: Vec<TableAlias>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RuleKind {
    Allow = 0,
    Deny = 1,
    Mask = 2,
    Limit = 3,
    Rate = 4,
    TokenUse = 5,
    /// `delegation max-depth=N`.
    Delegation = 6,
    /// `budget rows= bytes= per=`.
    Budget = 7,
}

/// Where a rule was written, so a deny can name it (`policies/roles.kdl:12:5`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleInfo {
    /// Path relative to the policy root, `/`-separated.
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// 1-based.
    pub column: u32,
    pub kind: RuleKind,
    /// The role the rule was written in (not the inheriting role).
    pub role: String,
    /// The rule's source text, single line, at most a few hundred bytes.
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Effect {
    Allow = 1,
    Deny = 2,
}

/// Which columns an allowed cell allows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnAccess {
    All,
    /// Column indices into the table's `columns`, sorted, deduplicated.
    Only(Vec<u32>),
}

/// The combined verdict of one (role, class, table) — or, with no table, of the class
/// itself for statements that touch no table (`SELECT 1`, `BEGIN`, `SET`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub effect: Effect,
    /// The deciding rule: the deny that won, or the allow that granted.
    pub rule: Option<RuleIndex>,
    /// With `Effect::Allow`: the columns allowed (after column denies are removed).
    pub columns: ColumnAccess,
    /// Columns explicitly denied, and the deny that did it (to name it on refusal).
    pub denied_columns: Vec<u32>,
    pub denied_columns_rule: Option<RuleIndex>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellEntry {
    pub class: StatementClass,
    /// Index into `Catalog::tables`, or `None` for the class-level cell.
    pub table: Option<u32>,
    pub cell: Cell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PatternKind {
    Table = 0,
    Function = 1,
}

/// A glob rule kept for names the catalog does not declare (declared names have their
/// verdicts precomputed). `*` matches any run of characters within one dotted part only
/// when the pattern has a dot (`staging.*`), else anything (`*`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatternRule {
    pub kind: PatternKind,
    /// Classes the rule applies to (ignored for functions).
    pub classes: ClassSet,
    /// `schema.name` glob.
    pub pattern: String,
    pub effect: Effect,
    pub rule: RuleIndex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MaskKind {
    /// Replace the value with a fixed redaction marker.
    Redact = 1,
    /// Replace the value with SQL NULL.
    Null = 2,
    /// Replace the value with a keyed hash (key held by the data plane).
    Hash = 3,
}

impl MaskKind {
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Redact),
            2 => Some(Self::Null),
            3 => Some(Self::Hash),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Redact => "redact",
            Self::Null => "null",
            Self::Hash => "hash",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaskEntry {
    pub table: u32,
    pub column: u32,
    pub kind: MaskKind,
    pub rule: RuleIndex,
    /// `predicates="allow"`: the column may also be used in WHERE, JOIN … ON and HAVING
    /// (the database compares the real value; the result still shows it masked).
    pub predicates: bool,
}

/// Per-statement result caps (the smallest that applies to the role wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Limits {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    pub rule: Option<RuleIndex>,
}

/// How many sessions one token may open (a token is its issuer and `jti`): the smallest
/// that applies to the role wins; a role with either refuses tokens without `jti`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenUse {
    /// Sessions in all, over the token's life (1: single use).
    pub max_sessions: Option<u32>,
    /// Sessions open at once.
    pub max_concurrent: Option<u32>,
    /// `binding="certificate"`: only tokens bound to the client's TLS certificate
    /// (RFC 8705 `cnf` `x5t#S256`).
    pub require_certificate: bool,
    pub rule: Option<RuleIndex>,
}

impl TokenUse {
    pub fn is_limited(&self) -> bool {
        self.max_sessions.is_some() || self.max_concurrent.is_some()
    }
}

/// Longest RFC 8693 `act` chain pgate reads (a token with a longer one is refused).
pub const MAX_DELEGATION_DEPTH: u32 = 8;

/// RFC 8693 delegation: how long a chain of actors (`act`) a role admits and, for a
/// delegated variant, which sessions of which role it narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delegation {
    /// `delegation max-depth=N` (the smallest that applies wins); `None`: any depth.
    pub max_depth: Option<u32>,
    pub rule: Option<RuleIndex>,
    /// `Some` for a variant the compiler made from `delegated` blocks.
    pub variant: Option<Variant>,
}

/// A role's decisions for its delegated sessions: the role's own rules plus every
/// `delegated` block that applies. A variant has no members: only the role it narrows is
/// granted by claims, and a session of that role carrying an `act` chain is decided by the
/// variant whose conditions the chain meets with the largest `min_depth`, then the most
/// actors (the compiler makes one variant per distinct set of blocks, so that one is the
/// set of every block that applies).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// Index into [`CompiledPolicy::roles`]: the role claims grant.
    pub base: u32,
    /// The chain has at least this many actors (≥ 1).
    pub min_depth: u32,
    /// The chain names each of these (as an `act` `sub`, at any depth), sorted.
    pub actors: Vec<String>,
}

/// Rows and bytes one identity (token subject) may receive per window, across all its
/// sessions: windows are fixed, aligned to UTC (the hour, the day). Every budget of a role
/// applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Budget {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    /// 3,600 or 86,400.
    pub window_secs: u32,
    pub rule: RuleIndex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RateScope {
    Session = 0,
    Identity = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OnExceed {
    Throttle = 0,
    Terminate = 1,
}

/// A byte-rate token bucket on result streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RateLimit {
    pub bytes_per_second: u64,
    pub burst_bytes: u64,
    pub scope: RateScope,
    pub on_exceed: OnExceed,
    pub rule: RuleIndex,
}

/// Token claim → role: a token whose claim `claim` equals `value` (or, for an array claim,
/// contains it) is granted the role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Membership {
    pub claim: String,
    pub value: String,
}

/// A role's table decisions by group: every table of a group is decided alike, so a role
/// costs its groups plus one index per table, not a cell per table and statement class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGroups {
    /// Per table (index into [`Catalog::tables`]): its group, an index into `groups`.
    pub group_of: Vec<u32>,
    pub groups: Vec<Group>,
}

/// The decisions shared by the tables of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Group {
    /// By statement class; classes not listed are default deny.
    pub cells: Vec<(StatementClass, Cell)>,
    /// By column.
    pub masks: Vec<GroupMask>,
    /// The column count the cells' column indices and the masks refer to (every table of
    /// the group has it); 0 when nothing here depends on columns.
    pub columns: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupMask {
    pub column: u32,
    pub kind: MaskKind,
    pub rule: RuleIndex,
    pub predicates: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledRole {
    pub name: String,
    pub members: Vec<Membership>,
    /// Cells not listed are default deny (no rule). With `groups`, only the class-level
    /// cells (`table: None`): the groups hold the rest.
    pub cells: Vec<CellEntry>,
    /// Declared functions: (index into `Catalog::functions`, effect, deciding rule).
    /// Functions not listed are default deny.
    pub functions: Vec<(u32, Effect, Option<RuleIndex>)>,
    pub patterns: Vec<PatternRule>,
    /// Per table; empty with `groups`.
    pub masks: Vec<MaskEntry>,
    pub limits: Limits,
    pub token_use: TokenUse,
    pub rates: Vec<RateLimit>,
    pub budgets: Vec<Budget>,
    pub delegation: Delegation,
    /// The compiler's form of the table decisions (`None`: given per table in `cells` and
    /// `masks`, as hand-built tables do).
    pub groups: Option<RoleGroups>,
}

impl CompiledRole {
    /// Every mask per table, whichever form the role is in (walks every table: for tests
    /// and small policies).
    pub fn table_masks(&self) -> Vec<MaskEntry> {
        let Some(g) = &self.groups else {
            return self.masks.clone();
        };
        let mut out = Vec::new();
        for (table, &gi) in g.group_of.iter().enumerate() {
            for m in g.groups.get(gi as usize).map_or(&[][..], |g| &g.masks[..]) {
                out.push(MaskEntry {
                    table: table as u32,
                    column: m.column,
                    kind: m.kind,
                    rule: m.rule,
                    predicates: m.predicates,
                });
            }
        }
        out
    }
}

/// Everything the writer lays out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// BLAKE3 over the policy sources (sorted relative paths and contents).
    pub source_digest: [u8; 32],
    pub catalog: Catalog,
    pub rules: Vec<RuleInfo>,
    pub roles: Vec<CompiledRole>,
}
