//! Writes about one key in one process taking turns: DynamoDB evaluates a
//! condition and its write atomically, but two writes of one process need
//! not race for it (and moto, the local stand-in, does not evaluate them
//! atomically). Striped, so the locks never grow with the keys.

use std::hash::{BuildHasher, RandomState};

const STRIPES: usize = 64;

#[derive(Debug)]
pub struct Turns {
    hasher: RandomState,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl Turns {
    /// Waits for `key`'s turn; it lasts as long as the guard.
    pub async fn take(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (self.hasher.hash_one(key) % STRIPES as u64) as usize;
        self.stripes[stripe].lock().await
    }
}
