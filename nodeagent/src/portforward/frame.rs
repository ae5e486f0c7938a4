//! SPDY/3.1 framing, the part of it `kubectl port-forward` uses: the 8-byte frame header,
//! data frames, and the control frames a client sends or a server answers with (SYN_STREAM,
//! SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE). Header blocks are
//! carried compressed; [`super::headers`] reads and writes them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::PortForwardError;

/// The only protocol version spoken.
pub const VERSION: u16 = 3;
/// Flag of a data frame or SYN_STREAM/SYN_REPLY: the sender sends nothing more on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// The largest payload a frame can carry (24-bit length).
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;

/// RST_STREAM statuses.
pub mod rst {
    /// The stream broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not open.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream is refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
}

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// One frame as read or to be written; header blocks still compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes on a stream.
    Data {
        /// The stream.
        stream: u32,
        /// FIN: the last frame the sender sends on it.
        fin: bool,
        /// The bytes.
        data: Bytes,
    },
    /// A peer opens a stream.
    SynStream {
        /// The new stream.
        stream: u32,
        /// FIN (the opener sends nothing) and UNIDIRECTIONAL flags.
        flags: u8,
        /// The compressed header block.
        block: Bytes,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        /// The stream answered.
        stream: u32,
        /// FIN: the answerer sends nothing on it.
        fin: bool,
        /// The compressed header block.
        block: Bytes,
    },
    /// A stream ends abnormally.
    RstStream {
        /// The stream.
        stream: u32,
        /// Why ([`rst`]).
        status: u32,
    },
    /// Connection settings (nothing in them matters to a port-forward server).
    Settings,
    /// A round trip: the receiver of a peer's ping sends it back.
    Ping {
        /// Its id.
        id: u32,
    },
    /// The sender opens no more streams.
    GoAway {
        /// The last stream it took.
        last_stream: u32,
        /// Why.
        status: u32,
    },
    /// More headers for an open stream.
    Headers {
        /// The stream.
        stream: u32,
        /// The compressed header block.
        block: Bytes,
    },
    /// Flow control; ignored (like the Go peers, which neither send nor obey it).
    WindowUpdate,
    /// A control frame of a type this side does not know (to be ignored).
    Unknown {
        /// The frame type.
        kind: u16,
    },
}

fn id31(payload: &mut Bytes) -> Result<u32, PortForwardError> {
    if payload.remaining() < 4 {
        return Err(PortForwardError::Protocol("a frame is too short".into()));
    }
    Ok(payload.get_u32() & 0x7fff_ffff)
}

impl Frame {
    /// Reads the next frame; `Ok(None)` at a clean end of the connection between frames.
    pub async fn read<R: AsyncRead + Unpin>(
        from: &mut R,
    ) -> Result<Option<Frame>, PortForwardError> {
        let mut head = [0u8; 8];
        match from.read_exact(&mut head[..1]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(PortForwardError::Io(e)),
        }
        from.read_exact(&mut head[1..]).await?;
        let length =
            (usize::from(head[5]) << 16) | (usize::from(head[6]) << 8) | usize::from(head[7]);
        let flags = head[4];
        let mut payload = BytesMut::zeroed(length);
        from.read_exact(&mut payload).await?;
        let mut payload = payload.freeze();
        if head[0] & 0x80 == 0 {
            let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(PortForwardError::Protocol(format!(
                "SPDY version {version} is not spoken (only {VERSION})"
            )));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let frame = match kind {
            SYN_STREAM => {
                let stream = id31(&mut payload)?;
                // Associated stream, priority and slot: nothing a port-forward uses.
                if payload.remaining() < 6 {
                    return Err(PortForwardError::Protocol(
                        "a SYN_STREAM is too short".into(),
                    ));
                }
                payload.advance(6);
                Frame::SynStream {
                    stream,
                    flags,
                    block: payload,
                }
            }
            SYN_REPLY => Frame::SynReply {
                stream: id31(&mut payload)?,
                fin: flags & FLAG_FIN != 0,
                block: payload,
            },
            RST_STREAM => {
                let stream = id31(&mut payload)?;
                let status = if payload.remaining() >= 4 {
                    payload.get_u32()
                } else {
                    0
                };
                Frame::RstStream { stream, status }
            }
            SETTINGS => Frame::Settings,
            PING => {
                if payload.remaining() < 4 {
                    return Err(PortForwardError::Protocol("a PING is too short".into()));
                }
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            GOAWAY => {
                let last_stream = id31(&mut payload)?;
                let status = if payload.remaining() >= 4 {
                    payload.get_u32()
                } else {
                    0
                };
                Frame::GoAway {
                    last_stream,
                    status,
                }
            }
            HEADERS => Frame::Headers {
                stream: id31(&mut payload)?,
                block: payload,
            },
            WINDOW_UPDATE => Frame::WindowUpdate,
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Frame::Data { stream, fin, data } => {
                out.put_u32(stream & 0x7fff_ffff);
                put_flags_length(&mut out, if *fin { FLAG_FIN } else { 0 }, data.len());
                out.put_slice(data);
            }
            Frame::SynStream {
                stream,
                flags,
                block,
            } => {
                control(&mut out, SYN_STREAM, *flags, 10 + block.len());
                out.put_u32(*stream);
                out.put_u32(0);
                out.put_u16(0);
                out.put_slice(block);
            }
            Frame::SynReply { stream, fin, block } => {
                control(
                    &mut out,
                    SYN_REPLY,
                    if *fin { FLAG_FIN } else { 0 },
                    4 + block.len(),
                );
                out.put_u32(*stream);
                out.put_slice(block);
            }
            Frame::RstStream { stream, status } => {
                control(&mut out, RST_STREAM, 0, 8);
                out.put_u32(*stream);
                out.put_u32(*status);
            }
            Frame::Settings => {
                control(&mut out, SETTINGS, 0, 4);
                out.put_u32(0);
            }
            Frame::Ping { id } => {
                control(&mut out, PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_stream,
                status,
            } => {
                control(&mut out, GOAWAY, 0, 8);
                out.put_u32(*last_stream);
                out.put_u32(*status);
            }
            Frame::Headers { stream, block } => {
                control(&mut out, HEADERS, 0, 4 + block.len());
                out.put_u32(*stream);
                out.put_slice(block);
            }
            Frame::WindowUpdate => {
                control(&mut out, WINDOW_UPDATE, 0, 8);
                out.put_u32(0);
                out.put_u32(0);
            }
            Frame::Unknown { kind } => control(&mut out, *kind, 0, 0),
        }
        out.freeze()
    }
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, length: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    put_flags_length(out, flags, length);
}

fn put_flags_length(out: &mut BytesMut, flags: u8, length: usize) {
    let length = length.min(MAX_PAYLOAD) as u32;
    out.put_u32((u32::from(flags) << 24) | length);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(frame: Frame) -> Frame {
        let bytes = frame.encode();
        let mut reader = &bytes[..];
        let read = Frame::read(&mut reader)
            .await
            .expect("reads")
            .expect("a frame");
        assert!(reader.is_empty(), "the whole frame is read");
        read
    }

    #[tokio::test]
    async fn frames_survive_a_round_trip() {
        let frames = [
            Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::SynStream {
                stream: 5,
                flags: FLAG_FIN,
                block: Bytes::from_static(b"\x78\x01"),
            },
            Frame::SynReply {
                stream: 5,
                fin: false,
                block: Bytes::from_static(b"abc"),
            },
            Frame::RstStream {
                stream: 7,
                status: rst::CANCEL,
            },
            Frame::Ping { id: 9 },
            Frame::GoAway {
                last_stream: 11,
                status: 0,
            },
            Frame::Headers {
                stream: 1,
                block: Bytes::new(),
            },
        ];
        for frame in frames {
            assert_eq!(round_trip(frame.clone()).await, frame);
        }
    }

    #[tokio::test]
    async fn the_wire_layout_is_spdy3() {
        let bytes = Frame::Ping { id: 1 }.encode();
        assert_eq!(
            &bytes[..],
            &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        let bytes = Frame::Data {
            stream: 1,
            fin: true,
            data: Bytes::from_static(b"x"),
        }
        .encode();
        assert_eq!(&bytes[..], &[0, 0, 0, 1, 1, 0, 0, 1, b'x']);
    }

    #[tokio::test]
    async fn other_versions_and_short_frames_are_refused() {
        let mut v2: &[u8] = &[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1];
        assert!(matches!(
            Frame::read(&mut v2).await,
            Err(PortForwardError::Protocol(m)) if m.contains("version 2")
        ));
        let mut short: &[u8] = &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 2, 0, 0];
        assert!(Frame::read(&mut short).await.is_err());
        let mut cut: &[u8] = &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0];
        assert!(
            Frame::read(&mut cut).await.is_err(),
            "a frame cut short is an error"
        );
        let mut empty: &[u8] = &[];
        assert!(matches!(Frame::read(&mut empty).await, Ok(None)));
    }
}
