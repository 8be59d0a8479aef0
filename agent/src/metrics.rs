//! System figures through `sysinfo`: CPU, memory, root disk, load, top
//! processes.
//!
//! CPU percentages are differences between two readings, so the monitor's
//! periodic CPU sample doubles as the value `GET /metrics` reports (a request
//! never waits for a second reading). Processes are only read when
//! `GET /processes` asks, because reading every `/proc/PID` every few seconds
//! would make the agent itself a top process; the first call reads twice,
//! `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` apart.
//!
//! Unix only; `platform::metrics` stands in elsewhere.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use spuff_agent_api::{Metrics, ProcessInfo, ProcessList, Timestamp};
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, ProcessRefreshKind,
    ProcessesToUpdate, RefreshKind, System, UpdateKind,
};

/// How many processes `GET /processes` returns.
const TOP_PROCESSES: usize = 10;

/// Process CPU figures older than this are re-based with a fresh pair of
/// readings, so "top" means "now" rather than "since the last call an hour
/// ago".
const PROCESS_SAMPLE_MAX_AGE: Duration = Duration::from_secs(10);

/// Shared sysinfo state.
#[derive(Debug)]
pub(crate) struct Sampler {
    sys: Mutex<Sys>,
    procs: Mutex<Procs>,
}

#[derive(Debug)]
struct Sys {
    system: System,
    disks: Disks,
    cpu_sampled: bool,
}

#[derive(Debug)]
struct Procs {
    system: System,
    refreshed: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // sysinfo's state is a cache; a panic while refreshing it leaves nothing
    // that a later refresh would not fix.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sampler {
    pub(crate) fn new() -> Self {
        // sysinfo keeps every /proc/PID/stat open between refreshes by
        // default; an agent should not hold hundreds of descriptors.
        sysinfo::set_open_files_limit(0);
        Sampler {
            sys: Mutex::new(Sys {
                system: System::new_with_specifics(RefreshKind::nothing()),
                disks: Disks::new_with_refreshed_list_specifics(
                    DiskRefreshKind::nothing().with_storage(),
                ),
                cpu_sampled: false,
            }),
            procs: Mutex::new(Procs {
                system: System::new(),
                refreshed: None,
            }),
        }
    }

    /// Takes a CPU reading and returns the use since the previous one, in
    /// percent of all cores (0 on the very first reading).
    pub(crate) fn cpu_percent(&self) -> f32 {
        let mut s = lock(&self.sys);
        s.system
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        s.cpu_sampled = true;
        s.system.global_cpu_usage()
    }

    /// A `GET /metrics` snapshot.
    pub(crate) fn metrics(&self) -> Metrics {
        let mut s = lock(&self.sys);
        if !s.cpu_sampled {
            s.system
                .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
            s.cpu_sampled = true;
        }
        s.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        s.disks
            .refresh_specifics(false, DiskRefreshKind::nothing().with_storage());
        let (disk_used, disk_total) = root_disk(&s.disks);
        let load = System::load_average();
        Metrics {
            cpu_usage_percent: round1(f64::from(s.system.global_cpu_usage())),
            memory_used_bytes: s.system.used_memory(),
            memory_total_bytes: s.system.total_memory(),
            disk_used_bytes: disk_used,
            disk_total_bytes: disk_total,
            load_average: [load.one, load.five, load.fifteen],
            timestamp: Timestamp::now(),
        }
    }

    /// Seconds since boot.
    pub(crate) fn uptime(&self) -> u64 {
        System::uptime()
    }

    /// The machine's hostname, or empty.
    pub(crate) fn host_name(&self) -> String {
        System::host_name().unwrap_or_default()
    }

    /// The top processes by CPU use. Blocking (it reads `/proc` and may
    /// sleep for a second reading): call it off the async threads.
    pub(crate) fn top_processes(&self) -> ProcessList {
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_cmd(UpdateKind::OnlyIfNotSet);
        let mut p = lock(&self.procs);
        let fresh = p
            .refreshed
            .is_some_and(|t| t.elapsed() < PROCESS_SAMPLE_MAX_AGE);
        if !fresh {
            p.system
                .refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        }
        p.system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        p.refreshed = Some(Instant::now());

        let mut all: Vec<ProcessInfo> = p
            .system
            .processes()
            .values()
            // Threads show up as processes on Linux; count each process once.
            .filter(|proc_| proc_.thread_kind().is_none())
            .map(|proc_| ProcessInfo {
                pid: proc_.pid().as_u32(),
                name: proc_.name().to_string_lossy().into_owned(),
                cpu_percent: round1(f64::from(proc_.cpu_usage())),
                memory_bytes: proc_.memory(),
                command: proc_
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        all.sort_by(|a, b| {
            b.cpu_percent
                .partial_cmp(&a.cpu_percent)
                .unwrap_or(Ordering::Equal)
                .then(b.memory_bytes.cmp(&a.memory_bytes))
        });
        all.truncate(TOP_PROCESSES);
        ProcessList { processes: all }
    }
}

/// Used and total bytes of the filesystem mounted at `/` (`C:\` elsewhere),
/// or zeros if there is none.
fn root_disk(disks: &Disks) -> (u64, u64) {
    let root = if cfg!(windows) {
        Path::new("C:\\")
    } else {
        Path::new("/")
    };
    disks
        .list()
        .iter()
        .find(|d| d.mount_point() == root)
        .map_or((0, 0), |d| {
            (
                d.total_space().saturating_sub(d.available_space()),
                d.total_space(),
            )
        })
}

/// One decimal is all a percentage needs, and it keeps the JSON short.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
