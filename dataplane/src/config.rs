//! The operator's configuration file (`pgate.kdl`), parsed and validated in one pass.
//!
//! Every error is one line naming the file, line and column, and the cause:
//! `pgate.kdl:7:5: upstream: `port` must be an integer between 1 and 65535`.
//! This module reads the config file only; it never opens the files the config names
//! (certificates, keys, policy): their loaders report their own errors with the path.
//!
//! ```kdl
//! listen "127.0.0.1:6432"
//! workers 2                                  // default: one per core
//! tls cert="certs/server.crt" key="certs/server.key" client-certs="request" // none (default) | request
//! allow-plaintext-loopback #false            // tokens over plaintext, loopback clients only
//! proxy-protocol "10.0.0.0/8" "192.0.2.10"   // load balancers sending a PROXY v2 header first
//! upstream host="127.0.0.1" port=5432 database="app" user="pgate" password-env="PGATE_DB_PASSWORD" {
//!     tls "disable"                          // disable | require | verify-full
//!     ca "certs/db-ca.crt"
//!     pool max-idle=16 idle-timeout="60s"    // reuse of upstream connections; max-idle=0: off
//! }
//! identity issuer="https://idp.example.com" audience="pgate" jwks="keys/jwks.json" leeway="30s" token-grace="0s"
//! policy "policy.pgt"                        // a table built by pgate-compile (reloaded on change)
//! audit path="audit.jsonl" on-failure="block" // block | refuse
//! metrics "127.0.0.1:9187"
//! masks hash-key-file="keys/mask.key"        // or hash-key-env=; the key of `hash` masks
//! shared-store "redis://10.0.0.5:6379/0" on-unavailable="refuse" timeout="250ms" prefix="pgate"
//!                                            // token uses and budgets shared by replicas
//! limits max-message-bytes=16777216 max-prepared-statements=1024 max-pipeline-depth=1024 \
//!     max-pipeline-bytes=67108864 max-connections=10000 max-connections-per-address=1000 \
//!     max-portals=1024 max-sql-prepared=1024 max-cursors=1024 max-listen-channels=256 \
//!     login-timeout="60s" drain-timeout="30s"
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kdl::{KdlDocument, KdlNode, KdlValue};

/// A configuration error: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTls {
    Disable,
    Require,
    VerifyFull,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    None,
    File(PathBuf),
    Env(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: String,
    pub password: Secret,
    pub tls: UpstreamTls,
    pub ca: Option<PathBuf>,
    /// Idle upstream connections kept per worker and StartupMessage (0: no reuse), and
    /// how long one may stay idle.
    pub pool_max_idle: usize,
    pub pool_idle_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub audience: String,
    pub jwks: PathBuf,
    pub leeway: Duration,
    pub token_grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFailure {
    /// Statements wait until the audit sink accepts their lines.
    Block,
    /// New statements are refused while the audit sink is failing or full.
    Refuse,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// `-` for standard output.
    pub path: PathBuf,
    pub on_failure: AuditFailure,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: u32,
    pub max_prepared_statements: usize,
    pub max_pipeline_depth: usize,
    pub max_pipeline_bytes: usize,
    pub max_connections: usize,
    /// Connections from one client IP address at once.
    pub max_connections_per_address: usize,
    pub max_portals: usize,
    pub max_sql_prepared: usize,
    pub max_cursors: usize,
    pub max_listen_channels: usize,
    /// From accept until the session is proxying (PostgreSQL's `authentication_timeout`).
    pub login_timeout: Duration,
    /// How long sessions may go on after SIGTERM / SIGINT before they get 57P01.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 << 20,
            max_prepared_statements: 1024,
            max_pipeline_depth: 1024,
            max_pipeline_bytes: 64 << 20,
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            max_portals: 1024,
            max_sql_prepared: 1024,
            max_cursors: 1024,
            max_listen_channels: 256,
            login_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file this was read from (relative paths inside resolve against its folder).
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub workers: usize,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `tls client-certs="request"`: ask clients for a certificate (optional), for tokens
    /// bound to one (RFC 8705 `cnf` `x5t#S256`).
    pub tls_client_certs: bool,
    pub allow_plaintext_loopback: bool,
    /// `proxy-protocol "10.0.0.0/8" …`: load balancers whose connections begin with a
    /// PROXY protocol v2 header (anyone else's never do).
    pub proxy_trusted: Vec<ipnet::IpNet>,
    pub upstream: Upstream,
    pub identity: Identity,
    pub policy: PathBuf,
    pub audit: Audit,
    pub metrics: Option<SocketAddr>,
    pub limits: Limits,
    /// The key of `hash` masks (`masks hash-key-file=` or `hash-key-env=`).
    pub mask_hash_key: Secret,
    /// `shared-store`: where replicas keep token uses and identity budgets (`None`: this
    /// instance's own records).
    pub shared_store: Option<SharedStore>,
}

/// `shared-store "redis://…" on-unavailable="refuse|local" timeout="250ms" prefix="pgate"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedStore {
    pub url: String,
    /// `on-unavailable="local"`: while the store cannot be reached, count on this instance
    /// alone (the default, `"refuse"`, fails closed).
    pub fall_back_local: bool,
    /// How long one request may take before the store counts as unreachable.
    pub timeout: Duration,
    /// Prefix of every key pgate writes.
    pub prefix: String,
}

/// Maximum config file size: a config is a page of text, not a data file.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let err0 = |message: String| ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err0(format!("cannot read: {e}")))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(err0(format!(
                "file is larger than {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err0(format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let p = Parser {
            text,
            file: path.display().to_string(),
        };
        let doc: KdlDocument = text.parse().map_err(|e: kdl::KdlError| {
            let (offset, msg) = e
                .diagnostics
                .first()
                .map(|d| {
                    (
                        d.span.offset(),
                        d.message
                            .clone()
                            .or(d.label.clone())
                            .unwrap_or_else(|| "invalid KDL".into()),
                    )
                })
                .unwrap_or((0, "invalid KDL".into()));
            p.error_at(offset, format!("syntax error: {msg}"))
        })?;
        p.config(&doc, path)
    }
}

struct Parser<'a> {
    text: &'a str,
    file: String,
}

impl Parser<'_> {
    fn error_at(&self, offset: usize, message: String) -> ConfigError {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            message,
        }
    }

    fn err(&self, node: &KdlNode, message: String) -> ConfigError {
        self.error_at(node.span().offset(), message)
    }

    fn config(&self, doc: &KdlDocument, path: &Path) -> Result<Config, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        let mut listen = None;
        let mut workers = None;
        let mut tls = None;
        let mut tls_client_certs = false;
        let mut proxy_trusted = Vec::new();
        let mut allow_plaintext = false;
        let mut upstream = None;
        let mut identity = None;
        let mut policy = None;
        let mut audit = None;
        let mut metrics = None;
        let mut limits = Limits::default();
        let mut mask_hash_key = Secret::None;
        let mut shared_store = None;
        let mut seen: Vec<&str> = Vec::new();

        for node in doc.nodes() {
            let name = node.name().value();
            if seen.contains(&name) {
                return Err(self.err(node, format!("`{name}` is given twice")));
            }
            match name {
                "listen" => {
                    let v = self.arg_str(node)?;
                    listen = Some(v.parse::<SocketAddr>().map_err(|e| {
                        self.err(
                            node,
                            format!("listen: `{v}` is not an address like 127.0.0.1:6432 ({e})"),
                        )
                    })?);
                }
                "workers" => {
                    let n = self.arg_int(node)?;
                    if !(1..=1024).contains(&n) {
                        return Err(self.err(node, "workers: must be between 1 and 1024".into()));
                    }
                    workers = Some(n as usize);
                }
                "tls" => {
                    let cert = self
                        .prop_str(node, "cert")?
                        .ok_or_else(|| self.err(node, "tls: needs `cert=`".into()))?;
                    let key = self
                        .prop_str(node, "key")?
                        .ok_or_else(|| self.err(node, "tls: needs `key=`".into()))?;
                    self.only_props(node, &["cert", "key", "client-certs"])?;
                    tls_client_certs = match self.prop_str(node, "client-certs")?.as_deref() {
                        None | Some("none") => false,
                        Some("request") => true,
                        Some(o) => {
                            return Err(self.err(
                                node,
                                format!("tls: client-certs `{o}` is not one of none, request"),
                            ));
                        }
                    };
                    tls = Some((resolve(&cert), resolve(&key)));
                }
                "proxy-protocol" => {
                    for e in node.entries() {
                        let Some(s) = e.value().as_string().filter(|_| e.name().is_none()) else {
                            return Err(self.err(
                                node,
                                "proxy-protocol: each trusted source is a string (\"10.0.0.0/8\", \"192.0.2.10\")".into(),
                            ));
                        };
                        let net = s
                            .parse::<ipnet::IpNet>()
                            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| {
                                self.err(
                                    node,
                                    format!(
                                        "proxy-protocol: `{s}` is not an address or a CIDR block"
                                    ),
                                )
                            })?;
                        proxy_trusted.push(net);
                    }
                    if proxy_trusted.is_empty() {
                        return Err(self.err(
                            node,
                            "proxy-protocol: name the trusted load balancers (addresses or CIDR blocks)".into(),
                        ));
                    }
                }
                "allow-plaintext-loopback" => {
                    allow_plaintext = match node.entries().first().map(|e| e.value()) {
                        Some(KdlValue::Bool(b)) => *b,
                        _ => {
                            return Err(self.err(
                                node,
                                "allow-plaintext-loopback: takes #true or #false".into(),
                            ));
                        }
                    };
                }
                "upstream" => upstream = Some(self.upstream(node, &resolve)?),
                "identity" => {
                    self.only_props(
                        node,
                        &["issuer", "audience", "jwks", "leeway", "token-grace"],
                    )?;
                    let req = |k: &str| -> Result<String, ConfigError> {
                        self.prop_str(node, k)?
                            .ok_or_else(|| self.err(node, format!("identity: needs `{k}=`")))
                    };
                    identity = Some(Identity {
                        issuer: req("issuer")?,
                        audience: req("audience")?,
                        jwks: resolve(&req("jwks")?),
                        leeway: self.duration(node, "leeway", Duration::from_secs(30))?,
                        token_grace: self.duration(node, "token-grace", Duration::ZERO)?,
                    });
                }
                "policy" => policy = Some(resolve(&self.arg_str(node)?)),
                "audit" => {
                    self.only_props(node, &["path", "on-failure"])?;
                    let path = self.prop_str(node, "path")?.ok_or_else(|| {
                        self.err(
                            node,
                            "audit: needs `path=` (`-` for standard output)".into(),
                        )
                    })?;
                    let on_failure = match self.prop_str(node, "on-failure")?.as_deref() {
                        None | Some("block") => AuditFailure::Block,
                        Some("refuse") => AuditFailure::Refuse,
                        Some(o) => {
                            return Err(self.err(
                                node,
                                format!("audit: on-failure must be `block` or `refuse`, not `{o}`"),
                            ));
                        }
                    };
                    let path = if path == "-" {
                        PathBuf::from("-")
                    } else {
                        resolve(&path)
                    };
                    audit = Some(Audit { path, on_failure });
                }
                "shared-store" => shared_store = Some(self.shared_store(node)?),
                "metrics" => {
                    let v = self.arg_str(node)?;
                    metrics = Some(v.parse::<SocketAddr>().map_err(|e| {
                        self.err(node, format!("metrics: `{v}` is not an address ({e})"))
                    })?);
                }
                "limits" => {
                    self.only_props(
                        node,
                        &[
                            "max-message-bytes",
                            "max-prepared-statements",
                            "max-pipeline-depth",
                            "max-pipeline-bytes",
                            "max-connections",
                            "max-connections-per-address",
                            "max-portals",
                            "max-sql-prepared",
                            "max-cursors",
                            "max-listen-channels",
                            "login-timeout",
                            "drain-timeout",
                        ],
                    )?;
                    limits.login_timeout =
                        self.duration(node, "login-timeout", limits.login_timeout)?;
                    limits.drain_timeout =
                        self.duration(node, "drain-timeout", limits.drain_timeout)?;
                    if limits.login_timeout.is_zero() {
                        return Err(
                            self.err(node, "limits: login-timeout must be more than 0".into())
                        );
                    }
                    if let Some(n) = self.prop_int(node, "max-pipeline-bytes")? {
                        if !(1024..=1 << 32).contains(&n) {
                            return Err(self.err(
                                node,
                                "limits: max-pipeline-bytes must be between 1024 and 4294967296"
                                    .into(),
                            ));
                        }
                        limits.max_pipeline_bytes = n as usize;
                    }
                    if let Some(n) = self.prop_int(node, "max-message-bytes")? {
                        if !(1024..=1 << 30).contains(&n) {
                            return Err(self.err(
                                node,
                                "limits: max-message-bytes must be between 1024 and 1073741824"
                                    .into(),
                            ));
                        }
                        limits.max_message_bytes = n as u32;
                    }
                    for (k, slot) in [
                        (
                            "max-prepared-statements",
                            &mut limits.max_prepared_statements,
                        ),
                        ("max-pipeline-depth", &mut limits.max_pipeline_depth),
                        ("max-connections", &mut limits.max_connections),
                        (
                            "max-connections-per-address",
                            &mut limits.max_connections_per_address,
                        ),
                        ("max-portals", &mut limits.max_portals),
                        ("max-sql-prepared", &mut limits.max_sql_prepared),
                        ("max-cursors", &mut limits.max_cursors),
                        ("max-listen-channels", &mut limits.max_listen_channels),
                    ] {
                        if let Some(n) = self.prop_int(node, k)? {
                            if !(1..=1_000_000).contains(&n) {
                                return Err(self.err(
                                    node,
                                    format!("limits: {k} must be between 1 and 1000000"),
                                ));
                            }
                            *slot = n as usize;
                        }
                    }
                }
                "masks" => {
                    self.only_props(node, &["hash-key-file", "hash-key-env"])?;
                    mask_hash_key = match (
                        self.prop_str(node, "hash-key-file")?,
                        self.prop_str(node, "hash-key-env")?,
                    ) {
                        (Some(f), None) => Secret::File(resolve(&f)),
                        (None, Some(e)) => Secret::Env(e),
                        _ => {
                            return Err(self.err(
                                node,
                                "masks: give `hash-key-file=` or `hash-key-env=` (one of them)"
                                    .into(),
                            ));
                        }
                    };
                }
                other => {
                    return Err(self.err(
                        node,
                        format!("unknown setting `{other}` (expected one of: listen, workers, tls, allow-plaintext-loopback, proxy-protocol, upstream, identity, policy, audit, metrics, limits, masks, shared-store)"),
                    ));
                }
            }
            seen.push(name);
        }
        let at_end = |what: &str| self.error_at(0, format!("missing `{what}`"));
        Ok(Config {
            path: path.to_path_buf(),
            listen: listen.ok_or_else(|| at_end("listen"))?,
            workers: workers.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            tls,
            tls_client_certs,
            allow_plaintext_loopback: allow_plaintext,
            proxy_trusted,
            upstream: upstream.ok_or_else(|| at_end("upstream"))?,
            identity: identity.ok_or_else(|| at_end("identity"))?,
            policy: policy.ok_or_else(|| at_end("policy"))?,
            audit: audit.ok_or_else(|| at_end("audit"))?,
            metrics,
            limits,
            mask_hash_key,
            shared_store,
        })
    }

    fn shared_store(&self, node: &KdlNode) -> Result<SharedStore, ConfigError> {
        let url = self.arg_str(node)?;
        const PROPS: &[&str] = &["on-unavailable", "timeout", "prefix"];
        if let Some(e) = node
            .entries()
            .iter()
            .find(|e| e.name().is_some_and(|n| !PROPS.contains(&n.value())))
        {
            return Err(self.error_at(
                e.span().offset(),
                format!(
                    "shared-store: unknown property `{}` (expected: {})",
                    e.name().map(|n| n.value()).unwrap_or(""),
                    PROPS.join(", ")
                ),
            ));
        }
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(self.err(
                node,
                format!("shared-store: `{url}` is not a redis:// or rediss:// URL"),
            ));
        }
        let fall_back_local = match self.prop_str(node, "on-unavailable")?.as_deref() {
            None | Some("refuse") => false,
            Some("local") => true,
            Some(o) => {
                return Err(self.err(
                    node,
                    format!("shared-store: on-unavailable `{o}` is not one of refuse, local"),
                ));
            }
        };
        let timeout = match self.prop_str(node, "timeout")? {
            None => Duration::from_millis(250),
            Some(t) => parse_duration(&t)
                .filter(|d| !d.is_zero() && *d <= Duration::from_secs(10))
                .ok_or_else(|| {
                    self.err(
                        node,
                        format!(
                            "shared-store: timeout `{t}` is not a duration between 1ms and 10s"
                        ),
                    )
                })?,
        };
        let prefix = self
            .prop_str(node, "prefix")?
            .unwrap_or_else(|| "pgate".into());
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.err(
                node,
                "shared-store: prefix must be printable ASCII without spaces".into(),
            ));
        }
        Ok(SharedStore {
            url,
            fall_back_local,
            timeout,
            prefix,
        })
    }

    fn upstream(
        &self,
        node: &KdlNode,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Result<Upstream, ConfigError> {
        self.only_props(
            node,
            &[
                "host",
                "port",
                "database",
                "user",
                "password-file",
                "password-env",
            ],
        )?;
        let host = self
            .prop_str(node, "host")?
            .ok_or_else(|| self.err(node, "upstream: needs `host=`".into()))?;
        let port = match self.prop_int(node, "port")? {
            None => 5432,
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(_) => {
                return Err(self.err(node, "upstream: `port` must be between 1 and 65535".into()));
            }
        };
        let user = self
            .prop_str(node, "user")?
            .ok_or_else(|| self.err(node, "upstream: needs `user=`".into()))?;
        let password = match (
            self.prop_str(node, "password-file")?,
            self.prop_str(node, "password-env")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    node,
                    "upstream: give `password-file=` or `password-env=`, not both".into(),
                ));
            }
            (Some(f), None) => Secret::File(resolve(&f)),
            (None, Some(e)) => Secret::Env(e),
            (None, None) => Secret::None,
        };
        let mut tls = UpstreamTls::Disable;
        let mut ca = None;
        let mut pool_max_idle = 16;
        let mut pool_idle_timeout = Duration::from_secs(60);
        if let Some(children) = node.children() {
            for c in children.nodes() {
                match c.name().value() {
                    "tls" => tls = match self.arg_str(c)?.as_str() {
                        "disable" => UpstreamTls::Disable,
                        "require" => UpstreamTls::Require,
                        "verify-full" => UpstreamTls::VerifyFull,
                        o => return Err(self.err(
                            c,
                            format!(
                                "upstream tls: `{o}` is not one of disable, require, verify-full"
                            ),
                        )),
                    },
                    "ca" => ca = Some(resolve(&self.arg_str(c)?)),
                    "pool" => {
                        self.only_props(c, &["max-idle", "idle-timeout"])?;
                        if let Some(n) = self.prop_int(c, "max-idle")? {
                            pool_max_idle = usize::try_from(n)
                                .ok()
                                .filter(|n| *n <= 10_000)
                                .ok_or_else(|| {
                                    self.err(
                                        c,
                                        "pool: `max-idle` must be between 0 and 10000".into(),
                                    )
                                })?;
                        }
                        pool_idle_timeout = self.duration(c, "idle-timeout", pool_idle_timeout)?;
                        if pool_idle_timeout.is_zero() {
                            return Err(self.err(
                                c,
                                "pool: `idle-timeout` must be longer than 0s (max-idle=0 turns reuse off)".into(),
                            ));
                        }
                    }
                    o => {
                        return Err(self.err(
                            c,
                            format!("upstream: unknown setting `{o}` (expected tls, ca, pool)"),
                        ));
                    }
                }
            }
        }
        if tls == UpstreamTls::VerifyFull && ca.is_none() {
            return Err(self.err(node, "upstream: tls \"verify-full\" needs `ca`".into()));
        }
        Ok(Upstream {
            host,
            port,
            database: self.prop_str(node, "database")?,
            user,
            password,
            tls,
            ca,
            pool_max_idle,
            pool_idle_timeout,
        })
    }

    fn arg_str(&self, node: &KdlNode) -> Result<String, ConfigError> {
        let name = node.name().value();
        let args: Vec<_> = node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .collect();
        match args.as_slice() {
            [e] => match e.value() {
                KdlValue::String(s) => Ok(s.clone()),
                _ => Err(self.error_at(e.span().offset(), format!("{name}: expected a string"))),
            },
            _ => Err(self.err(node, format!("{name}: takes exactly one value"))),
        }
    }

    fn arg_int(&self, node: &KdlNode) -> Result<i128, ConfigError> {
        let name = node.name().value();
        match node.entries().first().map(|e| e.value()) {
            Some(KdlValue::Integer(i)) if node.entries().len() == 1 => Ok(*i),
            _ => Err(self.err(node, format!("{name}: takes exactly one integer"))),
        }
    }

    fn prop<'n>(&self, node: &'n KdlNode, key: &str) -> Option<&'n kdl::KdlEntry> {
        node.entries()
            .iter()
            .find(|e| e.name().map(|n| n.value()) == Some(key))
    }

    fn prop_str(&self, node: &KdlNode, key: &str) -> Result<Option<String>, ConfigError> {
        match self.prop(node, key) {
            None => Ok(None),
            Some(e) => match e.value() {
                KdlValue::String(s) => Ok(Some(s.clone())),
                _ => Err(self.error_at(
                    e.span().offset(),
                    format!("{}: `{key}` must be a string", node.name().value()),
                )),
            },
        }
    }

    fn prop_int(&self, node: &KdlNode, key: &str) -> Result<Option<i128>, ConfigError> {
        match self.prop(node, key) {
            None => Ok(None),
            Some(e) => match e.value() {
                KdlValue::Integer(i) => Ok(Some(*i)),
                _ => Err(self.error_at(
                    e.span().offset(),
                    format!("{}: `{key}` must be an integer", node.name().value()),
                )),
            },
        }
    }

    fn duration(
        &self,
        node: &KdlNode,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.prop_str(node, key)? {
            None => Ok(default),
            Some(s) => parse_duration(&s).ok_or_else(|| {
                self.err(
                    node,
                    format!(
                        "{}: `{key}` = `{s}` is not a duration like 30s, 5m, 1h",
                        node.name().value()
                    ),
                )
            }),
        }
    }

    fn only_props(&self, node: &KdlNode, allowed: &[&str]) -> Result<(), ConfigError> {
        for e in node.entries() {
            match e.name() {
                Some(n) if !allowed.contains(&n.value()) => {
                    return Err(self.error_at(
                        e.span().offset(),
                        format!(
                            "{}: unknown property `{}` (expected: {})",
                            node.name().value(),
                            n.value(),
                            allowed.join(", ")
                        ),
                    ));
                }
                None => {
                    return Err(self.error_at(
                        e.span().offset(),
                        format!(
                            "{}: takes properties only (like key=\"value\")",
                            node.name().value()
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `250ms`, `30s`, `5m`, `1h`, `2d`, or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs);
    match unit {
        "" | "s" => secs(1),
        "ms" => Some(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen "127.0.0.1:6432"
workers 2
allow-plaintext-loopback #true
upstream host="127.0.0.1" port=5432 user="pgate" password-env="PGATE_DB_PASSWORD" {
    tls "disable"
}
identity issuer="https://idp.example.com" audience="pgate" jwks="keys/jwks.json" leeway="30s"
policy "policy.pgt"
audit path="audit.jsonl" on-failure="refuse"
limits max-message-bytes=1048576
"#;

    #[test]
    fn a_shared_store_is_a_redis_url_with_its_failure_mode() {
        let base = "listen \"127.0.0.1:6432\"\nupstream host=\"db\" port=5432 user=\"u\" password-env=\"P\"\nidentity issuer=\"i\" audience=\"a\" jwks=\"j.json\"\npolicy \"p.pgt\"\naudit path=\"a.jsonl\"\n";
        let parse = |extra: &str| {
            Config::parse(&format!("{base}{extra}"), Path::new("/etc/pgate/pgate.kdl"))
        };
        assert_eq!(parse("").unwrap().shared_store, None);
        let s = parse(
            "shared-store \"redis://10.0.0.5:6379/0\" on-unavailable=\"local\" timeout=\"100ms\"",
        )
        .unwrap()
        .shared_store
        .unwrap();
        assert_eq!(
            (
                s.url.as_str(),
                s.fall_back_local,
                s.timeout,
                s.prefix.as_str()
            ),
            (
                "redis://10.0.0.5:6379/0",
                true,
                Duration::from_millis(100),
                "pgate"
            )
        );
        for (bad, says) in [
            ("shared-store \"http://x\"", "not a redis://"),
            (
                "shared-store \"redis://x\" on-unavailable=\"open\"",
                "not one of refuse, local",
            ),
            (
                "shared-store \"redis://x\" timeout=\"1h\"",
                "between 1ms and 10s",
            ),
            (
                "shared-store \"redis://x\" retries=3",
                "unknown property `retries`",
            ),
            (
                "shared-store \"redis://x\" prefix=\"a b\"",
                "printable ASCII",
            ),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("pgate.kdl:6:"), "{bad}: {e}");
        }
    }

    #[test]
    fn parses_a_full_config_and_resolves_paths() {
        let c = Config::parse(GOOD, Path::new("/etc/pgate/pgate.kdl")).unwrap();
        assert_eq!(c.listen.port(), 6432);
        assert_eq!(c.workers, 2);
        assert_eq!(c.upstream.password, Secret::Env("PGATE_DB_PASSWORD".into()));
        assert_eq!(c.identity.jwks, PathBuf::from("/etc/pgate/keys/jwks.json"));
        assert_eq!(c.identity.leeway, Duration::from_secs(30));
        assert_eq!(c.audit.on_failure, AuditFailure::Refuse);
        assert_eq!(c.limits.max_message_bytes, 1 << 20);
        assert!(c.allow_plaintext_loopback);
    }

    #[test]
    fn proxy_protocol_sources_and_client_certs() {
        let c = Config::parse(GOOD, Path::new("pgate.kdl")).unwrap();
        assert!(c.proxy_trusted.is_empty() && !c.tls_client_certs);
        let with = GOOD.replace(
            "workers 2",
            "workers 2\nproxy-protocol \"10.0.0.0/8\" \"192.0.2.10\" \"::1\"\ntls cert=\"s.crt\" key=\"s.key\" client-certs=\"request\"",
        );
        let c = Config::parse(&with, Path::new("pgate.kdl")).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(c.proxy_trusted.iter().any(|n| n.contains(&ip("10.1.2.3"))));
        assert!(
            c.proxy_trusted
                .iter()
                .any(|n| n.contains(&ip("192.0.2.10")))
        );
        assert!(
            !c.proxy_trusted
                .iter()
                .any(|n| n.contains(&ip("192.0.2.11")))
        );
        assert!(c.proxy_trusted.iter().any(|n| n.contains(&ip("::1"))));
        assert!(c.tls_client_certs);
        for (bad, want) in [
            ("proxy-protocol", "name the trusted load balancers"),
            (
                "proxy-protocol \"10.0.0.0/33\"",
                "not an address or a CIDR block",
            ),
            (
                "proxy-protocol trusted=\"10.0.0.0/8\"",
                "each trusted source is a string",
            ),
            ("proxy-protocol 10", "each trusted source is a string"),
        ] {
            let e =
                Config::parse(&GOOD.replace("workers 2", bad), Path::new("pgate.kdl")).unwrap_err();
            assert_eq!(e.line, 3, "{bad}");
            assert!(e.message.contains(want), "{bad}: {e}");
        }
        let e = Config::parse(
            &GOOD.replace(
                "workers 2",
                "tls cert=\"a\" key=\"b\" client-certs=\"require\"",
            ),
            Path::new("pgate.kdl"),
        )
        .unwrap_err();
        assert!(e.message.contains("not one of none, request"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_cause() {
        let bad = GOOD.replace("port=5432", "port=99999");
        let e = Config::parse(&bad, Path::new("pgate.kdl")).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("pgate.kdl", 5));
        assert!(
            e.to_string().starts_with("pgate.kdl:5:1: upstream: `port`"),
            "{e}"
        );

        let bad = GOOD.replace("workers 2", "workerz 2");
        let e = Config::parse(&bad, Path::new("pgate.kdl")).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unknown setting `workerz`"));

        let bad = GOOD.replace("leeway=\"30s\"", "leeway=\"soon\"");
        let e = Config::parse(&bad, Path::new("pgate.kdl")).unwrap_err();
        assert_eq!(e.line, 8);

        let e = Config::parse("listen \"x\" {", Path::new("c.kdl")).unwrap_err();
        assert!(e.message.starts_with("syntax error"), "{e}");

        let e = Config::parse("listen \"127.0.0.1:1\"", Path::new("c.kdl")).unwrap_err();
        assert!(e.message.contains("missing `upstream`"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }
}
