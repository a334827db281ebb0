//! Pause: `movieapp.io/paused: "true"` holds every write to AWS and to the
//! children, deletion's clean-up included.
//!
//! [`check`] is the gate. The steps that write — [`super::provision`] (and
//! through its output [`super::apply`]) and [`super::cleanup`] — take the
//! [`Writable`] it hands out, and nothing else can make one, so the compiler
//! keeps every write behind the check. A paused MovieApp gets [`hold`]: its
//! status says `Paused=True` and keeps everything else as the last reconcile
//! left it (the spec change it has not acted on shows as an
//! `observedGeneration` behind `metadata.generation`).

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::status::{self, EventKind};
use super::{Context, object_key};
use crate::crd::MovieApp;
use crate::reason::Reason;

/// The annotation that pauses a MovieApp (value `"true"`).
pub const PAUSED_ANNOTATION: &str = "movieapp.io/paused";

/// Leave to write: the MovieApp is not paused. Only [`check`] makes one.
#[derive(Debug)]
pub struct Writable(());

/// A paused MovieApp, and what the pause holds back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    pub deleting: bool,
}

impl Paused {
    /// The `Paused` condition's message.
    pub fn message(&self) -> String {
        let held = if self.deleting {
            "the deletion waits: the AWS resources stay as they are and the finalizer stays"
        } else {
            "spec changes and repairs wait"
        };
        format!(
            "{PAUSED_ANNOTATION} is \"true\": nothing is written to AWS or to the children; \
             {held} until the annotation is removed"
        )
    }
}

/// Whether `value` of the annotation pauses. Only `"true"` does: a typo
/// must not silently stop the management of production resources, and
/// `"false"` reads as what it says.
pub fn pauses(value: Option<&str>) -> bool {
    value == Some("true")
}

/// The gate: [`Writable`] when the MovieApp is not paused.
pub fn check(app: &MovieApp) -> Result<Writable, Paused> {
    if pauses(app.annotations().get(PAUSED_ANNOTATION).map(String::as_str)) {
        Err(Paused {
            deleting: app.metadata.deletion_timestamp.is_some(),
        })
    } else {
        Ok(Writable(()))
    }
}

/// A paused MovieApp: the status says so, nothing else is written. The last
/// AWS pass is forgotten, so that resuming reads AWS again (it may have been
/// changed meanwhile). Nothing is scheduled: removing the annotation is a
/// change the watch delivers.
pub async fn hold(app: &MovieApp, paused: &Paused, ctx: &Context) -> Result<Action, super::Error> {
    let uid = app.uid().unwrap_or_default();
    ctx.memory.update(&uid, |r| r.verified = None);
    tracing::debug!(movieapp = %object_key(app), deleting = paused.deleting, "paused");
    if status::paused(ctx, app, &paused.message()).await? {
        status::event(
            ctx,
            app,
            EventKind::Normal,
            Reason::Paused,
            &paused.message(),
        )
        .await;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_pauses() {
        for (value, paused) in [
            (Some("true"), true),
            (Some("false"), false),
            (Some("True"), false),
            (Some("yes"), false),
            (Some(""), false),
            (None, false),
        ] {
            assert_eq!(pauses(value), paused, "{value:?}");
        }
    }

    #[test]
    fn the_gate_follows_the_annotation_and_tells_deletion_apart() {
        let mut app = MovieApp::new("shop", serde_json::from_str("{}").expect("empty spec"));
        assert!(check(&app).is_ok());
        app.annotations_mut()
            .insert(PAUSED_ANNOTATION.to_owned(), "true".to_owned());
        let paused = check(&app).expect_err("paused");
        assert!(!paused.deleting);
        assert!(paused.message().contains("spec changes and repairs wait"));
        app.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let paused = check(&app).expect_err("paused while deleting");
        assert!(paused.deleting);
        assert!(paused.message().contains("the deletion waits"));
        app.annotations_mut()
            .insert(PAUSED_ANNOTATION.to_owned(), "false".to_owned());
        assert!(check(&app).is_ok());
    }
}
