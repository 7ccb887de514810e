//! # om-cli: the `om` command-line tool
//!
//! `om` talks to an OpenStack cloud's message bus the way its services do
//! (it is built on the [`om`] crates, wire-compatible with Python
//! oslo.messaging 18.3.1), for the people who run it:
//!
//! | command | what it does |
//! |---------|--------------|
//! | `om rpc call` / `om rpc cast` | call (print the result or the remote error as JSON) or cast a method of a service |
//! | `om rpc responder` | a test RPC server: `echo`, `sleep`, `fail`, `context`, `oslo_rpc_server_ping` |
//! | `om notify send` | send one notification |
//! | `om notify tail` | follow notifications live (optionally from a listener pool, so production consumers keep theirs) |
//! | `om bench rpc\|cast\|notify` | load generator: throughput and p50/p90/p99/max latency |
//! | `om config show` | the effective messaging configuration of a service's config file, secrets masked |
//!
//! Every command that talks to a broker takes `--url URL` or `--config
//! FILE` (an oslo.config file such as `nova.conf`: RPC uses `[DEFAULT]
//! transport_url`, notifications `[oslo_messaging_notifications]`).
//!
//! ## Usage
//!
//! ```text
//! # Is nova-compute on host1 alive? (ping must be enabled: rpc_ping_enabled)
//! $ om rpc call --config /etc/nova/nova.conf --topic compute --server host1 oslo_rpc_server_ping
//! "pong"
//!
//! # A test server and a client, arguments inline, from a file or stdin
//! $ om rpc responder --url rabbit://guest:guest@127.0.0.1:5672/ --topic demo --server s1 &
//! $ om rpc call --url rabbit://guest:guest@127.0.0.1:5672/ --topic demo echo '{"a": 1}'
//! {"a":1}
//! $ echo '{"message": "no"}' | om rpc call --url rabbit://guest:guest@127.0.0.1:5672/ --topic demo fail -
//! {"error":{"class":"ValueError","module":"builtins","message":"no","remote":true,"traceback":[...]}}
//! $ echo $?
//! 3
//!
//! # Watch instance notifications without taking them from ceilometer
//! $ om notify tail --config /etc/nova/nova.conf --pool om-$USER --event-type '^compute\.instance\.'
//! 2024-05-01 12:00:00.123456 INFO     compute.host1            compute.instance.create.end {"instance_id":"..."}
//!
//! # 10 s of calls from 16 concurrent clients, machine-readable
//! $ om bench rpc --url rabbit://guest:guest@127.0.0.1:5672/ --concurrency 16 --duration 10 --json
//! ```
//!
//! ## Exit codes
//!
//! See [`ExitCode`]: 0 success, 1 other failure, 2 usage error (bad
//! arguments or JSON), 3 remote error, 4 timeout, 5 connection failure
//! (unreachable broker, bad credentials), 6 configuration error. `om
//! --help` lists them too.
//!
//! ## Errors and secrets
//!
//! Before anything else a command reaches the broker (an AMQP login on
//! RabbitMQ, a TCP connection otherwise), so an unreachable broker or
//! refused credentials end it at once with a message naming the host and
//! user. Passwords are never printed: URLs are shown masked
//! (`user:****@host`) and every password of the URL or configuration is
//! scrubbed from any message.
//!
//! ## Features
//!
//! `rabbit` and `config` by default; `kafka`, `amqp1`, `rabbit-tls`, and
//! `full` for all of them, as the `om` crate.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod args;
mod bench;
mod config_cmd;
mod connect;
mod error;
mod input;
mod notify;
mod output;
mod probe;
mod rpc;

pub use error::ExitCode;

use args::{Cli, Command, ConfigCommand, NotifyCommand, RpcCommand};
use clap::Parser;
use error::CliError;
use output::Out;
use std::ffi::OsString;

/// Runs `om` with the process's arguments and returns the exit code.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs `om` with the given arguments (the first is the program name) and
/// returns the exit code. Usage errors and `--help` are printed by clap.
///
/// ```
/// use om_cli::{run, ExitCode};
/// // A notification through the in-memory transport (prints its message id).
/// let code = run(["om", "notify", "send", "--url", "fake://", "--event-type", "demo.event", r#"{"k": 1}"#]);
/// assert_eq!(code, ExitCode::Ok);
/// // Bad JSON is a usage error, reported before any broker is contacted.
/// let code = run(["om", "rpc", "call", "--url", "fake://", "--topic", "t", "echo", "{oops"]);
/// assert_eq!(code, ExitCode::Usage);
/// ```
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("om: error: cannot start the async runtime: {e}");
            return ExitCode::Failure;
        }
    };
    let out = Out::default();
    let result = runtime.block_on(dispatch(cli.command, &out));
    // Do not wait for driver tasks still winding down (reconnect loops).
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => report(e, &out),
    }
}

async fn dispatch(command: Command, out: &Out) -> Result<ExitCode, CliError> {
    match command {
        Command::Rpc(RpcCommand::Call(a)) => rpc::call(a, false, out).await,
        Command::Rpc(RpcCommand::Cast(a)) => rpc::call(a, true, out).await,
        Command::Rpc(RpcCommand::Responder(a)) => rpc::responder(a, out).await,
        Command::Notify(NotifyCommand::Send(a)) => notify::send(a, out).await,
        Command::Notify(NotifyCommand::Tail(a)) => notify::tail(a, out).await,
        Command::Bench(a) => bench::bench(a, out).await,
        Command::Config(ConfigCommand::Show(a)) => config_cmd::show(a, out),
    }
}

/// Prints a failure: its JSON document (if any) on stdout, the message on
/// stderr; returns its exit code.
fn report(e: CliError, out: &Out) -> ExitCode {
    if let Some(json) = &e.json {
        let _ = out.line(&json.to_string());
    }
    if !e.message.is_empty() {
        eprintln!("om: error: {e}");
    }
    e.code
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // lapin reports every failed login or connection attempt at error
    // level; om's own messages say it better, so it is quiet unless asked.
    let default = match verbose {
        0 => "warn,lapin=off",
        1 => "info,lapin=warn",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("OM_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbingStderr)
        .with_ansi(output::stderr_is_terminal())
        .with_target(verbose > 0)
        .try_init();
}

/// Standard error with registered secrets scrubbed from every log line.
struct ScrubbingStderr;

impl std::io::Write for ScrubbingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = error::redact(&String::from_utf8_lossy(buf));
        std::io::stderr().lock().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert_eq!(run(["om", "rpc", "call"]), ExitCode::Usage);
        assert_eq!(run(["om", "--help"]), ExitCode::Ok);
        assert_eq!(
            run(["om", "bench", "nope", "--url", "fake://"]),
            ExitCode::Usage
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
