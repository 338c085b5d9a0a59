//! Real runs under real bubblewrap, including the hostile ones the sandbox exists for.
//!
//! Every language comes from the shipped `[execution]` defaults, so these tests also prove
//! the default table works with the toolchains `scripts/test` installs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sightline_runner::{
    Bubblewrap, BubblewrapConfig, Job, Language, Limits, Outcome, Runner, Sandbox, Verdict,
    running_as_root,
};

fn settings() -> sightline_config::Settings {
    sightline_config::Settings::load(None).expect("the default settings load")
}

fn language(id: &str) -> Language {
    let settings = settings();
    let lang = settings
        .execution
        .languages
        .get(id)
        .unwrap_or_else(|| panic!("{id} is a default language"));
    Language {
        id: id.to_owned(),
        name: lang.name.clone(),
        file: lang.file.clone(),
        command: lang.command.clone(),
    }
}

fn sandbox() -> Bubblewrap {
    let settings = settings();
    Bubblewrap::new(BubblewrapConfig {
        bwrap: settings.execution.bwrap.clone(),
        read_only_paths: settings.execution.read_only_paths.clone(),
    })
    .expect("bubblewrap is installed (scripts/test installs it)")
}

/// The uid a run starts as in these tests: when we are root, a fresh one per run, as the
/// server gives each concurrent run its own (tests run in parallel).
fn uid() -> Option<u32> {
    static NEXT: AtomicU32 = AtomicU32::new(60_100);
    running_as_root().then(|| NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn run_with(id: &str, source: &str, stdin: &str, limits: Limits) -> Outcome {
    let job = Job {
        language: language(id),
        source: source.to_owned(),
        stdin: stdin.to_owned(),
        limits,
    };
    run_as(&job, uid()).await
}

async fn run_as(job: &Job, uid: Option<u32>) -> Outcome {
    sandbox().run(job, uid).await.expect("the sandbox started")
}

async fn run(id: &str, source: &str) -> Outcome {
    run_with(id, source, "", Limits::default()).await
}

/// The sandbox still works for an ordinary run.
async fn still_healthy() {
    let out = run("python", "print(sum(range(10)))").await;
    assert_eq!(
        (out.verdict, out.stdout.as_str()),
        (Verdict::Ok, "45\n"),
        "{out:?}"
    );
}

#[tokio::test]
async fn every_default_language_reads_stdin_and_prints() {
    let programs = [
        ("python", "print('hi', input())"),
        (
            "javascript",
            "const s = require('fs').readFileSync(0, 'utf8').trim(); console.log('hi', s);",
        ),
        (
            "typescript",
            "const s: string = require('fs').readFileSync(0, 'utf8').trim(); console.log('hi', s);",
        ),
        (
            "java",
            "public class Main { public static void main(String[] a) { \
             System.out.println(\"hi \" + new java.util.Scanner(System.in).nextLine()); } }",
        ),
        (
            "cpp",
            "#include <iostream>\n#include <string>\nint main() { std::string s; \
             std::getline(std::cin, s); std::cout << \"hi \" << s << std::endl; }",
        ),
        (
            "go",
            "package main\nimport (\"bufio\"; \"fmt\"; \"os\")\nfunc main() { \
             r := bufio.NewScanner(os.Stdin); r.Scan(); fmt.Println(\"hi\", r.Text()) }",
        ),
        (
            "rust",
            "fn main() { let mut s = String::new(); std::io::stdin().read_line(&mut s).unwrap(); \
             println!(\"hi {}\", s.trim()); }",
        ),
    ];
    for (id, source) in programs {
        let out = run_with(id, source, "there\n", Limits::default()).await;
        assert_eq!(out.verdict, Verdict::Ok, "{id}: {out:?}");
        assert_eq!(out.stdout, "hi there\n", "{id}: {out:?}");
        assert_eq!(out.exit_code, Some(0));
    }
}

#[tokio::test]
async fn failures_are_reported_with_their_exit_code_and_stderr() {
    let out = run(
        "python",
        "import sys\nprint('bad', file=sys.stderr)\nsys.exit(3)",
    )
    .await;
    assert_eq!(out.verdict, Verdict::Failed);
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stderr, "bad\n");
    let out = run("cpp", "int main() { return undefined_name; }").await;
    assert_eq!(out.verdict, Verdict::Failed);
    assert!(out.stderr.contains("undefined_name"), "{out:?}");
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_wall_clock_limit() {
    let limits = Limits {
        wall: Duration::from_secs(2),
        ..Limits::default()
    };
    let out = run_with("python", "while True:\n    pass\n", "", limits).await;
    assert_eq!(out.verdict, Verdict::TimeLimitExceeded, "{out:?}");
    still_healthy().await;
}

#[tokio::test]
async fn cpu_time_is_limited_even_when_the_wall_clock_is_not() {
    let limits = Limits {
        cpu_secs: 1,
        wall: Duration::from_secs(60),
        ..Limits::default()
    };
    let out = run_with(
        "cpp",
        "int main() { volatile unsigned long n = 0; for (;;) n++; }",
        "",
        limits,
    )
    .await;
    assert_eq!(out.verdict, Verdict::TimeLimitExceeded, "{out:?}");
    assert_eq!(out.signal, Some(24), "SIGXCPU: {out:?}");
}

#[tokio::test]
async fn a_fork_bomb_hits_the_process_limit_and_is_cleaned_up() {
    let limits = Limits {
        wall: Duration::from_secs(3),
        ..Limits::default()
    };
    let bomb = "import os, time\nmade = 0\nfor _ in range(10000):\n    try:\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n        made += 1\n    except OSError:\n        break\nprint('made', made)\n";
    let uid = uid();
    let job = Job {
        language: language("python"),
        source: bomb.to_owned(),
        stdin: String::new(),
        limits,
    };
    let out = run_as(&job, uid).await;
    let made: u64 = out
        .stdout
        .trim()
        .strip_prefix("made ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the bomb reported: {out:?}"));
    assert!(made < limits.processes, "{made} processes made");
    // Its sleeping children die with the sandbox's PID namespace. (A dead sandbox process
    // may linger as a zombie until the host's init reaps it; it holds nothing.)
    if let Some(uid) = uid {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let left = std::process::Command::new("ps")
            .args(["-u", &uid.to_string(), "-o", "stat=,args="])
            .output()
            .expect("ps runs");
        let left = String::from_utf8_lossy(&left.stdout).into_owned();
        let alive: Vec<&str> = left
            .lines()
            .filter(|l| !l.trim_start().starts_with('Z'))
            .collect();
        assert!(alive.is_empty(), "processes left: {alive:?}");
    }
    still_healthy().await;
}

#[tokio::test]
async fn a_memory_hog_hits_the_memory_limit() {
    let hog = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n";
    let out = run("python", hog).await;
    assert_eq!(out.verdict, Verdict::MemoryLimitExceeded, "{out:?}");
    assert!(out.stderr.contains("MemoryError"), "{out:?}");
    let cpp = "#include <vector>\n#include <cstring>\nint main() { std::vector<char*> v; for (;;) { char* p = new char[8 << 20]; std::memset(p, 1, 8 << 20); v.push_back(p); } }";
    let out = run("cpp", cpp).await;
    assert_eq!(out.verdict, Verdict::MemoryLimitExceeded, "{out:?}");
    still_healthy().await;
}

/// Memory no rlimit sees: an anonymous shared mapping (shmem, in nobody's data segment), and
/// the sum over many processes each within its own limit. As root, the run's cgroup stops
/// both; without root there is no cgroup and the test says so.
#[tokio::test]
async fn shared_memory_and_many_processes_count_against_one_memory_cap() {
    if let Some(problem) = sandbox().cgroup_problem() {
        assert!(
            !running_as_root(),
            "as root, runs must be in cgroups: {problem}"
        );
        eprintln!("skipped: runs are not in cgroups here ({problem})");
        return;
    }
    let shared = "import mmap\nm = mmap.mmap(-1, 1 << 30)\n\
                  for i in range(0, 1 << 30, 4096):\n    m[i] = 1\nprint('filled')\n";
    let out = run("python", shared).await;
    assert_eq!(out.verdict, Verdict::MemoryLimitExceeded, "{out:?}");
    assert!(!out.stdout.contains("filled"), "{out:?}");
    // Eight processes of 200 MiB each: every one within its data limit, 1.6 GiB together.
    let many = "import os, sys, time\nfor _ in range(8):\n    if os.fork() == 0:\n        \
                b = bytearray(200 << 20)\n        time.sleep(5)\n        os._exit(0)\n\
                held = all(os.wait()[1] == 0 for _ in range(8))\n\
                print('all held' if held else 'some were stopped')\nsys.exit(0 if held else 1)\n";
    let out = run("python", many).await;
    assert!(!out.stdout.contains("all held"), "{out:?}");
    assert_eq!(out.verdict, Verdict::MemoryLimitExceeded, "{out:?}");
    still_healthy().await;
}

#[tokio::test]
async fn a_flood_of_output_is_cut_at_the_output_limit() {
    let flood = "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(line)\n";
    let out = run("python", flood).await;
    assert_eq!(out.verdict, Verdict::OutputLimitExceeded, "{out:?}");
    let limit = Limits::default().output_bytes;
    assert!(out.stdout.len() + out.stderr.len() <= limit);
    assert!(out.stdout.len() > limit / 2);
    still_healthy().await;
}

#[tokio::test]
async fn there_is_no_network_not_even_to_the_hosts_loopback() {
    // PostgreSQL listens on the host's 127.0.0.1:5432 (the test services).
    let probe = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 5432), timeout=2)\n    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n";
    let out = run("python", probe).await;
    assert_eq!(out.verdict, Verdict::Ok, "{out:?}");
    assert!(out.stdout.starts_with("refused"), "{out:?}");
    let resolve = "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('resolved')\nexcept OSError:\n    print('no dns')\n";
    assert_eq!(run("python", resolve).await.stdout, "no dns\n");
}

#[tokio::test]
async fn host_files_are_out_of_sight() {
    // A stand-in for the server's data directory, readable by everyone on the host.
    let data = tempfile::tempdir().expect("temp dir");
    let secret = data.path().join("sightline.db");
    std::fs::write(&secret, "secret").expect("write");
    let probe = format!(
        "import os\nfor p in ['/etc/shadow', '/etc/passwd', '{}', '/root', '/home', '/var/lib/postgresql', '/proc/1/environ']:\n    try:\n        open(p).read() if os.path.isfile(p) or not os.path.isdir(p) else os.listdir(p)\n        print('read', p)\n    except OSError as e:\n        print('denied', p, e.errno)\n",
        secret.display()
    );
    let out = run("python", &probe).await;
    assert_eq!(out.verdict, Verdict::Ok, "{out:?}");
    for line in out.stdout.lines() {
        // /proc/1 is the sandbox's own init, and its environment is empty; everything else
        // must not exist at all.
        if line.contains("/proc/1/environ") {
            continue;
        }
        assert!(line.starts_with("denied"), "{line}: {out:?}");
    }
    assert_eq!(out.stdout.lines().count(), 7);
}

#[tokio::test]
async fn nothing_outside_the_work_directory_can_be_written() {
    let probe = "import os\nfor p in ['/usr/bin/evil', '/etc/evil', '/evil', '/proc/evil', '/work/main.py', '/dev/evil']:\n    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n    except OSError as e:\n        print('denied', p, e.errno)\nopen('/work/ok.txt', 'w').write('fine')\nprint(open('/work/ok.txt').read())\n";
    let out = run("python", probe).await;
    assert_eq!(out.verdict, Verdict::Ok, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{out:?}");
    assert!(
        lines[..6].iter().all(|l| l.starts_with("denied")),
        "{out:?}"
    );
    assert_eq!(lines[6], "fine");
    assert!(!std::path::Path::new("/usr/bin/evil").exists());
    // The work directory is size-limited.
    let fill = "data = b'x' * (1 << 20)\nn = 0\ntry:\n    with open('big', 'wb') as f:\n        for _ in range(1000):\n            f.write(data); f.flush(); n += 1\nexcept OSError as e:\n    print('full after', n, 'MiB')\n";
    let out = run("python", fill).await;
    assert!(out.stdout.starts_with("full after"), "{out:?}");
    // So is shared memory, which is not the work directory's.
    let shm = fill.replace("'big'", "'/dev/shm/big'");
    let out = run("python", &shm).await;
    let mib: u32 = out
        .stdout
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("shared memory fills: {out:?}"));
    assert!(mib <= 8, "{mib} MiB in /dev/shm");
}

#[tokio::test]
async fn a_hostile_run_does_not_slow_a_neighbour_out_of_its_result() {
    let sandbox: Arc<dyn Sandbox> = Arc::new(sandbox());
    let runner = Runner::new(sandbox, 2, 4, running_as_root().then_some(60_200));
    let bomb = Job {
        language: language("python"),
        source: "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n".into(),
        stdin: String::new(),
        limits: Limits {
            wall: Duration::from_secs(3),
            ..Limits::default()
        },
    };
    // The neighbour's own time limit is generous: on a busy machine its Python may start slowly
    // beside the bomb's processes; what must hold is that it gets to run and answers.
    let neighbour = Job {
        source: "print(input()[::-1])".into(),
        stdin: "olleh".into(),
        limits: Limits {
            wall: Duration::from_secs(60),
            ..Limits::default()
        },
        ..bomb.clone()
    };
    let bomb = runner.admit(bomb).expect("admitted");
    let neighbour = runner.admit(neighbour).expect("admitted");
    let (bomb, neighbour) = tokio::join!(bomb.run(), neighbour.run());
    let bomb = bomb.expect("ran");
    assert_eq!(bomb.verdict, Verdict::TimeLimitExceeded, "{bomb:?}");
    let neighbour = neighbour.expect("ran");
    assert_eq!(
        (neighbour.verdict, neighbour.stdout.as_str()),
        (Verdict::Ok, "hello\n"),
        "{neighbour:?}"
    );
}

#[tokio::test]
async fn runs_leave_nothing_behind_to_exhaust_the_next_ones_processes() {
    // More runs in a row on one slot than its process allowance: if any run left a process
    // (even a zombie) behind, a later one could not start.
    let limits = Limits {
        processes: 16,
        ..Limits::default()
    };
    let sandbox: Arc<dyn Sandbox> = Arc::new(sandbox());
    let runner = Runner::new(sandbox, 1, 0, running_as_root().then_some(60_300));
    for round in 0..40 {
        let job = Job {
            language: language("python"),
            source: "print('ok')".into(),
            stdin: String::new(),
            limits,
        };
        let out = runner
            .admit(job)
            .expect("admitted")
            .run()
            .await
            .unwrap_or_else(|err| panic!("run {round} could not start: {err}"));
        assert_eq!(out.stdout, "ok\n", "run {round}: {out:?}");
    }
}
