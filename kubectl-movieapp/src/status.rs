//! `kubectl movieapp status`: the reads put together, and the verdict.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Client, ResourceExt};
use movieapp_operator::crd::MovieApp;
use movieapp_operator::reconcile::pause;

use crate::collect::{self, AwsOptions};
use crate::report::{
    AwsReport, ChildReport, ConditionReport, Health, MovieAppSummary, SCHEMA_VERSION, StatusReport,
    Verdict,
};

/// Conditions that are healthy when `False`; every other one is healthy
/// when `True` (`Ready` and the parts).
const ABNORMAL_WHEN_TRUE: &[&str] = &["Reconciling", "Stalled", "Paused", "Drifted"];

/// Reads everything about `app` (the Kubernetes and AWS reads concurrently)
/// and judges it.
pub async fn status(client: &Client, app: &MovieApp, aws: &AwsOptions) -> StatusReport {
    let (kubernetes, aws, events) = tokio::join!(
        collect::kubernetes(client, app),
        collect::aws(app, aws),
        collect::events(client, app),
    );
    assemble(app, aws, kubernetes, events)
}

/// The report from what was read. Pure.
pub fn assemble(
    app: &MovieApp,
    aws: AwsReport,
    kubernetes: Vec<ChildReport>,
    events: Vec<crate::report::EventReport>,
) -> StatusReport {
    let status = app.status.clone().unwrap_or_default();
    let movie_app = MovieAppSummary {
        namespace: app.namespace().unwrap_or_default(),
        name: app.name_any(),
        uid: app.uid().unwrap_or_default(),
        generation: app.metadata.generation,
        observed_generation: status.observed_generation,
        paused: pause::check(app).is_err(),
        deleting: app.metadata.deletion_timestamp.is_some(),
    };
    let conditions: Vec<ConditionReport> = status.conditions.iter().map(condition).collect();
    let (verdict, reasons) = verdict(&movie_app, &status.conditions, &aws, &kubernetes);
    StatusReport {
        schema_version: SCHEMA_VERSION,
        movie_app,
        verdict,
        reasons,
        conditions,
        aws,
        kubernetes,
        events,
    }
}

fn condition(c: &Condition) -> ConditionReport {
    let healthy_status = if ABNORMAL_WHEN_TRUE.contains(&c.type_.as_str()) {
        "False"
    } else {
        "True"
    };
    ConditionReport {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.0.to_string(),
        observed_generation: c.observed_generation,
        health: if c.status == healthy_status {
            Health::Ready
        } else {
            Health::NotReady
        },
    }
}

/// The verdict, and why it is not `Ready`: the pause, the deletion, the
/// `Ready` and `Stalled` conditions, a generation the operator has not acted
/// on, then whatever was read just now and is not ready (what could not be
/// read does not count: it is shown as unknown).
fn verdict(
    app: &MovieAppSummary,
    conditions: &[Condition],
    aws: &AwsReport,
    kubernetes: &[ChildReport],
) -> (Verdict, Vec<String>) {
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let mut reasons = Vec::new();
    if app.paused {
        reasons.push(match find("Paused") {
            Some(c) if c.status == "True" => format!("Paused: {}", c.message),
            _ => format!(
                "{} is \"true\": the operator writes nothing until it is removed",
                pause::PAUSED_ANNOTATION
            ),
        });
    }
    if app.deleting {
        reasons.push("the MovieApp is being deleted".to_owned());
    }
    let ready = find("Ready");
    match ready {
        None => {
            reasons.push("the operator has not reconciled it yet (no Ready condition)".to_owned())
        }
        Some(c) if c.status != "True" => {
            reasons.push(format!(
                "Ready is {}: {}: {}",
                c.status, c.reason, c.message
            ));
        }
        Some(_) => {}
    }
    if let Some(stalled) = find("Stalled").filter(|c| c.status == "True")
        && ready.is_none_or(|r| r.message != stalled.message)
    {
        reasons.push(format!("Stalled: {}: {}", stalled.reason, stalled.message));
    }
    if let (Some(generation), observed) = (app.generation, app.observed_generation)
        && observed.is_none_or(|o| o < generation)
    {
        reasons.push(format!(
            "the operator has not acted on generation {generation} yet (the status describes {})",
            observed.map_or_else(|| "none".to_owned(), |o| o.to_string())
        ));
    }
    for resource in aws
        .resources
        .iter()
        .filter(|r| r.health == Health::NotReady)
    {
        reasons.push(format!(
            "{} {}: {}",
            resource.kind.title(),
            resource.name,
            resource.message.as_deref().unwrap_or("not ready")
        ));
    }
    // Children missing while the MovieApp is not Ready are its consequence
    // (the operator makes them once the worker can run): the tree shows
    // them, the reasons do not repeat them.
    let not_ready = ready.is_none_or(|c| c.status != "True");
    for child in kubernetes
        .iter()
        .filter(|c| c.health == Health::NotReady)
        .filter(|c| !(not_ready && c.managed && c.exists == Some(false)))
    {
        reasons.push(format!(
            "{} {}: {}",
            child.kind,
            child.name,
            child.message.as_deref().unwrap_or("not ready")
        ));
    }
    let verdict = if app.paused {
        Verdict::Paused
    } else if reasons.is_empty() {
        Verdict::Ready
    } else {
        Verdict::NotReady
    };
    (verdict, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AwsKind, AwsResourceReport, Ownership};

    fn app(annotations: &[(&str, &str)], conditions: &[(&str, &str, &str)]) -> MovieApp {
        let conditions: Vec<serde_json::Value> = conditions
            .iter()
            .map(|(type_, status, reason)| {
                serde_json::json!({
                    "type": type_, "status": status, "reason": reason,
                    "message": format!("{type_} says {reason}"),
                    "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2,
                })
            })
            .collect();
        let annotations: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "movieapp.io/v1alpha1", "kind": "MovieApp",
            "metadata": { "name": "shop", "namespace": "movies", "uid": "u-1",
                          "generation": 2, "annotations": annotations },
            "spec": {},
            "status": { "observedGeneration": 2, "conditions": conditions },
        }))
        .expect("a MovieApp")
    }

    fn aws(resources: Vec<AwsResourceReport>) -> AwsReport {
        AwsReport {
            region: Some("us-east-1".to_owned()),
            endpoint: None,
            error: None,
            resources,
        }
    }

    fn table(health: Health, message: Option<&str>) -> AwsResourceReport {
        AwsResourceReport {
            kind: AwsKind::DynamoDBTable,
            component: "users".to_owned(),
            name: "movieapp-movies-shop-1234abcd-users".to_owned(),
            exists: Some(health != Health::Unknown),
            address: None,
            status: Some("ACTIVE".to_owned()),
            ownership: Some(Ownership::ThisMovieApp),
            declared: true,
            health,
            message: message.map(str::to_owned),
        }
    }

    const READY: &[(&str, &str, &str)] = &[
        ("Ready", "True", "Available"),
        ("Reconciling", "False", "Reconciled"),
        ("Stalled", "False", "NoBlockers"),
    ];

    #[test]
    fn ready_needs_the_condition_the_generation_and_nothing_contradicting_it() {
        let ok = assemble(
            &app(&[], READY),
            aws(vec![table(Health::Ready, None)]),
            vec![],
            vec![],
        );
        assert_eq!(
            (ok.verdict, ok.reasons.len()),
            (Verdict::Ready, 0),
            "{ok:?}"
        );
        assert_eq!(ok.verdict.exit_code(), 0);

        // AWS unreachable: shown as unknown, not counted against Ready.
        let unknown = assemble(
            &app(&[], READY),
            aws(vec![table(Health::Unknown, Some("connection refused"))]),
            vec![],
            vec![],
        );
        assert_eq!(unknown.verdict, Verdict::Ready);

        // A table deleted behind the operator's back contradicts Ready.
        let gone = assemble(
            &app(&[], READY),
            aws(vec![table(Health::NotReady, Some("missing"))]),
            vec![],
            vec![],
        );
        assert_eq!(gone.verdict, Verdict::NotReady);
        assert_eq!(gone.verdict.exit_code(), 1);
        assert!(
            gone.reasons[0].contains("DynamoDB table movieapp-movies-shop-1234abcd-users: missing")
        );

        let mut behind = app(&[], READY);
        behind.metadata.generation = Some(3);
        let behind = assemble(&behind, aws(vec![]), vec![], vec![]);
        assert_eq!(behind.verdict, Verdict::NotReady);
        assert!(
            behind.reasons[0].contains("generation 3"),
            "{:?}",
            behind.reasons
        );
    }

    #[test]
    fn stalled_and_paused_say_why() {
        let stalled = assemble(
            &app(
                &[],
                &[
                    ("Ready", "False", "SecretNotFound"),
                    ("Stalled", "True", "SecretNotFound"),
                ],
            ),
            aws(vec![]),
            vec![],
            vec![],
        );
        assert_eq!(stalled.verdict, Verdict::NotReady);
        assert_eq!(
            stalled.reasons,
            [
                "Ready is False: SecretNotFound: Ready says SecretNotFound",
                "Stalled: SecretNotFound: Stalled says SecretNotFound"
            ]
        );
        let stalled_condition = stalled.conditions.iter().find(|c| c.type_ == "Stalled");
        assert_eq!(stalled_condition.map(|c| c.health), Some(Health::NotReady));

        let mut conditions = READY.to_vec();
        conditions.push(("Paused", "True", "Paused"));
        let paused = assemble(
            &app(&[("movieapp.io/paused", "true")], &conditions),
            aws(vec![]),
            vec![],
            vec![],
        );
        assert_eq!(paused.verdict, Verdict::Paused);
        assert_eq!(paused.verdict.exit_code(), 1);
        assert!(paused.movie_app.paused);
        assert_eq!(paused.reasons, ["Paused: Paused says Paused"]);
    }
}
