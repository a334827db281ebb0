//! Command line and environment: every setting has a flag and, where the
//! operator injects it, the environment variable named in `movieapp-model`.
//!
//! clap reports a missing or malformed setting at start-up, naming the flag
//! and the variable (the value names are the variable names on purpose).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use movieapp_model::duration::parse as parse_duration;
use movieapp_model::env;
use reqwest::Url;

use crate::client::IpRange;

/// The movie service: HTTP API, web page and background jobs.
#[derive(Debug, Parser)]
#[command(name = "api-worker", version, about)]
pub struct Cli {
    /// Log format: `json` (one object a line, for collectors) or `text`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

// One value, parsed once at start-up: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and the web page.
    Serve(ServeArgs),
    /// Consume the SQS jobs queue.
    Worker(WorkerArgs),
    /// Warm the cache with the first pages of popular movies, then exit.
    SyncPopular(SyncPopularArgs),
    /// Put one job on the jobs queue (for operators and schedules).
    Enqueue(EnqueueArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0")]
    pub listen_addr: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, env = env::PORT, value_name = env::PORT, default_value_t = 8080)]
    pub port: u16,
    /// Address of the admin listener: `/metrics` and the detailed `/readyz`,
    /// never on the public port. Unset: no admin listener.
    #[arg(long, env = env::ADMIN_ADDR, value_name = env::ADMIN_ADDR)]
    pub admin_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub http: HttpSettings,
}

impl ServeArgs {
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.listen_addr, self.port)
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub worker: WorkerSettings,
}

#[derive(Debug, Clone, Args)]
pub struct SyncPopularArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// How many pages of popular movies to fetch.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub pages: u32,
}

#[derive(Debug, Clone, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// The job, as JSON, e.g. `{"type":"refresh-movie","movieId":550}`.
    pub job: String,
}

/// What every subcommand needs: where the data lives and how to reach TMDB.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Physical name of the users table.
    #[arg(long, env = env::USERS_TABLE, value_name = env::USERS_TABLE)]
    pub users_table: String,
    /// Physical name of the movies cache table.
    #[arg(long, env = env::MOVIES_TABLE, value_name = env::MOVIES_TABLE)]
    pub movies_table: String,
    /// Physical name of the watchlists table.
    #[arg(long, env = env::WATCHLISTS_TABLE, value_name = env::WATCHLISTS_TABLE)]
    pub watchlists_table: String,
    /// URL of the SQS jobs queue (required by `worker` and `enqueue`).
    #[arg(long, env = env::JOBS_QUEUE_URL, value_name = env::JOBS_QUEUE_URL, value_parser = parse_url)]
    pub jobs_queue_url: Option<Url>,
    /// ARN of the SNS notifications topic (required by `worker`).
    #[arg(long, env = env::NOTIFICATIONS_TOPIC_ARN, value_name = env::NOTIFICATIONS_TOPIC_ARN, value_parser = parse_arn)]
    pub notifications_topic_arn: Option<String>,
    /// AWS region (defaults to the SDK's own lookup).
    #[arg(long, env = env::AWS_REGION, value_name = env::AWS_REGION)]
    pub aws_region: Option<String>,
    /// Endpoint for every AWS client (moto, LocalStack).
    #[arg(long, env = env::AWS_ENDPOINT_URL, value_name = env::AWS_ENDPOINT_URL, value_parser = parse_url)]
    pub aws_endpoint_url: Option<Url>,
    #[command(flatten)]
    pub tmdb: TmdbSettings,
    #[command(flatten)]
    pub cache: CacheSettings,
}

#[derive(Debug, Clone, Args)]
pub struct TmdbSettings {
    /// Base URL of the TMDB API.
    #[arg(long, env = env::TMDB_BASE_URL, value_name = env::TMDB_BASE_URL, value_parser = parse_url,
          default_value = "https://api.themoviedb.org")]
    pub tmdb_base_url: Url,
    /// TMDB v3 API key or v4 read access token (a token is sent as a bearer header).
    #[arg(long, env = env::TMDB_API_KEY, value_name = env::TMDB_API_KEY, hide_env_values = true,
          value_parser = parse_secret)]
    pub tmdb_api_key: Secret,
    /// Base URL for poster images.
    #[arg(
        long,
        env = "TMDB_IMAGE_BASE_URL",
        default_value = "https://image.tmdb.org/t/p/w342"
    )]
    pub tmdb_image_base_url: String,
    /// Time limit of one TMDB request.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub tmdb_attempt_timeout: Duration,
    /// Time limit of one TMDB call including its retries.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub tmdb_deadline: Duration,
    /// Time limit of a TMDB call when a stale copy could be served instead.
    #[arg(long, default_value = "1500ms", value_parser = parse_duration)]
    pub tmdb_stale_deadline: Duration,
    /// Attempts per TMDB call (429, 5xx, time-outs and connection errors are retried).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub tmdb_max_attempts: u32,
    /// Client-side limit on TMDB requests per second (TMDB allows about 50).
    #[arg(long, default_value_t = 35, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub tmdb_requests_per_second: u32,
    /// TMDB calls (uncached lookups) one client may cause before its own
    /// limit applies, so no client takes more than its share of the rate above.
    #[arg(long, default_value_t = 20)]
    pub tmdb_client_burst: u32,
    /// One more TMDB call per client is allowed after this long.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub tmdb_client_refill: Duration,
    /// Largest TMDB answer read, in bytes (TMDB's pages are about 15 KB); a
    /// larger or endless one is dropped unread and counts as `too_large`.
    #[arg(long, default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(4096..=64 * 1024 * 1024))]
    pub tmdb_max_response_bytes: u64,
}

#[derive(Debug, Clone, Args)]
pub struct CacheSettings {
    /// How long movie details stay fresh.
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub cache_details_ttl: Duration,
    /// How long popular and search pages stay fresh.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub cache_lists_ttl: Duration,
    /// How long an entry is kept (and may be served stale) before DynamoDB's TTL removes it.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub cache_keep: Duration,
    /// Memory for cached TMDB answers, in MiB (bodies and keys are weighed).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub cache_memory_mib: u64,
}

#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// Key that signs login tokens (at least 32 bytes).
    #[arg(long, env = env::TOKEN_SIGNING_KEY, value_name = env::TOKEN_SIGNING_KEY, hide_env_values = true,
          value_parser = parse_secret)]
    pub token_signing_key: Secret,
    /// Lifetime of a login token.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Argon2id memory cost in KiB (OWASP: 19456 with 2 iterations; less
    /// memory needs more iterations, see `ARGON2_MINIMUMS`; lower is refused).
    #[arg(long, default_value_t = 19_456, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub argon2_iterations: u32,
    /// Failed logins allowed per account before the limit applies.
    #[arg(long, default_value_t = 5)]
    pub login_account_burst: u32,
    /// One more failed login per account is allowed after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub login_account_refill: Duration,
    /// Sign-ups allowed per client address before the limit applies (each
    /// costs an argon2 hash).
    #[arg(long, default_value_t = 5)]
    pub signup_address_burst: u32,
    /// One more sign-up per client address is allowed after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub signup_address_refill: Duration,
    /// Login attempts allowed per client address before the limit applies.
    #[arg(long, default_value_t = 20)]
    pub login_address_burst: u32,
    /// One more login attempt per client address is allowed after this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub login_address_refill: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Time limit of one HTTP request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub body_limit: usize,
    /// Most movies one watchlist may hold (each entry keeps a movie snapshot
    /// of a few KB; a list is read in pages of at most 100).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub watchlist_max_entries: u32,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Address ranges of the proxies in front of this server, comma-separated
    /// (`10.0.0.0/16,fd00::/8`). The forwarded header is believed only from
    /// them. Empty: the client is the TCP peer.
    #[arg(long, env = env::TRUSTED_PROXIES, value_name = env::TRUSTED_PROXIES, default_value = "",
          value_parser = parse_ranges)]
    pub trusted_proxies: IpRanges,
    /// The header trusted proxies append the client's address to; its
    /// right-most entry that is not a trusted proxy is the client.
    #[arg(long, env = env::FORWARDED_HEADER, value_name = env::FORWARDED_HEADER,
          default_value = "x-forwarded-for")]
    pub forwarded_header: String,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    /// Long-poll wait of one ReceiveMessage call.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub poll_wait: Duration,
    /// Jobs handled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub concurrency: u32,
    /// Visibility timeout requested for received messages; extended while a job runs.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub visibility_timeout: Duration,
    /// Delay before a failed job is retried (doubled per receive, capped at 15 minutes).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub retry_delay: Duration,
}

/// A value never printed: Debug shows `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Address ranges from a comma-separated list (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRanges(pub Vec<IpRange>);

fn parse_ranges(value: &str) -> Result<IpRanges, String> {
    value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map(IpRanges)
}

fn parse_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "unsupported scheme {other:?}: expected http or https"
        )),
    }
}

fn parse_arn(value: &str) -> Result<String, String> {
    if value.starts_with("arn:") && value.split(':').count() >= 6 {
        Ok(value.to_owned())
    } else {
        Err("not an ARN (arn:partition:service:region:account:resource)".into())
    }
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(Secret::new(value))
    }
}

/// OWASP's equivalent argon2id settings (memory in KiB, iterations; one
/// lane): a cost is enough when it has the memory and the iterations of one.
pub const ARGON2_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

impl AuthSettings {
    /// Checks what clap cannot without echoing a secret in its error message.
    pub fn validate(&self) -> Result<(), String> {
        let len = self.token_signing_key.expose().len();
        if len < 32 {
            return Err(format!(
                "{} (--token-signing-key) must be at least 32 bytes, got {len}",
                env::TOKEN_SIGNING_KEY
            ));
        }
        let (memory, iterations) = (self.argon2_memory_kib, self.argon2_iterations);
        if !ARGON2_MINIMUMS
            .iter()
            .any(|&(m, t)| memory >= m && iterations >= t)
        {
            return Err(format!(
                "--argon2-memory-kib={memory} with --argon2-iterations={iterations} is below OWASP's \
                 minimum for argon2id: use at least one of {}",
                ARGON2_MINIMUMS
                    .iter()
                    .map(|(m, t)| format!("{m} KiB × {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [&str; 8] = [
        "api-worker",
        "serve",
        "--users-table=u",
        "--movies-table=m",
        "--watchlists-table=w",
        "--tmdb-api-key=k",
        "--token-signing-key=0123456789abcdef0123456789abcdef",
        "--tmdb-base-url=http://127.0.0.1:1",
    ];

    #[test]
    fn argon2_costs_below_owasp_are_refused() {
        let auth = |memory: &str, iterations: &str| {
            let mut args = REQUIRED.to_vec();
            args.push(memory);
            args.push(iterations);
            let Command::Serve(serve) = Cli::try_parse_from(args).expect("parses").command else {
                panic!("not serve")
            };
            serve.auth.validate()
        };
        assert!(auth("--argon2-memory-kib=19456", "--argon2-iterations=2").is_ok());
        assert!(auth("--argon2-memory-kib=7168", "--argon2-iterations=5").is_ok());
        assert!(auth("--argon2-memory-kib=65536", "--argon2-iterations=1").is_ok());
        for (m, t) in [("12288", "2"), ("4096", "1"), ("19000", "2"), ("7168", "4")] {
            let error = auth(
                &format!("--argon2-memory-kib={m}"),
                &format!("--argon2-iterations={t}"),
            )
            .expect_err("below the minimum");
            assert!(
                error.contains("OWASP") && error.contains("19456 KiB × 2"),
                "{error}"
            );
        }
    }

    #[test]
    fn serve_parses_with_the_required_settings() {
        let cli = Cli::try_parse_from(REQUIRED).expect("valid command line");
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.settings.users_table, "u");
        assert_eq!(args.port, 8080);
        assert_eq!(format!("{:?}", args.auth.token_signing_key), "[redacted]");
    }

    #[test]
    fn missing_settings_are_named_by_their_variable() {
        let args: Vec<_> = REQUIRED
            .iter()
            .filter(|a| !a.starts_with("--users-table"))
            .collect();
        let error = Cli::try_parse_from(args)
            .expect_err("users table is required")
            .to_string();
        assert!(error.contains("MOVIEAPP_USERS_TABLE"), "{error}");
    }

    #[test]
    fn malformed_settings_are_rejected_with_a_reason() {
        let mut args = REQUIRED.to_vec();
        args.push("--jobs-queue-url=not a url");
        let error = Cli::try_parse_from(args).expect_err("bad url").to_string();
        assert!(
            error.contains("MOVIEAPP_JOBS_QUEUE_URL") && error.contains("not a URL"),
            "{error}"
        );

        let mut args: Vec<_> = REQUIRED
            .iter()
            .filter(|a| !a.starts_with("--token-signing-key"))
            .copied()
            .collect();
        args.push("--token-signing-key=short-secret");
        let cli = Cli::try_parse_from(args).expect("parses");
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let error = serve.auth.validate().expect_err("short key");
        assert!(
            error.contains("MOVIEAPP_TOKEN_SIGNING_KEY") && error.contains("at least 32 bytes"),
            "{error}"
        );
        assert!(
            !error.contains("short-secret"),
            "the key itself is not echoed: {error}"
        );
    }
}
