//! Chaos scenario 5 (docs/reliability.md): TMDB goes away — its process is
//! killed, connections are refused — while the api-worker is under load,
//! then comes back. Movies already cached keep being served (no 5xx for a
//! cached id at any moment); once TMDB is back, fresh answers return.
//!
//! The test runs its own TMDB stub process (the shared one stays up for the
//! other suites) and serves the api-worker on a real loopback socket.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use common::{Env, Fixture};

/// Movies of the stub's catalogue the test caches first.
const CACHED: [u32; 8] = [11, 13, 77, 78, 98, 105, 120, 121];
/// One the test never caches: its answer tells whether TMDB is reachable.
const UNCACHED: [u32; 3] = [122, 128, 129];

const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const RECOVERED: u8 = 2;

struct Stub {
    child: Child,
}

impl Stub {
    async fn start(port: u16, key: &str) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/tmdb-stub/tmdb_stub.py"
        );
        let child = Command::new("python3")
            .args([
                script,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--api-key",
                key,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the TMDB stub");
        let health = format!("http://127.0.0.1:{port}/healthz");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "the TMDB stub did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child }
    }

    /// SIGKILL: connections are refused from now on.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
struct Sample {
    phase: u8,
    status: u16,
    stale: bool,
    latency: Duration,
}

fn p99(samples: &[&Sample]) -> Duration {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_tmdb_outage_under_load_serves_cached_movies_and_recovers() {
    let env = Env::get();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let stub = Stub::start(port, &env.tmdb_api_key).await;
    let fx = Fixture::new("tmdb-outage-load").await;
    // Entries go stale after 2 s, so during the outage every cached movie is
    // past its freshness and has to be served from the kept copy. Every load
    // client here shares one address, and each stale answer tries TMDB again:
    // the per-client TMDB budget would answer 429 where this test looks at
    // what an outage does, so it is raised beyond what the run can spend.
    let (_, app) = fx.app(&[
        &format!("--tmdb-base-url=http://127.0.0.1:{port}"),
        "--cache-details-ttl=2s",
        "--tmdb-client-burst=100000",
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let get = move |id: u32| {
        let request = http.get(format!("{url}/api/v1/movies/{id}"));
        async move { request.send().await }
    };
    for id in CACHED {
        let answer = get(id).await.expect("the api-worker answers");
        assert_eq!(answer.status(), 200, "caching movie {id}");
    }

    // Load: a bounded number of clients, each looping over the cached ids
    // until the run ends.
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let run_for = Duration::from_secs(16);
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let phase = phase.clone();
            let get = get.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = w;
                while started.elapsed() < run_for {
                    let id = CACHED[i % CACHED.len()];
                    i += 1;
                    let sent = Instant::now();
                    let at = phase.load(Ordering::SeqCst);
                    let answer = get(id).await.expect("the api-worker answers");
                    samples.push(Sample {
                        phase: at.max(phase.load(Ordering::SeqCst)),
                        status: answer.status().as_u16(),
                        stale: answer
                            .headers()
                            .get("x-cache")
                            .is_some_and(|v| v == "stale"),
                        latency: sent.elapsed(),
                    });
                }
                samples
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(4)).await;
    stub.kill();
    phase.store(OUTAGE, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = get(UNCACHED[0]).await.expect("the api-worker answers");
    assert_eq!(
        during.status(),
        503,
        "an uncached movie cannot be served while TMDB is down"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stub = Stub::start(port, &env.tmdb_api_key).await;
    phase.store(RECOVERED, Ordering::SeqCst);
    let recovered_at = Instant::now();
    let mut recovery = None;
    while recovered_at.elapsed() < Duration::from_secs(10) {
        if get(UNCACHED[1]).await.is_ok_and(|a| a.status() == 200) {
            recovery = Some(recovered_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = recovery.expect("TMDB answers through the api-worker again within 10 s");

    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.expect("a load worker"));
    }
    let in_phase = |p: u8| samples.iter().filter(|s| s.phase == p).collect::<Vec<_>>();
    let (before, outage, after) = (in_phase(BEFORE), in_phase(OUTAGE), in_phase(RECOVERED));
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests for cached movies failed, e.g. {:?}",
        failed.len(),
        samples.len(),
        failed.first()
    );
    assert!(
        before.len() > 20 && outage.len() > 20 && after.len() > 20,
        "load in every phase: {} / {} / {}",
        before.len(),
        outage.len(),
        after.len()
    );
    let stale = outage.iter().filter(|s| s.stale).count();
    assert!(
        stale > 0,
        "the outage was felt: cached movies were served stale ({stale} of {})",
        outage.len()
    );
    // Back to fresh: the last answers for every cached id are not stale.
    for id in CACHED {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = get(id).await.expect("the api-worker answers");
            assert_eq!(answer.status(), 200);
            if answer.headers().get("x-cache").is_none_or(|v| v != "stale") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "movie {id} is still served stale after TMDB came back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let figures = serde_json::json!({
        "scenario": "tmdb-outage",
        "figures": {
            "requests": samples.len(),
            "requests_during_outage": outage.len(),
            "served_stale_during_outage": stale,
            "non_2xx": failed.len(),
            "p99_ms_before": p99(&before).as_secs_f64() * 1e3,
            "p99_ms_during_outage": p99(&outage).as_secs_f64() * 1e3,
            "p99_ms_after": p99(&after).as_secs_f64() * 1e3,
            "recovered_after_s": recovery.as_secs_f64(),
        }
    });
    eprintln!("chaos figures: {figures}");
    if let Ok(path) = std::env::var("CHAOS_REPORT") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("CHAOS_REPORT is writable");
        writeln!(file, "{figures}").expect("writing CHAOS_REPORT");
    }
    drop(stub);
}
