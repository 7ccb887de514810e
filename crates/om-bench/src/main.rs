//! `om-bench <backend> <implementation> <scenario> [options]`: one
//! measurement, printed as one JSON object on stdout.
//!
//! ```text
//! om-bench rabbit om rpc --concurrency 16 --duration 5 --warmup 1
//! om-bench rabbit raw notify --concurrency 16
//! om-bench kafka raw notify --url kafka://127.0.0.1:39092/
//! om-bench amqp1 om rpc --url amqp://guest:guest@127.0.0.1:35672
//! ```

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use om_bench::harness::{RunSpec, Window};
use om_bench::{amqp1_raw, kafka_raw, lapin_url, rabbit_om, rabbit_raw};
use std::time::Duration;

/// Every client this binary runs, om and the raw ones alike, allocates
/// through mimalloc: a common choice for Rust services, and one that
/// affects om (more, smaller allocations per message) more than the raw
/// clients. Build with `--no-default-features` for the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The global allocator's name, as reported in every result.
const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// RabbitMQ over AMQP 0-9-1.
    Rabbit,
    /// Kafka (tansu).
    Kafka,
    /// RabbitMQ's AMQP 1.0 plugin.
    Amqp1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Implementation {
    /// om (the facade crate).
    Om,
    /// The raw client library (lapin, rdkafka, fe2o3-amqp).
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// RPC call round trips.
    Rpc,
    /// Casts, counted on arrival at the server.
    Cast,
    /// Notifications, counted by the listener.
    Notify,
}

/// One end-to-end measurement; prints one JSON object.
#[derive(Debug, Parser)]
#[command(name = "om-bench", version)]
struct Cli {
    /// Which broker protocol.
    #[arg(value_enum)]
    backend: Backend,
    /// Which implementation.
    #[arg(value_enum)]
    implementation: Implementation,
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Broker URL in om's form (rabbit://, kafka://, amqp://); the raw
    /// implementations derive theirs from it. Defaults to the xtask brokers.
    #[arg(long)]
    url: Option<String>,
    /// Concurrent callers or senders.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Prefix of the topics, queues and groups of this run (default: a fresh one).
    #[arg(long)]
    prefix: Option<String>,
    /// Raw RabbitMQ RPC only: publish requests and replies without
    /// publisher confirms (a reference point, not om's semantics).
    #[arg(long)]
    no_confirms: bool,
    /// Raw RabbitMQ RPC only: send bare `{"payload": …}` bodies with
    /// minimal properties instead of om's messages (a reference point).
    #[arg(long)]
    minimal_messages: bool,
    /// Raw RabbitMQ RPC only: publish and consume on separate connections,
    /// as om does, instead of sharing one (a reference point).
    #[arg(long)]
    split_connections: bool,
    /// Casts and notifications: senders wait while more than this many
    /// messages are sent and not yet received (for senders that only
    /// queue, so that they leave the receiving side its share of the CPU).
    #[arg(long)]
    max_backlog: Option<u64>,
}

fn default_url(backend: Backend) -> &'static str {
    match backend {
        Backend::Rabbit => "rabbit://guest:guest@127.0.0.1:35672/",
        Backend::Kafka => "kafka://127.0.0.1:39092/",
        Backend::Amqp1 => "amqp://guest:guest@127.0.0.1:35672",
    }
}

fn seconds(v: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|e| anyhow::anyhow!("--{what} {v}: {e}"))
}

/// Queues a run leaves on RabbitMQ, deleted after measuring.
fn leftovers(cli: &Cli, prefix: &str) -> Vec<String> {
    let topic = match cli.scenario {
        Scenario::Rpc => format!("{prefix}_rpc"),
        Scenario::Cast => format!("{prefix}_cast"),
        Scenario::Notify => format!("{prefix}_notify"),
    };
    match (cli.backend, cli.implementation, cli.scenario) {
        (Backend::Rabbit, Implementation::Om, Scenario::Notify) => vec![format!("{topic}.info")],
        (Backend::Rabbit, Implementation::Om, _) => {
            vec![topic.clone(), format!("{topic}.bench-server")]
        }
        (Backend::Amqp1, Implementation::Om, Scenario::Notify) => {
            vec![format!("unicast.openstack.{topic}.info")]
        }
        (Backend::Amqp1, Implementation::Om, _) => vec![
            format!("unicast.openstack.{topic}"),
            format!("exclusive.openstack.{topic}.bench-server"),
        ],
        (Backend::Amqp1, Implementation::Raw, Scenario::Notify) => vec![format!("{topic}.info")],
        (Backend::Amqp1, Implementation::Raw, _) => vec![topic.clone(), format!("{topic}_reply")],
        // Raw lapin deletes its own; Kafka topics stay (tansu is in-memory).
        _ => Vec::new(),
    }
}

async fn run(cli: &Cli, spec: &RunSpec) -> Result<om_bench::harness::BenchResult> {
    let lapin = RunSpec {
        url: lapin_url(&spec.url),
        ..spec.clone()
    };
    match (cli.backend, cli.implementation, cli.scenario) {
        (Backend::Rabbit, Implementation::Om, Scenario::Rpc) => {
            rabbit_om::rpc(spec, "rabbit").await
        }
        (Backend::Rabbit, Implementation::Om, Scenario::Cast) => {
            rabbit_om::cast(spec, "rabbit").await
        }
        (Backend::Rabbit, Implementation::Om, Scenario::Notify) => {
            rabbit_om::notify(spec, "rabbit").await
        }
        (Backend::Rabbit, Implementation::Raw, Scenario::Rpc) => {
            let messages = if cli.minimal_messages {
                rabbit_raw::Messages::Minimal
            } else {
                rabbit_raw::Messages::Oslo
            };
            let connections = if cli.split_connections {
                rabbit_raw::Connections::Split
            } else {
                rabbit_raw::Connections::Shared
            };
            rabbit_raw::rpc(&lapin, !cli.no_confirms, messages, connections).await
        }
        (Backend::Rabbit, Implementation::Raw, Scenario::Cast) => rabbit_raw::cast(&lapin).await,
        (Backend::Rabbit, Implementation::Raw, Scenario::Notify) => {
            rabbit_raw::notify(&lapin).await
        }
        (Backend::Kafka, Implementation::Om, Scenario::Notify) => {
            rabbit_om::notify(spec, "kafka").await
        }
        (Backend::Kafka, Implementation::Raw, Scenario::Notify) => kafka_raw::notify(spec).await,
        (Backend::Kafka, _, s) => bail!("Kafka carries notifications only (no {s:?})"),
        (Backend::Amqp1, Implementation::Om, Scenario::Rpc) => rabbit_om::rpc(spec, "amqp1").await,
        (Backend::Amqp1, Implementation::Om, Scenario::Notify) => {
            rabbit_om::notify(spec, "amqp1").await
        }
        (Backend::Amqp1, Implementation::Raw, Scenario::Rpc) => amqp1_raw::rpc(spec).await,
        (Backend::Amqp1, Implementation::Raw, Scenario::Notify) => amqp1_raw::notify(spec).await,
        (Backend::Amqp1, _, Scenario::Cast) => bail!("the AMQP 1.0 scenarios are rpc and notify"),
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match main_inner(&cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("om-bench: error: {e:#}");
            1
        }
    };
    // Lingering client tasks (consumers, librdkafka threads) are not
    // waited for: the measurement is printed and the queues are gone.
    std::process::exit(code);
}

fn main_inner(cli: &Cli) -> Result<()> {
    let prefix = cli
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let spec = RunSpec {
        url: cli
            .url
            .clone()
            .unwrap_or_else(|| default_url(cli.backend).to_owned()),
        concurrency: cli.concurrency.max(1),
        window: Window {
            warmup: seconds(cli.warmup, "warmup")?,
            duration: seconds(cli.duration, "duration")?,
        },
        payload_bytes: cli.payload,
        prefix: prefix.clone(),
        max_backlog: cli.max_backlog,
    };
    anyhow::ensure!(
        spec.window.duration > Duration::ZERO,
        "--duration must be positive"
    );
    if let Ok(filter) = std::env::var("OM_BENCH_LOG") {
        // Diagnostics only (e.g. OM_BENCH_LOG=om_driver_amqp1=debug); off
        // while measuring.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut result = run(cli, &spec).await?;
        result.allocator = Some(ALLOCATOR.to_owned());
        println!("{}", serde_json::to_string(&result)?);
        let queues = leftovers(cli, &prefix);
        if !queues.is_empty() {
            rabbit_raw::delete_queues(&lapin_url(&spec.url), &queues).await;
        }
        Ok(())
    })
}
