//! The README runs verbatim: every `sh` block of its walkthroughs (all but the build, Docker and
//! benchmark commands) runs in order in one shell against a real server, with `localhost:8080`
//! pointed at it, and each command's output must match the `# =>` lines the README shows under it
//! (`…` stands for what varies: timestamps, generated ids). A command whose answer is an error the
//! README does not show fails the test too, so a README that drifts from the server fails CI.
//! Blocks that use `$WEIR_ADMIN_TOKEN` run against a second server with that admin token.
mod common;

use std::fmt::Write as _;
use std::process::Command;

use common::Server;

/// One command of a block and the output the README shows for it, if any.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Option<String>,
}

/// The `sh` blocks of the README, each as its steps, with its indentation removed.
fn blocks(readme: &str) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let fence = line.trim_start();
        if fence != "```sh" {
            continue;
        }
        let indent = line.len() - fence.len();
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| l.trim() != "```")
            .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
            .collect();
        out.push(steps(&body));
    }
    out
}

/// A shell context the text read so far is inside of.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Ctx {
    /// `'…'`
    Single,
    /// `"…"`
    Double,
    /// `$(…)`, `(…)` or `$((…))`: plain shell text until its `)`.
    Paren,
}

/// The contexts a line leaves open (a command goes on past a newline inside any of them).
fn scan(line: &str, mut open: Vec<Ctx>) -> Vec<Ctx> {
    let mut chars = line.chars().peekable();
    let mut word_start = true;
    while let Some(c) = chars.next() {
        let top = open.last().copied();
        let plain = matches!(top, None | Some(Ctx::Paren));
        match (top, c) {
            (_, '#') if plain && word_start => break,
            (None | Some(Ctx::Paren) | Some(Ctx::Double), '\\') => {
                chars.next();
            }
            (Some(Ctx::Single), '\'') | (Some(Ctx::Double), '"') => {
                open.pop();
            }
            (Some(Ctx::Double), '$') if chars.peek() == Some(&'(') => {
                chars.next();
                open.push(Ctx::Paren);
            }
            (_, '\'') if plain => open.push(Ctx::Single),
            (_, '"') if plain => open.push(Ctx::Double),
            (_, '(') if plain => open.push(Ctx::Paren),
            (Some(Ctx::Paren), ')') => {
                open.pop();
            }
            _ => {}
        }
        word_start = c.is_whitespace() || matches!(c, ';' | '(' | '|' | '&');
    }
    open
}

/// Splits a block into commands, attaching to each the `# =>` lines after it (continued by
/// comment lines indented further).
fn steps(lines: &[&str]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut current = String::new();
    let mut open = Vec::new();
    let mut expecting = false;
    for line in lines {
        let inside = !current.is_empty();
        if !inside {
            let t = line.trim_start();
            if let Some(shown) = t.strip_prefix("# =>") {
                if let Some(last) = steps.last_mut() {
                    last.expected = Some(shown.trim().to_owned());
                    expecting = true;
                }
                continue;
            }
            if expecting && t.starts_with("#  ") {
                if let Some(e) = steps.last_mut().and_then(|s| s.expected.as_mut()) {
                    e.push_str(t.trim_start_matches('#').trim());
                }
                continue;
            }
            expecting = false;
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        current.push_str(line);
        current.push('\n');
        open = scan(line, open);
        if open.is_empty() && !line.trim_end().ends_with('\\') {
            steps.push(Step {
                command: std::mem::take(&mut current),
                expected: None,
            });
        }
    }
    assert!(current.is_empty(), "unterminated command: {current}");
    steps
}

/// Whether `actual` matches what the README shows: the same text apart from whitespace, with `…`
/// (or `...`) standing for any run of text.
fn matches(shown: &str, actual: &str) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let shown = squeeze(&shown.replace("...", "…"));
    let actual = squeeze(actual);
    let parts: Vec<&str> = shown.split('…').collect();
    let (first, rest) = parts.split_first().expect("split gives one part at least");
    let Some(mut tail) = actual.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        if last {
            return tail.ends_with(part);
        }
        match tail.find(part) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.is_empty()
}

/// What every script starts with: `curl` stops a stream that never ends (`-N`) after a few
/// seconds, as a reader would with Ctrl-C, and gives up on anything else after a minute.
const PRELUDE: &str = r#"set -eu
curl() {
  local a stream=0
  for a in "$@"; do case "$a" in -N|--no-buffer) stream=1 ;; esac; done
  if [ "$stream" = 1 ]; then
    command curl --max-time 8 "$@" || { local rc=$?; [ "$rc" = 28 ] || return "$rc"; }
  else
    command curl --max-time 60 "$@"
  fi
}
"#;

const MARK: &str = "@@weir-readme-step";

/// Runs the steps in one shell against `base` and checks each output.
fn run(steps: &[&Step], server: &Server, env: &[(&str, &str)]) {
    let addr = server.base.trim_start_matches("http://");
    let mut script = PRELUDE.to_owned();
    for (i, step) in steps.iter().enumerate() {
        let command = step.command.replace("localhost:8080", addr);
        write!(script, "printf '\\n{MARK} {i}\\n'\n{command}").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let outputs: Vec<&str> = stdout.split(&format!("\n{MARK} ")).skip(1).collect();
    if outputs.len() < steps.len() || !out.status.success() {
        let last = outputs.len().saturating_sub(1);
        panic!(
            "the README's commands stopped ({}) at:\n{}=> {}\nstderr: {}\nserver: {:?}",
            out.status,
            steps[last].command,
            outputs.get(last).copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr),
            server.logs.lock().unwrap().iter().rev().take(5).collect::<Vec<_>>()
        );
    }
    for (step, output) in steps.iter().zip(&outputs) {
        let output = output.split_once('\n').map_or("", |(_, rest)| rest);
        let shown = step.expected.as_deref().map(|e| e.replace("127.0.0.1:8080", addr));
        let is_error = output.contains("\"urn:weir:problem:") || output.contains("\"error_code\":");
        let shows_error = shown
            .as_deref()
            .is_some_and(|e| e.contains("problem") || e.contains("error_code"));
        assert!(
            !is_error || shows_error,
            "the README's command answered an error:\n{}=> {output}",
            step.command
        );
        if let Some(shown) = shown {
            assert!(
                matches(&shown, output),
                "the README shows\n  {shown}\nfor\n{}but the server answered\n  {output}",
                step.command
            );
        }
    }
}

#[test]
fn the_readme_runs_verbatim() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let all = blocks(&readme);
    let runnable: Vec<&Vec<Step>> = all
        .iter()
        .filter(|b| {
            !b.iter()
                .any(|s| ["cargo ", "docker ", ".ci/setup"].iter().any(|w| s.command.contains(w)))
        })
        .collect();
    assert!(runnable.len() >= 6, "only {} runnable blocks", runnable.len());
    let (admin, open): (Vec<&Vec<Step>>, Vec<&Vec<Step>>) = runnable
        .into_iter()
        .partition(|b| b.iter().any(|s| s.command.contains("$WEIR_ADMIN_TOKEN")));

    // A long poll's `wait_ms` is cut to a second, so the walkthrough does not wait 30 s.
    let server = Server::start_with(&["--max-wait-ms", "1000"]);
    let steps: Vec<&Step> = open.into_iter().flatten().collect();
    assert!(steps.iter().filter(|s| s.expected.is_some()).count() >= 10);
    run(&steps, &server, &[]);

    let token = "readme-admin-token-0123456789";
    let server = Server::start_env(&[], &[("WEIR_ADMIN_TOKEN", token)]);
    let steps: Vec<&Step> = admin.into_iter().flatten().collect();
    assert!(!steps.is_empty());
    run(&steps, &server, &[("WEIR_ADMIN_TOKEN", token)]);
}

#[test]
fn commands_are_split_where_the_shell_would_split_them() {
    let block = [
        "# a comment",
        "curl -s localhost:8080/v1/sql -d '{\"sql\": \"",
        "  SELECT '\\''x'\\'' # not a comment",
        "  \"}'",
        "# => {\"results\": …}",
        "#    more",
        "X=$(echo \"a",
        "b\") \\",
        "  && echo $X",
        "curl -d \"$(jq -n --arg sql \"",
        "  SELECT 'a' -- (",
        "  \" '{sql: $sql}')\"",
        "Y=$(( $(date +%s) * 2 ))  # a comment (",
    ];
    let s = steps(&block);
    assert_eq!(s.len(), 4, "{s:?}");
    assert!(s[2].command.ends_with("'{sql: $sql}')\"\n"), "{s:?}");
    assert_eq!(s[0].expected.as_deref(), Some("{\"results\": …}more"));
    assert!(s[1].command.ends_with("echo $X\n"));
    assert!(matches("{\"a\": 1, \"t\": …}", "{\"a\":1,\"t\":17}\n"));
    assert!(matches("[…] x … y", "[1] x 2 y"));
    assert!(!matches("{\"a\": 1}", "{\"a\":2}"));
    assert!(!matches("{\"a\": …, \"b\": 2}", "{\"a\":1,\"b\":3}"));
}
