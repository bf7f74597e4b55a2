//! Human-readable output of `holdfast ctl` (the admin API's JSON, laid out as tables);
//! `--json` prints the JSON itself instead.

use std::fmt::Write;

use serde_json::Value;

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Lays `rows` out in left-aligned columns under `header`.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = String>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut header.iter().map(|h| h.to_uppercase()));
    for row in rows {
        line(&mut row.iter().cloned());
    }
    out
}

/// `ctl status`: one line per server.
pub fn backends(v: &Value) -> String {
    let mut rows = Vec::new();
    for b in v.as_array().into_iter().flatten() {
        for s in b["servers"].as_array().into_iter().flatten() {
            let blockers = s["release_blockers"]
                .as_array()
                .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            rows.push(vec![
                format!("{}/{}", str_of(&b["name"]), str_of(&s["name"])),
                str_of(&s["admin_state"]),
                str_of(&s["health"]),
                str_of(&s["bindings"]),
                str_of(&s["open_here"]),
                if blockers.is_empty() {
                    "-".into()
                } else {
                    blockers
                },
            ]);
        }
    }
    columns(
        &[
            "server",
            "state",
            "health",
            "bindings",
            "open here",
            "release waits on",
        ],
        &rows,
    )
}

/// `ctl cluster`: a summary line, then one line per member.
pub fn cluster(v: &Value) -> String {
    let now = v["table_now"].as_u64().unwrap_or(0);
    let mut out = format!(
        "leader {}  term {}  applied {}  snapshot {}  (answered by node {})\n",
        str_of(&v["leader"]),
        str_of(&v["term"]),
        str_of(&v["applied_index"]),
        str_of(&v["snapshot_index"]),
        str_of(&v["id"]),
    );
    let rows: Vec<Vec<String>> = v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let age = match m["watermark"].as_u64() {
                Some(0) | None => "none yet".to_string(),
                Some(w) => format!("{:.1}s", now.saturating_sub(w) as f64 / 1000.0),
            };
            let ready = match m["readiness"]["ready"].as_bool() {
                Some(true) => "ready".to_string(),
                Some(false) => format!(
                    "NOT READY: {}",
                    m["readiness"]["reason"].as_str().unwrap_or("?")
                ),
                None => "no answer".to_string(),
            };
            let lag = match (
                m["replication_lag"].as_u64(),
                m["readiness"]["lag"].as_u64(),
            ) {
                (Some(l), _) | (None, Some(l)) => l.to_string(),
                (None, None) => "-".to_string(),
            };
            vec![
                str_of(&m["id"]),
                str_of(&m["address"]),
                str_of(&m["role"]),
                age,
                lag,
                ready,
            ]
        })
        .collect();
    out.push_str(&columns(
        &[
            "node",
            "address",
            "role",
            "watermark age",
            "lag",
            "readiness",
        ],
        &rows,
    ));
    out
}

/// `ctl table BACKEND`: one line per binding.
pub fn table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let left = b["expires_in_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
            vec![
                str_of(&b["key"]),
                str_of(&b["server"]),
                format!("{left:.1}s"),
            ]
        })
        .collect();
    let mut out = columns(&["key", "server", "expires in"], &rows);
    let _ = writeln!(
        out,
        "{} of {} bindings in {}",
        rows.len(),
        str_of(&v["total"]),
        str_of(&v["backend"])
    );
    out
}

/// Writes that answer `{"ok": true, "admin_state": ...}`.
/// `ctl readyz` on a ready node.
pub fn readiness(v: &Value) -> String {
    format!(
        "ready: applied {}, {} behind the leader's commit\n",
        str_of(&v["applied"]),
        str_of(&v["lag"])
    )
}

/// A write's acknowledgement.
pub fn ack(v: &Value) -> String {
    match v.get("admin_state").and_then(Value::as_str) {
        Some(state) => format!("ok: now {state}\n"),
        None => "ok\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_lays_out_servers() {
        let v = serde_json::json!([{ "name": "app", "servers": [
            { "name": "s1", "admin_state": "drain", "health": "up", "bindings": 3, "open_here": 1, "release_blockers": [2, 3] }
        ]}]);
        let out = backends(&v);
        assert!(out.starts_with("SERVER"), "{out}");
        assert!(
            out.contains("app/s1  drain  up      3         1          2,3"),
            "{out}"
        );
    }
}
