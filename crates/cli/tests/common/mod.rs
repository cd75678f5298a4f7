//! What the `phalanx` binary's end-to-end tests share: running it on a data directory.
#![allow(dead_code)] // each test file uses a different part

use std::borrow::Borrow;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_phalanx");

/// Runs `phalanx --data DIR ARGS...` with these extra environment variables (and without
/// a `PHALANX_TAXII_TOKEN` inherited from the caller).
pub fn phalanx_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data").arg(data).args(args);
    cmd.env_remove("PHALANX_TAXII_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run phalanx")
}

/// Runs `phalanx --data DIR ARGS...`.
pub fn phalanx(data: &Path, args: &[&str]) -> Output {
    phalanx_env(data, args, &[])
}

/// Runs `phalanx --data DIR ARGS...` with `input` on stdin.
pub fn phalanx_stdin(data: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run phalanx");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for phalanx")
}

/// Status and both outputs, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the run succeeded; returns it (owned or borrowed, as given).
pub fn ok<O: Borrow<Output>>(out: O) -> O {
    assert!(out.borrow().status.success(), "{}", show(out.borrow()));
    out
}
