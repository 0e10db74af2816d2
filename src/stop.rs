//! The one stop signal of `run` and `fuzz`: Ctrl-C sets it, and so does a campaign whose target
//! stopped answering. Case runs wait on it; campaign workers poll it before each request (a
//! load, so the hot path stays cheap). Whoever stops, what finished is still reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A cloneable stop flag that can also be awaited.
#[derive(Clone, Default)]
pub struct StopSignal(Arc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything that honours this signal to stop; idempotent.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Relaxed)
    }

    /// Resolves once [`StopSignal::stop`] was called (at once if it already was).
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a stop between the two is not missed.
            notified.as_mut().enable();
            if self.0.stopped.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StopSignal")
            .field(&self.is_stopped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::StopSignal;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_wakes_on_stop_and_a_late_one_returns_at_once() {
        let stop = StopSignal::new();
        assert!(!stop.is_stopped());
        let waiter = tokio::spawn({
            let s = stop.clone();
            async move { s.stopped().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "woke before the stop");
        stop.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .expect("no panic");
        assert!(stop.is_stopped());
        tokio::time::timeout(Duration::from_secs(5), stop.stopped())
            .await
            .expect("an already stopped signal resolves at once");
    }
}
