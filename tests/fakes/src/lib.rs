pub mod chaos;
pub mod harness;
pub mod notion;
pub mod pagerduty;
pub mod slack;

/// Sleep for `d` with sub-millisecond accuracy: the injected latency of every fake.
///
/// `tokio::time::sleep` rounds up to the timer wheel's 1 ms tick and fires only when a worker
/// turns the wheel, so it adds 0.5 to 1.5 ms to every call: three dependent calls would carry
/// several milliseconds that no real service adds on top of its latency. So the timer wheel
/// covers all but the last [`FINE_SLEEP`], and a blocking-pool thread sleeps that remainder with
/// `nanosleep`, which wakes within tens of microseconds. (Only the short remainder runs on the
/// blocking pool: a runtime waits for its blocking threads when it shuts down.)
pub async fn sleep_exactly(d: std::time::Duration) {
    if d.is_zero() {
        return;
    }
    let deadline = std::time::Instant::now() + d;
    if let Some(coarse) = d.checked_sub(FINE_SLEEP) {
        tokio::time::sleep(coarse).await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        let now = std::time::Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    })
    .await;
}

/// The part of [`sleep_exactly`] slept on a blocking thread.
const FINE_SLEEP: std::time::Duration = std::time::Duration::from_millis(3);

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn sleep_exactly_never_wakes_early() {
        for ms in [0u64, 1, 2, 5, 20] {
            let d = Duration::from_millis(ms);
            let t0 = Instant::now();
            super::sleep_exactly(d).await;
            let took = t0.elapsed();
            assert!(took >= d, "{d:?} took only {took:?}");
            assert!(took < d + Duration::from_millis(500), "{d:?} took {took:?}");
        }
    }
}
