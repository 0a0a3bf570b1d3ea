//! Several futures driven by one task, each polled only when its own waker fired.
//!
//! A websocket connection is three cooperating futures — the socket reader, the socket
//! writer and the application — that wake each other for every message. In separate tasks
//! each wake-up is a trip through the scheduler; in one task with `FuturesUnordered` or
//! `select!`, a wake-up from one part to another while the task is running counts as the
//! task waking itself, which tokio treats as a yield: the task goes to the back of the run
//! queue and an idle worker thread is unparked to steal it. Here a part woken while the
//! task is polling is simply polled again in the same pass; the task's own waker is used
//! only for wake-ups from outside (the socket, timers, other tasks).
//!
//! Nothing in `futures` or `tokio` does exactly this (`FuturesUnordered` wakes its parent
//! on every child wake-up), so it is written here.
#![deny(clippy::arithmetic_side_effects)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Passes over the ready parts per poll before yielding to the scheduler (a part that keeps
/// waking itself, e.g. when tokio's co-operative budget is spent, must not spin here).
const MAX_PASSES: usize = 32;

struct Shared {
    /// The parts are being polled: a wake-up only needs to set the part's flag.
    in_poll: AtomicBool,
    task: AtomicWaker,
}

struct PartWake {
    ready: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for PartWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, SeqCst);
        // Paired with the store of `in_poll = false` and the re-check of the flags in
        // `poll_next`: either the poller sees this flag, or this sees `in_poll == false`.
        if !self.shared.in_poll.load(SeqCst) {
            self.shared.task.wake();
        }
    }
}

type PartFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

struct Part<'a, T> {
    fut: Option<PartFuture<'a, T>>,
    wake: Arc<PartWake>,
    waker: Waker,
}

/// A fixed set of futures driven together; see the module documentation.
pub(crate) struct Parts<'a, T> {
    shared: Arc<Shared>,
    parts: Vec<Part<'a, T>>,
}

impl<'a, T> Parts<'a, T> {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                in_poll: AtomicBool::new(false),
                task: AtomicWaker::new(),
            }),
            parts: Vec::new(),
        }
    }

    /// Adds a future; returns its index.
    pub(crate) fn push(&mut self, fut: impl Future<Output = T> + Send + 'a) -> usize {
        let wake = Arc::new(PartWake {
            ready: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        let waker = Waker::from(wake.clone());
        self.parts.push(Part {
            fut: Some(Box::pin(fut)),
            wake,
            waker,
        });
        self.parts.len().saturating_sub(1)
    }

    /// Drops an unfinished part.
    pub(crate) fn cancel(&mut self, index: usize) {
        if let Some(p) = self.parts.get_mut(index) {
            p.fut = None;
        }
    }

    /// Whether any part is unfinished.
    pub(crate) fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.fut.is_none())
    }

    /// Polls the parts whose wakers fired until none is ready; returns the first part to
    /// finish with its output, or `None` once every part has finished.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, T)>> {
        self.shared.task.register(cx.waker());
        self.shared.in_poll.store(true, SeqCst);
        for _ in 0..MAX_PASSES {
            let mut polled = false;
            for (i, p) in self.parts.iter_mut().enumerate() {
                let Some(fut) = p.fut.as_mut() else { continue };
                if !p.wake.ready.swap(false, SeqCst) {
                    continue;
                }
                polled = true;
                if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(&p.waker)) {
                    p.fut = None;
                    self.finish_poll(cx);
                    return Poll::Ready(Some((i, out)));
                }
            }
            if !polled {
                break;
            }
        }
        self.finish_poll(cx);
        if self.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// Leaves the polling state; if a part became ready meanwhile (or after the last
    /// pass), the task is woken so that it is polled again.
    fn finish_poll(&self, cx: &mut Context<'_>) {
        self.shared.in_poll.store(false, SeqCst);
        if self
            .parts
            .iter()
            .any(|p| p.fut.is_some() && p.wake.ready.load(SeqCst))
        {
            cx.waker().wake_by_ref();
        }
    }

    /// The next part to finish (see [`poll_next`](Self::poll_next)).
    pub(crate) async fn next(&mut self) -> Option<(usize, T)> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn parts_wake_each_other_without_waking_the_task() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let sum = AtomicUsize::new(0);
        let mut parts = Parts::new();
        parts.push(async {
            for i in 1..=1000 {
                tx.send(i).unwrap();
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            drop(tx);
            0
        });
        parts.push(async {
            while let Some(v) = rx.recv().await {
                sum.fetch_add(v as usize, SeqCst);
            }
            1
        });
        let mut done = Vec::new();
        while let Some((i, out)) = parts.next().await {
            assert_eq!(i, out);
            done.push(i);
        }
        assert_eq!(done, vec![0, 1]);
        assert_eq!(sum.load(SeqCst), 500_500);
    }

    #[tokio::test]
    async fn outside_wakeups_and_cancel() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut parts = Parts::new();
        let waiting = parts.push(async { rx.await.unwrap_or(0) });
        let forever = parts.push(std::future::pending::<u8>());
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(7).unwrap();
        });
        assert_eq!(parts.next().await, Some((waiting, 7)));
        assert!(!parts.is_empty());
        parts.cancel(forever);
        assert!(parts.is_empty());
        assert_eq!(parts.next().await, None);
    }

    #[tokio::test]
    async fn a_part_that_keeps_waking_itself_does_not_starve_the_runtime() {
        let spins = AtomicUsize::new(0);
        let mut parts = Parts::new();
        parts.push(async {
            // Wakes itself on every poll, like a part whose co-operative budget is spent.
            std::future::poll_fn(|cx| {
                if spins.fetch_add(1, SeqCst) < 10 * MAX_PASSES {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
        });
        // Another task still gets to run in between (current-thread runtime).
        let other = tokio::spawn(async { 5 });
        assert_eq!(parts.next().await, Some((0, ())));
        assert!(other.is_finished(), "the runtime was starved");
        assert_eq!(other.await.unwrap(), 5);
    }
}
