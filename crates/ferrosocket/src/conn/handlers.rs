//! The application's ping, pong and close handlers, shared by [`Conn`](crate::Conn) and the
//! split [`ReadHalf`](crate::ReadHalf).

use crate::error::CloseError;
use ferrosocket_proto::{CloseFrame, Connection, Event, close_reply};

/// What to do with a ping (the return value of a [ping handler](crate::Conn::set_ping_handler)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PingAction {
    /// Answer with a pong carrying the ping's payload (the default).
    #[default]
    Pong,
    /// Send nothing.
    Ignore,
}

/// How to answer the peer's close frame (the return value of a
/// [close handler](crate::Conn::set_close_handler)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CloseAction {
    /// Reply with the peer's code (the default; RFC 6455 §5.5.1).
    #[default]
    Echo,
    /// Reply with this frame instead.
    Reply(CloseFrame),
}

pub(crate) type PingHandler = Box<dyn FnMut(&[u8]) -> PingAction + Send>;
pub(crate) type PongHandler = Box<dyn FnMut(&[u8]) + Send>;
pub(crate) type CloseHandler = Box<dyn FnMut(Option<&CloseFrame>) -> CloseAction + Send>;

/// The application's ping, pong and close handlers, and how their answers reach the core.
/// Shared by [`Conn`] and the split [`ReadHalf`](crate::ReadHalf). Boxed together: most
/// connections set none, and every connection carries this.
#[derive(Default)]
pub(crate) struct Handlers(Option<Box<Set>>);

#[derive(Default)]
struct Set {
    ping: Option<PingHandler>,
    pong: Option<PongHandler>,
    close: Option<CloseHandler>,
}

impl Handlers {
    pub(crate) fn set_ping(&mut self, core: &mut Connection, handler: PingHandler) {
        core.set_auto_pong(false);
        self.set().ping = Some(handler);
    }

    /// Back to the defaults: the core answers pings and echoes the peer's close code.
    pub(crate) fn reset(&mut self, core: &mut Connection) {
        *self = Self::default();
        core.set_auto_pong(true);
        core.set_auto_close_reply(true);
    }

    pub(crate) fn set_pong(&mut self, handler: PongHandler) {
        self.set().pong = Some(handler);
    }

    pub(crate) fn set_close(&mut self, core: &mut Connection, handler: CloseHandler) {
        core.set_auto_close_reply(false);
        self.set().close = Some(handler);
    }

    fn set(&mut self) -> &mut Set {
        self.0.get_or_insert_default()
    }

    /// Runs the handler for a control event (the core answered it already when no handler
    /// is set). Returns the close to report, for [`Event::Close`].
    pub(crate) fn on_control(&mut self, core: &mut Connection, event: Event) -> Option<CloseError> {
        let Some(set) = self.0.as_deref_mut() else {
            return match event {
                Event::Close(frame) => Some(CloseError::from_frame(frame.as_ref())),
                _ => None,
            };
        };
        match event {
            Event::Ping(p) => {
                if let Some(h) = &mut set.ping
                    && h(&p) == PingAction::Pong
                {
                    // Fails only when closing, when no pong is owed, or when no mask key could
                    // be drawn (the connection ended; the next read says so).
                    let _ = core.send_pong(&p);
                }
                None
            }
            Event::Pong(p) => {
                if let Some(h) = &mut set.pong {
                    h(&p);
                }
                None
            }
            Event::Close(frame) => {
                if let Some(h) = &mut set.close {
                    let reply = match h(frame.as_ref()) {
                        CloseAction::Echo => close_reply(frame.as_ref()),
                        CloseAction::Reply(f) => Some(f),
                    };
                    // Fails only if a close was already sent (nothing more is owed) or no mask
                    // key could be drawn (the connection ended; the next read says so).
                    let _ = core.send_close(reply);
                }
                Some(CloseError::from_frame(frame.as_ref()))
            }
            Event::Message(_) | Event::Chunk(_) => None,
        }
    }
}
