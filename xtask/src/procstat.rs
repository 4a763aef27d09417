//! What /proc says about a running process: its resident memory and the CPU time it has used,
//! read by the benchmarks to put a memory and CPU cost on each part of the system.

use anyhow::Context;

/// A field of /proc/<pid>/status, e.g. `VmRSS:` (in the unit the kernel prints, kB for sizes).
fn status_field(pid: u32, key: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key} for pid {pid}"))
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    Ok(status_field(pid, "VmRSS:")? * 1024)
}

/// User + system CPU time of a process so far, in clock ticks (fields 14 and 15 of stat(5)).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(field(11) + field(12))
}

/// Clock ticks per second (`getconf CLK_TCK`): the unit of [`cpu_ticks`].
pub fn ticks_per_second() -> f64 {
    use nix::unistd::{SysconfVar, sysconf};
    // 100 is what every Linux we run on answers; the fallback only guards a failed call.
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_uses_cpu() -> anyhow::Result<()> {
        let me = std::process::id();
        assert!(rss(me)? > 1 << 20);
        let before = cpu_ticks(me)?;
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ticks(me)? > before);
        assert!(ticks_per_second() >= 100.0);
        Ok(())
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(rss(u32::MAX).is_err());
        assert!(cpu_ticks(u32::MAX).is_err());
    }
}
