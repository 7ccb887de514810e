//! `cargo xtask matrix`: the driver × broker × case table.

use anyhow::Result;

pub fn run(_args: &[&str]) -> Result<()> {
    anyhow::bail!("matrix: not available yet")
}
