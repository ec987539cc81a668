//! The generated SDKs against the real server: the Python SDK (openapi-python-client) and the
//! TypeScript types (openapi-typescript, called through openapi-fetch) are generated from the
//! committed `openapi/openapi.json` with no generator warning, and each language's example script
//! (`sdk/python/example.py`, `sdk/typescript/example.ts`) runs every step against a server with
//! authentication on. `.ci/setup` installs the generators; without them (a machine where setup
//! was not run) these tests say so and pass, except under CI, where they fail.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Server;

const ADMIN: &str = "sdk-test-admin-token-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `true` when the tool is there; otherwise says what is missing (and fails under CI).
fn installed(tool: &Path, what: &str) -> bool {
    if tool.exists() {
        return true;
    }
    let message = format!(
        "{what} is not installed ({} is missing): run `bash .ci/setup` to install it",
        tool.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn spec() -> PathBuf {
    root().join("openapi/openapi.json")
}

fn server() -> Server {
    Server::start_env(&[], &[("WEIR_ADMIN_TOKEN", ADMIN)])
}

#[test]
fn python_sdk_generates_without_warnings_and_runs_every_step() {
    let python = root().join("sdk/python/.venv/bin/python");
    if !installed(&python, "openapi-python-client") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let package = out.path().join("weir_client");
    let generated = run(Command::new(&python)
        .arg(root().join("sdk/python/generate.py"))
        .arg(spec())
        .arg(&package));
    let said = String::from_utf8_lossy(&generated.stdout).to_string() + &String::from_utf8_lossy(&generated.stderr);
    assert!(
        !said.to_lowercase().contains("warning"),
        "the generator warned:\n{said}"
    );

    let s = server();
    let ran = run(Command::new(&python)
        .arg(root().join("sdk/python/example.py"))
        .env("PYTHONPATH", out.path())
        .env("WEIR_URL", &s.base)
        .env("WEIR_ADMIN_TOKEN", ADMIN));
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(said.contains("python sdk: all steps passed"), "{said}");
}

#[test]
fn typescript_sdk_generates_without_warnings_and_runs_every_step() {
    let dir = root().join("sdk/typescript");
    if !installed(&dir.join("node_modules/.bin/tsc"), "openapi-typescript and TypeScript") {
        return;
    }
    run(Command::new("node")
        .current_dir(&dir)
        .arg("generate.mjs")
        .arg(spec())
        .arg("generated/weir.ts"));
    // Type-checks the script against the generated types, then compiles it.
    run(Command::new(dir.join("node_modules/.bin/tsc"))
        .current_dir(&dir)
        .args(["-p", "."]));

    let s = server();
    let ran = run(Command::new("node")
        .current_dir(&dir)
        .arg("build/example.js")
        .env("WEIR_URL", &s.base)
        .env("WEIR_ADMIN_TOKEN", ADMIN));
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(said.contains("typescript sdk: all steps passed"), "{said}");
}
