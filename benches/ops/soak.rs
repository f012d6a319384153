//! Soak: IRC -> Matrix through the release binary and a real Synapse, with
//! one Synapse restart and one ngircd restart on the way.
//!
//! `scripts/soak [portals] [messages/s] [seconds]` (defaults 100, 10, 300).
//! The rate is the total over all portals: message n goes to channel
//! `n % portals`, from one of two IRC senders in turn. Everything listens on
//! 127.0.0.1 and stops by itself.
//!
//! - Synapse is restarted (`scripts/synapse stop` + `start`) a third of the
//!   way in; the senders keep going: the bridge must hold the messages and
//!   deliver them when Synapse is back.
//! - ngircd is restarted (`scripts/ngircd restart`) two thirds of the way in.
//!   Messages sent while the IRC server is down cannot arrive anywhere, so
//!   the senders pause from just before the restart until the bridge bot and
//!   both senders are back in every channel (as seen by an IRC observer),
//!   then go on.
//! - A message counts as expected when the IRC observer, a third client in
//!   every channel, saw it: the IRC server accepted and relayed it. At the
//!   end every portal's timeline is read from Matrix and each numbered
//!   message counted: lost = expected but absent, duplicated = present more
//!   than once, misrouted = in another channel's room.
//! - Queue depth is read every second from the daemon's `/metrics`
//!   (`passerelle_queue_depth`), VmRSS every 5 s from /proc.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passerelle_irc::conn::{ConnectionConfig, Engine, EngineConfig, Event, Handle};
use reqwest::Method;
use tokio::sync::mpsc;

use crate::harness;
use crate::procstat;
use crate::support::ngircd::Ngircd;
use crate::support::synapse::{Synapse, TestClient, enc};

const SENDERS: usize = 2;
const BOT_NICK: &str = "bridgebot";

pub fn run(args: &[String]) {
    let arg = |i: usize, default: f64| {
        args.get(i)
            .map(|a| {
                a.parse::<f64>()
                    .expect("numbers: portals, messages/s, seconds")
            })
            .unwrap_or(default)
    };
    let (portals, rate, secs) = (arg(0, 100.0) as usize, arg(1, 10.0), arg(2, 300.0));
    assert!(
        portals > 0 && rate > 0.0 && secs >= 30.0,
        "{}",
        crate::USAGE
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(soak(portals, rate, Duration::from_secs_f64(secs)));
}

/// The daemon process and the Synapse it may have restarted: stopped when
/// dropped, also on a panic.
struct Processes {
    daemon: Option<Child>,
    synapse_dir: Option<PathBuf>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        // The fixture's watchdog only knows the first Synapse process.
        if let Some(dir) = self.synapse_dir.take() {
            let _ = Command::new(script("synapse"))
                .arg("stop")
                .arg(dir)
                .output();
        }
    }
}

fn script(name: &str) -> PathBuf {
    crate::support::repo_root().join("scripts").join(name)
}

/// What the IRC observer has seen.
#[derive(Default)]
struct Observed {
    /// Message number -> times seen.
    messages: HashMap<u64, u32>,
    /// Channel -> nicks in it, as far as the observer knows.
    members: HashMap<String, HashSet<String>>,
}

async fn soak(portals: usize, rate: f64, duration: Duration) {
    let quiet = Duration::from_secs(
        std::env::var("PASSERELLE_SOAK_QUIET_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let ngircd = Arc::new(Ngircd::start());
    let dir = tempfile::Builder::new()
        .prefix("passerelle-soak-")
        .tempdir()
        .expect("a temporary directory");
    let as_port = crate::support::free_port();
    let metrics_port = crate::support::free_port();
    let config_path = dir.path().join("soak.yaml");
    let registration_path = dir.path().join("registration.yaml");
    let write_config = |hs_url: &str| {
        let text = format!(
            "homeserver: {{url: '{hs_url}', domain: localhost}}\n\
             appservice: {{listen: '127.0.0.1:{as_port}', url: 'http://127.0.0.1:{as_port}', registration: '{}'}}\n\
             database: {{url: 'sqlite://{}'}}\n\
             permissions: {{'@alice:localhost': admin}}\n\
             metrics: {{listen: '127.0.0.1:{metrics_port}'}}\n\
             logging: {{level: info}}\n\
             bridges:\n  irc:\n    enabled: true\n    networks:\n      local: {{host: 127.0.0.1, port: {}, tls: false, bot_nick: {BOT_NICK}}}\n",
            registration_path.display(),
            dir.path().join("soak.db").display(),
            ngircd.port,
        );
        std::fs::write(&config_path, text).expect("writing the config");
    };
    write_config("http://127.0.0.1:1");
    let binary = env!("CARGO_BIN_EXE_passerelle");
    let generated = Command::new(binary)
        .args(["generate-registration", "-c"])
        .arg(&config_path)
        .output()
        .expect("generate-registration");
    assert!(generated.status.success(), "{generated:?}");
    let hs = Synapse::shared(&std::fs::read_to_string(&registration_path).unwrap()).await;
    write_config(&hs.base_url);
    let mut processes = Processes {
        daemon: None,
        synapse_dir: Some(hs.dir.clone()),
    };
    let log_path = dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(binary)
        .args(["run", "-c"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting passerelle");
    let pid = child.id().to_string();
    processes.daemon = Some(child);
    println!(
        "soak: {portals} portals, {rate} messages/s in total, {} s; files in {}",
        duration.as_secs(),
        dir.path().display()
    );

    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let began = Instant::now();
    while !http
        .get(format!("http://127.0.0.1:{metrics_port}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(began.elapsed() < Duration::from_secs(60), "daemon not up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // IRC side: an observer and the senders, in every channel.
    let channels: Vec<String> = (0..portals).map(|c| format!("#soak{c}")).collect();
    let engine = Engine::new(EngineConfig::default());
    let observed = Arc::new(Mutex::new(Observed::default()));
    let observer = connect(&engine, &ngircd, "soakwatch", observed.clone()).await;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(connect(&engine, &ngircd, &format!("soaker{s}"), observed.clone()).await);
    }
    for channel in &channels {
        observer.join(channel).await.expect("join");
        for sender in &senders {
            sender.join(channel).await.expect("join");
        }
    }

    // Matrix side: the portals, made by joining their aliases.
    let alice = hs.register_user("alice").await;
    let setup_began = Instant::now();
    let mut rooms = Vec::new();
    for channel in &channels {
        rooms.push(harness::join_alias(&alice, &format!("#_irc_local_{channel}:localhost")).await);
    }
    let everyone: Vec<String> = std::iter::once(BOT_NICK.to_owned())
        .chain((0..SENDERS).map(|s| format!("soaker{s}")))
        .collect();
    wait_all_present(&observed, &channels, &everyone, Duration::from_secs(120)).await;
    wait_queue_idle(&http, &metrics_url, Duration::from_secs(5)).await;
    println!(
        "  set-up: {portals} portal rooms, bridge bot and {SENDERS} senders in every channel, in {:.0} s",
        setup_began.elapsed().as_secs_f64()
    );

    // Samplers.
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let max_depth = Arc::new(AtomicU64::new(0));
    let depth_task = {
        let (http, url, stop, max) = (
            http.clone(),
            metrics_url.clone(),
            stop_sampling.clone(),
            max_depth.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(depth) = queue_depth(&http, &url).await {
                    max.fetch_max(depth as u64, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let rss_samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let soak_began = Instant::now();
    let rss_task = {
        let (samples, stop, pid) = (rss_samples.clone(), stop_sampling.clone(), pid.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(kib) = procstat::rss_kib(&pid) {
                    samples
                        .lock()
                        .unwrap()
                        .push((soak_began.elapsed().as_secs_f64(), kib));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let rss_start = procstat::rss_kib(&pid).unwrap_or_default();

    // The load, with the two faults.
    let synapse_at = duration / 3;
    let ircd_at = duration * 2 / 3;
    let mut synapse_restart: Option<tokio::task::JoinHandle<Duration>> = None;
    let mut synapse_down = Duration::ZERO;
    let mut ircd_pause = Duration::ZERO;
    let mut ircd_done = false;
    let mut rss_before_faults = 0;
    let (mut sent, mut send_errors) = (0u64, 0u64);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while soak_began.elapsed() < duration {
        ticker.tick().await;
        let now = soak_began.elapsed();
        if synapse_restart.is_none() && now >= synapse_at {
            rss_before_faults = procstat::rss_kib(&pid).unwrap_or_default();
            let (dir, port) = (hs.dir.clone(), hs.port);
            println!("  {:>5.1} s: restarting Synapse", now.as_secs_f64());
            synapse_restart = Some(tokio::task::spawn_blocking(move || {
                restart_synapse(&dir, port)
            }));
        }
        if !ircd_done && now >= ircd_at {
            ircd_done = true;
            println!(
                "  {:>5.1} s: restarting ngircd (senders paused)",
                now.as_secs_f64()
            );
            let paused = Instant::now();
            observed.lock().unwrap().members.clear();
            let ircd = ngircd.clone();
            tokio::task::spawn_blocking(move || ircd.restart())
                .await
                .expect("ngircd restart");
            observed.lock().unwrap().members.clear();
            wait_all_present(&observed, &channels, &everyone, Duration::from_secs(180)).await;
            ircd_pause = paused.elapsed();
            println!(
                "  {:>5.1} s: bridge bot and senders back in every channel after {:.1} s; sending again",
                soak_began.elapsed().as_secs_f64(),
                ircd_pause.as_secs_f64()
            );
            ticker.reset();
            continue;
        }
        let n = sent + send_errors;
        let channel = &channels[n as usize % portals];
        let sender = &senders[(n as usize / portals) % SENDERS];
        match sender.privmsg(channel, &format!("soak {n}")).await {
            Ok(()) => sent += 1,
            Err(_) => send_errors += 1,
        }
    }
    if let Some(task) = synapse_restart {
        synapse_down = task.await.expect("Synapse restart");
    }
    let sending_ended = soak_began.elapsed();
    let rss_end_of_load = procstat::rss_kib(&pid).unwrap_or_default();

    // Drain: the queue empty and every observed message in Matrix, or
    // nothing more arriving for a minute.
    let drain_began = Instant::now();
    let expected: HashSet<u64> = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        observed.lock().unwrap().messages.keys().copied().collect()
    };
    let mut found;
    let mut last_progress = (0usize, Instant::now());
    loop {
        found = count_in_matrix(&alice, &rooms, portals).await;
        let present = expected
            .iter()
            .filter(|n| found.counts.contains_key(n))
            .count();
        if present == expected.len() && queue_depth(&http, &metrics_url).await.unwrap_or(1.0) == 0.0
        {
            break;
        }
        if present != last_progress.0 {
            last_progress = (present, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(60) {
            println!("  nothing new arrived for 60 s: counting what is there");
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let drained_in = drain_began.elapsed();
    let rss_drained = procstat::rss_kib(&pid).unwrap_or_default();
    tokio::time::sleep(quiet).await;
    // Counted again after the quiet period: a late duplicate shows here.
    found = count_in_matrix(&alice, &rooms, portals).await;
    stop_sampling.store(true, Ordering::SeqCst);
    let _ = tokio::join!(depth_task, rss_task);
    let rss_quiet = procstat::rss_kib(&pid).unwrap_or_default();
    let metrics_text = http
        .get(&metrics_url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();

    let lost: Vec<u64> = {
        let mut v: Vec<u64> = expected
            .iter()
            .filter(|n| !found.counts.contains_key(n))
            .copied()
            .collect();
        v.sort_unstable();
        v
    };
    let duplicated: u64 = found
        .counts
        .values()
        .map(|&c| u64::from(c.saturating_sub(1)))
        .sum();
    let unexpected = found
        .counts
        .keys()
        .filter(|n| !expected.contains(n))
        .count();
    let samples = rss_samples.lock().unwrap().clone();
    let rss_max = samples.iter().map(|s| s.1).max().unwrap_or_default();
    let irc_dupes: u32 = observed
        .lock()
        .unwrap()
        .messages
        .values()
        .map(|c| c.saturating_sub(1))
        .sum();

    println!("results:");
    println!(
        "  sent {sent} messages over {:.0} s ({:.2}/s while sending; {send_errors} refused by the IRC client), \
         {} seen by the IRC observer (expected in Matrix){}",
        sending_ended.as_secs_f64(),
        sent as f64 / (sending_ended - ircd_pause).as_secs_f64(),
        expected.len(),
        if irc_dupes > 0 {
            format!(", {irc_dupes} seen twice on IRC")
        } else {
            String::new()
        }
    );
    println!(
        "  faults: Synapse down for a restart of {:.1} s (senders kept sending); ngircd restart paused senders {:.1} s",
        synapse_down.as_secs_f64(),
        ircd_pause.as_secs_f64()
    );
    println!(
        "  in Matrix: {} distinct, lost {}, duplicated {duplicated}, misrouted {}, not expected {unexpected}",
        found.counts.len(),
        lost.len(),
        found.misrouted
    );
    if !lost.is_empty() {
        println!(
            "  lost message numbers (first 20): {:?}",
            &lost[..lost.len().min(20)]
        );
    }
    let mut twice: Vec<u64> = found
        .counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    twice.sort_unstable();
    if !twice.is_empty() {
        println!(
            "  duplicated message numbers (first 20): {:?}",
            &twice[..twice.len().min(20)]
        );
    }
    println!(
        "  queue depth: max {} (sampled every second); all delivered {:.0} s after the last send",
        max_depth.load(Ordering::SeqCst),
        drained_in.as_secs_f64()
    );
    println!(
        "  VmRSS KiB: at start {rss_start}, before the faults {rss_before_faults}, max {rss_max}, \
         end of load {rss_end_of_load}, drained {rss_drained}, after {} s quiet {rss_quiet}",
        quiet.as_secs()
    );
    // Two readings: the level after the run against the level before the
    // faults (what the run left behind), and the drift while idle (whether
    // it keeps growing).
    let step = rss_quiet as f64 / rss_before_faults.max(1) as f64 - 1.0;
    let drift = rss_quiet as f64 / rss_drained.max(1) as f64 - 1.0;
    println!(
        "  memory: {:+.1}% after the run vs before the faults; {:+.1}% over the {} s quiet period ({})",
        step * 100.0,
        drift * 100.0,
        quiet.as_secs(),
        if drift.abs() <= 0.02 {
            "flat afterwards"
        } else {
            "NOT flat afterwards"
        }
    );
    let series: Vec<String> = samples
        .iter()
        .step_by((samples.len() / 12).max(1))
        .map(|(t, kib)| format!("{t:.0}s:{}", kib / 1024))
        .collect();
    println!("  VmRSS MiB over time: {}", series.join(" "));
    for line in metrics_text
        .lines()
        .filter(|l| l.starts_with("passerelle_events_") || l.starts_with("passerelle_queue_depth"))
    {
        println!("  metric {line}");
    }
    let verdict = lost.is_empty() && duplicated == 0 && found.misrouted == 0;
    println!(
        "verdict: {}",
        if verdict {
            "nothing lost, nothing duplicated"
        } else {
            "MESSAGES LOST OR DUPLICATED"
        }
    );
    drop(processes);
    if std::env::var_os("PASSERELLE_SOAK_KEEP").is_some() {
        println!("  kept {}", dir.keep().display());
    }
}

/// One IRC client whose events feed `observed` (messages and membership).
async fn connect(
    engine: &Engine,
    ngircd: &Ngircd,
    nick: &str,
    observed: Arc<Mutex<Observed>>,
) -> Handle {
    let mut config = ConnectionConfig::new("127.0.0.1", ngircd.port, nick);
    // The senders are not what is measured: no flood pacing on their side.
    config.flood.burst = u32::MAX / 2;
    let (handle, mut events) = engine.connect(config).expect("IRC config");
    let (ready_tx, mut ready) = mpsc::channel::<()>(1);
    let watch = nick == "soakwatch";
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Message(msg) = event else {
                if matches!(event, Event::Registered { .. }) {
                    let _ = ready_tx.try_send(());
                }
                continue;
            };
            if !watch {
                continue;
            }
            let mut seen = observed.lock().unwrap();
            match (msg.command.as_str(), msg.numeric()) {
                ("PRIVMSG", _) => {
                    if let Some(n) = msg
                        .param(1)
                        .and_then(|t| t.strip_prefix("soak "))
                        .and_then(|n| n.parse::<u64>().ok())
                    {
                        *seen.messages.entry(n).or_default() += 1;
                    }
                }
                ("JOIN", _) => {
                    if let (Some(channel), Some(nick)) = (msg.param(0), msg.source_nick()) {
                        let nick = nick.to_owned();
                        seen.members
                            .entry(channel.to_lowercase())
                            .or_default()
                            .insert(nick);
                    }
                }
                (_, Some(353)) => {
                    if let (Some(channel), Some(names)) = (msg.param(2), msg.param(3)) {
                        let set = seen.members.entry(channel.to_lowercase()).or_default();
                        for name in names.split(' ') {
                            set.insert(
                                name.trim_start_matches(['@', '+', '%', '&', '~'])
                                    .to_owned(),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready.recv())
        .await
        .expect("IRC registration");
    handle
}

/// Waits until the observer knows each of `nicks` to be in every channel.
async fn wait_all_present(
    observed: &Mutex<Observed>,
    channels: &[String],
    nicks: &[String],
    timeout: Duration,
) {
    let began = Instant::now();
    loop {
        let missing = {
            let seen = observed.lock().unwrap();
            channels
                .iter()
                .filter(|c| {
                    seen.members
                        .get(&c.to_lowercase())
                        .is_none_or(|m| nicks.iter().any(|n| !m.contains(n)))
                })
                .count()
        };
        if missing == 0 {
            return;
        }
        assert!(
            began.elapsed() < timeout,
            "{missing} channels still lack the bridge bot or a sender after {} s",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn queue_depth(http: &reqwest::Client, url: &str) -> Option<f64> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("passerelle_queue_depth "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0),
    )
}

async fn wait_queue_idle(http: &reqwest::Client, url: &str, idle: Duration) {
    let mut since = Instant::now();
    let began = Instant::now();
    while since.elapsed() < idle {
        if queue_depth(http, url).await.unwrap_or(1.0) != 0.0 {
            since = Instant::now();
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "queue never idle"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `scripts/synapse stop` then `start` on the same directory and port;
/// returns how long it took (Synapse is unreachable for about that long).
fn restart_synapse(dir: &Path, port: u16) -> Duration {
    let began = Instant::now();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(script("synapse"))
            .args(args)
            .output()
            .expect("scripts/synapse");
        assert!(out.status.success(), "scripts/synapse {args:?}: {out:?}");
    };
    run(&["stop".as_ref(), dir.as_os_str()]);
    let port = port.to_string();
    let registration = dir.join("registration.yaml");
    run(&[
        "start".as_ref(),
        dir.as_os_str(),
        "localhost".as_ref(),
        port.as_ref(),
        registration.as_os_str(),
    ]);
    began.elapsed()
}

struct Found {
    /// Message number -> times present in Matrix.
    counts: HashMap<u64, u32>,
    /// Present in a room other than its channel's.
    misrouted: usize,
}

/// Reads every portal's whole timeline and counts the numbered messages.
async fn count_in_matrix(client: &TestClient, rooms: &[String], portals: usize) -> Found {
    let mut found = Found {
        counts: HashMap::new(),
        misrouted: 0,
    };
    for (index, room) in rooms.iter().enumerate() {
        let mut from: Option<String> = None;
        loop {
            let mut path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000",
                enc(room)
            );
            if let Some(from) = &from {
                path.push_str(&format!("&from={}", enc(from)));
            }
            let (status, page) = client.request(Method::GET, &path, None).await;
            if !status.is_success() {
                // Synapse may still be busy after its restart: try again.
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            for event in &chunk {
                if event["type"] != "m.room.message" {
                    continue;
                }
                let Some(n) = event["content"]["body"]
                    .as_str()
                    .and_then(|b| b.strip_prefix("soak "))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                *found.counts.entry(n).or_default() += 1;
                if n as usize % portals != index {
                    found.misrouted += 1;
                }
            }
            match page["end"].as_str() {
                Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
                _ => break,
            }
        }
    }
    found
}
