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
            let _ = writeln!(out, "{prefix}{branch}{}", child.text);
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
    }
}
