//! A deadline timer kept across waits and moved only when it must: a later deadline
//! leaves the armed timer as it is (it is re-armed when it fires early), so a wait that
//! ends before its deadline, as nearly every one does, costs no work in the timer wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A reusable timer for one wait at a time.
#[derive(Debug)]
pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
}

impl Default for Deadline {
    fn default() -> Self {
        // Never armed until a wait needs it (far enough not to fire by itself).
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        Deadline {
            sleep: Box::pin(tokio::time::sleep_until(far)),
        }
    }
}

impl Deadline {
    /// Polled by a wait that is pending: ready once `deadline` has passed.
    pub fn poll_passed(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        // The wheel rounds up to its next tick: a deadline already past is seen here.
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        if deadline < self.sleep.deadline() {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // It fired: at this deadline, or at an earlier one since moved later.
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One poll of the timer for `deadline`.
    async fn once(timer: &mut Deadline, deadline: Instant) -> Poll<()> {
        std::future::poll_fn(|cx| Poll::Ready(timer.poll_passed(deadline, cx))).await
    }

    #[tokio::test]
    async fn a_timer_that_fired_for_an_earlier_deadline_does_not_end_a_later_wait() {
        let mut timer = Deadline::default();
        let first = Instant::now() + Duration::from_millis(20);
        std::future::poll_fn(|cx| timer.poll_passed(first, cx)).await;
        assert!(Instant::now() >= first);
        // The armed timer has fired; a wait for an hour from now is still pending.
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(once(&mut timer, later).await.is_pending());
    }

    #[tokio::test]
    async fn a_deadline_earlier_than_the_armed_one_is_kept() {
        let mut timer = Deadline::default();
        assert!(
            once(&mut timer, Instant::now() + Duration::from_secs(3600))
                .await
                .is_pending()
        );
        // Armed an hour ahead: a deadline already past must still be seen as passed.
        assert!(once(&mut timer, Instant::now()).await.is_ready());
    }
}
