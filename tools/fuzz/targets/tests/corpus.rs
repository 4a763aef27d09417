//! Replays every committed corpus file (`tools/fuzz/corpus/<target>/*`) through its target: the
//! brief run of every fuzz target that CI does on stable, so a regression shows without nightly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::{fs, panic};

// The image target checks its memory budget only under the counting allocator.
#[global_allocator]
static ALLOC: fuzz_targets::alloc::Counting = fuzz_targets::alloc::Counting;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn replay(name: &str) {
    let (_, run) = fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target `{name}` in fuzz_targets::TARGETS"));
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in &files {
        let data = fs::read(file).expect("corpus file");
        if panic::catch_unwind(|| run(&data)).is_err() {
            panic!(
                "{} fails target `{name}`; run it under the fuzzer with \
                 `cargo +nightly fuzz run {name} {}` in tools/fuzz/",
                file.display(),
                file.display()
            );
        }
    }
}

macro_rules! replay_each {
    ($($name:ident),* $(,)?) => {
        const REPLAYED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*
    };
}

replay_each!(
    cursor,
    hub_payload,
    image,
    json_body,
    multipart,
    query,
    stream_event,
    token,
);

fn stems(dir: &str, ext: Option<&str>) -> BTreeSet<String> {
    fs::read_dir(fuzz_dir().join(dir))
        .expect(dir)
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| ext.is_none_or(|e| p.extension().is_some_and(|x| x == e)))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect()
}

/// Every fuzz binary has a function here, a corpus and a replay test, and nothing else does.
#[test]
fn every_target_has_a_binary_a_corpus_and_a_replay() {
    let targets: BTreeSet<String> = fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let replayed: BTreeSet<String> = REPLAYED.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(replayed, targets, "replay_each! and TARGETS disagree");
    assert_eq!(stems("fuzz_targets", Some("rs")), targets);
    assert_eq!(stems("corpus", None), targets);
    let manifest =
        fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("tools/fuzz/Cargo.toml");
    for name in &targets {
        let source = fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("target source");
        assert!(
            source.contains(&format!("fuzz_targets::{name}::run")),
            "fuzz_targets/{name}.rs does not call fuzz_targets::{name}::run"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "tools/fuzz/Cargo.toml has no [[bin]] `{name}`"
        );
    }
}

/// The image target's memory budget is only checked when allocations are really counted.
#[test]
fn the_counting_allocator_counts() {
    let (buffer, peak) = fuzz_targets::alloc::peak_during(|| vec![1u8; 1 << 20]);
    assert_eq!(buffer.len(), 1 << 20);
    assert!(peak.is_some_and(|p| p >= 1 << 20), "{peak:?}");
}
