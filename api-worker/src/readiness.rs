//! The memo behind `/readyz`: probes come every few seconds from every
//! kubelet, so the dependency check runs at most once per [`READINESS_MEMO`].

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const READINESS_MEMO: Duration = Duration::from_secs(5);

/// The last check's time and outcome (`Err` names what is unreachable).
#[derive(Debug, Default)]
pub struct Readiness(Mutex<Option<(Instant, Result<(), String>)>>);

impl Readiness {
    /// The remembered outcome while it is recent, else `check`'s.
    pub async fn get_or_check(
        &self,
        check: impl Future<Output = Result<(), String>>,
    ) -> Result<(), String> {
        let memo = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((at, result)) = memo
            && at.elapsed() < READINESS_MEMO
        {
            return result;
        }
        let result = check.await;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recent_outcome_is_reused() {
        let readiness = Readiness::default();
        assert_eq!(
            readiness.get_or_check(async { Err("down".into()) }).await,
            Err("down".into())
        );
        assert_eq!(
            readiness.get_or_check(async { Ok(()) }).await,
            Err("down".into()),
            "within the memo the first outcome stands"
        );
    }
}
