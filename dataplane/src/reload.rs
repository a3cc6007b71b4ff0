//! The decision table: loaded by memory-mapping a built `.pgt` file, swapped when the file
//! is replaced (a file watch on its folder) or on SIGHUP, and the JWKS with it.
//!
//! Production runs the artefact CI built and diffed, so the data plane loads only built
//! tables — never policy sources. A table that fails to load (truncated, corrupt, wrong
//! version) leaves the last good one in force; the reason goes to stderr and to the
//! `pgate_policy_reload_failures_total` metric. What this module must never do: swap in a
//! table it has not validated, or map a file that is rewritten in place.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memmap2::Mmap;
use pgate_core::table::{Feature, Table, TableFile};

use crate::identity::JwtAuthenticator;
use crate::runtime::{ControlHandle, Shared};

/// Memory-maps and validates the table at `path`. `hash_key`: the configuration has a
/// key for `hash` masks.
pub fn load_table(path: &Path, hash_key: bool) -> Result<TableFile, String> {
    let show = path.display();
    if path.is_dir() || path.extension().is_some_and(|e| e == "kdl") {
        return Err(format!(
            "policy {show}: expected a table built by `pgate-compile build {show} -o policy.pgt`, not policy sources"
        ));
    }
    let file = File::open(path).map_err(|e| format!("policy {show}: {e}"))?;
    let map = map_read_only(&file).map_err(|e| format!("policy {show}: cannot map: {e}"))?;
    let t = TableFile::from_shared(Box::new(map)).map_err(|e| format!("policy {show}: {e}"))?;
    refuse_unenforced(&t.table(), hash_key).map_err(|e| format!("policy {show}: {e}"))?;
    Ok(t)
}

/// The features of the policy language this data plane enforces. A table that uses any
/// other is refused (a rule pgate loads is a rule pgate enforces).
pub const ENFORCED: &[Feature] = &[
    Feature::Mask,
    Feature::Limit,
    Feature::Rate,
    Feature::TokenUse,
    Feature::Delegation,
    Feature::Budget,
];

/// Refuses a table with a rule this data plane does not enforce, naming the rule; and a
/// `hash` mask when there is no key to hash with.
pub fn refuse_unenforced(t: &Table<'_>, hash_key: bool) -> Result<(), String> {
    if !hash_key
        && let Some((.., rule)) = t
            .masked_classes()
            .find(|m| m.3 == pgate_core::table::model::MaskKind::Hash)
    {
        let at = t
            .rule(rule)
            .map(|r| format!("{}:{} (role \"{}\": {})", r.file, r.line, r.role, r.text))
            .unwrap_or_else(|| format!("rule {rule}"));
        return Err(format!(
            "it uses a `hash` mask, and the configuration gives no key for it: {at}; add `masks hash-key-file=\"…\"` to pgate's configuration"
        ));
    }
    for (feature, rule) in t.features() {
        if ENFORCED.contains(&feature) {
            continue;
        }
        let at = t
            .rule(rule)
            .map(|r| format!("{}:{} (role \"{}\": {})", r.file, r.line, r.role, r.text))
            .unwrap_or_else(|| format!("rule {rule}"));
        return Err(format!(
            "it uses {}, which this pgate does not enforce yet: {at}; remove the rule, or run a pgate that enforces it",
            feature.name()
        ));
    }
    Ok(())
}

#[allow(unsafe_code)]
fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the bytes change under the map if the file is
    // modified in place (or truncated: SIGBUS). pgate maps only tables that are replaced
    // by writing a new file and renaming it over the old one (`pgate-compile build` and
    // the documented rollout do exactly that): a rename gives the path a new inode and
    // leaves the mapped one untouched until the last map of it is dropped. The bytes are
    // validated once, after mapping, and never written (the map is read-only).
    unsafe { Mmap::map(file) }
}

/// Starts the reload thread: SIGHUP, and changes to the table file (its folder is
/// watched, since a rename replaces the file), reload the table and the JWKS.
pub fn spawn_reloader(
    policy: PathBuf,
    jwks: PathBuf,
    shared: Shared,
    auth: Arc<JwtAuthenticator>,
    control: Arc<ControlHandle>,
    hash_key: bool,
) {
    let spawned = crate::runtime::spawn_on_own_runtime("pgate-reload", move || async move {
        reload_loop(&policy, &jwks, &shared, &auth, &control, hash_key).await
    });
    if let Err(e) = spawned {
        eprintln!("pgate: cannot start the reload thread ({e}); the table will not reload");
    }
}

async fn reload_loop(
    policy: &Path,
    jwks: &Path,
    shared: &Shared,
    auth: &JwtAuthenticator,
    control: &ControlHandle,
    hash_key: bool,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("pgate: cannot listen for SIGHUP ({e}); reload by SIGHUP disabled");
            None
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _watcher = watch(policy, tx);
    loop {
        let hup_fired = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let by_signal = tokio::select! {
            _ = hup_fired => true,
            ev = rx.recv() => {
                if ev.is_none() {
                    return;
                }
                false
            }
        };
        // A rename or a copy comes as several events: let them settle, then read once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while rx.try_recv().is_ok() {}
        reload_table(policy, shared, control, hash_key).await;
        if by_signal {
            match auth.reload(jwks) {
                Ok(warnings) => {
                    for w in warnings {
                        eprintln!("pgate: {}: {w}", jwks.display());
                    }
                    eprintln!("pgate: keys reloaded from {}", jwks.display());
                }
                Err(e) => eprintln!("pgate: key reload failed, keeping the last good keys: {e}"),
            }
        }
    }
}

/// Loads the table again; swaps it in (and tells every session) if it loads and differs.
async fn reload_table(policy: &Path, shared: &Shared, control: &ControlHandle, hash_key: bool) {
    let table = &shared.table;
    let loaded = match load_table(policy, hash_key) {
        Ok(t) if t.digest() != table.load().digest() => {
            // A mask the database's types cannot carry refuses the new table.
            match crate::runtime::lookup::prepare(shared, &t).await {
                Ok(()) => Ok(t),
                Err(e) => Err(format!("policy {}: {e}", policy.display())),
            }
        }
        other => other,
    };
    match loaded {
        Ok(t) if t.digest() == table.load().digest() => {}
        Ok(t) => {
            let digest = t.digest();
            table.store(Arc::new(t));
            control.table_swapped();
            metrics::counter!(crate::metrics::RELOADS).increment(1);
            eprintln!(
                "pgate: policy reloaded from {} (table {})",
                policy.display(),
                hex8(&digest)
            );
        }
        Err(e) => {
            metrics::counter!(crate::metrics::RELOAD_FAILURES).increment(1);
            eprintln!("pgate: policy reload failed, keeping the last good table: {e}");
        }
    }
}

fn hex8(d: &[u8; 32]) -> String {
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Watches the table's folder for events naming the table file.
fn watch(
    policy: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let dir = policy
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = policy.file_name()?.to_os_string();
    let handler = move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
            && ev
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.send(());
        }
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "pgate: cannot watch {} ({e}); reload by SIGHUP only",
                dir.display()
            );
            return None;
        }
    };
    if let Err(e) = w.watch(&dir, RecursiveMode::NonRecursive) {
        eprintln!(
            "pgate: cannot watch {} ({e}); reload by SIGHUP only",
            dir.display()
        );
        return None;
    }
    Some(w)
}
