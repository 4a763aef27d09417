//! `cargo xtask bench durability`: being written (issue 17).

pub fn run(_seconds: u64, _rounds: u64) -> anyhow::Result<()> {
    anyhow::bail!("bench durability is not built yet")
}
