//! Reads the peer's `open` frame off the wire.
//!
//! fe2o3-amqp does not expose the remote `open` performative, but the
//! `dynamic` addressing mode needs its `product` property. [`Sniffer`] wraps
//! the transport stream and keeps a copy of the first bytes the peer sends,
//! up to and including its `open` frame; [`find_open`] parses them.

use crate::address::PeerInfo;
use fe2o3_amqp::types::performatives::Open;
use fe2o3_amqp::types::primitives::Value as AmqpPrimitive;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Stop capturing after this many bytes (the `open` comes right after the
/// SASL exchange; this is far more than it takes).
const CAPTURE_LIMIT: usize = 64 * 1024;

/// What the sniffer learnt.
#[derive(Debug, Default)]
struct Capture {
    buf: Vec<u8>,
    peer: Option<PeerInfo>,
    gave_up: bool,
}

/// A shared view of what a [`Sniffer`] captured.
#[derive(Debug, Clone, Default)]
pub(crate) struct CaptureHandle(Arc<Mutex<Capture>>);

impl CaptureHandle {
    /// The peer's `open` properties, once the frame was seen.
    pub(crate) fn peer(&self) -> Option<PeerInfo> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peer
            .clone()
    }
}

/// A stream that records the peer's first frames.
#[derive(Debug)]
pub(crate) struct Sniffer<S> {
    inner: S,
    capture: CaptureHandle,
    done: bool,
}

impl<S> Sniffer<S> {
    /// Wraps `inner`; read the result through the returned handle.
    pub(crate) fn new(inner: S) -> (Self, CaptureHandle) {
        let capture = CaptureHandle::default();
        (
            Sniffer {
                inner,
                capture: capture.clone(),
                done: false,
            },
            capture,
        )
    }

    fn record(&mut self, bytes: &[u8]) {
        let mut c = self.capture.0.lock().unwrap_or_else(|e| e.into_inner());
        c.buf.extend_from_slice(bytes);
        match find_open(&c.buf) {
            Parse::Found(peer) => {
                c.peer = Some(peer);
                c.buf = Vec::new();
                self.done = true;
            }
            Parse::Failed => {
                c.gave_up = true;
                c.buf = Vec::new();
                self.done = true;
            }
            Parse::NeedMore if c.buf.len() > CAPTURE_LIMIT => {
                c.gave_up = true;
                c.buf = Vec::new();
                self.done = true;
            }
            Parse::NeedMore => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniffer<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.done {
            if let Poll::Ready(Ok(())) = res {
                let new = buf.filled()[before..].to_vec();
                if !new.is_empty() {
                    self.record(&new);
                }
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniffer<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Result of scanning captured bytes.
#[derive(Debug, PartialEq)]
pub(crate) enum Parse {
    /// The `open` frame was found.
    Found(PeerInfo),
    /// More bytes are needed.
    NeedMore,
    /// The bytes are not a frame sequence this parser understands.
    Failed,
}

fn text(v: &AmqpPrimitive) -> Option<String> {
    match v {
        AmqpPrimitive::String(s) => Some(s.clone()),
        AmqpPrimitive::Symbol(s) => Some(s.0.clone()),
        _ => None,
    }
}

/// Scans the bytes a peer sent from the start of the connection: protocol
/// headers (`AMQP` + 4 bytes), SASL frames, empty frames, and the first
/// AMQP frame, which must be `open`.
pub(crate) fn find_open(buf: &[u8]) -> Parse {
    let mut pos = 0usize;
    loop {
        let rest = &buf[pos..];
        if rest.len() < 8 {
            return Parse::NeedMore;
        }
        if &rest[..4] == b"AMQP" {
            pos += 8;
            continue;
        }
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let doff = usize::from(rest[4]) * 4;
        let frame_type = rest[5];
        if size < 8 || doff < 8 || doff > size {
            return Parse::Failed;
        }
        if rest.len() < size {
            return Parse::NeedMore;
        }
        let body = &rest[doff..size];
        pos += size;
        match frame_type {
            // SASL frames precede the AMQP header.
            1 => continue,
            0 if body.is_empty() => continue,
            0 => {
                return match serde_amqp::from_slice::<Open>(body) {
                    Ok(open) => {
                        let mut peer = PeerInfo::default();
                        if let Some(props) = &open.properties {
                            for (k, v) in props.iter() {
                                match k.0.as_str() {
                                    "product" => peer.product = text(v),
                                    "version" => peer.version = text(v),
                                    _ => {}
                                }
                            }
                        }
                        Parse::Found(peer)
                    }
                    Err(_) => Parse::Failed,
                }
            }
            _ => return Parse::Failed,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::definitions::Fields;
    use fe2o3_amqp::types::primitives::Symbol;

    fn frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
        f.extend_from_slice(&[2, frame_type, 0, 0]);
        f.extend_from_slice(body);
        f
    }

    fn open_bytes(product: Option<&str>) -> Vec<u8> {
        let mut props = Fields::default();
        if let Some(p) = product {
            props.insert(Symbol::from("product"), AmqpPrimitive::String(p.into()));
        }
        props.insert(
            Symbol::from("version"),
            AmqpPrimitive::String("3.10.8".into()),
        );
        let open = Open {
            container_id: "peer".into(),
            hostname: None,
            max_frame_size: Default::default(),
            channel_max: Default::default(),
            idle_time_out: None,
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: Some(props),
        };
        serde_amqp::to_vec(&open).unwrap()
    }

    #[test]
    fn finds_open_after_sasl_and_headers() {
        let mut bytes = b"AMQP\x03\x01\x00\x00".to_vec();
        bytes.extend(frame(1, b"\x00\x53\x40\x45"));
        bytes.extend(frame(1, b"\x00\x53\x44\x45"));
        bytes.extend_from_slice(b"AMQP\x00\x01\x00\x00");
        bytes.extend(frame(0, b""));
        bytes.extend(frame(0, &open_bytes(Some("RabbitMQ"))));
        for cut in [0, 5, 8, 20, bytes.len() - 1] {
            assert_eq!(find_open(&bytes[..cut]), Parse::NeedMore, "cut at {cut}");
        }
        match find_open(&bytes) {
            Parse::Found(p) => {
                assert_eq!(p.product.as_deref(), Some("RabbitMQ"));
                assert_eq!(p.version.as_deref(), Some("3.10.8"));
                assert!(p.is_rabbitmq());
            }
            other => panic!("{other:?}"),
        }
        let mut plain = b"AMQP\x00\x01\x00\x00".to_vec();
        plain.extend(frame(0, &open_bytes(None)));
        assert_eq!(
            find_open(&plain),
            Parse::Found(PeerInfo {
                product: None,
                version: Some("3.10.8".into())
            })
        );
        assert_eq!(
            find_open(b"\x00\x00\x00\x02\x02\x00\x00\x00"),
            Parse::Failed
        );
    }
}
