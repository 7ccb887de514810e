//! Notification listeners: one librdkafka consumer per listener, driven by a
//! dedicated thread, with commits of acknowledged records only.
//!
//! The thread polls the consumer and hands the records, undecoded, to the
//! [`KafkaListener`] through a bounded channel. Every handed-out record is
//! tracked per partition; acknowledging it lets the committed offset move
//! past it once every earlier record of that partition was acknowledged
//! too, so a record is never committed before its endpoint returned.

use crate::codec;
use crate::options::AutoOffsetReset;
use om_driver_api::om_core::{Error, Result};
use om_driver_api::{BoxFuture, IncomingHandle, IncomingMessage, Listener};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Time limit of the blocking calls made while partitions are assigned
/// (committed offsets, watermarks, commits).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest single poll, so that control messages are served promptly.
const MAX_POLL_STEP: Duration = Duration::from_millis(100);

/// How often a listener whose fetching is held after an outage asks for
/// fresh metadata (each attempt waits at most [`METADATA_TIMEOUT`]).
const RECHECK_EVERY: Duration = Duration::from_millis(500);

/// Time limit of one metadata request made to end a hold.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

/// Shortest interval between two commits while records are flowing.
const COMMIT_EVERY: Duration = Duration::from_millis(50);

/// Forwards librdkafka's log lines to `tracing`.
pub(crate) fn forward_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", facility = fac, "{message}")
        }
    }
}

/// A partition: topic and partition number.
type Tp = (String, i32);

/// What is known about one assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// Changes at every assignment; acknowledgements of records handed out
    /// under an older generation are ignored (those records will be
    /// delivered again from the committed offset).
    generation: u64,
    /// Offsets handed out and not acknowledged yet.
    pending: BTreeSet<i64>,
    /// The offset after the last record handed out (or the start offset).
    next: Option<i64>,
    /// The last offset committed (or stored, with auto commit).
    committed: Option<i64>,
}

impl PartitionState {
    /// The offset that may be committed: the first unacknowledged record,
    /// or the one after the last record handed out.
    fn committable(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }

    fn needs_commit(&self) -> Option<i64> {
        let c = self.committable()?;
        match self.committed {
            Some(done) if done >= c => None,
            _ => Some(c),
        }
    }
}

/// Per-partition bookkeeping of handed-out and acknowledged records.
#[derive(Debug, Default)]
struct Tracker {
    partitions: HashMap<Tp, PartitionState>,
    next_generation: u64,
}

impl Tracker {
    fn assign(&mut self, tp: Tp, start: Option<i64>, committed: Option<i64>) {
        self.next_generation += 1;
        self.partitions.insert(
            tp,
            PartitionState {
                generation: self.next_generation,
                pending: BTreeSet::new(),
                next: start,
                committed,
            },
        );
    }

    /// Records that `offset` of `tp` is handed out; returns the generation.
    fn delivered(&mut self, tp: &Tp, offset: i64) -> Option<u64> {
        let st = self.partitions.get_mut(tp)?;
        st.pending.insert(offset);
        st.next = Some(st.next.map_or(offset + 1, |n| n.max(offset + 1)));
        Some(st.generation)
    }

    fn acknowledge(&mut self, tp: &Tp, offset: i64, generation: u64) -> bool {
        match self.partitions.get_mut(tp) {
            Some(st) if st.generation == generation => st.pending.remove(&offset),
            _ => false,
        }
    }

    fn is_current(&self, tp: &Tp, generation: u64) -> bool {
        self.partitions
            .get(tp)
            .is_some_and(|st| st.generation == generation)
    }

    /// Offsets to commit, for the given partitions or all.
    fn to_commit(&self, only: Option<&[Tp]>) -> Vec<(Tp, i64)> {
        let mut out = Vec::new();
        for (tp, st) in &self.partitions {
            if only.is_some_and(|o| !o.contains(tp)) {
                continue;
            }
            if let Some(c) = st.needs_commit() {
                out.push((tp.clone(), c));
            }
        }
        out
    }

    fn committed(&mut self, done: &[(Tp, i64)]) {
        for (tp, off) in done {
            if let Some(st) = self.partitions.get_mut(tp) {
                st.committed = Some(st.committed.map_or(*off, |c| c.max(*off)));
            }
        }
    }
}

/// Messages to the consumer thread. Acknowledgements are not among them:
/// they only set [`Shared::acked`], which the thread reads between polls,
/// so that acknowledging never wakes it.
pub(crate) enum Ctl {
    /// The channel was full and the listener has since emptied at least
    /// half of it (see [`Shared::waiting_for_room`]).
    Room,
    /// Stop handing out records; reply once the channel is closed.
    Stop(oneshot::Sender<()>),
    /// Commit, close the consumer (leaving the group) and end the thread.
    Shutdown(Option<oneshot::Sender<()>>),
}

/// State shared by the listener, its handles, the consumer context and the
/// thread.
pub(crate) struct Shared {
    tracker: Mutex<Tracker>,
    ctl: Mutex<std_mpsc::Sender<Ctl>>,
    assignments: watch::Sender<u64>,
    auto_offset_reset: AutoOffsetReset,
    auto_commit: bool,
    group: String,
    shut_down: AtomicBool,
    /// Something was acknowledged since the thread last looked: there may
    /// be offsets to commit.
    acked: AtomicBool,
    /// The thread found the channel full and waits for [`Ctl::Room`]: the
    /// listener sends it once half the channel is free again, so a full
    /// channel costs one wake-up per half channel, not one per record.
    waiting_for_room: AtomicBool,
    /// Fetching is held (partitions paused) since every broker was down,
    /// until a metadata request answered after the outage (see
    /// [`hold_fetching`]).
    held: AtomicBool,
}

impl Shared {
    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a handed-out record as handled, and tells the thread there
    /// is something to commit when that moved a partition's offset.
    fn acknowledge(&self, tp: &Tp, offset: i64, generation: u64) {
        if self.tracker().acknowledge(tp, offset, generation) {
            self.acked.store(true, Ordering::Release);
        }
    }

    fn send(&self, ctl: Ctl) -> bool {
        let tx = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
        tx.send(ctl).is_ok()
    }

    /// Asks the thread to shut down without waiting (driver cleanup, drop).
    pub(crate) fn request_shutdown(&self) -> Option<oneshot::Receiver<()>> {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.send(Ctl::Shutdown(Some(tx))).then_some(rx)
    }

    /// Commits (or stores, with auto commit) the committable offsets of the
    /// given partitions, or of all.
    fn commit<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, only: Option<&[Tp]>) {
        let todo = self.tracker().to_commit(only);
        if todo.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(todo.len());
        for ((topic, partition), off) in &todo {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*off)) {
                tracing::warn!(topic = %topic, partition, error = %e, "cannot build the offset list to commit");
                return;
            }
        }
        let res = if self.auto_commit {
            consumer.store_offsets(&tpl)
        } else {
            consumer.commit(&tpl, CommitMode::Sync)
        };
        match res {
            Ok(()) => {
                tracing::trace!(group = %self.group, offsets = ?todo, "committed");
                self.tracker().committed(&todo);
            }
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "commit failed; the records will be committed later or delivered again");
            }
        }
    }
}

/// The consumer's librdkafka context: logging and rebalance handling.
pub(crate) struct ListenerContext {
    shared: Arc<Shared>,
}

impl ClientContext for ListenerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", group = %self.shared.group, error = %error, "{reason}");
    }
}

impl ListenerContext {
    /// Fixes the start offset of every newly assigned partition: the
    /// committed offset when the group has one, otherwise the end (latest)
    /// or the beginning (earliest) of the partition, which is committed at
    /// once. So "latest" means "after the group first joined", and a later
    /// rebalance never skips records produced in between.
    fn prepare_assignment(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let committed = match consumer.committed_offsets(tpl.clone(), CALL_TIMEOUT) {
            Ok(c) => Some(c.to_topic_map()),
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "cannot read the committed offsets; librdkafka's auto.offset.reset applies");
                None
            }
        };
        let mut to_commit = TopicPartitionList::new();
        let mut states = Vec::new();
        for elem in tpl.elements() {
            let tp: Tp = (elem.topic().to_owned(), elem.partition());
            let committed_offset = committed.as_ref().and_then(|m| match m.get(&tp) {
                Some(Offset::Offset(n)) => Some(*n),
                _ => None,
            });
            let start = match (committed.is_some(), committed_offset) {
                (_, Some(n)) => Some((n, false)),
                (false, None) => None,
                (true, None) => match consumer.fetch_watermarks(&tp.0, tp.1, CALL_TIMEOUT) {
                    Ok((low, high)) => Some((
                        match self.shared.auto_offset_reset {
                            AutoOffsetReset::Latest => high,
                            AutoOffsetReset::Earliest => low,
                        },
                        true,
                    )),
                    Err(e) => {
                        tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "cannot read the partition's offsets; librdkafka's auto.offset.reset applies");
                        None
                    }
                },
            };
            if let Some((off, new)) = start {
                if new {
                    if let Err(e) = to_commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(off))
                    {
                        tracing::warn!(error = %e, "cannot build the start offset list");
                    }
                }
            }
            states.push((tp, start.map(|(o, _)| o)));
        }
        for (tp, start) in &states {
            if let Some(off) = start {
                if let Err(e) = tpl.set_partition_offset(&tp.0, tp.1, Offset::Offset(*off)) {
                    tracing::warn!(error = %e, "cannot set a start offset");
                }
            }
        }
        let mut start_committed = false;
        if to_commit.count() > 0 {
            match consumer.commit(&to_commit, CommitMode::Sync) {
                Ok(()) => start_committed = true,
                Err(e) => {
                    tracing::warn!(group = %self.shared.group, error = %e, "cannot commit the start offsets of the new partitions")
                }
            }
        }
        let new_map = to_commit.to_topic_map();
        let mut tracker = self.shared.tracker();
        for (tp, start) in states {
            let committed = if new_map.contains_key(&tp) {
                if start_committed {
                    start
                } else {
                    None
                }
            } else {
                start
            };
            tracker.assign(tp, start, committed);
        }
    }
}

impl ConsumerContext for ListenerContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let held = self.shared.held.load(Ordering::SeqCst);
                if held {
                    // A rejoin right after an outage may work from cached
                    // metadata, with topic ids the restarted broker no
                    // longer knows: keep the partitions paused from before
                    // the assignment starts fetching them (the flag sticks
                    // to partitions librdkafka knows already; the pause
                    // after `assign` covers new ones).
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::debug!(group = %self.shared.group, error = %e, "cannot pause partitions");
                    }
                }
                self.prepare_assignment(consumer, tpl);
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                match consumer.assign(tpl) {
                    Ok(()) => {
                        tracing::info!(group = %self.shared.group, partitions = ?parts, "partitions assigned")
                    }
                    Err(e) => {
                        tracing::error!(group = %self.shared.group, error = %e, "cannot assign partitions")
                    }
                }
                // Partitions paused during an earlier outage stay paused
                // (librdkafka keeps the flag across assignments) until the
                // hold ends; without a hold, make sure they fetch.
                let res = if held {
                    consumer.pause(tpl)
                } else {
                    consumer.resume(tpl)
                };
                if let Err(e) = res {
                    tracing::debug!(group = %self.shared.group, held, error = %e, "cannot pause or resume partitions");
                }
                self.shared.assignments.send_modify(|n| *n += 1);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<Tp> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                self.shared.commit(consumer, Some(&revoked));
                {
                    let mut tracker = self.shared.tracker();
                    for tp in &revoked {
                        tracker.partitions.remove(tp);
                    }
                }
                tracing::info!(group = %self.shared.group, partitions = revoked.len(), "partitions revoked");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(group = %self.shared.group, error = %e, "cannot unassign partitions");
                }
            }
            other => {
                tracing::warn!(group = %self.shared.group, error = ?other, "rebalance error; dropping the assignment");
                self.shared.tracker().partitions.clear();
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(group = %self.shared.group, error = %e, "cannot unassign partitions");
                }
            }
        }
    }
}

/// Holds fetching when every broker is down: pauses the assigned
/// partitions until [`end_hold`] saw fresh metadata.
///
/// Why: a broker that lost its state (tansu with in-memory storage) answers
/// a fetch for a topic id it does not know with a zero topic id plus a
/// leader hint, and librdkafka 2.12.1 dereferences the missing topic name
/// of that hint (SIGSEGV in `rd_kafka_metadata_update_op`, under
/// `rd_kafka_metadata_cache_find` and `strcmp`). The consumer sends such a
/// fetch whenever it fetches with a topic id from before the restart: at
/// reconnection, or after a group rejoin that worked from cached metadata.
/// A metadata response that lists the topic replaces its id, so once one
/// answered after the outage for every subscribed topic, fetching is safe
/// again (see [`end_hold`]).
fn hold_fetching(consumer: &BaseConsumer<ListenerContext>, shared: &Shared) {
    let first = !shared.held.swap(true, Ordering::SeqCst);
    match consumer.assignment() {
        Ok(tpl) if tpl.count() > 0 => match consumer.pause(&tpl) {
            Ok(()) if first => {
                tracing::info!(group = %shared.group, "all brokers down: fetching paused until fresh metadata arrives")
            }
            Ok(()) => {}
            Err(e) => tracing::debug!(group = %shared.group, error = %e, "cannot pause partitions"),
        },
        _ => {}
    }
}

/// Ends a hold once a metadata request answered after the outage lists
/// every subscribed topic: that answer replaced librdkafka's topic ids.
/// A topic reported missing does not end the hold: librdkafka keeps such
/// a topic, with its old id and leader, for `topic.metadata.propagation.max.ms`
/// (30 s) and would go on fetching it. Returns whether the hold ended.
fn end_hold(consumer: &BaseConsumer<ListenerContext>, shared: &Shared) -> bool {
    let topics: Vec<String> = match consumer.subscription() {
        Ok(tpl) => tpl
            .elements()
            .iter()
            .map(|e| e.topic().to_owned())
            .collect(),
        Err(e) => {
            tracing::debug!(group = %shared.group, error = %e, "cannot read the subscription");
            return false;
        }
    };
    let mut seen = Vec::new();
    for topic in &topics {
        if seen.contains(&topic) {
            continue;
        }
        seen.push(topic);
        let exists = match consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT) {
            Ok(md) => md.topics().iter().any(|t| {
                t.name() == topic.as_str() && t.error().is_none() && !t.partitions().is_empty()
            }),
            Err(e) => {
                tracing::debug!(group = %shared.group, topic = %topic, error = %e, "no fresh metadata yet; fetching stays paused");
                false
            }
        };
        if !exists {
            return false;
        }
    }
    shared.held.store(false, Ordering::SeqCst);
    match consumer.assignment() {
        Ok(tpl) if tpl.count() > 0 => {
            if let Err(e) = consumer.resume(&tpl) {
                tracing::warn!(group = %shared.group, error = %e, "cannot resume partitions");
            }
        }
        _ => {}
    }
    tracing::info!(group = %shared.group, "brokers back with fresh metadata: fetching resumed");
    true
}

/// A record on its way from the consumer thread to the listener.
///
/// Records travel undecoded: the listener's owner decodes them in
/// [`Listener::next`], on its own task, where the message is also handled
/// and dropped. Decoding on the consumer thread allocated every map and
/// string of a message there and freed them on a tokio worker, and those
/// cross-thread frees cost more than decoding in parallel gained
/// (docs/performance-analysis.md).
struct Record {
    value: Option<Vec<u8>>,
    tp: Tp,
    offset: i64,
    generation: u64,
}

/// The broker-side handle of one received record.
struct KafkaHandle {
    shared: Arc<Shared>,
    tp: Tp,
    offset: i64,
    generation: u64,
}

impl IncomingHandle for KafkaHandle {
    fn acknowledge(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.shared
                .acknowledge(&self.tp, self.offset, self.generation);
            Ok(())
        })
    }

    fn requeue(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async {
            Err(Error::NotSupported {
                driver: "kafka".into(),
                what: "message requeue (acknowledge the record instead; an unacknowledged record is delivered again only after the listener restarts)".into(),
            })
        })
    }
}

/// Settings of one listener's thread.
pub(crate) struct ThreadSettings {
    /// Longest single poll (`kafka_consumer_timeout`, capped at 100 ms).
    pub poll_step: Duration,
    /// Records buffered ahead of the listener's owner.
    pub capacity: usize,
    /// How long `cleanup` waits for the consumer to commit and leave.
    pub close_timeout: Duration,
}

/// Creates the shared state and the consumer context of a listener.
pub(crate) fn new_context(
    group: &str,
    auto_offset_reset: AutoOffsetReset,
    auto_commit: bool,
) -> (ListenerContext, std_mpsc::Receiver<Ctl>) {
    let (ctl_tx, ctl_rx) = std_mpsc::channel();
    let (assignments, _) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        tracker: Mutex::new(Tracker::default()),
        ctl: Mutex::new(ctl_tx),
        assignments,
        auto_offset_reset,
        auto_commit,
        group: group.to_owned(),
        shut_down: AtomicBool::new(false),
        acked: AtomicBool::new(false),
        waiting_for_room: AtomicBool::new(false),
        held: AtomicBool::new(false),
    });
    (ListenerContext { shared }, ctl_rx)
}

/// A notification listener on Kafka.
pub struct KafkaListener {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Record>,
    stopped: bool,
    close_timeout: Duration,
}

impl std::fmt::Debug for KafkaListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaListener")
            .field("group", &self.shared.group)
            .finish()
    }
}

impl KafkaListener {
    /// Starts the consumer thread for a subscribed consumer.
    pub(crate) fn start(
        consumer: BaseConsumer<ListenerContext>,
        ctl_rx: std_mpsc::Receiver<Ctl>,
        settings: ThreadSettings,
    ) -> Result<KafkaListener> {
        let shared = consumer.context().shared.clone();
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let close_timeout = settings.close_timeout;
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("om-kafka-{}", shared.group))
            .spawn(move || run(consumer, thread_shared, ctl_rx, tx, settings.poll_step))
            .map_err(|e| {
                Error::transport(
                    "kafka",
                    format!("cannot start the consumer thread: {e}"),
                    false,
                )
            })?;
        Ok(KafkaListener {
            shared,
            rx,
            stopped: false,
            close_timeout,
        })
    }

    /// The shared state (for the driver's cleanup).
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Waits until the group assigned partitions to this listener (possibly
    /// none, when the group has more members than partitions), for at most
    /// `timeout`. Returns whether it happened.
    pub(crate) async fn wait_for_assignment(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.assignments.subscribe();
        let joined =
            tokio::time::timeout(timeout, async { rx.wait_for(|n| *n > 0).await.is_ok() }).await;
        matches!(joined, Ok(true))
    }
}

impl KafkaListener {
    /// Decodes a record handed out by the consumer thread. A malformed one
    /// is rejected: it counts as handled and is never delivered again.
    fn decode(
        &self,
        value: Option<&[u8]>,
        tp: Tp,
        offset: i64,
        generation: u64,
    ) -> Result<IncomingMessage> {
        match codec::decode_notification(value) {
            Ok((ctxt, message)) => {
                // The record's coordinates identify it, also when it is
                // delivered again (for duplicate detection).
                let unique_id = format!("{}:{}:{offset}", tp.0, tp.1);
                let handle = Arc::new(KafkaHandle {
                    shared: self.shared.clone(),
                    tp,
                    offset,
                    generation,
                });
                Ok(IncomingMessage::new(ctxt, message, handle).with_unique_id(Some(unique_id)))
            }
            Err(e) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, offset, error = %e, "dropping a malformed record");
                self.shared.acknowledge(&tp, offset, generation);
                Err(e)
            }
        }
    }

    /// Tells the thread, if it waits for room in the channel, once at
    /// least half of the channel is free.
    fn room_made(&self) {
        // Pairs with the fence in `push`: either the thread sees the room
        // when it retries, or this sees its flag.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.shared.waiting_for_room.load(Ordering::Relaxed)
            && self.rx.capacity() >= self.rx.max_capacity().div_ceil(2)
            && self.shared.waiting_for_room.swap(false, Ordering::AcqRel)
        {
            self.shared.send(Ctl::Room);
        }
    }
}

impl Listener for KafkaListener {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<IncomingMessage>>> {
        Box::pin(async move {
            loop {
                let Record {
                    value,
                    tp,
                    offset,
                    generation,
                } = self.rx.recv().await?;
                self.room_made();
                if self.shared.tracker().is_current(&tp, generation) {
                    return Some(self.decode(value.as_deref(), tp, offset, generation));
                }
                tracing::debug!(topic = %tp.0, partition = tp.1, "skipping a record of a partition no longer assigned");
            }
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.stopped {
                return Ok(());
            }
            self.stopped = true;
            let (tx, rx) = oneshot::channel();
            if self.shared.send(Ctl::Stop(tx)) {
                let _ = rx.await;
            }
            Ok(())
        })
    }

    fn cleanup(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let done = self.shared.request_shutdown();
        let limit = self.close_timeout;
        drop(self);
        Box::pin(async move {
            if let Some(done) = done {
                if tokio::time::timeout(limit, done).await.is_err() {
                    tracing::warn!("the Kafka consumer did not close in {limit:?}; leaving it to close in the background");
                }
            }
            Ok(())
        })
    }
}

impl Drop for KafkaListener {
    fn drop(&mut self) {
        let _ = self.shared.request_shutdown();
    }
}

/// Pushes an item into the channel, serving control messages and
/// committing while it is full. Returns the control message that ended
/// the wait, if any.
fn push(
    tx: &mpsc::Sender<Record>,
    mut item: Record,
    ctl_rx: &std_mpsc::Receiver<Ctl>,
    consumer: &BaseConsumer<ListenerContext>,
    shared: &Shared,
    last_commit: &mut Instant,
    dirty: &mut bool,
) -> std::result::Result<(), Option<Ctl>> {
    loop {
        match tx.try_send(item) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(None),
            Err(mpsc::error::TrySendError::Full(back)) => {
                item = back;
                if shared.acked.swap(false, Ordering::AcqRel) {
                    *dirty = true;
                }
                if *dirty && last_commit.elapsed() >= COMMIT_EVERY {
                    shared.commit(consumer, None);
                    *dirty = false;
                    *last_commit = Instant::now();
                }
                shared.waiting_for_room.store(true, Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::SeqCst);
                match tx.try_send(item) {
                    Ok(()) => {
                        shared.waiting_for_room.store(false, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Err(None),
                    Err(mpsc::error::TrySendError::Full(back)) => item = back,
                }
                // Woken by the listener once half the channel is free; the
                // timeout keeps commits going while it is not.
                match ctl_rx.recv_timeout(COMMIT_EVERY) {
                    Ok(Ctl::Room) => {}
                    Ok(other) => return Err(Some(other)),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return Err(None),
                }
            }
        }
    }
}

/// The consumer thread.
fn run(
    consumer: BaseConsumer<ListenerContext>,
    shared: Arc<Shared>,
    ctl_rx: std_mpsc::Receiver<Ctl>,
    tx: mpsc::Sender<Record>,
    poll_step: Duration,
) {
    let step = poll_step.min(MAX_POLL_STEP).max(Duration::from_millis(1));
    let mut out = Some(tx);
    let mut done: Option<oneshot::Sender<()>> = None;
    let mut shutdown = false;
    let mut last_error: Option<String> = None;
    let mut dirty = false;
    let mut idle = true;
    let mut last_commit = Instant::now();
    let mut last_check = Instant::now();
    'outer: loop {
        // Serve control messages.
        let mut pending_ctl: Vec<Ctl> = Vec::new();
        while let Ok(c) = ctl_rx.try_recv() {
            pending_ctl.push(c);
        }
        if shared.acked.swap(false, Ordering::AcqRel) {
            dirty = true;
        }
        for c in pending_ctl {
            match c {
                Ctl::Room => {}
                Ctl::Stop(reply) => {
                    out = None;
                    let _ = reply.send(());
                }
                Ctl::Shutdown(reply) => {
                    shutdown = true;
                    done = reply;
                }
            }
        }
        // Commit what was acknowledged: at once when idle, at most every
        // COMMIT_EVERY while records are flowing (one synchronous commit
        // then covers many acknowledgements).
        if shutdown || (dirty && (idle || last_commit.elapsed() >= COMMIT_EVERY)) {
            shared.commit(&consumer, None);
            dirty = false;
            last_commit = Instant::now();
        }
        if shutdown {
            break 'outer;
        }
        // After an outage, resume fetching once fresh metadata arrived.
        if shared.held.load(Ordering::SeqCst) && last_check.elapsed() >= RECHECK_EVERY {
            end_hold(&consumer, &shared);
            last_check = Instant::now();
        }
        let polled = consumer.poll(if dirty { step.min(COMMIT_EVERY) } else { step });
        idle = polled.is_none();
        match polled {
            None => {}
            Some(Err(e)) => {
                if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                    hold_fetching(&consumer, &shared);
                    last_check = Instant::now();
                }
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(group = %shared.group, error = %text, "consumer error; librdkafka keeps reconnecting");
                    last_error = Some(text);
                }
            }
            Some(Ok(record)) => {
                last_error = None;
                let Some(tx) = out.as_ref() else {
                    // Stopped: the record is not handed out and stays
                    // uncommitted.
                    continue;
                };
                let tp: Tp = (record.topic().to_owned(), record.partition());
                let offset = record.offset();
                let Some(generation) = shared.tracker().delivered(&tp, offset) else {
                    tracing::warn!(topic = %tp.0, partition = tp.1, offset, "skipping a record of a partition not assigned to this listener");
                    continue;
                };
                let item = Record {
                    value: record.payload().map(<[u8]>::to_vec),
                    tp,
                    offset,
                    generation,
                };
                drop(record);
                match push(
                    tx,
                    item,
                    &ctl_rx,
                    &consumer,
                    &shared,
                    &mut last_commit,
                    &mut dirty,
                ) {
                    Ok(()) => {}
                    Err(None) => out = None,
                    Err(Some(Ctl::Stop(reply))) => {
                        out = None;
                        let _ = reply.send(());
                    }
                    Err(Some(Ctl::Shutdown(reply))) => {
                        done = reply;
                        shared.commit(&consumer, None);
                        break 'outer;
                    }
                    Err(Some(Ctl::Room)) => {}
                }
            }
        }
    }
    drop(out);
    // Closing the consumer revokes the partitions (committing what was
    // acknowledged) and leaves the group.
    drop(consumer);
    tracing::debug!(group = %shared.group, "listener closed");
    if let Some(d) = done {
        let _ = d.send(());
    }
}
