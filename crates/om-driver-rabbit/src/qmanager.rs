//! oslo's queue manager (`use_queue_manager=true`): stable reply and fanout
//! queue names `<hostname>:<processname>:<n>`, with the counter kept in
//! `/dev/shm/<hostname>_<processname>_qmanager` as `pgrp:counter:start`
//! (the format oslo.messaging writes) and reset when the process group
//! changes (the service restarted).
//!
//! Limitation: the file is guarded by an in-process lock only; oslo also
//! takes an inter-process `oslo_concurrency` lock, so om and Python
//! processes of the same host/process name should not share a counter.

use std::sync::Mutex;

/// Builds queue-manager names.
#[derive(Debug)]
pub(crate) struct QueueManager {
    hostname: String,
    processname: String,
    lock: Mutex<()>,
}

/// `(process group, start time of the group leader)` from `/proc`.
fn service_identity() -> (i64, i64) {
    let stat_fields = |pid: &str| -> Option<Vec<String>> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may contain spaces.
        let after = &s[s.rfind(')')? + 1..];
        Some(after.split_whitespace().map(str::to_owned).collect())
    };
    // After the command: state(0) ppid(1) pgrp(2) ... starttime(19).
    let pg = stat_fields("self")
        .and_then(|f| f.get(2).and_then(|v| v.parse::<i64>().ok()))
        .unwrap_or(0);
    let leader = if pg > 0 {
        pg.to_string()
    } else {
        std::process::id().to_string()
    };
    let start = stat_fields(&leader)
        .and_then(|f| f.get(19).and_then(|v| v.parse::<i64>().ok()))
        .unwrap_or(0);
    (pg, start)
}

impl QueueManager {
    pub(crate) fn new(hostname: &str, processname: &str) -> Self {
        QueueManager {
            hostname: hostname.to_owned(),
            processname: processname.to_owned(),
            lock: Mutex::new(()),
        }
    }

    /// The next `<hostname>:<processname>:<n>`.
    pub(crate) fn get(&self) -> String {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = format!("/dev/shm/{}_{}_qmanager", self.hostname, self.processname);
        let (cur_pg, cur_start) = service_identity();
        let stored = std::fs::read_to_string(&file).ok().and_then(|s| {
            let mut it = s.lines().next()?.split(':');
            let pg = it.next()?.trim().parse::<i64>().ok()?;
            let counter = it.next()?.trim().parse::<u64>().ok()?;
            let start = it.next()?.trim().parse::<i64>().ok()?;
            Some((pg, counter, start))
        });
        let counter = match stored {
            Some((pg, c, start)) if pg == cur_pg && start == cur_start => c + 1,
            _ => 1,
        };
        if let Err(e) = std::fs::write(&file, format!("{cur_pg}:{counter}:{cur_start}")) {
            tracing::warn!(file = %file, error = %e, "queue manager: cannot store the counter");
        }
        format!("{}:{}:{}", self.hostname, self.processname, counter)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counter_increments_per_call() {
        let host = format!("omtest{}", om_driver_api::om_core::uuid_hex());
        let qm = QueueManager::new(&host, "proc");
        assert_eq!(qm.get(), format!("{host}:proc:1"));
        assert_eq!(qm.get(), format!("{host}:proc:2"));
        let _ = std::fs::remove_file(format!("/dev/shm/{host}_proc_qmanager"));
    }
}
