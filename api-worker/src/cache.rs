//! The two cache layers for TMDB answers: a bounded in-process map and the
//! movies table (key `movie#<id>`, `popular#<page>`, `search#<query>#<page>`,
//! TTL attribute from `movieapp-model`).
//!
//! An entry is *fresh* for the kind's TTL and then *stale*: a stale entry is
//! refreshed from TMDB but still served when TMDB fails. DynamoDB removes it
//! (via `expiresAt`) after the keep period; until its sweeper runs, reads
//! ignore expired items themselves.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Bytes;
use movieapp_model::MOVIES;

use crate::clock::now_epoch;
use crate::config::CacheSettings;

/// What a cache entry holds, a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A bounded map; when full, it drops expired entries, then an arbitrary
/// eighth, which is cheap and good enough for a cache in front of a cache.
#[derive(Debug)]
pub struct MemoryCache {
    entries: RwLock<HashMap<String, Entry>>,
    capacity: usize,
}

impl MemoryCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: &str, entry: Entry, keep: Duration) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let now = now_epoch();
            entries.retain(|_, e| e.age(now) < keep);
            if entries.len() >= self.capacity {
                let drop: Vec<String> = entries
                    .keys()
                    .take(self.capacity.div_ceil(8))
                    .cloned()
                    .collect();
                for key in drop {
                    entries.remove(&key);
                }
            }
        }
        entries.insert(key.to_owned(), entry);
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const BODY: &str = "body";
const FETCHED_AT: &str = "fetchedAt";

/// Both layers and the freshness rules.
#[derive(Debug)]
pub struct MovieCache {
    memory: MemoryCache,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    settings: CacheSettings,
}

impl MovieCache {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, table: String, settings: CacheSettings) -> Self {
        Self {
            memory: MemoryCache::new(settings.cache_memory_entries),
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

    pub fn memory(&self, key: &CacheKey) -> Option<Entry> {
        self.memory
            .get(&key.key)
            .filter(|e| self.is_kept(e, now_epoch()))
    }

    pub fn remember(&self, key: &CacheKey, entry: Entry) {
        self.memory.put(&key.key, entry, self.settings.cache_keep);
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
        self.remember(key, entry.clone());
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

    fn entry(fetched_at: u64) -> Entry {
        Entry {
            body: Bytes::from_static(b"{}"),
            fetched_at,
        }
    }

    #[test]
    fn keys_follow_the_table_layout() {
        assert_eq!(CacheKey::movie(550).key, "movie#550");
        assert_eq!(CacheKey::popular(2).key, "popular#2");
        assert_eq!(CacheKey::search("fight club", 1).key, "search#fight club#1");
    }

    #[test]
    fn memory_cache_stays_within_capacity() {
        let cache = MemoryCache::new(16);
        let now = now_epoch();
        for i in 0..100 {
            cache.put(&format!("k{i}"), entry(now), Duration::from_secs(60));
            assert!(cache.len() <= 16);
        }
        assert!(cache.get("k99").is_some(), "the newest entry is kept");
    }

    #[test]
    fn memory_cache_evicts_expired_entries_first() {
        let cache = MemoryCache::new(2);
        let now = now_epoch();
        cache.put("old", entry(now - 120), Duration::from_secs(60));
        cache.put("new", entry(now), Duration::from_secs(60));
        cache.put("newer", entry(now), Duration::from_secs(60));
        assert!(cache.get("old").is_none());
        assert!(cache.get("new").is_some() && cache.get("newer").is_some());
    }
}
