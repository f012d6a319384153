//! Incoming line framing. irc-proto's codec turns a line that is not UTF-8
//! into an error that ends the stream (its `encoding` feature pulls the
//! unmaintained `encoding` crate), so we frame bytes ourselves and decode
//! each line with a fallback encoding.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Capacity a connection starts with and returns to when idle.
const INITIAL: usize = 512;
/// IRCv3: 8191 bytes of tags plus a 512-byte message. Longer lines are
/// dropped, not buffered without end.
const MAX_LINE: usize = 8191 + 512;

#[derive(Debug)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// Where the unread part starts.
    start: usize,
    /// Inside an overlong line: drop bytes until its end.
    discarding: bool,
}

impl LineBuffer {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(INITIAL),
            start: 0,
            discarding: false,
        }
    }

    /// Reads what the stream has; `Ok(0)` at the end of the stream.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < INITIAL / 2 {
            self.buf.reserve(INITIAL);
        }
        reader.read_buf(&mut self.buf).await
    }

    /// The next complete line without its line ending (CR LF, or LF alone).
    pub(crate) fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            let Some(end) = self.buf[self.start..].iter().position(|b| *b == b'\n') else {
                self.compact();
                return None;
            };
            let line_start = self.start;
            let mut line_end = line_start + end;
            self.start = line_end + 1;
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            if line_end > line_start {
                return Some(&self.buf[line_start..line_end]);
            }
        }
    }

    /// Drops what was consumed; gives memory back once a burst is over.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.len() > MAX_LINE {
            tracing::warn!(bytes = self.buf.len(), "dropping an overlong IRC line");
            self.buf.clear();
            self.discarding = true;
        }
        if self.buf.is_empty() && self.buf.capacity() > INITIAL * 4 {
            self.buf = Vec::with_capacity(INITIAL);
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let (mut client, mut server) = tokio::io::duplex(64);
        let owned: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in owned {
                server.write_all(&chunk).await.unwrap();
            }
        });
        let mut buffer = LineBuffer::new();
        let mut lines = Vec::new();
        while buffer.read_from(&mut client).await.unwrap() > 0 {
            while let Some(line) = buffer.next_line() {
                lines.push(line.to_vec());
            }
        }
        writer.await.unwrap();
        lines
    }

    #[tokio::test]
    async fn splits_on_crlf_and_lf_across_reads() {
        let lines = lines_of(&[b"PING :a\r", b"\nPI", b"NG :b\n\r\n", b"X\xe9\r\n"]).await;
        assert_eq!(
            lines,
            [b"PING :a".to_vec(), b"PING :b".to_vec(), b"X\xe9".to_vec()]
        );
    }

    #[tokio::test]
    async fn drops_overlong_lines_and_recovers() {
        let long = vec![b'x'; MAX_LINE * 2];
        let lines = lines_of(&[b"A\r\n", &long, b"tail\r\nB\r\n"]).await;
        assert_eq!(lines, [b"A".to_vec(), b"B".to_vec()]);
    }

    #[tokio::test]
    async fn shrinks_back_after_a_long_line() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        use tokio::io::AsyncWriteExt;
        let mut input = b"PRIVMSG #c :".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\r\nPING :x\r\n");
        server.write_all(&input).await.unwrap();
        drop(server);
        let mut buffer = LineBuffer::new();
        let mut grew = 0;
        let mut lengths = Vec::new();
        while buffer.read_from(&mut client).await.unwrap() > 0 {
            grew = grew.max(buffer.capacity());
            while let Some(line) = buffer.next_line() {
                lengths.push(line.len());
            }
        }
        assert_eq!(lengths, [5012, 7]);
        assert!(grew > INITIAL * 4, "{grew}");
        assert_eq!(buffer.capacity(), INITIAL);
    }
}
