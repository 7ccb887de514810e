//! The command line, declared with clap's derive API.

use crate::error::EXIT_CODES_HELP;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const ABOUT: &str = "OpenStack messaging from the command line: RPC calls and casts, a test \
responder, notifications (send and follow), load generation, configuration display. \
Wire-compatible with Python oslo.messaging 18.3.1.";

const EXAMPLES: &str = "\
Examples:
  om rpc call --url rabbit://nova:PASS@ctl1:5672/ --topic compute --server host1 \\
      --version 6.0 get_host_uptime '{}'
  om rpc call --config /etc/nova/nova.conf --topic conductor --server ctl1 oslo_rpc_server_ping
  om rpc cast --url rabbit://nova:PASS@ctl1:5672/ --topic compute --fanout refresh @args.json
  om notify tail --config /etc/nova/nova.conf --pool om-debug --event-type '^compute\\.instance'
  om bench rpc --url rabbit://guest:guest@127.0.0.1:5672/ --concurrency 16 --duration 10
  om config show --config /etc/nova/nova.conf";

/// `om`: the om command-line tool.
#[derive(Debug, Parser)]
#[command(name = "om", version, about = ABOUT, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). The
    /// OM_LOG environment variable (tracing filter syntax) overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// RPC: call and cast methods of OpenStack services, run a test responder.
    #[command(subcommand)]
    Rpc(RpcCommand),
    /// Notifications: send one, or follow them live.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Load generator: throughput and latency of calls, casts or notifications.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Where the broker is: `--url`, or oslo.config files.
#[derive(Debug, Clone, Args)]
pub(crate) struct TransportArgs {
    /// Transport URL, e.g. rabbit://user:password@host:5672/vhost. Without
    /// --url and --config, the OM_TRANSPORT_URL environment variable is used
    /// (keeps the password out of the process list). With --config too, it
    /// replaces the file's transport_url and the file still supplies the
    /// driver options and control_exchange.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,

    /// oslo.config file of a service (nova.conf, neutron.conf, ...): RPC uses
    /// [DEFAULT] transport_url, notifications [oslo_messaging_notifications]
    /// transport_url (else [DEFAULT]'s), with the file's driver options and
    /// control_exchange. Repeatable; later files override earlier ones.
    #[arg(long = "config", value_name = "FILE")]
    pub(crate) config: Vec<PathBuf>,

    /// Directory whose *.conf files are read after --config, in sorted order
    /// (oslo's --config-dir). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub(crate) config_dir: Vec<PathBuf>,

    /// Connection and publish retries once connected: 0 fails at once, -1
    /// retries forever (oslo's convention).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub(crate) retry: i64,

    /// Time allowed to reach and log in to each broker before giving up
    /// (exit code 5), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub(crate) connect_timeout: f64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RpcCommand {
    /// Call a method and print its result (or the remote error) as JSON.
    #[command(after_help = EXIT_CODES_HELP)]
    Call(CallArgs),
    /// Cast a method (no reply). Prints nothing on success.
    #[command(after_help = EXIT_CODES_HELP)]
    Cast(CallArgs),
    /// Serve echo, sleep, fail, context and oslo_rpc_server_ping on a topic
    /// and server; prints one JSON line per handled request.
    ///
    /// Methods: echo(**kwargs) returns its keyword arguments; sleep(seconds)
    /// sleeps, heartbeating when the caller set a call-monitor timeout;
    /// fail(message) raises ValueError(message); context() returns the request
    /// context it received; oslo_rpc_server_ping() returns "pong". Stops
    /// cleanly (finishing and answering requests in progress) on SIGINT or
    /// SIGTERM, and when standard input is closed with --until-stdin-closes.
    Responder(ResponderArgs),
}

/// Arguments of `om rpc call` and `om rpc cast`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    pub(crate) transport: TransportArgs,

    /// Topic of the target (the service's RPC topic: compute, conductor, ...).
    #[arg(long)]
    pub(crate) topic: String,

    /// Only this server of the topic (e.g. a host name).
    #[arg(long)]
    pub(crate) server: Option<String>,

    /// Exchange (default: control_exchange, `openstack` unless configured).
    #[arg(long)]
    pub(crate) exchange: Option<String>,

    /// Cast to every server of the topic (casts only).
    #[arg(long)]
    pub(crate) fanout: bool,

    /// Namespace of the endpoint.
    #[arg(long)]
    pub(crate) namespace: Option<String>,

    /// Version the request needs (major.minor).
    #[arg(long)]
    pub(crate) version: Option<String>,

    /// Overall time limit of a call, in seconds (default: rpc_response_timeout
    /// of --config, else 60). Exit code 4 when it expires.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,

    /// Fail a call when the server sent no heartbeat for this long (servers
    /// heartbeat every half of it while the method runs).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) call_monitor_timeout: Option<f64>,

    /// Request context, a JSON object (inline, @FILE or -), e.g.
    /// '{"request_id": "req-1", "user": "admin"}'.
    #[arg(long, value_name = "JSON")]
    pub(crate) context: Option<String>,

    /// Print the result indented.
    #[arg(long)]
    pub(crate) pretty: bool,

    /// Method name.
    pub(crate) method: String,

    /// Keyword arguments, a JSON object: inline, @FILE, or - for standard
    /// input. Default {}.
    #[arg(value_name = "ARGS-JSON")]
    pub(crate) args: Option<String>,
}

/// Arguments of `om rpc responder`.
#[derive(Debug, Args)]
pub(crate) struct ResponderArgs {
    #[command(flatten)]
    pub(crate) transport: TransportArgs,

    /// Topic to serve.
    #[arg(long)]
    pub(crate) topic: String,

    /// Server name (requests for topic.server, and the topic's shared and
    /// fanout queues).
    #[arg(long)]
    pub(crate) server: String,

    /// Exchange (default: control_exchange).
    #[arg(long)]
    pub(crate) exchange: Option<String>,

    /// Namespace served by the endpoint (default: the null namespace).
    #[arg(long)]
    pub(crate) namespace: Option<String>,

    /// Highest version served (major.minor; requests need the same major
    /// and at most this minor). Default 1.0.
    #[arg(long)]
    pub(crate) version: Option<String>,

    /// Also stop when standard input reaches end of file (for scripts and
    /// tests that hold a pipe open).
    #[arg(long)]
    pub(crate) until_stdin_closes: bool,

    /// Requests processed at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) workers: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NotifyCommand {
    /// Send one notification.
    #[command(after_help = EXIT_CODES_HELP)]
    Send(SendArgs),
    /// Follow notifications live.
    ///
    /// Without --pool, om consumes from the topic's shared queues
    /// (notifications.info, ...), exactly like the service consuming them
    /// in production (ceilometer, searchlight, ...): the messages om shows
    /// are taken from that consumer, which never sees them. With --pool
    /// NAME, om reads its own copy of every notification from a queue named
    /// NAME, and the production consumers keep all their messages. On exit
    /// the pool's queue is deleted when no other consumer uses it (RabbitMQ;
    /// --keep-pool keeps it, and it then collects copies until deleted).
    ///
    /// A notification is acknowledged once its line is written to standard
    /// output. When standard output closes (the reader went away, as with
    /// `| head`), the notification om could not write and those it had not
    /// shown yet go back to the queue; lines already written into a pipe
    /// that its reader then left unread are not taken back.
    #[command(after_help = EXIT_CODES_HELP)]
    Tail(TailArgs),
}

/// The notification drivers `om notify send` can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SendDriver {
    /// The 2.0 envelope (what services configure today).
    Messagingv2,
    /// The bare legacy "1.0" message.
    Messaging,
}

/// Arguments of `om notify send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) transport: TransportArgs,

    /// Topic; the notification goes to TOPIC.PRIORITY (default: the topics of
    /// --config's [oslo_messaging_notifications], else `notifications`).
    #[arg(long)]
    pub(crate) topic: Option<String>,

    /// Priority: audit, debug, info, warn, error, critical or sample.
    #[arg(long, default_value = "info")]
    pub(crate) priority: String,

    /// Event type, e.g. compute.instance.create.end.
    #[arg(long)]
    pub(crate) event_type: String,

    /// Publisher id, e.g. compute.host1.
    #[arg(long, default_value = "om-cli")]
    pub(crate) publisher_id: String,

    /// Context, a JSON object (inline, @FILE or -). An auth_token in it is
    /// sent as null, as oslo does.
    #[arg(long, value_name = "JSON")]
    pub(crate) context: Option<String>,

    /// Notification driver (default: --config's messaging driver, else
    /// messagingv2).
    #[arg(long, value_enum)]
    pub(crate) driver: Option<SendDriver>,

    /// Payload, any JSON value: inline, @FILE, or - for standard input.
    /// Default {}.
    #[arg(value_name = "PAYLOAD-JSON")]
    pub(crate) payload: Option<String>,
}

/// Arguments of `om notify tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    pub(crate) transport: TransportArgs,

    /// Topic to follow (every priority of it).
    #[arg(long, default_value = "notifications")]
    pub(crate) topic: String,

    /// Exchange (default: control_exchange).
    #[arg(long)]
    pub(crate) exchange: Option<String>,

    /// Read a copy from listener pool NAME instead of taking messages from
    /// the topic's consumers (see above).
    #[arg(long, value_name = "NAME")]
    pub(crate) pool: Option<String>,

    /// Keep the pool's queue on exit (it then keeps collecting copies).
    #[arg(long, requires = "pool")]
    pub(crate) keep_pool: bool,

    /// Only show notifications whose event type matches this regular
    /// expression (searched anywhere, like grep; anchor with ^ and $).
    #[arg(long, value_name = "REGEX")]
    pub(crate) event_type: Option<String>,

    /// One JSON object per line (priority, publisher_id, event_type, payload,
    /// ctxt, metadata) instead of the human-readable form.
    #[arg(long)]
    pub(crate) json: bool,

    /// Exit after showing N notifications.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Give up after this many seconds (exit code 4 when --count was not
    /// reached; 0 otherwise).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,

    /// Cut payloads longer than this many characters in the human-readable
    /// form (0: never).
    #[arg(long, value_name = "CHARS", default_value_t = 400)]
    pub(crate) max_payload: usize,
}

/// What `om bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchMode {
    /// Calls to an in-process server; latency = call round trip.
    Rpc,
    /// Casts to an in-process server; latency = send to arrival.
    Cast,
    /// Notifications to an in-process listener; latency = send to arrival.
    Notify,
}

/// Arguments of `om bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub(crate) mode: BenchMode,

    #[command(flatten)]
    pub(crate) transport: TransportArgs,

    /// Concurrent senders.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub(crate) concurrency: usize,

    /// How long to send, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub(crate) duration: f64,

    /// Payload size in bytes (a string argument of that length).
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub(crate) size: usize,

    /// Print the result as one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,

    /// How long to wait for casts and notifications still in flight after
    /// sending stopped, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub(crate) drain_timeout: f64,
}

const BENCH_HELP: &str = "\
The server (rpc, cast) or listener (notify) runs in this process on a fresh
topic (om_bench_<random>), removed at the end on RabbitMQ. Latencies are
exact percentiles of every message. A progress line is written to stderr
when it is a terminal.

--json prints one object: {\"mode\", \"driver\", \"url\" (password masked),
\"concurrency\", \"size_bytes\", \"duration_s\", \"elapsed_s\", \"sent\",
\"received\", \"errors\", \"lost\", \"throughput_per_s\", \"latency_ms\": {\"min\",
\"mean\", \"p50\", \"p90\", \"p99\", \"max\"}}.";

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective messaging configuration (every option, where it
    /// came from), passwords and secrets masked.
    #[command(after_help = EXIT_CODES_HELP)]
    Show(ShowArgs),
}

/// Arguments of `om config show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// oslo.config file(s); repeatable, later ones override earlier ones.
    #[arg(long = "config", value_name = "FILE", required = true)]
    pub(crate) config: Vec<PathBuf>,

    /// Directory of *.conf files read after --config. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub(crate) config_dir: Vec<PathBuf>,
}
