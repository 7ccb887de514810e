//! Address generation (`wire-amqp1.md` §2): the legacy (`.`-joined, for
//! brokers) and routable (`/`-joined, for routers) syntaxes, and the
//! `dynamic` choice between them.

use crate::options::{AddressingMode, AmqpOptions};
use om_driver_api::om_core::Target;

/// The address syntax in use on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// `<prefix>.[vhost.]<exchange>.<topic>[.<server>|.all]`.
    Legacy,
    /// `<prefix>/<cast>/[vhost/]<exchange>/<topic>[/<server>]`.
    Routable,
}

/// What the peer announced in its `open` frame that matters to addressing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The `product` connection property (`qpid-cpp`, `RabbitMQ`,
    /// `qpid-dispatch-router`, ...), when present.
    pub product: Option<String>,
    /// The `version` connection property, when present.
    pub version: Option<String>,
}

impl PeerInfo {
    /// Whether the peer is RabbitMQ's AMQP 1.0 plugin.
    pub fn is_rabbitmq(&self) -> bool {
        self.product
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("rabbitmq"))
    }
}

/// Resolves `addressing_mode` against the peer.
///
/// `dynamic` picks legacy when the peer announces no `product` or
/// `qpid-cpp` (a broker), as the Python driver does, and **also for
/// RabbitMQ**: the Python driver picks routable there, which RabbitMQ
/// refuses (`unknown_destination`), so that choice can never work; om picks
/// the syntax RabbitMQ accepts. Any other product (a router) gets routable.
pub fn resolve_syntax(mode: AddressingMode, peer: &PeerInfo) -> Syntax {
    match mode {
        AddressingMode::Legacy => Syntax::Legacy,
        AddressingMode::Routable => Syntax::Routable,
        AddressingMode::Dynamic => match peer.product.as_deref() {
            None | Some("qpid-cpp") => Syntax::Legacy,
            Some(_) if peer.is_rabbitmq() => Syntax::Legacy,
            Some(_) => Syntax::Routable,
        },
    }
}

/// RPC or notification traffic (routable addresses differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// RPC requests.
    Rpc,
    /// Notifications.
    Notify,
}

/// How a message is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cast {
    /// To one named server.
    Unicast,
    /// To every server (fanout).
    Multicast,
    /// To any one server of the group.
    Anycast,
}

/// Builds addresses for one connection.
///
/// ```
/// use om_driver_amqp1::{AmqpOptions, address::{Addresser, Syntax}};
/// use om_driver_api::om_core::Target;
/// let a = Addresser::new(&AmqpOptions::default(), Syntax::Routable, None, "openstack");
/// let t = Target::new("compute").with_server("host1");
/// assert_eq!(a.rpc_address(&t), "openstack.org/om/rpc/unicast/openstack/compute/host1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresser {
    syntax: Syntax,
    vhost: Option<String>,
    control_exchange: String,
    server_prefix: String,
    broadcast_prefix: String,
    group_prefix: String,
    rpc_prefix: String,
    notify_prefix: String,
    unicast_tag: String,
    multicast_tag: String,
    anycast_tag: String,
    rpc_exchange: String,
    notify_exchange: String,
}

fn join(sep: &str, parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(sep)
}

impl Addresser {
    /// An addresser for `syntax`. `vhost` is the URL's virtual host; it goes
    /// into the addresses only with `pseudo_vhost` (the default).
    pub fn new(
        opts: &AmqpOptions,
        syntax: Syntax,
        vhost: Option<&str>,
        control_exchange: &str,
    ) -> Self {
        let vhost = if opts.pseudo_vhost {
            vhost.filter(|v| !v.is_empty()).map(str::to_owned)
        } else {
            None
        };
        let default_exchange = if control_exchange.is_empty() {
            None
        } else {
            Some(control_exchange)
        };
        Addresser {
            syntax,
            vhost,
            control_exchange: control_exchange.to_owned(),
            server_prefix: opts.server_request_prefix.clone(),
            broadcast_prefix: opts.broadcast_prefix.clone(),
            group_prefix: opts.group_request_prefix.clone(),
            rpc_prefix: opts.rpc_address_prefix.clone(),
            notify_prefix: opts.notify_address_prefix.clone(),
            unicast_tag: opts.unicast_address.clone(),
            multicast_tag: opts.multicast_address.clone(),
            anycast_tag: opts.anycast_address.clone(),
            rpc_exchange: opts
                .default_rpc_exchange
                .as_deref()
                .or(default_exchange)
                .unwrap_or("rpc")
                .to_owned(),
            notify_exchange: opts
                .default_notification_exchange
                .as_deref()
                .or(default_exchange)
                .unwrap_or("notify")
                .to_owned(),
        }
    }

    /// The syntax in use.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The address of `cast` for `exchange`/`topic`/`server`.
    ///
    /// `exchange: None` means the default: the control exchange (legacy) or
    /// `default_rpc_exchange` / `default_notification_exchange`, then the
    /// control exchange, then `rpc` / `notify` (routable).
    pub fn address(
        &self,
        service: Service,
        cast: Cast,
        exchange: Option<&str>,
        topic: &str,
        server: Option<&str>,
    ) -> String {
        let exchange = exchange.filter(|e| !e.is_empty());
        let vhost = self.vhost.as_deref().unwrap_or("");
        match self.syntax {
            Syntax::Legacy => {
                let exchange = exchange.unwrap_or(&self.control_exchange);
                match cast {
                    Cast::Unicast => join(
                        ".",
                        &[
                            &self.server_prefix,
                            vhost,
                            exchange,
                            topic,
                            server.unwrap_or(""),
                        ],
                    ),
                    Cast::Multicast => join(
                        ".",
                        &[&self.broadcast_prefix, vhost, exchange, topic, "all"],
                    ),
                    Cast::Anycast => join(".", &[&self.group_prefix, vhost, exchange, topic]),
                }
            }
            Syntax::Routable => {
                let (prefix, default_exchange) = match service {
                    Service::Rpc => (&self.rpc_prefix, &self.rpc_exchange),
                    Service::Notify => (&self.notify_prefix, &self.notify_exchange),
                };
                let exchange = exchange.unwrap_or(default_exchange);
                let tag = match cast {
                    Cast::Unicast => &self.unicast_tag,
                    Cast::Multicast => &self.multicast_tag,
                    Cast::Anycast => &self.anycast_tag,
                };
                let server = if cast == Cast::Unicast {
                    server.unwrap_or("")
                } else {
                    ""
                };
                join("/", &[prefix, tag, vhost, exchange, topic, server])
            }
        }
    }

    /// Where an RPC request for `target` goes: fanout → multicast, else a
    /// server → unicast, else anycast.
    pub fn rpc_address(&self, target: &Target) -> String {
        let topic = target.topic.as_deref().unwrap_or("");
        let exchange = target.exchange.as_deref();
        let server = target.server.as_deref().filter(|s| !s.is_empty());
        let cast = if target.fanout {
            Cast::Multicast
        } else if server.is_some() {
            Cast::Unicast
        } else {
            Cast::Anycast
        };
        self.address(Service::Rpc, cast, exchange, topic, server)
    }

    /// The three addresses an RPC server for `target` subscribes to:
    /// unicast (its server name), multicast and anycast, in that order.
    pub fn server_addresses(&self, target: &Target) -> [String; 3] {
        let topic = target.topic.as_deref().unwrap_or("");
        let exchange = target.exchange.as_deref();
        let server = target.server.as_deref();
        [
            self.address(Service::Rpc, Cast::Unicast, exchange, topic, server),
            self.address(Service::Rpc, Cast::Multicast, exchange, topic, None),
            self.address(Service::Rpc, Cast::Anycast, exchange, topic, None),
        ]
    }

    /// The address of notifications for `topic_priority`
    /// (`<topic>.<priority>`). The target's exchange is not used: the
    /// Python driver never carries one for notifications.
    pub fn notify_address(&self, topic_priority: &str) -> String {
        self.address(Service::Notify, Cast::Anycast, None, topic_priority, None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts() -> AmqpOptions {
        AmqpOptions::default()
    }

    fn target() -> Target {
        Target::new("t").with_exchange("ex").with_server("s")
    }

    /// test-cases.md 104
    #[test]
    fn routable_server_links() {
        let a = Addresser::new(&opts(), Syntax::Routable, None, "openstack");
        assert_eq!(
            a.server_addresses(&target()),
            [
                "openstack.org/om/rpc/unicast/ex/t/s".to_string(),
                "openstack.org/om/rpc/multicast/ex/t".to_string(),
                "openstack.org/om/rpc/anycast/ex/t".to_string(),
            ]
        );
        assert_eq!(
            a.rpc_address(&Target::new("compute")),
            "openstack.org/om/rpc/anycast/openstack/compute"
        );
        assert_eq!(
            a.rpc_address(&Target::new("compute").with_fanout(true)),
            "openstack.org/om/rpc/multicast/openstack/compute"
        );
        assert_eq!(
            a.rpc_address(&Target::new("compute").with_server("host1")),
            "openstack.org/om/rpc/unicast/openstack/compute/host1"
        );
        assert_eq!(
            a.notify_address("notifications.info"),
            "openstack.org/om/notify/anycast/openstack/notifications.info"
        );
    }

    /// test-cases.md 105
    #[test]
    fn legacy_server_links_and_notifications() {
        let a = Addresser::new(&opts(), Syntax::Legacy, None, "openstack");
        assert_eq!(
            a.server_addresses(&target()),
            [
                "exclusive.ex.t.s".to_string(),
                "broadcast.ex.t.all".to_string(),
                "unicast.ex.t".to_string()
            ]
        );
        assert_eq!(
            a.notify_address("notifications.info"),
            "unicast.openstack.notifications.info"
        );
        assert_eq!(
            a.rpc_address(&Target::new("compute").with_server("host1")),
            "exclusive.openstack.compute.host1"
        );
        assert_eq!(
            a.rpc_address(&Target::new("compute").with_fanout(true)),
            "broadcast.openstack.compute.all"
        );
        assert_eq!(
            a.rpc_address(&Target::new("compute")),
            "unicast.openstack.compute"
        );
        // A fanout target with a server name is still multicast.
        assert_eq!(
            a.rpc_address(&Target::new("compute").with_server("h").with_fanout(true)),
            "broadcast.openstack.compute.all"
        );
    }

    /// test-cases.md 106
    #[test]
    fn dynamic_mode_follows_the_product() {
        let peer = |p: Option<&str>| PeerInfo {
            product: p.map(str::to_owned),
            version: None,
        };
        assert_eq!(
            resolve_syntax(AddressingMode::Dynamic, &peer(None)),
            Syntax::Legacy
        );
        assert_eq!(
            resolve_syntax(AddressingMode::Dynamic, &peer(Some("qpid-cpp"))),
            Syntax::Legacy
        );
        assert_eq!(
            resolve_syntax(AddressingMode::Dynamic, &peer(Some("qpid-dispatch-router"))),
            Syntax::Routable
        );
        assert_eq!(
            resolve_syntax(AddressingMode::Dynamic, &peer(Some("om-test-router"))),
            Syntax::Routable
        );
        // om's deliberate deviation: RabbitMQ refuses routable addresses.
        assert_eq!(
            resolve_syntax(AddressingMode::Dynamic, &peer(Some("RabbitMQ"))),
            Syntax::Legacy
        );
        assert_eq!(
            resolve_syntax(AddressingMode::Legacy, &peer(Some("qpid-dispatch-router"))),
            Syntax::Legacy
        );
        assert_eq!(
            resolve_syntax(AddressingMode::Routable, &peer(None)),
            Syntax::Routable
        );
    }

    /// test-cases.md 107
    #[test]
    fn pseudo_vhost_goes_into_addresses() {
        let r = Addresser::new(&opts(), Syntax::Routable, Some("vh"), "openstack");
        assert_eq!(
            r.rpc_address(&Target::new("t")),
            "openstack.org/om/rpc/anycast/vh/openstack/t"
        );
        let l = Addresser::new(&opts(), Syntax::Legacy, Some("vh"), "openstack");
        assert_eq!(l.rpc_address(&Target::new("t")), "unicast.vh.openstack.t");
        assert_eq!(
            l.rpc_address(&Target::new("t").with_server("s")),
            "exclusive.vh.openstack.t.s"
        );
        assert_eq!(
            l.rpc_address(&Target::new("t").with_fanout(true)),
            "broadcast.vh.openstack.t.all"
        );
        let mut no_pseudo = opts();
        no_pseudo.pseudo_vhost = false;
        let r = Addresser::new(&no_pseudo, Syntax::Routable, Some("vh"), "openstack");
        assert_eq!(
            r.rpc_address(&Target::new("t")),
            "openstack.org/om/rpc/anycast/openstack/t"
        );
        // An empty virtual host (`amqp://h/`) adds nothing.
        let l = Addresser::new(&opts(), Syntax::Legacy, Some(""), "openstack");
        assert_eq!(l.rpc_address(&Target::new("t")), "unicast.openstack.t");
    }

    #[test]
    fn exchange_defaults_and_prefixes() {
        let mut o = opts();
        o.default_rpc_exchange = Some("rpcx".into());
        o.default_notification_exchange = Some("notx".into());
        let r = Addresser::new(&o, Syntax::Routable, None, "openstack");
        assert_eq!(
            r.rpc_address(&Target::new("t")),
            "openstack.org/om/rpc/anycast/rpcx/t"
        );
        assert_eq!(
            r.rpc_address(&Target::new("t").with_exchange("mine")),
            "openstack.org/om/rpc/anycast/mine/t"
        );
        assert_eq!(
            r.notify_address("n.info"),
            "openstack.org/om/notify/anycast/notx/n.info"
        );
        let r = Addresser::new(&opts(), Syntax::Routable, None, "");
        assert_eq!(
            r.rpc_address(&Target::new("t")),
            "openstack.org/om/rpc/anycast/rpc/t"
        );
        assert_eq!(
            r.notify_address("n.info"),
            "openstack.org/om/notify/anycast/notify/n.info"
        );
        // Legacy ignores the routable defaults and inserts prefixes verbatim.
        let mut o = opts();
        o.broadcast_prefix = "/topic/broadcast".into();
        o.default_rpc_exchange = Some("rpcx".into());
        let l = Addresser::new(&o, Syntax::Legacy, None, "openstack");
        assert_eq!(
            l.rpc_address(&Target::new("compute").with_fanout(true)),
            "/topic/broadcast.openstack.compute.all"
        );
        assert_eq!(
            l.rpc_address(&Target::new("compute")),
            "unicast.openstack.compute"
        );
    }
}
