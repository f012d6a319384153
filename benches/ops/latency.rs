//! Remote -> Matrix latency: an IRC message through ngircd and passerelle
//! into Synapse, against a direct client send to the same Synapse.
//!
//! Both are timed the same way: from just before the send until a third
//! Matrix user, long-polling `/sync`, sees the event. Messages go one at a
//! time, bridged and direct in turn, so both see the same load on the
//! machine. The daemon runs in this process (as the end-to-end tests run it).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::env_or;
use crate::irc_rig::IrcRig;

pub fn run() {
    crate::block_on(measure());
}

async fn measure() {
    let count = env_or("PASSERELLE_BENCH_MESSAGES", 300);
    let warmup = 10;
    let IrcRig {
        hs,
        mut bridge,
        talker,
        alice,
        room: portal,
        alias,
        ngircd: _ngircd,
    } = IrcRig::start("latency", "#latency").await;
    let plain = alice.create_room(json!({"preset": "private_chat"})).await;
    let observer = hs.register_unique_user("observer").await;
    alice.invite(&plain, observer.user_id()).await;
    observer.join(&plain).await;
    crate::harness::join_alias(&observer, &alias).await;

    let mut seen = spawn_syncer(&hs.base_url, observer.access_token(), &[&portal, &plain]).await;
    let mut wait_for = async |body: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, seen.recv()).await {
                Ok(Some((got, at))) if got == body => return at,
                Ok(Some(_)) => {}
                _ => panic!("{body} never reached the observer"),
            }
        }
    };

    let (mut bridged, mut direct) = (Vec::new(), Vec::new());
    for i in 0..warmup + count {
        let body = format!("via irc {i}");
        let began = Instant::now();
        talker.privmsg("#latency", &body).await.expect("send");
        let took = wait_for(&body).await - began;
        if i >= warmup {
            bridged.push(took.as_secs_f64() * 1000.0);
        }
        let body = format!("direct {i}");
        let began = Instant::now();
        alice.send_text(&plain, &body).await;
        let took = wait_for(&body).await - began;
        if i >= warmup {
            direct.push(took.as_secs_f64() * 1000.0);
        }
    }
    bridged.sort_by(f64::total_cmp);
    direct.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "latency: {count} messages each way, one at a time, send -> seen in another user's /sync (Synapse on SQLite)"
    );
    println!("  path                          p50 ms   p90 ms   p99 ms   max ms");
    for (name, v) in [
        ("IRC -> passerelle -> Synapse", &bridged),
        ("client -> Synapse (direct)", &direct),
    ] {
        println!(
            "  {name:<28} {:>7.1}  {:>7.1}  {:>7.1}  {:>7.1}",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    println!(
        "  overhead of the bridge: p50 {:+.1} ms, p99 {:+.1} ms",
        pct(&bridged, 0.5) - pct(&direct, 0.5),
        pct(&bridged, 0.99) - pct(&direct, 0.99)
    );
    talker.disconnect(None);
    bridge.stop().await;
}

/// Long-polls `/sync` for `rooms` and reports each message body with the
/// moment it arrived.
async fn spawn_syncer(
    base_url: &str,
    token: &str,
    rooms: &[&str],
) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let http = reqwest::Client::new();
    let filter = json!({
        "room": {"rooms": rooms, "timeline": {"limit": 50}, "state": {"lazy_load_members": true}},
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]}
    })
    .to_string();
    let url = format!("{base_url}/_matrix/client/v3/sync");
    let sync = {
        let (http, url, token, filter) = (http.clone(), url.clone(), token.to_owned(), filter);
        move |since: Option<String>| {
            let mut query = vec![("filter", filter.clone()), ("timeout", "10000".to_owned())];
            if let Some(since) = since {
                query.push(("since", since));
            }
            let url = url::Url::parse_with_params(&url, &query).expect("sync URL");
            let request = http.get(url).bearer_auth(&token);
            async move {
                let answer = request.send().await.ok()?;
                answer.json::<Value>().await.ok()
            }
        }
    };
    let first = sync(None).await.expect("initial sync");
    let mut since = first["next_batch"].as_str().map(str::to_owned);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Some(answer) = sync(since.clone()).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let at = Instant::now();
            if let Some(joined) = answer["rooms"]["join"].as_object() {
                for room in joined.values() {
                    for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                        if let Some(body) = event["content"]["body"].as_str()
                            && tx.send((body.to_owned(), at)).is_err()
                        {
                            return;
                        }
                    }
                }
            }
            since = answer["next_batch"].as_str().map(str::to_owned).or(since);
        }
    });
    rx
}
