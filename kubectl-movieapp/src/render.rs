//! The text output: the report as a tree, each line marked `✓` (ready),
//! `✗` (not ready, with why) or `?` (could not be read).

use std::fmt::Write as _;

use crate::report::{AwsKind, Health, Ownership, StatusReport, Verdict};

/// One line of the tree and the lines under it.
#[derive(Debug, Default)]
struct Node {
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            children: Vec::new(),
        }
    }

    fn with(mut self, children: Vec<Node>) -> Self {
        self.children = children;
        self
    }

    fn draw(&self, out: &mut String, prefix: &str) {
        for (i, child) in self.children.iter().enumerate() {
            let last = i + 1 == self.children.len();
            let (branch, next) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            // An Event with an empty message would end the line in blanks.
            let _ = writeln!(out, "{prefix}{branch}{}", child.text.trim_end());
            child.draw(out, &format!("{prefix}{next}"));
        }
    }
}

fn mark(health: Health) -> &'static str {
    match health {
        Health::Ready => "✓",
        Health::NotReady => "✗",
        Health::Unknown => "?",
    }
}

/// `text`, then ` — why` when there is a why.
fn line(health: Health, text: String, why: Option<&str>) -> String {
    match why {
        Some(why) => format!("{} {text}  — {why}", mark(health)),
        None => format!("{} {text}", mark(health)),
    }
}

/// The report as text.
pub fn text(report: &StatusReport) -> String {
    let app = &report.movie_app;
    let verdict = match report.verdict {
        Verdict::Ready => "✓ Ready",
        Verdict::NotReady => "✗ NOT READY",
        Verdict::Paused => "⏸ PAUSED",
    };
    let generation = |g: Option<i64>| g.map_or_else(|| "-".to_owned(), |g| g.to_string());
    let mut root = Node::new(format!(
        "MovieApp {}/{}  {verdict}  (generation {}, observed {})",
        app.namespace,
        app.name,
        generation(app.generation),
        generation(app.observed_generation),
    ));
    if !report.reasons.is_empty() {
        root.children.push(
            Node::new("Why").with(
                report
                    .reasons
                    .iter()
                    .map(|r| Node::new(format!("✗ {r}")))
                    .collect(),
            ),
        );
    }
    root.children.push(
        Node::new("Conditions").with(if report.conditions.is_empty() {
            vec![Node::new(
                "? none yet: the operator has not reconciled this MovieApp",
            )]
        } else {
            report
                .conditions
                .iter()
                .map(|c| {
                    let text = format!("{}={}  {}", c.type_, c.status, c.reason);
                    let why = (!c.message.is_empty()).then_some(c.message.as_str());
                    Node::new(line(c.health, text, why))
                })
                .collect()
        }),
    );
    root.children.push(aws(report));
    root.children.push(kubernetes(report));
    root.children.push(
        Node::new("Events (newest first)").with(if report.events.is_empty() {
            vec![Node::new("none")]
        } else {
            report
                .events
                .iter()
                .map(|e| {
                    let count = if e.count > 1 {
                        format!(" (x{})", e.count)
                    } else {
                        String::new()
                    };
                    Node::new(format!(
                        "{} {} {}{count}  {}",
                        e.last_seen.as_deref().unwrap_or("-"),
                        e.type_,
                        e.reason,
                        e.message
                    ))
                })
                .collect()
        }),
    );
    let mut out = String::new();
    let _ = writeln!(out, "{}", root.text);
    root.draw(&mut out, "");
    out
}

fn aws(report: &StatusReport) -> Node {
    let aws = &report.aws;
    let mut title = format!("AWS  region {}", aws.region.as_deref().unwrap_or("unknown"));
    if let Some(endpoint) = &aws.endpoint {
        let _ = write!(title, ", endpoint {endpoint}");
    }
    let mut nodes: Vec<Node> = aws
        .error
        .iter()
        .map(|error| Node::new(format!("? not read: {error}")))
        .collect();
    for resource in &aws.resources {
        let mut facts = Vec::new();
        match resource.exists {
            Some(true) => {}
            Some(false) => facts.push("missing".to_owned()),
            None => facts.push("unknown".to_owned()),
        }
        facts.extend(resource.status.clone());
        match resource.ownership {
            Some(Ownership::ThisMovieApp) => facts.push("owned by this MovieApp".to_owned()),
            Some(Ownership::Adoptable) => facts.push("adoptable".to_owned()),
            Some(Ownership::Other) => facts.push("NOT this MovieApp's".to_owned()),
            None => {}
        }
        let text = match resource.kind {
            AwsKind::SNSSubscription => format!(
                "{} {} {}  {}",
                resource.kind.title(),
                resource.component,
                resource.name,
                facts.join(", ")
            ),
            _ => format!(
                "{} {}  {}",
                resource.kind.title(),
                resource.name,
                facts.join(", ")
            ),
        };
        let why = (resource.health != Health::Ready)
            .then_some(resource.message.as_deref())
            .flatten();
        let node = Node::new(line(resource.health, text.trim_end().to_owned(), why));
        // Subscriptions hang under their topic.
        match (resource.kind, nodes.last_mut()) {
            (AwsKind::SNSSubscription, Some(topic)) => topic.children.push(node),
            _ => nodes.push(node),
        }
    }
    Node::new(title).with(nodes)
}

fn kubernetes(report: &StatusReport) -> Node {
    let nodes = report
        .kubernetes
        .iter()
        .map(|child| {
            let mut text = format!("{} {}", child.kind, child.name);
            if !child.managed {
                text.push_str("  (referenced, not managed)");
            }
            if let Some(detail) = &child.detail {
                let _ = write!(text, "  {detail}");
            }
            let why = (child.health != Health::Ready)
                .then_some(child.message.as_deref())
                .flatten();
            Node::new(line(child.health, text, why)).with(
                child
                    .pods
                    .iter()
                    .map(|pod| {
                        let health = if pod.ready {
                            Health::Ready
                        } else {
                            Health::NotReady
                        };
                        let restarts = if pod.restarts > 0 {
                            format!(", {} restarts", pod.restarts)
                        } else {
                            String::new()
                        };
                        let text = format!(
                            "Pod {}  {}{}{restarts}",
                            pod.name,
                            pod.phase,
                            if pod.ready { ", ready" } else { ", not ready" }
                        );
                        Node::new(line(health, text, pod.message.as_deref()))
                    })
                    .collect(),
            )
        })
        .collect();
    Node::new("Kubernetes").with(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_keeps_its_rails() {
        let root = Node::new("root").with(vec![
            Node::new("a").with(vec![Node::new("a1"), Node::new("a2")]),
            Node::new("b").with(vec![Node::new("b1")]),
        ]);
        let mut out = String::new();
        root.draw(&mut out, "");
        assert_eq!(out, "├── a\n│   ├── a1\n│   └── a2\n└── b\n    └── b1\n");

        let blank =
            Node::new("root").with(vec![Node::new("Normal NoBlockers  Stalled is False: ")]);
        let mut out = String::new();
        blank.draw(&mut out, "");
        assert_eq!(out, "└── Normal NoBlockers  Stalled is False:\n");
    }
}

/// The whole tree for the reports of a Ready and a Stalled MovieApp, as the
/// e2e test (kubectl-movieapp/tests/kubectl.rs) reads them on the local
/// environment; pinned here line for line so a change of wording or layout
/// is seen in review.
#[cfg(test)]
mod golden {
    use movieapp_operator::crd::MovieApp;

    use super::text;
    use crate::report::{
        AwsKind, AwsReport, AwsResourceReport, ChildReport, EventReport, Health, Ownership,
        PodReport,
    };
    use crate::status::assemble;

    fn app(conditions: &[(&str, &str, &str, &str)]) -> MovieApp {
        let conditions: Vec<serde_json::Value> = conditions
            .iter()
            .map(|(type_, status, reason, message)| {
                serde_json::json!({
                    "type": type_, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": "2026-12-03T08:00:00Z", "observedGeneration": 1,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "movieapp.io/v1alpha1", "kind": "MovieApp",
            "metadata": { "name": "shop", "namespace": "movies", "uid": "u-1", "generation": 1 },
            "spec": {},
            "status": { "observedGeneration": 1, "conditions": conditions },
        }))
        .expect("a MovieApp")
    }

    fn resource(kind: AwsKind, component: &str, name: &str, status: &str) -> AwsResourceReport {
        AwsResourceReport {
            kind,
            component: component.to_owned(),
            name: name.to_owned(),
            exists: Some(true),
            address: Some(format!("arn:aws:x:us-east-1:123456789012:{name}")),
            status: (!status.is_empty()).then(|| status.to_owned()),
            ownership: (kind != AwsKind::SNSSubscription).then_some(Ownership::ThisMovieApp),
            declared: true,
            health: Health::Ready,
            message: None,
        }
    }

    fn aws(users: AwsResourceReport) -> AwsReport {
        AwsReport {
            region: Some("us-east-1".to_owned()),
            endpoint: None,
            error: None,
            resources: vec![
                users,
                resource(
                    AwsKind::SQSQueue,
                    "jobs",
                    "movieapp-movies-shop-1a2b3c4d-jobs",
                    "0 messages waiting, 0 in flight",
                ),
                resource(
                    AwsKind::SNSTopic,
                    "notifications",
                    "movieapp-movies-shop-1a2b3c4d-notifications",
                    "",
                ),
                resource(
                    AwsKind::SNSSubscription,
                    "sqs",
                    "arn:aws:sqs:us-east-1:123456789012:movieapp-movies-shop-1a2b3c4d-jobs",
                    "confirmed",
                ),
            ],
        }
    }

    fn child(kind: &str, name: &str) -> ChildReport {
        ChildReport {
            kind: kind.to_owned(),
            name: name.to_owned(),
            managed: true,
            wanted: true,
            exists: Some(true),
            owned: Some(true),
            health: Health::Ready,
            detail: None,
            message: None,
            pods: Vec::new(),
        }
    }

    fn secret(health: Health, detail: Option<&str>, message: Option<&str>) -> ChildReport {
        ChildReport {
            managed: false,
            owned: None,
            exists: Some(health == Health::Ready),
            health,
            detail: detail.map(str::to_owned),
            message: message.map(str::to_owned),
            ..child("Secret", "tmdb")
        }
    }

    #[test]
    fn a_ready_movieapp() {
        let users = resource(
            AwsKind::DynamoDBTable,
            "users",
            "movieapp-movies-shop-1a2b3c4d-users",
            "ACTIVE",
        );
        let deployment = ChildReport {
            detail: Some("1/1 replicas available".to_owned()),
            pods: vec![PodReport {
                name: "shop-5d9c-x7k2p".to_owned(),
                phase: "Running".to_owned(),
                ready: true,
                restarts: 0,
                message: None,
            }],
            ..child("Deployment", "shop")
        };
        let report = assemble(
            &app(&[
                (
                    "Ready",
                    "True",
                    "Available",
                    "every part is provisioned and the worker is available",
                ),
                ("Stalled", "False", "NoBlockers", ""),
            ]),
            aws(users),
            vec![
                deployment,
                child("Service", "shop"),
                secret(
                    Health::Ready,
                    Some("key api-key present (the TMDB API key)"),
                    None,
                ),
            ],
            vec![EventReport {
                type_: "Normal".to_owned(),
                reason: "Created".to_owned(),
                message: "created DynamoDB table movieapp-movies-shop-1a2b3c4d-users".to_owned(),
                last_seen: Some("2026-12-03T08:00:00Z".to_owned()),
                count: 1,
            }],
        );
        assert_eq!(
            text(&report),
            "\
MovieApp movies/shop  ✓ Ready  (generation 1, observed 1)
├── Conditions
│   ├── ✓ Ready=True  Available  — every part is provisioned and the worker is available
│   └── ✓ Stalled=False  NoBlockers
├── AWS  region us-east-1
│   ├── ✓ DynamoDB table movieapp-movies-shop-1a2b3c4d-users  ACTIVE, owned by this MovieApp
│   ├── ✓ SQS queue movieapp-movies-shop-1a2b3c4d-jobs  0 messages waiting, 0 in flight, owned by this MovieApp
│   └── ✓ SNS topic movieapp-movies-shop-1a2b3c4d-notifications  owned by this MovieApp
│       └── ✓ subscription sqs arn:aws:sqs:us-east-1:123456789012:movieapp-movies-shop-1a2b3c4d-jobs  confirmed
├── Kubernetes
│   ├── ✓ Deployment shop  1/1 replicas available
│   │   └── ✓ Pod shop-5d9c-x7k2p  Running, ready
│   ├── ✓ Service shop
│   └── ✓ Secret tmdb  (referenced, not managed)  key api-key present (the TMDB API key)
└── Events (newest first)
    └── 2026-12-03T08:00:00Z Normal Created  created DynamoDB table movieapp-movies-shop-1a2b3c4d-users
"
        );
    }

    #[test]
    fn a_stalled_movieapp_says_why_on_the_line_at_fault() {
        let mut users = resource(
            AwsKind::DynamoDBTable,
            "users",
            "movieapp-movies-shop-1a2b3c4d-users",
            "",
        );
        users.exists = Some(false);
        users.address = None;
        users.ownership = None;
        users.health = Health::NotReady;
        users.message = Some("missing; the operator creates it at the next reconcile".to_owned());
        let missing = "Secret movies/tmdb (the TMDB API key) does not exist";
        let deployment = ChildReport {
            exists: Some(false),
            owned: None,
            health: Health::NotReady,
            message: Some("missing; made once what blocks the worker is resolved (WorkerAvailable: SecretNotFound)".to_owned()),
            ..child("Deployment", "shop")
        };
        let report = assemble(
            &app(&[
                ("Ready", "False", "SecretNotFound", missing),
                ("Stalled", "True", "SecretNotFound", missing),
            ]),
            aws(users),
            vec![
                deployment,
                secret(
                    Health::NotReady,
                    None,
                    Some(&format!("SecretNotFound: {missing}")),
                ),
            ],
            vec![],
        );
        assert_eq!(
            text(&report),
            "\
MovieApp movies/shop  ✗ NOT READY  (generation 1, observed 1)
├── Why
│   ├── ✗ Ready is False: SecretNotFound: Secret movies/tmdb (the TMDB API key) does not exist
│   ├── ✗ DynamoDB table movieapp-movies-shop-1a2b3c4d-users: missing; the operator creates it at the next reconcile
│   └── ✗ Secret tmdb: SecretNotFound: Secret movies/tmdb (the TMDB API key) does not exist
├── Conditions
│   ├── ✗ Ready=False  SecretNotFound  — Secret movies/tmdb (the TMDB API key) does not exist
│   └── ✗ Stalled=True  SecretNotFound  — Secret movies/tmdb (the TMDB API key) does not exist
├── AWS  region us-east-1
│   ├── ✗ DynamoDB table movieapp-movies-shop-1a2b3c4d-users  missing  — missing; the operator creates it at the next reconcile
│   ├── ✓ SQS queue movieapp-movies-shop-1a2b3c4d-jobs  0 messages waiting, 0 in flight, owned by this MovieApp
│   └── ✓ SNS topic movieapp-movies-shop-1a2b3c4d-notifications  owned by this MovieApp
│       └── ✓ subscription sqs arn:aws:sqs:us-east-1:123456789012:movieapp-movies-shop-1a2b3c4d-jobs  confirmed
├── Kubernetes
│   ├── ✗ Deployment shop  — missing; made once what blocks the worker is resolved (WorkerAvailable: SecretNotFound)
│   └── ✗ Secret tmdb  (referenced, not managed)  — SecretNotFound: Secret movies/tmdb (the TMDB API key) does not exist
└── Events (newest first)
    └── none
"
        );
    }

    #[test]
    fn aws_that_cannot_be_read_is_marked_unknown_not_missing() {
        let mut users = resource(
            AwsKind::DynamoDBTable,
            "users",
            "movieapp-movies-shop-1a2b3c4d-users",
            "",
        );
        users.exists = None;
        users.address = None;
        users.ownership = None;
        users.health = Health::Unknown;
        users.message = Some("dispatch failure: connection refused".to_owned());
        let mut aws = aws(users);
        aws.resources.truncate(1);
        aws.endpoint = Some("http://127.0.0.1:1".to_owned());
        aws.error = Some("dispatch failure: connection refused".to_owned());
        let report = assemble(
            &app(&[("Ready", "True", "Available", "")]),
            aws,
            vec![],
            vec![],
        );
        let out = text(&report);
        assert!(out.starts_with("MovieApp movies/shop  ✓ Ready"), "{out}");
        assert!(out.contains(
            "├── AWS  region us-east-1, endpoint http://127.0.0.1:1\n\
             │   ├── ? not read: dispatch failure: connection refused\n\
             │   └── ? DynamoDB table movieapp-movies-shop-1a2b3c4d-users  unknown  — dispatch failure: connection refused\n"
        ), "{out}");
    }
}
