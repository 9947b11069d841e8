//! Streamed reception ([`ReadMode::Streamed`]): chunks, limits, UTF-8 and permessage-deflate,
//! asserted on wire bytes and events.
