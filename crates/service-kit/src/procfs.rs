//! What a process has used so far, read from Linux's `/proc`. The benchmarks and the load
//! generator report CPU and memory beside throughput, and read them all through here.

use std::time::Duration;

/// Linux reports `/proc/<pid>/stat` times in `USER_HZ`, which is 100 on every mainstream
/// configuration.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) process `pid` has used, its children excluded; `None` when the
/// process is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after the command name.
    stat_ticks(pid, 11)
}

/// CPU time (user + system) of the children of `pid` that have exited and been waited for.
pub fn children_cpu_time(pid: u32) -> Option<Duration> {
    // cutime and cstime, fields 16 and 17 of stat(5).
    stat_ticks(pid, 13)
}

/// Resident memory of process `pid` in bytes (`VmRSS`); `None` when the process is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next())?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The sum of the two tick counters from field `first` on of `/proc/<pid>/stat`.
fn stat_ticks(pid: u32, first: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = tick_pair(&stat, first)?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The two counters from field `first` on, counted after the command name, which may itself
/// hold spaces and parentheses: hence the split at the last `)`.
fn tick_pair(stat: &str, first: usize) -> Option<u64> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(first);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_spends_cpu() {
        let me = std::process::id();
        assert!(rss_bytes(me).is_some_and(|b| b > 0));
        let before = cpu_time(me).expect("our own stat");
        // Burn CPU until the counter moves (a tick is 10 ms), giving up after 10 s.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_time(me).expect("our own stat") <= before {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "CPU time never moved"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        assert!(children_cpu_time(me).is_some());
    }

    #[test]
    fn reads_the_counters_after_an_awkward_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0";
        assert_eq!(tick_pair(stat, 11), Some(300));
        assert_eq!(tick_pair(stat, 13), Some(10));
        assert_eq!(tick_pair("42 (no counters) S 1", 11), None);
    }

    #[test]
    fn a_process_that_does_not_exist_has_nothing() {
        // PIDs are below 2^22 on Linux.
        let none = u32::MAX;
        assert_eq!(cpu_time(none), None);
        assert_eq!(rss_bytes(none), None);
    }
}
