//! The two cache layers for TMDB answers: an in-process cache bounded in
//! bytes and the movies table (key `movie#<id>`, `popular#<page>`,
//! `search#<query>#<page>`, TTL attribute from `movieapp-model`).
//!
//! An entry is *fresh* for the kind's TTL and then *stale*: a stale entry is
//! refreshed from TMDB but still served when TMDB fails. The memory layer
//! holds fresh entries only (each expires when it goes stale); stale copies
//! come from the table, which DynamoDB empties (via `expiresAt`) after the
//! keep period; until its sweeper runs, reads ignore expired items
//! themselves. Concurrent misses for one key share one load
//! ([`MovieCache::load`]), so they make one TMDB call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Bytes;
use movieapp_model::MOVIES;

use crate::clock::now_epoch;
use crate::config::CacheSettings;

/// What a cache entry holds, a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Movie,
    Popular,
    Search,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Movie => "movie",
            Self::Popular => "popular",
            Self::Search => "search",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub kind: Kind,
    pub key: String,
}

impl CacheKey {
    pub fn movie(id: u64) -> Self {
        Self {
            kind: Kind::Movie,
            key: format!("movie#{id}"),
        }
    }
    pub fn popular(page: u32) -> Self {
        Self {
            kind: Kind::Popular,
            key: format!("popular#{page}"),
        }
    }
    /// `query` must already be normalised (see `movies::normalise_query`).
    pub fn search(query: &str, page: u32) -> Self {
        Self {
            kind: Kind::Search,
            key: format!("search#{query}#{page}"),
        }
    }
}

/// A cached response body (our JSON, ready to send) and when it was fetched.
#[derive(Debug, Clone)]
pub struct Entry {
    pub body: Bytes,
    pub fetched_at: u64,
}

impl Entry {
    pub fn age(&self, now: u64) -> Duration {
        Duration::from_secs(now.saturating_sub(self.fetched_at))
    }
}

/// What one memory entry costs besides its key and body: moka's own
/// bookkeeping, the `Bytes` and `String` headers (an estimate that errs high).
const ENTRY_OVERHEAD: usize = 256;

fn weight(key: &CacheKey, entry: &Entry) -> u32 {
    u32::try_from(key.key.len() + entry.body.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

/// How long each kind stays fresh.
#[derive(Debug, Clone, Copy)]
struct Freshness {
    details: Duration,
    lists: Duration,
}

impl Freshness {
    fn of(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Movie => self.details,
            Kind::Popular | Kind::Search => self.lists,
        }
    }
}

impl moka::Expiry<CacheKey, Entry> for Freshness {
    fn expire_after_create(
        &self,
        key: &CacheKey,
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.of(key.kind).saturating_sub(entry.age(now_epoch())))
    }
}

/// The memory layer: fresh entries only, at most `max_bytes` of them by
/// weight. moka admits a new entry over an old one by how often each was
/// asked for (TinyLFU), so a flood of one-off searches does not push out
/// the entries that are read again and again.
pub fn memory_cache(
    settings: &CacheSettings,
    max_bytes: u64,
) -> moka::future::Cache<CacheKey, Entry> {
    moka::future::Cache::builder()
        .max_capacity(max_bytes)
        .weigher(weight)
        .expire_after(Freshness {
            details: settings.cache_details_ttl,
            lists: settings.cache_lists_ttl,
        })
        .build()
}

const BODY: &str = "body";
const FETCHED_AT: &str = "fetchedAt";

/// Both layers and the freshness rules.
#[derive(Debug)]
pub struct MovieCache {
    memory: moka::future::Cache<CacheKey, Entry>,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    settings: CacheSettings,
}

impl MovieCache {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, table: String, settings: CacheSettings) -> Self {
        Self {
            memory: memory_cache(&settings, settings.cache_memory_mib.saturating_mul(1 << 20)),
            dynamo,
            table,
            settings,
        }
    }

    pub fn fresh_for(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Movie => self.settings.cache_details_ttl,
            Kind::Popular | Kind::Search => self.settings.cache_lists_ttl,
        }
    }

    pub fn is_fresh(&self, key: &CacheKey, entry: &Entry, now: u64) -> bool {
        entry.age(now) < self.fresh_for(key.kind)
    }

    fn is_kept(&self, entry: &Entry, now: u64) -> bool {
        entry.age(now) < self.settings.cache_keep
    }

    /// A fresh entry from memory.
    pub async fn memory(&self, key: &CacheKey) -> Option<Entry> {
        self.memory.get(key).await
    }

    /// Keeps `entry` in memory while it is fresh.
    pub async fn remember(&self, key: &CacheKey, entry: Entry) {
        self.memory.insert(key.clone(), entry).await;
    }

    /// The fresh entry for `key` from memory, or from `load`, which runs
    /// once for all concurrent callers: the others wait for its result
    /// (an `Ok` is kept in memory, an `Err` is shared and not kept). The
    /// flag says whether this caller's `load` ran.
    pub async fn load<E>(
        &self,
        key: &CacheKey,
        load: impl Future<Output = Result<Entry, E>>,
    ) -> Result<(Entry, bool), Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let entry = self
            .memory
            .entry_by_ref(key)
            .or_try_insert_with(load)
            .await?;
        let loaded_here = entry.is_fresh();
        Ok((entry.into_value(), loaded_here))
    }

    /// Bytes the memory layer holds by its weigher (after pending
    /// maintenance), and its entry count.
    pub async fn memory_usage(&self) -> (u64, u64) {
        self.memory.run_pending_tasks().await;
        (self.memory.weighted_size(), self.memory.entry_count())
    }

    /// Reads the DynamoDB layer; expired items count as absent.
    pub async fn stored(&self, key: &CacheKey) -> anyhow::Result<Option<Entry>> {
        let output = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key(
                MOVIES.partition_key.name,
                AttributeValue::S(key.key.clone()),
            )
            .send()
            .await
            .context("reading the movies cache table")?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let body = item.get(BODY).and_then(|v| v.as_s().ok());
        let fetched_at = item
            .get(FETCHED_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        let (Some(body), Some(fetched_at)) = (body, fetched_at) else {
            tracing::warn!(key = %key.key, "ignoring a malformed movies cache item");
            return Ok(None);
        };
        let entry = Entry {
            body: Bytes::from(body.clone()),
            fetched_at,
        };
        Ok(self.is_kept(&entry, now_epoch()).then_some(entry))
    }

    /// Writes both layers.
    pub async fn store(&self, key: &CacheKey, entry: Entry) -> anyhow::Result<()> {
        self.remember(key, entry.clone()).await;
        self.persist(key, &entry).await
    }

    /// Writes the DynamoDB layer.
    pub async fn persist(&self, key: &CacheKey, entry: &Entry) -> anyhow::Result<()> {
        let body = String::from_utf8(entry.body.to_vec()).context("cache bodies are UTF-8 JSON")?;
        let expires_at = entry.fetched_at + self.settings.cache_keep.as_secs();
        let ttl_attribute = MOVIES.ttl_attribute.unwrap_or("expiresAt");
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .item(
                MOVIES.partition_key.name,
                AttributeValue::S(key.key.clone()),
            )
            .item(BODY, AttributeValue::S(body))
            .item(FETCHED_AT, AttributeValue::N(entry.fetched_at.to_string()))
            .item(ttl_attribute, AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .context("writing the movies cache table")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: usize, fetched_at: u64) -> Entry {
        Entry {
            body: Bytes::from(vec![b'x'; size]),
            fetched_at,
        }
    }

    fn settings() -> CacheSettings {
        CacheSettings {
            cache_details_ttl: Duration::from_secs(3600),
            cache_lists_ttl: Duration::from_secs(60),
            cache_keep: Duration::from_secs(86_400),
            cache_memory_mib: 1,
        }
    }

    #[test]
    fn keys_follow_the_table_layout() {
        assert_eq!(CacheKey::movie(550).key, "movie#550");
        assert_eq!(CacheKey::popular(2).key, "popular#2");
        assert_eq!(CacheKey::search("fight club", 1).key, "search#fight club#1");
    }

    #[tokio::test]
    async fn memory_is_bounded_by_bytes_not_entries() {
        let max_bytes = 1 << 20;
        let memory = memory_cache(&settings(), max_bytes);
        let now = now_epoch();
        let popular = CacheKey::movie(550);
        memory.insert(popular.clone(), entry(15_000, now)).await;
        // 2,000 distinct searches of 15 KB: about 30 MB offered to a 1 MiB
        // cache, each seen once, as a flood of unique queries would be;
        // meanwhile one entry is read often.
        for i in 0..2000 {
            memory
                .insert(CacheKey::search(&format!("q{i}"), 1), entry(15_000, now))
                .await;
            assert!(memory.get(&popular).await.is_some(), "after {i} searches");
        }
        memory.run_pending_tasks().await;
        let (bytes, entries) = (memory.weighted_size(), memory.entry_count());
        assert!(bytes <= max_bytes, "{bytes} bytes held");
        assert!(entries <= max_bytes / 15_000, "{entries} entries");
    }

    #[tokio::test]
    async fn stale_entries_are_not_kept_in_memory() {
        let memory = memory_cache(&settings(), 1 << 20);
        let now = now_epoch();
        memory
            .insert(CacheKey::popular(1), entry(10, now - 120))
            .await;
        memory
            .insert(CacheKey::movie(1), entry(10, now - 120))
            .await;
        assert!(
            memory.get(&CacheKey::popular(1)).await.is_none(),
            "lists are fresh for 60 s"
        );
        assert!(
            memory.get(&CacheKey::movie(1)).await.is_some(),
            "details for an hour"
        );
    }
}
