//! `cargo xtask`: om's own test, broker and benchmark driver.
//!
//! ```text
//! cargo xtask brokers up|down|status   start/stop the test brokers on loopback
//! cargo xtask python                   create .om/venv (oslo.messaging 18.3.1, tansu) and
//!                                      .om/venv-amqp1 (oslo.messaging 14.9.3, AMQP 1.0 driver)
//! cargo xtask test                     provision, start brokers, run every test and lint
//! cargo xtask matrix                   driver x broker x scenario pass/fail table
//! cargo xtask bench                    end-to-end benchmarks, writes docs/performance.md
//! ```
//!
//! Everything the tests need is provisioned here (Debian packages when run
//! as root, a Python venv from PyPI), and every broker runs as a plain
//! background process on a fixed loopback port with its state under `.om/`.

mod bench;
mod brokers;
mod cmd;
mod matrix;
mod provision;
mod test;

use anyhow::{bail, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["brokers", "up", rest @ ..] => brokers::up(&brokers::select(rest)?),
        ["brokers", "down", rest @ ..] => brokers::down(&brokers::select(rest)?),
        ["brokers", "status", rest @ ..] => brokers::status(&brokers::select(rest)?),
        ["python"] => provision::python_venv()
            .and_then(|_| provision::python_venv_amqp1())
            .map(|_| ()),
        ["test", rest @ ..] => test::run(rest),
        ["matrix", rest @ ..] => matrix::run(rest),
        ["bench", rest @ ..] => bench::run(rest),
        [] | ["help"] | ["--help"] | ["-h"] => {
            println!("{}", HELP);
            Ok(())
        }
        other => bail!("unknown command {:?}\n{}", other.join(" "), HELP),
    }
}

const HELP: &str = "usage: cargo xtask <command>

  brokers up|down|status [rabbit|kafka|all]
                 start, stop or check the test brokers (loopback only; state in .om/)
  python         create .om/venv with Python oslo.messaging 18.3.1 (the interop peer) and tansu,
                 and .om/venv-amqp1 with oslo.messaging 14.9.3 (the AMQP 1.0 interop peer)
  test [--no-lint] [--only PKG]
                 provision, start the brokers, run every test (fails if a broker test
                 could not run), run the examples and the lints, stop the brokers
  matrix         run the conformance suites and print the driver x broker x case table";
