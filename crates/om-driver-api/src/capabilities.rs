//! What a driver can do.

/// The features a driver supports. The conformance suite and the RPC and
/// notification layers check these instead of guessing from the driver name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// RPC calls, casts and servers (false for Kafka, as in oslo).
    pub rpc: bool,
    /// Fanout casts.
    pub fanout: bool,
    /// Call-monitor heartbeats from server to caller.
    pub heartbeat: bool,
    /// Sending and receiving notifications.
    pub notifications: bool,
    /// Listener pools (each pool gets its own copy).
    pub notification_pools: bool,
    /// Requeueing a notification for redelivery.
    pub requeue: bool,
    /// Notifications sent before any listener exists are kept for the first
    /// listener (RabbitMQ declares the queue when publishing).
    pub retains_unconsumed_notifications: bool,
    /// `TransportOptions::at_least_once` makes an unroutable request fail
    /// with `MessageUndeliverable` at once.
    pub mandatory_publish: bool,
}

impl Capabilities {
    /// Every capability.
    pub const fn all() -> Self {
        Capabilities {
            rpc: true,
            fanout: true,
            heartbeat: true,
            notifications: true,
            notification_pools: true,
            requeue: true,
            retains_unconsumed_notifications: true,
            mandatory_publish: true,
        }
    }

    /// No capability; start from here and switch on what a driver has.
    pub const fn none() -> Self {
        Capabilities {
            rpc: false,
            fanout: false,
            heartbeat: false,
            notifications: false,
            notification_pools: false,
            requeue: false,
            retains_unconsumed_notifications: false,
            mandatory_publish: false,
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::none()
    }
}
