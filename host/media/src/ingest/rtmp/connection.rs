//! One RTMP connection's protocol state, without I/O: bytes in, events and
//! bytes to send out. The caller decides whether a publish is accepted.

use super::RtmpError;
use super::amf0::{self, Value, object, string};
use super::chunk::{AckWindow, ChunkDecoder, Limits, Message, encode_message};

pub use super::chunk::MAX_MESSAGE;
/// Chunk size we send with.
const OUT_CHUNK_SIZE: usize = 4096;
/// Window acknowledgement size we ask of the peer.
const WINDOW: u32 = 2_500_000;

/// Something the caller must act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The peer connected to an application.
    Connected {
        /// connect's `app`.
        app: String,
        /// connect's `tcUrl`.
        tc_url: Option<String>,
    },
    /// The peer wants to publish; answer with [`Connection::accept`] or
    /// [`Connection::reject`].
    Publish(PublishRequest),
    /// A video message (an FLV video tag body).
    Video {
        /// Message timestamp, ms.
        timestamp: u32,
        /// The tag body.
        data: Vec<u8>,
    },
    /// An audio message (an FLV audio tag body), counted, not kept.
    Audio {
        /// Message timestamp, ms.
        timestamp: u32,
        /// The FLV sound format (10 AAC, 2 MP3, …).
        format: u8,
        /// Its size.
        bytes: usize,
    },
    /// The peer stopped publishing (FCUnpublish / deleteStream / closeStream).
    Unpublished,
}

/// A publish call.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishRequest {
    /// Message stream it came on.
    pub stream_id: u32,
    /// The publish name, parameters included.
    pub name: String,
    /// connect's `app`.
    pub app: String,
    /// connect's `tcUrl`.
    pub tc_url: Option<String>,
}

/// Protocol state of one connection after the handshake.
#[derive(Debug)]
pub struct Connection {
    decoder: ChunkDecoder,
    out: Vec<u8>,
    app: Option<String>,
    tc_url: Option<String>,
    next_stream_id: u32,
    publishing: Option<u32>,
    acks: AckWindow,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A connection whose handshake is done, with the default limits and
    /// no budget shared with other connections.
    pub fn new() -> Self {
        Self::with_limits(Limits::publisher(None))
    }

    /// A connection held to `limits`; until a publish is accepted every
    /// message must be small (see [`super::chunk::MAX_SMALL_MESSAGE`]).
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            decoder: ChunkDecoder::with_limits(limits),
            out: Vec::new(),
            app: None,
            tc_url: None,
            next_stream_id: 1,
            publishing: None,
            acks: AckWindow::default(),
        }
    }

    /// Consumes whole chunks from `data`; returns the bytes consumed and the
    /// events they raised. It stops after a publish request: what follows it
    /// (a publisher need not wait for the answer) is read once the caller
    /// has accepted or rejected it, so its first media is not lost; call
    /// again with the rest.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Vec<Event>), RtmpError> {
        let mut pos = 0;
        let mut events = Vec::new();
        while let Some((n, message)) = self.decoder.read_chunk(&data[pos..])? {
            pos += n;
            if let Some(m) = message {
                self.on_message(m, &mut events)?;
                if matches!(events.last(), Some(Event::Publish(_))) {
                    break;
                }
            }
        }
        if let Some(seq) = self.acks.received(pos) {
            self.send(2, 3, 0, 0, seq.to_be_bytes().to_vec());
        }
        Ok((pos, events))
    }

    /// Bytes to send to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether a publish has been accepted.
    pub fn is_publishing(&self) -> bool {
        self.publishing.is_some()
    }

    /// Accepts a publish: the peer may start sending media.
    pub fn accept(&mut self, request: &PublishRequest) {
        self.publishing = Some(request.stream_id);
        self.decoder.allow_media();
        // User control Stream Begin, then NetStream.Publish.Start.
        let mut begin = vec![0, 0];
        begin.extend_from_slice(&request.stream_id.to_be_bytes());
        self.send(2, 4, 0, 0, begin);
        let info = object(&[
            ("level", string("status")),
            ("code", string("NetStream.Publish.Start")),
            ("description", string(&format!("{} is now published.", request.name))),
            ("details", string(&request.name)),
        ]);
        self.command(5, request.stream_id, &[string("onStatus"), Value::Number(0.0), Value::Null, info]);
    }

    /// Refuses a publish; the caller closes the connection after sending.
    pub fn reject(&mut self, request: &PublishRequest, code: &str, reason: &str) {
        let info = object(&[("level", string("error")), ("code", string(code)), ("description", string(reason))]);
        self.command(5, request.stream_id, &[string("onStatus"), Value::Number(0.0), Value::Null, info]);
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, timestamp: u32, payload: Vec<u8>) {
        let m = Message { csid, timestamp, type_id, stream_id, payload };
        self.out.extend_from_slice(&encode_message(OUT_CHUNK_SIZE, &m));
    }

    fn command(&mut self, csid: u32, stream_id: u32, values: &[Value]) {
        self.send(csid, 20, stream_id, 0, amf0::encode(values));
    }

    fn on_message(&mut self, m: Message, events: &mut Vec<Event>) -> Result<(), RtmpError> {
        let u32_at = |p: &[u8]| -> Result<u32, RtmpError> {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| RtmpError::Protocol(format!("control message type {} is too short", m.type_id)))
        };
        match m.type_id {
            1 => self.decoder.set_chunk_size(u32_at(&m.payload)?)?,
            2 => self.decoder.abort(u32_at(&m.payload)?),
            3 | 6 => {} // acknowledgement, set peer bandwidth
            4 => {
                // User control: answer pings.
                if m.payload.len() >= 6 && m.payload[..2] == [0, 6] {
                    let mut pong = vec![0, 7];
                    pong.extend_from_slice(&m.payload[2..6]);
                    self.send(2, 4, 0, 0, pong);
                }
            }
            5 => self.acks.set_window(u32_at(&m.payload)?),
            8 => {
                if self.publishing.is_some()
                    && let Some(&first) = m.payload.first()
                {
                    events.push(Event::Audio { timestamp: m.timestamp, format: first >> 4, bytes: m.payload.len() });
                }
            }
            15 | 18 => {} // metadata
            9 => {
                if self.publishing.is_some() {
                    events.push(Event::Video { timestamp: m.timestamp, data: m.payload });
                }
            }
            17 => self.on_command(&m, m.payload.get(1..).unwrap_or_default(), events)?,
            20 => self.on_command(&m, &m.payload, events)?,
            22 if self.publishing.is_some() => {
                for (timestamp, data) in super::aggregate_video(&m)? {
                    events.push(Event::Video { timestamp, data });
                }
            }
            22 => {}
            other => tracing::debug!(type_id = other, "ignoring RTMP message type"),
        }
        Ok(())
    }

    fn on_command(&mut self, m: &Message, payload: &[u8], events: &mut Vec<Event>) -> Result<(), RtmpError> {
        let values = amf0::decode_all(payload)?;
        let name = values.first().and_then(Value::as_str).unwrap_or_default().to_string();
        let txn = values.get(1).and_then(Value::as_f64).unwrap_or(0.0);
        let arg = |i: usize| values.get(i).and_then(Value::as_str).unwrap_or_default().to_string();
        match name.as_str() {
            "connect" => {
                let cmd = values.get(2).cloned().unwrap_or(Value::Null);
                let app = cmd.get("app").and_then(Value::as_str).unwrap_or_default().to_string();
                let tc_url = cmd.get("tcUrl").and_then(Value::as_str).map(str::to_string);
                self.app = Some(app.clone());
                self.tc_url = tc_url.clone();
                self.send(2, 5, 0, 0, WINDOW.to_be_bytes().to_vec());
                let mut bw = WINDOW.to_be_bytes().to_vec();
                bw.push(2);
                self.send(2, 6, 0, 0, bw);
                self.send(2, 1, 0, 0, (OUT_CHUNK_SIZE as u32).to_be_bytes().to_vec());
                let props = object(&[("fmsVer", string("FMS/3,0,1,123")), ("capabilities", Value::Number(31.0))]);
                let info = object(&[
                    ("level", string("status")),
                    ("code", string("NetConnection.Connect.Success")),
                    ("description", string("Connection succeeded.")),
                    ("objectEncoding", Value::Number(0.0)),
                ]);
                self.command(3, 0, &[string("_result"), Value::Number(txn), props, info]);
                events.push(Event::Connected { app, tc_url });
            }
            "releaseStream" | "FCPublish" | "getStreamLength" | "_checkbw" => {
                if name == "FCPublish" {
                    let info = object(&[("code", string("NetStream.Publish.Start")), ("description", string(&arg(3)))]);
                    self.command(3, 0, &[string("onFCPublish"), Value::Number(0.0), Value::Null, info]);
                }
                if txn != 0.0 {
                    self.command(3, 0, &[string("_result"), Value::Number(txn), Value::Null, Value::Undefined]);
                }
            }
            "createStream" => {
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.saturating_add(1);
                self.command(3, 0, &[string("_result"), Value::Number(txn), Value::Null, Value::Number(f64::from(id))]);
            }
            "publish" => {
                let Some(app) = self.app.clone() else {
                    return Err(RtmpError::Protocol("publish before connect".into()));
                };
                if self.publishing.is_some() {
                    return Err(RtmpError::Protocol("a second publish on one connection".into()));
                }
                events.push(Event::Publish(PublishRequest { stream_id: m.stream_id, name: arg(3), app, tc_url: self.tc_url.clone() }));
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                if self.publishing.take().is_some() {
                    events.push(Event::Unpublished);
                }
            }
            other => tracing::debug!(command = other, "ignoring RTMP command"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(stream_id: u32, values: &[Value]) -> Vec<u8> {
        encode_message(128, &Message { csid: 3, timestamp: 0, type_id: 20, stream_id, payload: amf0::encode(values) })
    }

    fn replies(out: &[u8]) -> Vec<Vec<Value>> {
        let mut d = ChunkDecoder::new(1 << 20);
        d.set_chunk_size(OUT_CHUNK_SIZE as u32).unwrap(); // what connect's reply sets
        let mut pos = 0;
        let mut cmds = Vec::new();
        while let Some((n, m)) = d.read_chunk(&out[pos..]).unwrap() {
            pos += n;
            if let Some(m) = m.filter(|m| m.type_id == 20) {
                cmds.push(amf0::decode_all(&m.payload).unwrap());
            }
        }
        cmds
    }

    #[test]
    fn publish_flow_as_ffmpeg_does_it() {
        let mut c = Connection::new();
        let connect = cmd(
            0,
            &[string("connect"), Value::Number(1.0), object(&[("app", string("live")), ("tcUrl", string("rtmp://127.0.0.1:1935/live"))])],
        );
        let (n, ev) = c.feed(&connect).unwrap();
        assert_eq!(n, connect.len());
        assert_eq!(ev, [Event::Connected { app: "live".into(), tc_url: Some("rtmp://127.0.0.1:1935/live".into()) }]);
        let out = replies(&c.take_output());
        assert_eq!(out[0][0], string("_result"));
        assert_eq!(out[0][3].get("code"), Some(&string("NetConnection.Connect.Success")));

        let (_, ev) = c.feed(&cmd(0, &[string("createStream"), Value::Number(4.0), Value::Null])).unwrap();
        assert!(ev.is_empty());
        assert_eq!(replies(&c.take_output())[0][3], Value::Number(1.0));

        let (_, ev) = c.feed(&cmd(1, &[string("publish"), Value::Number(5.0), Value::Null, string("cam?x=1"), string("live")])).unwrap();
        let Event::Publish(req) = &ev[0] else { panic!("{ev:?}") };
        assert_eq!((req.stream_id, req.name.as_str()), (1, "cam?x=1"));
        let video = encode_message(128, &Message { csid: 6, timestamp: 40, type_id: 9, stream_id: 1, payload: vec![0x17, 1] });
        assert!(c.feed(&video).unwrap().1.is_empty(), "no media before the publish is accepted");
        // Media sent right behind the publish, without waiting for its answer,
        // is left for after the decision, not dropped.
        let mut early = Connection::new();
        let mut burst = connect.clone();
        burst.extend(cmd(0, &[string("createStream"), Value::Number(4.0), Value::Null]));
        burst.extend(cmd(1, &[string("publish"), Value::Number(5.0), Value::Null, string("cam"), string("live")]));
        burst.extend(&video);
        let (n, ev) = early.feed(&burst).unwrap();
        let Some(Event::Publish(first)) = ev.last() else { panic!("{ev:?}") };
        assert_eq!(burst.len() - n, video.len(), "it stops after the publish");
        early.accept(first);
        assert_eq!(early.feed(&burst[n..]).unwrap().1, [Event::Video { timestamp: 40, data: vec![0x17, 1] }]);
        c.accept(req);
        let status = replies(&c.take_output());
        assert_eq!(status[0][3].get("code"), Some(&string("NetStream.Publish.Start")));
        assert_eq!(c.feed(&video).unwrap().1, [Event::Video { timestamp: 40, data: vec![0x17, 1] }]);
        let (_, ev) = c.feed(&cmd(0, &[string("deleteStream"), Value::Number(6.0), Value::Null, Value::Number(1.0)])).unwrap();
        assert_eq!(ev, [Event::Unpublished]);
    }

    #[test]
    fn publish_before_connect_and_garbage_are_errors() {
        let mut c = Connection::new();
        assert!(c.feed(&cmd(1, &[string("publish"), Value::Number(1.0), Value::Null, string("x")])).is_err());
        let mut c = Connection::new();
        let garbage: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let result = (|| -> Result<(), RtmpError> {
            let mut pos = 0;
            while pos < garbage.len() {
                let (n, _) = c.feed(&garbage[pos..])?;
                if n == 0 {
                    break;
                }
                pos += n;
            }
            Ok(())
        })();
        // Either refused outright or left waiting for more bytes; never a panic.
        let _ = result;
    }
}
