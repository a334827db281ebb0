//! The reconcile pipeline of one MovieApp, one module per step, each step's
//! output the next one's input:
//!
//! ```text
//! dereference → validate → provision → build → apply → status
//! ```
//!
//! - [`dereference`] reads the object, the cluster (Secrets) and the
//!   per-object [`memory`]; it writes nothing.
//! - [`validate`] is pure. Nothing is written before it passed: a MovieApp it
//!   rejects gets its status and nothing else (no finalizer, nothing in AWS).
//! - [`provision`] resolves the image and creates or repairs the AWS
//!   resources ([`crate::provision`]), and the generated auth Secret.
//! - [`build`] is pure: the children ([`children`]).
//! - [`apply`] server-side applies the children that differ.
//! - [`status`] writes the status and Events, remembers a complete AWS pass
//!   and says when to look again.
//!
//! Deletion runs [`cleanup`] under the `movieapp.io/cleanup` finalizer,
//! managed by [`kube::runtime::finalizer`].
//!
//! [`pause`] comes first: a paused MovieApp (`movieapp.io/paused: "true"`)
//! gets its status and nothing else, and the writing steps ([`provision`],
//! and so [`apply`], and [`cleanup`]) take the token only its check hands out.
//! Then [`observe`]: with `managementPolicy: ObserveOnly` the same steps
//! read, compare and report the differences (condition `Drifted`), and
//! write nothing but the status and Events.

pub mod apply;
pub mod build;
pub mod children;
pub mod cleanup;
mod context;
pub mod dereference;
pub mod memory;
pub mod observe;
#[cfg(test)]
mod offline;
pub mod pause;
pub mod provision;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, warn};

pub use context::Context;
use memory::{Reread, Wake};

use crate::crd::MovieApp;
use crate::reason::Reason;

/// The finalizer that guards AWS cleanup.
pub const FINALIZER: &str = "movieapp.io/cleanup";
/// Annotation asking the operator to adopt untagged AWS resources with its names.
pub const ADOPT_ANNOTATION: &str = "movieapp.io/adopt";

/// Errors that end a reconcile early; the controller retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    #[error(transparent)]
    Provision(#[from] provision::Error),
    #[error(transparent)]
    Build(#[from] build::Error),
    /// Reported in the status before the reconcile fails.
    #[error(transparent)]
    Apply(#[from] apply::ChildError),
    #[error(transparent)]
    Status(#[from] status::Error),
    #[error(transparent)]
    Cleanup(#[from] cleanup::Error),
    #[error("updating the finalizer failed: {0}")]
    Finalizer(#[source] kube::Error),
}

impl Error {
    /// A bounded label for metrics and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Dereference(error) => error.category(),
            Error::Provision(error) => error.category(),
            Error::Build(error) => error.category(),
            Error::Apply(error) => apply::category(error.code()),
            Error::Status(error) => error.category(),
            Error::Cleanup(error) => error.category(),
            Error::Finalizer(error) => kube_category(error),
        }
    }
}

/// The category of a failed Kubernetes API request.
pub fn kube_category(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) => apply::category(Some(status.code)),
        _ => apply::category(None),
    }
}

/// The `namespace/name` of a MovieApp (logs).
pub fn object_key(app: &MovieApp) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

/// Reconciles one MovieApp. Always answers "await change": when to look
/// again goes into the per-object memory, served by [`crate::schedule`].
pub async fn reconcile(
    guard: Arc<DeserializeGuard<MovieApp>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let _busy = ctx.workers.enter();
    let uid = guard.uid().unwrap_or_default();
    ctx.memory.name(&uid, ObjectRef::from_obj(&*guard));
    let reread = ctx.memory.begin(&uid);
    if let Some(Reread::Change { at }) = reread {
        ctx.shared
            .metrics
            .aws_event_reconciled(at.elapsed().unwrap_or_default());
    }
    let app = match &guard.0 {
        Ok(app) => app,
        Err(invalid) => {
            report_invalid(&guard, invalid, &ctx).await;
            ctx.shared
                .metrics
                .reconcile_failed("invalid_object", started.elapsed());
            // Nothing to do until the object changes.
            return Ok(Action::await_change());
        }
    };
    let key = object_key(app);
    debug!(movieapp = %key, ?reread, "reconciling");
    let (result, aws_requests) = crate::aws::counting(lifecycle(app, &ctx, reread)).await;
    match &result {
        Ok(action) => {
            ctx.memory.update(&uid, |r| r.failures = 0);
            ctx.shared.metrics.reconciled(started.elapsed());
            if reread == Some(Reread::Resync) && aws_requests > 0 {
                ctx.shared.resyncs.observe(aws_requests);
            }
            debug!(movieapp = %key, ?action, aws_requests, elapsed = ?started.elapsed(), "reconciled");
        }
        Err(error) => {
            // AWS may not have been read: the next attempt reads it instead.
            if let Some(reread) = reread {
                ctx.memory.reread(&uid, reread);
            }
            ctx.shared
                .metrics
                .reconcile_failed(error.category(), started.elapsed());
        }
    }
    ctx.forget_if_gone(&app.namespace().unwrap_or_default(), &app.name_any(), &uid);
    result
}

/// Apply or clean up, under the finalizer.
async fn lifecycle(app: &MovieApp, ctx: &Context, reread: Option<Reread>) -> Result<Action, Error> {
    // Before the finalizer: a paused MovieApp's deletion waits too.
    let writable = match pause::check(app) {
        Ok(writable) => writable,
        Err(paused) => return pause::hold(app, &paused, ctx).await,
    };
    let access = observe::access(app, &writable);
    let deleting = app.meta().deletion_timestamp.is_some();
    let finalized = app.finalizers().iter().any(|f| f == FINALIZER);
    // A MovieApp that never passed validation has nothing in AWS: it gets
    // no finalizer until it does, only its status. Neither does an
    // ObserveOnly one: its deletion has nothing to do in AWS.
    if !deleting
        && !finalized
        && (matches!(access, observe::Access::Observe)
            || validate::spec(app, &ctx.shared.config.default_region).is_err())
    {
        return run(app, ctx, reread, access).await;
    }
    let api: Api<MovieApp> = Api::namespaced(
        ctx.shared.client.clone(),
        &app.namespace().unwrap_or_default(),
    );
    let result = finalizer::finalizer(&api, FINALIZER, Arc::new(app.clone()), |event| async {
        match event {
            Finalizer::Apply(app) => run(&app, ctx, reread, access).await,
            // The finalizer of a MovieApp switched from Full to ObserveOnly:
            // its deletion leaves AWS as it is.
            Finalizer::Cleanup(app) => match access {
                observe::Access::Manage(writable) => cleanup::cleanup(&app, ctx, writable).await,
                observe::Access::Observe => cleanup::release(&app, ctx).await,
            },
        }
    })
    .await;
    match result {
        Ok(action) => Ok(action),
        Err(finalizer::Error::ApplyFailed(error)) => Err(error),
        // The finalizer goes only once Cleanup succeeds, so AWS deleting
        // asynchronously is an error to the helper; to us it is progress.
        Err(finalizer::Error::CleanupFailed(Error::Cleanup(cleanup::Error::Pending))) => {
            ctx.memory.schedule(
                &app.uid().unwrap_or_default(),
                std::time::Instant::now() + cleanup::CLEANUP_INTERVAL,
                Wake::Retry,
            );
            Ok(Action::await_change())
        }
        // Waits for the spec change that lifts the protection.
        Err(finalizer::Error::CleanupFailed(Error::Cleanup(cleanup::Error::Protected))) => {
            Ok(Action::await_change())
        }
        Err(finalizer::Error::CleanupFailed(error)) => Err(error),
        Err(finalizer::Error::AddFinalizer(error) | finalizer::Error::RemoveFinalizer(error)) => {
            Err(Error::Finalizer(error))
        }
        Err(finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer) => {
            Err(dereference::Error::Malformed("name").into())
        }
    }
}

/// The pipeline, for a MovieApp that is not being deleted; `reread` says
/// why AWS must be read even if a recent pass could be reused.
pub async fn run(
    app: &MovieApp,
    ctx: &Context,
    reread: Option<Reread>,
    access: observe::Access<'_>,
) -> Result<Action, Error> {
    let dereferenced = dereference::dereference(app, ctx, reread).await?;
    let validated = match validate::validate(dereferenced) {
        Ok(validated) => validated,
        Err(invalid) => return status::report(ctx, status::Report::invalid(invalid, ctx)).await,
    };
    let provisioned = provision::provision(validated, access, ctx).await?;
    let built = build::build(provisioned, &ctx.shared.config)?;
    let applied = apply::apply(built, ctx).await;
    status::report(ctx, applied.into()).await
}

/// Retries a failed reconcile with jittered exponential backoff: 2 s, 4 s,
/// ... up to 5 minutes, so failures never turn into a hot loop.
pub fn error_policy(
    guard: Arc<DeserializeGuard<MovieApp>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let namespace = guard.namespace().unwrap_or_default();
    let name = guard.name_any();
    let uid = guard.uid().unwrap_or_default();
    let failures = ctx.memory.update(&uid, |r| {
        r.failures = r.failures.saturating_add(1);
        r.failures
    });
    let delay = backoff(failures);
    ctx.memory
        .schedule(&uid, std::time::Instant::now() + delay, Wake::Retry);
    ctx.forget_if_gone(&namespace, &name, &uid);
    warn!(movieapp = %format!("{namespace}/{name}"), %error, failures, retry_in = ?delay, "reconcile failed");
    Action::await_change()
}

/// An object that does not match the MovieApp types (written under an older
/// or looser CRD): logged and reported as a Warning Event on the object; the
/// other objects are not affected.
async fn report_invalid(
    guard: &DeserializeGuard<MovieApp>,
    invalid: &InvalidObject,
    ctx: &Context,
) {
    let key = format!(
        "{}/{}",
        guard.namespace().unwrap_or_default(),
        guard.name_any()
    );
    warn!(movieapp = %key, error = %invalid.error, "the object does not match the MovieApp schema");
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: Reason::InvalidObject.as_str().to_owned(),
        note: Some(format!(
            "the object does not match the MovieApp schema: {}",
            invalid.error
        )),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx
        .shared
        .recorder
        .publish(&event, &guard.object_ref(&()))
        .await
    {
        warn!(movieapp = %key, %error, "could not publish an Event");
    }
}

/// The delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(8);
    let base = Duration::from_secs(2u64 << exponent).min(Duration::from_secs(300));
    // ±20 % jitter spreads retries of many objects failing together.
    let jitter = 0.8 + fastrand::f64() * 0.4;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs = |n| backoff(n).as_secs_f64();
        assert!((1.6..=2.4).contains(&secs(1)));
        assert!((3.2..=4.8).contains(&secs(2)));
        assert!(secs(20) <= 360.0 && secs(20) >= 240.0);
    }
}
