//! The official `openai` Python SDK as the sync benchmark's baseline: a naive sequential crawl
//! (`benches/sdk_crawl.py`) against the same sandbox. The SDK is installed from PyPI into
//! `target/bench-venv`, pinned like `tests/sdk/run.sh` pins its own venv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Has `client.admin.organization` (resources/admin/...).
pub const OPENAI_SDK_VERSION: &str = "3.51.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_dir() -> PathBuf {
    root().join("target").join("bench-venv")
}

/// Whether `python` imports the pinned SDK.
fn has_pinned_sdk(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!("import openai, sys; sys.exit(openai.__version__ != '{OPENAI_SDK_VERSION}')"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a setup step quietly; `Err` names it with the end of what it printed.
fn step(what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.join(" | ")
    ))
}

/// The python of `target/bench-venv` with `openai==OPENAI_SDK_VERSION` installed: created
/// with `python3 -m venv` (or `$PYTHON`) and pip (quiet, no input) when missing or of another
/// version. `None`, with the reason printed, where python3, venv or pip is unavailable.
pub fn ensure_venv() -> Option<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if has_pinned_sdk(&python) {
        return Some(python);
    }
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let setup = || -> Result<(), String> {
        step(
            &format!("{base} --version"),
            Command::new(&base).arg("--version"),
        )?;
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .map_err(|e| format!("removing {}: {e}", venv.display()))?;
        }
        step(
            &format!("{base} -m venv"),
            Command::new(&base).arg("-m").arg("venv").arg(&venv),
        )?;
        step(
            &format!("pip install openai=={OPENAI_SDK_VERSION}"),
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                &format!("openai=={OPENAI_SDK_VERSION}"),
            ]),
        )
    };
    if let Err(reason) = setup() {
        eprintln!("sdk: no openai=={OPENAI_SDK_VERSION} venv, skipping the SDK crawl: {reason}");
        return None;
    }
    if !has_pinned_sdk(&python) {
        eprintln!(
            "sdk: {} does not import openai=={OPENAI_SDK_VERSION} after installing it",
            python.display()
        );
        return None;
    }
    Some(python)
}

/// What one SDK crawl saw.
#[derive(Debug, Clone)]
pub struct CrawlResult {
    /// The crawl's own wall time (measured in the script: interpreter start-up excluded).
    pub wall: Duration,
    /// Objects listed per kind (`users`, `project_users`, ...).
    pub objects: BTreeMap<String, u64>,
    /// Kinds crawled (those the SDK has).
    pub kinds: usize,
    /// API errors the crawl met once the SDK's retries were spent (the lists go on).
    pub errors: Vec<String>,
}

impl CrawlResult {
    pub fn total_objects(&self) -> u64 {
        self.objects.values().sum()
    }
}

#[derive(serde::Deserialize)]
struct Line {
    wall_s: f64,
    objects: BTreeMap<String, u64>,
    kinds: usize,
    #[serde(default)]
    errors: Vec<String>,
}

/// Runs `benches/sdk_crawl.py` with `python` (see [`ensure_venv`]) against the sandbox at
/// `base_url` (`http://…/v1`), with a clean environment: only PATH, SANDBOX_BASE_URL and
/// SANDBOX_ADMIN_KEY. `None`, with the reason printed, if the script fails or prints no
/// result. The child is killed if the future is dropped (e.g. by a timeout).
pub async fn crawl(python: &Path, base_url: &str, admin_key: &str) -> Option<CrawlResult> {
    let script = root().join("benches").join("sdk_crawl.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SANDBOX_BASE_URL", base_url)
        .env("SANDBOX_ADMIN_KEY", admin_key)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            eprintln!("sdk: could not run {}: {e}", script.display());
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        eprintln!(
            "sdk: the crawl failed ({}):\n{}",
            out.status,
            tail.join("\n")
        );
        return None;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str::<Line>);
    match parsed {
        Some(Ok(line)) => Some(CrawlResult {
            wall: Duration::from_secs_f64(line.wall_s.max(0.0)),
            objects: line.objects,
            kinds: line.kinds,
            errors: line.errors,
        }),
        Some(Err(e)) => {
            eprintln!("sdk: unreadable crawl result ({e}): {stdout}");
            None
        }
        None => {
            eprintln!("sdk: the crawl printed no result; stdout: {stdout} stderr: {stderr}");
            None
        }
    }
}
