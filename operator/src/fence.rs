//! The fence: until when this replica may send requests on behalf of the
//! MovieApps it reconciles. Every AWS request (in [`crate::aws`], right
//! before it leaves) and every Kubernetes request of the controllers
//! ([`kube_client`]) checks it; the election opens and extends it
//! ([`crate::leader`]), and its own Lease client is the only one not fenced.
//!
//! The deadline is an instant of the monotonic clock, so a process that was
//! paused (SIGSTOP, a long stall) finds it passed when it resumes, and sends
//! nothing before it has confirmed it still leads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use kube::client::retry::RetryPolicy;
use tokio::time::Instant;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;
use tower::{BoxError, Layer, Service};

use crate::metrics::Metrics;

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

/// Whether `error`, or any error it wraps, is a [`Fenced`] refusal.
pub fn is_fenced(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<Fenced>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// A Kubernetes client whose every request passes `fence` first, retries
/// included: kube's own retry of 429/503/504 answers (up to 15 times, with
/// a growing backoff) is moved outside the fence, so a request refused
/// earlier cannot be sent later, after the deadline.
pub fn kube_client(
    config: &kube::Config,
    fence: Fence,
    metrics: Metrics,
) -> Result<kube::Client, kube::Error> {
    let mut config = config.clone();
    let retry = std::mem::replace(&mut config.default_retry, false);
    let builder = kube::client::ClientBuilder::try_from(config)?
        // The retry layer clones the service it wraps; kube's is boxed.
        .with_layer(&BufferLayer::new(1024))
        .with_layer(&FenceLayer { fence, metrics });
    Ok(if retry {
        builder
            .with_layer(&RetryLayer::new(RetryPolicy::server_retry()))
            .build()
    } else {
        builder.build()
    })
}

/// A tower layer refusing every request while the fence is closed.
#[derive(Debug, Clone)]
pub struct FenceLayer {
    fence: Fence,
    metrics: Metrics,
}

impl<S> Layer<S> for FenceLayer {
    type Service = FencedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FencedService {
            inner,
            fence: self.fence.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`FenceLayer`].
#[derive(Debug, Clone)]
pub struct FencedService<S> {
    inner: S,
    fence: Fence,
    metrics: Metrics,
}

impl<S, Request> Service<Request> for FencedService<S>
where
    S: Service<Request>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Checked when the request is handed to the connection, the last
        // moment this code sees it.
        if let Err(fenced) = self.fence.check() {
            self.metrics.fenced_request("kubernetes");
            return Box::pin(std::future::ready(Err(fenced.into())));
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
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

    #[tokio::test(start_paused = true)]
    async fn the_layer_refuses_every_request_once_the_deadline_passed() {
        use tower::ServiceExt;

        let metrics = Metrics::new();
        let fence = Fence::until(Instant::now() + Duration::from_secs(10));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = {
            let calls = calls.clone();
            tower::service_fn(move |request: &'static str| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move { Ok::<_, std::convert::Infallible>(request) }
            })
        };
        let service = FenceLayer {
            fence: fence.clone(),
            metrics: metrics.clone(),
        }
        .layer(inner);
        assert_eq!(
            service.clone().oneshot("GET").await.ok(),
            Some("GET"),
            "open"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        for request in ["GET", "PATCH", "DELETE"] {
            let error = service
                .clone()
                .oneshot(request)
                .await
                .expect_err("refused past the deadline");
            assert!(is_fenced(error.as_ref()), "{error}");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        let text = metrics.render().unwrap_or_default();
        assert!(
            text.contains("movieapp_fenced_requests_total{client=\"kubernetes\"} 3"),
            "{text}"
        );
    }
}
