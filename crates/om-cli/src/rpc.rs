//! `om rpc call`, `om rpc cast` and `om rpc responder`.

use crate::args::{CallArgs, ResponderArgs};
use crate::connect::{open, seconds, Purpose};
use crate::error::{error_json, CliError, ExitCode};
use crate::input::object_arg;
use crate::output::Out;
use om::rpc::{Endpoint, HandlerError, RpcClient, RpcServer};
use om::{Context, Target};
use serde::Deserialize;
use serde_json::json;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

fn target(a: &CallArgs) -> Result<Target, CliError> {
    let mut t = Target::new(a.topic.clone());
    t.server = a.server.clone();
    t.exchange = a.exchange.clone();
    t.namespace = a.namespace.clone();
    t.fanout = a.fanout;
    if let Some(v) = &a.version {
        om::version::Version::parse(v).map_err(|e| CliError::usage(format!("--version: {e}")))?;
        t.version = Some(v.clone());
    }
    Ok(t)
}

/// `om rpc call` (`cast == false`) and `om rpc cast`.
pub(crate) async fn call(a: CallArgs, cast: bool, out: &Out) -> Result<ExitCode, CliError> {
    // Everything the user typed is checked before the broker is contacted.
    let target = target(&a)?;
    if a.fanout && !cast {
        return Err(CliError::usage(
            "--fanout is for casts: a call needs one server to reply",
        ));
    }
    if a.args.as_deref() == Some("-") && a.context.as_deref() == Some("-") {
        return Err(CliError::usage(
            "ARGS-JSON and --context cannot both be read from standard input",
        ));
    }
    let kwargs = object_arg("ARGS-JSON", a.args.as_deref())?;
    let ctx = Context::from(object_arg("--context", a.context.as_deref())?);
    let timeout = a.timeout.map(|t| seconds("--timeout", t)).transpose()?;
    let monitor = a
        .call_monitor_timeout
        .map(|t| seconds("--call-monitor-timeout", t))
        .transpose()?;

    let conn = open(&a.transport, Purpose::Rpc).await?;
    let timeout = timeout
        .or(conn.settings.rpc_response_timeout)
        .unwrap_or(om::rpc::DEFAULT_TIMEOUT);
    let mut builder = RpcClient::builder(conn.transport.clone(), target.clone())
        .timeout(timeout)
        .retry(conn.retry);
    if let Some(m) = monitor {
        builder = builder.call_monitor_timeout(m);
    }
    let client = builder.build();
    let span = tracing::info_span!("om_cli.rpc", method = %a.method, target = %target, cast);
    let result = async {
        if cast {
            client
                .cast(&ctx, &a.method, Value::Object(kwargs))
                .await
                .map(|()| None)
        } else {
            client
                .call_value(&ctx, &a.method, Value::Object(kwargs))
                .await
                .map(Some)
        }
    }
    .instrument(span)
    .await;
    conn.transport.cleanup().await;
    match result {
        Ok(None) => Ok(ExitCode::Ok),
        Ok(Some(v)) => {
            let text = if a.pretty {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            }
            .map_err(|e| CliError::failure(format!("cannot print the result: {e}")))?;
            out.line(&text).map_err(crate::output::write_error)?;
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            let json = error_json(&e);
            let mut err = CliError::from(e);
            if err.code == ExitCode::Timeout {
                err.message.push_str(&format!(
                    " (is a server listening on topic {:?}{}? --timeout was {:?})",
                    a.topic,
                    a.server
                        .as_deref()
                        .map(|s| format!(", server {s:?}"))
                        .unwrap_or_default(),
                    timeout
                ));
            }
            Err(err.with_json(json))
        }
    }
}

#[derive(Deserialize)]
struct SleepArgs {
    seconds: f64,
}

#[derive(Deserialize)]
struct FailArgs {
    #[serde(default = "default_fail_message")]
    message: String,
}

fn default_fail_message() -> String {
    "failure requested".to_owned()
}

/// The responder's endpoint; `report` prints one line per request.
fn responder_endpoint(a: &ResponderArgs, report: Arc<dyn Fn(Value) + Send + Sync>) -> Endpoint {
    let mut ep = Endpoint::new();
    if let Some(ns) = &a.namespace {
        ep = ep.namespace(ns.clone());
    }
    if let Some(v) = &a.version {
        ep = ep.version(v.clone());
    }
    let r = report.clone();
    let ep = ep.raw_method("echo", move |ctx: Context, args| {
        let r = r.clone();
        async move {
            r(json!({"event": "handled", "method": "echo", "ctxt": ctx.0, "args": args}));
            Ok(Value::Object(args))
        }
    });
    let r = report.clone();
    let ep = ep.method("sleep", move |ctx: Context, args: SleepArgs| {
        let r = r.clone();
        async move {
            r(json!({"event": "handled", "method": "sleep", "ctxt": ctx.0, "args": {"seconds": args.seconds}}));
            let d = Duration::try_from_secs_f64(args.seconds.max(0.0))
                .map_err(|e| HandlerError::value_error(format!("bad seconds: {e}")))?;
            tokio::time::sleep(d).await;
            Ok(args.seconds)
        }
    });
    let r = report.clone();
    let ep = ep.method("fail", move |ctx: Context, args: FailArgs| {
        let r = r.clone();
        async move {
            r(json!({"event": "handled", "method": "fail", "ctxt": ctx.0, "args": {"message": args.message}}));
            Err::<(), _>(HandlerError::value_error(args.message))
        }
    });
    let r = report;
    ep.method("context", move |ctx: Context, _: ()| {
        let r = r.clone();
        async move {
            r(json!({"event": "handled", "method": "context", "ctxt": ctx.0, "args": {}}));
            Ok(Value::Object(ctx.0))
        }
    })
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves when standard input reaches end of file (or fails).
pub(crate) async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// `om rpc responder`.
pub(crate) async fn responder(a: ResponderArgs, out: &Out) -> Result<ExitCode, CliError> {
    if let Some(v) = &a.version {
        om::version::Version::parse(v).map_err(|e| CliError::usage(format!("--version: {e}")))?;
    }
    if a.workers == 0 {
        return Err(CliError::usage("--workers must be at least 1"));
    }
    let conn = open(&a.transport, Purpose::Rpc).await?;
    let mut target = Target::new(a.topic.clone()).with_server(a.server.clone());
    target.exchange = a.exchange.clone();
    let handled = Arc::new(AtomicU64::new(0));
    let out2 = out.clone();
    let h = handled.clone();
    let report: Arc<dyn Fn(Value) + Send + Sync> = Arc::new(move |v: Value| {
        h.fetch_add(1, Ordering::Relaxed);
        // A closed stdout only loses the report, never the reply.
        let _ = out2.line(&v.to_string());
    });
    let server = RpcServer::builder(conn.transport.clone(), target.clone())
        .endpoint(responder_endpoint(&a, report))
        .ping_enabled(true)
        .executor_pool_size(a.workers)
        .build()?;
    let shutdown = server.start().await?;
    eprintln!(
        "om: responder ready on {} ({}); methods echo, sleep, fail, context, oslo_rpc_server_ping",
        target,
        conn.masked_url()
    );
    let until_stdin = a.until_stdin_closes;
    tokio::select! {
        _ = termination() => {}
        _ = async { if until_stdin { stdin_closed().await } else { std::future::pending::<()>().await } } => {}
        _ = shutdown.requested() => {}
    }
    eprintln!("om: responder stopping (finishing requests in progress)");
    server.stop().await?;
    server.wait().await?;
    conn.transport.cleanup().await;
    eprintln!(
        "om: responder stopped after {} request(s)",
        handled.load(Ordering::Relaxed)
    );
    Ok(ExitCode::Ok)
}
