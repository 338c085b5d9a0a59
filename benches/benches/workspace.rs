//! The workspace's hot paths: the server taking one keystroke from a member and producing
//! what it stores and what every other member receives, rebuilding a document from its stored
//! history (a reviewer's scrub, a restart), and what a run costs before the candidate's code
//! does anything (a "hello" in each default language through the real sandbox).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_collab::wire::{self, Message};
use sightline_collab::{Document, Limits, Member, Output, PeerId, replay};
use sightline_runner::{
    Bubblewrap, BubblewrapConfig, Job, Language, Limits as RunLimits, Runner, running_as_root,
};
use yrs::{Doc, Text, Transact};

/// A client that has typed `chars` characters, one update per keystroke; returns the frames.
fn keystrokes(chars: usize) -> Vec<Vec<u8>> {
    let doc = Doc::new();
    let text = doc.get_or_insert_text("code");
    (0..chars)
        .map(|i| {
            let mut txn = doc.transact_mut();
            let at = u32::try_from(i).unwrap_or(u32::MAX);
            let ch = if i % 40 == 39 { "\n" } else { "x" };
            text.insert(&mut txn, at, ch);
            wire::encode(&Message::Update(txn.encode_update_v1()))
        })
        .collect()
}

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        color: "#1f77b4".into(),
        can_write: true,
        hidden: false,
    }
}

fn apply_and_broadcast(c: &mut Criterion) {
    // A 5 000-character document with three members; each keystroke is new to the server.
    c.bench_function(
        "collab/keystroke_apply_and_broadcast_5k_doc_3_members",
        |b| {
            b.iter_custom(|iters| {
                let frames = keystrokes(5_000 + iters as usize);
                let mut doc = Document::new(Limits::default());
                for peer in 1..=3 {
                    doc.join(PeerId(peer), member("m"));
                }
                for frame in &frames[..5_000] {
                    doc.receive(PeerId(1), frame).expect("accepted");
                }
                let started = Instant::now();
                for frame in &frames[5_000..] {
                    let out = doc.receive(PeerId(1), frame).expect("accepted");
                    // What the shell does next: one store, one frame for each other member.
                    for output in out {
                        if let Output::Broadcast { frame, .. } = output {
                            std::hint::black_box(frame.len());
                        }
                    }
                }
                started.elapsed()
            })
        },
    );
}

fn rebuild(c: &mut Criterion) {
    let mut doc = Document::new(Limits::default());
    doc.join(PeerId(1), member("m"));
    let mut stored = Vec::new();
    for frame in keystrokes(2_000) {
        for output in doc.receive(PeerId(1), &frame).expect("accepted") {
            if let Output::Persist(delta) = output {
                stored.push(delta);
            }
        }
    }
    c.bench_function("collab/replay_2000_stored_keystrokes", |b| {
        b.iter(|| replay(std::hint::black_box(&stored)).expect("replays"))
    });
}

fn sandbox_start(c: &mut Criterion) {
    let settings = sightline_config::Settings::load(None).expect("default settings");
    let sandbox = Bubblewrap::new(BubblewrapConfig {
        bwrap: settings.execution.bwrap.clone(),
        read_only_paths: settings.execution.read_only_paths.clone(),
    })
    .expect("bubblewrap is installed");
    // Through the queue, as the server runs them: as root, each run's user is cleaned up after
    // it (part of a run's cost).
    let runner = Runner::new(
        std::sync::Arc::new(sandbox),
        1,
        0,
        running_as_root().then_some(64_000),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hello = [
        ("python", "print('hi')"),
        ("javascript", "console.log('hi')"),
        ("typescript", "const s: string = 'hi'; console.log(s);"),
        (
            "java",
            "public class Main { public static void main(String[] a) { System.out.println(\"hi\"); } }",
        ),
        (
            "cpp",
            "#include <cstdio>\nint main() { std::puts(\"hi\"); }",
        ),
        (
            "go",
            "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hi\") }",
        ),
        ("rust", "fn main() { println!(\"hi\"); }"),
    ];
    let mut group = c.benchmark_group("runner/hello");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100));
    for (id, source) in hello {
        let lang = &settings.execution.languages[id];
        let job = Job {
            language: Language {
                id: id.into(),
                name: lang.name.clone(),
                file: lang.file.clone(),
                command: lang.command.clone(),
            },
            source: source.into(),
            stdin: String::new(),
            limits: RunLimits::default(),
        };
        group.bench_function(id, |b| {
            b.iter(|| {
                let ticket = runner.admit(job.clone()).expect("admitted");
                let out = runtime.block_on(ticket.run()).expect("sandbox started");
                assert_eq!(out.stdout, "hi\n", "{id}: {out:?}");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, apply_and_broadcast, rebuild, sandbox_start);
criterion_main!(benches);
