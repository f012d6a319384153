//! Memory and CPU figures read from /proc (Linux).

/// Clock ticks per second in /proc's CPU times: USER_HZ, 100 on every Linux
/// ABI whatever the kernel's own HZ.
const USER_HZ: f64 = 100.0;

/// VmRSS of a process in KiB (`pid` "self" for this one).
pub fn rss_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// VmHWM, the peak RSS so far, in KiB.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU seconds from a `stat` file (a process or a thread).
fn cpu_of_stat(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name, in parentheses, may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// CPU seconds of a whole process, exited threads included.
pub fn process_cpu(pid: &str) -> f64 {
    cpu_of_stat(&format!("/proc/{pid}/stat")).unwrap_or_default()
}

/// CPU seconds of the calling thread.
pub fn this_thread_cpu() -> f64 {
    cpu_of_stat("/proc/thread-self/stat").unwrap_or_default()
}
