//! The masks' catalog lookups, driven: a connection to the database with pgate's own
//! credential per lookup (`masks::lookup` speaks the protocol), and the catalogs every
//! worker shares, one per database, for the current decision table.
//!
//! What this module must never do: hand a session a catalog built for another table or
//! database, or wait without a deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgate_core::table::{Table, TableFile};
use rand_core::{OsRng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Shared;
use super::conn::connect_upstream;
use crate::masks::catalog::{
    self, AttributeRow, CopyRelation, MaskCatalog, MaskIndex, RelationRow,
};
use crate::masks::lookup::{Lookup, Row};
use crate::session::NONCE_BYTES;
use crate::session::{CatalogAnswer, CatalogRequest};

/// How long one lookup may take, connection and login included.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The catalogs of every database sessions use, for the current table.
#[derive(Default)]
pub struct Catalogs {
    by_database: Mutex<HashMap<String, Arc<MaskCatalog>>>,
}

impl Catalogs {
    fn get(&self, database: &str, digest: [u8; 32]) -> Option<Arc<MaskCatalog>> {
        let map = self.by_database.lock().ok()?;
        map.get(database).filter(|c| c.digest == digest).cloned()
    }
    fn put(&self, c: Arc<MaskCatalog>) {
        if let Ok(mut map) = self.by_database.lock() {
            map.insert(c.database.clone(), c);
        }
    }
}

/// A session's lookup, kept for the next sessions only if its table is still the one in
/// force: a slow lookup for the table before a swap must not replace the new table's.
fn put_if_current(shared: &Shared, c: Arc<MaskCatalog>) {
    if shared.table.load().digest() == c.digest {
        shared.catalogs.put(c);
    }
}

/// Runs `sql` (read-only catalog statements) on a new connection to `database`.
pub async fn run_lookup(
    shared: &Shared,
    database: &str,
    sql: String,
) -> Result<Vec<Vec<Row>>, String> {
    let go = async {
        let mut s = connect_upstream(shared).await.map_err(|e| e.to_string())?;
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let cfg = &shared.session;
        let password = cfg.upstream_password.as_deref().unwrap_or_default();
        let mut l = Lookup::new(&cfg.upstream_user, password, database, nonce, sql);
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0;
        loop {
            let out = l.poll_output();
            if !out.is_empty() {
                s.write_all(&out).await.map_err(|e| e.to_string())?;
                s.flush().await.map_err(|e| e.to_string())?;
            }
            if l.is_done() {
                break;
            }
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = s.read(&mut buf[len..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the database closed the connection".to_string());
            }
            len += n;
            let used = l.handle_input(&buf[..len]).map_err(|e| e.to_string())?;
            buf.copy_within(used..len, 0);
            len -= used;
        }
        // Terminate.
        let _ = s.write_all(&[b'X', 0, 0, 0, 4]).await;
        let _ = s.shutdown().await;
        Ok(l.into_results())
    };
    tokio::time::timeout(LOOKUP_TIMEOUT, go)
        .await
        .map_err(|_| format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs()))?
}

/// Why a snapshot could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The database could not be asked: sessions ask again when they need it.
    #[error("{0}")]
    Unreachable(String),
    /// The database's catalog contradicts the table (a mask its column's type cannot
    /// carry): the table must not be used.
    #[error("{0}")]
    Refused(String),
}

/// The snapshot for `database`: every relation OID, and the masked columns of the
/// relations of masked decision classes.
pub async fn snapshot(
    shared: &Shared,
    file: &TableFile,
    database: &str,
) -> Result<MaskCatalog, SnapshotError> {
    use SnapshotError::{Refused, Unreachable};
    let table = file.table();
    let index = MaskIndex::new(&table);
    let results = run_lookup(shared, database, catalog::snapshot_query(&index))
        .await
        .map_err(Unreachable)?;
    let (relations, attributes) = two_results(&results).map_err(Unreachable)?;
    MaskCatalog::build(
        &table,
        index,
        file.digest(),
        database,
        &relations,
        &attributes,
    )
    .map_err(Refused)
}

/// The relations and attributes statements' answers.
fn two_results(results: &[Vec<Row>]) -> Result<(Vec<RelationRow>, Vec<AttributeRow>), String> {
    match results {
        [r, a] => Ok((catalog::relation_rows(r)?, catalog::attribute_rows(a)?)),
        _ => Err("the catalog lookup returned an unexpected answer".into()),
    }
}

/// At start and before a table swap: the snapshot of the configured database, so that a
/// mask the database's types cannot carry refuses the table (naming the rule) before any
/// session uses it. `Ok` also when the database cannot be reached (said on stderr): the
/// sessions look the catalog up when they need it, and fail closed if it stays away.
pub async fn prepare(shared: &Shared, file: &TableFile) -> Result<(), String> {
    let Some(db) = shared.session.upstream_database.clone() else {
        return Ok(());
    };
    if !catalog::has_masks(&file.table()) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    match snapshot(shared, file, &db).await {
        Ok(c) => {
            eprintln!(
                "pgate: masks: catalog of database {db}: {} relations, {} of them masked, looked up in {} ms",
                c.relation_count(),
                c.masked_count(),
                started.elapsed().as_millis()
            );
            shared.catalogs.put(Arc::new(c));
            Ok(())
        }
        Err(SnapshotError::Refused(e)) => Err(e),
        Err(SnapshotError::Unreachable(e)) => {
            eprintln!(
                "pgate: masks: cannot look up the catalog of database {db} now ({e}); sessions will look it up when they need it"
            );
            Ok(())
        }
    }
}

/// A session's [`CatalogRequest`], owned, for the driver's lookup task.
#[derive(Debug, Clone)]
pub struct CatalogJob {
    pub database: String,
    pub oids: Vec<u32>,
    pub copy_table: Option<(String, String)>,
}

impl From<CatalogRequest<'_>> for CatalogJob {
    fn from(r: CatalogRequest<'_>) -> Self {
        CatalogJob {
            database: r.database.to_string(),
            oids: r.oids.to_vec(),
            copy_table: r.copy_table.map(|(s, n)| (s.to_string(), n.to_string())),
        }
    }
}

/// What a session asked for ([`crate::session::Session::catalog_request`]): the
/// database's catalog, with `oids` looked up, and the COPY's table if asked.
pub async fn catalog_for(shared: &Shared, job: &CatalogJob) -> Result<CatalogAnswer, String> {
    let database = job.database.as_str();
    let file = shared.table.load_full();
    let digest = file.digest();
    let mut fresh = false;
    let mut current = match shared.catalogs.get(database, digest) {
        Some(c) => c,
        None => {
            fresh = true;
            let c = Arc::new(
                snapshot(shared, &file, database)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            put_if_current(shared, c.clone());
            c
        }
    };
    let table: Table<'_> = file.table();
    // The session asks for OIDs it does not know and for relations whose columns or
    // types changed since (a column added, a type altered): each is looked up afresh.
    // A snapshot just taken is as fresh as that.
    let unknown = &job.oids;
    if !unknown.is_empty() && !fresh {
        let results = run_lookup(shared, database, current.lookup_query(unknown)).await?;
        let (relations, attributes) = two_results(&results)?;
        current = Arc::new(current.extended(&table, &relations, &attributes, unknown)?);
        put_if_current(shared, current.clone());
    }
    let copy = match &job.copy_table {
        None => None,
        Some((schema, name)) => {
            let results =
                run_lookup(shared, database, catalog::relation_query(schema, name)).await?;
            let (relations, attributes) = two_results(&results)?;
            CopyRelation::from_rows(&table, &relations, attributes)?
        }
    };
    Ok(CatalogAnswer {
        catalog: current,
        copy,
    })
}
