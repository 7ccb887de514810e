//! The conformance cases. Each body takes the transport URL and returns
//! `Err(Failure)` on the first broken expectation.

use super::{logs, scaled, Capability, Case, CaseFuture, Failure};
use crate::{
    IncomingMessage, ListenOptions, Listener, Notification, ReplyEvent, ReplyStream, Retry,
    RpcRequest, Transport, TransportOptions,
};
use om_core::envelope::Format;
use om_core::{Error, JsonObject, Priority, RemoteError, Target, Value};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// The default time limit of a case.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// How long to wait for a message that must come (generous: only a
/// failing case waits that long, and CI machines are busy).
const RECV: Duration = Duration::from_secs(30);
/// How long to watch for a message that must not come.
const QUIET: Duration = Duration::from_millis(700);

macro_rules! build_all {
    ( ; $($name:ident [$($cap:ident),*]),* $(,)?) => {
        $(
            fn $name(url: String) -> CaseFuture {
                Box::pin(bodies::$name(url))
            }
        )*
        /// Every case, in list order.
        pub(super) static ALL: &[Case] = &[
            $(
                Case {
                    name: stringify!($name),
                    requires: &[$(Capability::$cap),*],
                    time_limit: TIME_LIMIT,
                    body: $name,
                },
            )*
        ];
    };
}

crate::__om_conformance_case_list!([build_all]());

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($arg)+)));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($arg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(Failure(format!(
                "{}: expected {:?}, got {:?}",
                format!($($arg)+),
                r,
                l
            )));
        }
    }};
}

// ---------------------------------------------------------------- helpers

type L = Box<dyn Listener>;

fn uniq(prefix: &str) -> String {
    format!("omc_{prefix}_{}", om_core::uuid_hex())
}

fn obj(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        _ => JsonObject::new(),
    }
}

fn request(method: &str, args: Value) -> JsonObject {
    obj(json!({"method": method, "args": args}))
}

/// The timeout of a call that must succeed (within the case's time limit).
fn call_timeout() -> Duration {
    scaled(Duration::from_secs(45))
}

async fn open(url: &str) -> Result<Transport, Failure> {
    Transport::from_url(url)
        .await
        .map_err(|e| Failure(format!("cannot open a transport: {e}")))
}

async fn open_with_exchange(url: &str, exchange: &str) -> Result<Transport, Failure> {
    Transport::builder(url)
        .control_exchange(exchange)
        .open()
        .await
        .map_err(|e| Failure(format!("cannot open a transport: {e}")))
}

async fn server(t: &Transport, target: Target) -> Result<L, Failure> {
    t.driver()
        .listen(target.clone(), ListenOptions::default())
        .await
        .map_err(|e| Failure(format!("listen({target}) failed: {e}")))
}

async fn servers(t: &Transport, topic: &str, names: &[&str]) -> Result<Vec<L>, Failure> {
    let mut v = Vec::new();
    for n in names {
        v.push(server(t, Target::new(topic).with_server(*n)).await?);
    }
    Ok(v)
}

async fn listen_notifications(
    t: &Transport,
    targets: Vec<(Target, Priority)>,
    pool: Option<&str>,
) -> Result<L, Failure> {
    t.driver()
        .listen_for_notifications(targets, pool.map(str::to_owned), ListenOptions::default())
        .await
        .map_err(|e| Failure(format!("listen_for_notifications failed: {e}")))
}

async fn call(t: &Transport, req: RpcRequest) -> Result<ReplyStream, Failure> {
    match t.driver().send(req).await? {
        Some(s) => Ok(s),
        None => Err(Failure("send() of a call returned no reply stream".into())),
    }
}

async fn cast(t: &Transport, target: Target, msg: JsonObject) -> Result<(), Failure> {
    match t.driver().send(RpcRequest::cast(target, msg)).await? {
        None => Ok(()),
        Some(_) => Err(Failure("send() of a cast returned a reply stream".into())),
    }
}

async fn recv(l: &mut L, what: &str) -> Result<IncomingMessage, Failure> {
    let wait = scaled(RECV);
    match timeout(wait, l.next()).await {
        Err(_) => Err(Failure(format!("{what}: no message within {wait:?}"))),
        Ok(None) => Err(Failure(format!("{what}: the listener ended"))),
        Ok(Some(Err(e))) => Err(Failure(format!("{what}: the listener reported {e}"))),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

/// Receives one message and acknowledges it.
async fn take(l: &mut L, what: &str) -> Result<IncomingMessage, Failure> {
    let m = recv(l, what).await?;
    m.acknowledge().await?;
    Ok(m)
}

async fn quiet(l: &mut L, what: &str) -> Result<(), Failure> {
    match timeout(scaled(QUIET), l.next()).await {
        Err(_) | Ok(None) => Ok(()),
        Ok(Some(Ok(m))) => Err(Failure(format!(
            "{what}: unexpected message {:?}",
            m.message
        ))),
        Ok(Some(Err(e))) => Err(Failure(format!("{what}: unexpected listener error {e}"))),
    }
}

async fn reply_event(s: &mut ReplyStream, what: &str) -> Result<ReplyEvent, Failure> {
    let wait = scaled(RECV);
    match timeout(wait, s.next()).await {
        Err(_) => Err(Failure(format!("{what}: no reply within {wait:?}"))),
        Ok(None) => Err(Failure(format!("{what}: the reply stream ended"))),
        Ok(Some(e)) => Ok(e),
    }
}

async fn no_reply(s: &mut ReplyStream, what: &str) -> Result<(), Failure> {
    match timeout(scaled(QUIET), s.next()).await {
        Err(_) | Ok(None) => Ok(()),
        Ok(Some(e)) => Err(Failure(format!("{what}: unexpected reply {e:?}"))),
    }
}

/// Reads (and acknowledges) messages until `seen` reaches `total` and the
/// listener stays quiet, or nothing came for a long time.
async fn collect(
    mut l: L,
    seen: Arc<AtomicUsize>,
    total: usize,
) -> Result<(L, Vec<IncomingMessage>), Failure> {
    let mut out = Vec::new();
    let slice = scaled(QUIET);
    let give_up = scaled(RECV);
    let mut idle = Duration::ZERO;
    loop {
        match timeout(slice, l.next()).await {
            Ok(Some(Ok(m))) => {
                m.acknowledge().await?;
                seen.fetch_add(1, Ordering::SeqCst);
                out.push(m);
                idle = Duration::ZERO;
            }
            Ok(Some(Err(e))) => return Err(Failure(format!("listener reported {e}"))),
            Ok(None) => break,
            Err(_) => {
                idle += slice;
                if seen.load(Ordering::SeqCst) >= total || idle >= give_up {
                    break;
                }
            }
        }
    }
    Ok((l, out))
}

/// Collects from several listeners sharing one expected total, in parallel.
async fn collect_all(
    listeners: Vec<L>,
    total: usize,
) -> Result<Vec<(L, Vec<IncomingMessage>)>, Failure> {
    let seen = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(collect(l, seen.clone(), total)))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        match h.await {
            Ok(r) => out.push(r?),
            Err(e) => return Err(Failure(format!("a collecting task failed: {e}"))),
        }
    }
    Ok(out)
}

async fn cleanup_all(listeners: Vec<L>) -> Result<(), Failure> {
    for l in listeners {
        l.cleanup().await?;
    }
    Ok(())
}

fn arg_i(m: &IncomingMessage) -> Option<i64> {
    m.message
        .get("args")
        .and_then(|a| a.get("i"))
        .and_then(Value::as_i64)
}

fn notification(
    topic: &str,
    priority: Priority,
    event: &str,
    payload: Value,
    format: Format,
) -> Notification {
    let msg = obj(json!({
        "message_id": om_core::uuid_dashed(),
        "publisher_id": "conformance.host1",
        "event_type": event,
        "priority": priority.as_upper(),
        "payload": payload,
        "timestamp": "2024-01-02 03:04:05.000006",
    }));
    Notification::new(
        Target::new(format!("{topic}.{}", priority.as_lower())),
        msg,
        format,
    )
}

async fn notify(t: &Transport, n: Notification) -> Result<(), Failure> {
    t.driver().send_notification(n).await?;
    Ok(())
}

/// The received context must be the sent one, plus at most `client_timeout: null`.
fn check_notification_ctxt(got: &JsonObject, sent: &JsonObject) -> Result<(), Failure> {
    for (k, v) in sent {
        ensure_eq!(got.get(k), Some(v), "context key {k}");
    }
    for (k, v) in got {
        if !sent.contains_key(k) {
            ensure!(
                k == "client_timeout" && v.is_null(),
                "unexpected context key {k} = {v} in a notification"
            );
        }
    }
    Ok(())
}

fn event_types(msgs: &[IncomingMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            m.message
                .get("event_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn expect_undeliverable(r: Result<Option<ReplyStream>, Error>, what: &str) -> Result<(), Failure> {
    match r {
        Err(Error::MessageUndeliverable { .. }) => Ok(()),
        Err(e) => Err(Failure(format!(
            "{what}: expected MessageUndeliverable, got {}: {e}",
            e.oslo_name()
        ))),
        Ok(_) => Err(Failure(format!(
            "{what}: expected MessageUndeliverable, the send succeeded"
        ))),
    }
}

fn expect_invalid_target<T>(r: Result<T, Error>, what: &str) -> Result<(), Failure> {
    match r {
        Err(Error::InvalidTarget { .. }) => Ok(()),
        Err(e) => Err(Failure(format!(
            "{what}: expected InvalidTarget, got {}: {e}",
            e.oslo_name()
        ))),
        Ok(_) => Err(Failure(format!(
            "{what}: expected InvalidTarget, it succeeded"
        ))),
    }
}

// ---------------------------------------------------------------- cases

#[allow(clippy::result_large_err)]
mod bodies {
    use super::*;

    /// A transport opens, names its driver, and cleans up twice harmlessly.
    pub(super) async fn transport_opens_and_cleans_up(url: String) -> Result<(), Failure> {
        let t = open(&url).await?;
        ensure!(!t.driver_name().is_empty(), "the driver has an empty name");
        let scheme = t.url().driver().to_owned();
        ensure!(
            crate::registered_schemes().contains(&scheme),
            "scheme {scheme} is not in the registry"
        );
        t.cleanup().await;
        t.cleanup().await;
        let t2 = open(&url).await?;
        t2.cleanup().await;
        Ok(())
    }

    /// A password in the transport URL shows up nowhere: not in the
    /// transport's `Debug` or URL `Display`, not in the error of a send
    /// (with `retry = 0`) that the broker may refuse for the wrong
    /// password, not in anything logged at `DEBUG` or above by any thread
    /// meanwhile. The password is unique to this case, and a host without
    /// a user name gets one, so drivers that pass credentials on get them.
    pub(super) async fn credentials_stay_out_of_errors_and_logs(
        url: String,
    ) -> Result<(), Failure> {
        let secret = format!("omc-Pw-{}", om_core::uuid_hex());
        let mut parsed = om_core::TransportUrl::parse(&url)
            .map_err(|e| Failure(format!("the suite's URL does not parse: {e}")))?;
        if parsed.hosts.is_empty() {
            parsed
                .hosts
                .push(om_core::TransportHost::new("localhost", None));
        }
        for h in &mut parsed.hosts {
            h.username.get_or_insert_with(|| "omc".to_owned());
            h.password = Some(om_core::url::Secret::new(secret.clone()));
        }
        let with_secret = parsed.to_string_with_secrets();
        ensure!(
            with_secret.contains(&secret),
            "the URL with the test password lost it: cannot run this case"
        );
        let capture = logs::LogCapture::start().map_err(Failure)?;
        let mut shown: Vec<(&str, String)> = Vec::new();
        let topic = uniq("secret");
        let wait = scaled(Duration::from_secs(40));
        let attempt = async {
            match Transport::from_url(&with_secret).await {
                Err(e) => shown.push(("the error of Transport::from_url", format!("{e}\n{e:?}"))),
                Ok(t) => {
                    shown.push(("the transport's Debug", format!("{t:?}")));
                    shown.push(("the transport URL's Display", t.url().to_string()));
                    let caps = t.capabilities();
                    let sent = if caps.rpc {
                        t.driver()
                            .send(
                                RpcRequest::cast(Target::new(&topic), request("m", json!({})))
                                    .with_retry(Retry::Limited(0)),
                            )
                            .await
                            .map(|_| ())
                    } else if caps.notifications {
                        let n = notification(&topic, Priority::Info, "e", json!({}), Format::V2)
                            .with_retry(Retry::Limited(0));
                        t.driver().send_notification(n).await
                    } else {
                        Ok(())
                    };
                    if let Err(e) = sent {
                        shown.push(("the error of a send", format!("{e}\n{e:?}")));
                    }
                    t.cleanup().await;
                }
            }
        };
        ensure!(
            timeout(wait, attempt).await.is_ok(),
            "opening a transport and sending with retry = 0 did not end within {wait:?}"
        );
        // Client libraries' threads may log a little after the fact.
        tokio::time::sleep(scaled(Duration::from_millis(500))).await;
        shown.push(("the log", capture.text()));
        drop(capture);
        let lines: usize = shown.iter().map(|(_, text)| text.lines().count()).sum();
        let checked: Vec<&str> = shown.iter().map(|(what, _)| *what).collect();
        println!(
            "conformance: credentials_stay_out_of_errors_and_logs: {lines} line(s) checked in {}",
            checked.join(", ")
        );
        for (what, text) in &shown {
            if let Some(line) = text.lines().find(|l| l.contains(&secret)) {
                return Err(Failure(format!(
                    "the URL's password appears in {what}: {}",
                    line.replace(&secret, "<the password>")
                )));
            }
        }
        Ok(())
    }

    /// A call's request reaches the server with its message and context
    /// (plus `client_timeout: null`); the reply comes back unchanged.
    pub(super) async fn call_round_trip_with_context(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("rt");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let ctxt = obj(json!({
            "user": "bob", "roles": ["admin"], "nested": {"a": [1, 2]},
            "empty": null, "request_id": "req-1",
        }));
        let msg = request("echo", json!({"a": 1, "b": "x"}));
        let mut stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), msg.clone(), call_timeout())
                .with_context(ctxt.clone()),
        )
        .await?;
        let m = take(&mut srv, "the call").await?;
        ensure!(m.is_call(), "the request is not a call");
        ensure_eq!(m.message, msg, "request message");
        let mut expected = ctxt.clone();
        expected.insert("client_timeout".into(), Value::Null);
        ensure_eq!(m.ctxt, expected, "request context");
        ensure_eq!(m.client_timeout, None, "client_timeout");
        m.reply(Ok(json!({"a": 1, "b": "x"}))).await?;
        ensure_eq!(
            reply_event(&mut stream, "the reply").await?,
            ReplyEvent::Final(Ok(json!({"a": 1, "b": "x"}))),
            "reply"
        );
        no_reply(&mut stream, "after the final reply").await?;
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// The call-monitor timeout reaches the server as `client_timeout`, in
    /// the context and on the message, integer or fractional.
    pub(super) async fn call_context_carries_client_timeout(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("ct");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        for (monitor, expected) in [(5.0, json!(5)), (2.5, json!(2.5))] {
            let mut stream = call(
                &client,
                RpcRequest::call(Target::new(&topic), request("m", json!({})), call_timeout())
                    .with_context(obj(json!({"user": "u"})))
                    .with_call_monitor_timeout(Some(monitor)),
            )
            .await?;
            let m = take(&mut srv, "the call").await?;
            ensure_eq!(
                m.client_timeout,
                Some(monitor),
                "IncomingMessage::client_timeout"
            );
            ensure_eq!(
                m.ctxt.get("client_timeout"),
                Some(&expected),
                "context client_timeout"
            );
            ensure_eq!(m.ctxt.get("user"), Some(&json!("u")), "context user");
            m.reply(Ok(Value::Null)).await?;
            ensure_eq!(
                reply_event(&mut stream, "reply").await?,
                ReplyEvent::Final(Ok(Value::Null)),
                "reply"
            );
        }
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Results of every JSON type, falsy ones included, come back as sent.
    pub(super) async fn call_results_keep_json_types(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("types");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let values = [
            json!(0),
            json!(""),
            json!(false),
            Value::Null,
            json!([]),
            json!({}),
            json!(-7),
            json!(1.5),
            json!(12345678901234567_i64),
            json!([1, "a", null, {"k": [true]}]),
            json!({"k": {"n": 1.25, "s": "é"}}),
        ];
        for v in values {
            let mut stream = call(
                &client,
                RpcRequest::call(
                    Target::new(&topic),
                    request("ret", json!({"v": v.clone()})),
                    call_timeout(),
                ),
            )
            .await?;
            let m = take(&mut srv, "the call").await?;
            m.reply(Ok(v.clone())).await?;
            ensure_eq!(
                reply_event(&mut stream, "reply").await?,
                ReplyEvent::Final(Ok(v.clone())),
                "result {v}"
            );
        }
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Each call has a fresh, non-empty id, and the server sees that id.
    pub(super) async fn call_ids_are_fresh_and_match(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("ids");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let mut streams = Vec::new();
        for i in 0..5 {
            streams.push(
                call(
                    &client,
                    RpcRequest::call(
                        Target::new(&topic),
                        request("m", json!({"i": i})),
                        call_timeout(),
                    ),
                )
                .await?,
            );
        }
        let sent: BTreeSet<String> = streams.iter().map(|s| s.msg_id().to_owned()).collect();
        ensure_eq!(sent.len(), 5, "distinct msg ids");
        ensure!(sent.iter().all(|s| !s.is_empty()), "an empty msg id");
        let mut got = BTreeSet::new();
        for _ in 0..5 {
            let m = take(&mut srv, "a call").await?;
            let id = m
                .msg_id
                .clone()
                .ok_or_else(|| Failure("a call arrived without msg_id".into()))?;
            got.insert(id);
            m.reply(Ok(Value::Null)).await?;
        }
        ensure_eq!(got, sent, "msg ids seen by the server");
        for s in &mut streams {
            ensure_eq!(
                reply_event(s, "reply").await?,
                ReplyEvent::Final(Ok(Value::Null)),
                "reply"
            );
        }
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Twenty calls in flight, answered in reverse order: each caller gets
    /// its own result.
    pub(super) async fn concurrent_calls_get_their_own_replies(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("conc");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let mut streams = Vec::new();
        for i in 0..20 {
            streams.push((
                i,
                call(
                    &client,
                    RpcRequest::call(
                        Target::new(&topic),
                        request("m", json!({"i": i})),
                        call_timeout(),
                    ),
                )
                .await?,
            ));
        }
        let mut incoming = Vec::new();
        for _ in 0..20 {
            incoming.push(take(&mut srv, "a call").await?);
        }
        for m in incoming.iter().rev() {
            let i = arg_i(m).ok_or_else(|| Failure("a call lost its args".into()))?;
            m.reply(Ok(json!(i * 10))).await?;
        }
        for (i, s) in &mut streams {
            ensure_eq!(
                reply_event(s, "reply").await?,
                ReplyEvent::Final(Ok(json!(*i * 10))),
                "reply of call {i}"
            );
        }
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// The server sees exactly the message sent (namespace, version and
    /// unknown keys kept) with no transport keys in message or context.
    pub(super) async fn request_message_has_no_transport_keys(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("keys");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let msg = obj(
            json!({"method": "m", "args": {"x": [1]}, "namespace": "ns1", "version": "2.3", "extra": {"k": null}}),
        );
        let mut stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), msg.clone(), call_timeout())
                .with_context(obj(json!({"user": "u"})))
                .with_call_monitor_timeout(Some(10.0)),
        )
        .await?;
        let m = take(&mut srv, "the call").await?;
        ensure_eq!(m.message, msg, "request message");
        for k in m.message.keys().chain(m.ctxt.keys()) {
            ensure!(
                !k.starts_with("_msg_id")
                    && !k.starts_with("_reply_q")
                    && !k.starts_with("_timeout")
                    && !k.starts_with("_unique_id")
                    && !k.starts_with("_context"),
                "transport key {k} leaked into the message or context"
            );
        }
        m.reply(Ok(Value::Null)).await?;
        reply_event(&mut stream, "reply").await?;
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A cast returns no reply stream and arrives as a non-call with its
    /// message and context.
    pub(super) async fn cast_is_delivered_without_reply_stream(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("cast");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let msg = request("c", json!({"n": 1}));
        let ctxt = obj(json!({"user": "u", "list": [1, null]}));
        let r = client
            .driver()
            .send(RpcRequest::cast(Target::new(&topic), msg.clone()).with_context(ctxt.clone()))
            .await?;
        ensure!(r.is_none(), "a cast returned a reply stream");
        let m = take(&mut srv, "the cast").await?;
        ensure!(
            !m.is_call() && m.msg_id.is_none(),
            "a cast arrived as a call"
        );
        ensure_eq!(m.message, msg, "cast message");
        let mut expected = ctxt;
        expected.insert("client_timeout".into(), Value::Null);
        ensure_eq!(m.ctxt, expected, "cast context");
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Replying to a cast sends nothing: a later call gets only its own reply.
    pub(super) async fn casts_never_get_replies(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("noreply");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        cast(&client, Target::new(&topic), request("c", json!({}))).await?;
        let m = take(&mut srv, "the cast").await?;
        m.reply(Ok(json!("cast result"))).await?;
        let mut stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), request("k", json!({})), call_timeout()),
        )
        .await?;
        let c = take(&mut srv, "the call").await?;
        c.reply(Ok(json!("call result"))).await?;
        ensure_eq!(
            reply_event(&mut stream, "reply").await?,
            ReplyEvent::Final(Ok(json!("call result"))),
            "reply"
        );
        no_reply(&mut stream, "after the final reply").await?;
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Every request carries a `_unique_id`, different for each message.
    pub(super) async fn unique_ids_present_and_unique(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("uid");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        for i in 0..8 {
            cast(&client, Target::new(&topic), request("c", json!({"i": i}))).await?;
        }
        let mut stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), request("k", json!({})), call_timeout()),
        )
        .await?;
        let mut ids = BTreeSet::new();
        for _ in 0..9 {
            let m = take(&mut srv, "a request").await?;
            let id = m
                .unique_id
                .clone()
                .ok_or_else(|| Failure("a request without _unique_id".into()))?;
            ensure!(!id.is_empty(), "an empty _unique_id");
            ids.insert(id);
            m.reply(Ok(Value::Null)).await?;
        }
        ensure_eq!(ids.len(), 9, "distinct unique ids");
        reply_event(&mut stream, "reply").await?;
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A failure reply reaches the caller as the same `RemoteError`.
    pub(super) async fn reply_carries_failure(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("fail");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let mut value_error = RemoteError::new("ValueError", "builtins", "bad value");
        value_error.traceback = vec![
            "Traceback (most recent call last):\n".into(),
            "  File \"x.py\", line 1, in m\n".into(),
            "ValueError: bad value\n".into(),
        ];
        value_error.args = vec![json!("bad value"), json!(3)];
        value_error.kwargs = obj(json!({"code": 42}));
        let custom = RemoteError::new(
            "InstanceNotFound",
            "nova.exception",
            "Instance é could not be found.",
        );
        for err in [value_error, custom] {
            let mut stream = call(
                &client,
                RpcRequest::call(
                    Target::new(&topic),
                    request("boom", json!({})),
                    call_timeout(),
                ),
            )
            .await?;
            let m = take(&mut srv, "the call").await?;
            m.reply(Err(err.clone())).await?;
            ensure_eq!(
                reply_event(&mut stream, "reply").await?,
                ReplyEvent::Final(Err(err.clone())),
                "failure"
            );
        }
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Heartbeats reach the caller, in order, before the final reply.
    pub(super) async fn heartbeats_arrive_in_order_before_final_reply(
        url: String,
    ) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("hb");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let mut stream = call(
            &client,
            RpcRequest::call(
                Target::new(&topic),
                request("slow", json!({})),
                call_timeout(),
            )
            .with_call_monitor_timeout(Some(2.0)),
        )
        .await?;
        let m = take(&mut srv, "the call").await?;
        for _ in 0..3 {
            m.heartbeat().await?;
        }
        m.reply(Ok(json!("done"))).await?;
        for i in 0..3 {
            ensure_eq!(
                reply_event(&mut stream, "heartbeat").await?,
                ReplyEvent::Heartbeat,
                "event {i}"
            );
        }
        ensure_eq!(
            reply_event(&mut stream, "final").await?,
            ReplyEvent::Final(Ok(json!("done"))),
            "final reply"
        );
        no_reply(&mut stream, "after the final reply").await?;
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Replying to a call whose caller gave up succeeds quietly, and the
    /// client's next call still works.
    pub(super) async fn reply_to_abandoned_call_is_harmless(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("abandon");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), request("m", json!({})), call_timeout()),
        )
        .await?;
        let m = take(&mut srv, "the call").await?;
        drop(stream);
        m.reply(Ok(json!("late"))).await?;
        let mut stream = call(
            &client,
            RpcRequest::call(
                Target::new(&topic),
                request("m2", json!({})),
                call_timeout(),
            ),
        )
        .await?;
        let m = take(&mut srv, "the second call").await?;
        m.reply(Ok(json!("second"))).await?;
        ensure_eq!(
            reply_event(&mut stream, "reply").await?,
            ReplyEvent::Final(Ok(json!("second"))),
            "second reply"
        );
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A cast to `(topic, server)` reaches that server only.
    pub(super) async fn server_targeted_message_reaches_only_that_server(
        url: String,
    ) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("direct");
        let mut s = servers(&srv_t, &topic, &["s1", "s2", "s3"]).await?;
        for i in 0..3 {
            cast(
                &client,
                Target::new(&topic).with_server("s2"),
                request("d", json!({"i": i})),
            )
            .await?;
        }
        for i in 0..3 {
            let m = take(&mut s[1], "a cast to s2").await?;
            ensure_eq!(arg_i(&m), Some(i), "order of the casts to s2");
        }
        quiet(&mut s[0], "s1").await?;
        quiet(&mut s[2], "s3").await?;
        quiet(&mut s[1], "s2 after three").await?;
        cleanup_all(s).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A call to `(topic, server)` is answered by that server.
    pub(super) async fn server_targeted_call_round_trip(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("dcall");
        let mut s = servers(&srv_t, &topic, &["s1", "s2"]).await?;
        let mut stream = call(
            &client,
            RpcRequest::call(
                Target::new(&topic).with_server("s2"),
                request("m", json!({})),
                call_timeout(),
            ),
        )
        .await?;
        let m = take(&mut s[1], "the call to s2").await?;
        m.reply(Ok(json!("from s2"))).await?;
        ensure_eq!(
            reply_event(&mut stream, "reply").await?,
            ReplyEvent::Final(Ok(json!("from s2"))),
            "reply"
        );
        quiet(&mut s[0], "s1").await?;
        cleanup_all(s).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Topic casts are shared between the servers: each handled once, every
    /// server gets some.
    pub(super) async fn topic_messages_shared_round_robin(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("rr");
        let s = servers(&srv_t, &topic, &["s1", "s2", "s3"]).await?;
        let total = 30;
        for i in 0..total {
            cast(&client, Target::new(&topic), request("c", json!({"i": i}))).await?;
        }
        let results = collect_all(s, total as usize).await?;
        let mut all = BTreeSet::new();
        let mut counts = Vec::new();
        for (_, msgs) in &results {
            counts.push(msgs.len());
            for m in msgs {
                ensure!(all.insert(arg_i(m)), "cast {:?} handled twice", arg_i(m));
            }
        }
        ensure_eq!(
            all.len(),
            total as usize,
            "casts handled (per server {counts:?})"
        );
        ensure!(
            counts.iter().all(|c| *c > 0 && *c < total as usize),
            "uneven split {counts:?}"
        );
        cleanup_all(results.into_iter().map(|(l, _)| l).collect()).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A fanout cast reaches each server of the topic exactly once.
    pub(super) async fn fanout_reaches_every_server_once(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("fan");
        let mut s = servers(&srv_t, &topic, &["s1", "s2", "s3"]).await?;
        let msg = request("f", json!({"x": 1}));
        cast(&client, Target::new(&topic).with_fanout(true), msg.clone()).await?;
        for (i, l) in s.iter_mut().enumerate() {
            let m = take(l, "the fanout cast").await?;
            ensure_eq!(m.message, msg, "fanout message at server {i}");
            ensure!(!m.is_call(), "a fanout cast arrived as a call");
        }
        for l in s.iter_mut() {
            quiet(l, "after the fanout cast").await?;
        }
        cleanup_all(s).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A fanout cast naming a server still reaches every server.
    pub(super) async fn fanout_ignores_server(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("fans");
        let mut s = servers(&srv_t, &topic, &["s1", "s2"]).await?;
        cast(
            &client,
            Target::new(&topic).with_fanout(true).with_server("s1"),
            request("f", json!({})),
        )
        .await?;
        take(&mut s[0], "fanout at s1").await?;
        take(&mut s[1], "fanout at s2").await?;
        quiet(&mut s[0], "s1 after the fanout").await?;
        cleanup_all(s).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// After a server is cleaned up, fanout casts reach the others once; a
    /// server started later does not get earlier fanout casts.
    pub(super) async fn fanout_stops_at_cleaned_up_server(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("fanc");
        let mut s = servers(&srv_t, &topic, &["s1", "s2"]).await?;
        let gone = s.remove(0);
        gone.cleanup().await?;
        cast(
            &client,
            Target::new(&topic).with_fanout(true),
            request("f", json!({})),
        )
        .await?;
        take(&mut s[0], "fanout at s2").await?;
        quiet(&mut s[0], "s2 after the fanout").await?;
        let mut late = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        quiet(&mut late, "a server started after the fanout").await?;
        late.cleanup().await?;
        cleanup_all(s).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A message to exchange A does not reach a server of the same topic
    /// listening on exchange B; one to B does.
    pub(super) async fn exchanges_isolate(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("ex");
        let (ex_a, ex_b) = (uniq("exa"), uniq("exb"));
        let mut sb = server(
            &srv_t,
            Target::new(&topic).with_server("s").with_exchange(&ex_b),
        )
        .await?;
        cast(
            &client,
            Target::new(&topic).with_exchange(&ex_a),
            request("a", json!({})),
        )
        .await?;
        cast(
            &client,
            Target::new(&topic).with_exchange(&ex_a).with_server("s"),
            request("a", json!({})),
        )
        .await?;
        quiet(&mut sb, "server on exchange B, message to A").await?;
        cast(
            &client,
            Target::new(&topic).with_exchange(&ex_b),
            request("b", json!({})),
        )
        .await?;
        let m = take(&mut sb, "message to B").await?;
        ensure_eq!(m.message.get("method"), Some(&json!("b")), "method");
        sb.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Targets without exchange use the transport's control exchange.
    pub(super) async fn control_exchange_is_the_default(url: String) -> Result<(), Failure> {
        let ex = uniq("ctl");
        let srv_t = open_with_exchange(&url, &ex).await?;
        let plain = open(&url).await?;
        let same = open_with_exchange(&url, &ex).await?;
        let topic = uniq("ctlt");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s")).await?;
        cast(&plain, Target::new(&topic), request("default", json!({}))).await?;
        quiet(&mut srv, "a cast on another control exchange").await?;
        cast(
            &plain,
            Target::new(&topic).with_exchange(&ex),
            request("explicit", json!({})),
        )
        .await?;
        let m = take(&mut srv, "explicit exchange").await?;
        ensure_eq!(m.message.get("method"), Some(&json!("explicit")), "method");
        cast(&same, Target::new(&topic), request("implicit", json!({}))).await?;
        let m = take(&mut srv, "same control exchange").await?;
        ensure_eq!(m.message.get("method"), Some(&json!("implicit")), "method");
        srv.cleanup().await?;
        for t in [srv_t, plain, same] {
            t.cleanup().await;
        }
        Ok(())
    }

    /// Without `at_least_once`, a call to a topic nobody listens on is sent
    /// and simply never answered; a cast succeeds.
    pub(super) async fn unroutable_call_is_dropped_silently(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let topic = uniq("nobody");
        let mut stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), request("m", json!({})), call_timeout()),
        )
        .await?;
        no_reply(&mut stream, "a call nobody listens to").await?;
        cast(&client, Target::new(&topic), request("c", json!({}))).await?;
        client.cleanup().await;
        Ok(())
    }

    /// With `at_least_once`, a call or cast no queue takes fails at once
    /// with `MessageUndeliverable`.
    pub(super) async fn at_least_once_unroutable_is_undeliverable(
        url: String,
    ) -> Result<(), Failure> {
        let client = open(&url).await?;
        let topic = uniq("nobody");
        let opts = TransportOptions::at_least_once(true);
        let started = std::time::Instant::now();
        let r = client
            .driver()
            .send(
                RpcRequest::call(
                    Target::new(&topic),
                    request("m", json!({})),
                    Duration::from_secs(60),
                )
                .with_transport_options(opts),
            )
            .await;
        expect_undeliverable(r, "call")?;
        let r = client
            .driver()
            .send(
                RpcRequest::cast(Target::new(&topic), request("c", json!({})))
                    .with_transport_options(opts),
            )
            .await;
        expect_undeliverable(r, "cast")?;
        let r = client
            .driver()
            .send(
                RpcRequest::cast(
                    Target::new(&topic).with_server("s"),
                    request("c", json!({})),
                )
                .with_transport_options(opts),
            )
            .await;
        expect_undeliverable(r, "server cast")?;
        ensure!(
            started.elapsed() < scaled(RECV),
            "MessageUndeliverable took {:?}",
            started.elapsed()
        );
        client.cleanup().await;
        Ok(())
    }

    /// With `at_least_once`, routable requests are delivered normally.
    pub(super) async fn at_least_once_routable_is_delivered(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("alo");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let opts = TransportOptions::at_least_once(true);
        let mut stream = call(
            &client,
            RpcRequest::call(Target::new(&topic), request("m", json!({})), call_timeout())
                .with_transport_options(opts),
        )
        .await?;
        take(&mut srv, "the call")
            .await?
            .reply(Ok(json!(1)))
            .await?;
        ensure_eq!(
            reply_event(&mut stream, "reply").await?,
            ReplyEvent::Final(Ok(json!(1))),
            "reply"
        );
        let r = client
            .driver()
            .send(
                RpcRequest::cast(
                    Target::new(&topic).with_server("s1"),
                    request("c", json!({})),
                )
                .with_transport_options(opts),
            )
            .await?;
        ensure!(r.is_none(), "a cast returned a reply stream");
        take(&mut srv, "the cast").await?;
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// Sending to a target without topic fails with `InvalidTarget`.
    pub(super) async fn invalid_target_without_topic(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let d = client.driver();
        expect_invalid_target(
            d.send(RpcRequest::cast(Target::default(), request("m", json!({}))))
                .await,
            "cast without topic",
        )?;
        expect_invalid_target(
            d.send(RpcRequest::call(
                Target::default().with_server("s"),
                request("m", json!({})),
                call_timeout(),
            ))
            .await,
            "call without topic",
        )?;
        expect_invalid_target(
            d.send(RpcRequest::cast(Target::new(""), request("m", json!({}))))
                .await,
            "cast with empty topic",
        )?;
        client.cleanup().await;
        Ok(())
    }

    /// A fanout call fails with `InvalidTarget`.
    pub(super) async fn invalid_target_fanout_call(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let r = client
            .driver()
            .send(RpcRequest::call(
                Target::new(uniq("fcall")).with_fanout(true),
                request("m", json!({})),
                call_timeout(),
            ))
            .await;
        expect_invalid_target(r, "fanout call")?;
        client.cleanup().await;
        Ok(())
    }

    /// An RPC server needs topic and server.
    pub(super) async fn listen_requires_topic_and_server(url: String) -> Result<(), Failure> {
        let t = open(&url).await?;
        let d = t.driver();
        expect_invalid_target(
            d.listen(Target::new(uniq("nosrv")), ListenOptions::default())
                .await,
            "listen without server",
        )?;
        expect_invalid_target(
            d.listen(Target::default().with_server("s"), ListenOptions::default())
                .await,
            "listen without topic",
        )?;
        t.cleanup().await;
        Ok(())
    }

    /// Unicode, control characters, nesting and nulls survive a call in
    /// both directions and in the context.
    pub(super) async fn rpc_payloads_unicode_nested_null(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("uni");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let payload = json!({
            "text": "é☃😀 \u{0} \n\t\"quote\" \\ / \u{7f} \u{2028}",
            "nested": {"a": [null, 1.5, {"b": null, "c": [[], {}]}], "ключ": "значение"},
            "none": null,
            "emoji_key_😀": true,
        });
        let ctxt = obj(json!({"user": "ユーザー", "nested": {"x": null}}));
        let mut stream = call(
            &client,
            RpcRequest::call(
                Target::new(&topic),
                request("m", payload.clone()),
                call_timeout(),
            )
            .with_context(ctxt.clone()),
        )
        .await?;
        let m = take(&mut srv, "the call").await?;
        ensure_eq!(m.message.get("args"), Some(&payload), "args");
        ensure_eq!(m.ctxt.get("user"), ctxt.get("user"), "context user");
        ensure_eq!(m.ctxt.get("nested"), ctxt.get("nested"), "context nested");
        m.reply(Ok(payload.clone())).await?;
        ensure_eq!(
            reply_event(&mut stream, "reply").await?,
            ReplyEvent::Final(Ok(payload)),
            "result"
        );
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A 1 MiB argument and a 1 MiB result travel intact.
    pub(super) async fn rpc_payload_one_mebibyte(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("big");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        let blob: String = (0..(1usize << 20))
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut stream = call(
            &client,
            RpcRequest::call(
                Target::new(&topic),
                request("m", json!({"blob": blob.clone()})),
                call_timeout(),
            ),
        )
        .await?;
        let m = take(&mut srv, "the call").await?;
        let got = m
            .message
            .get("args")
            .and_then(|a| a.get("blob"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        ensure!(
            got == blob,
            "the 1 MiB argument changed (got {} bytes)",
            got.len()
        );
        m.reply(Ok(Value::String(blob.clone()))).await?;
        match reply_event(&mut stream, "reply").await? {
            ReplyEvent::Final(Ok(Value::String(s))) => {
                ensure!(s == blob, "the 1 MiB result changed ({} bytes)", s.len())
            }
            other => {
                return Err(Failure(format!(
                    "unexpected reply {:?}",
                    std::mem::discriminant(&other)
                )))
            }
        }
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// 500 casts to two servers: every one handled exactly once.
    pub(super) async fn many_casts_none_lost(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("many");
        let s = servers(&srv_t, &topic, &["s1", "s2"]).await?;
        let total = 500;
        for i in 0..total {
            cast(&client, Target::new(&topic), request("c", json!({"i": i}))).await?;
        }
        let results = collect_all(s, total).await?;
        let mut all = BTreeSet::new();
        for (_, msgs) in &results {
            for m in msgs {
                ensure!(all.insert(arg_i(m)), "cast {:?} handled twice", arg_i(m));
            }
        }
        ensure_eq!(all.len(), total, "casts handled");
        cleanup_all(results.into_iter().map(|(l, _)| l).collect()).await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// After `stop()`, `next()` hands out what was already fetched, then
    /// returns `None`; nothing is handed out twice.
    pub(super) async fn rpc_stop_drains_then_ends(url: String) -> Result<(), Failure> {
        let client = open(&url).await?;
        let srv_t = open(&url).await?;
        let topic = uniq("stop");
        let mut srv = server(&srv_t, Target::new(&topic).with_server("s1")).await?;
        for i in 0..5 {
            cast(&client, Target::new(&topic), request("c", json!({"i": i}))).await?;
        }
        let first = take(&mut srv, "the first cast").await?;
        let mut seen = BTreeSet::from([arg_i(&first)]);
        srv.stop().await?;
        loop {
            match timeout(scaled(RECV), srv.next()).await {
                Err(_) => {
                    return Err(Failure(
                        "next() neither returned a message nor None after stop()".into(),
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Failure(format!("listener error after stop(): {e}")))
                }
                Ok(Some(Ok(m))) => {
                    m.acknowledge().await?;
                    ensure!(
                        seen.insert(arg_i(&m)),
                        "cast {:?} handed out twice",
                        arg_i(&m)
                    );
                }
            }
        }
        ensure!(seen.len() <= 5, "more messages than sent");
        ensure!(
            timeout(scaled(QUIET), srv.next())
                .await
                .ok()
                .flatten()
                .is_none(),
            "next() produced a message after returning None"
        );
        srv.cleanup().await?;
        client.cleanup().await;
        srv_t.cleanup().await;
        Ok(())
    }

    /// A `messagingv2` notification arrives with its message and context.
    pub(super) async fn notification_round_trip_v2(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("n2");
        let mut l =
            listen_notifications(&lt, vec![(Target::new(&topic), Priority::Info)], None).await?;
        let ctxt =
            obj(json!({"user": "u1", "project_id": "p1", "roles": ["a"], "auth_token": null}));
        let n = notification(
            &topic,
            Priority::Info,
            "compute.instance.create",
            json!({"id": 1}),
            Format::V2,
        )
        .with_context(ctxt.clone());
        let sent = n.message.clone();
        notify(&notifier, n).await?;
        let m = take(&mut l, "the notification").await?;
        ensure_eq!(m.message, sent, "notification message");
        check_notification_ctxt(&m.ctxt, &ctxt)?;
        ensure!(
            m.unique_id.as_deref().is_some_and(|u| !u.is_empty()),
            "no _unique_id"
        );
        ensure!(!m.is_call(), "a notification arrived as a call");
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// A `messaging` (1.0, unenveloped) notification decodes the same way.
    pub(super) async fn notification_v1_decodes(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("n1");
        let mut l =
            listen_notifications(&lt, vec![(Target::new(&topic), Priority::Warn)], None).await?;
        let ctxt = obj(json!({"user": "u2"}));
        let n = notification(
            &topic,
            Priority::Warn,
            "v1.event",
            json!({"list": [1, "two"]}),
            Format::V1,
        )
        .with_context(ctxt.clone());
        let sent = n.message.clone();
        notify(&notifier, n).await?;
        let m = take(&mut l, "the notification").await?;
        ensure_eq!(m.message, sent, "notification message");
        check_notification_ctxt(&m.ctxt, &ctxt)?;
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// Notifications sent before any listener exists are kept, in order,
    /// for the first listener.
    pub(super) async fn notification_retained_before_listener(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let topic = uniq("keep");
        let mut sent = Vec::new();
        for i in 0..3 {
            let n = notification(
                &topic,
                Priority::Info,
                &format!("e{i}"),
                json!(i),
                Format::V2,
            );
            sent.push(n.message.clone());
            notify(&notifier, n).await?;
        }
        let lt = open(&url).await?;
        let mut l =
            listen_notifications(&lt, vec![(Target::new(&topic), Priority::Info)], None).await?;
        for (i, s) in sent.iter().enumerate() {
            let m = take(&mut l, "a retained notification").await?;
            ensure_eq!(&m.message, s, "retained notification {i}");
        }
        quiet(&mut l, "after the retained notifications").await?;
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// A listener for `info` and `warn` receives those priorities only.
    pub(super) async fn notification_priorities_routed_to_subscribers_only(
        url: String,
    ) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("prio");
        let mut l = listen_notifications(
            &lt,
            vec![
                (Target::new(&topic), Priority::Info),
                (Target::new(&topic), Priority::Warn),
            ],
            None,
        )
        .await?;
        for p in Priority::ALL {
            notify(
                &notifier,
                notification(&topic, p, p.as_lower(), Value::Null, Format::V2),
            )
            .await?;
        }
        let mut got = BTreeSet::new();
        for _ in 0..2 {
            let m = take(&mut l, "a subscribed priority").await?;
            got.insert(event_types(std::slice::from_ref(&m)).concat());
        }
        ensure_eq!(
            got,
            BTreeSet::from(["info".to_owned(), "warn".to_owned()]),
            "priorities received"
        );
        quiet(&mut l, "unsubscribed priorities").await?;
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// One listener on several (exchange, topic) targets receives from each.
    pub(super) async fn notification_listener_several_targets(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let (ta, tb, ex) = (uniq("ta"), uniq("tb"), uniq("nex"));
        let mut l = listen_notifications(
            &lt,
            vec![
                (Target::new(&ta), Priority::Info),
                (Target::new(&tb).with_exchange(&ex), Priority::Error),
            ],
            None,
        )
        .await?;
        notify(
            &notifier,
            notification(&ta, Priority::Info, "a", Value::Null, Format::V2),
        )
        .await?;
        let mut nb = notification(&tb, Priority::Error, "b", Value::Null, Format::V2);
        nb.target = nb.target.with_exchange(&ex);
        notify(&notifier, nb).await?;
        let mut got = BTreeSet::new();
        for _ in 0..2 {
            got.insert(event_types(&[take(&mut l, "a notification").await?]).concat());
        }
        ensure_eq!(
            got,
            BTreeSet::from(["a".to_owned(), "b".to_owned()]),
            "event types"
        );
        quiet(&mut l, "after both").await?;
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// Pools A and B and the pool-less group each get every notification.
    pub(super) async fn notification_pools_each_get_a_copy(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("pools");
        let targets = vec![(Target::new(&topic), Priority::Info)];
        let (pa, pb) = (uniq("poolA"), uniq("poolB"));
        let a = listen_notifications(&lt, targets.clone(), Some(&pa)).await?;
        let b = listen_notifications(&lt, targets.clone(), Some(&pb)).await?;
        let n = listen_notifications(&lt, targets, None).await?;
        let total = 10;
        for i in 0..total {
            notify(
                &notifier,
                notification(
                    &topic,
                    Priority::Info,
                    &format!("e{i}"),
                    json!(i),
                    Format::V2,
                ),
            )
            .await?;
        }
        let groups = [("pool A", a), ("pool B", b), ("no pool", n)];
        let mut handles = Vec::new();
        for (name, l) in groups {
            handles.push((
                name,
                tokio::spawn(collect(l, Arc::new(AtomicUsize::new(0)), total)),
            ));
        }
        let mut listeners = Vec::new();
        for (name, h) in handles {
            let (l, msgs) = h
                .await
                .map_err(|e| Failure(format!("collecting task failed: {e}")))??;
            let kinds: BTreeSet<String> = event_types(&msgs).into_iter().collect();
            ensure_eq!(msgs.len(), total, "{name}: notifications received");
            ensure_eq!(kinds.len(), total, "{name}: distinct notifications");
            listeners.push(l);
        }
        cleanup_all(listeners).await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// Two listeners of one pool share its notifications.
    pub(super) async fn notification_pool_members_split(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("pshare");
        let pool = uniq("pool");
        let targets = vec![(Target::new(&topic), Priority::Info)];
        let l1 = listen_notifications(&lt, targets.clone(), Some(&pool)).await?;
        let l2 = listen_notifications(&lt, targets, Some(&pool)).await?;
        split_check(&notifier, &topic, vec![l1, l2]).await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// Two pool-less listeners of one topic share its notifications.
    pub(super) async fn notification_poolless_listeners_split(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("share");
        let targets = vec![(Target::new(&topic), Priority::Info)];
        let l1 = listen_notifications(&lt, targets.clone(), None).await?;
        let l2 = listen_notifications(&lt, targets, None).await?;
        split_check(&notifier, &topic, vec![l1, l2]).await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    async fn split_check(
        notifier: &Transport,
        topic: &str,
        listeners: Vec<L>,
    ) -> Result<(), Failure> {
        let total = 20;
        for i in 0..total {
            notify(
                notifier,
                notification(
                    topic,
                    Priority::Info,
                    &format!("e{i}"),
                    json!(i),
                    Format::V2,
                ),
            )
            .await?;
        }
        let results = collect_all(listeners, total).await?;
        let mut all = BTreeSet::new();
        let mut counts = Vec::new();
        for (_, msgs) in &results {
            counts.push(msgs.len());
            for e in event_types(msgs) {
                ensure!(all.insert(e.clone()), "{e} delivered twice");
            }
        }
        ensure_eq!(
            all.len(),
            total,
            "notifications received (split {counts:?})"
        );
        ensure!(
            counts.iter().all(|c| *c > 0),
            "one listener got nothing: {counts:?}"
        );
        cleanup_all(results.into_iter().map(|(l, _)| l).collect()).await
    }

    /// A requeued notification is delivered again.
    pub(super) async fn notification_requeue_redelivers(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("requeue");
        let mut l =
            listen_notifications(&lt, vec![(Target::new(&topic), Priority::Info)], None).await?;
        let n = notification(&topic, Priority::Info, "again", json!({"k": 1}), Format::V2);
        let sent = n.message.clone();
        notify(&notifier, n).await?;
        let m = recv(&mut l, "the notification").await?;
        m.requeue().await?;
        let again = recv(&mut l, "the requeued notification").await?;
        ensure_eq!(again.message, sent, "redelivered message");
        again.acknowledge().await?;
        quiet(&mut l, "after acknowledging").await?;
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// A notification neither acknowledged nor requeued when its listener
    /// is cleaned up goes to the next listener.
    pub(super) async fn notification_unacked_redelivered_after_cleanup(
        url: String,
    ) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("unacked");
        let targets = vec![(Target::new(&topic), Priority::Info)];
        let mut l1 = listen_notifications(&lt, targets.clone(), None).await?;
        let n = notification(&topic, Priority::Info, "kept", json!(1), Format::V2);
        let sent = n.message.clone();
        notify(&notifier, n).await?;
        let m = recv(&mut l1, "the notification").await?;
        ensure_eq!(m.message, sent, "message");
        l1.cleanup().await?;
        let lt2 = open(&url).await?;
        let mut l2 = listen_notifications(&lt2, targets, None).await?;
        let again = take(&mut l2, "the unacknowledged notification").await?;
        ensure_eq!(again.message, sent, "redelivered message");
        quiet(&mut l2, "after the redelivery").await?;
        l2.cleanup().await?;
        for t in [notifier, lt, lt2] {
            t.cleanup().await;
        }
        Ok(())
    }

    /// Unicode, nested, null and 1 MiB payloads survive in both formats.
    pub(super) async fn notification_payloads_survive(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("npay");
        let mut l =
            listen_notifications(&lt, vec![(Target::new(&topic), Priority::Info)], None).await?;
        let big: String = "😀é".repeat(1 << 17);
        let payloads = [
            json!({"text": "é☃😀 \u{0}\n", "nested": {"a": [null, {"b": null}]}, "none": null}),
            Value::Null,
            json!({"big": big}),
        ];
        for format in [Format::V2, Format::V1] {
            for p in &payloads {
                let n = notification(&topic, Priority::Info, "p", p.clone(), format);
                let sent = n.message.clone();
                notify(&notifier, n).await?;
                let m = take(&mut l, "a notification").await?;
                ensure_eq!(m.message, sent, "notification ({format:?})");
            }
        }
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// 500 notifications: all arrive, once each.
    pub(super) async fn many_notifications_none_lost(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("nmany");
        let l =
            listen_notifications(&lt, vec![(Target::new(&topic), Priority::Info)], None).await?;
        let total = 500;
        for i in 0..total {
            notify(
                &notifier,
                notification(
                    &topic,
                    Priority::Info,
                    &format!("e{i}"),
                    json!(i),
                    Format::V2,
                ),
            )
            .await?;
        }
        let (l, msgs) = collect(l, Arc::new(AtomicUsize::new(0)), total).await?;
        let all: BTreeSet<String> = event_types(&msgs).into_iter().collect();
        ensure_eq!(msgs.len(), total, "notifications received");
        ensure_eq!(all.len(), total, "distinct notifications");
        l.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// `stop()` then `next()` drains what was fetched and returns `None`;
    /// the rest stays on the broker for the next listener: nothing lost,
    /// nothing twice.
    pub(super) async fn notification_stop_drains_then_ends(url: String) -> Result<(), Failure> {
        let notifier = open(&url).await?;
        let lt = open(&url).await?;
        let topic = uniq("nstop");
        let targets = vec![(Target::new(&topic), Priority::Info)];
        let mut l1 = listen_notifications(&lt, targets.clone(), None).await?;
        let total = 5;
        for i in 0..total {
            notify(
                &notifier,
                notification(
                    &topic,
                    Priority::Info,
                    &format!("e{i}"),
                    json!(i),
                    Format::V2,
                ),
            )
            .await?;
        }
        let mut seen = BTreeSet::new();
        seen.extend(event_types(&[
            take(&mut l1, "the first notification").await?
        ]));
        l1.stop().await?;
        loop {
            match timeout(scaled(RECV), l1.next()).await {
                Err(_) => {
                    return Err(Failure(
                        "next() neither returned a message nor None after stop()".into(),
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Failure(format!("listener error after stop(): {e}")))
                }
                Ok(Some(Ok(m))) => {
                    m.acknowledge().await?;
                    for e in event_types(&[m]) {
                        ensure!(seen.insert(e.clone()), "{e} handed out twice");
                    }
                }
            }
        }
        l1.cleanup().await?;
        let l2 = listen_notifications(&lt, targets, None).await?;
        let already = seen.len();
        let (l2, rest) = collect(l2, Arc::new(AtomicUsize::new(already)), total).await?;
        for e in event_types(&rest) {
            ensure!(
                seen.insert(e.clone()),
                "{e} delivered again after being acknowledged"
            );
        }
        ensure_eq!(
            seen.len(),
            total,
            "notifications received over both listeners"
        );
        l2.cleanup().await?;
        notifier.cleanup().await;
        lt.cleanup().await;
        Ok(())
    }

    /// Notifications and notification listeners need a topic.
    pub(super) async fn notification_invalid_targets_rejected(url: String) -> Result<(), Failure> {
        let t = open(&url).await?;
        let n = Notification::new(
            Target::default(),
            obj(json!({"event_type": "x"})),
            Format::V2,
        );
        expect_invalid_target(
            t.driver().send_notification(n).await,
            "notification without topic",
        )?;
        expect_invalid_target(
            t.driver()
                .listen_for_notifications(
                    vec![(Target::default(), Priority::Info)],
                    None,
                    ListenOptions::default(),
                )
                .await,
            "listener without topic",
        )?;
        t.cleanup().await;
        Ok(())
    }
}
