//! Start-up time to the first answered ping, and RSS at rest, of the
//! release binary (`passerelle run`) against the acknowledge-only
//! homeserver stand-in: once with an empty database, once with 10,000
//! portals and 50,000 ghosts in it.
//!
//! Two clocks start when the process is spawned: until the daemon answers
//! `POST /_matrix/app/v1/ping` (polled every 2 ms), and until the ping the
//! daemon asks for at start-up (`POST /_matrix/client/v1/appservice/{id}/ping`,
//! which makes the stand-in call the daemon back, as a homeserver does) has
//! been answered. Then the daemon is left idle and its VmRSS read.
//!
//! Only the runtime is measured: every bridge module is off (the data set
//! holds IRC, Telegram and Slack rows all the same), so nothing connects
//! anywhere. A module that reads its portals at start (the IRC module joins
//! its channels) adds its own time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use passerelle::registration::Registration;
use passerelle::store::{Store, StoreOptions};
use sqlx::Connection;

use crate::env_or;
use crate::procstat;
use crate::standin::StandIn;

struct Sample {
    listening_ms: f64,
    startup_ping_ms: f64,
    rss_kib: u64,
    peak_kib: u64,
}

pub fn run() {
    let portals = env_or("PASSERELLE_BENCH_SEED_PORTALS", 10_000);
    let ghosts = env_or("PASSERELLE_BENCH_SEED_GHOSTS", 50_000);
    let runs = env_or("PASSERELLE_BENCH_RUNS", 3);
    let rest = Duration::from_secs(env_or("PASSERELLE_BENCH_REST_SECS", 15) as u64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (label, seeded) in [("empty database", false), ("seeded database", true)] {
            let db = format!(
                "sqlite://{}",
                dir.path()
                    .join(format!("startup-{}.db", u8::from(seeded)))
                    .display()
            );
            Store::connect(&db, &StoreOptions::default())
                .await
                .expect("creating the database")
                .close()
                .await;
            if seeded {
                let began = Instant::now();
                seed(&db, portals, ghosts).await;
                println!(
                    "seeded {portals} portals and {ghosts} ghosts in {:.1} s",
                    began.elapsed().as_secs_f64()
                );
            }
            let mut samples = Vec::new();
            for _ in 0..runs {
                samples.push(start_once(dir.path(), &db, rest).await);
            }
            report(label, &samples, rest);
        }
    });
}

/// One transaction of plain inserts: the shape the store writes, without
/// 60,000 separate commits.
async fn seed(db: &str, portals: usize, ghosts: usize) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db).await.expect("connecting");
    let mut tx = conn.begin().await.expect("begin");
    let now = passerelle::bridge::now_ms();
    for i in 0..portals {
        let (network, id) = match i % 10 {
            0..=3 => ("irc", format!("libera/#channel{i}")),
            4..=6 => ("telegram", format!("-100{i}")),
            _ => ("slack", format!("T0001/C{i:08}")),
        };
        sqlx::query(
            "INSERT INTO portal (network, portal_id, room_id, kind, name, relay, metadata, created_ts) \
             VALUES ($1, $2, $3, 'group', $4, $5, '{}', $6)",
        )
        .bind(network)
        .bind(id)
        .bind(format!("!seededroom{i}"))
        .bind(format!("Chat number {i}"))
        .bind(true)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("inserting a portal");
    }
    for i in 0..ghosts {
        let (network, remote, mxid) = match i % 10 {
            0..=3 => (
                "irc",
                format!("libera/nick{i}"),
                format!("@_irc_libera_nick{i}:localhost"),
            ),
            4..=6 => (
                "telegram",
                format!("{}", 100_000_000 + i),
                format!("@_telegram_{}:localhost", 100_000_000 + i),
            ),
            _ => (
                "slack",
                format!("T0001/U{i:08}"),
                format!("@_slack_t0001_u{i:08}:localhost"),
            ),
        };
        sqlx::query(
            "INSERT INTO ghost (network, remote_id, mxid, display_name, registered, metadata, updated_ts) \
             VALUES ($1, $2, $3, $4, $5, '{}', $6)",
        )
        .bind(network)
        .bind(remote)
        .bind(mxid)
        .bind(format!("User {i}"))
        .bind(true)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("inserting a ghost");
    }
    tx.commit().await.expect("commit");
}

async fn start_once(dir: &Path, db: &str, rest: Duration) -> Sample {
    let standin = StandIn::start().await;
    let port = crate::support::free_port();
    let as_url = format!("http://127.0.0.1:{port}");
    let config_path = dir.join("startup.yaml");
    let registration_path = dir.join("registration.yaml");
    let config = format!(
        "homeserver: {{url: '{}', domain: localhost}}\n\
         appservice: {{listen: '127.0.0.1:{port}', url: '{as_url}', registration: '{}'}}\n\
         database: {{url: '{db}'}}\n\
         permissions: {{'@alice:localhost': admin}}\n\
         logging: {{level: warn}}\n",
        standin.url,
        registration_path.display()
    );
    std::fs::write(&config_path, config).expect("writing the config");
    let binary = env!("CARGO_BIN_EXE_passerelle");
    let generated = Command::new(binary)
        .args(["generate-registration", "--force", "-c"])
        .arg(&config_path)
        .output()
        .expect("running generate-registration");
    assert!(generated.status.success(), "{generated:?}");
    let registration = Registration::load(&registration_path).expect("registration");
    standin.set_appservice(&as_url, &registration.hs_token);

    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    let began = Instant::now();
    let mut child = Command::new(binary)
        .args(["run", "-c"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("starting passerelle");
    let pid = child.id().to_string();
    let http = reqwest::Client::new();
    let listening = loop {
        let answered = http
            .post(format!("{as_url}/_matrix/app/v1/ping"))
            .bearer_auth(&registration.hs_token)
            .json(&serde_json::json!({"transaction_id": "bench"}))
            .send()
            .await;
        if answered.is_ok_and(|r| r.status().is_success()) {
            break began.elapsed();
        }
        assert!(
            child.try_wait().expect("child status").is_none(),
            "passerelle exited at start (see daemon.log)"
        );
        assert!(began.elapsed() < Duration::from_secs(120), "no answer");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let startup_ping = loop {
        if let Some(at) = standin.first_ping_answered() {
            break at - began;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no start-up ping"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(rest).await;
    let rss_kib = procstat::rss_kib(&pid).unwrap_or_default();
    let peak_kib = procstat::peak_rss_kib(&pid).unwrap_or_default();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
    Sample {
        listening_ms: listening.as_secs_f64() * 1000.0,
        startup_ping_ms: startup_ping.as_secs_f64() * 1000.0,
        rss_kib,
        peak_kib,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn report(label: &str, samples: &[Sample], rest: Duration) {
    let listening: Vec<f64> = samples.iter().map(|s| s.listening_ms).collect();
    let ping: Vec<f64> = samples.iter().map(|s| s.startup_ping_ms).collect();
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64).collect();
    let peak: Vec<f64> = samples.iter().map(|s| s.peak_kib as f64).collect();
    let all = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{label} ({} runs, medians; every run in brackets):",
        samples.len()
    );
    println!(
        "  spawn -> /_matrix/app/v1/ping answered: {:.0} ms [{}]",
        median(&listening),
        all(&listening)
    );
    println!(
        "  spawn -> start-up ping round trip done: {:.0} ms [{}]",
        median(&ping),
        all(&ping)
    );
    println!(
        "  VmRSS after {} s idle: {:.0} KiB [{}]; peak (VmHWM) {:.0} KiB",
        rest.as_secs(),
        median(&rss),
        all(&rss),
        median(&peak)
    );
}
