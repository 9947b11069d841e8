//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! Both directions support context takeover (the compressor's window carries over between
//! messages) and window sizes of 8 to 15 bits. zlib cannot compress with an 8-bit window
//! (raw deflate rejects it), so when the peer limits our window to 8 bits we send stored
//! (uncompressed) deflate blocks, which any window decodes. We always inflate with a 15-bit
//! window: it decodes every stream a smaller window could produce.
//!
//! # Memory (zlib-rs, as measured)
//! A compressor holds `2^(w+2)` bytes of window and chains, a 128 KiB hash table whatever the
//! settings, and 112 KiB of block buffers (memLevel 8, which flate2 fixes): about 370 KiB at
//! w = 15. An inflater holds its state and a 32 KiB window whatever the window bits: 47 KiB.
//! With context takeover the inflater must keep the peer's window as long as the connection
//! lives: that is the floor. The compressor need not: with [`DeflateConfig::low_memory`] the
//! codec frees it after every message and keeps the last 4 KiB it sent, the dictionary the
//! next compressor starts from, so the peer's context stays usable. An idle server
//! connection with context takeover both ways then
//! holds about 57-62 KiB in all (inflater 47 KiB, history 4 KiB, its own buffers) instead of
//! about 440 KiB. Without context takeover from the peer, the inflater goes too.

use super::{ExtensionOffer, parse_extensions};
use crate::ProtocolError;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's registered name.
pub(crate) const EXTENSION_NAME: &str = "permessage-deflate";

/// What this end asks for and accepts. Server and client read the fields from their own side.
///
/// ```
/// use ferrosocket_proto::DeflateConfig;
/// let cfg = DeflateConfig::default().server_no_context_takeover(true).low_memory(true);
/// assert!(cfg.server_no_context_takeover);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// zlib level, 0 (store) to 9 (best). Default 1, chosen by measurement (zlib-rs,
    /// instructions per server echo of one message with context takeover, and reply bytes
    /// over payload bytes):
    ///
    /// | level | JSON 1 KiB | JSON 16 KiB | random words 1 KiB | random words 16 KiB |
    /// |---|---|---|---|---|
    /// | 1 | 42 k, 0.34 | 570 k, 0.33 | 104 k, 0.93 | 1.45 M, 0.92 |
    /// | 2 | 158 k, 0.27 | 950 k, 0.24 | 253 k, 0.62 | 2.39 M, 0.60 |
    /// | 3 | 175 k, 0.24 | 1.24 M, 0.22 | 277 k, 0.62 | 2.78 M, 0.60 |
    /// | 6 | 197 k, 0.23 | 1.63 M, 0.20 | 292 k, 0.62 | 3.10 M, 0.60 |
    ///
    /// Level 1 uses fixed Huffman codes: it gains from repeats (JSON keys) but hardly from
    /// letter frequencies, which level 2 codes dynamically at 1.6-3.7x the instructions.
    /// Raise it where bandwidth costs more than CPU. A smaller compression window saves
    /// memory only while a message is being compressed (see the module docs) and costs both
    /// ratio and instructions at level 1 (w = 11: 52 k, 0.37 and 704 k, 0.36 for JSON), so
    /// the codec compresses with the window negotiated.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed. Default 64: below that
    /// deflate's overhead usually exceeds what it saves.
    pub threshold: usize,
    /// The server does not carry its compression context between messages. A server sets it
    /// to save memory; a client sets it to ask for it. Default `false`.
    pub server_no_context_takeover: bool,
    /// The client does not carry its compression context between messages. A server sets it
    /// to require it; a client sets it to promise it. Default `false`.
    pub client_no_context_takeover: bool,
    /// Largest window the server compresses with (8-15). A server caps its own window with
    /// it; a client asks the server for it. Default 15.
    pub server_max_window_bits: u8,
    /// Largest window the client compresses with (8-15). A server limits the client with it
    /// (when the client allows); a client offers it. Default 15.
    pub client_max_window_bits: u8,
    /// Free the compressor after each message, and the inflater too where the peer takes no
    /// context over. With context takeover on our side the last 4 KiB sent stay as the next
    /// compressor's dictionary, so the peer's context is still used. Costs a new compressor
    /// per message (a 370 KiB allocation, 256 KiB of it zeroed, and the dictionary hashed);
    /// saves about 370 KiB per connection between messages. Default `false`.
    pub low_memory: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 1,
            threshold: 64,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            low_memory: false,
        }
    }
}

impl DeflateConfig {
    /// Sets [`level`](Self::level) (clamped to 0-9).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }
    /// Sets [`threshold`](Self::threshold).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }
    /// Sets [`server_no_context_takeover`](Self::server_no_context_takeover).
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }
    /// Sets [`client_no_context_takeover`](Self::client_no_context_takeover).
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }
    /// Sets [`server_max_window_bits`](Self::server_max_window_bits) (clamped to 8-15).
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(8, 15);
        self
    }
    /// Sets [`client_max_window_bits`](Self::client_max_window_bits) (clamped to 8-15).
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(8, 15);
        self
    }
    /// Sets [`low_memory`](Self::low_memory).
    pub fn low_memory(mut self, on: bool) -> Self {
        self.low_memory = on;
        self
    }
}

/// What both ends agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's compression window, in bits.
    pub server_max_window_bits: u8,
    /// The client's compression window, in bits.
    pub client_max_window_bits: u8,
}

/// Why a permessage-deflate offer or response is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permessage-deflate parameters: {0}")]
pub struct DeflateNegotiationError(pub String);

fn bits(value: &str) -> Option<u8> {
    // RFC 7692 §7.1.2: 1*DIGIT without leading zeros, 8..=15.
    // (`u8::from_str` alone would also take "+9".)
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// The parameters of one offer or response, checked for unknown, duplicate and invalid ones.
#[derive(Debug, Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_params(offer: &ExtensionOffer) -> Result<Parsed, DeflateNegotiationError> {
    let mut p = Parsed::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &offer.params {
        let key = name.to_ascii_lowercase();
        if seen.contains(&key.as_str()) {
            return Err(DeflateNegotiationError(format!("duplicate parameter {name}")));
        }
        let bad = || DeflateNegotiationError(format!("bad value for {name}"));
        match (key.as_str(), value.as_deref()) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = Some(bits(v).ok_or_else(bad)?),
            ("client_max_window_bits", None) => p.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => {
                p.client_max_window_bits = Some(Some(bits(v).ok_or_else(bad)?))
            }
            ("server_no_context_takeover" | "client_no_context_takeover" | "server_max_window_bits", _) => {
                return Err(bad());
            }
            _ => return Err(DeflateNegotiationError(format!("unknown parameter {name}"))),
        }
        seen.push(match key.as_str() {
            "server_no_context_takeover" => "server_no_context_takeover",
            "client_no_context_takeover" => "client_no_context_takeover",
            "server_max_window_bits" => "server_max_window_bits",
            _ => "client_max_window_bits",
        });
    }
    Ok(p)
}

/// Server side (RFC 7692 §5, §7.1): accepts the first permessage-deflate offer in `offers`
/// that is valid and compatible with `cfg`; returns the agreed parameters and the
/// `Sec-WebSocket-Extensions` response element. Invalid offers are declined, not fatal.
///
/// ```
/// use ferrosocket_proto::fuzzing::negotiate_server;
/// use ferrosocket_proto::{parse_extensions, DeflateConfig};
/// let offers = parse_extensions(["permessage-deflate; foo, permessage-deflate; server_max_window_bits=10"]).unwrap();
/// let (params, header) = negotiate_server(&offers, &DeflateConfig::default()).unwrap();
/// assert_eq!(params.server_max_window_bits, 10);
/// assert_eq!(header, "permessage-deflate; server_max_window_bits=10");
/// ```
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))] // re-exported by `fuzzing`
pub fn negotiate_server(offers: &[ExtensionOffer], cfg: &DeflateConfig) -> Option<(DeflateParams, String)> {
    for offer in offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(EXTENSION_NAME))
    {
        let Ok(p) = parse_params(offer) else { continue };
        let server_nct = p.server_no_context_takeover || cfg.server_no_context_takeover;
        let client_nct = p.client_no_context_takeover || cfg.client_no_context_takeover;
        let server_bits = p
            .server_max_window_bits
            .unwrap_or(15)
            .min(cfg.server_max_window_bits);
        // §7.1.2.2: only if the client sent client_max_window_bits may the response carry it.
        let client_bits = match p.client_max_window_bits {
            Some(offered) => offered.unwrap_or(15).min(cfg.client_max_window_bits),
            None if cfg.client_max_window_bits < 15 => continue, // we need a limit the client can't take
            None => 15,
        };
        let mut header = String::from(EXTENSION_NAME);
        if server_nct {
            header.push_str("; server_no_context_takeover");
        }
        if client_nct {
            header.push_str("; client_no_context_takeover");
        }
        if p.server_max_window_bits.is_some() || server_bits < 15 {
            header.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if matches!(p.client_max_window_bits, Some(Some(_))) || client_bits < 15 {
            header.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        let params = DeflateParams {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        return Some((params, header));
    }
    None
}

/// Client side: the offer to send in `Sec-WebSocket-Extensions`.
///
/// ```
/// use ferrosocket_proto::fuzzing::client_offer;
/// use ferrosocket_proto::DeflateConfig;
/// assert_eq!(client_offer(&DeflateConfig::default()), "permessage-deflate; client_max_window_bits");
/// ```
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))] // re-exported by `fuzzing`
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let mut s = String::from(EXTENSION_NAME);
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if cfg.server_max_window_bits < 15 {
        s.push_str(&format!(
            "; server_max_window_bits={}",
            cfg.server_max_window_bits
        ));
    }
    if cfg.client_max_window_bits < 15 {
        s.push_str(&format!(
            "; client_max_window_bits={}",
            cfg.client_max_window_bits
        ));
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Client side: checks the server's response against what `cfg` offered (RFC 7692 §7.1).
/// `response` is the full `Sec-WebSocket-Extensions` value(s) of the 101 response. Returns
/// `Ok(None)` when the server declined compression.
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))] // re-exported by `fuzzing`
pub fn negotiate_client<'a>(
    response: impl IntoIterator<Item = &'a str>,
    cfg: &DeflateConfig,
) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
    let elements = parse_extensions(response).map_err(|e| DeflateNegotiationError(e.0))?;
    let mut found = None;
    for e in &elements {
        if !e.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(DeflateNegotiationError(format!(
                "server accepted unoffered extension {}",
                e.name
            )));
        }
        if found.is_some() {
            return Err(DeflateNegotiationError(
                "server accepted permessage-deflate twice".into(),
            ));
        }
        found = Some(e);
    }
    let Some(e) = found else { return Ok(None) };
    let p = parse_params(e)?;
    if cfg.server_no_context_takeover && !p.server_no_context_takeover {
        return Err(DeflateNegotiationError(
            "server ignored server_no_context_takeover".into(),
        ));
    }
    let server_bits = p.server_max_window_bits.unwrap_or(15);
    if cfg.server_max_window_bits < 15 && server_bits > cfg.server_max_window_bits {
        return Err(DeflateNegotiationError(
            "server_max_window_bits above the offer".into(),
        ));
    }
    let client_bits = match p.client_max_window_bits {
        None => cfg.client_max_window_bits,
        Some(None) => {
            return Err(DeflateNegotiationError(
                "client_max_window_bits needs a value".into(),
            ));
        }
        Some(Some(b)) if b > cfg.client_max_window_bits => {
            return Err(DeflateNegotiationError(
                "client_max_window_bits above the offer".into(),
            ));
        }
        Some(Some(b)) => b,
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover || cfg.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }))
}

/// Settings under which a compressed message is the same bytes on every connection: the
/// sender carries no context between messages, so the output depends only on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedCompression {
    /// The sender's window bits.
    pub window_bits: u8,
    /// The zlib level.
    pub level: u32,
    /// Messages below this size are not compressed.
    pub threshold: usize,
}

impl SharedCompression {
    /// Compresses a whole message as a connection with these settings would (without the
    /// RFC 7692 tail), or `None` if it stays uncompressed (below the threshold).
    pub fn compress(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < self.threshold {
            return None;
        }
        let params = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: self.window_bits,
            client_max_window_bits: self.window_bits,
        };
        let cfg = DeflateConfig::default().level(self.level).low_memory(true);
        let mut out = Vec::with_capacity(payload.len() / 2 + 16);
        DeflateCodec::new(&params, &cfg, true)
            .compress(payload, true, &mut out)
            .ok()?;
        Some(out)
    }
}

/// How much of what we sent a codec keeps (with context takeover) to seed a new compressor
/// after an idle shed: 4 KiB, so that an idle connection holds the inflater (its state and
/// the peer's 32 KiB window, 47 KiB in zlib-rs), this, and little else: under 64 KiB in all.
/// Only the first message after a shed is affected, and matches further back than 4 KiB add
/// little to messages of a few KiB (JSON repeats its keys within a record or two).
pub(crate) const HISTORY: usize = 4 << 10;

/// The tail a sync flush leaves, removed from each compressed message (RFC 7692 §7.2.1).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The per-connection codec: compresses what we send, inflates what we receive.
pub(crate) struct DeflateCodec {
    level: u32,
    pub(crate) threshold: usize,
    low_memory: bool,
    send_window: u8,
    send_reset: bool,
    recv_reset: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// With context takeover on what we send: the last [`HISTORY`] bytes we compressed, the
    /// dictionary a new compressor starts from after [`shed_idle`](Self::shed_idle) (or,
    /// with `low_memory`, after every message). Empty without context takeover.
    history: Vec<u8>,
    /// Where the next byte of `history` goes once it is full (a ring: no shifting per
    /// message; it is made contiguous only when a compressor is built from it).
    history_at: usize,
    /// A message of ours is half sent (its last fragment not yet compressed).
    sending: bool,
    /// Tests: make the next `compress` fail, as a zlib fault would.
    #[cfg(test)]
    pub(crate) fail_next_compress: bool,
}

impl std::fmt::Debug for DeflateCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateCodec")
            .field("send_window", &self.send_window)
            .field("send_reset", &self.send_reset)
            .field("recv_reset", &self.recv_reset)
            .finish_non_exhaustive()
    }
}

impl DeflateCodec {
    pub(crate) fn new(params: &DeflateParams, cfg: &DeflateConfig, is_server: bool) -> Self {
        let (send_window, send_reset, recv_reset) = if is_server {
            (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            )
        } else {
            (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            )
        };
        Self {
            level: cfg.level,
            threshold: cfg.threshold,
            low_memory: cfg.low_memory,
            send_window,
            send_reset,
            recv_reset,
            compressor: None,
            decompressor: None,
            history: Vec::new(),
            history_at: 0,
            sending: false,
            #[cfg(test)]
            fail_next_compress: false,
        }
    }

    /// Frees what an idle connection need not hold: the compressor (about 370 KiB of zlib
    /// state at 15 window bits), keeping only the last [`HISTORY`] bytes sent as the next
    /// compressor's dictionary, and the inflater when the peer takes no context over. The
    /// inflater of a peer that does take context over stays: its 32 KiB window is the peer's
    /// to refer to. A no-op in the middle of a message. The next message pays for a new
    /// compressor and its dictionary (about the cost of compressing `HISTORY` bytes).
    /// Called by `Connection::shed_idle_memory` (the keepalive ping, or the application).
    pub(crate) fn shed_idle(&mut self) {
        if !self.sending {
            self.compressor = None;
        }
        if self.recv_reset {
            // Between messages a reset inflater holds only its allocation: drop it too (a
            // half-received message would need it, but then the peer is not idle and the
            // inflater is reset on its last frame only; keep it while `total_in` says so).
            if self.decompressor.as_ref().is_some_and(|d| d.total_in() == 0) {
                self.decompressor = None;
            }
        }
    }

    /// Tests: whether a compressor and an inflater are allocated now.
    #[cfg(test)]
    pub(crate) fn holds(&self) -> (bool, bool) {
        (self.compressor.is_some(), self.decompressor.is_some())
    }

    /// Remembers the tail of what we compressed, for the dictionary after a shed.
    fn remember(&mut self, input: &[u8]) {
        let keep = HISTORY.min(1 << self.send_window.max(9));
        let input = &input[input.len().saturating_sub(keep)..];
        if self.history.len() < keep {
            // Filling up: append what fits, then wrap the rest.
            if self.history.capacity() == 0 {
                self.history.reserve_exact(keep);
            }
            let fits = input.len().min(keep - self.history.len());
            self.history.extend_from_slice(&input[..fits]);
            self.history_at = 0;
            self.wrap_in(&input[fits..]);
        } else {
            self.wrap_in(input);
        }
    }

    /// Writes `input` (at most the ring's length) into the full ring at `history_at`.
    fn wrap_in(&mut self, input: &[u8]) {
        let len = self.history.len();
        let mut rest = input;
        while !rest.is_empty() && len > 0 {
            let at = self.history_at % len;
            let n = rest.len().min(len - at);
            self.history[at..at + n].copy_from_slice(&rest[..n]);
            self.history_at = (at + n) % len;
            rest = &rest[n..];
        }
    }

    /// The history in order, oldest byte first.
    fn history(&mut self) -> &[u8] {
        if self.history_at != 0 {
            self.history.rotate_left(self.history_at);
            self.history_at = 0;
        }
        &self.history
    }

    /// Changes the zlib level of what we send from the next fragment on (clamped to 0-9). The
    /// compressor restarts: its output then no longer refers back to earlier messages, which
    /// is always valid deflate for the peer (back-references are optional), so context
    /// takeover needs no care here.
    pub(crate) fn set_level(&mut self, level: u32) {
        let level = level.min(9);
        if level != self.level {
            self.level = level;
            self.compressor = None;
        }
    }

    /// Whether a compressed frame from this codec can be shared with other connections
    /// (no context carried between messages), and with which settings.
    pub(crate) fn shareable(&self) -> Option<SharedCompression> {
        self.send_reset.then_some(SharedCompression {
            window_bits: self.send_window,
            level: self.level,
            threshold: self.threshold,
        })
    }

    /// Compresses one fragment (`fin`: the message's last) and appends it to `out`.
    pub(crate) fn compress(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_compress) {
            return Err(ProtocolError::Inflate("deflate failed: injected fault".into()));
        }
        // zlib cannot compress with an 8-bit raw window: store instead (level 0 emits no
        // back-references, so any window decodes it).
        let (level, window) = if self.send_window == 8 {
            (0, 9)
        } else {
            (self.level, self.send_window)
        };
        if self.compressor.is_none() {
            let mut c = Compress::new_with_window_bits(Compression::new(level), false, window);
            if !self.history.is_empty() && level > 0 {
                // Context takeover after a shed: the peer still holds everything we sent, so
                // back-references into our history stay valid.
                c.set_dictionary(self.history())
                    .map_err(|e| ProtocolError::Inflate(format!("deflate failed: {e}")))?;
            }
            self.compressor = Some(c);
        }
        if !self.send_reset && self.send_window > 8 {
            self.remember(input);
        }
        self.sending = !fin;
        let Some(c) = self.compressor.as_mut() else {
            return Err(ProtocolError::Inflate("deflate failed: no compressor".into()));
        };
        let start_in = c.total_in();
        let start_len = out.len();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve((input.len() / 2).max(1024));
            }
            let consumed = (c.total_in() - start_in) as usize;
            c.compress_vec(
                input.get(consumed..).unwrap_or_default(),
                out,
                FlushCompress::Sync,
            )
            .map_err(|e| ProtocolError::Inflate(format!("deflate failed: {e}")))?;
            let consumed = (c.total_in() - start_in) as usize;
            // With input all taken and room left over, the sync flush is complete.
            if consumed >= input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if fin {
            if out.len() == start_len {
                // zlib emits nothing for a flush right after a flush (an empty last fragment,
                // an empty message after another). Send the header of an empty stored block,
                // which the receiver's tail completes (RFC 7692 §7.2.3.6): an empty payload
                // would leave the peer's inflater mid-block.
                out.push(0x00);
            } else if out.ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            }
            if self.low_memory {
                // Without context takeover nothing is kept; with it, the history is.
                self.compressor = None;
            } else if self.send_reset
                && let Some(c) = &mut self.compressor
            {
                c.reset();
            }
        }
        Ok(())
    }

    /// Inflates one frame's payload of a compressed message into `out` (`fin`: the message's
    /// last frame, after which the RFC 7692 tail is fed). Fails with 1009 as soon as `out`
    /// passes `limit`: memory stays within the limit plus one growth step (at most 1 MiB),
    /// however far the data would inflate.
    pub(crate) fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        limit: Option<usize>,
    ) -> Result<(), ProtocolError> {
        let limit = limit.unwrap_or(usize::MAX);
        let d = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        inflate_into(d, input, out, limit)?;
        if fin {
            inflate_into(d, &TAIL, out, limit)?;
            if self.recv_reset {
                if self.low_memory {
                    self.decompressor = None;
                } else {
                    d.reset(false);
                }
            }
        }
        Ok(())
    }
}

impl DeflateCodec {
    /// Inflates part of a compressed message's payload (or of the RFC 7692 tail, which the
    /// caller feeds after the last frame) into `out`, stopping as soon as `out` holds
    /// `max_len` bytes; returns how many bytes of `input` were consumed. Unlike
    /// [`decompress`](Self::decompress) it may leave input unconsumed: call it again with the
    /// rest (or with no input, to drain what the inflater still holds) once `out` is taken.
    ///
    /// When it returns with `out` shorter than `max_len`, the inflater wanted more input than
    /// it got: it holds no pending output. `out` never grows past `max_len` bytes of
    /// capacity beyond what it held, so a tiny input that inflates hugely costs at most
    /// `max_len` bytes per call.
    pub(crate) fn inflate_some(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<usize, ProtocolError> {
        let d = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        let mut now = 0usize;
        loop {
            let room = max_len.saturating_sub(out.len());
            if room == 0 {
                return Ok(now);
            }
            let rest = input.get(now..).unwrap_or_default();
            if out.capacity() == out.len() {
                let step = rest.len().saturating_mul(4).max(out.len()).clamp(4096, 1 << 20);
                out.reserve_exact(step.min(room));
            }
            let before = out.len();
            let in_before = d.total_in();
            let status = if out.capacity() - out.len() <= room {
                d.decompress_vec(rest, out, FlushDecompress::Sync)
            } else {
                // `out` came with more spare room than we may fill: go through a bounded
                // scratch buffer so zlib cannot write past `max_len`.
                let mut scratch = [0u8; 4096];
                let take = room.min(scratch.len());
                let out_before = d.total_out();
                let status = d.decompress(rest, &mut scratch[..take], FlushDecompress::Sync);
                let made = usize::try_from(d.total_out() - out_before)
                    .unwrap_or(take)
                    .min(take);
                out.extend_from_slice(&scratch[..made]);
                status
            }
            .map_err(|e| ProtocolError::Inflate(e.to_string()))?;
            let used = usize::try_from(d.total_in() - in_before).unwrap_or(rest.len());
            now = now.saturating_add(used).min(input.len());
            if status == Status::StreamEnd {
                // The peer ended the deflate stream (BFINAL); what follows starts a new one.
                d.reset(false);
                if now >= input.len() {
                    return Ok(now);
                }
                continue;
            }
            let spare = out.len() < out.capacity() && out.len() < max_len;
            let stuck = used == 0 && out.len() == before;
            if spare && (now >= input.len() || stuck) {
                return Ok(now);
            }
        }
    }

    /// Ends a received message inflated with [`inflate_some`](Self::inflate_some): resets
    /// (or, with `low_memory`, frees) the inflater when the peer does not take over context.
    pub(crate) fn end_received_message(&mut self) {
        if self.recv_reset {
            if self.low_memory {
                self.decompressor = None;
            } else if let Some(d) = &mut self.decompressor {
                d.reset(false);
            }
        }
    }
}

fn inflate_into(
    d: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), ProtocolError> {
    // Bytes of `input` consumed so far, counted per call: `d.reset` (after a BFINAL block)
    // sets `total_in` back to zero.
    let mut now = 0usize;
    loop {
        let consumed = now;
        if out.capacity() - out.len() < 1024 {
            let room = limit.saturating_add(1).saturating_sub(out.len()).max(1);
            // Exact, geometric up to 1 MiB steps: `reserve` could double a large buffer far
            // past the limit.
            let step = input.len().saturating_mul(4).max(out.len());
            out.reserve_exact(step.clamp(4096, 1 << 20).min(room));
        }
        let before = out.len();
        let in_before = d.total_in();
        let status = d
            .decompress_vec(
                input.get(consumed..).unwrap_or_default(),
                out,
                FlushDecompress::Sync,
            )
            .map_err(|e| ProtocolError::Inflate(e.to_string()))?;
        if out.len() > limit {
            return Err(ProtocolError::MessageTooLarge {
                size: out.len() as u64,
                limit,
            });
        }
        now += (d.total_in() - in_before) as usize;
        if status == Status::StreamEnd {
            // The peer ended the deflate stream (BFINAL); what follows starts a new one.
            d.reset(false);
            if now >= input.len() {
                return Ok(());
            }
            continue;
        }
        let room_left = out.len() < out.capacity();
        if now >= input.len() && room_left {
            return Ok(());
        }
        if now == consumed && out.len() == before && room_left {
            // No progress with room to spare: zlib wants input we do not have.
            return Ok(());
        }
    }
}

#[cfg(test)]
#[path = "deflate_tests.rs"]
mod tests;
