//! Keywords: every word the classifier compares identifiers against, identified once per
//! token at lexing time (a hash of the case-folded bytes into a table built at compile
//! time), so the parser compares small integers instead of strings.
//!
//! What it must never do: call an identifier a keyword it is not. A lookup compares the
//! token's bytes with the keyword's (ASCII case-insensitively) after the hash matches, so
//! hash collisions cost a probe, never a wrong answer. Quoted identifiers are never
//! keywords (the lexer only looks up unquoted ones).
use crate::words::{fold, load_word};

/// A keyword (or `Kw::None` for any other identifier or token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u16)]
pub enum Kw {
    #[default]
    None = 0,
    Abort,
    Absent,
    All,
    Alter,
    Analyse,
    Analyze,
    And,
    Any,
    Array,
    As,
    Asc,
    Asensitive,
    Asymmetric,
    At,
    Atomic,
    Authorization,
    Begin,
    Between,
    Binary,
    Bit,
    Boolean,
    Both,
    By,
    Bytea,
    Call,
    Cascade,
    Case,
    Cast,
    Char,
    Character,
    Characteristics,
    Check,
    Checkpoint,
    ClientEncoding,
    Close,
    Cluster,
    Coalesce,
    Collate,
    Collation,
    Column,
    Columns,
    Comment,
    Commit,
    Concurrently,
    Conditional,
    Conflict,
    Constraint,
    Constraints,
    Content,
    Continue,
    Copy,
    Create,
    Cross,
    Cube,
    Current,
    CurrentCatalog,
    CurrentDate,
    CurrentRole,
    CurrentSchema,
    CurrentTime,
    CurrentTimestamp,
    CurrentUser,
    Cursor,
    Cycle,
    Data,
    Date,
    Day,
    Deallocate,
    Declare,
    Default,
    Deferrable,
    Delete,
    Desc,
    Discard,
    Distinct,
    Do,
    Document,
    Double,
    Drop,
    Else,
    Empty,
    Encoding,
    End,
    Error,
    Escape,
    Except,
    Exclude,
    Excluded,
    Execute,
    Exists,
    Explain,
    Extract,
    False,
    Fetch,
    Filter,
    First,
    Following,
    For,
    Foreign,
    Format,
    Freeze,
    From,
    Full,
    Function,
    Global,
    Grant,
    Greatest,
    Group,
    Grouping,
    Groups,
    Having,
    Hold,
    Hour,
    Identity,
    If,
    Ilike,
    Import,
    In,
    Indent,
    Index,
    Initially,
    Inner,
    Insensitive,
    Insert,
    Int,
    Integer,
    Intersect,
    Interval,
    Into,
    Is,
    Isnull,
    Join,
    Json,
    JsonArray,
    JsonArrayagg,
    JsonExists,
    JsonObject,
    JsonObjectagg,
    JsonQuery,
    JsonScalar,
    JsonSerialize,
    JsonTable,
    JsonValue,
    Jsonb,
    Keep,
    Key,
    Keys,
    Last,
    Lateral,
    Leading,
    Least,
    Left,
    Like,
    Limit,
    Listen,
    Load,
    Local,
    Localtime,
    Localtimestamp,
    Lock,
    Locked,
    Mapping,
    Matched,
    Materialized,
    Merge,
    MergeAction,
    Minute,
    Mode,
    Month,
    Move,
    Name,
    Names,
    National,
    Natural,
    Nchar,
    Nested,
    New,
    Next,
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
    No,
    Normalize,
    Normalized,
    Not,
    Nothing,
    Notify,
    Notnull,
    Nowait,
    Null,
    Nullif,
    Nulls,
    Numeric,
    Object,
    Of,
    Off,
    Offset,
    Old,
    Omit,
    On,
    Only,
    Operator,
    Or,
    Order,
    Ordinality,
    Others,
    Outer,
    Over,
    Overlaps,
    Overriding,
    Owned,
    Partition,
    Passing,
    Path,
    Pg,
    PgCatalog,
    PgCollationFor,
    Placing,
    Plan,
    Preceding,
    Precision,
    Prepare,
    Preserve,
    Primary,
    Privileges,
    Procedure,
    Program,
    Quotes,
    Range,
    Reassign,
    Recursive,
    Ref,
    References,
    Refresh,
    Reindex,
    Release,
    Repeatable,
    Replace,
    Reset,
    Restart,
    Restrict,
    Returning,
    Revoke,
    Right,
    Role,
    Rollback,
    Rollup,
    Row,
    Rows,
    Savepoint,
    Scalar,
    Schema,
    Scroll,
    Search,
    SearchPath,
    Second,
    Security,
    Select,
    Session,
    SessionAuthorization,
    SessionUser,
    Set,
    SetConfig,
    Setof,
    Sets,
    Share,
    Show,
    Similar,
    Skip,
    Some,
    Source,
    SqlAscii,
    Standalone,
    StandardConformingStrings,
    Start,
    Stdin,
    Stdout,
    String,
    Strip,
    Symmetric,
    System,
    SystemUser,
    Table,
    Tablesample,
    Target,
    Temp,
    Temporary,
    Text,
    Then,
    Ties,
    Time,
    Timestamp,
    To,
    Trailing,
    Transaction,
    Treat,
    True,
    Truncate,
    Uescape,
    Unbounded,
    Unconditional,
    Unicode,
    Union,
    Unique,
    Unknown,
    Unlisten,
    Unlogged,
    Update,
    User,
    Using,
    Utf8,
    Vacuum,
    Value,
    Values,
    Varchar,
    Variadic,
    Varying,
    Verbose,
    Version,
    View,
    When,
    Where,
    Whitespace,
    Window,
    With,
    Within,
    Without,
    Wrapper,
    Xml,
    Xmlattributes,
    Xmlconcat,
    Xmlelement,
    Xmlexists,
    Xmlforest,
    Xmlnamespaces,
    Xmlparse,
    Xmlpi,
    Xmlroot,
    Xmlserialize,
    Xmltable,
    Year,
    Yes,
    Zone,
}

/// Longest keyword, in bytes.
pub const MAX_KEYWORD_LEN: usize = 27;

/// Every keyword, its spelling and whether PostgreSQL reserves it (`kwlist.h`:
/// 1 = RESERVED_KEYWORD, 2 = TYPE_FUNC_NAME_KEYWORD, 0 = neither or not a PostgreSQL keyword).
const LIST: &[(&str, Kw, u8)] = &[
    ("abort", Kw::Abort, 0),
    ("absent", Kw::Absent, 0),
    ("all", Kw::All, 1),
    ("alter", Kw::Alter, 0),
    ("analyse", Kw::Analyse, 1),
    ("analyze", Kw::Analyze, 1),
    ("and", Kw::And, 1),
    ("any", Kw::Any, 1),
    ("array", Kw::Array, 1),
    ("as", Kw::As, 1),
    ("asc", Kw::Asc, 1),
    ("asensitive", Kw::Asensitive, 0),
    ("asymmetric", Kw::Asymmetric, 1),
    ("at", Kw::At, 0),
    ("atomic", Kw::Atomic, 0),
    ("authorization", Kw::Authorization, 2),
    ("begin", Kw::Begin, 0),
    ("between", Kw::Between, 0),
    ("binary", Kw::Binary, 2),
    ("bit", Kw::Bit, 0),
    ("boolean", Kw::Boolean, 0),
    ("both", Kw::Both, 1),
    ("by", Kw::By, 0),
    ("bytea", Kw::Bytea, 0),
    ("call", Kw::Call, 0),
    ("cascade", Kw::Cascade, 0),
    ("case", Kw::Case, 1),
    ("cast", Kw::Cast, 1),
    ("char", Kw::Char, 0),
    ("character", Kw::Character, 0),
    ("characteristics", Kw::Characteristics, 0),
    ("check", Kw::Check, 1),
    ("checkpoint", Kw::Checkpoint, 0),
    ("client_encoding", Kw::ClientEncoding, 0),
    ("close", Kw::Close, 0),
    ("cluster", Kw::Cluster, 0),
    ("coalesce", Kw::Coalesce, 0),
    ("collate", Kw::Collate, 1),
    ("collation", Kw::Collation, 2),
    ("column", Kw::Column, 1),
    ("columns", Kw::Columns, 0),
    ("comment", Kw::Comment, 0),
    ("commit", Kw::Commit, 0),
    ("concurrently", Kw::Concurrently, 2),
    ("conditional", Kw::Conditional, 0),
    ("conflict", Kw::Conflict, 0),
    ("constraint", Kw::Constraint, 1),
    ("constraints", Kw::Constraints, 0),
    ("content", Kw::Content, 0),
    ("continue", Kw::Continue, 0),
    ("copy", Kw::Copy, 0),
    ("create", Kw::Create, 1),
    ("cross", Kw::Cross, 2),
    ("cube", Kw::Cube, 0),
    ("current", Kw::Current, 0),
    ("current_catalog", Kw::CurrentCatalog, 1),
    ("current_date", Kw::CurrentDate, 1),
    ("current_role", Kw::CurrentRole, 1),
    ("current_schema", Kw::CurrentSchema, 2),
    ("current_time", Kw::CurrentTime, 1),
    ("current_timestamp", Kw::CurrentTimestamp, 1),
    ("current_user", Kw::CurrentUser, 1),
    ("cursor", Kw::Cursor, 0),
    ("cycle", Kw::Cycle, 0),
    ("data", Kw::Data, 0),
    ("date", Kw::Date, 0),
    ("day", Kw::Day, 0),
    ("deallocate", Kw::Deallocate, 0),
    ("declare", Kw::Declare, 0),
    ("default", Kw::Default, 1),
    ("deferrable", Kw::Deferrable, 1),
    ("delete", Kw::Delete, 0),
    ("desc", Kw::Desc, 1),
    ("discard", Kw::Discard, 0),
    ("distinct", Kw::Distinct, 1),
    ("do", Kw::Do, 1),
    ("document", Kw::Document, 0),
    ("double", Kw::Double, 0),
    ("drop", Kw::Drop, 0),
    ("else", Kw::Else, 1),
    ("empty", Kw::Empty, 0),
    ("encoding", Kw::Encoding, 0),
    ("end", Kw::End, 1),
    ("error", Kw::Error, 0),
    ("escape", Kw::Escape, 0),
    ("except", Kw::Except, 1),
    ("exclude", Kw::Exclude, 0),
    ("excluded", Kw::Excluded, 0),
    ("execute", Kw::Execute, 0),
    ("exists", Kw::Exists, 0),
    ("explain", Kw::Explain, 0),
    ("extract", Kw::Extract, 0),
    ("false", Kw::False, 1),
    ("fetch", Kw::Fetch, 1),
    ("filter", Kw::Filter, 0),
    ("first", Kw::First, 0),
    ("following", Kw::Following, 0),
    ("for", Kw::For, 1),
    ("foreign", Kw::Foreign, 1),
    ("format", Kw::Format, 0),
    ("freeze", Kw::Freeze, 2),
    ("from", Kw::From, 1),
    ("full", Kw::Full, 2),
    ("function", Kw::Function, 0),
    ("global", Kw::Global, 0),
    ("grant", Kw::Grant, 1),
    ("greatest", Kw::Greatest, 0),
    ("group", Kw::Group, 1),
    ("grouping", Kw::Grouping, 0),
    ("groups", Kw::Groups, 0),
    ("having", Kw::Having, 1),
    ("hold", Kw::Hold, 0),
    ("hour", Kw::Hour, 0),
    ("identity", Kw::Identity, 0),
    ("if", Kw::If, 0),
    ("ilike", Kw::Ilike, 2),
    ("import", Kw::Import, 0),
    ("in", Kw::In, 1),
    ("indent", Kw::Indent, 0),
    ("index", Kw::Index, 0),
    ("initially", Kw::Initially, 1),
    ("inner", Kw::Inner, 2),
    ("insensitive", Kw::Insensitive, 0),
    ("insert", Kw::Insert, 0),
    ("int", Kw::Int, 0),
    ("integer", Kw::Integer, 0),
    ("intersect", Kw::Intersect, 1),
    ("interval", Kw::Interval, 0),
    ("into", Kw::Into, 1),
    ("is", Kw::Is, 2),
    ("isnull", Kw::Isnull, 2),
    ("join", Kw::Join, 2),
    ("json", Kw::Json, 0),
    ("json_array", Kw::JsonArray, 0),
    ("json_arrayagg", Kw::JsonArrayagg, 0),
    ("json_exists", Kw::JsonExists, 0),
    ("json_object", Kw::JsonObject, 0),
    ("json_objectagg", Kw::JsonObjectagg, 0),
    ("json_query", Kw::JsonQuery, 0),
    ("json_scalar", Kw::JsonScalar, 0),
    ("json_serialize", Kw::JsonSerialize, 0),
    ("json_table", Kw::JsonTable, 0),
    ("json_value", Kw::JsonValue, 0),
    ("jsonb", Kw::Jsonb, 0),
    ("keep", Kw::Keep, 0),
    ("key", Kw::Key, 0),
    ("keys", Kw::Keys, 0),
    ("last", Kw::Last, 0),
    ("lateral", Kw::Lateral, 1),
    ("leading", Kw::Leading, 1),
    ("least", Kw::Least, 0),
    ("left", Kw::Left, 2),
    ("like", Kw::Like, 2),
    ("limit", Kw::Limit, 1),
    ("listen", Kw::Listen, 0),
    ("load", Kw::Load, 0),
    ("local", Kw::Local, 0),
    ("localtime", Kw::Localtime, 1),
    ("localtimestamp", Kw::Localtimestamp, 1),
    ("lock", Kw::Lock, 0),
    ("locked", Kw::Locked, 0),
    ("mapping", Kw::Mapping, 0),
    ("matched", Kw::Matched, 0),
    ("materialized", Kw::Materialized, 0),
    ("merge", Kw::Merge, 0),
    ("merge_action", Kw::MergeAction, 0),
    ("minute", Kw::Minute, 0),
    ("mode", Kw::Mode, 0),
    ("month", Kw::Month, 0),
    ("move", Kw::Move, 0),
    ("name", Kw::Name, 0),
    ("names", Kw::Names, 0),
    ("national", Kw::National, 0),
    ("natural", Kw::Natural, 2),
    ("nchar", Kw::Nchar, 0),
    ("nested", Kw::Nested, 0),
    ("new", Kw::New, 0),
    ("next", Kw::Next, 0),
    ("nfc", Kw::Nfc, 0),
    ("nfd", Kw::Nfd, 0),
    ("nfkc", Kw::Nfkc, 0),
    ("nfkd", Kw::Nfkd, 0),
    ("no", Kw::No, 0),
    ("normalize", Kw::Normalize, 0),
    ("normalized", Kw::Normalized, 0),
    ("not", Kw::Not, 1),
    ("nothing", Kw::Nothing, 0),
    ("notify", Kw::Notify, 0),
    ("notnull", Kw::Notnull, 2),
    ("nowait", Kw::Nowait, 0),
    ("null", Kw::Null, 1),
    ("nullif", Kw::Nullif, 0),
    ("nulls", Kw::Nulls, 0),
    ("numeric", Kw::Numeric, 0),
    ("object", Kw::Object, 0),
    ("of", Kw::Of, 0),
    ("off", Kw::Off, 0),
    ("offset", Kw::Offset, 1),
    ("old", Kw::Old, 0),
    ("omit", Kw::Omit, 0),
    ("on", Kw::On, 1),
    ("only", Kw::Only, 1),
    ("operator", Kw::Operator, 0),
    ("or", Kw::Or, 1),
    ("order", Kw::Order, 1),
    ("ordinality", Kw::Ordinality, 0),
    ("others", Kw::Others, 0),
    ("outer", Kw::Outer, 2),
    ("over", Kw::Over, 0),
    ("overlaps", Kw::Overlaps, 2),
    ("overriding", Kw::Overriding, 0),
    ("owned", Kw::Owned, 0),
    ("partition", Kw::Partition, 0),
    ("passing", Kw::Passing, 0),
    ("path", Kw::Path, 0),
    ("pg_", Kw::Pg, 0),
    ("pg_catalog", Kw::PgCatalog, 0),
    ("pg_collation_for", Kw::PgCollationFor, 0),
    ("placing", Kw::Placing, 1),
    ("plan", Kw::Plan, 0),
    ("preceding", Kw::Preceding, 0),
    ("precision", Kw::Precision, 0),
    ("prepare", Kw::Prepare, 0),
    ("preserve", Kw::Preserve, 0),
    ("primary", Kw::Primary, 1),
    ("privileges", Kw::Privileges, 0),
    ("procedure", Kw::Procedure, 0),
    ("program", Kw::Program, 0),
    ("quotes", Kw::Quotes, 0),
    ("range", Kw::Range, 0),
    ("reassign", Kw::Reassign, 0),
    ("recursive", Kw::Recursive, 0),
    ("ref", Kw::Ref, 0),
    ("references", Kw::References, 1),
    ("refresh", Kw::Refresh, 0),
    ("reindex", Kw::Reindex, 0),
    ("release", Kw::Release, 0),
    ("repeatable", Kw::Repeatable, 0),
    ("replace", Kw::Replace, 0),
    ("reset", Kw::Reset, 0),
    ("restart", Kw::Restart, 0),
    ("restrict", Kw::Restrict, 0),
    ("returning", Kw::Returning, 1),
    ("revoke", Kw::Revoke, 0),
    ("right", Kw::Right, 2),
    ("role", Kw::Role, 0),
    ("rollback", Kw::Rollback, 0),
    ("rollup", Kw::Rollup, 0),
    ("row", Kw::Row, 0),
    ("rows", Kw::Rows, 0),
    ("savepoint", Kw::Savepoint, 0),
    ("scalar", Kw::Scalar, 0),
    ("schema", Kw::Schema, 0),
    ("scroll", Kw::Scroll, 0),
    ("search", Kw::Search, 0),
    ("search_path", Kw::SearchPath, 0),
    ("second", Kw::Second, 0),
    ("security", Kw::Security, 0),
    ("select", Kw::Select, 1),
    ("session", Kw::Session, 0),
    ("session_authorization", Kw::SessionAuthorization, 0),
    ("session_user", Kw::SessionUser, 1),
    ("set", Kw::Set, 0),
    ("set_config", Kw::SetConfig, 0),
    ("setof", Kw::Setof, 0),
    ("sets", Kw::Sets, 0),
    ("share", Kw::Share, 0),
    ("show", Kw::Show, 0),
    ("similar", Kw::Similar, 2),
    ("skip", Kw::Skip, 0),
    ("some", Kw::Some, 1),
    ("source", Kw::Source, 0),
    ("sql_ascii", Kw::SqlAscii, 0),
    ("standalone", Kw::Standalone, 0),
    (
        "standard_conforming_strings",
        Kw::StandardConformingStrings,
        0,
    ),
    ("start", Kw::Start, 0),
    ("stdin", Kw::Stdin, 0),
    ("stdout", Kw::Stdout, 0),
    ("string", Kw::String, 0),
    ("strip", Kw::Strip, 0),
    ("symmetric", Kw::Symmetric, 1),
    ("system", Kw::System, 0),
    ("system_user", Kw::SystemUser, 1),
    ("table", Kw::Table, 1),
    ("tablesample", Kw::Tablesample, 2),
    ("target", Kw::Target, 0),
    ("temp", Kw::Temp, 0),
    ("temporary", Kw::Temporary, 0),
    ("text", Kw::Text, 0),
    ("then", Kw::Then, 1),
    ("ties", Kw::Ties, 0),
    ("time", Kw::Time, 0),
    ("timestamp", Kw::Timestamp, 0),
    ("to", Kw::To, 1),
    ("trailing", Kw::Trailing, 1),
    ("transaction", Kw::Transaction, 0),
    ("treat", Kw::Treat, 0),
    ("true", Kw::True, 1),
    ("truncate", Kw::Truncate, 0),
    ("uescape", Kw::Uescape, 0),
    ("unbounded", Kw::Unbounded, 0),
    ("unconditional", Kw::Unconditional, 0),
    ("unicode", Kw::Unicode, 0),
    ("union", Kw::Union, 1),
    ("unique", Kw::Unique, 1),
    ("unknown", Kw::Unknown, 0),
    ("unlisten", Kw::Unlisten, 0),
    ("unlogged", Kw::Unlogged, 0),
    ("update", Kw::Update, 0),
    ("user", Kw::User, 1),
    ("using", Kw::Using, 1),
    ("utf8", Kw::Utf8, 0),
    ("vacuum", Kw::Vacuum, 0),
    ("value", Kw::Value, 0),
    ("values", Kw::Values, 0),
    ("varchar", Kw::Varchar, 0),
    ("variadic", Kw::Variadic, 1),
    ("varying", Kw::Varying, 0),
    ("verbose", Kw::Verbose, 2),
    ("version", Kw::Version, 0),
    ("view", Kw::View, 0),
    ("when", Kw::When, 1),
    ("where", Kw::Where, 1),
    ("whitespace", Kw::Whitespace, 0),
    ("window", Kw::Window, 1),
    ("with", Kw::With, 1),
    ("within", Kw::Within, 0),
    ("without", Kw::Without, 0),
    ("wrapper", Kw::Wrapper, 0),
    ("xml", Kw::Xml, 0),
    ("xmlattributes", Kw::Xmlattributes, 0),
    ("xmlconcat", Kw::Xmlconcat, 0),
    ("xmlelement", Kw::Xmlelement, 0),
    ("xmlexists", Kw::Xmlexists, 0),
    ("xmlforest", Kw::Xmlforest, 0),
    ("xmlnamespaces", Kw::Xmlnamespaces, 0),
    ("xmlparse", Kw::Xmlparse, 0),
    ("xmlpi", Kw::Xmlpi, 0),
    ("xmlroot", Kw::Xmlroot, 0),
    ("xmlserialize", Kw::Xmlserialize, 0),
    ("xmltable", Kw::Xmltable, 0),
    ("year", Kw::Year, 0),
    ("yes", Kw::Yes, 0),
    ("zone", Kw::Zone, 0),
];

const TABLE_BITS: u32 = 11;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// Words of 8 bytes a keyword spans.
const KW_WORDS: usize = MAX_KEYWORD_LEN.div_ceil(8);

/// Bytes `s..s + min(n, 8)` of `b` as a little-endian word (zero-padded): one load when
/// eight bytes are there to read, whatever `n` is.
#[inline(always)]
const fn load(b: &[u8], s: usize, n: usize) -> u64 {
    let mut w = 0u64;
    if s + 8 <= b.len() {
        w = u64::from_le_bytes([
            b[s],
            b[s + 1],
            b[s + 2],
            b[s + 3],
            b[s + 4],
            b[s + 5],
            b[s + 6],
            b[s + 7],
        ]);
    } else {
        let mut i = 0;
        while i < 8 && s + i < b.len() {
            w |= (b[s + i] as u64) << (8 * i);
            i += 1;
        }
    }
    if n >= 8 {
        w
    } else {
        w & ((1u64 << (8 * n)) - 1)
    }
}

/// Word `k` of `b[s..s + n]`, folded (for the tables, built at compile time).
const fn word(b: &[u8], s: usize, n: usize, k: usize) -> u64 {
    if n <= 8 * k {
        return 0;
    }
    fold(load(b, s + 8 * k, n - 8 * k))
}

/// [`word`] at run time: word `k` of `b[s..s + n]`, folded.
#[inline(always)]
pub(crate) fn word_rt(b: &[u8], s: usize, n: usize, k: usize) -> u64 {
    if n <= 8 * k {
        return 0;
    }
    let s = s + 8 * k;
    let rest = n - 8 * k;
    let w = load_word(b, s);
    fold(if rest >= 8 {
        w
    } else {
        w & ((1u64 << (8 * rest)) - 1)
    })
}

/// The slot of a word of `n` bytes whose first two folded words are `w0`, `w1`.
#[inline(always)]
const fn hash(n: usize, w0: u64, w1: u64) -> usize {
    let x = (w0 ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ w1.rotate_left(29);
    (x.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - TABLE_BITS)) as usize
}

/// Every keyword's folded words (keywords are listed in lower case, checked below).
static WORDS: [[u64; KW_WORDS]; LIST.len()] = {
    let mut t = [[0u64; KW_WORDS]; LIST.len()];
    let mut i = 0;
    while i < LIST.len() {
        let w = LIST[i].0.as_bytes();
        let mut k = 0;
        while k < KW_WORDS {
            t[i][k] = word(w, 0, w.len(), k);
            k += 1;
        }
        i += 1;
    }
    t
};

/// Open addressing (linear probing) over `LIST` indexes + 1; 0 = empty.
static TABLE: [u16; TABLE_SIZE] = {
    let mut t = [0u16; TABLE_SIZE];
    let mut i = 0;
    while i < LIST.len() {
        // `WORDS` folds the identifier, not the keyword: every keyword must be lower case.
        let w = LIST[i].0.as_bytes();
        assert!(!w.is_empty() && w.len() <= MAX_KEYWORD_LEN);
        let mut j = 0;
        while j < w.len() {
            assert!(
                !w[j].is_ascii_uppercase(),
                "keywords are listed in lower case"
            );
            j += 1;
        }
        let mut h = hash(w.len(), word(w, 0, w.len(), 0), word(w, 0, w.len(), 1));
        while t[h] != 0 {
            h = (h + 1) & (TABLE_SIZE - 1);
        }
        t[h] = (i + 1) as u16;
        i += 1;
    }
    t
};

/// Whether `kw`'s spelling and category, by index (`Kw as usize - 1` is its `LIST` index).
static CATEGORY: [u8; LIST.len() + 1] = {
    let mut c = [0u8; LIST.len() + 1];
    let mut i = 0;
    while i < LIST.len() {
        c[LIST[i].1 as usize] = LIST[i].2;
        i += 1;
    }
    c
};

/// A letter's bucket for [`PREFIXES`]: `a`–`z` (either case) are 0–25, anything else 26.
#[inline(always)]
const fn bucket(c: u8) -> usize {
    let l = c | 0x20;
    if l >= b'a' && l <= b'z' {
        (l - b'a') as usize
    } else {
        26
    }
}

/// `PREFIXES[len][first]` has bit `second` set when some keyword of `len` bytes starts with
/// those two letters (buckets as [`bucket`]; one-letter keywords use second bucket 26). A
/// clear bit proves the word is no keyword without hashing it: most names are rejected
/// by one load.
static PREFIXES: [[u32; 27]; MAX_KEYWORD_LEN + 1] = {
    let mut t = [[0u32; 27]; MAX_KEYWORD_LEN + 1];
    let mut i = 0;
    while i < LIST.len() {
        let w = LIST[i].0.as_bytes();
        let second = if w.len() > 1 { bucket(w[1]) } else { 26 };
        t[w.len()][bucket(w[0])] |= 1 << second;
        i += 1;
    }
    t
};

/// The keyword an unquoted identifier spells (any case), or `Kw::None`.
#[inline(always)]
pub fn lookup(word: &[u8]) -> Kw {
    lookup_in(word, 0, word.len())
}

/// [`lookup`] of `b[start..end]`; reads up to 8 bytes past `end` (never past `b`), so
/// the lexer passes the whole statement and a short word costs one load.
#[inline(always)]
pub fn lookup_in(b: &[u8], start: usize, end: usize) -> Kw {
    let n = end.wrapping_sub(start);
    if n == 0 || n > MAX_KEYWORD_LEN || end > b.len() {
        return Kw::None;
    }
    let first = bucket(b.get(start).copied().unwrap_or(0));
    let second = if n > 1 {
        bucket(b.get(start + 1).copied().unwrap_or(0))
    } else {
        26
    };
    if PREFIXES
        .get(n)
        .and_then(|r| r.get(first))
        .is_none_or(|m| m & (1 << second) == 0)
    {
        return Kw::None;
    }
    let w0 = word_rt(b, start, n, 0);
    let w1 = word_rt(b, start, n, 1);
    let mut h = hash(n, w0, w1);
    loop {
        let Some(&slot) = TABLE.get(h) else {
            return Kw::None;
        };
        let i = usize::from(slot).wrapping_sub(1);
        let (Some(&(s, kw, _)), Some(ws)) = (LIST.get(i), WORDS.get(i)) else {
            // Slot 0: empty.
            return Kw::None;
        };
        if s.len() == n && ws[0] == w0 && ws[1] == w1 && {
            let mut k = 2;
            while k < KW_WORDS && 8 * k < n && ws[k] == word_rt(b, start, n, k) {
                k += 1;
            }
            k >= KW_WORDS || 8 * k >= n
        } {
            return kw;
        }
        h = (h + 1) & (TABLE_SIZE - 1);
    }
}

impl Kw {
    /// kwlist.h RESERVED_KEYWORD: never a column or alias.
    #[inline]
    pub fn is_reserved(self) -> bool {
        CATEGORY.get(self as usize).copied() == Some(1)
    }
    /// kwlist.h TYPE_FUNC_NAME_KEYWORD: a function or type name, never a column or alias.
    #[inline]
    pub fn is_type_func_name(self) -> bool {
        CATEGORY.get(self as usize).copied() == Some(2)
    }
    /// The keyword's spelling (lower case; empty for `Kw::None`).
    pub fn as_str(self) -> &'static str {
        match (self as usize).checked_sub(1).and_then(|i| LIST.get(i)) {
            Some(&(s, _, _)) => s,
            None => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_is_found_in_any_case_and_only_it() {
        for (i, &(s, kw, _)) in LIST.iter().enumerate() {
            assert_eq!(kw as usize, i + 1, "{s}: LIST order must match the enum");
            assert_eq!(lookup(s.as_bytes()), kw);
            assert_eq!(lookup(s.to_ascii_uppercase().as_bytes()), kw);
            assert_eq!(kw.as_str(), s);
        }
        for w in [
            "ssn",
            "selec",
            "selectx",
            "",
            "s\u{e9}lect",
            "aid",
            "abalance",
        ] {
            assert_eq!(lookup(w.as_bytes()), Kw::None, "{w}");
        }
        assert!(Kw::Select.is_reserved());
        assert!(Kw::Join.is_type_func_name());
        assert!(!Kw::Name.is_reserved());
    }

    /// The word-at-a-time lookup against a byte-by-byte reference: inside a longer
    /// string (the lexer's call), with one letter changed or dropped or added, with each
    /// byte moved above 0x80 (`S` | 0x80 is not `s`), and at the very end of the input.
    #[test]
    fn word_at_a_time_lookup_matches_a_bytewise_reference() {
        let reference = |w: &[u8]| {
            LIST.iter()
                .find(|(s, _, _)| s.as_bytes().eq_ignore_ascii_case(w))
                .map_or(Kw::None, |&(_, kw, _)| kw)
        };
        let mut words: Vec<Vec<u8>> = Vec::new();
        for &(s, _, _) in LIST {
            let b = s.as_bytes();
            words.push(b.to_vec());
            words.push(b.to_ascii_uppercase());
            words.push(b[..b.len() - 1].to_vec());
            words.push([b, b"s"].concat());
            for i in 0..b.len() {
                let mut m = b.to_vec();
                m[i] ^= 0x80;
                words.push(m);
                let mut m = b.to_vec();
                m[i] = if m[i] == b'_' { b'a' } else { b'_' };
                words.push(m);
            }
        }
        for w in &words {
            let want = reference(w);
            assert_eq!(lookup(w), want, "{:?}", String::from_utf8_lossy(w));
            for tail in [&b""[..], b" ", b"abcdefgh ", b"_x(1) FROM t WHERE a = $1"] {
                let sql = [&b"  "[..], w, tail].concat();
                assert_eq!(lookup_in(&sql, 2, 2 + w.len()), want);
            }
        }
        // Every byte value next to letters that fold (`@` < `A`, `[` > `Z`, DEL, 0xC1).
        for b in 0u8..=255 {
            let w = [b'a', b, b'c'];
            assert_eq!(lookup(&w), reference(&w));
            assert_eq!(fold(u64::from(b)), u64::from(b.to_ascii_lowercase()));
        }
        assert_eq!(lookup_in(b"select", 2, 7), Kw::None, "end past the input");
    }
}
