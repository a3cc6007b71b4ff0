//! pgate, the data plane: an identity-aware PostgreSQL policy proxy.
//!
//! - [`session`]: the sans-IO session core — one state machine per client connection, fed
//!   bytes and time, handing back bytes to write each way and actions. All protocol and
//!   enforcement logic lives there; it never touches a socket or a clock.
//!
//! Runtimes (the thread-per-core driver), TLS, JWT identity, configuration, audit sinks
//! and the identity-scoped rate buckets are built around the core in their own modules.
#![deny(unsafe_code)]

pub mod addresses;
pub mod alloc_count;
pub mod audit;
pub mod audit_chain;
pub mod buckets;
pub mod budgets;
pub mod config;
pub mod identity;
pub mod masks;
pub mod metrics;
pub mod proxy_protocol;
pub mod reload;
pub mod reuse;
pub mod runtime;
pub mod session;
pub mod shared_store;
pub mod tls;
pub mod token;
pub mod token_uses;
