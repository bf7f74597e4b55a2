//! Human-readable output of `holdfast ctl`: the admin API's answers ([`crate::api`]) laid
//! out as tables; `--json` prints the JSON itself instead.

use std::fmt::Write;

use crate::api::{
    Ack, Backends, ClusterStatus, Holder, MemberStatus, Readiness, ServerView, TableStatus,
};

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
pub fn backends(backends: &Backends) -> String {
    let rows: Vec<Vec<String>> = backends
        .servers()
        .map(|(backend, s)| {
            vec![
                format!("{backend}/{}", s.name),
                s.admin_state.to_string(),
                s.health.to_string(),
                s.bindings.to_string(),
                s.open_here.to_string(),
                or_dash(join(&s.release_blockers, ",")),
            ]
        })
        .collect();
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
pub fn cluster(c: &ClusterStatus) -> String {
    let mut out = format!(
        "leader {}  term {}  applied {}  snapshot {}  (answered by node {})\n",
        c.leader.map_or("-".into(), |l| l.to_string()),
        c.term,
        c.applied_index,
        c.snapshot_index,
        c.id,
    );
    let rows: Vec<Vec<String>> = c.members.iter().map(|m| member(m, c.table_now)).collect();
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

/// One member's line in [`cluster`], watermark ages taken at the table's clock `now`.
fn member(m: &MemberStatus, now: u64) -> Vec<String> {
    let age = match m.watermark {
        0 => "none yet".to_string(),
        w => format!("{:.1}s", now.saturating_sub(w) as f64 / 1000.0),
    };
    let ready = match &m.readiness {
        Some(r) if r.ready => "ready".to_string(),
        Some(r) => format!("NOT READY: {}", r.reason.as_deref().unwrap_or("?")),
        None => "no answer".to_string(),
    };
    let lag = m
        .replication_lag
        .or(m.readiness.as_ref().map(|r| r.lag))
        .map_or("-".to_string(), |l| l.to_string());
    vec![
        m.id.to_string(),
        m.address.clone(),
        m.role.to_string(),
        age,
        lag,
        ready,
    ]
}

/// `ctl table BACKEND`: one line per binding.
pub fn table(t: &TableStatus) -> String {
    let rows: Vec<Vec<String>> = t
        .bindings
        .iter()
        .map(|b| {
            let left = b.expires_in_ms as f64 / 1000.0;
            vec![b.key.clone(), b.server.clone(), format!("{left:.1}s")]
        })
        .collect();
    let mut out = columns(&["key", "server", "expires in"], &rows);
    let _ = writeln!(
        out,
        "{} of {} bindings in {}",
        rows.len(),
        t.total,
        t.backend
    );
    out
}

/// `ctl readyz` on a ready node.
pub fn readiness(r: &Readiness) -> String {
    format!(
        "ready: applied {}, {} behind the leader's commit\n",
        r.applied, r.lag
    )
}

/// A write's acknowledgement.
pub fn ack(a: &Ack) -> String {
    match a.admin_state {
        Some(state) => format!("ok: now {state}\n"),
        None => "ok\n".into(),
    }
}

/// Where a draining server stands, for `ctl drain --wait`: bindings left, or whose
/// watermarks (or open exchanges) hold its release back, then the projected release
/// (its time of day, UTC) and what holds it. With `now` (ms since epoch) the time left
/// is shown too, for a line updated in place.
pub fn drain_progress(s: &ServerView, now: Option<u64>) -> String {
    let state = s.admin_state;
    let mut line = if s.bindings > 0 {
        format!("{state}, {} bindings left", s.bindings)
    } else if s.release_blockers.is_empty() {
        format!("{state}, 0 bindings left, releasing")
    } else {
        let open = if s.promised_until > 0 {
            ", open streams or requests"
        } else {
            ""
        };
        format!(
            "{state}, 0 bindings left, waiting for the watermarks{open} of nodes {}",
            join(&s.release_blockers, ", ")
        )
    };
    if let Some(holder) = s.release_held_by {
        match s.projected_release {
            Some(at) => {
                line.push_str(&format!("; release projected at {} UTC", clock(at)));
                if let Some(now) = now {
                    line.push_str(&format!(
                        " (in {} s)",
                        at.saturating_sub(now).div_ceil(1000)
                    ));
                }
                line.push_str(&format!(", held by {}", held_by(holder)));
            }
            None => line.push_str(&format!(
                "; no release time yet: held by {}",
                held_by(holder)
            )),
        }
    }
    line
}

/// What holds a release, in words.
pub fn held_by(holder: Holder) -> String {
    match holder {
        Holder::Bindings => "its bindings (a ttl after their last request)".into(),
        Holder::Promise(n) => {
            format!("a promise of node {n} (a client it served without a binding)")
        }
        Holder::OpenStreams(n) => format!("streams or requests open on node {n}"),
        Holder::Member(n) => format!("node {n} (it has not applied the drain, or is silent)"),
        Holder::Drain => "the drain's start plus the clock skew".into(),
        Holder::Deadline => "the drain's deadline".into(),
    }
}

/// `HH:MM:SS` of `ms` since the epoch, UTC.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn join(ids: &[u64], sep: &str) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(sep)
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_lays_out_servers() {
        let v = serde_json::json!([{ "name": "app", "servers": [
            { "name": "s1", "admin_state": "drain", "health": "up", "bindings": 3, "open_here": 1,
              "release_blockers": [2, 3], "promised_until": 0 }
        ]}]);
        let parsed: Result<Backends, _> = serde_json::from_value(v);
        let out = backends(&parsed.expect("the admin API's JSON"));
        assert!(out.starts_with("SERVER"), "{out}");
        assert!(
            out.contains("app/s1  drain  up      3         1          2,3"),
            "{out}"
        );
    }
}
