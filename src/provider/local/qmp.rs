//! A small client for QMP, the QEMU Machine Protocol: how spuff asks a
//! local VM to power down, and asks QEMU what state it is in.
//!
//! QMP is JSON, one object per line, over a socket QEMU listens on
//! (`-qmp unix:PATH,server=on,wait=off`). The client reads QEMU's greeting,
//! enters command mode (`qmp_capabilities`), then sends one command at a
//! time and skips the asynchronous events (`{"event": …}`) that arrive in
//! between. What QEMU sends is bounded: a line over [`MAX_LINE`] bytes is an
//! error, not an allocation.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest line accepted from QEMU.
pub const MAX_LINE: usize = 1 << 20;

/// Errors from a QMP conversation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed, or QEMU closed it.
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU sent something that is not QMP.
    #[error("QMP: unexpected message from QEMU: {0}")]
    Protocol(String),
    /// QEMU refused the command.
    #[error("QMP: `{command}` failed: {class}: {desc}")]
    Command {
        /// The command sent.
        command: String,
        /// QEMU's error class (`CommandNotFound`, `GenericError`, …).
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

/// A QMP session in command mode.
#[derive(Debug)]
pub struct Qmp<S> {
    stream: BufReader<S>,
    /// The greeting's `QMP.version.qemu` object (`major`, `minor`, `micro`).
    pub version: Value,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Qmp<S> {
    /// Reads the greeting and enters command mode.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the first message is not a QMP greeting.
    pub async fn handshake(stream: S) -> Result<Self, Error> {
        let mut qmp = Qmp {
            stream: BufReader::new(stream),
            version: Value::Null,
        };
        let greeting = qmp.read().await?;
        let Some(version) = greeting.pointer("/QMP/version/qemu") else {
            return Err(Error::Protocol(cut(&greeting.to_string())));
        };
        qmp.version = version.clone();
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs `command` (with `arguments`) and returns its `return` value.
    ///
    /// # Errors
    /// [`Error::Command`] with QEMU's class and description.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, Error> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.stream.get_mut().write_all(line.as_bytes()).await?;
        self.stream.get_mut().flush().await?;
        loop {
            let reply = self.read().await?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                let text = |k: &str| {
                    crate::util::terminal_safe(e.get(k).and_then(Value::as_str).unwrap_or("?"))
                        .into_owned()
                };
                return Err(Error::Command {
                    command: command.to_string(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(Error::Protocol(cut(&reply.to_string())));
        }
    }

    /// One JSON object, at most [`MAX_LINE`] bytes.
    async fn read(&mut self) -> Result<Value, Error> {
        let mut line = Vec::new();
        let n = (&mut self.stream)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if line.len() > MAX_LINE {
            return Err(Error::Protocol(format!("a line over {MAX_LINE} bytes")));
        }
        serde_json::from_slice(&line)
            .map_err(|e| Error::Protocol(format!("{e}: {}", cut(&String::from_utf8_lossy(&line)))))
    }
}

fn cut(s: &str) -> String {
    crate::util::summarize_body(s.as_bytes())
}

use tokio::io::AsyncReadExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted QEMU on one end of a duplex pipe.
    async fn fake(script: &'static [&'static str]) -> Qmp<tokio::io::DuplexStream> {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut first = true;
            for line in script {
                if !first {
                    // Wait for a command before each reply.
                    let _ = server.read(&mut buf).await;
                }
                first = false;
                let _ = server.write_all(line.as_bytes()).await;
            }
        });
        Qmp::handshake(client)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\n";

    #[tokio::test]
    async fn events_should_be_skipped_and_errors_typed() {
        let mut q = fake(&[
            GREETING,
            "{\"return\": {}}\n",
            "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n{\"return\": {\"status\": \"running\", \"running\": true}}\n",
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\\u001b[2J\"}}\n",
        ])
        .await;
        assert_eq!(q.version["major"], 10);
        let status = q
            .execute("query-status", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status["status"], "running");
        let e = q.execute("nope", None).await.expect_err("refused");
        assert!(
            matches!(&e, Error::Command { class, .. } if class == "CommandNotFound"),
            "{e:?}"
        );
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[tokio::test]
    async fn a_non_qmp_peer_should_be_refused() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let _ = server.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        });
        let e = Qmp::handshake(client).await.expect_err("not QMP");
        assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    }
}
