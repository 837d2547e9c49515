//! The exec/attach stream translator: a client WebSocket speaking `v5.channel.k8s.io` (or v4) on
//! one side, a SPDY/3.1 remotecommand `v4.channel.k8s.io` session toward the kubelet (and the
//! CRI streaming server behind it) on the other. Streams are opened as client-go does (error,
//! stdin, stdout, stderr, resize), the kubelet's status on the error stream is handed to the
//! client on channel 3, then the WebSocket is closed with 1000.

use super::channel::{self, ClientMessage};
use super::spdy::{self, Decoder, Encoder, Frame};
use super::status::{self, Status};
use super::StreamingError;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long the kubelet may take to answer our SYN_STREAMs.
const STREAM_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the client to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How much of the kubelet's error stream is kept (a Status is a few hundred bytes).
const MAX_ERROR_PAYLOAD: usize = 64 * 1024;

/// Which streams the session carries, from the kubelet request's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Reads `input`/`output`/`error`/`tty` (the kubelet's names, value `1`) or
    /// `stdin`/`stdout`/`stderr` (the API's names, value `true`). With a TTY there is no stderr.
    pub fn from_query(query: &str) -> Self {
        let mut o = ExecOptions::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let on = v != "0" && !v.eq_ignore_ascii_case("false");
            match k.as_ref() {
                "input" | "stdin" => o.stdin = on,
                "output" | "stdout" => o.stdout = on,
                "error" | "stderr" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        if o.tty {
            o.stderr = false;
        }
        o
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Stdin => "stdin",
            Kind::Stdout => "stdout",
            Kind::Stderr => "stderr",
            Kind::Resize => "resize",
        }
    }
}

struct StreamState {
    id: u32,
    kind: Kind,
    replied: bool,
    /// The kubelet finished its side (FIN or RST).
    remote_done: bool,
}

/// The streams client-go opens for these options, in its order, with odd ids from 1.
fn plan(opts: ExecOptions) -> Vec<StreamState> {
    let mut kinds = vec![Kind::Error];
    if opts.stdin {
        kinds.push(Kind::Stdin);
    }
    if opts.stdout {
        kinds.push(Kind::Stdout);
    }
    if opts.stderr && !opts.tty {
        kinds.push(Kind::Stderr);
    }
    if opts.tty {
        kinds.push(Kind::Resize);
    }
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| StreamState {
            id: 1 + 2 * i as u32,
            kind,
            replied: false,
            remote_done: false,
        })
        .collect()
}

fn syn_stream(s: &StreamState) -> Frame {
    Frame::SynStream {
        stream_id: s.id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: vec![("streamtype".into(), s.kind.name().into())],
    }
}

/// What the kubelet side ended with.
enum Outcome {
    /// The error stream's content (empty means success).
    Finished(Vec<u8>),
    /// The connection broke before the error stream finished.
    Broken(String),
}

/// Sends `payload` on the error channel, then closes the WebSocket with 1000 and waits briefly
/// for the client's answer.
pub async fn finish_with_status(mut ws: WebSocket, payload: Vec<u8>) {
    let _ = ws
        .send(Message::Binary(
            channel::encode(channel::ERROR, &payload).into(),
        ))
        .await;
    let _ = ws.send(Message::Close(Some(normal_close()))).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn normal_close() -> CloseFrame {
    CloseFrame {
        code: 1000,
        reason: "".into(),
    }
}

/// The error-channel payload for a kubelet that refused the SPDY upgrade: its Status if the
/// body is one, else an internal error, as client-go reports it.
pub fn refusal_payload(body: &[u8]) -> Vec<u8> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if v.get("kind").and_then(|k| k.as_str()) == Some("Status") {
            return body.to_vec();
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    status_payload(&Status::internal(format!(
        "unable to upgrade connection: {text}"
    )))
}

pub fn status_payload(s: &Status) -> Vec<u8> {
    serde_json::to_vec(&s.to_json()).unwrap_or_default()
}

/// The error-channel payload for what the kubelet wrote on its error stream.
fn outcome_payload(outcome: Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Finished(data) if data.is_empty() => status::success_json(),
        Outcome::Finished(data) => {
            let is_status = serde_json::from_slice::<serde_json::Value>(&data)
                .ok()
                .is_some_and(|v| v.get("status").is_some());
            if is_status {
                data
            } else {
                // v1-v3 servers write plain text errors.
                status_payload(&Status::internal(
                    String::from_utf8_lossy(&data).trim().to_string(),
                ))
            }
        }
        Outcome::Broken(why) => status_payload(&Status::internal(format!(
            "error reading from error stream: {why}"
        ))),
    }
}

/// Runs a translated session over an established SPDY connection `io` until either side ends.
pub async fn run<IO>(ws: WebSocket, v5: bool, io: IO, opts: ExecOptions)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut streams = plan(opts);
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);

    // Open every stream and wait for the kubelet's replies before sending data: spdystream
    // drops DATA on a stream it has not replied to yet.
    let setup = async {
        let mut out = BytesMut::new();
        for s in &streams {
            enc.encode(&syn_stream(s), &mut out)?;
        }
        wr.write_all(&out).await.map_err(StreamingError::Io)?;
        wr.flush().await.map_err(StreamingError::Io)?;
        while !streams.iter().all(|s| s.replied) {
            let frame = read_frame(&mut rd, &mut dec, &mut buf).await?;
            match frame {
                Some(Frame::SynReply { stream_id, .. }) => {
                    if let Some(s) = streams.iter_mut().find(|s| s.id == stream_id) {
                        s.replied = true;
                    }
                }
                Some(Frame::RstStream { stream_id, status }) => {
                    return Err(StreamingError::StreamRefused { stream_id, status });
                }
                Some(Frame::Ping { id }) if id % 2 == 0 => {
                    let mut out = BytesMut::new();
                    enc.encode(&Frame::Ping { id }, &mut out)?;
                    wr.write_all(&out).await.map_err(StreamingError::Io)?;
                }
                Some(Frame::GoAway { .. }) | None => {
                    return Err(StreamingError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "kubelet closed the connection during stream setup",
                    )));
                }
                Some(_) => {}
            }
        }
        Ok::<(), StreamingError>(())
    };
    match tokio::time::timeout(STREAM_REPLY_TIMEOUT, setup).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            finish_with_status(ws, status_payload(&Status::internal(e.to_string()))).await;
            return;
        }
        Err(_) => {
            let e = StreamingError::StreamReplyTimeout;
            finish_with_status(ws, status_payload(&Status::internal(e.to_string()))).await;
            return;
        }
    }

    let stdin_id = streams.iter().find(|s| s.kind == Kind::Stdin).map(|s| s.id);
    let resize_id = streams
        .iter()
        .find(|s| s.kind == Kind::Resize)
        .map(|s| s.id);
    let ids: Vec<u32> = streams.iter().map(|s| s.id).collect();

    // One writer owns the SPDY write half and the compressor.
    let (frames_tx, frames_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(write_frames(wr, enc, frames_rx));

    let (sink, stream) = ws.split();
    let mut client = tokio::spawn(client_to_kubelet(
        stream,
        v5,
        stdin_id,
        resize_id,
        frames_tx.clone(),
    ));
    let mut kubelet = tokio::spawn(kubelet_to_client(
        rd,
        dec,
        buf,
        streams,
        sink,
        frames_tx.clone(),
    ));
    tokio::select! {
        _ = &mut kubelet => {
            // The kubelet finished and the status and close were sent: give the client a
            // moment to answer the close, then tear the SPDY session down as client-go does.
            if tokio::time::timeout(CLOSE_GRACE, &mut client).await.is_err() {
                client.abort();
            }
        }
        _ = &mut client => {
            // The client went away first.
            kubelet.abort();
        }
    }
    for id in ids {
        let _ = frames_tx.try_send(Frame::RstStream {
            stream_id: id,
            status: spdy::RST_CANCEL,
        });
    }
    let _ = frames_tx.try_send(Frame::GoAway {
        last_good_stream_id: 0,
        status: spdy::GOAWAY_OK,
    });
    drop(frames_tx);
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    dec: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, StreamingError> {
    loop {
        if let Some(f) = dec.decode(buf)? {
            return Ok(Some(f));
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let n = rd.read_buf(buf).await.map_err(StreamingError::Io)?;
        if n == 0 {
            return Ok(None);
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut enc: Encoder,
    mut rx: mpsc::Receiver<Frame>,
) {
    let mut out = BytesMut::new();
    while let Some(f) = rx.recv().await {
        out.clear();
        let res = match &f {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                enc.encode_data(*stream_id, data, *fin, &mut out);
                Ok(())
            }
            other => enc.encode(other, &mut out),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "encoding spdy frame");
            break;
        }
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

/// WebSocket → SPDY: stdin, resize and v5 close messages.
async fn client_to_kubelet(
    mut stream: SplitStream<WebSocket>,
    v5: bool,
    stdin_id: Option<u32>,
    resize_id: Option<u32>,
    tx: mpsc::Sender<Frame>,
) {
    let mut stdin_open = stdin_id.is_some();
    while let Some(Ok(msg)) = stream.next().await {
        let data = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            // Pings are answered by the WebSocket layer; text is not part of the protocol.
            _ => continue,
        };
        let frame = match channel::decode_client(&data, v5) {
            ClientMessage::Stdin(d) => match stdin_id {
                Some(id) if stdin_open && !d.is_empty() => Frame::Data {
                    stream_id: id,
                    fin: false,
                    data: d,
                },
                _ => continue,
            },
            ClientMessage::Resize(d) => match resize_id {
                Some(id) if !d.is_empty() => Frame::Data {
                    stream_id: id,
                    fin: false,
                    data: d,
                },
                _ => continue,
            },
            ClientMessage::Close(channel::STDIN) => match stdin_id {
                Some(id) if stdin_open => {
                    stdin_open = false;
                    Frame::Data {
                        stream_id: id,
                        fin: true,
                        data: Bytes::new(),
                    }
                }
                _ => continue,
            },
            ClientMessage::Close(_) | ClientMessage::Ignored => continue,
        };
        if tx.send(frame).await.is_err() {
            break;
        }
    }
}

/// SPDY → WebSocket: stdout/stderr data, pings, and the final status.
async fn kubelet_to_client<R: AsyncRead + Unpin>(
    mut rd: R,
    mut dec: Decoder,
    mut buf: BytesMut,
    mut streams: Vec<StreamState>,
    mut sink: SplitSink<WebSocket, Message>,
    tx: mpsc::Sender<Frame>,
) {
    let mut error_data: Vec<u8> = Vec::new();
    let done = |streams: &Vec<StreamState>| {
        streams
            .iter()
            .filter(|s| matches!(s.kind, Kind::Error | Kind::Stdout | Kind::Stderr))
            .all(|s| s.remote_done)
    };
    let outcome = loop {
        if done(&streams) {
            break Outcome::Finished(std::mem::take(&mut error_data));
        }
        let frame = match read_frame(&mut rd, &mut dec, &mut buf).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                let error_done = streams
                    .iter()
                    .any(|s| s.kind == Kind::Error && s.remote_done);
                if error_done || !error_data.is_empty() {
                    break Outcome::Finished(std::mem::take(&mut error_data));
                }
                break Outcome::Broken("connection closed".into());
            }
            Err(e) => break Outcome::Broken(e.to_string()),
        };
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let Some(s) = streams.iter_mut().find(|s| s.id == stream_id) else {
                    continue;
                };
                if s.remote_done {
                    continue;
                }
                if !data.is_empty() {
                    let ch = match s.kind {
                        Kind::Stdout => Some(channel::STDOUT),
                        Kind::Stderr => Some(channel::STDERR),
                        Kind::Error => {
                            let room = MAX_ERROR_PAYLOAD.saturating_sub(error_data.len());
                            error_data.extend_from_slice(&data[..data.len().min(room)]);
                            None
                        }
                        _ => None,
                    };
                    if let Some(ch) = ch {
                        let msg = Message::Binary(channel::encode(ch, &data).into());
                        if sink.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
                if fin {
                    s.remote_done = true;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(s) = streams.iter_mut().find(|s| s.id == stream_id) {
                    s.remote_done = true;
                }
            }
            Frame::SynReply {
                stream_id,
                fin: true,
                ..
            }
            | Frame::Headers {
                stream_id,
                fin: true,
                ..
            } => {
                if let Some(s) = streams.iter_mut().find(|s| s.id == stream_id) {
                    s.remote_done = true;
                }
            }
            Frame::Ping { id } if id % 2 == 0 => {
                let _ = tx.try_send(Frame::Ping { id });
            }
            Frame::GoAway { .. } => {
                // spdystream resets every stream before its GOAWAY; whatever we have is final.
                break Outcome::Finished(std::mem::take(&mut error_data));
            }
            Frame::SynStream { stream_id, .. } => {
                // The server never opens streams in remotecommand.
                let _ = tx.try_send(Frame::RstStream {
                    stream_id,
                    status: spdy::RST_REFUSED_STREAM,
                });
            }
            _ => {}
        }
    };
    let payload = outcome_payload(outcome);
    let _ = sink
        .send(Message::Binary(
            channel::encode(channel::ERROR, &payload).into(),
        ))
        .await;
    let _ = sink.send(Message::Close(Some(normal_close()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_both_parameter_styles() {
        let o = ExecOptions::from_query("command=sh&input=1&output=1&error=1");
        assert_eq!(
            o,
            ExecOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
        let o = ExecOptions::from_query("stdout=true&stderr=true&tty=true&stdin=false");
        assert_eq!(
            o,
            ExecOptions {
                stdin: false,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
    }

    #[test]
    fn streams_are_planned_in_client_go_order() {
        let kinds = |o| {
            plan(o)
                .iter()
                .map(|s| (s.id, s.kind.name()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(ExecOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }),
            vec![(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")]
        );
        assert_eq!(
            kinds(ExecOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: true
            }),
            vec![(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")]
        );
    }

    #[test]
    fn outcomes_become_error_channel_payloads() {
        let ok: serde_json::Value =
            serde_json::from_slice(&outcome_payload(Outcome::Finished(vec![]))).unwrap();
        assert_eq!(ok["status"], "Success");
        let exit = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(
            outcome_payload(Outcome::Finished(exit.to_vec())),
            exit.to_vec()
        );
        let text: serde_json::Value =
            serde_json::from_slice(&outcome_payload(Outcome::Finished(b"oops\n".to_vec())))
                .unwrap();
        assert_eq!(text["message"], "Internal error occurred: oops");
        let broken: serde_json::Value =
            serde_json::from_slice(&outcome_payload(Outcome::Broken("eof".into()))).unwrap();
        assert_eq!(
            broken["message"],
            "Internal error occurred: error reading from error stream: eof"
        );
    }

    #[test]
    fn refusals_keep_status_bodies() {
        let st =
            br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"x","code":404}"#;
        assert_eq!(refusal_payload(st), st.to_vec());
        let v: serde_json::Value =
            serde_json::from_slice(&refusal_payload(b"container not found (\"c\")\n")).unwrap();
        assert_eq!(
            v["message"],
            "Internal error occurred: unable to upgrade connection: container not found (\"c\")"
        );
    }
}
