//! Deeply nested messages on a stack of their own.
//!
//! Parsing, handling, answering and dropping a value recurse once per nesting level. The
//! reference accepts 10,000 levels, far more than a task's stack holds for some of these
//! walks, so a message nested deeper than the fast parse goes is handled inside
//! [`on_big_stack`]: each poll of its future (and its drop) runs on a freshly mapped stack
//! of [`BIG_STACK`] bytes, of which only the pages used are ever touched.
#![deny(clippy::arithmetic_side_effects)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Size of the stack a deeply nested message is handled on (virtual; pages are touched
/// only as deep as the recursion goes).
pub const BIG_STACK: usize = 256 * 1024 * 1024;

/// `fut`, polled and dropped on a big stack.
pub fn on_big_stack<F: Future + Send + 'static>(fut: F) -> impl Future<Output = F::Output> + Send
where
    F::Output: Send,
{
    BigStack(Some(Box::pin(fut)))
}

struct BigStack<F>(Option<Pin<Box<F>>>);

impl<F: Future> Future for BigStack<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Pin<Box<F>>` is `Unpin`, so `Self` is too.
        let this = &mut *self;
        stacker::grow(BIG_STACK, || {
            let Some(fut) = this.0.as_mut() else {
                return Poll::Pending;
            };
            let out = fut.as_mut().poll(cx);
            if out.is_ready() {
                // What the future holds (the nested value) is freed here, on this stack.
                this.0 = None;
            }
            out
        })
    }
}

impl<F> Drop for BigStack<F> {
    fn drop(&mut self) {
        if let Some(fut) = self.0.take() {
            stacker::grow(BIG_STACK, move || drop(fut));
        }
    }
}
