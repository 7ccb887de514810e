//! Client-side validation (test-cases B 11-17).
#![allow(clippy::unwrap_used)]

mod common;

use common::{ctx, transport};
use om_driver_api::fake::FakeBroker;
use om_rpc::om_core::{Error, Target};
use om_rpc::{RpcClient, RpcServer};

#[tokio::test]
async fn version_cap_refuses_before_sending() {
    let t = transport("cap").await;
    // A server queue exists so a published message would be visible.
    let s = common::start_server(&t, "cap", "s1", vec![common::tagged_echo("a")]).await;
    s.stop().await.unwrap();
    let c = RpcClient::builder(t.clone(), Target::new("cap").with_version("2.5"))
        .version_cap("2.4")
        .build();
    let e = c.cast(&ctx(), "echo", ()).await.unwrap_err();
    assert!(matches!(e, Error::RpcVersionCap { .. }), "{e}");
    assert_eq!(e.oslo_name(), "RPCVersionCapError");
    assert_eq!(
        e.to_string(),
        "Requested message version, 2.5 is incompatible.  It needs to be equal in major version and less than or equal in minor version as the specified version cap 2.4."
    );
    let e = c.call_value(&ctx(), "echo", ()).await.unwrap_err();
    assert!(matches!(e, Error::RpcVersionCap { .. }), "{e}");
    let broker = FakeBroker::for_url(t.url());
    assert_eq!(broker.queue_len("cap"), Some(0), "nothing was published");
    // Within the cap it goes out.
    c.prepare()
        .version("2.3")
        .cast(&ctx(), "echo", ())
        .await
        .unwrap();
    assert_eq!(broker.queue_len("cap"), Some(1));
    s.wait().await.unwrap();
}

#[tokio::test]
async fn can_send_version_table() {
    let t = transport("can-send").await;
    let capped = RpcClient::builder(t.clone(), Target::new("x"))
        .version_cap("2.4")
        .build();
    assert!(capped.can_send_version(Some("2.4")));
    assert!(!capped.can_send_version(Some("2.5")));
    assert!(!capped.can_send_version(Some("1.9")));
    assert!(
        !capped.can_send_version(None),
        "a cap and no target version"
    );

    let uncapped = RpcClient::new(t.clone(), Target::new("x"));
    for v in [Some("1.0"), Some("99.1"), None] {
        assert!(uncapped.can_send_version(v), "{v:?}");
    }

    let one = RpcClient::builder(t.clone(), Target::new("x"))
        .version_cap("1.0")
        .build();
    assert!(!one.can_send_version(None));
    let e = one.cast(&ctx(), "m", ()).await.unwrap_err();
    assert!(matches!(e, Error::RpcVersionCap { .. }), "{e}");
    assert!(one
        .prepare()
        .version("1.0")
        .build()
        .unwrap()
        .can_send_version(None));
}

#[tokio::test]
async fn prepare_rejects_malformed_versions() {
    let t = transport("prepare").await;
    let c = RpcClient::new(t, Target::new("x"));
    for bad in ["5", "5.a", "5.5.a"] {
        let e = c.prepare().version(bad).build().unwrap_err();
        assert!(matches!(e, Error::Messaging(_)), "{bad}: {e}");
        assert_eq!(e.oslo_name(), "MessagingException");
        assert!(
            e.to_string()
                .starts_with("Version must contain a major and minor integer"),
            "{e}"
        );
    }
    let ok = c.prepare().version("5.5.1").build().unwrap();
    assert_eq!(ok.target().version.as_deref(), Some("5.5.1"));
    // Prepared contexts inherit and can be prepared again.
    let twice = ok.prepare().server("s").build().unwrap();
    assert_eq!(twice.target().version.as_deref(), Some("5.5.1"));
    assert_eq!(twice.target().server.as_deref(), Some("s"));
}

#[tokio::test]
async fn fanout_call_and_missing_topic_are_invalid_targets() {
    let t = transport("invalid").await;
    let c = RpcClient::new(t.clone(), Target::new("x").with_fanout(true));
    let e = c.call_value(&ctx(), "m", ()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { .. }), "{e}");
    assert!(
        e.to_string().contains("A call cannot be used with fanout"),
        "{e}"
    );

    let no_topic = RpcClient::new(t.clone(), Target::default());
    for e in [
        no_topic.cast(&ctx(), "m", ()).await.unwrap_err(),
        no_topic.call_value(&ctx(), "m", ()).await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::InvalidTarget { .. }), "{e}");
    }
    // Refused before anything reached the broker: no exchange declared, no
    // queue (not even a reply queue) created.
    let broker = FakeBroker::for_url(t.url());
    assert!(
        broker.exchange_names().is_empty(),
        "{:?}",
        broker.exchange_names()
    );
    assert!(
        broker.queue_names().is_empty(),
        "{:?}",
        broker.queue_names()
    );
    // A valid cast does leave a trace there (the check above can fail).
    RpcClient::new(t.clone(), Target::new("x"))
        .cast(&ctx(), "m", ())
        .await
        .unwrap();
    assert!(!broker.exchange_names().is_empty());
}

#[tokio::test]
async fn arguments_must_be_keyword_arguments() {
    let t = transport("kwargs").await;
    let c = RpcClient::new(t, Target::new("x"));
    let e = c.cast(&ctx(), "m", vec![1, 2]).await.unwrap_err();
    assert!(matches!(e, Error::Serialization(_)), "{e}");
    assert!(e.to_string().contains("JSON object"), "{e}");
}

#[tokio::test]
async fn server_start_validates_its_target() {
    let t = transport("srv-target").await;
    for target in [Target::new("topic"), Target::default().with_server("s")] {
        let s = RpcServer::builder(t.clone(), target).build().unwrap();
        let e = s.start().await.unwrap_err();
        assert!(matches!(e, Error::InvalidTarget { .. }), "{e}");
    }
    let e = RpcServer::builder(t, Target::new("t").with_server("s"))
        .executor_pool_size(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Configuration(_)), "{e}");
}
