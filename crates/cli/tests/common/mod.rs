//! Running the `easel` binary from integration tests.

pub mod postgres;

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
