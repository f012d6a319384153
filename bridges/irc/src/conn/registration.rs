//! Registration as a pure state machine: CAP LS 302 / REQ / ACK / NAK / END,
//! SASL PLAIN and EXTERNAL, nick collisions, then CAP NEW / DEL for the life
//! of the connection. It reads parsed lines and answers with [`Step`]s; the
//! actor does the I/O, which keeps every branch testable with scripted lines.

use super::message::{IrcMessage, Outgoing};
use super::{ConnectionConfig, DisconnectReason, Sasl, sasl};

/// What the actor must do after a line.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Write this line now, ahead of the flood queue: registration traffic.
    Send(Outgoing),
    NickUnavailable {
        nick: String,
        code: u16,
        retry_with: Option<String>,
    },
    SaslFailed {
        code: u16,
        reason: String,
    },
    /// 900 RPL_LOGGEDIN: the account we are identified as.
    LoggedIn(String),
    /// 001: registered under this nick.
    Welcome(String),
    /// The enabled capabilities changed after registration.
    CapsChanged,
    GiveUp(DisconnectReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SaslPhase {
    /// Not configured, or not reached yet.
    Idle,
    /// `AUTHENTICATE <mechanism>` sent.
    Started,
    /// Our credentials are sent.
    Responded,
    Succeeded,
    Failed,
    /// The server offers no SASL (or not our mechanism).
    Unavailable,
}

#[derive(Debug)]
pub(crate) struct Registration {
    /// Between `CAP LS` and `CAP END` (or the server's lack of CAP).
    negotiating: bool,
    /// Tokens of a multi-line `CAP LS` still arriving.
    listing: Vec<String>,
    pending_reqs: u32,
    enabled: Vec<String>,
    sasl: SaslPhase,
    sasl_mechanisms: Option<String>,
    welcomed: bool,
    nicks: Nicks,
}

impl Registration {
    /// The state machine, and the lines that open registration.
    pub(crate) fn start(config: &ConnectionConfig, nick: &str) -> (Self, Vec<Outgoing>) {
        let mut lines = Vec::with_capacity(4);
        if let Some(password) = &config.server_password {
            lines.push(Outgoing::new("PASS").param(password.clone()));
        }
        lines.push(Outgoing::new("CAP").param("LS").param("302"));
        lines.push(Outgoing::nick(nick));
        let realname = if config.realname.is_empty() {
            &config.username
        } else {
            &config.realname
        };
        lines.push(
            Outgoing::new("USER")
                .param(config.username.clone())
                .param("0")
                .param("*")
                .param(realname.clone()),
        );
        let registration = Self {
            negotiating: true,
            listing: Vec::new(),
            pending_reqs: 0,
            enabled: Vec::new(),
            sasl: SaslPhase::Idle,
            sasl_mechanisms: None,
            welcomed: false,
            nicks: Nicks::new(nick),
        };
        (registration, lines)
    }

    pub(crate) fn enabled_caps(&self) -> &[String] {
        &self.enabled
    }

    pub(crate) fn has_cap(&self, name: &str) -> bool {
        self.enabled.iter().any(|c| c == name)
    }

    #[cfg(test)]
    fn sasl_succeeded(&self) -> bool {
        self.sasl == SaslPhase::Succeeded
    }

    /// Feeds one line; the steps are appended to `out`.
    pub(crate) fn handle(
        &mut self,
        config: &ConnectionConfig,
        msg: &IrcMessage,
        out: &mut Vec<Step>,
    ) {
        match msg.command.as_str() {
            "CAP" => self.on_cap(config, msg, out),
            "AUTHENTICATE" => self.on_authenticate(config, msg, out),
            "900" => {
                if let Some(account) = msg.param(2) {
                    out.push(Step::LoggedIn(account.to_owned()));
                }
            }
            // 907: already authenticated, which is what we wanted.
            "903" | "907" => {
                if matches!(self.sasl, SaslPhase::Started | SaslPhase::Responded) {
                    self.sasl = SaslPhase::Succeeded;
                    self.end_negotiation(out);
                }
            }
            "902" | "904" | "905" | "906" => {
                if matches!(self.sasl, SaslPhase::Started | SaslPhase::Responded) {
                    self.sasl = SaslPhase::Failed;
                    let mut reason = msg.params.last().cloned().unwrap_or_default();
                    if let Some(mechanisms) = &self.sasl_mechanisms {
                        reason.push_str(&format!(" (server mechanisms: {mechanisms})"));
                    }
                    out.push(Step::SaslFailed {
                        code: msg.numeric().unwrap_or(0),
                        reason,
                    });
                    self.end_negotiation(out);
                }
            }
            // RPL_SASLMECHS comes before the 904 that ends the attempt.
            "908" => self.sasl_mechanisms = msg.param(1).map(str::to_owned),
            "001" => {
                self.welcomed = true;
                // A server that registers us without CAP END has no CAP.
                self.negotiating = false;
                if self.sasl == SaslPhase::Idle && config.sasl.is_some() {
                    self.sasl = SaslPhase::Unavailable;
                }
                let nick = msg.param(0).unwrap_or(&self.nicks.current).to_owned();
                self.nicks.current.clone_from(&nick);
                out.push(Step::Welcome(nick));
            }
            "432" | "433" | "436" | "437" if !self.welcomed => {
                self.on_nick_rejected(config, msg.numeric().unwrap_or(433), out);
            }
            "421" if msg.param(1).is_some_and(|c| c.eq_ignore_ascii_case("CAP")) => {
                self.negotiating = false;
                if config.sasl.is_some() && self.sasl == SaslPhase::Idle {
                    self.sasl = SaslPhase::Unavailable;
                }
            }
            // ERR_INVALIDCAPCMD: give up negotiating rather than hang.
            "410" if self.negotiating => self.end_negotiation(out),
            _ => {}
        }
    }

    fn on_cap(&mut self, config: &ConnectionConfig, msg: &IrcMessage, out: &mut Vec<Step>) {
        let Some(sub) = msg.param(1) else { return };
        let list = msg.params.last().map(String::as_str).unwrap_or("");
        match sub.to_ascii_uppercase().as_str() {
            "LS" => {
                self.listing
                    .extend(list.split(' ').filter(|t| !t.is_empty()).map(str::to_owned));
                // `CAP * LS * :...` announces more lines.
                if msg.params.len() >= 4 && msg.param(2) == Some("*") {
                    return;
                }
                let offered = std::mem::take(&mut self.listing);
                if self.negotiating {
                    let wanted = self.wanted(config, &offered, true);
                    self.request(wanted, out);
                    if self.pending_reqs == 0 {
                        self.after_caps(config, out);
                    }
                }
            }
            "NEW" => {
                let offered: Vec<String> = list.split(' ').map(str::to_owned).collect();
                let wanted = self.wanted(config, &offered, false);
                self.request(wanted, out);
            }
            "DEL" => {
                let before = self.enabled.len();
                let removed: Vec<&str> = list.split(' ').collect();
                self.enabled.retain(|c| !removed.contains(&c.as_str()));
                if self.welcomed && before != self.enabled.len() {
                    out.push(Step::CapsChanged);
                }
            }
            "ACK" => {
                for token in list.split(' ').filter(|t| !t.is_empty()) {
                    if let Some(name) = token.strip_prefix('-') {
                        self.enabled.retain(|c| c != name);
                    } else if !self.has_cap(token) {
                        self.enabled.push(token.to_owned());
                    }
                }
                self.answered(config, out);
            }
            "NAK" => self.answered(config, out),
            _ => {}
        }
    }

    /// The offered capabilities we want and do not have yet.
    fn wanted(
        &self,
        config: &ConnectionConfig,
        offered: &[String],
        with_sasl: bool,
    ) -> Vec<String> {
        let mut wanted = Vec::new();
        for token in offered {
            let (name, value) = token.split_once('=').unwrap_or((token, ""));
            if self.has_cap(name) || wanted.iter().any(|w| w == name) {
                continue;
            }
            let want = if name == "sasl" {
                // A 3.2 server lists its mechanisms; a 3.1 one does not.
                with_sasl
                    && config.sasl.as_ref().is_some_and(|s| {
                        value.is_empty()
                            || value
                                .split(',')
                                .any(|m| m.eq_ignore_ascii_case(s.mechanism()))
                    })
            } else {
                config.want_caps.iter().any(|w| w == name)
            };
            if want {
                wanted.push(name.to_owned());
            }
        }
        wanted
    }

    /// `CAP REQ` lines of at most ~400 bytes; each is ACKed or NAKed whole.
    fn request(&mut self, caps: Vec<String>, out: &mut Vec<Step>) {
        let mut line = String::new();
        for cap in caps {
            if !line.is_empty() && line.len() + cap.len() + 1 > 400 {
                self.send_req(std::mem::take(&mut line), out);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&cap);
        }
        if !line.is_empty() {
            self.send_req(line, out);
        }
    }

    fn send_req(&mut self, caps: String, out: &mut Vec<Step>) {
        self.pending_reqs += 1;
        out.push(Step::Send(Outgoing::new("CAP").param("REQ").param(caps)));
    }

    fn answered(&mut self, config: &ConnectionConfig, out: &mut Vec<Step>) {
        self.pending_reqs = self.pending_reqs.saturating_sub(1);
        if self.pending_reqs > 0 {
            return;
        }
        if self.negotiating {
            self.after_caps(config, out);
        } else if self.welcomed {
            out.push(Step::CapsChanged);
        }
    }

    /// Every REQ answered during registration: SASL if we can, else CAP END.
    fn after_caps(&mut self, config: &ConnectionConfig, out: &mut Vec<Step>) {
        match &config.sasl {
            Some(sasl) if self.sasl == SaslPhase::Idle && self.has_cap("sasl") => {
                self.sasl = SaslPhase::Started;
                out.push(Step::Send(
                    Outgoing::new("AUTHENTICATE").param(sasl.mechanism()),
                ));
            }
            Some(_) if self.sasl == SaslPhase::Idle => {
                self.sasl = SaslPhase::Unavailable;
                self.end_negotiation(out);
            }
            _ => self.end_negotiation(out),
        }
    }

    fn on_authenticate(
        &mut self,
        config: &ConnectionConfig,
        msg: &IrcMessage,
        out: &mut Vec<Step>,
    ) {
        let (Some(sasl), SaslPhase::Started) = (&config.sasl, self.sasl) else {
            return;
        };
        if msg.param(0) == Some("+") {
            self.sasl = SaslPhase::Responded;
            for chunk in sasl::response_lines(sasl) {
                out.push(Step::Send(Outgoing::new("AUTHENTICATE").param(chunk)));
            }
        } else {
            // PLAIN and EXTERNAL expect an empty challenge: abort (906).
            self.sasl = SaslPhase::Responded;
            out.push(Step::Send(Outgoing::new("AUTHENTICATE").param("*")));
        }
    }

    fn end_negotiation(&mut self, out: &mut Vec<Step>) {
        if self.negotiating {
            self.negotiating = false;
            out.push(Step::Send(Outgoing::new("CAP").param("END")));
        }
    }

    fn on_nick_rejected(&mut self, config: &ConnectionConfig, code: u16, out: &mut Vec<Step>) {
        let rejected = self.nicks.current.clone();
        self.nicks.tries += 1;
        let retry_with = (self.nicks.tries < config.nick_attempts).then(|| self.nicks.next(code));
        out.push(Step::NickUnavailable {
            nick: rejected,
            code,
            retry_with: retry_with.clone(),
        });
        match retry_with {
            Some(nick) => out.push(Step::Send(Outgoing::nick(nick))),
            None => out.push(Step::GiveUp(DisconnectReason::NickUnavailable)),
        }
    }

    /// `PRIVMSG NickServ :IDENTIFY ...` when SASL did not log us in and we
    /// have something to identify with: the NickServ password, or SASL PLAIN
    /// credentials the server could not use.
    pub(crate) fn nickserv_identify(
        &self,
        config: &ConnectionConfig,
        current_nick: &str,
    ) -> Option<Outgoing> {
        if self.sasl == SaslPhase::Succeeded {
            return None;
        }
        let (account, password) = match (&config.nickserv_password, &config.sasl) {
            (Some(password), _) => (config.nick.as_str(), password.as_str()),
            (None, Some(Sasl::Plain { username, password }))
                if self.sasl == SaslPhase::Unavailable =>
            {
                (username.as_str(), password.as_str())
            }
            _ => return None,
        };
        // `IDENTIFY <password>` works with every services package when we
        // hold the account's nick; on another nick, name the account
        // (Atheme and Anope syntax).
        let text = if account.eq_ignore_ascii_case(current_nick) {
            format!("IDENTIFY {password}")
        } else {
            format!("IDENTIFY {account} {password}")
        };
        Some(Outgoing::privmsg("NickServ", text))
    }
}

/// The nicks tried at registration: the wanted one, then `nick_`, `nick1`,
/// `nick2`..., sanitised and shortened when the server calls them erroneous.
#[derive(Debug)]
struct Nicks {
    base: String,
    current: String,
    alternative: u32,
    tries: u32,
    max_len: Option<usize>,
}

impl Nicks {
    fn new(nick: &str) -> Self {
        Self {
            base: nick.to_owned(),
            current: nick.to_owned(),
            alternative: 0,
            tries: 0,
            max_len: None,
        }
    }

    fn next(&mut self, code: u16) -> String {
        if code == 432 {
            let clean = sanitize_nick(&self.base);
            if clean != self.base {
                self.base = clean;
            } else {
                // Valid characters, so most likely too long for the server.
                let len = self.current.chars().count();
                self.max_len = Some(len.saturating_sub(1).max(1));
            }
        } else {
            self.alternative += 1;
        }
        self.current = self.candidate();
        self.current.clone()
    }

    fn candidate(&self) -> String {
        let suffix = match self.alternative {
            0 => String::new(),
            1 => "_".to_owned(),
            n => (n - 1).to_string(),
        };
        let room = self
            .max_len
            .map_or(usize::MAX, |max| max.saturating_sub(suffix.len()).max(1));
        let mut nick: String = self.base.chars().take(room).collect();
        nick.push_str(&suffix);
        nick
    }
}

/// Keeps the characters RFC 2812 allows in a nick: letters, digits and
/// ``[]\`_^{|}-``, not starting with a digit or '-'.
pub(crate) fn sanitize_nick(nick: &str) -> String {
    let mut clean: String = nick
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(*c))
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        clean.insert(0, '_');
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConnectionConfig {
        ConnectionConfig::new("irc.test", 6667, "alice")
    }

    fn sasl_config() -> ConnectionConfig {
        let mut config = config();
        config.sasl = Some(Sasl::Plain {
            username: "alice".into(),
            password: "sesame".into(),
        });
        config
    }

    fn wire(out: &Outgoing) -> String {
        String::from_utf8(out.to_wire())
            .unwrap()
            .trim_end()
            .to_owned()
    }

    /// Feeds server lines and returns what came out, lines rendered as text.
    fn feed(reg: &mut Registration, config: &ConnectionConfig, lines: &[&str]) -> Vec<String> {
        let mut steps = Vec::new();
        for line in lines {
            reg.handle(config, &IrcMessage::parse(line).unwrap(), &mut steps);
        }
        steps
            .into_iter()
            .map(|step| match step {
                Step::Send(out) => wire(&out),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn opening_lines() {
        let mut config = config();
        config.server_password = Some("pw".into());
        config.realname = "Alice Liddell".into();
        let (_, lines) = Registration::start(&config, "alice");
        let lines: Vec<String> = lines.iter().map(wire).collect();
        assert_eq!(
            lines,
            [
                "PASS pw",
                "CAP LS 302",
                "NICK alice",
                "USER alice 0 * :Alice Liddell"
            ]
        );
    }

    #[test]
    fn requests_only_wanted_offered_caps() {
        let config = config();
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[
                ":srv CAP * LS * :multi-prefix sasl=PLAIN draft/chathistory account-tag",
                ":srv CAP * LS :server-time message-tags=x echo-message",
            ],
        );
        // No sasl: no credentials. No draft/...: not wanted.
        assert_eq!(
            out,
            ["CAP REQ :multi-prefix server-time message-tags echo-message"]
        );
        let out = feed(
            &mut reg,
            &config,
            &[":srv CAP alice ACK :multi-prefix server-time message-tags echo-message"],
        );
        assert_eq!(out, ["CAP END"]);
        assert_eq!(
            reg.enabled_caps(),
            [
                "multi-prefix",
                "server-time",
                "message-tags",
                "echo-message"
            ]
        );
    }

    #[test]
    fn nak_still_ends_negotiation() {
        let config = config();
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[":srv CAP * LS :batch", ":srv CAP * NAK :batch"],
        );
        assert_eq!(out, ["CAP REQ batch", "CAP END"]);
        assert!(reg.enabled_caps().is_empty());
    }

    #[test]
    fn nothing_to_request_ends_at_once() {
        let config = config();
        let (mut reg, _) = Registration::start(&config, "alice");
        assert_eq!(
            feed(&mut reg, &config, &[":srv CAP * LS :foo bar"]),
            ["CAP END"]
        );
    }

    #[test]
    fn server_without_cap_registers_anyway() {
        let mut config = sasl_config();
        config.nickserv_password = None;
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[":srv 421 * CAP :Unknown command", ":srv 001 alice :Welcome"],
        );
        assert_eq!(out, ["Welcome(\"alice\")"]);
        // SASL was impossible: the PLAIN credentials go to NickServ.
        let identify = reg.nickserv_identify(&config, "alice").unwrap();
        assert_eq!(wire(&identify), "PRIVMSG NickServ :IDENTIFY sesame");
    }

    #[test]
    fn sasl_plain_success() {
        let config = sasl_config();
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[
                ":srv CAP * LS :sasl=PLAIN,EXTERNAL server-time",
                ":srv CAP * ACK :server-time sasl",
                "AUTHENTICATE +",
                ":srv 900 alice alice!a@h alice :You are now logged in as alice",
                ":srv 903 alice :SASL authentication successful",
            ],
        );
        assert_eq!(
            out,
            [
                "CAP REQ :sasl server-time",
                "AUTHENTICATE PLAIN",
                "AUTHENTICATE YWxpY2UAYWxpY2UAc2VzYW1l",
                "LoggedIn(\"alice\")",
                "CAP END",
            ]
        );
        assert!(reg.sasl_succeeded());
        assert_eq!(reg.nickserv_identify(&config, "alice"), None);
    }

    #[test]
    fn sasl_external() {
        let mut config = config();
        config.sasl = Some(Sasl::External);
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[
                ":srv CAP * LS :sasl",
                ":srv CAP * ACK :sasl",
                "AUTHENTICATE +",
                ":srv 903 alice :SASL authentication successful",
            ],
        );
        assert_eq!(
            out,
            [
                "CAP REQ sasl",
                "AUTHENTICATE EXTERNAL",
                "AUTHENTICATE +",
                "CAP END"
            ]
        );
    }

    #[test]
    fn sasl_failure_reports_and_registers() {
        let config = sasl_config();
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[
                ":srv CAP * LS :sasl",
                ":srv CAP * ACK :sasl",
                "AUTHENTICATE +",
                ":srv 908 alice EXTERNAL :are available SASL mechanisms",
                ":srv 904 alice :SASL authentication failed",
            ],
        );
        assert_eq!(
            out,
            [
                "CAP REQ sasl",
                "AUTHENTICATE PLAIN",
                "AUTHENTICATE YWxpY2UAYWxpY2UAc2VzYW1l",
                "SaslFailed { code: 904, reason: \"SASL authentication failed (server mechanisms: EXTERNAL)\" }",
                "CAP END",
            ]
        );
        // Failed is not unavailable: no NickServ retry with the same password.
        assert_eq!(reg.nickserv_identify(&config, "alice"), None);
    }

    #[test]
    fn sasl_skipped_when_mechanism_not_offered() {
        let config = sasl_config();
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(&mut reg, &config, &[":srv CAP * LS :sasl=EXTERNAL batch"]);
        assert_eq!(out, ["CAP REQ batch"]);
        let out = feed(&mut reg, &config, &[":srv CAP * ACK batch"]);
        assert_eq!(out, ["CAP END"]);
        assert!(reg.nickserv_identify(&config, "alice").is_some());
    }

    #[test]
    fn unexpected_challenge_aborts() {
        let config = sasl_config();
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[
                ":srv CAP * LS :sasl",
                ":srv CAP * ACK :sasl",
                "AUTHENTICATE Zm9v",
                ":srv 906 alice :SASL authentication aborted",
            ],
        );
        assert_eq!(out[2], "AUTHENTICATE *");
        assert!(out[3].starts_with("SaslFailed { code: 906"));
        assert_eq!(out[4], "CAP END");
    }

    #[test]
    fn nickserv_names_the_account_on_another_nick() {
        let mut config = config();
        config.nickserv_password = Some("pw".into());
        let (mut reg, _) = Registration::start(&config, "alice");
        feed(
            &mut reg,
            &config,
            &[":srv CAP * LS :", ":srv 001 alice_ :Welcome"],
        );
        let identify = reg.nickserv_identify(&config, "alice_").unwrap();
        assert_eq!(wire(&identify), "PRIVMSG NickServ :IDENTIFY alice pw");
    }

    #[test]
    fn caps_change_after_registration() {
        let config = config();
        let (mut reg, _) = Registration::start(&config, "alice");
        feed(
            &mut reg,
            &config,
            &[
                ":srv CAP * LS :batch",
                ":srv CAP * ACK :batch",
                ":srv 001 alice :hi",
            ],
        );
        let out = feed(
            &mut reg,
            &config,
            &[":srv CAP alice NEW :away-notify foo sasl"],
        );
        assert_eq!(out, ["CAP REQ away-notify"]);
        let out = feed(&mut reg, &config, &[":srv CAP alice ACK :away-notify"]);
        assert_eq!(out, ["CapsChanged"]);
        let out = feed(&mut reg, &config, &[":srv CAP alice DEL :batch"]);
        assert_eq!(out, ["CapsChanged"]);
        assert_eq!(reg.enabled_caps(), ["away-notify"]);
    }

    #[test]
    fn nick_collisions_try_alternatives() {
        let mut config = config();
        config.nick_attempts = 4;
        let (mut reg, _) = Registration::start(&config, "alice");
        let out = feed(
            &mut reg,
            &config,
            &[
                ":srv 433 * alice :Nickname is already in use",
                ":srv 433 * alice_ :Nickname is already in use",
                ":srv 436 * alice1 :Nickname collision",
                ":srv 433 * alice2 :Nickname is already in use",
            ],
        );
        assert_eq!(
            out,
            [
                "NickUnavailable { nick: \"alice\", code: 433, retry_with: Some(\"alice_\") }",
                "NICK alice_",
                "NickUnavailable { nick: \"alice_\", code: 433, retry_with: Some(\"alice1\") }",
                "NICK alice1",
                "NickUnavailable { nick: \"alice1\", code: 436, retry_with: Some(\"alice2\") }",
                "NICK alice2",
                "NickUnavailable { nick: \"alice2\", code: 433, retry_with: None }",
                "GiveUp(NickUnavailable)",
            ]
        );
    }

    #[test]
    fn erroneous_nicks_are_sanitised_then_shortened() {
        let config = ConnectionConfig::new("irc.test", 6667, "9äbc.d");
        let (mut reg, _) = Registration::start(&config, "9äbc.d");
        let out = feed(
            &mut reg,
            &config,
            &[":srv 432 * 9äbc.d :Erroneous nickname"],
        );
        assert_eq!(out[1], "NICK _9bcd");
        // Too long for this server: each 432 drops a character.
        let out = feed(&mut reg, &config, &[":srv 432 * _9bcd :Erroneous nickname"]);
        assert_eq!(out[1], "NICK _9bc");
        let out = feed(&mut reg, &config, &[":srv 433 * _9bc :in use"]);
        assert_eq!(out[1], "NICK _9b_");
        let out = feed(&mut reg, &config, &[":srv 001 _9b_ :Welcome"]);
        assert_eq!(out, ["Welcome(\"_9b_\")"]);
        // After the welcome, 433 answers a NICK change: not ours to retry.
        assert!(feed(&mut reg, &config, &[":srv 433 _9b_ bob :in use"]).is_empty());
    }

    #[test]
    fn sanitize() {
        assert_eq!(sanitize_nick("alice"), "alice");
        assert_eq!(sanitize_nick("Ali ce!"), "Alice");
        assert_eq!(sanitize_nick("-x"), "_-x");
        assert_eq!(sanitize_nick("日本"), "_");
        assert_eq!(sanitize_nick("[a]`^{|}"), "[a]`^{|}");
    }
}
