//! A scripted IRC server for what ngIRCd cannot show: SASL, NickServ,
//! IRCv3 message tags, a server that stops answering, counting concurrent
//! registrations.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

pub struct FakeServer {
    listener: TcpListener,
    pub port: u16,
}

impl FakeServer {
    pub async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self { listener, port }
    }

    pub async fn accept(&self) -> FakeClient {
        let (stream, _) = timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("a client connects within 10 s")
            .unwrap();
        FakeClient::new(stream)
    }
}

/// The server side of one client connection.
pub struct FakeClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl FakeClient {
    fn new(stream: TcpStream) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// The next line from the client, without CR LF; `None` at EOF.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("the client sends a line within 10 s")
            .unwrap();
        (read > 0).then(|| line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Reads lines until one starts with `prefix`, and returns it.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(line) if line.starts_with(prefix) => return line,
                Some(line) => seen.push(line),
                None => panic!("EOF while waiting for {prefix:?}; got {seen:?}"),
            }
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads the opening lines up to USER, then answers without CAP (421)
    /// and welcomes `nick`.
    pub async fn register_without_cap(&mut self, nick: &str) {
        self.expect("USER ").await;
        self.send(":fake.test 421 * CAP :Unknown command").await;
        self.welcome(nick).await;
    }

    /// Reads the opening lines up to USER, offers `caps` in CAP LS,
    /// acknowledges what the client asks for (it must want one of them),
    /// and welcomes `nick` once the client ends CAP.
    pub async fn register_with_caps(&mut self, nick: &str, caps: &str) {
        self.expect("USER ").await;
        self.send(&format!(":fake.test CAP * LS :{caps}")).await;
        let request = self.expect("CAP REQ ").await;
        let wanted = request["CAP REQ ".len()..].trim_start_matches(':');
        self.send(&format!(":fake.test CAP {nick} ACK :{wanted}"))
            .await;
        self.expect("CAP END").await;
        self.welcome(nick).await;
    }

    /// 001, an ISUPPORT line and the end of the MOTD.
    pub async fn welcome(&mut self, nick: &str) {
        self.send(&format!(":fake.test 001 {nick} :Welcome {nick}"))
            .await;
        self.send(&format!(
            ":fake.test 005 {nick} NETWORK=Fake NICKLEN=20 :are supported"
        ))
        .await;
        self.send(&format!(":fake.test 376 {nick} :End of MOTD"))
            .await;
    }
}
