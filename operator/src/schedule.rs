//! When timed reconciles run: retries and resyncs, served in the order they
//! fell due, by this module rather than by kube-runtime's scheduler.
//!
//! kube-runtime keeps requests that wait for a free worker in a hash set and
//! takes them in hash order. When more is asked than the workers can do —
//! 100 MovieApps resynced every 10 s at an AWS budget of 50 requests/s ask
//! four times what that budget carries — the same objects win again and
//! again: 58 of 100 new MovieApps were never reconciled in 7 minutes. So a
//! reconcile only ever asks kube-runtime for changes (watches, AWS change
//! events), which run first; its timers go into the per-object memory, and
//! [`serve`] hands the due ones over one at a time, when a worker is free:
//!
//! - a retry (a resource being created, a blocked part, a failed reconcile)
//!   as soon as a worker is free;
//! - a resync also only when no change waits for its first reconcile, and
//!   at most at the pace [`ResyncBudget`] allows: resyncs use at most
//!   [`RESYNC_SHARE`] of `--aws-max-rps`. When that cannot carry every
//!   MovieApp once per `--resync-interval`, the interval is stretched to
//!   what it can carry (oldest first, so every object gets its turn), and
//!   the operator says so: `movieapp_resync_effective_interval_seconds`
//!   and a warning in the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::reconcile::memory::{AppRef, Memory, Wake};

/// The share of the AWS request budget resyncs may use; the rest stays
/// for new MovieApps, spec changes and repairs.
pub const RESYNC_SHARE: f64 = 0.8;
/// AWS requests a steady resync of one MovieApp costs until measured.
const INITIAL_RESYNC_COST: f64 = 20.0;
/// A change the watch reported holds resyncs back at most this long (in
/// case its reconcile never comes, e.g. the object went meanwhile).
const CHANGE_PRECEDENCE: Duration = Duration::from_secs(300);
/// The longest the loop sleeps without looking at the timers again.
const TICK: Duration = Duration::from_millis(250);

/// The pace of resyncs across the whole process, from the AWS budget and
/// the measured cost of a resync.
#[derive(Debug)]
pub struct ResyncBudget {
    interval: Duration,
    max_rps: f64,
    metrics: Metrics,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    /// Moving average of the AWS requests of one resync.
    cost: f64,
    /// When the next resync may start.
    next: Instant,
    /// Resyncs scheduled, per controller.
    objects: HashMap<usize, usize>,
    /// Whether the last report said the interval was stretched.
    stretched: bool,
}

impl ResyncBudget {
    pub fn new(interval: Duration, max_rps: u32, metrics: Metrics) -> Self {
        metrics.set_resync_interval(interval, interval);
        Self {
            interval,
            max_rps: f64::from(max_rps.max(1)),
            metrics,
            state: Mutex::new(BudgetState {
                cost: INITIAL_RESYNC_COST,
                next: Instant::now(),
                objects: HashMap::new(),
                stretched: false,
            }),
        }
    }

    /// The configured resync interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Time between two resync starts that keeps resyncs within their share.
    fn spacing(&self, cost: f64) -> Duration {
        Duration::from_secs_f64(cost / (RESYNC_SHARE * self.max_rps))
    }

    /// Takes the budget for one resync now, or says when it will be there.
    pub fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        let mut state = self.lock();
        if state.next > now {
            return Err(state.next);
        }
        state.next = now + self.spacing(state.cost);
        Ok(())
    }

    /// What a resync that read AWS cost, in requests.
    pub fn observe(&self, requests: u32) {
        let mut state = self.lock();
        state.cost = 0.8 * state.cost + 0.2 * f64::from(requests.max(1));
        self.metrics.resync_done(requests);
    }

    /// The interval resyncs actually keep, given `scheduled` objects
    /// waiting for one in controller `scope`; reported as a metric, and in
    /// the log whenever it starts or stops being longer than configured.
    pub fn report(&self, scope: usize, scheduled: usize) -> Duration {
        let mut state = self.lock();
        state.objects.insert(scope, scheduled);
        let objects: usize = state.objects.values().sum();
        let carried = self.spacing(state.cost).mul_f64(objects as f64);
        let effective = carried.max(self.interval);
        self.metrics.set_resync_interval(self.interval, effective);
        // 10 % of slack, so that a fleet right at the limit does not flap.
        let stretched = carried > self.interval.mul_f64(1.1);
        if stretched != state.stretched {
            state.stretched = stretched;
            if stretched {
                warn!(
                    configured = ?self.interval,
                    effective = ?Duration::from_secs(effective.as_secs()),
                    objects,
                    requests_per_resync = state.cost.round(),
                    aws_max_rps = self.max_rps,
                    "the AWS budget cannot resync every MovieApp once per --resync-interval: \
                     resyncing each at the effective interval instead (raise --aws-max-rps or \
                     lengthen --resync-interval); new MovieApps and changes still go first"
                );
            } else {
                info!(configured = ?self.interval, objects, "resyncs keep --resync-interval again");
            }
        }
        effective
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The workers of one controller: how many reconciles run.
#[derive(Debug)]
pub struct Workers {
    busy: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl Workers {
    pub fn new(limit: u16) -> Self {
        Self {
            busy: AtomicUsize::new(0),
            limit: usize::from(limit.max(1)),
            freed: Notify::new(),
        }
    }

    /// A reconcile runs until the guard drops.
    pub fn enter(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy {
            workers: self.clone(),
        }
    }

    /// Whether a worker is free.
    pub fn free(&self) -> bool {
        self.busy.load(Ordering::SeqCst) < self.limit
    }
}

/// One running reconcile (see [`Workers::enter`]).
#[derive(Debug)]
pub struct Busy {
    workers: Arc<Workers>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.workers.busy.fetch_sub(1, Ordering::SeqCst);
        self.workers.freed.notify_one();
    }
}

/// Hands the due timers of one controller's `memory` to `trigger` (the
/// controller's `reconcile_on` stream), as described in the module
/// documentation, until `trigger` closes.
pub async fn serve(
    memory: Arc<Memory>,
    workers: Arc<Workers>,
    budget: Arc<ResyncBudget>,
    scope: usize,
    trigger: mpsc::Sender<AppRef>,
    metrics: Metrics,
) {
    loop {
        let now = Instant::now();
        let mut wake_at = now + TICK;
        if workers.free() {
            if let Some(due) = memory.take_due(Wake::Retry, now.into_std()) {
                if trigger.send(due.object).await.is_err() {
                    return;
                }
                continue;
            }
            if let Some(at) = memory.next_due(Wake::Resync) {
                let at = Instant::from_std(at);
                if at > now {
                    wake_at = wake_at.min(at);
                } else if memory.changes_waiting(CHANGE_PRECEDENCE) == 0 {
                    match budget.try_acquire(now) {
                        Ok(()) => {
                            if let Some(due) = memory.take_due(Wake::Resync, now.into_std()) {
                                metrics.resync_started(
                                    now.into_std().saturating_duration_since(due.at),
                                );
                                if trigger.send(due.object).await.is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                        Err(next) => wake_at = wake_at.min(next),
                    }
                }
            }
            if let Some(at) = memory.next_due(Wake::Retry) {
                wake_at = wake_at.min(Instant::from_std(at));
            }
        }
        budget.report(scope, memory.resyncs_scheduled());
        if trigger.is_closed() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = workers.freed.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resyncs_keep_to_their_share_of_the_budget() {
        let budget = ResyncBudget::new(Duration::from_secs(10), 50, Metrics::new());
        let start = Instant::now();
        assert_eq!(budget.try_acquire(start), Ok(()));
        // 20 requests at 80 % of 50/s: one resync every 0.5 s.
        assert_eq!(
            budget.try_acquire(start),
            Err(start + Duration::from_millis(500))
        );
        assert_eq!(
            budget.try_acquire(start + Duration::from_millis(500)),
            Ok(())
        );
    }

    #[test]
    fn the_interval_is_stretched_to_what_the_budget_carries() {
        let metrics = Metrics::new();
        let budget = ResyncBudget::new(Duration::from_secs(10), 50, metrics.clone());
        // 10 objects at 0.5 s each fit in 10 s.
        assert_eq!(budget.report(0, 10), Duration::from_secs(10));
        // 100 of them need 50 s, counted over every controller.
        assert_eq!(budget.report(0, 60), Duration::from_secs(30));
        assert_eq!(budget.report(1, 40), Duration::from_secs(50));
        let text = metrics.render().expect("render");
        assert!(
            text.contains("movieapp_resync_effective_interval_seconds 50"),
            "{text}"
        );
        // A cheaper resync (measured) carries more.
        for _ in 0..50 {
            budget.observe(5);
        }
        let effective = budget.report(1, 40);
        assert!(effective < Duration::from_secs(15), "{effective:?}");
    }
}
