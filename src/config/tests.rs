use std::path::Path;

use super::*;

const EXAMPLE: &str = include_str!("../../config.example.yaml");

fn filled_example() -> String {
    EXAMPLE.replace("example.org", "my.server")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("config.yaml"))
}

#[test]
fn example_passes_once_placeholders_are_filled() {
    let config = parse(&filled_example()).unwrap();
    assert_eq!(config.homeserver.domain, "my.server");
    assert_eq!(config.appservice.bot_localpart, "passerelle");
    assert_eq!(
        config.privacy.message_retention,
        Duration::from_secs(30 * 86400)
    );
    assert_eq!(config.database.acquire_timeout, Duration::from_secs(30));
    assert_eq!(
        config.permissions().level("@admin:my.server"),
        PermissionLevel::Admin
    );
    assert_eq!(config.bot_user_id(), "@passerelle:my.server");
    assert!(!config.network_enabled("irc"));
}

#[test]
fn example_as_is_is_rejected_for_its_placeholder() {
    let err = parse(EXAMPLE).unwrap_err().to_string();
    assert!(
        err.contains("`homeserver.domain`") && err.contains("placeholder"),
        "{err}"
    );
}

#[test]
fn placeholder_permissions_are_rejected() {
    let text = filled_example().replace("\"@admin:my.server\"", "\"@admin:example.org\"");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("permissions") && err.contains("placeholder"),
        "{err}"
    );
}

#[test]
fn malformed_yaml_gives_line_and_column() {
    let text = "homeserver:\n  url: http://x\n  domain: [unclosed\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.contains("line") || err.contains(":3:"),
        "no position in: {err}"
    );
}

#[test]
fn unknown_key_is_named() {
    let text = filled_example().replace(
        "  bot_displayname: Passerelle",
        "  bot_displayname: Passerelle\n  bot_nmae: x",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("bot_nmae"), "{err}");
}

#[test]
fn wrong_type_is_named() {
    let text = filled_example().replace("max_connections: 5", "max_connections: many");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("max_connections"), "{err}");
}

#[test]
fn bad_duration_is_explained() {
    let text = filled_example().replace("message_retention: 30d", "message_retention: soon");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("soon") && err.contains("duration"), "{err}");
}

#[test]
fn semantic_checks_name_the_key() {
    let cases = [
        (
            "url: sqlite://passerelle.db",
            "url: mysql://x",
            "`database.url`",
        ),
        (
            "bot_localpart: passerelle",
            "bot_localpart: Bad Bot",
            "`appservice.bot_localpart`",
        ),
        (
            "max_connections: 5",
            "max_connections: 0",
            "`database.max_connections`",
        ),
        (
            "  irc:\n    enabled: false",
            "  irc:\n    enabled: yes please",
            "`bridges.irc.enabled`",
        ),
    ];
    for (from, to, key) in cases {
        let text = filled_example().replace(from, to);
        assert_ne!(text, filled_example(), "replacement {from:?} did not apply");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key), "expected {key} in: {err}");
    }
}

#[test]
fn secrets_come_from_the_environment() {
    // SAFETY: the variable name is unique to this test.
    unsafe { std::env::set_var("PASSERELLE_TEST_DB_URL_1", "postgres://u:p@h/db") };
    let text = filled_example().replace(
        "url: sqlite://passerelle.db",
        "url: env:PASSERELLE_TEST_DB_URL_1",
    );
    assert_eq!(parse(&text).unwrap().database.url, "postgres://u:p@h/db");
    let text = filled_example().replace(
        "url: sqlite://passerelle.db",
        "url: env:PASSERELLE_TEST_UNSET_VAR",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("`database.url`") && err.contains("PASSERELLE_TEST_UNSET_VAR"),
        "{err}"
    );
}

#[test]
fn module_sections_name_the_nested_key() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Net {
        port: u16,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Irc {
        networks: BTreeMap<String, Net>,
    }
    let section = serde_json::json!({"networks": {"libera": {"port": "many"}}});
    let err = parse_section::<Irc>("bridges.irc", &section)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`bridges.irc.networks.libera.port`"), "{err}");
}

/// The filled example with its commented `provisioning` section turned on.
fn example_with_provisioning() -> String {
    let mut text = String::new();
    let mut inside = false;
    for line in filled_example().lines() {
        if line == "# provisioning:" {
            inside = true;
            text.push_str("provisioning:\n");
            continue;
        }
        if inside && let Some(rest) = line.strip_prefix("#   ") {
            text.push_str("  ");
            text.push_str(rest);
            text.push('\n');
            continue;
        }
        inside = false;
        text.push_str(line);
        text.push('\n');
    }
    assert!(
        text.contains("\nprovisioning:\n  listen:"),
        "the example lost its commented provisioning section"
    );
    text
}

const EXAMPLE_SECRET: &str = "replace-me-with-a-long-random-secret";

#[test]
fn provisioning_is_off_unless_configured() {
    assert!(parse(&filled_example()).unwrap().provisioning.is_none());
}

#[test]
fn example_provisioning_section_passes_once_its_secret_is_set() {
    let text = example_with_provisioning();
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("`provisioning.shared_secret`") && err.contains("placeholder"),
        "{err}"
    );
    let secret = "0123456789abcdef0123456789abcdef";
    let config = parse(&text.replace(EXAMPLE_SECRET, secret)).unwrap();
    let provisioning = config.provisioning.as_ref().unwrap();
    assert_eq!(provisioning.listen, "127.0.0.1:29302".parse().unwrap());
    assert_eq!(provisioning.shared_secret, secret);
    assert!(
        !format!("{config:?}").contains(secret),
        "Debug must not print the secret"
    );
}

#[test]
fn provisioning_secret_checks_name_the_key() {
    let with_secret = |secret: &str| example_with_provisioning().replace(EXAMPLE_SECRET, secret);
    let err = parse(&with_secret(&"a".repeat(31)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`provisioning.shared_secret`") && err.contains("32"),
        "{err}"
    );
    assert!(parse(&with_secret(&"a".repeat(32))).is_ok());
    let err = parse(&with_secret(&format!(
        "{} {}",
        "a".repeat(20),
        "b".repeat(20)
    )))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`provisioning.shared_secret`") && err.contains("spaces"),
        "{err}"
    );

    let err = parse(&with_secret("env:PASSERELLE_TEST_UNSET_PROVISIONING"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`provisioning.shared_secret`")
            && err.contains("PASSERELLE_TEST_UNSET_PROVISIONING"),
        "{err}"
    );
    let from_env = "f".repeat(40);
    // SAFETY: the variable name is unique to this test.
    unsafe { std::env::set_var("PASSERELLE_TEST_PROVISIONING_SECRET_1", &from_env) };
    let config = parse(&with_secret("env:PASSERELLE_TEST_PROVISIONING_SECRET_1")).unwrap();
    assert_eq!(config.provisioning.unwrap().shared_secret, from_env);
    // The placeholder is refused wherever it comes from.
    // SAFETY: the variable name is unique to this test.
    unsafe { std::env::set_var("PASSERELLE_TEST_PROVISIONING_SECRET_2", EXAMPLE_SECRET) };
    let err = parse(&with_secret("env:PASSERELLE_TEST_PROVISIONING_SECRET_2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("placeholder"), "{err}");

    let text = with_secret(&"a".repeat(32));
    let err = parse(&text.replace("listen: 127.0.0.1:29302", "listen: 127.0.0.1:29300"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`provisioning.listen`") && err.contains("`appservice.listen`"),
        "{err}"
    );
    let err = parse(&text.replace("listen: 127.0.0.1:29302", "listen: 127.0.0.1:29301"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`metrics.listen`"), "{err}");
    let without_secret: String = text
        .lines()
        .filter(|l| !l.starts_with("  shared_secret:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = parse(&without_secret).unwrap_err().to_string();
    assert!(err.contains("shared_secret"), "{err}");
}

const NETWORK_ENCRYPTION: &str = "encryption: {allow: false, default: false, require: false}";

#[test]
fn encryption_is_off_by_default_and_stripped_from_module_sections() {
    let config = parse(&filled_example()).unwrap();
    assert!(!config.encryption.allow);
    assert_eq!(config.encryption.device_id, "PASSERELLE");
    assert_eq!(config.encryption.share_keys, KeySharing::All);
    assert_eq!(
        config.portal_encryption("irc").unwrap(),
        PortalEncryption::default()
    );
    let section = config.network_section("irc").unwrap();
    assert!(section.get("encryption").is_none(), "{section}");
    assert!(section.get("networks").is_some());
}

#[test]
fn encryption_on_for_a_network() {
    let text = filled_example()
        .replace("  allow: false\n", "  allow: true\n")
        .replace("share_keys: all", "share_keys: cross-signed")
        .replace(
            NETWORK_ENCRYPTION,
            "encryption: {allow: true, default: true}",
        );
    let config = parse(&text).unwrap();
    assert!(config.encryption.allow);
    assert_eq!(config.encryption.share_keys, KeySharing::CrossSigned);
    let policy = config.portal_encryption("irc").unwrap();
    assert!(policy.allow && policy.default && !policy.require);
    assert!(format!("{:?}", config.encryption).contains("<redacted>"));
}

#[test]
fn encryption_problems_name_the_key() {
    let cases = [
        (
            NETWORK_ENCRYPTION,
            "encryption: {allow: true}",
            "`bridges.irc.encryption.allow`",
        ),
        (
            NETWORK_ENCRYPTION,
            "encryption: {default: true}",
            "`bridges.irc.encryption.default`",
        ),
        (
            NETWORK_ENCRYPTION,
            "encryption: {allow: false, require: true}",
            "`bridges.irc.encryption.require`",
        ),
        (
            NETWORK_ENCRYPTION,
            "encryption: {alow: true}",
            "`bridges.irc.encryption",
        ),
        (
            "device_id: PASSERELLE",
            "device_id: 'two words'",
            "`encryption.device_id`",
        ),
        ("share_keys: all", "share_keys: everyone", "everyone"),
    ];
    for (from, to, key) in cases {
        let text = filled_example().replace(from, to);
        assert_ne!(text, filled_example(), "replacement {from:?} did not apply");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key), "expected {key} in: {err}");
    }
}

#[test]
fn the_log_filter_quiets_the_encryption_crates_unless_named() {
    let config = parse(&filled_example().replace("level: info", "level: debug")).unwrap();
    let filter = config.log_filter();
    assert!(filter.starts_with("debug,"), "{filter}");
    assert!(filter.contains("matrix_sdk_crypto=warn"), "{filter}");
    let named = filled_example().replace("level: info", "level: 'info,matrix_sdk_crypto=debug'");
    let filter = parse(&named).unwrap().log_filter();
    assert!(!filter.contains("matrix_sdk_crypto=warn"), "{filter}");
    assert!(filter.contains("vodozemac=warn"), "{filter}");
}
