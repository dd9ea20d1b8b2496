//! Background threads yield the CPU to the data path.
//!
//! The audit writer, the syslog sender and the gateway's monitor thread do work that may lag
//! a little (encode, hash and write records; analyse transactions) while a request waits on
//! the data path. On a small box (two cores shared by the gateway, its peers and the kernel's
//! TCP work) a batch of records encoded at the same priority as the tokio workers delays the
//! requests that arrive meanwhile: measured on loopback at one connection, the p99 latency of
//! a read fell from about 165 µs to 50 µs with these threads at nice 10, with throughput and
//! durable writes unchanged (scripts/BENCH.md). A durable record still waits only for its
//! fsync, which is I/O, not CPU.

/// The nice value background threads run at (0 is normal, 19 the lowest).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICE`] (Linux: the nice
/// value is per thread). Needs no privilege; a failure is reported and otherwise harmless.
pub fn run_in_background() {
    #[cfg(target_os = "linux")]
    {
        let current = rustix::process::getpriority_process(None).unwrap_or(0);
        if current < BACKGROUND_NICE {
            if let Err(e) = rustix::process::nice(BACKGROUND_NICE - current) {
                tracing::debug!("cannot lower this background thread's priority: {e}");
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_at_the_background_nice_value_and_the_caller_does_not() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let inside = std::thread::spawn(|| {
            run_in_background();
            rustix::process::getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, BACKGROUND_NICE.max(before));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
