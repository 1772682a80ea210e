//! RTMP playing, client side, without I/O: after the handshake
//! ([`super::handshake::client_c0c1`], [`super::handshake::client_c2`]) the
//! caller feeds the server's bytes in and sends what [`PlayClient::take_output`]
//! returns. The flow is connect → createStream → play; the server's video
//! messages come out as FLV video tag bodies for
//! [`super::super::flv::VideoTagParser`].

use super::RtmpError;
use super::amf0::{self, Value, object, string};
use super::chunk::{AckWindow, ChunkDecoder, MAX_MESSAGE, Message, encode_message};

/// Chunk size we send with (our commands are small).
const OUT_CHUNK_SIZE: usize = 4096;
/// Window acknowledgement size we announce.
const WINDOW: u32 = 2_500_000;
const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 2.0;

/// Something the caller must act on.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// The server accepted play (`NetStream.Play.Start`); media follows.
    Playing,
    /// A video message (an FLV video tag body) with its timestamp in ms.
    Video {
        /// Message timestamp, ms.
        timestamp: u32,
        /// The tag body.
        data: Vec<u8>,
    },
    /// The server refused connect, createStream or play.
    Rejected {
        /// The status code (`NetConnection.Connect.Rejected`,
        /// `NetStream.Play.StreamNotFound`, …), or the command that failed.
        code: String,
        /// The server's description.
        description: String,
    },
    /// The server ended the stream (`NetStream.Play.Stop`, `…UnpublishNotify`,
    /// `…Play.Complete`).
    Ended,
}

/// Where to play from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayTarget {
    /// connect's `app` (the URL's first path segment, with the URL's query).
    pub app: String,
    /// connect's `tcUrl`: `rtmp://host[:port]/app`.
    pub tc_url: String,
    /// The stream name given to play (the rest of the path, with the query).
    pub stream: String,
}

impl PlayTarget {
    /// Splits an `rtmp://host[:port]/app[/more]/stream[?query]` URL the way
    /// ffmpeg does: the first path segment is the application, the rest the
    /// stream; a query goes with the stream name (and the app).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = url.split_once("://") else { return Err("not an rtmp:// URL".into()) };
        if !scheme.eq_ignore_ascii_case("rtmp") {
            return Err(format!("scheme {scheme}:// is not rtmp://"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let (app, stream) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() || stream.is_empty() {
            return Err("an RTMP URL needs an application and a stream: rtmp://host/app/stream".into());
        }
        let with_query = |s: &str| query.map_or_else(|| s.to_string(), |q| format!("{s}?{q}"));
        Ok(Self { app: app.to_string(), tc_url: format!("rtmp://{hostport}/{app}"), stream: with_query(stream) })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    CreatingStream,
    Starting(u32),
    Playing(u32),
    Done,
}

/// Protocol state of one play connection after the handshake.
#[derive(Debug)]
pub struct PlayClient {
    target: PlayTarget,
    decoder: ChunkDecoder,
    out: Vec<u8>,
    phase: Phase,
    acks: AckWindow,
}

impl PlayClient {
    /// A client that sends connect at once (see [`PlayClient::take_output`]).
    pub fn new(target: PlayTarget) -> Self {
        let mut c =
            Self { target, decoder: ChunkDecoder::new(MAX_MESSAGE), out: Vec::new(), phase: Phase::Connecting, acks: AckWindow::default() };
        c.send(2, 1, 0, (OUT_CHUNK_SIZE as u32).to_be_bytes().to_vec());
        let props = object(&[
            ("app", string(&c.target.app)),
            ("flashVer", string("LNX 9,0,124,2")),
            ("tcUrl", string(&c.target.tc_url)),
            ("fpad", Value::Boolean(false)),
            ("capabilities", Value::Number(15.0)),
            ("audioCodecs", Value::Number(4071.0)),
            ("videoCodecs", Value::Number(252.0)),
            ("videoFunction", Value::Number(1.0)),
        ]);
        c.command(3, 0, &[string("connect"), Value::Number(TXN_CONNECT), props]);
        c
    }

    /// Bytes to send to the server.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether play was accepted.
    pub fn is_playing(&self) -> bool {
        matches!(self.phase, Phase::Playing(_))
    }

    /// Consumes whole chunks from `data`; returns the bytes consumed and the
    /// events they raised. Acknowledges per the server's window.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Vec<ClientEvent>), RtmpError> {
        let mut pos = 0;
        let mut events = Vec::new();
        while let Some((n, message)) = self.decoder.read_chunk(&data[pos..])? {
            pos += n;
            if let Some(m) = message {
                self.on_message(m, &mut events)?;
            }
        }
        if let Some(seq) = self.acks.received(pos) {
            self.send(2, 3, 0, seq.to_be_bytes().to_vec());
        }
        Ok((pos, events))
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: Vec<u8>) {
        let m = Message { csid, timestamp: 0, type_id, stream_id, payload };
        self.out.extend_from_slice(&encode_message(OUT_CHUNK_SIZE, &m));
    }

    fn command(&mut self, csid: u32, stream_id: u32, values: &[Value]) {
        self.send(csid, 20, stream_id, amf0::encode(values));
    }

    fn on_message(&mut self, m: Message, events: &mut Vec<ClientEvent>) -> Result<(), RtmpError> {
        let u32_at = |p: &[u8]| -> Result<u32, RtmpError> {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| RtmpError::Protocol(format!("control message type {} is too short", m.type_id)))
        };
        let playing_on = match self.phase {
            Phase::Playing(id) => Some(id),
            _ => None,
        };
        match m.type_id {
            1 => self.decoder.set_chunk_size(u32_at(&m.payload)?)?,
            2 => self.decoder.abort(u32_at(&m.payload)?),
            3 => {} // acknowledgement
            4 => {
                // User control: answer pings.
                if m.payload.len() >= 6 && m.payload[..2] == [0, 6] {
                    let mut pong = vec![0, 7];
                    pong.extend_from_slice(&m.payload[2..6]);
                    self.send(2, 4, 0, pong);
                }
            }
            5 => self.acks.set_window(u32_at(&m.payload)?),
            6 => self.send(2, 5, 0, WINDOW.to_be_bytes().to_vec()), // set peer bandwidth: announce our window
            8 | 15 | 18 => {}                                       // audio, metadata
            9 if playing_on.is_some() => events.push(ClientEvent::Video { timestamp: m.timestamp, data: m.payload }),
            22 if playing_on.is_some() => {
                for (timestamp, data) in super::aggregate_video(&m)? {
                    events.push(ClientEvent::Video { timestamp, data });
                }
            }
            9 | 22 => {} // media before play was accepted
            17 => self.on_command(m.payload.get(1..).unwrap_or_default(), events)?,
            20 => self.on_command(&m.payload, events)?,
            other => tracing::debug!(type_id = other, "ignoring RTMP message type"),
        }
        Ok(())
    }

    fn on_command(&mut self, payload: &[u8], events: &mut Vec<ClientEvent>) -> Result<(), RtmpError> {
        let values = amf0::decode_all(payload)?;
        let name = values.first().and_then(Value::as_str).unwrap_or_default();
        let txn = values.get(1).and_then(Value::as_f64).unwrap_or(0.0);
        let info = values.get(3);
        let field = |key: &str| info.and_then(|i| i.get(key)).and_then(Value::as_str).unwrap_or_default().to_string();
        match (name, self.phase) {
            ("_error", _) => {
                let code = match field("code") {
                    c if c.is_empty() => format!("{} failed", self.pending_command()),
                    c => c,
                };
                events.push(ClientEvent::Rejected { code, description: field("description") });
                self.phase = Phase::Done;
            }
            ("_result", Phase::Connecting) if txn == TXN_CONNECT => {
                self.send(2, 5, 0, WINDOW.to_be_bytes().to_vec());
                self.command(3, 0, &[string("createStream"), Value::Number(TXN_CREATE_STREAM), Value::Null]);
                self.phase = Phase::CreatingStream;
            }
            ("_result", Phase::CreatingStream) if txn == TXN_CREATE_STREAM => {
                let id =
                    info.and_then(Value::as_f64).ok_or_else(|| RtmpError::Protocol("createStream's result has no stream id".into()))?;
                let id = id as u32;
                let name = self.target.stream.clone();
                self.command(8, id, &[string("play"), Value::Number(0.0), Value::Null, string(&name), Value::Number(-2000.0)]);
                // User control Set Buffer Length (3 s) for the stream.
                let mut buffer = vec![0, 3];
                buffer.extend_from_slice(&id.to_be_bytes());
                buffer.extend_from_slice(&3000u32.to_be_bytes());
                self.send(2, 4, 0, buffer);
                self.phase = Phase::Starting(id);
            }
            ("onStatus", _) => {
                let (level, code) = (field("level"), field("code"));
                match code.as_str() {
                    "NetStream.Play.Start" | "NetStream.Play.Reset" => {
                        if let Phase::Starting(id) = self.phase {
                            self.phase = Phase::Playing(id);
                            events.push(ClientEvent::Playing);
                        }
                    }
                    "NetStream.Play.Stop" | "NetStream.Play.UnpublishNotify" | "NetStream.Play.Complete" => {
                        self.phase = Phase::Done;
                        events.push(ClientEvent::Ended);
                    }
                    _ if level == "error" || code == "NetStream.Play.StreamNotFound" || code.ends_with(".Failed") => {
                        self.phase = Phase::Done;
                        events.push(ClientEvent::Rejected { code, description: field("description") });
                    }
                    _ => {}
                }
            }
            (other, _) => tracing::debug!(command = other, "ignoring RTMP command"),
        }
        Ok(())
    }

    fn pending_command(&self) -> &'static str {
        match self.phase {
            Phase::Connecting => "connect",
            Phase::CreatingStream => "createStream",
            _ => "play",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::connection::{Connection, Event};
    use super::*;

    #[test]
    fn urls_split_into_app_tcurl_and_stream() {
        let t = PlayTarget::from_url("rtmp://127.0.0.1:1935/live/cam?token=abc").unwrap();
        assert_eq!(t, PlayTarget { app: "live".into(), tc_url: "rtmp://127.0.0.1:1935/live".into(), stream: "cam?token=abc".into() });
        let t = PlayTarget::from_url("RTMP://u:p@host/app/a/b").unwrap();
        assert_eq!((t.app.as_str(), t.tc_url.as_str(), t.stream.as_str()), ("app", "rtmp://host/app", "a/b"));
        assert!(PlayTarget::from_url("rtmp://host/live").is_err());
        assert!(PlayTarget::from_url("http://host/live/x").is_err());
    }

    /// Runs our client against our server side until neither has more to say.
    fn exchange(client: &mut PlayClient, server: &mut Connection) -> (Vec<ClientEvent>, Vec<Event>) {
        let (mut ce, mut se) = (Vec::new(), Vec::new());
        loop {
            let to_server = client.take_output();
            let to_client = server.take_output();
            if to_server.is_empty() && to_client.is_empty() {
                return (ce, se);
            }
            let (n, e) = server.feed(&to_server).unwrap();
            assert_eq!(n, to_server.len());
            se.extend(e);
            let (n, e) = client.feed(&to_client).unwrap();
            assert_eq!(n, to_client.len());
            ce.extend(e);
        }
    }

    #[test]
    fn connect_and_create_stream_against_our_server_then_play_status() {
        let mut client = PlayClient::new(PlayTarget::from_url("rtmp://h/live/cam").unwrap());
        let mut server = Connection::new();
        let (ce, se) = exchange(&mut client, &mut server);
        assert!(ce.is_empty());
        assert_eq!(se, [Event::Connected { app: "live".into(), tc_url: Some("rtmp://h/live".into()) }]);
        assert!(!client.is_playing());
        // Our server does not serve play; answer as a play server would.
        let status = |code: &str| {
            let info = object(&[("level", string("status")), ("code", string(code)), ("description", string("d"))]);
            let m = Message {
                csid: 5,
                timestamp: 0,
                type_id: 20,
                stream_id: 1,
                payload: amf0::encode(&[string("onStatus"), Value::Number(0.0), Value::Null, info]),
            };
            encode_message(128, &m)
        };
        let (_, ev) = client.feed(&status("NetStream.Play.Start")).unwrap();
        assert_eq!(ev, [ClientEvent::Playing]);
        let video = encode_message(128, &Message { csid: 6, timestamp: 40, type_id: 9, stream_id: 1, payload: vec![0x17, 1] });
        assert_eq!(client.feed(&video).unwrap().1, [ClientEvent::Video { timestamp: 40, data: vec![0x17, 1] }]);
        assert_eq!(client.feed(&status("NetStream.Play.UnpublishNotify")).unwrap().1, [ClientEvent::Ended]);
    }

    #[test]
    fn refusals_carry_the_servers_description_and_windows_are_acknowledged() {
        let mut client = PlayClient::new(PlayTarget::from_url("rtmp://h/live/cam").unwrap());
        client.take_output();
        let info =
            object(&[("level", string("error")), ("code", string("NetConnection.Connect.Rejected")), ("description", string("bad key"))]);
        let payload = amf0::encode(&[string("_error"), Value::Number(1.0), Value::Null, info]);
        let (_, ev) = client.feed(&encode_message(128, &Message { csid: 3, timestamp: 0, type_id: 20, stream_id: 0, payload })).unwrap();
        assert_eq!(ev, [ClientEvent::Rejected { code: "NetConnection.Connect.Rejected".into(), description: "bad key".into() }]);

        let mut client = PlayClient::new(PlayTarget::from_url("rtmp://h/live/cam").unwrap());
        client.take_output();
        let window =
            encode_message(128, &Message { csid: 2, timestamp: 0, type_id: 5, stream_id: 0, payload: 100u32.to_be_bytes().to_vec() });
        client.feed(&window).unwrap();
        let filler = encode_message(128, &Message { csid: 6, timestamp: 0, type_id: 8, stream_id: 1, payload: vec![0; 120] });
        client.feed(&filler).unwrap();
        let out = client.take_output();
        let mut d = ChunkDecoder::new(1 << 20);
        let (_, ack) = d.read_chunk(&out).unwrap().unwrap();
        let ack = ack.unwrap();
        assert_eq!(ack.type_id, 3);
        assert_eq!(u32::from_be_bytes(ack.payload[..4].try_into().unwrap()) as usize, window.len() + filler.len());
    }
}
