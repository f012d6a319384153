//! A real ngIRCd on 127.0.0.1, started by `scripts/ngircd` in a temporary
//! directory and stopped when dropped; or two of them linked into one
//! network, for netsplits.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub struct Ngircd {
    dir: PathBuf,
    pub port: u16,
    pub tls_port: Option<u16>,
}

impl Ngircd {
    pub fn start() -> Self {
        Self::launch(false)
    }

    pub fn start_with_tls() -> Self {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Self {
        let dir = temp_dir();
        let port = free_port();
        let tls_port = tls.then(free_port);
        let mut args = vec![
            "start".to_owned(),
            dir.display().to_string(),
            port.to_string(),
        ];
        if let Some(tls_port) = tls_port {
            args.extend(["--tls-port".to_owned(), tls_port.to_string()]);
        }
        let server = Self {
            dir,
            port,
            tls_port,
        };
        server.script(&args);
        server
    }

    /// Two servers linked into one network: the first, `irc.passerelle.test`,
    /// connects to the second, `irc2.passerelle.test`, and tries again every
    /// 5 s while the link is down. An operator (`OPER oper oper`) on the
    /// first splits them with `SQUIT irc2.passerelle.test`.
    // For the root package's tests (netsplits); the engine's own need one server.
    #[allow(dead_code)]
    pub fn start_linked() -> (Self, Self) {
        let (hub, leaf) = (Self::launch(false), Self::launch(false));
        // scripts/ngircd writes the config of a lone server: the second one
        // gets its own name, both a [Server] block, and they restart so.
        leaf.edit_config(|config| {
            config.replace("Name = irc.passerelle.test", "Name = irc2.passerelle.test")
                + link_block("irc.passerelle.test", None, "leaf-secret", "hub-secret").as_str()
        });
        hub.edit_config(|config| {
            config.replace("[Limits]\n", "[Limits]\n    ConnectRetry = 5\n")
                + link_block(
                    "irc2.passerelle.test",
                    Some(leaf.port),
                    "hub-secret",
                    "leaf-secret",
                )
                .as_str()
        });
        leaf.restart();
        hub.restart();
        (hub, leaf)
    }

    #[allow(dead_code)]
    fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let path = self.dir.join("ngircd.conf");
        let config = std::fs::read_to_string(&path).expect("scripts/ngircd wrote ngircd.conf");
        std::fs::write(&path, edit(config)).expect("ngircd.conf is writable");
    }

    /// Stops and starts it again on the same ports; clients are dropped.
    pub fn restart(&self) {
        self.script(&["restart".to_owned(), self.dir.display().to_string()]);
    }

    /// A trust store holding the self-signed certificate of the TLS port.
    pub fn root_store(&self) -> Arc<RootCertStore> {
        let cert = CertificateDer::from_pem_file(self.dir.join("tls-cert.pem"))
            .expect("scripts/ngircd wrote tls-cert.pem");
        let mut store = RootCertStore::empty();
        store.add(cert).expect("a valid certificate");
        Arc::new(store)
    }

    fn script(&self, args: &[String]) {
        let output = Command::new(script_path())
            .args(args)
            .output()
            .expect("scripts/ngircd runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() == Some(3) {
            panic!(
                "ngircd is not installed: run scripts/install-deps (apt-get install ngircd)\n{stderr}"
            );
        }
        assert!(
            output.status.success(),
            "scripts/ngircd {args:?} failed: {stderr}{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = Command::new(script_path())
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A [Server] block: the peer `name`, connected to at `port` (none: it
/// connects to us).
#[allow(dead_code)]
fn link_block(name: &str, port: Option<u16>, mine: &str, peer: &str) -> String {
    let port = port
        .map(|p| format!("    Port = {p}\n"))
        .unwrap_or_default();
    format!(
        "\n[Server]\n    Name = {name}\n    Host = 127.0.0.1\n{port}    MyPassword = {mine}\n    PeerPassword = {peer}\n"
    )
}

/// `scripts/ngircd` of the repository, found upwards from the crate that
/// includes this file (the IRC crate or the root package).
fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("scripts/ngircd"))
        .find(|path| path.exists())
        .expect("scripts/ngircd in the repository")
}

/// A port free right now (the OS picks it; ngircd binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "passerelle-ngircd-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}
