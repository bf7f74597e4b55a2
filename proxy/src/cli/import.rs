//! `holdfast import-haproxy FILE`: the translated config on standard output (or a file),
//! and on standard error every line not translated as written, with its number and why.

use std::path::Path;

use anyhow::Context;

use crate::import::translate;

/// Translates `file`; exits 0 when every line translated as written, 2 when some did
/// not (the config is still written), 1 when the file cannot be read.
pub fn import_haproxy(file: &Path, output: Option<&Path>) -> anyhow::Result<i32> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(1);
        }
    };
    let report = translate(&text);
    let secret = random_secret();
    let toml = report.config.to_toml(&file.display().to_string(), &secret);
    match output {
        Some(path) => {
            std::fs::write(path, &toml).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{toml}"),
    }
    for n in &report.notes {
        let what = if n.dropped {
            "not translated"
        } else {
            "approximated"
        };
        eprintln!(
            "{}:{}: {what}: {}\n    {}",
            file.display(),
            n.line,
            n.why,
            n.text
        );
    }
    Ok(if report.notes.is_empty() { 0 } else { 2 })
}

/// A fresh cluster secret (32 random bytes, hex): every node of the cluster needs the same.
fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
