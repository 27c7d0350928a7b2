//! MCP over a container's attached stdin and stdout, as an rmcp [`Transport`].
//!
//! One JSON-RPC message per line. Lines are bounded: a line longer than the limit means the
//! server is flooding or broken, so the transport closes (the caller stops the container and
//! fails the calls in flight with the reason) instead of buffering without end. Lines that are
//! not JSON-RPC (a banner printed to stdout) are skipped. Stderr goes to a bounded ring kept
//! for the logs of a failed start.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bollard::container::LogOutput;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Why a connection ended, shared with whoever reports call failures.
#[derive(Debug, Default, Clone)]
pub(crate) struct Death(Arc<Mutex<Option<String>>>);

impl Death {
    pub(crate) fn set(&self, why: impl Into<String>) {
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(why.into());
        }
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// The last bytes a container wrote to stderr.
#[derive(Debug, Clone)]
pub(crate) struct StderrRing {
    inner: Arc<Mutex<VecDeque<u8>>>,
    cap: usize,
}

impl StderrRing {
    pub(crate) fn new(cap: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(4096)))), cap }
    }

    fn push(&self, bytes: &[u8]) {
        if let Ok(mut ring) = self.inner.lock() {
            ring.extend(bytes.iter().copied());
            let excess = ring.len().saturating_sub(self.cap);
            ring.drain(..excess);
        }
    }

    pub(crate) fn text(&self) -> String {
        self.inner
            .lock()
            .map(|r| String::from_utf8_lossy(&r.iter().copied().collect::<Vec<u8>>()).into_owned())
            .unwrap_or_default()
    }
}

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The client side of MCP over a container's stdio.
pub(crate) struct StdioTransport {
    incoming: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    outgoing: mpsc::Sender<Bytes>,
}

impl StdioTransport {
    /// Starts the reader and writer tasks over an attached container.
    pub(crate) fn new(
        output: Output,
        input: Pin<Box<dyn AsyncWrite + Send>>,
        max_message_bytes: usize,
        stderr: StderrRing,
        death: Death,
    ) -> Self {
        let (in_tx, incoming) = mpsc::channel(64);
        let (outgoing, out_rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(read_loop(output, in_tx, max_message_bytes, stderr, death.clone()));
        tokio::spawn(write_loop(input, out_rx, death));
        Self { incoming, outgoing }
    }
}

async fn write_loop(mut input: Pin<Box<dyn AsyncWrite + Send>>, mut rx: mpsc::Receiver<Bytes>, death: Death) {
    while let Some(line) = rx.recv().await {
        if let Err(e) = async {
            input.write_all(&line).await?;
            input.flush().await
        }
        .await
        {
            death.set(format!("cannot write to the server's stdin: {e}"));
            break;
        }
    }
    let _ = input.shutdown().await;
}

async fn read_loop(
    mut output: Output,
    tx: mpsc::Sender<RxJsonRpcMessage<RoleClient>>,
    max: usize,
    stderr: StderrRing,
    death: Death,
) {
    let mut line = BytesMut::new();
    while let Some(item) = output.next().await {
        let chunk = match item {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => message,
            Ok(LogOutput::StdErr { message }) => {
                stderr.push(&message);
                continue;
            }
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                death.set(format!("the container's output stream failed: {e}"));
                return;
            }
        };
        let mut rest: &[u8] = chunk.as_ref();
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            if line.len() + head.len() > max {
                death.set(format!("the server wrote a message larger than {max} bytes"));
                return;
            }
            line.extend_from_slice(head);
            rest = tail.get(1..).unwrap_or_default();
            let text = std::mem::take(&mut line);
            if let Some(message) = parse(&text)
                && tx.send(message).await.is_err()
            {
                return;
            }
        }
        if line.len() + rest.len() > max {
            death.set(format!("the server wrote a message larger than {max} bytes"));
            return;
        }
        line.extend_from_slice(rest);
    }
    death.set("the container exited");
}

fn parse(line: &[u8]) -> Option<RxJsonRpcMessage<RoleClient>> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    match serde_json::from_slice(trimmed) {
        Ok(message) => Some(message),
        Err(e) => {
            tracing::debug!(error.message = %e, "skipping a stdout line that is not a JSON-RPC message");
            None
        }
    }
}

impl Transport<RoleClient> for StdioTransport {
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "container-stdio".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let tx = self.outgoing.clone();
        async move {
            let mut line = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            line.push(b'\n');
            tx.send(Bytes::from(line))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the server's stdin is closed"))
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.incoming.recv()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.incoming.close();
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(chunks: Vec<LogOutput>) -> Output {
        Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))
    }

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut { message: Bytes::copy_from_slice(s.as_bytes()) }
    }

    #[tokio::test]
    async fn lines_split_across_frames_are_reassembled_and_banners_skipped() {
        let (tx, mut rx) = mpsc::channel(8);
        let death = Death::default();
        let stderr = StderrRing::new(16);
        let frames = vec![
            out("starting up...\n{\"jsonrpc\":\"2.0\",\"id\":1,"),
            LogOutput::StdErr { message: Bytes::from_static(b"some very long diagnostic line") },
            out("\"result\":{}}\n"),
        ];
        read_loop(output(frames), tx, 1024, stderr.clone(), death.clone()).await;
        let message = rx.recv().await.unwrap();
        assert!(serde_json::to_string(&message).unwrap().contains("\"id\":1"));
        assert!(rx.recv().await.is_none());
        assert_eq!(death.get().as_deref(), Some("the container exited"));
        assert_eq!(stderr.text(), " diagnostic line");
    }

    #[tokio::test]
    async fn an_oversized_line_closes_the_transport_with_the_reason() {
        let (tx, mut rx) = mpsc::channel(8);
        let death = Death::default();
        let big = "x".repeat(600);
        read_loop(output(vec![out(&big), out(&big), out("\n")]), tx, 1000, StderrRing::new(8), death.clone()).await;
        assert!(rx.recv().await.is_none());
        assert_eq!(death.get().as_deref(), Some("the server wrote a message larger than 1000 bytes"));
    }
}
