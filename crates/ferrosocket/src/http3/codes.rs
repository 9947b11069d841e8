//! HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6) and the codec's error.

/// H3_NO_ERROR: graceful close.
pub(crate) const H3_NO_ERROR: u64 = 0x100;
/// H3_GENERAL_PROTOCOL_ERROR.
pub(crate) const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
/// H3_INTERNAL_ERROR.
#[allow(dead_code)]
pub(crate) const H3_INTERNAL_ERROR: u64 = 0x102;
/// H3_STREAM_CREATION_ERROR: a stream of a type that may not be opened.
pub(crate) const H3_STREAM_CREATION_ERROR: u64 = 0x103;
/// H3_CLOSED_CRITICAL_STREAM: a control stream ended.
pub(crate) const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
/// H3_FRAME_UNEXPECTED: a frame not allowed where it arrived.
pub(crate) const H3_FRAME_UNEXPECTED: u64 = 0x105;
/// H3_FRAME_ERROR: a malformed frame.
pub(crate) const H3_FRAME_ERROR: u64 = 0x106;
/// H3_EXCESSIVE_LOAD: more than we accept (a frame or header section over our limit).
pub(crate) const H3_EXCESSIVE_LOAD: u64 = 0x107;
/// H3_SETTINGS_ERROR.
pub(crate) const H3_SETTINGS_ERROR: u64 = 0x109;
/// H3_MISSING_SETTINGS: the control stream did not start with SETTINGS.
pub(crate) const H3_MISSING_SETTINGS: u64 = 0x10a;
/// H3_REQUEST_REJECTED: the request was not processed and may be retried (after a GOAWAY).
pub(crate) const H3_REQUEST_REJECTED: u64 = 0x10b;
/// H3_REQUEST_CANCELLED: a stream reset by its application.
pub(crate) const H3_REQUEST_CANCELLED: u64 = 0x10c;
/// H3_MESSAGE_ERROR: a malformed request or response.
pub(crate) const H3_MESSAGE_ERROR: u64 = 0x10e;
/// QPACK_DECOMPRESSION_FAILED.
pub(crate) const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;

/// A violation found while decoding: the HTTP/3 error code to close the connection (or
/// reset the stream) with, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodecError {
    pub(crate) code: u64,
    pub(crate) reason: String,
}

impl CodecError {
    pub(crate) fn new(code: u64, reason: String) -> Self {
        CodecError { code, reason }
    }
}
