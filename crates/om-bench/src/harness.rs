//! Timing: a warm-up followed by a fixed measurement window, closed-loop
//! workers (calls), open senders with arrival counting (casts,
//! notifications), latency percentiles and the JSON result.

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long to warm up and how long to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Time spent running before anything is counted.
    pub warmup: Duration,
    /// The measured time after the warm-up.
    pub duration: Duration,
}

impl Window {
    /// Starts the clock now.
    pub fn start(self) -> Timeline {
        let now = Instant::now();
        Timeline {
            from: now + self.warmup,
            to: now + self.warmup + self.duration,
        }
    }
}

/// The absolute measurement window of one run.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Start of the measured window (end of the warm-up).
    pub from: Instant,
    /// End of the measured window (workers stop starting new operations).
    pub to: Instant,
}

impl Timeline {
    /// Whether `t` falls in the measured window.
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Number of samples.
    pub samples: usize,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Latency {
    /// Summarises samples given in nanoseconds; `None` without samples.
    pub fn from_nanos(mut samples: Vec<u64>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        let sum: u128 = samples.iter().map(|&n| u128::from(n)).sum();
        let pct = |p: f64| {
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        Some(Latency {
            samples: samples.len(),
            mean_ms: sum as f64 / samples.len() as f64 / 1e6,
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: ms(samples[samples.len() - 1]),
        })
    }
}

/// The one JSON object every measurement prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// `rabbit`, `kafka` or `amqp1`.
    pub backend: String,
    /// `om`, `raw` (lapin / rdkafka / fe2o3-amqp) or `python`.
    pub implementation: String,
    /// `rpc`, `cast` or `notify`.
    pub scenario: String,
    /// Concurrent callers or senders.
    pub concurrency: usize,
    /// Size of the payload string in each message.
    pub payload_bytes: usize,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// What was counted in the window: completed calls (`rpc`) or messages
    /// that arrived at the server / listener (`cast`, `notify`).
    pub operations: u64,
    /// `operations / duration_s`.
    pub rate_per_s: f64,
    /// Sends that completed (were confirmed) in the window (`cast`,
    /// `notify`); equal to `operations` for `rpc`.
    pub sent: u64,
    /// Failed operations during the whole run.
    pub errors: u64,
    /// Call round-trip latency (`rpc`) or send latency until the broker's
    /// confirmation (`cast`, `notify`).
    pub latency: Option<Latency>,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Remarks (e.g. how long the consumer group took to form).
    pub notes: Vec<String>,
    /// `cast`, `notify`: messages the senders had sent (and the broker had
    /// confirmed) that had not reached the receiving side when the window
    /// closed; a growing backlog means the receiver is the bottleneck.
    #[serde(default)]
    pub backlog: Option<u64>,
    /// The process's global allocator (`mimalloc` or `system`; Python
    /// results have none).
    #[serde(default)]
    pub allocator: Option<String>,
}

/// Parameters common to every scenario.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Broker URL (its form depends on the implementation).
    pub url: String,
    /// Concurrent callers or senders.
    pub concurrency: usize,
    /// Warm-up and measured window.
    pub window: Window,
    /// Size of the payload string.
    pub payload_bytes: usize,
    /// Prefix for every topic, queue and group name of this run.
    pub prefix: String,
    /// Senders wait while more than this many messages are sent and not
    /// yet received (see [`senders_with_arrivals`]).
    pub max_backlog: Option<u64>,
}

impl RunSpec {
    /// A result skeleton for this spec.
    pub fn result(&self, backend: &str, implementation: &str, scenario: &str) -> BenchResult {
        BenchResult {
            backend: backend.into(),
            implementation: implementation.into(),
            scenario: scenario.into(),
            concurrency: self.concurrency,
            payload_bytes: self.payload_bytes,
            warmup_s: self.window.warmup.as_secs_f64(),
            duration_s: self.window.duration.as_secs_f64(),
            ..BenchResult::default()
        }
    }
}

/// An ASCII payload of exactly `bytes` bytes.
pub fn payload(bytes: usize) -> String {
    const TEXT: &str = "om-bench payload: the quick brown fox jumps over the lazy dog 0123456789. ";
    TEXT.chars().cycle().take(bytes).collect()
}

/// What a set of workers did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operations that completed inside the window.
    pub completed: u64,
    /// Their latencies, nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Failed operations (whole run).
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Successful operations during the whole run (warm-up included).
    pub succeeded: u64,
    /// See [`BenchResult::backlog`] (set by [`senders_with_arrivals`]).
    pub backlog: Option<u64>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.completed += other.completed;
        self.latencies_ns.extend(other.latencies_ns);
        self.errors += other.errors;
        self.succeeded += other.succeeded;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `concurrency` workers, each calling `op(worker, sequence)` in a
/// loop from now until the end of the window (warm-up included). An
/// operation counts, with its latency, when it completes inside the
/// measured window. A failed operation is counted as an error and the
/// worker pauses 10 ms before going on.
pub async fn closed_loop<F, Fut>(concurrency: usize, timeline: Timeline, op: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let mut seq = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= timeline.to {
                    break;
                }
                let r = op(w, seq).await;
                seq += 1;
                let t1 = Instant::now();
                match r {
                    Ok(()) => {
                        out.succeeded += 1;
                        if timeline.contains(t1) {
                            out.completed += 1;
                            out.latencies_ns.push(nanos(t1 - t0));
                        }
                    }
                    Err(e) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(format!("{e:#}"));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            out
        }));
    }
    let mut total = Outcome::default();
    for w in workers {
        match w.await {
            Ok(o) => total.merge(o),
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("worker task failed: {e}"));
            }
        }
    }
    total
}

/// Runs `spec.concurrency` senders like [`closed_loop`], in a window
/// started now, and counts, in the same window, the
/// messages that arrived at the receiving side (`arrivals` is incremented
/// by the server or listener). Returns `(arrived in window, sender
/// outcome)`; the outcome's `backlog` is what was sent during the run but
/// had not arrived when the window closed.
///
/// With `spec.max_backlog`, a sender waits before each send while more
/// than that many of the run's messages are sent and not yet arrived (but
/// not past the window's end): for senders that only queue (Kafka without
/// delivery waits), this measures the rate the receiving side sustains
/// instead of letting the senders take the CPU it needs.
pub async fn senders_with_arrivals<F, Fut>(
    spec: &RunSpec,
    arrivals: Arc<AtomicU64>,
    op: F,
) -> (u64, Outcome)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let timeline = spec.window.start();
    let max_backlog = spec.max_backlog;
    let before = arrivals.load(Ordering::Acquire);
    let sampler = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(timeline.from).await;
            let c0 = arrivals.load(Ordering::Acquire);
            tokio::time::sleep_until(timeline.to).await;
            let c1 = arrivals.load(Ordering::Acquire);
            (c1.saturating_sub(c0), c1.saturating_sub(before))
        })
    };
    let sent = Arc::new(AtomicU64::new(0));
    let op = Arc::new(op);
    let gated = move |w: usize, seq: u64| {
        let (op, sent, arrivals) = (op.clone(), sent.clone(), arrivals.clone());
        async move {
            if let Some(max) = max_backlog {
                loop {
                    let arrived = arrivals.load(Ordering::Acquire).saturating_sub(before);
                    let backlog = sent.load(Ordering::Acquire).saturating_sub(arrived);
                    if backlog <= max || Instant::now() >= timeline.to {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let r = op(w, seq).await;
            if r.is_ok() {
                sent.fetch_add(1, Ordering::AcqRel);
            }
            r
        }
    };
    let mut outcome = closed_loop(spec.concurrency, timeline, gated).await;
    let (arrived, arrived_since_start) = sampler.await.unwrap_or((0, 0));
    outcome.backlog = Some(outcome.succeeded.saturating_sub(arrived_since_start));
    (arrived, outcome)
}

/// Fills a result from a closed-loop outcome where the operations are
/// what is counted (calls).
pub fn finish_calls(mut r: BenchResult, o: Outcome) -> BenchResult {
    r.operations = o.completed;
    r.sent = o.completed;
    r.rate_per_s = o.completed as f64 / r.duration_s;
    r.errors = o.errors;
    r.first_error = o.first_error;
    r.latency = Latency::from_nanos(o.latencies_ns);
    r
}

/// Fills a result from arrivals plus the senders' outcome (casts,
/// notifications).
pub fn finish_arrivals(mut r: BenchResult, arrived: u64, o: Outcome) -> BenchResult {
    r.operations = arrived;
    r.rate_per_s = arrived as f64 / r.duration_s;
    r.sent = o.completed;
    r.errors = o.errors;
    r.first_error = o.first_error;
    r.backlog = o.backlog;
    r.latency = Latency::from_nanos(o.latencies_ns);
    r
}

/// Waits until `counter` reaches `target`, up to `limit`; returns whether it did.
pub async fn wait_for_count(counter: &AtomicU64, target: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while counter.load(Ordering::Acquire) < target {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::from_nanos((1..=100).map(|i| i * 1_000_000).collect()).unwrap_or_default();
        assert_eq!(l.samples, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p90_ms, 90.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
        assert!(Latency::from_nanos(Vec::new()).is_none());
    }

    #[test]
    fn payload_has_the_requested_size() {
        assert_eq!(payload(200).len(), 200);
        assert_eq!(payload(0).len(), 0);
        assert!(payload(1000).is_ascii());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_counts_only_the_window() {
        let window = Window {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(200),
        };
        let started = Instant::now();
        let o = closed_loop(2, window.start(), |_, _| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300), "ran {elapsed:?}");
        // 2 workers x ~20 ops of 10 ms in 200 ms (timer slack allowed).
        assert!(
            o.completed >= 20 && o.completed <= 42,
            "completed {}",
            o.completed
        );
        assert_eq!(o.latencies_ns.len() as u64, o.completed);
        assert_eq!(o.errors, 0);
    }

    fn spec(window: Window, max_backlog: Option<u64>) -> RunSpec {
        RunSpec {
            url: String::new(),
            concurrency: 1,
            window,
            payload_bytes: 0,
            prefix: String::new(),
            max_backlog,
        }
    }

    /// Nothing ever arrives: the sender stops once the backlog passed the
    /// bound, and gives up waiting when the window ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_backlog_holds_senders_until_the_window_ends() {
        let window = Window {
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(100),
        };
        let bounded = spec(window, Some(3));
        let run = senders_with_arrivals(&bounded, Arc::new(AtomicU64::new(0)), |_, _| async {
            Ok(())
        });
        let (arrived, o) = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the senders stop waiting when the window ends");
        assert_eq!(arrived, 0);
        // Four sends take the backlog past 3; one more once the wait ends
        // with the window.
        assert_eq!(o.succeeded, 5);
        assert_eq!(o.backlog, Some(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn arrivals_are_sampled_in_the_window() {
        let window = Window {
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(150),
        };
        let arrivals = Arc::new(AtomicU64::new(0));
        let a = arrivals.clone();
        let (arrived, o) =
            senders_with_arrivals(&spec(window, None), arrivals.clone(), move |_, _| {
                let a = a.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    a.fetch_add(2, Ordering::AcqRel);
                    Ok(())
                }
            })
            .await;
        assert!(arrived > 0 && arrived < arrivals.load(Ordering::Acquire));
        assert_eq!(arrived % 2, 0);
        assert!(o.completed > 0);
        // Every send "arrives" at once here, so nothing is left behind
        // (up to the sends that completed after the window closed).
        assert!(o.backlog.is_some_and(|b| b <= 2), "backlog {:?}", o.backlog);
        assert!(o.succeeded >= o.completed);
        let failing = closed_loop(1, window.start(), |_, _| async {
            Err(anyhow::anyhow!("boom"))
        })
        .await;
        assert!(failing.errors > 0);
        assert_eq!(failing.completed, 0);
        assert_eq!(failing.first_error.as_deref(), Some("boom"));
    }
}
