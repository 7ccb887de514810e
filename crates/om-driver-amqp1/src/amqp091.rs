//! A minimal AMQP 0-9-1 client for RabbitMQ housekeeping.
//!
//! RabbitMQ 3.10's AMQP 1.0 plugin declares a plain, non-auto-delete queue
//! for every receiver address and offers no way to delete one over AMQP
//! 1.0; it has no dynamic sources either. So that the driver leaves nothing
//! behind, it declares its own per-process queues (the reply queue and each
//! RPC server's fanout queue) over AMQP 0-9-1 on the same port, with an
//! `x-expires` argument (RabbitMQ deletes them once unused, even after a
//! crash), consumes them over AMQP 1.0 through `/amq/queue/<name>`
//! addresses (which do not re-declare), and deletes them on cleanup.
//!
//! Only what that needs is implemented: connection with PLAIN, one
//! channel, `queue.declare`, `queue.bind`, `queue.delete`, close.

use om_driver_api::om_core::{Error, Result};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const FRAME_METHOD: u8 = 1;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

fn err(msg: impl Into<String>) -> Error {
    Error::transport(
        "amqp",
        format!("RabbitMQ housekeeping (AMQP 0-9-1): {}", msg.into()),
        true,
    )
}

/// Writes 0-9-1 method arguments.
#[derive(Default)]
struct Args(Vec<u8>);

impl Args {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn shortstr(mut self, s: &str) -> Result<Self> {
        let len = u8::try_from(s.len()).map_err(|_| err(format!("name too long: {s:?}")))?;
        self.0.push(len);
        self.0.extend_from_slice(s.as_bytes());
        Ok(self)
    }
    fn longstr(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    /// A field table of `i32` values.
    fn table(mut self, entries: &[(&str, i32)]) -> Result<Self> {
        let mut t = Args::default();
        for (k, v) in entries {
            t = t.shortstr(k)?.u8(b'I');
            t.0.extend_from_slice(&v.to_be_bytes());
        }
        self = self.u32(t.0.len() as u32);
        self.0.extend_from_slice(&t.0);
        Ok(self)
    }
}

/// One AMQP 0-9-1 connection with channel 1 open.
pub(crate) struct Amqp091<S> {
    io: S,
}

/// Credentials and virtual host for [`Amqp091::open`].
#[derive(Clone)]
pub(crate) struct Login {
    /// User name.
    pub user: String,
    /// Password (never logged).
    pub password: String,
    /// RabbitMQ virtual host (`/` by default).
    pub vhost: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Amqp091<S> {
    /// Performs the handshake on `io` and opens channel 1.
    pub(crate) async fn open(io: S, login: &Login, timeout: Duration) -> Result<Self> {
        tokio::time::timeout(timeout, Self::open_inner(io, login))
            .await
            .map_err(|_| err("handshake timed out"))?
    }

    async fn open_inner(io: S, login: &Login) -> Result<Self> {
        let mut c = Amqp091 { io };
        c.io.write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .map_err(|e| err(e.to_string()))?;
        c.expect(0, 10, 10).await?; // connection.start
        let mut response = vec![0u8];
        response.extend_from_slice(login.user.as_bytes());
        response.push(0);
        response.extend_from_slice(login.password.as_bytes());
        let start_ok = Args::default()
            .table(&[])?
            .shortstr("PLAIN")?
            .longstr(&response)
            .shortstr("en_US")?;
        c.send(0, 10, 11, start_ok).await?;
        let tune = c.expect(0, 10, 30).await?; // connection.tune
        let channel_max = tune
            .get(0..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .unwrap_or(0);
        let frame_max = tune
            .get(2..6)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        c.send(
            0,
            10,
            31,
            Args::default().u16(channel_max).u32(frame_max).u16(0),
        )
        .await?;
        c.send(
            0,
            10,
            40,
            Args::default().shortstr(&login.vhost)?.shortstr("")?.u8(0),
        )
        .await?;
        c.expect(0, 10, 41).await?; // connection.open-ok
        c.send(1, 20, 10, Args::default().shortstr("")?).await?;
        c.expect(1, 20, 11).await?; // channel.open-ok
        Ok(c)
    }

    async fn send(&mut self, channel: u16, class: u16, method: u16, args: Args) -> Result<()> {
        let mut payload = Vec::with_capacity(args.0.len() + 4);
        payload.extend_from_slice(&class.to_be_bytes());
        payload.extend_from_slice(&method.to_be_bytes());
        payload.extend_from_slice(&args.0);
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.push(FRAME_METHOD);
        frame.extend_from_slice(&channel.to_be_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(FRAME_END);
        self.io
            .write_all(&frame)
            .await
            .map_err(|e| err(e.to_string()))?;
        self.io.flush().await.map_err(|e| err(e.to_string()))
    }

    /// Reads frames until the method `class.method` arrives on `channel`
    /// and returns its arguments; a `close` from the server is an error
    /// carrying its reply text.
    async fn expect(&mut self, channel: u16, class: u16, method: u16) -> Result<Vec<u8>> {
        loop {
            let mut head = [0u8; 7];
            self.io
                .read_exact(&mut head)
                .await
                .map_err(|e| err(format!("connection lost: {e}")))?;
            let ftype = head[0];
            let ch = u16::from_be_bytes([head[1], head[2]]);
            let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
            if size > 1 << 20 {
                return Err(err("oversized frame"));
            }
            let mut payload = vec![0u8; size + 1];
            self.io
                .read_exact(&mut payload)
                .await
                .map_err(|e| err(format!("connection lost: {e}")))?;
            if payload.pop() != Some(FRAME_END) {
                return Err(err("bad frame end"));
            }
            if ftype == FRAME_HEARTBEAT || ftype != FRAME_METHOD || payload.len() < 4 {
                continue;
            }
            let c = u16::from_be_bytes([payload[0], payload[1]]);
            let m = u16::from_be_bytes([payload[2], payload[3]]);
            let args = payload.split_off(4);
            if (c, m) == (10, 50) || (c, m) == (20, 40) {
                let code = args
                    .get(0..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .unwrap_or(0);
                let text_len = args.get(2).copied().unwrap_or(0) as usize;
                let text = args
                    .get(3..3 + text_len)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(err(format!(
                    "server closed the {}: {code} {text}",
                    if c == 10 { "connection" } else { "channel" }
                )));
            }
            if ch == channel && c == class && m == method {
                return Ok(args);
            }
        }
    }

    /// Declares a non-durable queue that RabbitMQ deletes after `expires`
    /// without consumers.
    pub(crate) async fn declare_expiring_queue(
        &mut self,
        name: &str,
        expires: Duration,
    ) -> Result<()> {
        let ms = i32::try_from(expires.as_millis()).unwrap_or(i32::MAX);
        let args = Args::default()
            .u16(0)
            .shortstr(name)?
            .u8(0)
            .table(&[("x-expires", ms)])?;
        self.send(1, 50, 10, args).await?;
        self.expect(1, 50, 11).await.map(|_| ())
    }

    /// Binds `queue` to `exchange` with `routing_key`.
    pub(crate) async fn bind(
        &mut self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<()> {
        let args = Args::default()
            .u16(0)
            .shortstr(queue)?
            .shortstr(exchange)?
            .shortstr(routing_key)?
            .u8(0)
            .table(&[])?;
        self.send(1, 50, 20, args).await?;
        self.expect(1, 50, 21).await.map(|_| ())
    }

    /// Deletes `queue` (a missing queue is not an error on RabbitMQ).
    pub(crate) async fn delete_queue(&mut self, name: &str) -> Result<()> {
        let args = Args::default().u16(0).shortstr(name)?.u8(0);
        self.send(1, 50, 40, args).await?;
        self.expect(1, 50, 41).await.map(|_| ())
    }

    /// Closes the connection politely.
    pub(crate) async fn close(mut self) {
        let args = Args::default()
            .u16(200)
            .shortstr("bye")
            .map(|a| a.u16(0).u16(0));
        if let Ok(args) = args {
            if self.send(0, 10, 50, args).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(2), self.expect(0, 10, 51)).await;
            }
        }
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_strings_encode_as_091() {
        let a = Args::default()
            .u16(0)
            .shortstr("q")
            .unwrap()
            .u8(0)
            .table(&[("x-expires", 60000)])
            .unwrap();
        let mut want = vec![0, 0, 1, b'q', 0];
        let entry = [&[9u8][..], b"x-expires", b"I", &60000i32.to_be_bytes()].concat();
        want.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        want.extend_from_slice(&entry);
        assert_eq!(a.0, want);
        assert!(Args::default().shortstr(&"x".repeat(256)).is_err());
    }
}
