//! `cargo xtask bench sockets`: being written (issue 17).

pub fn run(_seconds: u64, _sockets: usize) -> anyhow::Result<()> {
    anyhow::bail!("bench sockets is not built yet")
}
