//! A minimal HTTP/1.1 WebSocket upgrade for `raw-hold`: read the request head, check it is a
//! version 13 upgrade with a key, answer 101 with the `Sec-WebSocket-Accept` RFC 6455 4.2.2
//! defines (base64 of the SHA-1 of the key and the GUID). No extension or subprotocol is
//! negotiated.

use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The GUID of RFC 6455 section 1.3.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest request head read.
const MAX_HEAD: usize = 8 << 10;

/// `Sec-WebSocket-Accept` for `key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    data_encoding::BASE64.encode(&sha.finalize())
}

/// What a request head says: the 101 to send, or why it is refused.
pub fn response_to(head: &[u8]) -> Result<String, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request"),
        Err(_) => return Err("malformed request"),
    }
    if req.method != Some("GET") {
        return Err("not a GET");
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err("not a WebSocket upgrade");
    }
    if header("sec-websocket-version") != Some(b"13") {
        return Err("not WebSocket version 13");
    }
    let key = header("sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.trim_ascii())
    ))
}

/// The length of the request head at the start of `buf` (through its blank line), if it is all
/// there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads the rest of the request head from `stream` after the bytes already in `buf`, and
/// answers it: 101 and `Ok(rest)` (the bytes read past the head), or 400 and an error. The
/// buffer lives only for the handshake.
pub async fn accept(stream: &mut TcpStream, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    buf.reserve(1024);
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    };
    let rest = buf.split_off(end);
    answer(stream, response_to(&buf)).await?;
    Ok(rest)
}

/// Writes the 101 of `response`, or a 400 and returns the refusal as an error.
pub async fn answer(stream: &mut TcpStream, response: Result<String, &'static str>) -> std::io::Result<()> {
    match response {
        Ok(response) => stream.write_all(response.as_bytes()).await,
        Err(why) => {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            Err(std::io::Error::other(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_sample_key() {
        // RFC 6455 section 1.3's example.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn answers_an_upgrade_and_refuses_the_rest() {
        let ok = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let r = response_to(ok).unwrap();
        assert!(r.starts_with("HTTP/1.1 101 "));
        assert!(r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        let no_key = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(response_to(no_key), Err("no Sec-WebSocket-Key"));
        let post = b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(response_to(post), Err("not a GET"));
        let v8 = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 8\r\n\r\n";
        assert_eq!(response_to(v8), Err("not WebSocket version 13"));
    }
}
