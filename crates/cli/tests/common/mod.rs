//! Running the `easel` binary from integration tests.

pub mod postgres;

use std::path::Path;
use std::process::{Command, Output};

pub fn easel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_easel"))
}

/// Runs `cmd` and fails the test with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `easel score` of `paintings` (a file or folder) with `model` into `out` (JSON Lines, no
/// critique text): the records.
#[allow(dead_code)] // not every test binary scores
pub fn score_records(model: &Path, paintings: &Path, out: &Path) -> Vec<serde_json::Value> {
    run(easel()
        .args(["score", "--quiet", "--max-new-tokens", "0", "--model"])
        .arg(model)
        .arg("--out")
        .arg(out)
        .arg(paintings));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
