//! Lease-based leader election, so that several replicas can run and only
//! one reconciles, and so that a leader which cannot renew its Lease stops
//! acting before any other replica may take over.
//!
//! Every decision is made by [`decide`], a pure function of what the Lease
//! says, what this replica saw of it before, its role and the time;
//! [`Elector`] only reads and writes the Lease around it.
//!
//! Expiry of another replica's Lease is judged by the local monotonic clock
//! from the moment this replica first saw the Lease in its current state (as
//! client-go does), never by comparing the holder's timestamps with ours: the
//! clocks of two nodes need not agree, only run at about the same rate.
//!
//! Why not a crate: kube-runtime 5 has no leader election, and
//! kube-lease-manager 0.13 (the maintained one that supports kube 5) judges
//! expiry as `renewTime + leaseDuration` against the local wall clock, which
//! assumes synchronised clocks (its `grace` is the skew it tolerates),
//! renews by a patch that is not a compare-and-swap, and exposes no
//! monotonic deadline for the fence ([`crate::fence`]) to be built on.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{debug, info};

/// Name of the Lease.
pub const LEASE_NAME: &str = "movieapp-operator-leader";

/// Timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long other replicas wait, from the moment they see the Lease
    /// unchanged, before they may take it over.
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal a leader may
    /// still act. Shorter than `lease_duration`: the difference covers a
    /// request that passed the fence just before the deadline and the clocks
    /// of two nodes running at slightly different rates.
    pub renew_deadline: Duration,
    /// How often the leader renews, and standbys look at the Lease.
    pub retry_period: Duration,
}

impl Default for Timing {
    /// client-go's defaults (kube-controller-manager, kube-scheduler):
    /// - a leader gets about four renewal attempts (every 2 s) before it
    ///   must stop at 10 s, so one slow or failed request costs nothing;
    /// - the 5 s between the renew deadline and the Lease duration exceed
    ///   the 3 s connect time-out of the operator's clients plus the time a
    ///   request sent just before the deadline needs to reach its server;
    /// - a killed leader is replaced within 15 s + 2 s; one that stops
    ///   gracefully releases the Lease and is replaced within 2 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// Checks `retry_period < renew_deadline < lease_duration`.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be positive and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the Lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        Ok(())
    }
}

/// The parts of a Lease the election reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `None` when nobody holds it (an empty name counts as nobody).
    pub holder: Option<String>,
    pub renew_time: Option<MicroTime>,
    /// The duration the holder declared.
    pub lease_duration: Option<Duration>,
}

impl Record {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            lease_duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
        }
    }
}

/// A [`Record`] and when this replica first saw it, by its monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub record: Record,
    pub seen_at: Instant,
}

/// What this replica is when it looks at the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Standby,
    /// Leading, and allowed to act until `valid_until`.
    Leading {
        valid_until: Instant,
    },
}

/// What to do after reading the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it naming this replica.
    Create,
    /// This replica leads: write a new renew time.
    Renew,
    /// The Lease is free, expired, or still names this replica from an
    /// earlier term: write this replica into it (a compare-and-swap, so of
    /// several replicas deciding this at once only one succeeds).
    Acquire { previous: Option<String> },
    /// Another replica holds the Lease and it has not expired.
    Wait {
        holder: String,
        expires_in: Duration,
    },
    /// Stop leading now, without writing the Lease.
    StepDown(StepDown),
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepDown {
    #[error("the Lease was not renewed before the renew deadline")]
    DeadlineMissed,
    #[error("the Lease is held by {0}")]
    TakenBy(String),
    #[error("the Lease names no holder")]
    Released,
    #[error("the Lease was deleted")]
    Deleted,
    #[error("the Lease changed between reading and renewing it")]
    Conflict,
}

/// Decides what `identity`, in `role`, does about the Lease it just read
/// (`lease`; `None`: there is none) at `now`, knowing what it saw before
/// (`last`). Returns the decision and the observation to remember.
///
/// `now` must be taken after the Lease was read: the holder's last write
/// happened before, so waiting `lease_duration` from `now` waits at least
/// that long after the write.
pub fn decide(
    identity: &str,
    role: Role,
    lease: Option<&Record>,
    last: Option<&Observation>,
    now: Instant,
    timing: &Timing,
) -> (Decision, Option<Observation>) {
    let observation = lease.map(|record| match last {
        Some(seen) if seen.record == *record => seen.clone(),
        _ => Observation {
            record: record.clone(),
            seen_at: now,
        },
    });
    let decision = match (role, lease) {
        // Checked first: past its deadline a leader may not even renew, as
        // another replica may already lead. It can only acquire again, as a
        // standby, if the Lease still names it.
        (Role::Leading { valid_until }, _) if now >= valid_until => {
            Decision::StepDown(StepDown::DeadlineMissed)
        }
        (Role::Leading { .. }, None) => Decision::StepDown(StepDown::Deleted),
        (Role::Leading { .. }, Some(record)) => match record.holder.as_deref() {
            Some(holder) if holder == identity => Decision::Renew,
            Some(holder) => Decision::StepDown(StepDown::TakenBy(holder.to_owned())),
            None => Decision::StepDown(StepDown::Released),
        },
        (Role::Standby, None) => Decision::Create,
        (Role::Standby, Some(record)) => match record.holder.as_deref() {
            None => Decision::Acquire { previous: None },
            Some(holder) if holder == identity => Decision::Acquire {
                previous: Some(holder.to_owned()),
            },
            Some(holder) => {
                // The longer of the holder's duration and ours: waiting
                // longer is always safe, shorter never is.
                let duration = record
                    .lease_duration
                    .map_or(timing.lease_duration, |d| d.max(timing.lease_duration));
                let seen_at = observation.as_ref().map_or(now, |o| o.seen_at);
                let expires_at = seen_at + duration;
                if now >= expires_at {
                    Decision::Acquire {
                        previous: Some(holder.to_owned()),
                    }
                } else {
                    Decision::Wait {
                        holder: holder.to_owned(),
                        expires_in: expires_at - now,
                    }
                }
            }
        },
    };
    (decision, observation)
}

/// What one look at the Lease ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// This replica leads and may act until `valid_until`.
    Leading { valid_until: Instant },
    /// Another replica leads (or won a race for the Lease); its Lease
    /// expires in `expires_in` unless renewed.
    Standby {
        holder: Option<String>,
        expires_in: Option<Duration>,
    },
    /// This replica led and must stop.
    SteppedDown(StepDown),
}

/// One candidate in the election: reads and writes the Lease as
/// [`decide`] says.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    timing: Timing,
    last: Option<Observation>,
}

impl Elector {
    /// `client` must not be fenced: the election is what opens the fence.
    pub fn new(client: Client, namespace: &str, identity: String, timing: Timing) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity,
            timing,
            last: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Reads the Lease once and acts on it. A successful write makes this
    /// replica leader until `renew_deadline` after the moment this round
    /// started, before the Lease was even read: others see the write later
    /// still, so they wait at least `lease_duration - renew_deadline` past
    /// this replica's deadline.
    pub async fn round(&mut self, role: Role) -> Result<Round, kube::Error> {
        let started = Instant::now();
        let lease = self.api.get_opt(LEASE_NAME).await?;
        let record = lease.as_ref().map(Record::of);
        let (decision, observation) = decide(
            &self.identity,
            role,
            record.as_ref(),
            self.last.as_ref(),
            Instant::now(),
            &self.timing,
        );
        self.last = observation;
        let leading = Round::Leading {
            valid_until: started + self.timing.renew_deadline,
        };
        match (decision, lease) {
            (Decision::Create, _) => match self
                .api
                .create(&PostParams::default(), &self.new_lease())
                .await
            {
                Ok(_) => {
                    info!(identity = %self.identity, "created the leader Lease");
                    Ok(leading)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Round::Standby {
                    holder: None,
                    expires_in: None,
                }),
                Err(error) => Err(error),
            },
            (Decision::Renew, Some(lease)) => match self.write(lease, false).await? {
                true => Ok(leading),
                false => Ok(Round::SteppedDown(StepDown::Conflict)),
            },
            (Decision::Acquire { previous }, Some(lease)) => {
                let transition = previous.as_deref() != Some(self.identity.as_str());
                match self.write(lease, transition).await? {
                    true => {
                        info!(identity = %self.identity, previous = previous.as_deref().unwrap_or(""), "acquired the leader Lease");
                        Ok(leading)
                    }
                    false => Ok(Round::Standby {
                        holder: None,
                        expires_in: None,
                    }),
                }
            }
            (Decision::Wait { holder, expires_in }, _) => {
                debug!(%holder, ?expires_in, "another replica leads");
                Ok(Round::Standby {
                    holder: Some(holder),
                    expires_in: Some(expires_in),
                })
            }
            (Decision::StepDown(why), _) => Ok(Round::SteppedDown(why)),
            // `decide` renews or acquires only a Lease that exists.
            (Decision::Renew | Decision::Acquire { .. }, None) => Ok(Round::Standby {
                holder: None,
                expires_in: None,
            }),
        }
    }

    /// Writes this replica into `lease` as read: a compare-and-swap on its
    /// resourceVersion. `Ok(false)` when someone wrote it in between.
    async fn write(&self, mut lease: Lease, transition: bool) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let spec = lease.spec.take().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: if transition {
                Some(now.clone())
            } else {
                spec.acquire_time.clone()
            },
            renew_time: Some(now),
            lease_transitions: Some(if transition {
                transitions.saturating_add(1)
            } else {
                transitions
            }),
            ..spec
        });
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn new_lease(&self) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Gives the Lease up, so a standby takes over at once. Only after this
    /// replica stopped acting: a standby acquires a released Lease at once.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                info!(identity = %self.identity, "released the leader Lease");
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// This replica's identity: the Pod name when set, else the host name, plus
/// a random suffix so that two processes never share one.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "movieapp-operator".to_owned());
    format!("{base}-{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "me";
    const OTHER: &str = "other";

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn at(epoch_seconds: i64) -> MicroTime {
        MicroTime(Timestamp::from_second(epoch_seconds).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn held_by(holder: &str, renewed: i64) -> Record {
        Record {
            holder: Some(holder.to_owned()),
            renew_time: Some(at(renewed)),
            lease_duration: Some(secs(15)),
        }
    }

    fn seen(record: &Record, at: Instant) -> Observation {
        Observation {
            record: record.clone(),
            seen_at: at,
        }
    }

    /// (name, role, the Lease read, what was seen before, now, expected).
    type Case = (
        &'static str,
        Role,
        Option<Record>,
        Option<Observation>,
        Instant,
        Decision,
    );

    /// The decision of `role` at `now` about `lease`, having seen `last`.
    fn decision(
        role: Role,
        lease: Option<&Record>,
        last: Option<&Observation>,
        now: Instant,
    ) -> Decision {
        decide(ME, role, lease, last, now, &Timing::default()).0
    }

    #[test]
    fn the_timing_leaves_a_margin_between_the_deadline_and_the_lease() {
        let timing = Timing::default();
        assert_eq!(timing.check(), Ok(()));
        assert!(timing.lease_duration - timing.renew_deadline >= secs(5));
        assert!(timing.renew_deadline >= timing.retry_period * 4);
        let deadline_too_long = Timing {
            renew_deadline: secs(15),
            ..timing
        };
        assert!(deadline_too_long.check().is_err());
        let retry_too_long = Timing {
            retry_period: secs(10),
            ..timing
        };
        assert!(retry_too_long.check().is_err());
        let no_retry = Timing {
            retry_period: Duration::ZERO,
            ..timing
        };
        assert!(no_retry.check().is_err());
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let valid = Role::Leading {
            valid_until: t0 + secs(10),
        };
        let ours = held_by(ME, 1_000);
        let theirs = held_by(OTHER, 1_000);
        let free = Record {
            holder: None,
            ..ours.clone()
        };
        let wait = |expires_in| Decision::Wait {
            holder: OTHER.to_owned(),
            expires_in,
        };
        let take_from = |previous: &str| Decision::Acquire {
            previous: Some(previous.to_owned()),
        };
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("no Lease: a standby creates it",
                Role::Standby, None, None, t0, Decision::Create),
            ("no Lease while leading: someone deleted it, stop",
                valid, None, None, t0, Decision::StepDown(StepDown::Deleted)),
            ("ours, within the deadline: renew",
                valid, Some(ours.clone()), None, t0 + secs(9), Decision::Renew),
            ("ours, deadline missed: stop without writing",
                valid, Some(ours.clone()), None, t0 + secs(10), Decision::StepDown(StepDown::DeadlineMissed)),
            ("deadline missed and taken: the deadline is what counts",
                valid, Some(theirs.clone()), None, t0 + secs(30), Decision::StepDown(StepDown::DeadlineMissed)),
            ("another holder while leading: stop",
                valid, Some(theirs.clone()), None, t0, Decision::StepDown(StepDown::TakenBy(OTHER.to_owned()))),
            ("no holder while leading: stop",
                valid, Some(free.clone()), None, t0, Decision::StepDown(StepDown::Released)),
            ("no holder: a standby acquires at once",
                Role::Standby, Some(free.clone()), Some(seen(&theirs, t0)), t0, Decision::Acquire { previous: None }),
            ("ours from an earlier term: a standby acquires again (compare-and-swap)",
                Role::Standby, Some(ours.clone()), Some(seen(&ours, t0)), t0, take_from(ME)),
            ("others', first seen now: wait a whole duration, however old its renew time",
                Role::Standby, Some(theirs.clone()), None, t0, wait(secs(15))),
            ("others', unchanged for 14 s: wait",
                Role::Standby, Some(theirs.clone()), Some(seen(&theirs, t0)), t0 + secs(14), wait(secs(1))),
            ("others', unchanged for 15 s: expired, take it over",
                Role::Standby, Some(theirs.clone()), Some(seen(&theirs, t0)), t0 + secs(15), take_from(OTHER)),
            ("others', renewed since last seen: the wait starts again",
                Role::Standby, Some(held_by(OTHER, 1_002)), Some(seen(&theirs, t0)), t0 + secs(60), wait(secs(15))),
            ("others', renew time in the future (clock skew) but unchanged for 15 s: expired",
                Role::Standby, Some(held_by(OTHER, 9_999_999)), Some(seen(&held_by(OTHER, 9_999_999), t0)), t0 + secs(15), take_from(OTHER)),
            ("others', a new holder with the same renew time: the wait starts again",
                Role::Standby, Some(held_by("third", 1_000)), Some(seen(&theirs, t0)), t0 + secs(60),
                Decision::Wait { holder: "third".to_owned(), expires_in: secs(15) }),
        ];
        for (name, role, lease, last, now, expected) in cases {
            assert_eq!(
                decision(role, lease.as_ref(), last.as_ref(), now),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn the_longer_of_the_declared_and_our_duration_is_waited() {
        let t0 = Instant::now();
        let long = Record {
            lease_duration: Some(secs(60)),
            ..held_by(OTHER, 1_000)
        };
        let last = seen(&long, t0);
        assert!(matches!(
            decision(Role::Standby, Some(&long), Some(&last), t0 + secs(59)),
            Decision::Wait { .. }
        ));
        assert!(matches!(
            decision(Role::Standby, Some(&long), Some(&last), t0 + secs(60)),
            Decision::Acquire { .. }
        ));
        for declared in [Some(secs(1)), Some(Duration::ZERO), None] {
            let short = Record {
                lease_duration: declared,
                ..held_by(OTHER, 1_000)
            };
            let last = seen(&short, t0);
            assert!(
                matches!(
                    decision(Role::Standby, Some(&short), Some(&last), t0 + secs(14)),
                    Decision::Wait { .. }
                ),
                "{declared:?}"
            );
        }
    }

    #[test]
    fn an_observation_is_kept_while_the_lease_is_unchanged() {
        let t0 = Instant::now();
        let theirs = held_by(OTHER, 1_000);
        let timing = Timing::default();
        let (_, first) = decide(ME, Role::Standby, Some(&theirs), None, t0, &timing);
        assert_eq!(first, Some(seen(&theirs, t0)));
        let (_, again) = decide(
            ME,
            Role::Standby,
            Some(&theirs),
            first.as_ref(),
            t0 + secs(5),
            &timing,
        );
        assert_eq!(again, first, "unchanged: still seen at t0");
        let renewed = held_by(OTHER, 1_002);
        let (_, changed) = decide(
            ME,
            Role::Standby,
            Some(&renewed),
            again.as_ref(),
            t0 + secs(7),
            &timing,
        );
        assert_eq!(changed, Some(seen(&renewed, t0 + secs(7))));
        let (_, gone) = decide(ME, Role::Standby, None, changed.as_ref(), t0, &timing);
        assert_eq!(gone, None);
    }

    #[test]
    fn records_read_an_empty_holder_as_none_and_ignore_negative_durations() {
        let lease = |holder: &str, seconds: i32| Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(Record::of(&lease("", 15)).holder, None);
        assert_eq!(Record::of(&lease("a", 15)).holder.as_deref(), Some("a"));
        assert_eq!(Record::of(&lease("a", -3)).lease_duration, None);
        assert_eq!(Record::of(&Lease::default()), Record::default());
    }
}
