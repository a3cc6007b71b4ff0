//! `pgate`: the data plane binary. Thin: parse the command line, load and check the
//! configuration, hand over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use pgate::config::{Config, Secret};
use pgate::runtime::ControlHandle;
use pgate::session::SessionConfig;
use pgate_core::table::TableFile;

/// Counts the workers' heap allocations (the hot path makes none; a metric shows it).
#[global_allocator]
static ALLOCATOR: pgate::alloc_count::Counting = pgate::alloc_count::Counting;

#[derive(Parser)]
#[command(
    name = "pgate",
    version,
    about = "Identity-aware policy gateway for PostgreSQL"
)]
struct Cli {
    /// Run the proxy with this configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The I/O driver: io_uring (one ring per worker), epoll, or auto (io_uring where the
    /// kernel and seccomp allow it; else epoll, saying why).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "PGATE_RUNTIME"
    )]
    runtime: pgate::runtime::Runtime,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Exit when standard input reaches end-of-file: for supervisors (and tests) that
        /// hold a pipe to pgate and want it gone when they are.
        #[arg(long)]
        exit_on_stdin_eof: bool,
    },
    /// Check a configuration file (and the files it names) without starting.
    CheckConfig { file: PathBuf },
    /// Validate a built decision table.
    CheckTable { file: PathBuf },
    /// Say which I/O driver `--runtime` picks here, and why (exit status 1 if it cannot).
    CheckRuntime,
    /// Mint a token for local use, demos and tests, or create a signing key pair.
    Token(TokenArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of audit files (oldest first, rotated files before the
    /// current one): names the first edited, removed, inserted or reordered line, and
    /// prints the chain head to compare with a copy kept elsewhere.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Require the first file to start the chain (no older file left out).
        #[arg(long)]
        from_genesis: bool,
        /// Require this chain head (hex, as pgate printed it at exit): no line at the end
        /// removed.
        #[arg(long, value_name = "HEX")]
        expect_head: Option<String>,
    },
}

#[derive(clap::Args)]
struct TokenArgs {
    /// Write a new ES256 signing key and the matching JWKS into DIR, then exit.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["key", "sub"])]
    init_keys: Option<PathBuf>,
    /// The signing key (PKCS#8 PEM, as written by --init-keys).
    #[arg(long, value_name = "FILE", required_unless_present = "init_keys")]
    key: Option<PathBuf>,
    /// The token's subject (`sub`).
    #[arg(long, required_unless_present = "init_keys")]
    sub: Option<String>,
    /// Extra claims, `name=value` (a JSON value, or else a string); repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
    /// Delegation chain (`act`), outermost (current) actor first; repeatable.
    #[arg(long = "act", value_name = "SUB")]
    act: Vec<String>,
    /// Lifetime, like 15m, 1h, 3600s.
    #[arg(long, default_value = "1h")]
    ttl: String,
    #[arg(long, default_value = "https://pgate.local")]
    iss: String,
    #[arg(long, default_value = "pgate")]
    aud: String,
    /// Key id for the header (default: derived from the key).
    #[arg(long)]
    kid: Option<String>,
    /// Bind the token to this client certificate (PEM): `cnf` `x5t#S256` (RFC 8705), so
    /// only a TLS client presenting it (and holding its key) can use the token.
    #[arg(long, value_name = "FILE")]
    cnf_cert: Option<PathBuf>,
}

fn token_cmd(a: &TokenArgs) -> Result<(), String> {
    if let Some(dir) = &a.init_keys {
        let k = pgate::token::init_keys(dir).map_err(|e| e.to_string())?;
        println!(
            "wrote {} and {} (kid {})",
            k.key_path.display(),
            k.jwks_path.display(),
            k.kid
        );
        return Ok(());
    }
    let (Some(key), Some(sub)) = (&a.key, &a.sub) else {
        return Err("token: --key and --sub are required (or --init-keys DIR)".into());
    };
    let mut claims = a
        .claims
        .iter()
        .map(|c| pgate::token::parse_claim(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if let Some(cert) = &a.cnf_cert {
        claims.push(("cnf".into(), pgate::token::cnf_for_cert(cert)?));
    }
    let ttl = pgate::token::parse_duration(&a.ttl).map_err(|e| e.to_string())?;
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = pgate::token::mint(&pgate::token::MintArgs {
        key_path: key.clone(),
        kid: a.kid.clone(),
        sub: sub.clone(),
        claims,
        act: a.act.clone(),
        ttl_secs: ttl.as_secs(),
        issuer: a.iss.clone(),
        audience: a.aud.clone(),
        now_unix,
    })
    .map_err(|e| e.to_string())?;
    println!("{t}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match (cli.command, cli.config) {
        (
            Some(Command::Run {
                config,
                exit_on_stdin_eof,
            }),
            _,
        ) => run(&config, exit_on_stdin_eof, cli.runtime),
        (None, Some(config)) => run(&config, false, cli.runtime),
        (Some(Command::CheckConfig { file }), _) => check_config(&file).map(|_| {
            println!("{}: ok", file.display());
        }),
        (Some(Command::CheckTable { file }), _) => {
            pgate::reload::load_table(&file, true).map(|t| {
                let v = t.table();
                println!(
                    "{}: ok ({} roles, {} tables, {} rules)",
                    file.display(),
                    v.role_count(),
                    v.table_count(),
                    v.rule_count()
                );
            })
        }
        (Some(Command::Token(args)), _) => token_cmd(&args),
        (Some(Command::CheckRuntime), _) => cli.runtime.resolve().map(|r| println!("{}", r.name())),
        (
            Some(Command::Audit(AuditCommand::Verify {
                files,
                from_genesis,
                expect_head,
            })),
            _,
        ) => verify_cmd(&files, from_genesis, expect_head.as_deref()),
        (None, None) => Err("nothing to do: pass --config FILE (see --help)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgate: {e}");
            ExitCode::from(1)
        }
    }
}

fn verify_cmd(
    files: &[PathBuf],
    from_genesis: bool,
    expect_head: Option<&str>,
) -> Result<(), String> {
    use pgate::audit_chain::{ChainValue, Expect, verify_files_expecting};
    let head = match expect_head {
        Some(h) => Some(ChainValue::from_hex(h.trim()).ok_or_else(|| {
            format!("--expect-head {h}: not a chain head (64 hex digits, as pgate prints it)")
        })?),
        None => None,
    };
    let expect = Expect { from_genesis, head };
    verify_files_expecting(files, &expect)
        .map(|v| println!("ok: {} lines, chain head {}", v.lines, v.head.hex()))
        .map_err(|e| e.to_string())
}

/// SIGTERM, SIGINT and (with `--exit-on-stdin-eof`) the end of standard input begin the
/// drain: stop accepting, let sessions go on up to the drain timeout, then 57P01. Standard
/// input's end drains at once (the supervisor is gone).
fn spawn_shutdown_listener(control: Arc<ControlHandle>, drain: Duration, stdin_eof: bool) {
    if stdin_eof {
        let control = control.clone();
        let _ = std::thread::Builder::new()
            .name("pgate-stdin".into())
            .spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
                eprintln!("pgate: standard input closed, shutting down");
                control.drain(Duration::ZERO);
            });
    }
    let spawned = pgate::runtime::spawn_on_own_runtime("pgate-signals", move || async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("pgate: cannot listen for SIGTERM/SIGINT");
            return;
        };
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        eprintln!(
            "pgate: {which}: draining (sessions may finish for up to {}s)",
            drain.as_secs()
        );
        control.drain(drain);
    });
    if let Err(e) = spawned {
        eprintln!("pgate: cannot listen for SIGTERM/SIGINT ({e})");
    }
}

/// Everything a running proxy needs, loaded and checked.
struct Loaded {
    config: Config,
    table: TableFile,
    auth: pgate::identity::JwtAuthenticator,
    tls: Option<tokio_rustls::TlsAcceptor>,
    upstream_password: Option<String>,
    mask_hash_key: Option<Arc<pgate::masks::HashKey>>,
}

fn check_config(path: &Path) -> Result<Loaded, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let mask_hash_key = match &config.mask_hash_key {
        Secret::None => None,
        Secret::File(f) => Some(Arc::new(pgate::masks::load_hash_key(f)?)),
        Secret::Env(v) => {
            let m = std::env::var(v)
                .map_err(|_| format!("masks: hash key: environment variable {v} is not set"))?;
            Some(Arc::new(
                pgate::masks::hash_key_from(m.as_bytes())
                    .map_err(|e| format!("masks: hash key from {v}: {e}"))?,
            ))
        }
    };
    let table = pgate::reload::load_table(&config.policy, mask_hash_key.is_some())?;
    let auth = pgate::identity::JwtAuthenticator::from_config(&config.identity)
        .map_err(|e| format!("identity: {}: {e}", config.identity.jwks.display()))?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(pgate::tls::acceptor(cert, key, config.tls_client_certs)?),
        None => None,
    };
    let upstream_password = match &config.upstream.password {
        Secret::None => None,
        Secret::File(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("upstream password file {}: {e}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        Secret::Env(v) => Some(
            std::env::var(v)
                .map_err(|_| format!("upstream password: environment variable {v} is not set"))?,
        ),
    };
    if config.tls.is_none() && !config.allow_plaintext_loopback {
        return Err(format!(
            "{}: no `tls` and `allow-plaintext-loopback` is off: no client could ever authenticate",
            path.display()
        ));
    }
    Ok(Loaded {
        config,
        table,
        auth,
        tls,
        upstream_password,
        mask_hash_key,
    })
}

fn run(
    path: &Path,
    exit_on_stdin_eof: bool,
    runtime: pgate::runtime::Runtime,
) -> Result<(), String> {
    // Every connection is a socket: allow as many as the hard limit.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("pgate: cannot raise the open-file limit: {e}");
    }
    let l = check_config(path)?;
    let c = &l.config;
    let upstream =
        std::net::ToSocketAddrs::to_socket_addrs(&(c.upstream.host.as_str(), c.upstream.port))
            .map_err(|e| format!("upstream {}:{}: {e}", c.upstream.host, c.upstream.port))?
            .next()
            .ok_or_else(|| format!("upstream {}: no address", c.upstream.host))?;
    let upstream_tls = match pgate::tls::connector(c.upstream.tls, c.upstream.ca.as_deref())? {
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from(c.upstream.host.clone())
                .map_err(|e| format!("upstream host `{}`: {e}", c.upstream.host))?;
            Some((connector, name))
        }
        None => None,
    };
    let instance = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
    let table_hex: String = l.table.table().digest()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // A slot per worker (`runtime::run` hands them out) and slot 0 for everything else.
    let audit = pgate::audit::AuditSink::start_with_slots(
        &c.audit.path,
        c.audit.on_failure,
        8 << 20,
        pgate::audit::ChainStart {
            instance,
            table: table_hex,
        },
        c.workers + 1,
    )
    .map_err(|e| format!("audit log {}: {e}", c.audit.path.display()))?;
    pgate::metrics::install(c.metrics, audit.clone())?;
    let table = Arc::new(ArcSwap::from_pointee(l.table));
    let auth = Arc::new(l.auth);
    let jwt = auth.clone();
    let (control, control_rx) = ControlHandle::new();
    let control = Arc::new(control);
    spawn_shutdown_listener(control.clone(), c.limits.drain_timeout, exit_on_stdin_eof);
    let lim = &c.limits;
    // Token uses and budgets: this instance's own, or kept in the store replicas share.
    let (token_uses, budget_store): (
        Arc<pgate::token_uses::TokenUses>,
        Arc<dyn pgate::budgets::BudgetStore>,
    ) = match &c.shared_store {
        None => (
            Arc::default(),
            Arc::new(pgate::budgets::LocalBudgets::default()),
        ),
        Some(s) => {
            let store = pgate::shared_store::SharedStore::start(s)?;
            eprintln!(
                "pgate: token uses and identity budgets are kept in {} (on-unavailable={})",
                s.url,
                if s.fall_back_local { "local" } else { "refuse" }
            );
            (
                Arc::new(pgate::token_uses::TokenUses::shared(store.clone())),
                store,
            )
        }
    };
    let shared = pgate::runtime::Shared {
        table,
        auth,
        tls: l.tls,
        session: SessionConfig {
            max_message_bytes: lim.max_message_bytes,
            upstream_user: c.upstream.user.clone(),
            upstream_password: l.upstream_password,
            upstream_database: c.upstream.database.clone(),
            tls_available: false,
            allow_plaintext_auth: false,
            expect_proxy_header: false,
            max_prepared_statements: lim.max_prepared_statements,
            max_pipeline_depth: lim.max_pipeline_depth,
            token_grace_secs: c.identity.token_grace.as_secs(),
            default_search_path: vec!["public".into()],
            login_timeout_ms: lim.login_timeout.as_millis() as u64,
            max_portals: lim.max_portals,
            max_sql_prepared: lim.max_sql_prepared,
            max_cursors: lim.max_cursors,
            max_listen_channels: lim.max_listen_channels,
            max_pipeline_bytes: lim.max_pipeline_bytes,
            mask_hash_key: l.mask_hash_key.clone(),
            reuse_upstream: c.upstream.pool_max_idle > 0,
        },
        upstream,
        upstream_tls,
        audit: audit.clone(),
        cancels: Arc::default(),
        identity_buckets: Arc::default(),
        token_uses,
        budget_store,
        catalogs: Arc::default(),
        max_connections: lim.max_connections,
        max_connections_per_address: lim.max_connections_per_address,
        connections: Arc::new(AtomicU64::new(0)),
        per_address: Arc::default(),
        proxy_trusted: c.proxy_trusted.clone(),
        allow_plaintext_loopback: c.allow_plaintext_loopback,
        control: control_rx,
        instance,
        conn_seq: Arc::default(),
        pool: pgate::runtime::PoolConfig {
            max_idle: c.upstream.pool_max_idle,
            idle_timeout: c.upstream.pool_idle_timeout,
        },
        wakers: control.wakers(),
    };
    // The masks' catalog of the configured database: a mask its column's type cannot
    // carry refuses the table now, not at the first result.
    let first = shared.table.load_full();
    pgate::runtime::block_on_own_runtime(pgate::runtime::lookup::prepare(&shared, &first))
        .map_err(|e| format!("policy {}: {e}", c.policy.display()))??;
    pgate::reload::spawn_reloader(
        c.policy.clone(),
        c.identity.jwks.clone(),
        shared.clone(),
        jwt,
        control.clone(),
        shared.session.mask_hash_key.is_some(),
    );
    let driver = runtime.resolve()?;
    eprintln!(
        "pgate: listening on {} ({} workers, {}), upstream {upstream}",
        c.listen,
        c.workers,
        driver.name()
    );
    let served = pgate::runtime::run(c.listen, c.workers, driver, shared)
        .map_err(|e| format!("{}: {e}", c.listen));
    // Every session has ended: the audit log is complete; make it durable before exiting.
    if audit.flush_and_sync(Duration::from_secs(30)) {
        eprintln!(
            "pgate: audit log flushed and synced (chain head {}); exiting",
            audit.chain_head()
        );
    } else {
        eprintln!("pgate: the audit log could not be flushed within 30s; exiting anyway");
    }
    served
}
