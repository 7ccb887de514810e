//! Broker restart and failover, on the second node (`OM_RABBIT2_URL`,
//! `OM_RABBIT2_CTL`) so that tests on the first node are not disturbed.
//! The node is always started again at the end.

mod common;

use common::{driver, env_or_skip, node, obj, uniq};
use om_driver_api::om_core::envelope::Format;
use om_driver_api::om_core::{Error, Priority, Target, TransportUrl};
use om_driver_api::{
    Driver, ListenOptions, Listener, Notification, ReplyEvent, Retry, RpcRequest, TransportOptions,
};
use serde_json::json;
use std::time::Duration;

/// Both tests stop node 2: run them one at a time.
static NODE2: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the node again if the test stopped it and did not restart it.
struct Restart {
    ctl: String,
    stopped: bool,
}

impl Restart {
    fn stop(&mut self) {
        node(&self.ctl, "stop");
        self.stopped = true;
    }
    fn start(&mut self) {
        node(&self.ctl, "start");
        self.stopped = false;
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        if self.stopped {
            node(&self.ctl, "start");
        }
    }
}

const FAST_RECONNECT: [(&str, &str); 2] = [
    ("rabbit_retry_backoff", "0"),
    ("kombu_reconnect_delay", "0.2"),
];

fn notification(topic: &str, n: u32) -> Notification {
    Notification::new(
        Target::new(format!("{topic}.info")),
        obj(json!({"event_type": "e", "priority": "INFO", "payload": {"n": n}})),
        Format::V2,
    )
}

async fn receive(listener: &mut Box<dyn Listener>, want: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < want {
        let m = tokio::time::timeout(Duration::from_secs(60), listener.next())
            .await
            .expect("notification in time")
            .expect("listener open");
        let Ok(m) = m else { continue };
        m.acknowledge().await.expect("ack");
        got.push(m.message["payload"]["n"].as_i64().expect("n"));
    }
    got.sort_unstable();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_clients_survive_a_broker_restart() {
    let Some(url) = env_or_skip("OM_RABBIT2_URL") else {
        return;
    };
    let Some(ctl) = env_or_skip("OM_RABBIT2_CTL") else {
        return;
    };
    let _serial = NODE2.lock().await;
    let mut restart = Restart {
        ctl,
        stopped: false,
    };

    let d = driver(&url, &FAST_RECONNECT);
    let topic = format!("restart_n_{}", uniq());
    let mut notes = d
        .listen_for_notifications(
            vec![(Target::new(&topic), Priority::Info)],
            None,
            ListenOptions::default(),
        )
        .await
        .expect("listen for notifications");
    let rpc_topic = format!("restart_r_{}", uniq());
    let mut server = d
        .listen(
            Target::new(&rpc_topic).with_server("s"),
            ListenOptions::default(),
        )
        .await
        .expect("listen");
    let responder = tokio::spawn(async move {
        while let Some(m) = server.next().await {
            let Ok(m) = m else { continue };
            if m.acknowledge().await.is_ok() {
                let method = m.message["method"].clone();
                let _ = m.reply(Ok(method)).await;
            }
        }
    });
    let call = |name: &str| {
        RpcRequest::call(
            Target::new(&rpc_topic),
            obj(json!({"method": name, "args": {}})),
            Duration::from_secs(30),
        )
        .with_transport_options(TransportOptions::at_least_once(true))
    };
    let mut s = d.send(call("before")).await.expect("call").expect("stream");
    assert_eq!(s.next().await, Some(ReplyEvent::Final(Ok(json!("before")))));
    for n in 0..3 {
        d.send_notification(notification(&topic, n))
            .await
            .expect("notify");
    }
    assert_eq!(receive(&mut notes, 3).await, vec![0, 1, 2]);

    restart.stop();
    restart.start();

    // Every notification the broker confirmed after the restart arrives.
    for n in 3..8 {
        d.send_notification(notification(&topic, n))
            .await
            .expect("notify after restart");
    }
    assert_eq!(receive(&mut notes, 5).await, vec![3, 4, 5, 6, 7]);

    // RPC works again once the server restored its queues (a mandatory
    // request is returned until then).
    let mut reply = None;
    for _ in 0..60 {
        match d.send(call("after")).await {
            Ok(Some(mut s)) => {
                reply = s.next().await;
                break;
            }
            Ok(None) => unreachable!("a call has replies"),
            Err(Error::MessageUndeliverable { .. }) => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => panic!("call after restart: {e}"),
        }
    }
    assert_eq!(reply, Some(ReplyEvent::Final(Ok(json!("after")))));
    notes.cleanup().await.expect("cleanup");
    d.cleanup().await;
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_fail_over_to_the_second_host() {
    let Some(url1) = env_or_skip("OM_RABBIT_URL") else {
        return;
    };
    let Some(url2) = env_or_skip("OM_RABBIT2_URL") else {
        return;
    };
    let Some(ctl) = env_or_skip("OM_RABBIT2_CTL") else {
        return;
    };
    let _serial = NODE2.lock().await;
    let mut restart = Restart {
        ctl,
        stopped: false,
    };

    let mut both = TransportUrl::parse(&url2).expect("url2");
    both.hosts
        .extend(TransportUrl::parse(&url1).expect("url1").hosts);
    let both = both.to_string_with_secrets();

    let topic = format!("failover_{}", uniq());
    let on_node1 = driver(&url1, &[]);
    let mut listener = on_node1
        .listen_for_notifications(
            vec![(Target::new(&topic), Priority::Info)],
            None,
            ListenOptions::default(),
        )
        .await
        .expect("listen on node 1");

    // A driver connected before the outage fails over when its node stops.
    let live = driver(&both, &FAST_RECONNECT);
    live.send_notification(notification(&topic, 100))
        .await
        .expect("before the outage");
    restart.stop();
    live.send_notification(notification(&topic, 101).with_retry(Retry::Limited(4)))
        .await
        .expect("after the outage, on the other host");

    // Drivers opened during the outage: whichever host the shuffle puts
    // first, every send lands on node 1.
    for n in 0..6 {
        let d = driver(&both, &FAST_RECONNECT);
        d.send_notification(notification(&topic, n).with_retry(Retry::Limited(2)))
            .await
            .expect("send with node 2 down");
        d.cleanup().await;
    }
    restart.start();
    // Notification 100 may have gone to node 2 (its queue there was lost
    // with the restart); all the others must be on node 1.
    let mut got = receive(&mut listener, 7).await;
    got.retain(|n| *n != 100);
    while got.len() < 7 {
        let more = receive(&mut listener, 1).await;
        got.extend(more.into_iter().filter(|n| *n != 100));
        if got.len() >= 7 {
            break;
        }
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 101]);
    listener.cleanup().await.expect("cleanup");
    live.cleanup().await;
    on_node1.cleanup().await;
}
