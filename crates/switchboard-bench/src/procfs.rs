//! What the bench reads about a server process from `/proc`.

/// CPU time (user + system) of a process, in microseconds; `None` once it is gone.
pub fn cpu_micros(pid: u32) -> Option<u64> {
    cpu_split_micros(pid).map(|(user, system)| user + system)
}

/// CPU time of a process in user space and in the kernel, in microseconds; `None` once it is gone.
pub fn cpu_split_micros(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are 11 and 12 after the state (field 3).
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((ticks_to_micros(user), ticks_to_micros(system)))
}

/// The whole machine's CPU time so far, busy and in all, in microseconds (all CPUs, from the
/// first line of `/proc/stat`; idle and I/O wait are not busy).
pub fn machine_micros() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user, nice]
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((ticks_to_micros(all - idle), ticks_to_micros(all)))
}

fn ticks_to_micros(ticks: u64) -> u64 {
    ticks * 1_000_000 / rustix::param::clock_ticks_per_second().max(1)
}

/// Resident memory of a process (VmRSS), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raises this process's soft limit of open files to the hard limit; children inherit it.
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_itself() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_micros(pid).is_some());
        let (busy, all) = machine_micros().unwrap();
        assert!(busy > 0 && all >= busy);
        assert!(raise_nofile() > 0);
    }
}
