//! The fence: until when this replica may act on behalf of the MovieApps it
//! reconciles. The election opens and extends it ([`crate::leader`]); the
//! lifecycle ends the term when it closes.
//!
//! The deadline is an instant of the monotonic clock, so a process that was
//! paused (SIGSTOP, a long stall) finds it passed when it resumes.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

/// Whether, and until when, this replica may act. Clones share the state.
#[derive(Debug, Clone)]
pub struct Fence {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No leader election: always open.
    Unbounded,
    /// Open before this instant.
    Until(Instant),
    /// Closed for good.
    Closed,
}

/// The error of a request refused by a closed fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "request refused: this replica does not hold a valid leader Lease (any more), so it must not act"
)]
pub struct Fenced;

impl Fence {
    /// A fence that never closes, for a replica without leader election.
    pub fn unbounded() -> Self {
        Self::with(State::Unbounded)
    }

    /// A fence open until `deadline`: a new term as leader.
    pub fn until(deadline: Instant) -> Self {
        Self::with(State::Until(deadline))
    }

    fn with(state: State) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the deadline to `deadline` (a renewal): never backwards, and
    /// never reopening a closed fence.
    pub fn extend(&self, deadline: Instant) {
        let mut state = self.state();
        if let State::Until(current) = *state
            && deadline > current
        {
            *state = State::Until(deadline);
        }
    }

    /// Closes the fence for good.
    pub fn close(&self) {
        *self.state() = State::Closed;
    }

    /// The deadline, while the fence is bounded and not closed.
    pub fn deadline(&self) -> Option<Instant> {
        match *self.state() {
            State::Until(deadline) => Some(deadline),
            State::Unbounded | State::Closed => None,
        }
    }

    /// `Ok` while this replica may act: not closed and, by the monotonic
    /// clock, before the deadline.
    pub fn check(&self) -> Result<(), Fenced> {
        match *self.state() {
            State::Unbounded => Ok(()),
            State::Until(deadline) if Instant::now() < deadline => Ok(()),
            State::Until(_) | State::Closed => Err(Fenced),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fence_is_open_until_its_deadline_by_the_monotonic_clock() {
        let fence = Fence::until(Instant::now() + Duration::from_secs(10));
        assert_eq!(fence.check(), Ok(()));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(fence.check(), Ok(()));
        fence.extend(Instant::now() + Duration::from_secs(10));
        fence.extend(Instant::now());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(fence.check(), Ok(()), "extended, and never moved back");
        // A pause: the process resumes past its deadline.
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(fence.check(), Err(Fenced));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_fence_stays_closed() {
        let fence = Fence::until(Instant::now() + Duration::from_secs(10));
        let clone = fence.clone();
        clone.close();
        assert_eq!(fence.check(), Err(Fenced));
        fence.extend(Instant::now() + Duration::from_secs(60));
        assert_eq!(fence.check(), Err(Fenced));
        assert_eq!(fence.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unbounded_fence_never_closes_by_itself() {
        let fence = Fence::unbounded();
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert_eq!(fence.check(), Ok(()));
        assert_eq!(fence.deadline(), None);
    }
}
