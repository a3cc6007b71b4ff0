//! The search path across messages, as the server keeps it.
//!
//! A statement's path effect (a `SET`, `RESET`, transaction control) is recorded when it is
//! forwarded and applied at once to the optimistic path, which later statements of the
//! same unit are decided under; it reaches the confirmed path only once the server
//! completed it, and each ReadyForQuery ends the unit's implicit transaction
//! (`pgate_core::search_path`). A unit that may change the path makes later client input
//! wait for its ReadyForQuery, so nothing is decided under a path the server may not have.
//!
//! What it must never do: take a path change from a message the server did not run (a
//! Parse without Execute, a statement after an error), or allocate once its steps and
//! strings have grown to the session's working sizes.

use super::*;
use pgate_core::search_path::PathTracker;

/// One path change in flight.
#[derive(Debug, Default)]
pub(super) struct PathStep {
    unit: u64,
    effect: PathEffect,
    /// The path set, or the savepoint's name.
    args: Vec<String>,
    done: bool,
}

/// Whether `effect` can change the path in effect (not only the transaction's state).
fn changes_value(effect: PathEffect) -> bool {
    !matches!(
        effect,
        PathEffect::None | PathEffect::Begin | PathEffect::Savepoint | PathEffect::Release
    )
}

fn apply(t: &mut PathTracker, effect: PathEffect, args: &[String]) {
    let name = args.first().map_or("", String::as_str);
    match effect {
        PathEffect::None => {}
        PathEffect::Set { local } => t.set(args, local),
        PathEffect::Reset => t.reset(),
        PathEffect::Unknown => t.set_unknown(false),
        PathEffect::Begin => t.begin(),
        PathEffect::Commit { chain } => t.commit(chain),
        PathEffect::Rollback { chain } => t.rollback(chain),
        PathEffect::Savepoint => t.savepoint(name),
        PathEffect::Release => t.release(name),
        PathEffect::RollbackTo => t.rollback_to(name),
    }
}

fn fill(dst: &mut Vec<String>, src: impl Iterator<Item = impl AsRef<str>>) {
    let mut n = 0;
    for s in src {
        match dst.get_mut(n) {
            Some(d) => {
                d.clear();
                d.push_str(s.as_ref());
            }
            None => dst.push(s.as_ref().to_owned()),
        }
        n += 1;
    }
    dst.truncate(n);
}

impl Session {
    /// Statement `i` of the current facts: its path effect, its names into `args`.
    pub(super) fn path_effect_of(&self, i: usize, args: &mut Vec<String>) -> PathEffect {
        let Some(s) = self.facts.statements().get(i) else {
            return PathEffect::None;
        };
        match s.path_effect {
            PathEffect::Set { .. } => fill(
                args,
                self.facts
                    .search_path(s)
                    .iter()
                    .map(|n| self.facts.name(*n)),
            ),
            PathEffect::Savepoint | PathEffect::Release | PathEffect::RollbackTo => {
                fill(args, std::iter::once(self.facts.name(s.prepared_name)))
            }
            _ => args.clear(),
        }
        s.path_effect
    }

    /// Statement `i` of a simple Query about to be forwarded; true if it changes the path.
    pub(super) fn record_query_path(&mut self, i: usize) -> bool {
        let mut step = self.ready.path_pool.pop().unwrap_or_default();
        step.effect = self.path_effect_of(i, &mut step.args);
        self.push_step(step)
    }

    /// An Execute of portal `portal`, whose statement has path effect `effect`.
    pub(super) fn record_execute_path(&mut self, portal: &str, effect: PathEffect) -> bool {
        let mut step = self.ready.path_pool.pop().unwrap_or_default();
        step.effect = effect;
        let p = if portal.is_empty() {
            Some(&self.ready.unnamed_portal)
        } else {
            self.ready.portals.get(portal)
        };
        let stmt = p.and_then(|p| {
            let s = self.find_statement(&p.statement)?;
            (s.version == p.version).then_some(s)
        });
        match stmt {
            Some(s) => fill(&mut step.args, s.path_args.iter()),
            // The statement was parsed again since the Bind: what runs is not known.
            None => {
                step.effect = PathEffect::Unknown;
                step.args.clear();
            }
        }
        self.push_step(step)
    }

    fn push_step(&mut self, mut step: PathStep) -> bool {
        if step.effect == PathEffect::None {
            self.ready.path_pool.push(step);
            return false;
        }
        step.unit = self.ready.unit_seq;
        step.done = false;
        apply(&mut self.ready.path_optimistic, step.effect, &step.args);
        if changes_value(step.effect) {
            self.ready.path_changes_unit = true;
        }
        let r = &mut self.ready;
        if r.search_path != r.path_optimistic.current() {
            fill(&mut r.search_path, r.path_optimistic.current().iter());
        }
        self.ready.path_steps.push_back(step);
        true
    }

    /// A statement of `unit` with a path step completed: the server ran it.
    pub(super) fn path_step_done(&mut self, unit: u64) {
        if let Some(s) = self
            .ready
            .path_steps
            .iter_mut()
            .find(|s| s.unit == unit && !s.done)
        {
            s.done = true;
        }
    }

    /// The unit being built was forwarded whole (Query, Sync): if it may change the path,
    /// later input waits for its ReadyForQuery.
    pub(super) fn path_unit_forwarded(&mut self) {
        if std::mem::take(&mut self.ready.path_changes_unit) {
            self.ready.path_wait_unit = Some(self.ready.unit_seq);
        }
    }

    /// ReadyForQuery with `status` answered every unit before `done`; `errored`: the unit
    /// had an ErrorResponse.
    pub(super) fn path_unit_end(&mut self, done: u64, status: u8, errored: bool) {
        let mut replayed = false;
        while self.ready.path_steps.front().is_some_and(|s| s.unit < done) {
            let Some(s) = self.ready.path_steps.pop_front() else {
                break;
            };
            if s.done {
                apply(&mut self.ready.path_confirmed, s.effect, &s.args);
            }
            replayed = true;
            self.ready.path_pool.push(s);
        }
        self.ready.path_confirmed.unit_end(status, errored);
        if self.ready.path_steps.is_empty() {
            if replayed {
                let (c, o) = (&self.ready.path_confirmed, &mut self.ready.path_optimistic);
                o.copy_from(c);
            } else {
                self.ready.path_optimistic.unit_end(status, errored);
            }
            let r = &mut self.ready;
            if r.search_path != r.path_optimistic.current() {
                fill(&mut r.search_path, r.path_optimistic.current().iter());
            }
        }
        if self.ready.path_wait_unit.is_some_and(|u| u < done) {
            self.ready.path_wait_unit = None;
        }
    }

    /// Client input waits: a unit that may change the path is in flight (not while the
    /// server waits for COPY data, which would never come).
    pub(super) fn path_holds_client(&self) -> bool {
        self.ready.path_wait_unit.is_some() && !self.ready.copy_in
    }
}

impl Session {
    /// The path statement `i` of the current facts runs under, if an earlier statement of
    /// the same string changes it (`None`: the session's path applies). Cold: only strings
    /// that change the path before an `EXECUTE` get here past the first check.
    pub(super) fn path_at(&self, i: usize) -> Option<Vec<String>> {
        let earlier = self.facts.statements().get(..i)?;
        if earlier.iter().all(|s| s.path_effect == PathEffect::None) {
            return None;
        }
        let mut t = self.ready.path_optimistic.clone();
        let mut args = Vec::new();
        for j in 0..i {
            let effect = self.path_effect_of(j, &mut args);
            apply(&mut t, effect, &args);
        }
        Some(t.current().to_vec())
    }
}
