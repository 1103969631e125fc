//! What benchmarks read about a running process from `/proc`: CPU time,
//! resident, peak resident and proportional memory and what it is made of,
//! open descriptors.

use std::time::Duration;

/// Clock ticks per second (`getconf CLK_TCK`), the unit of CPU times in
/// `/proc/PID/stat`.
pub fn clock_ticks_per_second() -> u64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

/// User plus system CPU time of process `pid`; `ticks` from
/// [`clock_ticks_per_second`].
pub fn cpu_time(pid: u32, ticks: u64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let user: u64 = fields[11].parse().expect("utime");
    let system: u64 = fields[12].parse().expect("stime");
    Duration::from_secs_f64((user + system) as f64 / ticks as f64)
}

/// What the scheduler counted for a process's live threads, from each
/// `/proc/PID/task/TID/schedstat`. Threads that already exited are not
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// Time spent on a CPU: a finer clock than [`cpu_time`]'s ticks, for
    /// runs of a few tens of milliseconds.
    pub on_cpu: Duration,
    /// How many times a thread was put on a CPU (each wake-up at least once).
    pub runs: u64,
}

impl Scheduled {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: Scheduled) -> Scheduled {
        Scheduled {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            runs: self.runs.saturating_sub(earlier.runs),
        }
    }
}

impl std::iter::Sum for Scheduled {
    fn sum<I: Iterator<Item = Scheduled>>(iter: I) -> Scheduled {
        iter.fold(Scheduled::default(), |a, b| Scheduled {
            on_cpu: a.on_cpu + b.on_cpu,
            runs: a.runs + b.runs,
        })
    }
}

/// What the scheduler counted for process `pid` (nothing once it is gone).
pub fn scheduled(pid: u32) -> Scheduled {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Scheduled::default();
    };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("schedstat");
            let stat = std::fs::read_to_string(path).ok()?;
            let mut fields = stat.split_whitespace();
            let on_cpu = fields.next()?.parse::<u64>().ok()?;
            let runs = fields.nth(1)?.parse::<u64>().ok()?;
            Some(Scheduled {
                on_cpu: Duration::from_nanos(on_cpu),
                runs,
            })
        })
        .sum()
}

/// Time process `pid`'s live threads have spent on a CPU ([`Scheduled`]).
pub fn cpu_time_ns(pid: u32) -> Duration {
    scheduled(pid).on_cpu
}

/// A `NAME:   N kB` line's number from a `/proc` status-style file.
fn kib_field(path: &str, name: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident set size (`VmHWM`) of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmHWM:").expect("VmHWM")
}

/// Resident set size (`VmRSS`) of `pid`, in KiB; 0 for a process that is
/// gone.
pub fn rss_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0)
}

/// How many descriptors `pid` has open; 0 for a process that is gone.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count() as u64)
}

/// Proportional set size of `pid` (shared pages divided among their
/// users), in KiB; 0 for a process that is gone.
pub fn pss_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0)
}

/// Resident and proportional memory of `pid` in KiB: `(Rss, Pss)` of
/// `smaps_rollup`; zeros for a process that is gone.
pub fn rss_pss_kib(pid: u32) -> (u64, u64) {
    let path = format!("/proc/{pid}/smaps_rollup");
    (
        kib_field(&path, "Rss:").unwrap_or(0),
        kib_field(&path, "Pss:").unwrap_or(0),
    )
}

/// What makes up the memory of `pid`: `(what, Rss KiB, Pss KiB)` for each
/// kind of mapping in `/proc/PID/smaps` that has resident pages, largest
/// proportional share first. Kinds: `[heap]`, `[stack]`, `[anon]`
/// (anonymous mappings: thread stacks, allocator arenas, large
/// allocations), `program` (the executable's own file), and each shared
/// library by file name.
pub fn smaps_breakdown(pid: u32) -> Vec<(String, u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut kinds: Vec<(String, u64, u64)> = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            let name = words.nth(4).unwrap_or_default();
            current = if name.is_empty() {
                "[anon]".to_owned()
            } else if name == exe {
                "program".to_owned()
            } else {
                name.rsplit('/').next().unwrap_or(name).to_owned()
            };
            continue;
        }
        let field = match first {
            "Rss:" => 1,
            "Pss:" => 2,
            _ => continue,
        };
        let kib: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let entry = match kinds.iter().position(|(name, _, _)| *name == current) {
            Some(at) => &mut kinds[at],
            None => {
                kinds.push((current.clone(), 0, 0));
                kinds.last_mut().expect("just pushed")
            }
        };
        if field == 1 {
            entry.1 += kib;
        } else {
            entry.2 += kib;
        }
    }
    kinds.retain(|(_, rss, _)| *rss > 0);
    kinds.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)));
    kinds
}

/// Threads of `pid` (0 for a process that is gone).
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| tasks.count())
        .unwrap_or(0)
}

/// [`pss_kib`] of `pid` and all its descendants: everything one session
/// holds, whether or not it has started its shell yet.
pub fn tree_pss_kib(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    pss_kib(pid)
        + children
            .split_whitespace()
            .filter_map(|child| child.parse().ok())
            .map(tree_pss_kib)
            .sum::<u64>()
}

/// `ours / stock` as a ratio for a report, `n/a` when stock is zero.
pub fn ratio(ours: f64, stock: f64) -> String {
    if stock == 0.0 {
        "n/a".to_owned()
    } else {
        format!("{:.2}x", ours / stock)
    }
}
