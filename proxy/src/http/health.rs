//! Active health checks, each node its own: per server, every `interval`, a TCP connect
//! or an HTTP request on a fresh connection whose status must fall in `expect`; `rise`
//! successes bring a server up, `fall` failures take it down (an atomic the balancer reads).

use std::sync::Arc;

use http::header::{HOST, HeaderValue, USER_AGENT};
use http::{Method, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::metrics::HttpMetrics;
use super::pool::{Pool, Server};
use crate::config::{CheckSection, CheckType};

/// Starts the checks of every server of `pool` that has a `check` section.
pub fn spawn(pool: &Arc<Pool>, metrics: &Arc<HttpMetrics>) -> Vec<JoinHandle<()>> {
    for s in &pool.servers {
        metrics.set_health(&pool.name, &s.name, s.is_up());
    }
    let Some(check) = pool.config.check.clone() else {
        return Vec::new();
    };
    pool.servers
        .iter()
        .map(|server| {
            let (pool, server, metrics, check) =
                (pool.clone(), server.clone(), metrics.clone(), check.clone());
            tokio::spawn(async move { run(pool, server, metrics, check).await })
        })
        .collect()
}

async fn run(pool: Arc<Pool>, server: Arc<Server>, metrics: Arc<HttpMetrics>, check: CheckSection) {
    let (mut ok_streak, mut fail_streak) = (0u32, 0u32);
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = tokio::time::timeout(check.timeout, probe(&server.addr, &check))
            .await
            .unwrap_or_else(|_| Err("timeout".into()));
        match result {
            Ok(()) => {
                fail_streak = 0;
                ok_streak = ok_streak.saturating_add(1);
                if !server.is_up() && ok_streak >= check.rise {
                    server.set_up(true);
                    metrics.set_health(&pool.name, &server.name, true);
                    tracing::info!(backend = %pool.name, server = %server.name, "server is up");
                }
            }
            Err(why) => {
                ok_streak = 0;
                fail_streak = fail_streak.saturating_add(1);
                if server.is_up() && fail_streak >= check.fall {
                    server.set_up(false);
                    metrics.set_health(&pool.name, &server.name, false);
                    tracing::warn!(backend = %pool.name, server = %server.name, reason = %why, "server is down");
                }
            }
        }
    }
}

/// One check of the server at `addr`.
async fn probe(addr: &str, check: &CheckSection) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    if check.kind == CheckType::Tcp {
        return Ok(());
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let method = Method::from_bytes(check.method.as_bytes()).map_err(|e| e.to_string())?;
    let host = check.host.as_deref().unwrap_or(addr);
    let req = Request::builder()
        .method(method)
        .uri(check.path.as_str())
        .header(
            HOST,
            HeaderValue::from_str(host).map_err(|e| e.to_string())?,
        )
        .header(USER_AGENT, "holdfast-check")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = sender.send_request(req).await;
    driver.abort();
    let status = result.map_err(|e| e.to_string())?.status().as_u16();
    if check.expect.contains(status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
