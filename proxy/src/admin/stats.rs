//! The stats page at `/` of the admin listener, in the spirit of HAProxy's: backends,
//! servers, admin state and health, bindings per server with a live chart while a server
//! drains, members and leader. Read-only and token-free, like `/metrics`; it polls
//! `/stats.json` once a second.

use http::{Response, StatusCode};

use super::Admin;
use super::http::{Body, json, text};
use crate::api::Stats;

/// `GET /stats.json`.
pub async fn stats_json(admin: &Admin) -> Response<Body> {
    json(
        StatusCode::OK,
        &Stats {
            cluster: admin.node.cluster_status().await,
            backends: admin.node.backends_status(|b, s| admin.health(b, s)),
        },
    )
}

/// `GET /`: the page itself (static; the data comes from `/stats.json`).
pub fn page() -> Response<Body> {
    text(StatusCode::OK, "text/html; charset=utf-8", PAGE.to_string())
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>holdfast stats</title>
<style>
 body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
 h1{font-size:1.3em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.2em 0 .3em}
 table{border-collapse:collapse;min-width:40em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
 th{background:#eee} .ready{background:#d8f5d0} .drain{background:#fff1c2} .maint{background:#e3e3e3}
 .down{color:#b00;font-weight:bold} .up{color:#070} #err{color:#b00} small{color:#666}
 svg{vertical-align:middle}
</style></head>
<body>
<h1>holdfast</h1><small id="meta">loading…</small> <span id="err"></span>
<h2>Backends</h2><div id="backends"></div>
<h2>Cluster</h2>
<table id="members"><thead><tr><th>node</th><th>address</th><th>role</th><th>watermark age</th></tr></thead><tbody></tbody></table>
<script>
const history = {};
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function chart(points){
  if(points.length<2) return '';
  const w=160,h=28,max=Math.max(1,...points);
  const xy=points.map((v,i)=>`${(i*w/(points.length-1)).toFixed(1)},${(h-v*h/max).toFixed(1)}`).join(' ');
  return `<svg width="${w}" height="${h}" aria-label="bindings over time"><polyline fill="none" stroke="#c80" stroke-width="2" points="${xy}"/></svg>`;
}
function render(s){
  const c=s.cluster;
  document.getElementById('meta').textContent=
    `node ${c.id} · leader ${c.leader ?? 'none'} · term ${c.term} · applied ${c.applied_index}`;
  let html='';
  for(const b of s.backends){
    html+=`<h3>${esc(b.name)}</h3><table><thead><tr><th>server</th><th>admin state</th><th>health</th><th>bindings</th><th>open here</th><th>release waits on</th><th>drain</th></tr></thead><tbody>`;
    for(const v of b.servers){
      const k=b.name+'/'+v.name; const hist=(history[k]=history[k]||[]);
      hist.push(v.bindings); if(hist.length>120) hist.shift();
      const blockers=v.release_blockers.length?('nodes '+v.release_blockers.join(', ')):'';
      html+=`<tr class="${esc(v.admin_state)}"><td>${esc(v.name)}</td><td>${esc(v.admin_state)}</td>`+
        `<td class="${esc(v.health)}">${esc(v.health)}</td><td>${v.bindings}</td><td>${v.open_here}</td><td>${esc(blockers)}</td>`+
        `<td>${v.admin_state==='drain'?chart(hist):''}</td></tr>`;
    }
    html+='</tbody></table>';
  }
  document.getElementById('backends').innerHTML=html||'<p>no backends</p>';
  const now=c.table_now;
  document.querySelector('#members tbody').innerHTML=c.members.map(m=>
    `<tr><td>${m.id}</td><td>${esc(m.address)}</td><td>${esc(m.role)}</td>`+
    `<td>${m.watermark?((now-m.watermark)/1000).toFixed(1)+' s':'none yet'}</td></tr>`).join('');
}
async function poll(){
  try{
    const r=await fetch('/stats.json',{cache:'no-store'});
    if(!r.ok) throw new Error('HTTP '+r.status);
    render(await r.json()); document.getElementById('err').textContent='';
  }catch(e){document.getElementById('err').textContent='node unreachable: '+e.message;}
}
poll(); setInterval(poll,1000);
</script></body></html>
"##;
