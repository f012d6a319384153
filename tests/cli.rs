//! The command line as an operator uses it: the real binary, real files.

use std::path::Path;
use std::process::{Command, Output};

const EXAMPLE: &str = include_str!("../config.example.yaml");

fn passerelle(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(args)
        .current_dir(dir)
        .env_remove("PASSERELLE_CONFIG")
        .output()
        .expect("run passerelle")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn filled_example() -> String {
    EXAMPLE.replace("example.org", "my.server")
}

#[test]
fn check_config_accepts_the_filled_example_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");

    std::fs::write(&config, filled_example()).unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(out.status.success(), "{}", text(&out));

    std::fs::write(&config, EXAMPLE).unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("`homeserver.domain`"), "{}", text(&out));

    std::fs::write(
        &config,
        filled_example().replace("listen: 127.0.0.1:29300", "listen: nowhere"),
    )
    .unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("listen"), "{}", text(&out));

    std::fs::write(&config, "homeserver:\n  url: [\n").unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("line") || message.contains(":2:"),
        "{message}"
    );

    std::fs::write(
        &config,
        filled_example().replace("  irc:\n", "  matrix2:\n"),
    )
    .unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("`bridges.matrix2`"), "{}", text(&out));

    // A module's keys are checked too, even while the module is disabled.
    std::fs::write(
        &config,
        filled_example().replace("port: 6697", "port: many"),
    )
    .unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("`bridges.irc.networks.libera.port`"),
        "{}",
        text(&out)
    );
    std::fs::write(
        &config,
        EXAMPLE.replace("domain: example.org", "domain: my.server"),
    )
    .unwrap();
    let out = passerelle(&["check-config", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    let message = text(&out);
    assert!(message.contains("placeholder"), "{message}");

    let out = passerelle(&["check-config", "-c", "missing.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("missing.yaml"), "{}", text(&out));
}

#[test]
fn generate_registration_writes_a_private_file_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), filled_example()).unwrap();

    let out = passerelle(
        &[
            "generate-registration",
            "-c",
            "config.yaml",
            "-o",
            "reg.yaml",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let path = dir.path().join("reg.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "id: passerelle",
        "url: http://127.0.0.1:29300",
        "sender_localpart: passerelle",
        "rate_limited: false",
        "receive_ephemeral: true",
        "exclusive: true",
        "regex: \"@passerelle:my\\\\.server\"",
    ] {
        assert!(yaml.contains(needle), "missing {needle:?} in:\n{yaml}");
    }
    let registration = passerelle::registration::Registration::load(&path).unwrap();
    assert!(registration.as_token.len() >= 32 && registration.hs_token.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the registration holds secrets");
    }

    // A second run would change the tokens under the homeserver's feet.
    let out = passerelle(
        &[
            "generate-registration",
            "-c",
            "config.yaml",
            "-o",
            "reg.yaml",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("--force"), "{}", text(&out));
    let again = passerelle(
        &[
            "generate-registration",
            "-c",
            "config.yaml",
            "-o",
            "reg.yaml",
            "--force",
        ],
        dir.path(),
    );
    assert!(again.status.success(), "{}", text(&again));
    let replaced = passerelle::registration::Registration::load(&path).unwrap();
    assert_ne!(replaced.as_token, registration.as_token);
}

#[test]
fn run_fails_clearly_without_a_registration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), filled_example()).unwrap();
    let out = passerelle(&["run", "-c", "config.yaml"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("registration.yaml"), "{}", text(&out));
}
