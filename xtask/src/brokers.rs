//! The test brokers: two RabbitMQ nodes (the first with its AMQP 1.0
//! plugin) and a tansu Kafka-protocol broker, each a background process on a
//! fixed loopback port with its state under `.om/`.

use crate::{cmd, provision};
use anyhow::{bail, Result};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// RabbitMQ node 1 (RPC, notifications, AMQP 1.0 plugin).
    Rabbit1,
    /// RabbitMQ node 2 (failover and restart tests).
    Rabbit2,
    /// tansu (Kafka protocol).
    Tansu,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Rabbit1 => "rabbit1",
            Broker::Rabbit2 => "rabbit2",
            Broker::Tansu => "tansu",
        }
    }

    /// Loopback port; chosen away from the brokers' defaults so a system
    /// broker on 5672 / 9092 is never touched. `OM_TEST_PORT_BASE` (default
    /// 35672) moves all of them, so two checkouts can test side by side:
    /// RabbitMQ nodes on base and base+1 (Erlang distribution on +20000),
    /// tansu on base+3420 (39092 by default).
    pub fn port(self) -> u16 {
        let base = std::env::var("OM_TEST_PORT_BASE")
            .ok()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|b| (1024..=45000).contains(b))
            .unwrap_or(35672);
        match self {
            Broker::Rabbit1 => base,
            Broker::Rabbit2 => base + 1,
            Broker::Tansu => base + 3420,
        }
    }

    fn dir(self) -> PathBuf {
        cmd::state_dir().join(self.name())
    }

    fn script(self) -> PathBuf {
        match self {
            Broker::Rabbit1 | Broker::Rabbit2 => cmd::root().join("xtask/scripts/rabbitmq.sh"),
            Broker::Tansu => cmd::root().join("xtask/scripts/tansu.sh"),
        }
    }

    /// The environment that drives the broker's control script.
    fn script_env(self) -> Result<Vec<(String, String)>> {
        let dir = self.dir().to_string_lossy().into_owned();
        let port = self.port().to_string();
        Ok(match self {
            Broker::Rabbit1 | Broker::Rabbit2 => {
                vec![("OM_RMQ_DIR".into(), dir), ("OM_RMQ_PORT".into(), port)]
            }
            Broker::Tansu => vec![
                ("OM_TANSU_DIR".into(), dir),
                ("OM_TANSU_PORT".into(), port),
                (
                    "OM_TANSU_BIN".into(),
                    provision::tansu_binary()?.to_string_lossy().into_owned(),
                ),
            ],
        })
    }

    /// `env K=V ... script`: a command prefix the tests use to stop and
    /// start this broker (`$OM_RABBIT_CTL stop`).
    fn ctl_prefix(self) -> Result<String> {
        let mut s = String::from("env");
        for (k, v) in self.script_env()? {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push(' ');
        s.push_str(&self.script().to_string_lossy());
        Ok(s)
    }

    fn control(self, action: &str) -> Result<()> {
        let mut c = Command::new("sh");
        c.arg(self.script()).arg(action);
        for (k, v) in self.script_env()? {
            c.env(k, v);
        }
        cmd::run(&mut c)
    }

    fn is_up(self) -> bool {
        port_open(self.port())
    }
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Parses `[rabbit|kafka|all]`.
pub fn select(args: &[&str]) -> Result<Vec<Broker>> {
    let mut out = Vec::new();
    let all = [Broker::Rabbit1, Broker::Rabbit2, Broker::Tansu];
    if args.is_empty() {
        return Ok(all.to_vec());
    }
    for a in args {
        match *a {
            "all" => out.extend(all),
            "rabbit" => out.extend([Broker::Rabbit1, Broker::Rabbit2]),
            "rabbit1" => out.push(Broker::Rabbit1),
            "rabbit2" => out.push(Broker::Rabbit2),
            "kafka" | "tansu" => out.push(Broker::Tansu),
            other => bail!("unknown broker {other:?} (rabbit, rabbit1, rabbit2, kafka, all)"),
        }
    }
    out.dedup();
    Ok(out)
}

/// Starts the brokers (fresh state each time) and writes `.om/brokers.env`.
pub fn up(which: &[Broker]) -> Result<()> {
    if which
        .iter()
        .any(|b| matches!(b, Broker::Rabbit1 | Broker::Rabbit2))
    {
        provision::rabbitmq()?;
    }
    for &b in which {
        if b.is_up() {
            // Ours from an earlier run, or someone else's: try to stop ours.
            let _ = b.control("stop");
            let deadline = Instant::now() + Duration::from_secs(15);
            while b.is_up() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            if b.is_up() {
                bail!(
                    "port {} for {} is taken by another process",
                    b.port(),
                    b.name()
                );
            }
        }
        let _ = std::fs::remove_dir_all(b.dir());
        std::fs::create_dir_all(b.dir())?;
        let started = Instant::now();
        b.control("start")?;
        eprintln!(
            "xtask: {} up on 127.0.0.1:{} in {:.1?}",
            b.name(),
            b.port(),
            started.elapsed()
        );
    }
    write_env()?;
    Ok(())
}

/// Stops the brokers, and Erlang's port mapper (epmd, started by the first
/// RabbitMQ node) when no other Erlang node still uses it, so a test run
/// leaves no process behind; rewrites `.om/brokers.env` for what is left.
pub fn down(which: &[Broker]) -> Result<()> {
    for &b in which {
        if b.dir().exists() || b.is_up() {
            if let Err(e) = b.control("stop") {
                eprintln!("xtask: stopping {}: {e:#}", b.name());
            }
        }
    }
    if which
        .iter()
        .any(|b| matches!(b, Broker::Rabbit1 | Broker::Rabbit2))
        && cmd::have("epmd")
    {
        if let Ok(names) = cmd::output(Command::new("epmd").arg("-names")) {
            let nodes = names.lines().filter(|l| l.starts_with("name ")).count();
            if nodes == 0 {
                let _ = cmd::succeeds(Command::new("epmd").arg("-kill"));
            }
        }
    }
    // The file names only the brokers still up.
    if cmd::state_dir().join("brokers.env").exists() {
        write_env()?;
    }
    Ok(())
}

/// Prints which brokers are up.
pub fn status(which: &[Broker]) -> Result<()> {
    for &b in which {
        println!(
            "{:8} 127.0.0.1:{:<5} {}",
            b.name(),
            b.port(),
            if b.is_up() { "up" } else { "down" }
        );
    }
    Ok(())
}

/// The environment the tests read, for the brokers that are up.
pub fn test_env() -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    let r1 = Broker::Rabbit1;
    if r1.is_up() {
        env.push((
            "OM_RABBIT_URL".into(),
            format!("rabbit://guest:guest@127.0.0.1:{}/", r1.port()),
        ));
        env.push(("OM_RABBIT_CTL".into(), r1.ctl_prefix()?));
        env.push((
            "OM_AMQP1_BROKER_URL".into(),
            format!("amqp://guest:guest@127.0.0.1:{}", r1.port()),
        ));
    }
    let r2 = Broker::Rabbit2;
    if r2.is_up() {
        env.push((
            "OM_RABBIT2_URL".into(),
            format!("rabbit://guest:guest@127.0.0.1:{}/", r2.port()),
        ));
        env.push(("OM_RABBIT2_CTL".into(), r2.ctl_prefix()?));
    }
    let t = Broker::Tansu;
    if t.is_up() {
        env.push((
            "OM_KAFKA_URL".into(),
            format!("kafka://127.0.0.1:{}/", t.port()),
        ));
        env.push(("OM_KAFKA_CTL".into(), t.ctl_prefix()?));
    }
    let py = provision::venv_python();
    if py.exists() {
        env.push(("OM_PYTHON".into(), py.to_string_lossy().into_owned()));
    }
    let py = provision::venv_amqp1_python();
    if py.exists() {
        env.push(("OM_PYTHON_AMQP1".into(), py.to_string_lossy().into_owned()));
    }
    Ok(env)
}

fn write_env() -> Result<()> {
    let mut text = String::from(
        "# written by `cargo xtask brokers up`; source it to run broker tests by hand\n",
    );
    for (k, v) in test_env()? {
        text.push_str(&format!("export {k}='{v}'\n"));
    }
    let path = cmd::state_dir().join("brokers.env");
    std::fs::write(&path, text)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}
