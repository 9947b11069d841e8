//! What both roles run on a QUIC connection besides request streams: our control stream
//! with SETTINGS, the peer's control stream (SETTINGS first, then GOAWAY and unknown frames),
//! and the peer's other unidirectional streams (QPACK's, which we drain, and unknown ones,
//! which we refuse). Our GOAWAY goes on our control stream; the peer's is kept for the
//! client to stop opening streams.

use std::sync::Arc;

use tokio::sync::{Mutex, watch};

use super::codes::{self, CodecError};
use super::frame::{self, Frame, FrameDecoder, Settings};
use super::{MAX_FIELD_SECTION_SIZE, varint};
use crate::Error;
use crate::error::Http3Error;

/// The unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
const CONTROL_STREAM: u64 = 0x00;
const PUSH_STREAM: u64 = 0x01;
const QPACK_ENCODER_STREAM: u64 = 0x02;
const QPACK_DECODER_STREAM: u64 = 0x03;

/// Closes the QUIC connection (`H3_NO_ERROR`) when the last user of the HTTP/3 session (the
/// server or client handle and every [`H3Stream`](super::H3Stream)) is gone.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    conn: quinn::Connection,
    /// The client's endpoint, kept as long as its connection.
    _endpoint: Option<quinn::Endpoint>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.conn
            .close(quinn::VarInt::from_u32(codes::H3_NO_ERROR as u32), b"");
    }
}

/// Our control stream, for frames after SETTINGS.
#[derive(Debug, Clone)]
pub(crate) struct ControlStream(Arc<Mutex<quinn::SendStream>>);

impl ControlStream {
    /// Sends GOAWAY with `id` (RFC 9114 §5.2): the peer opens no request stream at or past
    /// `id` here.
    pub(crate) async fn send_goaway(&self, id: u64) -> Result<(), Error> {
        let mut payload = Vec::with_capacity(8);
        varint::encode(id, &mut payload);
        let mut out = Vec::with_capacity(16);
        frame::encode_frame(frame::GOAWAY, &payload, &mut out);
        let mut control = self.0.lock().await;
        control.write_all(&out).await.map_err(|e| Error::Io(e.into()))
    }
}

/// The HTTP/3 session state shared by a server or client handle.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) conn: quinn::Connection,
    pub(crate) guard: Arc<SessionGuard>,
    pub(crate) settings: watch::Receiver<Option<Settings>>,
    /// Our control stream, also held by the task that reads the peer's streams, so it stays
    /// open as long as the connection (RFC 9114 §6.2.1) whoever drops their handle.
    pub(crate) control: ControlStream,
    /// The stream id of the peer's last GOAWAY (RFC 9114 §5.2), once it sent one.
    goaway: watch::Receiver<Option<u64>>,
}

/// Closes `conn` with an HTTP/3 connection error.
pub(crate) fn fail(conn: &quinn::Connection, e: &CodecError) {
    tracing::debug!(code = e.code, reason = %e.reason, "closing the http/3 connection");
    let code = quinn::VarInt::from_u64(e.code)
        .unwrap_or(quinn::VarInt::from_u32(codes::H3_GENERAL_PROTOCOL_ERROR as u32));
    conn.close(code, e.reason.as_bytes());
}

impl Session {
    /// Opens our control stream with our SETTINGS and starts reading the peer's
    /// unidirectional streams.
    pub(crate) async fn start(
        conn: quinn::Connection,
        endpoint: Option<quinn::Endpoint>,
    ) -> Result<Session, Error> {
        let mut control = conn.open_uni().await.map_err(Http3Error::Connection)?;
        let mut bytes = Vec::with_capacity(16);
        varint::encode(CONTROL_STREAM, &mut bytes);
        Settings::ours(MAX_FIELD_SECTION_SIZE as u64).encode_frame(&mut bytes);
        control.write_all(&bytes).await.map_err(|e| Error::Io(e.into()))?;
        let control = ControlStream(Arc::new(Mutex::new(control)));
        let (settings_tx, settings) = watch::channel(None);
        let (goaway_tx, goaway) = watch::channel(None);
        let peer = Arc::new(Peer {
            settings: settings_tx,
            goaway: goaway_tx,
        });
        let driver = conn.clone();
        let kept = control.clone();
        tokio::spawn(async move {
            let _control = kept;
            while let Ok(recv) = driver.accept_uni().await {
                tokio::spawn(uni_stream(recv, driver.clone(), peer.clone()));
            }
        });
        Ok(Session {
            guard: Arc::new(SessionGuard {
                conn: conn.clone(),
                _endpoint: endpoint,
            }),
            conn,
            settings,
            control,
            goaway,
        })
    }

    /// The id of the peer's GOAWAY, once one arrived.
    pub(crate) fn peer_goaway(&self) -> Option<u64> {
        *self.goaway.borrow()
    }

    /// Waits for the peer's SETTINGS.
    pub(crate) async fn peer_settings(&mut self) -> Result<Settings, Error> {
        loop {
            if let Some(s) = *self.settings.borrow_and_update() {
                return Ok(s);
            }
            tokio::select! {
                changed = self.settings.changed() => {
                    if changed.is_err() {
                        return Err(Http3Error::Connection(self.conn.closed().await).into());
                    }
                }
                e = self.conn.closed() => return Err(Http3Error::Connection(e).into()),
            }
        }
    }
}

/// What the peer's control stream tells the session.
struct Peer {
    settings: watch::Sender<Option<Settings>>,
    goaway: watch::Sender<Option<u64>>,
}

/// Reads one of the peer's unidirectional streams.
async fn uni_stream(mut recv: quinn::RecvStream, conn: quinn::Connection, peer: Arc<Peer>) {
    let mut head = Vec::with_capacity(8);
    let ty = loop {
        if let Some((ty, used)) = varint::decode(&head) {
            head.drain(..used);
            break ty;
        }
        let mut byte = [0u8; 1];
        match recv.read(&mut byte).await {
            Ok(Some(1)) => head.push(byte[0]),
            _ => return,
        }
    };
    match ty {
        CONTROL_STREAM => control_stream(recv, head, &conn, &peer).await,
        QPACK_ENCODER_STREAM | QPACK_DECODER_STREAM => {
            // With a table capacity of 0 there is nothing to act on; read to free the credit.
            let mut sink = vec![0u8; 1024];
            while let Ok(Some(_)) = recv.read(&mut sink).await {}
        }
        PUSH_STREAM => fail(
            &conn,
            &CodecError::new(
                codes::H3_STREAM_CREATION_ERROR,
                "push stream, but pushes were never allowed".into(),
            ),
        ),
        _ => {
            let _ = recv.stop(quinn::VarInt::from_u32(codes::H3_STREAM_CREATION_ERROR as u32));
        }
    }
}

async fn control_stream(mut recv: quinn::RecvStream, first: Vec<u8>, conn: &quinn::Connection, peer: &Peer) {
    if peer.settings.borrow().is_some() {
        return fail(
            conn,
            &CodecError::new(codes::H3_STREAM_CREATION_ERROR, "a second control stream".into()),
        );
    }
    let mut frames = FrameDecoder::new(MAX_FIELD_SECTION_SIZE as u64);
    frames.push(&first);
    let mut have_settings = false;
    let mut buf = vec![0u8; 4096];
    loop {
        loop {
            match frames.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Settings(s))) if !have_settings => {
                    have_settings = true;
                    peer.settings.send_replace(Some(s));
                }
                Ok(Some(_)) if !have_settings => {
                    return fail(
                        conn,
                        &CodecError::new(
                            codes::H3_MISSING_SETTINGS,
                            "the control stream must start with SETTINGS".into(),
                        ),
                    );
                }
                Ok(Some(Frame::Goaway(id))) => {
                    tracing::debug!(id, "the peer sent GOAWAY");
                    peer.goaway.send_replace(Some(id));
                }
                Ok(Some(_)) => {
                    return fail(
                        conn,
                        &CodecError::new(
                            codes::H3_FRAME_UNEXPECTED,
                            "DATA, HEADERS, PUSH_PROMISE or a second SETTINGS on the control stream".into(),
                        ),
                    );
                }
                Err(e) => return fail(conn, &e),
            }
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => frames.push(&buf[..n]),
            Ok(None) => {
                return fail(
                    conn,
                    &CodecError::new(
                        codes::H3_CLOSED_CRITICAL_STREAM,
                        "the peer's control stream ended".into(),
                    ),
                );
            }
            Err(_) => return,
        }
    }
}
