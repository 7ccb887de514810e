//! `om bench rpc|cast|notify`: a load generator measuring end-to-end
//! throughput and latency against an in-process server or listener.
//!
//! Latencies are kept in a plain `Vec<u64>` of nanoseconds and sorted once
//! at the end: percentiles are exact, and a run of a few million messages
//! costs a few tens of megabytes, which does not justify a histogram
//! dependency (hdrhistogram would only pay off for unbounded runs).

use crate::args::{BenchArgs, BenchMode};
use crate::connect::{open, seconds, Connected, Purpose};
use crate::error::{redact, CliError, ExitCode};
use crate::output::{stderr_is_terminal, write_error, Out};
use om::notify::{
    Endpoint as NotifyEndpoint, Notification, NotificationListener, Notifier, NotifierDriver,
};
use om::rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use om::{Context, Target};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::Value;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) min: f64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// The result of a run (`--json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BenchResult {
    pub(crate) mode: &'static str,
    pub(crate) driver: String,
    pub(crate) url: String,
    pub(crate) concurrency: usize,
    pub(crate) size_bytes: usize,
    pub(crate) duration_s: f64,
    pub(crate) elapsed_s: f64,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) errors: u64,
    pub(crate) lost: u64,
    pub(crate) throughput_per_s: f64,
    pub(crate) latency_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarizes latencies given in nanoseconds (sorts them).
pub(crate) fn summarize(samples: &mut [u64]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let sum: u128 = samples.iter().map(|&v| u128::from(v)).sum();
    Latency {
        min: ms(samples[0]),
        mean: sum as f64 / samples.len() as f64 / 1e6,
        p50: ms(percentile(samples, 50.0)),
        p90: ms(percentile(samples, 90.0)),
        p99: ms(percentile(samples, 99.0)),
        max: ms(samples[samples.len() - 1]),
    }
}

/// Counters shared by senders, receivers and the progress line.
#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    /// Nanoseconds since start of the last arrival.
    last_arrival: AtomicU64,
    arrivals: Mutex<Vec<u64>>,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn error(&self, e: &om::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(redact(&format!("{}: {e}", e.oslo_name())));
        }
    }

    fn arrived(&self, start: Instant, sent_ns: u64) {
        let now = nanos(start.elapsed());
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(now.saturating_sub(sent_ns));
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_arrival.fetch_max(now, Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What a cast or notification carries.
#[derive(Serialize, Deserialize)]
struct Probe {
    sent_ns: u64,
    payload: String,
}

/// Writes a progress line on stderr every second while `running`.
fn progress(
    stats: Arc<Stats>,
    start: Instant,
    duration: Duration,
    mode: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0u64;
        loop {
            tick.tick().await;
            let r = stats.received.load(Ordering::Relaxed);
            let line = format!(
                "\r\x1b[K om bench {mode}: {:>5.1}s/{:.0}s  sent {}  received {}  errors {}  {} msg/s",
                start.elapsed().as_secs_f64(),
                duration.as_secs_f64(),
                stats.sent.load(Ordering::Relaxed),
                r,
                stats.errors.load(Ordering::Relaxed),
                r - last.min(r),
            );
            last = r;
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(line.as_bytes());
            let _ = e.flush();
        }
    })
}

/// `om bench`.
pub(crate) async fn bench(a: BenchArgs, out: &Out) -> Result<ExitCode, CliError> {
    if a.concurrency == 0 {
        return Err(CliError::usage("--concurrency must be at least 1"));
    }
    let duration = seconds("--duration", a.duration)?;
    let drain = seconds("--drain-timeout", a.drain_timeout)?;
    let purpose = match a.mode {
        BenchMode::Notify => Purpose::Notifications,
        BenchMode::Rpc | BenchMode::Cast => Purpose::Rpc,
    };
    let conn = open(&a.transport, purpose).await?;
    let topic = format!("om_bench_{}", &om::core::uuid_hex()[..12]);
    let payload: Arc<str> = Arc::from("x".repeat(a.size));
    let stats = Arc::new(Stats::default());
    let run = Run {
        conn: &conn,
        topic: &topic,
        payload,
        stats: stats.clone(),
        concurrency: a.concurrency,
        duration,
        drain,
    };
    let mode = match a.mode {
        BenchMode::Rpc => "rpc",
        BenchMode::Cast => "cast",
        BenchMode::Notify => "notify",
    };
    let outcome = match a.mode {
        BenchMode::Rpc => run.rpc(mode).await,
        BenchMode::Cast => run.cast(mode).await,
        BenchMode::Notify => run.notify(mode).await,
    };
    conn.transport.cleanup().await;
    let (queues, exchanges) = match a.mode {
        BenchMode::Notify => (vec![format!("{topic}.info")], vec![]),
        _ => (
            vec![topic.clone(), format!("{topic}.bench")],
            vec![format!("{topic}_fanout")],
        ),
    };
    crate::probe::delete_rabbit(&conn.url, &queues, &exchanges, false).await;
    let (elapsed, mut samples) = outcome?;

    let sent = stats.sent.load(Ordering::Relaxed);
    let received = stats.received.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let lost = match a.mode {
        BenchMode::Rpc => 0,
        _ => sent.saturating_sub(received),
    };
    let elapsed_s = elapsed.as_secs_f64();
    let result = BenchResult {
        mode,
        driver: conn.transport.driver_name().to_owned(),
        url: conn.masked_url(),
        concurrency: a.concurrency,
        size_bytes: a.size,
        duration_s: duration.as_secs_f64(),
        elapsed_s,
        sent,
        received,
        errors,
        lost,
        throughput_per_s: if elapsed_s > 0.0 {
            received as f64 / elapsed_s
        } else {
            0.0
        },
        latency_ms: summarize(&mut samples),
        first_error: stats
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    };
    let text = if a.json {
        serde_json::to_string(&result)
            .map_err(|e| CliError::failure(format!("cannot print the result: {e}")))?
    } else {
        table(&result)
    };
    out.line(&text).map_err(write_error)?;
    if received == 0 {
        return Err(CliError::failure(format!(
            "no message went through{}",
            result
                .first_error
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        )));
    }
    Ok(ExitCode::Ok)
}

/// The human-readable result.
pub(crate) fn table(r: &BenchResult) -> String {
    let mut s = format!(
        "om bench {}: {} ({}), {} sender(s), {}-byte payloads, {:.1} s\n\n",
        r.mode, r.url, r.driver, r.concurrency, r.size_bytes, r.duration_s
    );
    s.push_str(&format!(
        "  {:>10} {:>10} {:>8} {:>8} {:>10} {:>14}\n",
        "sent", "received", "errors", "lost", "elapsed s", "throughput/s"
    ));
    s.push_str(&format!(
        "  {:>10} {:>10} {:>8} {:>8} {:>10.2} {:>14.1}\n\n",
        r.sent, r.received, r.errors, r.lost, r.elapsed_s, r.throughput_per_s
    ));
    let l = &r.latency_ms;
    s.push_str(&format!(
        "  latency ms {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "min", "mean", "p50", "p90", "p99", "max"
    ));
    s.push_str(&format!(
        "  {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
        if r.mode == "rpc" {
            "round trip"
        } else {
            "end to end"
        },
        l.min,
        l.mean,
        l.p50,
        l.p90,
        l.p99,
        l.max
    ));
    if let Some(e) = &r.first_error {
        s.push_str(&format!("\n\n  first error: {e}"));
    }
    s
}

struct Run<'a> {
    conn: &'a Connected,
    topic: &'a str,
    payload: Arc<str>,
    stats: Arc<Stats>,
    concurrency: usize,
    duration: Duration,
    drain: Duration,
}

type Outcome = Result<(Duration, Vec<u64>), CliError>;

impl Run<'_> {
    fn target(&self) -> Target {
        Target::new(self.topic.to_owned()).with_server("bench")
    }

    fn start_progress(
        &self,
        start: Instant,
        mode: &'static str,
    ) -> Option<tokio::task::JoinHandle<()>> {
        stderr_is_terminal().then(|| progress(self.stats.clone(), start, self.duration, mode))
    }

    fn stop_progress(p: Option<tokio::task::JoinHandle<()>>) {
        if let Some(p) = p {
            p.abort();
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(b"\r\x1b[K");
            let _ = e.flush();
        }
    }

    /// Waits until every sent message arrived, or the drain timeout.
    async fn drain(&self) {
        let until = Instant::now() + self.drain;
        while self.stats.received.load(Ordering::Relaxed) < self.stats.sent.load(Ordering::Relaxed)
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn arrivals(&self) -> Vec<u64> {
        std::mem::take(
            &mut *self
                .stats
                .arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    async fn rpc(&self, mode: &'static str) -> Outcome {
        let server = RpcServer::builder(self.conn.transport.clone(), self.target())
            .endpoint(
                Endpoint::new().raw_method("echo", |_ctx: Context, args| async move {
                    Ok::<_, HandlerError>(Value::Object(args))
                }),
            )
            .executor_pool_size(self.concurrency.max(64))
            .build()?;
        server.start().await?;
        let client = RpcClient::builder(
            self.conn.transport.clone(),
            Target::new(self.topic.to_owned()),
        )
        .timeout(Duration::from_secs(30))
        .retry(self.conn.retry)
        .build();
        let start = Instant::now();
        let progress = self.start_progress(start, mode);
        let mut workers = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            let client = client.clone();
            let stats = self.stats.clone();
            let payload = self.payload.clone();
            let duration = self.duration;
            workers.push(tokio::spawn(async move {
                let ctx = Context::new();
                let args = json!({"payload": &*payload});
                let mut lat = Vec::new();
                while start.elapsed() < duration {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    match client.call_value(&ctx, "echo", &args).await {
                        Ok(_) => {
                            lat.push(nanos(t0.elapsed()));
                            stats.received.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => stats.error(&e),
                    }
                }
                lat
            }));
        }
        let mut samples = Vec::new();
        for w in workers {
            match w.await {
                Ok(mut l) => samples.append(&mut l),
                Err(e) => tracing::error!(error = %e, "bench worker failed"),
            }
        }
        let elapsed = start.elapsed();
        Self::stop_progress(progress);
        server.stop().await?;
        server.wait().await?;
        Ok((elapsed, samples))
    }

    async fn cast(&self, mode: &'static str) -> Outcome {
        let start = Instant::now();
        let stats = self.stats.clone();
        let server = RpcServer::builder(self.conn.transport.clone(), self.target())
            .endpoint(
                Endpoint::new().method("sink", move |_ctx: Context, p: Probe| {
                    let stats = stats.clone();
                    async move {
                        stats.arrived(start, p.sent_ns);
                        Ok::<_, HandlerError>(())
                    }
                }),
            )
            .executor_pool_size(64)
            .build()?;
        server.start().await?;
        let client = RpcClient::builder(
            self.conn.transport.clone(),
            Target::new(self.topic.to_owned()),
        )
        .retry(self.conn.retry)
        .build();
        let progress = self.start_progress(start, mode);
        let mut workers = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            let client = client.clone();
            let stats = self.stats.clone();
            let payload = self.payload.clone();
            let duration = self.duration;
            workers.push(tokio::spawn(async move {
                let ctx = Context::new();
                while start.elapsed() < duration {
                    let probe = json!({"sent_ns": nanos(start.elapsed()), "payload": &*payload});
                    match client.cast(&ctx, "sink", probe).await {
                        Ok(()) => {
                            stats.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => stats.error(&e),
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        self.drain().await;
        Self::stop_progress(progress);
        server.stop().await?;
        server.wait().await?;
        let elapsed = Duration::from_nanos(self.stats.last_arrival.load(Ordering::Relaxed));
        Ok((elapsed, self.arrivals()))
    }

    async fn notify(&self, mode: &'static str) -> Outcome {
        let start = Instant::now();
        let stats = self.stats.clone();
        let listener = NotificationListener::builder(self.conn.transport.clone())
            .target(Target::new(self.topic.to_owned()))
            .endpoint(NotifyEndpoint::new().info(move |n: Notification<Probe>| {
                let stats = stats.clone();
                async move {
                    stats.arrived(start, n.payload.sent_ns);
                }
            }))
            .executor_pool_size(64)
            .build()?;
        listener.start().await?;
        let notifier = Notifier::builder(self.conn.transport.clone())
            .publisher_id("om-bench")
            .driver(NotifierDriver::MessagingV2)
            .topics([self.topic.to_owned()])
            .retry(self.conn.retry)
            .build();
        let progress = self.start_progress(start, mode);
        let mut workers = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            let notifier = notifier.clone();
            let stats = self.stats.clone();
            let payload = self.payload.clone();
            let duration = self.duration;
            workers.push(tokio::spawn(async move {
                let ctx = Context::new();
                while start.elapsed() < duration {
                    let probe = Probe {
                        sent_ns: nanos(start.elapsed()),
                        payload: payload.to_string(),
                    };
                    match notifier.info(&ctx, "om.bench", probe).await {
                        Ok(()) => {
                            stats.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => stats.error(&e),
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        self.drain().await;
        Self::stop_progress(progress);
        listener.stop().await;
        listener.wait().await;
        let elapsed = Duration::from_nanos(self.stats.last_arrival.load(Ordering::Relaxed));
        Ok((elapsed, self.arrivals()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().map(|i| i * 1_000_000).collect();
        let l = summarize(&mut v);
        assert_eq!(
            (l.min, l.p50, l.p90, l.p99, l.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert!((l.mean - 50.5).abs() < 1e-9);
        let mut one = vec![2_500_000];
        let l = summarize(&mut one);
        assert_eq!((l.p50, l.p99, l.max), (2.5, 2.5, 2.5));
        assert_eq!(summarize(&mut []), Latency::default());
    }
}
