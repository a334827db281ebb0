//! Flags of `movieapp-operator run`, each mirrored by an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::crd::REGION_PATTERN;

/// How the controller runs.
#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    /// Namespaces to watch (comma-separated); all namespaces when empty.
    #[arg(long, env = "MOVIEAPP_WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Endpoint for every AWS client (moto, LocalStack). Real AWS when unset.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_parser = parse_endpoint)]
    pub aws_endpoint_url: Option<String>,

    /// TMDB base URL given to the workers (the public API when unset).
    #[arg(long, env = "MOVIEAPP_WORKER_TMDB_BASE_URL", value_parser = parse_endpoint)]
    pub worker_tmdb_base_url: Option<String>,

    /// Region of MovieApps that do not set `spec.region`.
    #[arg(long, env = "MOVIEAPP_DEFAULT_REGION", default_value = "us-east-1", value_parser = parse_region)]
    pub default_region: String,

    /// How often every MovieApp is re-read from AWS and repaired (e.g. 5m, 30s).
    #[arg(long, env = "MOVIEAPP_RESYNC_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// MovieApps reconciled at the same time.
    #[arg(long, env = "MOVIEAPP_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Upper bound on AWS requests per second, across all MovieApps.
    #[arg(long, env = "MOVIEAPP_AWS_MAX_RPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub aws_max_rps: u32,

    /// Run only while holding the leader Lease (for more than one replica).
    #[arg(long, env = "MOVIEAPP_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Namespace of the leader Lease; defaults to the Pod's namespace.
    #[arg(long, env = "MOVIEAPP_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "MOVIEAPP_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "MOVIEAPP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `90s`, `5m`, `1h`, or plain seconds (the parser the api-worker
/// uses too), with a minimum of one second.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let duration = movieapp_model::duration::parse(input)?;
    if duration < Duration::from_secs(1) {
        return Err(format!(
            "'{}' is too short: the minimum is 1s",
            input.trim()
        ));
    }
    Ok(duration)
}

fn parse_region(input: &str) -> Result<String, String> {
    if region_is_valid(input) {
        Ok(input.to_owned())
    } else {
        Err(format!(
            "'{input}' is not an AWS region name such as us-east-1"
        ))
    }
}

/// Whether `input` matches [`REGION_PATTERN`] (checked without a regex engine).
pub fn region_is_valid(input: &str) -> bool {
    // ^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$
    let _ = REGION_PATTERN;
    let parts: Vec<&str> = input.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase());
    let number = |s: &str| (1..=2).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit());
    match parts.as_slice() {
        [country, area, n] => country.len() == 2 && lower(country) && lower(area) && number(n),
        [country, partition, area, n] => {
            country.len() == 2
                && lower(country)
                && (*partition == "gov"
                    || partition.strip_prefix("iso").is_some_and(|rest| {
                        rest.len() <= 1 && rest.chars().all(|c| c.is_ascii_lowercase())
                    }))
                && lower(area)
                && number(n)
        }
        _ => false,
    }
}

fn parse_endpoint(input: &str) -> Result<String, String> {
    if input.starts_with("http://") || input.starts_with("https://") {
        Ok(input.trim_end_matches('/').to_owned())
    } else {
        Err(format!("'{input}' is not an http(s) URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("500ms").is_err(), "below the minimum");
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "us-isob-east-1",
        ] {
            assert!(region_is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "useast1",
            "us-east-123",
            "u-east-1",
            "us-foo-east-1",
        ] {
            assert!(!region_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000/"),
            Ok("http://127.0.0.1:5000".to_owned())
        );
        assert!(parse_endpoint("127.0.0.1:5000").is_err());
    }
}
