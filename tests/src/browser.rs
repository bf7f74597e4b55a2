//! Headless Chromium for page tests: the page's DOM after its scripts ran, and
//! screenshots saved under `target/ci-artifacts/` (CI keeps them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The installed Chromium, if any. CI installs it (`.ci/run`); there a missing browser
/// is a failure, elsewhere the caller may skip.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .filter_map(|name| {
            Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()
        })
        .find(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// A headless browser with its own profile directory.
pub struct Browser {
    binary: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    /// The installed Chromium; `None` when there is none and this is not CI.
    pub fn new() -> Option<Browser> {
        let Some(binary) = chromium() else {
            assert!(std::env::var("CI").is_err(), "chromium is not installed");
            eprintln!("SKIPPED: chromium not installed (apt-get install chromium)");
            return None;
        };
        Some(Browser {
            binary,
            profile: tempfile::tempdir().expect("profile dir"),
        })
    }

    fn run(&self, url: &str, budget_ms: u32, extra: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .arg(format!("--virtual-time-budget={budget_ms}"))
            .arg("--window-size=1280,1400")
            .args(extra)
            .arg(url)
            .output()
            .expect("run chromium")
    }

    /// The DOM of `url` after `budget_ms` of (virtual) time for its scripts.
    pub fn dom(&self, url: &str, budget_ms: u32) -> String {
        String::from_utf8_lossy(&self.run(url, budget_ms, &["--dump-dom"]).stdout).into_owned()
    }

    /// Saves a screenshot of `url` as `target/ci-artifacts/NAME`; returns its path.
    pub fn screenshot(&self, url: &str, budget_ms: u32, name: &str) -> PathBuf {
        let dir = artifacts();
        std::fs::create_dir_all(&dir).expect("artifact dir");
        let shot = dir.join(name);
        let out = self.run(
            url,
            budget_ms,
            &[&format!("--screenshot={}", shot.display())],
        );
        assert!(
            shot.exists(),
            "no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("screenshot: {}", shot.display());
        shot
    }
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ci-artifacts")
}

/// The value of attribute `attr` on the first element carrying `marker` (e.g.
/// `data-server="app/s1"`) in `dom`.
pub fn attribute(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let mut rest = dom;
    while let Some(at) = rest.find(marker) {
        let start = rest[..at].rfind('<')?;
        let end = at + rest[at..].find('>')?;
        let tag = &rest[start..end];
        let key = format!("{attr}=\"");
        if let Some(i) = tag.find(&key) {
            let v = &tag[i + key.len()..];
            return v.find('"').map(|j| v[..j].to_string());
        }
        rest = &rest[end..];
    }
    None
}
