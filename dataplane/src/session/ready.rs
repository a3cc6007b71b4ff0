//! The data only the Ready state uses: units in flight and their final responses, the
//! SQL-level objects the server confirmed, and the result stream's caps, rates and masks.
//!
//! It is a plain record: the session's concerns (`batch`, `objects`, `results`, `masking`)
//! read and change it. It must never hold a socket, a clock or anything the client sent
//! before login.

use super::*;

pub(super) struct Ready {
    /// The schemas unqualified names resolve through: `path_optimistic`'s (`path`).
    pub(super) search_path: Vec<String>,
    /// The search path as the server confirmed it (replayed at each ReadyForQuery), and
    /// as it will be if what is in flight succeeds; the changes in flight, in order (spent
    /// ones are kept in the pool for reuse); whether the unit being built changes it, and
    /// the unit in flight that does (client input waits for its ReadyForQuery).
    pub(super) path_confirmed: pgate_core::search_path::PathTracker,
    pub(super) path_optimistic: pgate_core::search_path::PathTracker,
    pub(super) path_steps: VecDeque<super::path::PathStep>,
    pub(super) path_pool: Vec<super::path::PathStep>,
    pub(super) path_changes_unit: bool,
    pub(super) path_wait_unit: Option<u64>,
    pub(super) path_args_scratch: Vec<String>,
    /// The last ReadyForQuery's transaction status (`I`, `T` or `E`).
    pub(super) tx_status: u8,
    /// Units forwarded and not yet answered by ReadyForQuery.
    pub(super) inflight: usize,
    /// Markers in flight for refused messages, and the errors the client gets for them.
    pub(super) refusals: VecDeque<Refusal>,
    pub(super) refusal_buf: Vec<u8>,
    /// Final responses the messages forwarded in the current unit will produce.
    pub(super) batch_finals: u32,
    /// Final responses the upstream sent in the unit it is answering, and whether one was
    /// an error (the server then skips to Sync).
    pub(super) unit_finals: u32,
    pub(super) unit_error: bool,
    /// Some message of the current extended batch went upstream.
    pub(super) batch_forwarded: bool,
    /// A message of the current batch was denied: drop everything up to Sync.
    pub(super) skipping_batch: bool,
    pub(super) copy_in: bool,
    /// Syncs forwarded since the last Execute: if that Execute starts a COPY FROM STDIN,
    /// PostgreSQL ignores them ("The backend will ignore Flush and Sync messages received
    /// during copy-in mode"), so they will get no ReadyForQuery.
    pub(super) syncs_since_execute: usize,
    /// Messages other than Sync and Flush forwarded since the last Execute or Query.
    pub(super) sent_after_command: u32,
    /// CopyDone or CopyFail came before the server's CopyInResponse.
    pub(super) copy_ended_early: bool,
    /// Confirmed by the server (ParseComplete); `confirms` holds what is not yet.
    pub(super) statements: HashMap<String, Prepared>,
    pub(super) statement_versions: u64,
    pub(super) confirms: VecDeque<Confirm>,
    pub(super) confirm_pool: Vec<Confirm>,
    /// References to each summary slot (its statement, portals, pending lines).
    pub(super) summary_refs: Vec<u32>,
    pub(super) scratch_slots: Vec<usize>,
    pub(super) portals: HashMap<String, Portal>,
    /// The last portal id given out.
    pub(super) portal_ids: u64,
    /// The unnamed portal, reused (its strings keep their capacity).
    pub(super) unnamed_portal: Portal,
    pub(super) unnamed_portal_open: bool,
    /// SQL-level `PREPARE`d statements: the PREPARE's text.
    pub(super) sql_prepared: HashMap<String, Decided>,
    pub(super) cursors: HashMap<String, Cursor>,
    pub(super) listening: HashSet<String>,
    /// Scratch facts for re-deciding a stored statement (the current message's facts stay
    /// in `facts`), and the deny message of the last failed re-decision.
    pub(super) recheck: Facts,
    pub(super) recheck_msg: Option<String>,
    /// Client bytes forwarded per unit not yet answered, and their sum.
    pub(super) unit_bytes: VecDeque<usize>,
    pub(super) current_unit_bytes: usize,
    pub(super) inflight_bytes: usize,
    /// Audit summaries (`"classes":[…],"tables":[…]` JSON fragments): slot 0 is the
    /// current simple query's, reused; prepared statements own theirs.
    pub(super) summaries: Vec<String>,
    pub(super) free_summaries: Vec<usize>,
    pub(super) pending: VecDeque<Pending>,
    pub(super) unit_seq: u64,
    pub(super) rows: u64,
    pub(super) bytes: u64,
    /// The role's result caps, what the result being answered has sent the client, and the
    /// cut in progress (`results`).
    pub(super) caps: Caps,
    pub(super) cap_rows: u64,
    pub(super) cap_bytes: u64,
    /// What the pieces of SQL cursors' results sent since no cursor was open.
    pub(super) fetch_rows: u64,
    pub(super) fetch_bytes: u64,
    pub(super) cut: Option<Cut>,
    /// The cut statement's audit note, taken by its line.
    pub(super) cut_note: Option<String>,
    /// The role's byte rates; a throttle in force (until, and since: µs), and the time the
    /// current statement spent throttled; the instance's identity-scoped buckets.
    pub(super) rates: Vec<Rate>,
    /// The identity's budgets this session spends from.
    pub(super) budgets: Vec<super::budget::Spend>,
    pub(super) paused_until: Option<u64>,
    pub(super) paused_since: Option<u64>,
    pub(super) throttled_us: u64,
    /// Result masks, for a role that has any (`masking`).
    pub(super) masking: Option<Box<masking::Masking>>,
}

impl Ready {
    pub(super) fn new(search_path: Vec<String>) -> Self {
        Ready {
            path_confirmed: pgate_core::search_path::PathTracker::new(&search_path),
            path_optimistic: pgate_core::search_path::PathTracker::new(&search_path),
            path_steps: VecDeque::new(),
            path_pool: Vec::new(),
            path_changes_unit: false,
            path_wait_unit: None,
            path_args_scratch: Vec::new(),
            search_path,
            tx_status: b'I',
            inflight: 0,
            refusals: VecDeque::new(),
            refusal_buf: Vec::new(),
            batch_finals: 0,
            unit_finals: 0,
            unit_error: false,
            batch_forwarded: false,
            skipping_batch: false,
            copy_in: false,
            syncs_since_execute: 0,
            sent_after_command: 0,
            copy_ended_early: false,
            statements: HashMap::new(),
            statement_versions: 0,
            confirms: VecDeque::new(),
            confirm_pool: Vec::new(),
            summary_refs: vec![0],
            scratch_slots: Vec::new(),
            portals: HashMap::new(),
            unnamed_portal: Portal::default(),
            unnamed_portal_open: false,
            sql_prepared: HashMap::new(),
            cursors: HashMap::new(),
            listening: HashSet::new(),
            recheck: Facts::unallocated(),
            recheck_msg: None,
            unit_bytes: VecDeque::new(),
            current_unit_bytes: 0,
            inflight_bytes: 0,
            summaries: vec![String::new()],
            free_summaries: Vec::new(),
            pending: VecDeque::new(),
            unit_seq: 0,
            rows: 0,
            bytes: 0,
            caps: Caps::default(),
            cap_rows: 0,
            cap_bytes: 0,
            fetch_rows: 0,
            fetch_bytes: 0,
            portal_ids: 0,
            cut: None,
            cut_note: None,
            rates: Vec::new(),
            budgets: Vec::new(),
            paused_until: None,
            paused_since: None,
            throttled_us: 0,
            masking: None,
        }
    }
}
