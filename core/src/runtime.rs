//! The tokio runtime a kite serves best on: [`builder`].
//!
//! tokio's multi-thread scheduler keeps two queues of tasks ready to run: each worker's own
//! (256 slots), where the tasks that worker wakes go, and a shared one, where they go when
//! it is full. By default a worker takes from the shared queue only every 61st task, and
//! polls the network for newly readable connections every 61st task. When thousands of
//! connections are ready at once, those in the shared queue wait while those in the local
//! queues are served round after round. Under saturation that starves some connections:
//! 15,000 connections with one call in flight each on two cores (`SOAK_CLOSED=1
//! scripts/soak.sh`) got p50 18 ms but p99 976 ms, 3.2× the mean of 305 ms.
//!
//! [`builder`] alternates the two queues (`global_queue_interval(2)`) and polls the network
//! every 512th task (`event_interval(512)`), so that each poll brings a batch the local
//! queue can mostly take: p99 510 ms, 1.6× the mean of 313 ms, at the same calls/s and CPU
//! per call. Both settings were measured against the others (same soak, 40–120 s): taking
//! the shared queue first on every task (interval 1) left 256 connections never served —
//! a worker then runs its local queue only when the shared queue is empty, which under
//! saturation it never is; intervals 2, 3 and 4 with the default polling gave p99 2.4×,
//! 2.9× and 3.1× the mean; interval 2 with polling every 8th task, 2.3×. When the kite is
//! not saturated the settings change nothing: a worker with nothing to run polls the
//! network at once.
//!
//! The Python and Node bindings and the `kontrol`, `kitectl` and proxy programs run on this
//! runtime. A Rust program that serves many connections should too:
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     kite::runtime::builder().build()?.block_on(async {
//!         let kite = kite::Kite::new("math", "1.0.0")?;
//!         // … add_method …
//!         kite.run().await?;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! (`#[tokio::main]` cannot make these settings.)

/// A multi-thread runtime builder with every driver enabled, the shared queue taken every
/// other task and the network polled every 512th (see the module documentation); further
/// settings can be added before `build()`.
pub fn builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().global_queue_interval(2).event_interval(512);
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_a_multi_thread_runtime_with_io_and_time() {
        let rt = super::builder().build().unwrap();
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        // The IO and time drivers are on: a listener binds and a sleep ends.
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            assert_ne!(l.local_addr().unwrap().port(), 0);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        });
    }
}
