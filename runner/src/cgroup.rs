//! A cgroup per run slot: a hard cap on all the memory a run's processes use together and on
//! how many tasks they are, which rlimits alone cannot give.
//!
//! `RLIMIT_DATA` bounds each process's private memory, but not shared mappings (an anonymous
//! `MAP_SHARED` region is shmem, charged to nobody's data segment), nor the sum over the run's
//! processes. The slot's cgroup bounds both: memory (swap included, where the kernel accounts
//! it), and processes with their threads. The kernel's OOM killer acts inside the cgroup only,
//! and its `oom_kill` count tells a memory-limit death from any other.
//!
//! Both hierarchies are handled:
//! - v2 (unified, Debian 12's default): one directory under the hierarchy's root, with the
//!   `memory` and `pids` controllers enabled for its children.
//! - v1 (hybrid hosts): one directory per controller, under the server's own cgroup in each.
//!
//! Joining happens before anything of the run starts: the launcher shell writes its own PID
//! into `cgroup.procs` and then `exec`s the sandbox, so every process of the run is born inside.
//! Creating cgroups needs root; without it [`SlotCgroups::detect`] says why and runs keep their
//! rlimits only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The directory the slots' cgroups live in.
const PARENT: &str = "sightline-runs";
/// Where cgroup hierarchies are mounted.
const MOUNT: &str = "/sys/fs/cgroup";

/// Which cgroup hierarchy the host has.
#[derive(Debug, Clone)]
enum Hierarchy {
    /// One directory with both controllers.
    V2 { parent: PathBuf },
    /// A directory in the memory hierarchy and one in the pids hierarchy.
    V1 { memory: PathBuf, pids: PathBuf },
}

/// The host's cgroups, as far as runs use them.
#[derive(Debug, Clone)]
pub struct SlotCgroups {
    hierarchy: Hierarchy,
}

/// One slot's cgroup, for one run.
#[derive(Debug)]
pub struct SlotCgroup {
    /// The directories (one on v2, two on v1); the first holds the memory controller.
    dirs: Vec<PathBuf>,
    v2: bool,
    /// `oom_kill` before the run.
    oom_kills_before: u64,
}

impl SlotCgroups {
    /// Finds a cgroup hierarchy the server may create cgroups in, with the memory and pids
    /// controllers; an error says why there is none.
    pub fn detect() -> Result<SlotCgroups, String> {
        let root = Path::new(MOUNT);
        if root.join("cgroup.controllers").is_file() {
            let parent = root.join(PARENT);
            ensure_dir(&parent)?;
            // Children of the parent get both controllers (the root must offer them).
            let offered = fs::read_to_string(root.join("cgroup.controllers"))
                .map_err(|err| format!("reading the cgroup controllers: {err}"))?;
            for controller in ["memory", "pids"] {
                if !offered.split_whitespace().any(|c| c == controller) {
                    return Err(format!(
                        "the {controller} cgroup controller is not available"
                    ));
                }
            }
            let enabled =
                fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
            if !["memory", "pids"]
                .iter()
                .all(|c| enabled.split_whitespace().any(|e| e == *c))
            {
                write(&root.join("cgroup.subtree_control"), "+memory +pids")?;
            }
            write(&parent.join("cgroup.subtree_control"), "+memory +pids")?;
            return Ok(SlotCgroups {
                hierarchy: Hierarchy::V2 { parent },
            });
        }
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|err| format!("reading /proc/self/cgroup: {err}"))?;
        let place = |controller: &str| -> Result<PathBuf, String> {
            let mount = root.join(controller);
            if !mount.join("cgroup.procs").is_file() {
                return Err(format!(
                    "no cgroup v1 {controller} hierarchy at {}",
                    mount.display()
                ));
            }
            // Nested under the server's own cgroup, so the host's accounting of the server
            // includes its runs.
            // Lines are `id:controllers:path`.
            let path = own
                .lines()
                .filter_map(|line| {
                    let mut fields = line.splitn(3, ':').skip(1);
                    fields.next().zip(fields.next())
                })
                .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
                .map(|(_, path)| path.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            let parent = mount.join(path).join(PARENT);
            ensure_dir(&parent)?;
            Ok(parent)
        };
        Ok(SlotCgroups {
            hierarchy: Hierarchy::V1 {
                memory: place("memory")?,
                pids: place("pids")?,
            },
        })
    }

    /// The slot's cgroup named `name`, capped at `memory_bytes` (swap included) and `tasks`
    /// processes and threads.
    pub fn slot(&self, name: &str, memory_bytes: u64, tasks: u64) -> Result<SlotCgroup, String> {
        let (dirs, v2) = match &self.hierarchy {
            Hierarchy::V2 { parent } => (vec![parent.join(name)], true),
            Hierarchy::V1 { memory, pids } => (vec![memory.join(name), pids.join(name)], false),
        };
        for dir in &dirs {
            ensure_dir(dir)?;
        }
        let memory = &dirs[0];
        let pids = dirs.last().unwrap_or(memory);
        if v2 {
            write(&memory.join("memory.max"), &memory_bytes.to_string())?;
            if memory.join("memory.swap.max").is_file() {
                write(&memory.join("memory.swap.max"), "0")?;
            }
        } else {
            // memsw may not go below the memory limit, so it is set after it (and lowered
            // before it when the limits shrink).
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            let value = memory_bytes.to_string();
            if memsw.is_file() {
                let _ = write(&memsw, &value);
            }
            write(&memory.join("memory.limit_in_bytes"), &value)?;
            if memsw.is_file() {
                write(&memsw, &value)?;
            }
        }
        write(&pids.join("pids.max"), &tasks.to_string())?;
        let mut slot = SlotCgroup {
            dirs,
            v2,
            oom_kills_before: 0,
        };
        slot.oom_kills_before = slot.oom_kills();
        Ok(slot)
    }
}

impl SlotCgroup {
    /// The files a process writes its PID into to join this cgroup.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// How many processes the kernel killed here for want of memory so far.
    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(self.dirs[0].join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    line.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// Whether the kernel killed a process of this run for exceeding the memory cap.
    pub fn memory_killed(&self) -> bool {
        self.oom_kills() > self.oom_kills_before
    }
}

impl Drop for SlotCgroup {
    /// Removes the cgroup once its run is over. A process still dying keeps it (the next run
    /// of the slot reuses it, its limits set afresh).
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn ensure_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(format!("creating the cgroup {}: {err}", dir.display())),
    }
}

fn write(file: &Path, value: &str) -> Result<(), String> {
    fs::write(file, value).map_err(|err| format!("writing {value} to {}: {err}", file.display()))
}
