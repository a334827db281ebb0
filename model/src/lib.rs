//! The contract between `movieapp-operator` and `api-worker`.
//!
//! The operator creates the DynamoDB tables, the SQS queues and the SNS topic
//! described here and passes their physical names to the worker through the
//! environment variables named in [`env`]. Both sides read this one crate, so
//! a key name, an index or a variable can never disagree between them.
//!
//! The layout is explained in `docs/data-model.md`.

pub mod iam;

/// A DynamoDB attribute type, as it appears in `AttributeDefinitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// `S`
    String,
    /// `N`
    Number,
}

impl AttrType {
    /// The DynamoDB scalar type code.
    pub const fn code(self) -> &'static str {
        match self {
            AttrType::String => "S",
            AttrType::Number => "N",
        }
    }
}

/// A key attribute: its name and scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyAttr {
    pub name: &'static str,
    pub kind: AttrType,
}

/// A global secondary index. Every index projects all attributes, so a query
/// on it never needs a second read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Index {
    pub name: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
}

/// One DynamoDB table of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table {
    /// The component name: part of the physical name and of status.
    pub component: &'static str,
    /// The variable through which the worker learns the physical name.
    pub env_var: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
    pub indexes: &'static [Index],
    /// The attribute holding an expiry time in epoch seconds, if items expire.
    pub ttl_attribute: Option<&'static str>,
}

impl Table {
    /// Every attribute that must be declared in `AttributeDefinitions`:
    /// the table's keys and its indexes' keys, each once, in a stable order.
    pub fn key_attributes(&self) -> Vec<KeyAttr> {
        let mut attrs: Vec<KeyAttr> = Vec::new();
        let candidates = [Some(self.partition_key), self.sort_key]
            .into_iter()
            .chain(
                self.indexes
                    .iter()
                    .flat_map(|index| [Some(index.partition_key), index.sort_key]),
            )
            .flatten();
        for attr in candidates {
            if !attrs.iter().any(|known| known.name == attr.name) {
                attrs.push(attr);
            }
        }
        attrs
    }
}

/// Users and their login identities.
///
/// Items are either a profile (`id = "user#<uuid>"`) or an e-mail claim
/// (`id = "email#<normalised address>"`, holding `userId`). Sign-up writes
/// both in one transaction guarded by `attribute_not_exists(id)`, so an
/// address can belong to one account only, with strongly consistent reads and
/// no index.
pub const USERS: Table = Table {
    component: "users",
    env_var: env::USERS_TABLE,
    partition_key: KeyAttr {
        name: "id",
        kind: AttrType::String,
    },
    sort_key: None,
    indexes: &[],
    ttl_attribute: None,
};

/// The TMDB cache: movie details, popular pages and search pages.
///
/// Keys are `movie#<tmdb id>`, `popular#<page>` and `search#<query>#<page>`;
/// items carry `expiresAt` so DynamoDB drops them once stale beyond use.
pub const MOVIES: Table = Table {
    component: "movies",
    env_var: env::MOVIES_TABLE,
    partition_key: KeyAttr {
        name: "key",
        kind: AttrType::String,
    },
    sort_key: None,
    indexes: &[],
    ttl_attribute: Some("expiresAt"),
};

/// Watchlist entries: one item per (user, movie).
///
/// The `by-movie` index answers "who watches this movie?", which the
/// refresh-movie job needs to notify the right people.
pub const WATCHLISTS: Table = Table {
    component: "watchlists",
    env_var: env::WATCHLISTS_TABLE,
    partition_key: KeyAttr {
        name: "userId",
        kind: AttrType::String,
    },
    sort_key: Some(KeyAttr {
        name: "movieId",
        kind: AttrType::Number,
    }),
    indexes: &[WATCHLISTS_BY_MOVIE],
    ttl_attribute: None,
};

/// The index of [`WATCHLISTS`] keyed by movie.
pub const WATCHLISTS_BY_MOVIE: Index = Index {
    name: "by-movie",
    partition_key: KeyAttr {
        name: "movieId",
        kind: AttrType::Number,
    },
    sort_key: Some(KeyAttr {
        name: "userId",
        kind: AttrType::String,
    }),
};

/// Every table, in the order the operator reports them.
pub const TABLES: [Table; 3] = [USERS, MOVIES, WATCHLISTS];

/// Names of the environment variables the operator sets on the worker
/// (through the generated ConfigMap and the TMDB Secret).
pub mod env {
    /// Physical name of the [`USERS`](super::USERS) table.
    pub const USERS_TABLE: &str = "MOVIEAPP_USERS_TABLE";
    /// Physical name of the [`MOVIES`](super::MOVIES) table.
    pub const MOVIES_TABLE: &str = "MOVIEAPP_MOVIES_TABLE";
    /// Physical name of the [`WATCHLISTS`](super::WATCHLISTS) table.
    pub const WATCHLISTS_TABLE: &str = "MOVIEAPP_WATCHLISTS_TABLE";
    /// URL of the SQS jobs queue.
    pub const JOBS_QUEUE_URL: &str = "MOVIEAPP_JOBS_QUEUE_URL";
    /// ARN of the SNS notifications topic.
    pub const NOTIFICATIONS_TOPIC_ARN: &str = "MOVIEAPP_NOTIFICATIONS_TOPIC_ARN";
    /// AWS region of every resource above (the SDK's own variable).
    pub const AWS_REGION: &str = "AWS_REGION";
    /// Endpoint override for every AWS client (moto, LocalStack); the SDK's own variable.
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    /// Base URL of the TMDB API (`https://api.themoviedb.org` in production).
    pub const TMDB_BASE_URL: &str = "TMDB_BASE_URL";
    /// TMDB API key (v3 key or v4 bearer token), from the referenced Secret.
    pub const TMDB_API_KEY: &str = "TMDB_API_KEY";
    /// Key used to sign login tokens, from a Secret.
    pub const TOKEN_SIGNING_KEY: &str = "MOVIEAPP_TOKEN_SIGNING_KEY";
    /// Port the HTTP server listens on.
    pub const PORT: &str = "PORT";
    /// Address of the admin listener (`/metrics`, the detailed `/readyz`).
    pub const ADMIN_ADDR: &str = "ADMIN_ADDR";
    /// Address ranges of the proxies in front of the worker (comma-separated
    /// CIDRs): only their forwarded header is believed.
    pub const TRUSTED_PROXIES: &str = "MOVIEAPP_TRUSTED_PROXIES";
    /// The header those proxies append the client's address to.
    pub const FORWARDED_HEADER: &str = "MOVIEAPP_FORWARDED_HEADER";
}

/// Durations as both binaries read them from flags and variables.
pub mod duration {
    use std::time::Duration;

    /// Parses `250ms`, `30s`, `15m`, `6h`, `7d`, combinations such as
    /// `1h 30m`, or plain seconds (`45`).
    pub fn parse(input: &str) -> Result<Duration, String> {
        let input = input.trim();
        if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
            return input
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| format!("{input:?} is too large a number of seconds"));
        }
        humantime::parse_duration(input).map_err(|error| {
            format!("{input:?} is not a duration such as 500ms, 30s, 15m, 6h or 7d ({error})")
        })
    }
}

/// The worker's HTTP paths the operator points probes at.
pub mod http {
    /// Liveness: the process is up.
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness: dependencies are reachable.
    pub const READYZ: &str = "/readyz";
    /// Prometheus metrics (admin listener only).
    pub const METRICS: &str = "/metrics";
    /// The admin listener's port in the worker's Pods.
    pub const ADMIN_PORT: u16 = 9090;
    /// The proxies the operator tells every worker to trust: the private
    /// address ranges, where the NLB and the VPC link of the shipped edge
    /// live. A client on the internet cannot send from them, so its
    /// forwarded header is never believed; a MovieApp narrows the list with
    /// `spec.worker.env` (`MOVIEAPP_TRUSTED_PROXIES`).
    pub const TRUSTED_PROXIES: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";
}

/// Job message types on the jobs queue (the `type` field of the JSON body).
pub mod jobs {
    /// Re-fetch one movie's details and notify watchers of changes.
    pub const REFRESH_MOVIE: &str = "refresh-movie";
    /// Re-fetch the first pages of popular movies into the cache.
    pub const WARM_POPULAR: &str = "warm-popular";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_or_as_seconds() {
        use std::time::Duration;
        assert_eq!(duration::parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration::parse(" 45 "), Ok(Duration::from_secs(45)));
        assert_eq!(duration::parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration::parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration::parse("7d"), Ok(Duration::from_secs(604_800)));
        for bad in [
            "",
            "soon",
            "5 minutes later",
            "5y!",
            "m",
            "-5s",
            "99999999999999999999999",
        ] {
            let error = duration::parse(bad).expect_err(bad);
            assert!(error.contains(bad.trim()), "{error}");
        }
    }

    #[test]
    fn key_attributes_are_declared_once_in_order() {
        let names: Vec<_> = WATCHLISTS.key_attributes().iter().map(|a| a.name).collect();
        assert_eq!(names, ["userId", "movieId"]);
        let names: Vec<_> = USERS.key_attributes().iter().map(|a| a.name).collect();
        assert_eq!(names, ["id"]);
    }

    #[test]
    fn every_table_has_a_distinct_component_and_variable() {
        for (i, a) in TABLES.iter().enumerate() {
            for b in &TABLES[i + 1..] {
                assert_ne!(a.component, b.component);
                assert_ne!(a.env_var, b.env_var);
            }
        }
    }

    #[test]
    fn index_keys_use_consistent_types() {
        for table in TABLES {
            let attrs = table.key_attributes();
            for index in table.indexes {
                for key in [Some(index.partition_key), index.sort_key]
                    .into_iter()
                    .flatten()
                {
                    let declared = attrs.iter().find(|a| a.name == key.name);
                    assert_eq!(declared.map(|a| a.kind), Some(key.kind), "{}", key.name);
                }
            }
        }
    }
}
