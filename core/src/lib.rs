//! pgate-core: the contract shared by `pgate-compile` and the `pgate` data plane.
//!
//! - [`class`]: statement classes with stable ids (part of the `.pgt` format).
//! - [`sql`]: the SQL classifier — PostgreSQL-exact lexing, statement classes and the
//!   facts (tables, columns, functions) policy decides on.
//! - [`facts`]: the caller-owned, fixed-capacity buffer the classifier writes into.
//! - [`decide`]: the one decision path (classify in a session's state, then decide) that
//!   explain, test and the data plane share.
//! - [`client`]: the client side of connecting (startup, SSLRequest, CancelRequest) and
//!   of login (SCRAM-SHA-256, md5), written once for the data plane, load test and tests.
//! - [`table`]: the `.pgt` decision table: its writer, its zero-copy reader and `decide()`.
//!
//! This crate must never do I/O beyond mapping a table file, never spawn, never block, and
//! never allocate on the per-message path (classify + decide). It forbids `unsafe`.
#![forbid(unsafe_code)]

pub mod class;
pub mod client;
pub mod decide;
pub mod facts;
pub mod search_path;
pub mod sql;
pub mod table;
pub mod wire;
pub(crate) mod words;

pub use class::{ClassSet, StatementClass};
pub use facts::{Facts, FactsLimits};
