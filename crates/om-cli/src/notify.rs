//! `om notify send` and `om notify tail`.

use crate::args::{SendArgs, SendDriver, TailArgs};
use crate::connect::{open, seconds, Purpose};
use crate::error::{CliError, ExitCode};
use crate::input::{json_arg, object_arg};
use crate::output::{is_broken_pipe, write_error, Out};
use crate::rpc::termination;
use om::notify::{
    Endpoint, Notification, NotificationListener, NotificationResult, Notifier, NotifierDriver,
};
use om::{Context, Priority, Target};
use regex::Regex;
use serde_json::json;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

fn parse_priority(s: &str) -> Result<Priority, CliError> {
    s.parse::<Priority>().map_err(|_| {
        CliError::usage(format!(
            "--priority {s:?} is not a priority (audit, debug, info, warn, error, critical, sample)"
        ))
    })
}

/// `om notify send`.
pub(crate) async fn send(a: SendArgs, out: &Out) -> Result<ExitCode, CliError> {
    let priority = parse_priority(&a.priority)?;
    if a.payload.as_deref() == Some("-") && a.context.as_deref() == Some("-") {
        return Err(CliError::usage(
            "PAYLOAD-JSON and --context cannot both be read from standard input",
        ));
    }
    let payload = json_arg("PAYLOAD-JSON", a.payload.as_deref())?
        .unwrap_or_else(|| Value::Object(Default::default()));
    let ctx = Context::from(object_arg("--context", a.context.as_deref())?);
    if a.event_type.is_empty() {
        return Err(CliError::usage("--event-type must not be empty"));
    }
    let conn = open(&a.transport, Purpose::Notifications).await?;
    let topics: Vec<String> = match &a.topic {
        Some(t) => vec![t.clone()],
        None if !conn.settings.notification_topics.is_empty() => {
            conn.settings.notification_topics.clone()
        }
        None => vec!["notifications".to_owned()],
    };
    let driver = match a.driver.or(conn.settings.notification_driver) {
        Some(SendDriver::Messaging) => NotifierDriver::Messaging,
        Some(SendDriver::Messagingv2) | None => NotifierDriver::MessagingV2,
    };
    let message_id = om::core::uuid_dashed();
    let id = message_id.clone();
    let notifier = Notifier::builder(conn.transport.clone())
        .publisher_id(a.publisher_id.clone())
        .driver(driver)
        .topics(topics.clone())
        .retry(conn.retry)
        .message_id_generator(move || id.clone())
        .build();
    let result = notifier
        .notify(priority, &ctx, &a.event_type, payload)
        .await;
    conn.transport.cleanup().await;
    result?;
    let line = json!({
        "message_id": message_id,
        "priority": priority.as_upper(),
        "event_type": a.event_type,
        "topics": topics.iter().map(|t| format!("{t}.{}", priority.as_lower())).collect::<Vec<_>>(),
    });
    out.line(&line.to_string()).map_err(write_error)?;
    Ok(ExitCode::Ok)
}

/// What tail prints for one notification as JSON.
fn notification_json(n: &Notification) -> Value {
    json!({
        "priority": n.priority.as_lower(),
        "publisher_id": n.publisher_id,
        "event_type": n.event_type,
        "payload": n.payload,
        "ctxt": mask_context(&n.ctxt),
        "metadata": {"message_id": n.metadata.message_id, "timestamp": n.metadata.timestamp},
    })
}

/// The context with token-like values hidden (a notifier that does not
/// redact would otherwise put a live token on the terminal).
fn mask_context(ctx: &Context) -> Value {
    let mut m = ctx.0.clone();
    for (k, v) in m.iter_mut() {
        let key = k.to_ascii_lowercase();
        if (key.contains("token") || key.contains("password") || key.contains("secret"))
            && !v.is_null()
        {
            *v = Value::String("****".into());
        }
    }
    Value::Object(m)
}

/// The human-readable line: time, priority, publisher, event type and the
/// payload as compact JSON (cut at `max` characters when `max > 0`).
pub(crate) fn human_line(n: &Notification, max: usize) -> String {
    let time = n
        .metadata
        .timestamp
        .clone()
        .unwrap_or_else(om::notify::utcnow_timestamp);
    let payload = n.payload.to_string();
    let payload = if max > 0 && payload.chars().count() > max {
        let cut: String = payload.chars().take(max).collect();
        format!("{cut}... ({} chars)", payload.chars().count())
    } else {
        payload
    };
    format!(
        "{time:<26} {:<8} {:<24} {} {payload}",
        n.priority.as_upper(),
        n.publisher_id.as_deref().unwrap_or("-"),
        if n.event_type.is_empty() {
            "-"
        } else {
            &n.event_type
        },
    )
}

/// `om notify tail`.
pub(crate) async fn tail(a: TailArgs, out: &Out) -> Result<ExitCode, CliError> {
    let filter = a
        .event_type
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| {
            CliError::usage(format!(
                "--event-type is not a valid regular expression: {e}"
            ))
        })?;
    let deadline = a.timeout.map(|t| seconds("--timeout", t)).transpose()?;
    if a.count == Some(0) {
        return Err(CliError::usage("--count must be at least 1"));
    }
    if a.topic.is_empty() {
        return Err(CliError::usage("--topic must not be empty"));
    }
    let conn = open(&a.transport, Purpose::Notifications).await?;
    let requeue = conn.transport.capabilities().requeue;

    // Handlers take a slot (up to --count) and pass the notification on;
    // once every slot is taken, later ones go back to the broker (where
    // the driver can requeue) for the other consumers.
    // Each notification travels with a reply: acknowledged once printed,
    // handed back to the broker when it could not be (stdout closed,
    // stopping).
    let (tx, mut rx) = mpsc::unbounded_channel::<(Notification, oneshot::Sender<bool>)>();
    let taken = Arc::new(AtomicU64::new(0));
    let limit = a.count.unwrap_or(u64::MAX);
    let mut endpoint = Endpoint::new();
    for p in Priority::ALL {
        let tx = tx.clone();
        let taken = taken.clone();
        let filter = filter.clone();
        endpoint = endpoint.on(p, move |n: Notification| {
            let tx = tx.clone();
            let taken = taken.clone();
            let filter = filter.clone();
            async move {
                if let Some(re) = &filter {
                    if !re.is_match(&n.event_type) {
                        return NotificationResult::Handled;
                    }
                }
                let got = taken.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    (v < limit).then_some(v + 1)
                });
                if got.is_err() {
                    return NotificationResult::Requeue;
                }
                let (done_tx, done_rx) = oneshot::channel();
                if tx.send((n, done_tx)).is_err() {
                    return NotificationResult::Requeue;
                }
                match done_rx.await {
                    Ok(true) => NotificationResult::Handled,
                    _ => NotificationResult::Requeue,
                }
            }
        });
    }
    drop(tx);
    let mut target = Target::new(a.topic.clone());
    target.exchange = a.exchange.clone();
    let mut builder = NotificationListener::builder(conn.transport.clone())
        .target(target.clone())
        .endpoint(endpoint)
        .executor_pool_size(1)
        .allow_requeue(requeue);
    if let Some(pool) = &a.pool {
        builder = builder.pool(pool.clone());
    }
    if a.count.is_some() {
        builder = builder.prefetch(1);
    }
    let listener = builder.build()?;
    listener.start().await?;
    eprintln!(
        "om: following notifications on topic {:?} ({}{}); Ctrl-C to stop",
        a.topic,
        conn.masked_url(),
        match &a.pool {
            Some(p) => format!(", pool {p:?}"),
            None => ", no pool: taking messages from the topic's consumers".to_owned(),
        }
    );

    let mut shown = 0u64;
    let mut code = ExitCode::Ok;
    let mut failure = None;
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(sleep);
    let stop = termination();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            n = rx.recv() => {
                let Some((n, done)) = n else { break };
                let text = if a.json { notification_json(&n).to_string() } else { human_line(&n, a.max_payload) };
                let printed = out.line(&text);
                let _ = done.send(printed.is_ok());
                if let Err(e) = printed {
                    if !is_broken_pipe(&e) {
                        failure = Some(write_error(e));
                    }
                    break;
                }
                shown += 1;
                if shown >= limit {
                    break;
                }
            }
            _ = &mut sleep => {
                if a.count.is_some() {
                    code = ExitCode::Timeout;
                    failure = Some(CliError::new(
                        ExitCode::Timeout,
                        format!("timed out: {shown} of {limit} notification(s) within {:?}", deadline.unwrap_or_default()),
                    ));
                }
                break;
            }
            _ = &mut stop => break,
        }
    }
    // Notifications taken from now on go back to the broker.
    drop(rx);
    listener.stop().await;
    listener.wait().await;
    conn.transport.cleanup().await;
    if let (Some(pool), false) = (&a.pool, a.keep_pool) {
        crate::probe::delete_rabbit(&conn.url, std::slice::from_ref(pool), &[], true).await;
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use om::notify::Metadata;

    fn n(payload: Value) -> Notification {
        Notification {
            ctxt: Context::new().with("auth_token", "tok").with("user", "u1"),
            publisher_id: Some("compute.host1".into()),
            event_type: "compute.instance.create.end".into(),
            priority: Priority::Info,
            payload,
            metadata: Metadata {
                message_id: Some("m-1".into()),
                timestamp: Some("2024-05-01 12:00:00.123456".into()),
            },
        }
    }

    #[test]
    fn human_and_json_forms() {
        let line = human_line(&n(json!({"id": 1})), 400);
        assert_eq!(
            line,
            "2024-05-01 12:00:00.123456 INFO     compute.host1            compute.instance.create.end {\"id\":1}"
        );
        let long = human_line(&n(json!({"k": "x".repeat(50)})), 10);
        assert!(long.ends_with("{\"k\":\"xxxx... (58 chars)"), "{long}");
        let j = notification_json(&n(json!([1])));
        assert_eq!(j["priority"], "info");
        assert_eq!(j["ctxt"]["auth_token"], "****");
        assert_eq!(j["ctxt"]["user"], "u1");
        assert_eq!(j["metadata"]["message_id"], "m-1");
    }

    #[test]
    fn priorities() {
        assert_eq!(parse_priority("WARNING").unwrap(), Priority::Warn);
        assert_eq!(parse_priority("nope").unwrap_err().code, ExitCode::Usage);
    }
}
