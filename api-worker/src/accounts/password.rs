//! Password hashing: argon2id on the blocking pool, a bounded number at
//! once since each hash holds its memory cost.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::error::{AppError, Result};

#[derive(Debug)]
pub struct Passwords {
    params: Params,
    /// Each hash holds `memory_kib` of memory: bound how many run at once.
    hashing: Arc<Semaphore>,
    /// Verified against when an address is unknown, so both paths cost the same.
    dummy_hash: OnceCell<String>,
}

impl Passwords {
    pub fn new(memory_kib: u32, iterations: u32) -> Self {
        let params = Params::new(memory_kib.max(Params::MIN_M_COST), iterations, 1, None)
            .unwrap_or_default();
        let hashing = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        Self {
            params,
            hashing: Arc::new(Semaphore::new(hashing)),
            dummy_hash: OnceCell::new(),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        let _permit = self.hashing.acquire().await.map_err(AppError::internal)?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::internal(anyhow::anyhow!("hashing a password: {e}")))
    }

    pub async fn verify(&self, password: String, hash: String) -> Result<bool> {
        let _permit = self.hashing.acquire().await.map_err(AppError::internal)?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            argon2
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .map_err(AppError::internal)
    }

    /// A hash of no one's password, made once: what an unknown address's
    /// login is verified against.
    pub async fn dummy_hash(&self) -> Result<String> {
        self.dummy_hash
            .get_or_try_init(|| self.hash("not a password of anyone".into()))
            .await
            .cloned()
    }
}
