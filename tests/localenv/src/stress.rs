//! The environment's own stress test (`make env-stress`): start and stop it
//! many times in a row, each time proving it works with a 2-replica
//! Deployment that must become available; the figures go into
//! docs/reliability.md.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::components::Layout;
use crate::supervisor::{Request, down, up};

/// One up → Deployment available → down cycle.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub up: Option<Duration>,
    pub available: Option<Duration>,
    pub down: Option<Duration>,
    pub error: Option<String>,
}

impl Cycle {
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs `cycles` cycles on the environment `request` describes, which must
/// not be running. Each failure is recorded and the next cycle starts.
pub async fn run(request: &Request, cycles: u32) -> Result<Vec<Cycle>> {
    if request.state.exists() {
        bail!(
            "{} exists: `make env-down` first (the stress test starts and stops the environment \
             itself)",
            request.state.display()
        );
    }
    let mut results = Vec::new();
    for n in 1..=cycles {
        let mut cycle = Cycle {
            up: None,
            available: None,
            down: None,
            error: None,
        };
        let started = Instant::now();
        let outcome = async {
            let layout = up(request).await?;
            cycle.up = Some(started.elapsed());
            let deploying = Instant::now();
            deployment_available(&layout).await?;
            cycle.available = Some(deploying.elapsed());
            anyhow::Ok(())
        }
        .await;
        let stopping = Instant::now();
        let stopped = down(&request.state);
        cycle.down = Some(stopping.elapsed());
        cycle.error = match (outcome, stopped) {
            (Ok(()), Ok(_)) => None,
            (Err(error), _) | (Ok(()), Err(error)) => Some(format!("{error:#}")),
        };
        let secs =
            |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        match &cycle.error {
            None => eprintln!(
                "== cycle {n}/{cycles}: up {}, 2 replicas available {}, down {}",
                secs(cycle.up),
                secs(cycle.available),
                secs(cycle.down)
            ),
            Some(error) => eprintln!("== cycle {n}/{cycles} FAILED: {error}"),
        }
        results.push(cycle);
    }
    Ok(results)
}

/// Applies a 2-replica Deployment and waits until both replicas are
/// available (Pods scheduled by kube-scheduler, made Ready by kwok).
async fn deployment_available(layout: &Layout) -> Result<()> {
    let http = layout.http()?;
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let labels = json!({ "app": "web" });
    http.apply(
        path,
        &json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "web" },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": { "containers": [{ "name": "web", "image": "nginx" }] },
                },
            },
        }),
    )
    .await
    .context("creating the Deployment")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deployment = http.get_json(path).await?;
        if deployment["status"]["availableReplicas"] == 2 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the Deployment did not have 2 available replicas within 60 s: {}",
                deployment["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const BEGIN: &str = "<!-- env-stress:begin -->";
const END: &str = "<!-- env-stress:end -->";

/// The median and the largest of some durations, in seconds.
fn median_max(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    match values {
        [] => (0.0, 0.0),
        _ => (values[values.len() / 2], values[values.len() - 1]),
    }
}

/// The figures as Markdown: what ran, where, and the times.
pub fn markdown(results: &[Cycle], command: &str, machine: &str, total: Duration) -> String {
    let passed = results.iter().filter(|c| c.passed()).count();
    let mut text = format!(
        "Measured by `{command}` {machine}: **{passed} of {} cycles passed** in {:.0} s.\n\n\
         | step (per cycle) | median | slowest |\n|---|---|---|\n",
        results.len(),
        total.as_secs_f64()
    );
    type Pick = fn(&Cycle) -> Option<Duration>;
    let rows: [(&str, Pick); 3] = [
        ("`env-up` until every component is healthy", |c| c.up),
        ("2-replica Deployment available after that", |c| c.available),
        ("`env-down`", |c| c.down),
    ];
    for (label, pick) in rows {
        let mut values: Vec<f64> = results
            .iter()
            .filter_map(pick)
            .map(|d| d.as_secs_f64())
            .collect();
        let (median, max) = median_max(&mut values);
        let _ = writeln!(text, "| {label} | {median:.1} s | {max:.1} s |");
    }
    for (n, cycle) in results.iter().enumerate() {
        if let Some(error) = &cycle.error {
            let first = error.lines().next().unwrap_or_default();
            let _ = writeln!(text, "\nCycle {} failed: {first}", n + 1);
        }
    }
    text
}

/// Puts `section` between the markers of `document` (which must have them).
pub fn write_report(document: &Path, section: &str) -> Result<()> {
    let text = std::fs::read_to_string(document)
        .with_context(|| format!("reading {}", document.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no {BEGIN} … {END} markers", document.display());
    };
    let updated = format!(
        "{}{BEGIN}\n{}{}",
        &text[..begin],
        section.trim_end_matches('\n').to_owned() + "\n",
        &text[end..]
    );
    std::fs::write(document, updated).with_context(|| format!("writing {}", document.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(up: f64, error: Option<&str>) -> Cycle {
        Cycle {
            up: Some(Duration::from_secs_f64(up)),
            available: error.is_none().then(|| Duration::from_secs(2)),
            down: Some(Duration::from_secs(1)),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn the_report_counts_failures_and_shows_median_and_slowest() {
        let results = [
            cycle(8.0, None),
            cycle(10.0, None),
            cycle(30.0, Some("kube-scheduler exited\nlog")),
        ];
        let text = markdown(
            &results,
            "make env-stress",
            "on a test",
            Duration::from_secs(60),
        );
        assert!(text.contains("**2 of 3 cycles passed**"), "{text}");
        assert!(text.contains("| 10.0 s | 30.0 s |"), "{text}");
        assert!(
            text.contains("Cycle 3 failed: kube-scheduler exited\n"),
            "{text}"
        );
    }

    #[test]
    fn the_section_replaces_what_was_between_the_markers_only() {
        let path = std::env::temp_dir().join(format!("stress-doc-{}.md", std::process::id()));
        std::fs::write(&path, format!("before\n{BEGIN}\nold\n{END}\nafter\n")).expect("written");
        write_report(&path, "new figures\n").expect("replaced");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            format!("before\n{BEGIN}\nnew figures\n{END}\nafter\n")
        );
        std::fs::write(&path, "no markers").expect("written");
        assert!(write_report(&path, "x").is_err());
        std::fs::remove_file(&path).expect("removed");
    }
}
