//! SPDY/3.1 framing as Kubernetes streaming uses it (moby/spdystream on the other end): the
//! frame codec (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
//! WINDOW_UPDATE, DATA) and the per-connection zlib header compression primed with the SPDY/3
//! dictionary. Pure logic: bytes in, frames out, no IO.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::sync::LazyLock;

/// The SPDY protocol version carried in every control frame.
pub const VERSION: u16 = 3;

/// Control frame types.
pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// Flags.
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;
pub const RST_INTERNAL_ERROR: u32 = 6;

/// GOAWAY status codes.
pub const GOAWAY_OK: u32 = 0;

/// Frame payloads are at most 2^24-1 bytes (24-bit length field).
pub const MAX_FRAME_PAYLOAD: usize = 0x00ff_ffff;
/// Largest DATA payload this codec writes; bigger writes are split.
pub const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Cap on a decompressed header block (defends against compression bombs).
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// Cap on the number of name/value pairs in one header block.
const MAX_HEADER_PAIRS: u32 = 4096;

/// Header names are lowercase; several values of one name are joined with NUL on the wire.
pub type Headers = Vec<(String, String)>;

/// One SETTINGS entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A decoded SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        clear: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported spdy version {0}")]
    Version(u16),
    #[error("frame of {0} bytes exceeds the limit")]
    FrameTooLarge(usize),
    #[error("malformed {kind} frame: {why}")]
    Malformed { kind: &'static str, why: String },
    #[error("compressing header block: {0}")]
    Compress(String),
    #[error("decompressing header block: {0}")]
    Decompress(String),
    #[error("malformed header block: {0}")]
    HeaderBlock(String),
}

fn malformed(kind: &'static str, why: impl Into<String>) -> SpdyError {
    SpdyError::Malformed {
        kind,
        why: why.into(),
    }
}

/// Header names of the SPDY/3 dictionary, each stored with a 4-byte big-endian length prefix.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The unprefixed tail of the SPDY/3 dictionary: status codes, reason phrases, dates, and
/// common values, concatenated.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
    " 00:00:00",
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,public",
    "private",
    "max-age=",
    "gzip,deflate,sdch",
    "charset=utf-8",
    "charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary (1423 bytes, Adler-32 0xe3c6a7c2).
pub static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut d = Vec::with_capacity(1423);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
});

/// Compresses header blocks: one zlib stream per connection direction, sync-flushed per block.
pub struct HeaderCompressor {
    z: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        // Only fails on a stream that already produced output; this one is fresh.
        let _ = z.set_dictionary(&DICTIONARY);
        HeaderCompressor { z }
    }

    /// Compresses one header block (already serialised) and sync-flushes it.
    pub fn compress(&mut self, raw: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.z.total_in();
            self.z
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compress(e.to_string()))?;
            pos += (self.z.total_in() - before_in) as usize;
            // Done once all input is consumed and zlib left spare room (nothing pending).
            if pos >= raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses header blocks of one connection direction.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        HeaderDecompressor {
            z: Decompress::new(true),
        }
    }

    /// Inflates one frame's compressed header block; all of it must be consumed.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0usize;
        let mut stalls = 0;
        loop {
            if out.capacity() - out.len() < 256 {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::Decompress("header block too large".into()));
                }
                out.reserve(out.capacity().max(1024));
            }
            let before_in = self.z.total_in();
            let before_out = self.z.total_out();
            match self
                .z
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| SpdyError::Decompress(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Decompress(e.to_string())),
            }
            let consumed = (self.z.total_in() - before_in) as usize;
            let produced = self.z.total_out() - before_out;
            pos += consumed;
            if pos >= input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if consumed == 0 && produced == 0 {
                stalls += 1;
                if stalls > 2 {
                    return Err(SpdyError::Decompress("no progress".into()));
                }
            } else {
                stalls = 0;
            }
        }
    }
}

/// Serialises a header block (before compression): count, then length-prefixed names and values.
pub fn write_header_block(headers: &Headers) -> Vec<u8> {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => merged.push((name, value.clone())),
        }
    }
    let mut b = Vec::new();
    b.extend_from_slice(&(merged.len() as u32).to_be_bytes());
    for (n, v) in &merged {
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// Parses a decompressed header block; NUL-separated values become separate entries.
pub fn parse_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], SpdyError> {
        if b.len() < n {
            return Err(SpdyError::HeaderBlock("truncated".into()));
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Ok(h)
    }
    fn u32_of(b: &mut &[u8]) -> Result<u32, SpdyError> {
        let x = take(b, 4)?;
        Ok(u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let count = u32_of(&mut b)?;
    if count > MAX_HEADER_PAIRS {
        return Err(SpdyError::HeaderBlock(format!("{count} headers")));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let nl = u32_of(&mut b)? as usize;
        let name = take(&mut b, nl)?;
        let vl = u32_of(&mut b)? as usize;
        let value = take(&mut b, vl)?;
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value);
        for v in value.split('\0') {
            out.push((name.clone(), v.to_string()));
        }
    }
    Ok(out)
}

/// The first value of a header, by lowercase name.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Writes frames of one connection direction (owns that direction's compressor).
#[derive(Default)]
pub struct Encoder {
    compressor: HeaderCompressor,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the wire form of `frame` to `out`. DATA larger than [`MAX_FRAME_PAYLOAD`] fails;
    /// use [`Encoder::encode_data`] to split large writes.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(SpdyError::FrameTooLarge(data.len()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(((if *fin { FLAG_FIN } else { 0 } as u32) << 24) | data.len() as u32);
                out.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let block = self.compressor.compress(&write_header_block(headers))?;
                let mut flags = 0;
                if *fin {
                    flags |= FLAG_FIN;
                }
                if *unidirectional {
                    flags |= FLAG_UNIDIRECTIONAL;
                }
                control_header(out, TYPE_SYN_STREAM, flags, 10 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0);
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
            | Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let block = self.compressor.compress(&write_header_block(headers))?;
                control_header(out, kind, if *fin { FLAG_FIN } else { 0 }, 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { clear, entries } => {
                let flags = if *clear { FLAG_SETTINGS_CLEAR } else { 0 };
                control_header(out, TYPE_SETTINGS, flags, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for e in entries {
                    out.put_u32(((e.flags as u32) << 24) | (e.id & 0x00ff_ffff));
                    out.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
        }
        Ok(())
    }

    /// Appends DATA frames carrying `data` in chunks of at most [`MAX_DATA_CHUNK`] bytes; FIN
    /// (when asked) rides on the last one. Empty data with FIN gives one empty FIN frame.
    pub fn encode_data(&mut self, stream_id: u32, data: &[u8], fin: bool, out: &mut BytesMut) {
        if data.is_empty() {
            if fin {
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((FLAG_FIN as u32) << 24);
            }
            return;
        }
        let mut chunks = data.chunks(MAX_DATA_CHUNK).peekable();
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            let flags = if fin && last { FLAG_FIN } else { 0 };
            out.put_u32(stream_id & 0x7fff_ffff);
            out.put_u32(((flags as u32) << 24) | c.len() as u32);
            out.put_slice(c);
        }
    }
}

fn control_header(out: &mut BytesMut, kind: u16, flags: u8, len: usize) -> Result<(), SpdyError> {
    if len > MAX_FRAME_PAYLOAD {
        return Err(SpdyError::FrameTooLarge(len));
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32(((flags as u32) << 24) | len as u32);
    Ok(())
}

/// Reads frames of one connection direction (owns that direction's decompressor).
pub struct Decoder {
    decompressor: HeaderDecompressor,
    max_payload: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            decompressor: HeaderDecompressor::new(),
            max_payload: MAX_FRAME_PAYLOAD,
        }
    }

    /// Takes one complete frame off the front of `buf`, or `None` if more bytes are needed.
    /// Control frames of unknown types are consumed and skipped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        loop {
            if buf.len() < 8 {
                return Ok(None);
            }
            let w0 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let w1 = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let flags = (w1 >> 24) as u8;
            let len = (w1 & 0x00ff_ffff) as usize;
            if len > self.max_payload {
                return Err(SpdyError::FrameTooLarge(len));
            }
            if buf.len() < 8 + len {
                return Ok(None);
            }
            buf.advance(8);
            let payload = buf.split_to(len).freeze();
            if w0 & 0x8000_0000 == 0 {
                return Ok(Some(Frame::Data {
                    stream_id: w0 & 0x7fff_ffff,
                    fin: flags & FLAG_FIN != 0,
                    data: payload,
                }));
            }
            let version = ((w0 >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(SpdyError::Version(version));
            }
            let kind = (w0 & 0xffff) as u16;
            if let Some(f) = self.control(kind, flags, payload)? {
                return Ok(Some(f));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut p: Bytes) -> Result<Option<Frame>, SpdyError> {
        let need = |p: &Bytes, n: usize, k: &'static str| {
            if p.len() < n {
                Err(malformed(k, format!("{} bytes", p.len())))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            TYPE_SYN_STREAM => {
                need(&p, 10, "SYN_STREAM")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let _slot = p.get_u8();
                if stream_id == 0 {
                    return Err(malformed("SYN_STREAM", "stream id 0"));
                }
                let headers = parse_header_block(&self.decompressor.decompress(&p)?)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin: flags & FLAG_FIN != 0,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let name = if kind == TYPE_SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                need(&p, 4, name)?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let headers = parse_header_block(&self.decompressor.decompress(&p)?)?;
                let fin = flags & FLAG_FIN != 0;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                need(&p, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                }
            }
            TYPE_SETTINGS => {
                need(&p, 4, "SETTINGS")?;
                let n = p.get_u32() as usize;
                if p.len() < n.saturating_mul(8) {
                    return Err(malformed("SETTINGS", format!("{n} entries")));
                }
                let entries = (0..n)
                    .map(|_| {
                        let w = p.get_u32();
                        Setting {
                            flags: (w >> 24) as u8,
                            id: w & 0x00ff_ffff,
                            value: p.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_SETTINGS_CLEAR != 0,
                    entries,
                }
            }
            TYPE_PING => {
                need(&p, 4, "PING")?;
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                need(&p, 4, "GOAWAY")?;
                let last_good_stream_id = p.get_u32() & 0x7fff_ffff;
                let status = if p.len() >= 4 { p.get_u32() } else { GOAWAY_OK };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(&p, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    delta: p.get_u32() & 0x7fff_ffff,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(d: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_matches_the_spdy3_spec() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(adler32(&DICTIONARY), 0xe3c6_a7c2);
    }

    #[test]
    fn every_frame_type_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: h(&[("streamtype", "error")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                fin: true,
                unidirectional: true,
                headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: vec![],
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                headers: h(&[("x-a", "1"), ("x-a", "2")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            Frame::Settings {
                clear: true,
                entries: vec![Setting {
                    flags: 1,
                    id: 7,
                    value: 65536,
                }],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: GOAWAY_OK,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1000,
            },
            Frame::Data {
                stream_id: 5,
                fin: true,
                data: Bytes::from_static(b"hi\n"),
            },
            Frame::Data {
                stream_id: 7,
                fin: false,
                data: Bytes::new(),
            },
        ];
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut dec = Decoder::new();
        let mut got = vec![];
        // Feed byte by byte to exercise partial-frame handling.
        let mut buf = BytesMut::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, frames);
    }

    #[test]
    fn header_blocks_are_compressed_with_the_dictionary() {
        let mut c = HeaderCompressor::new();
        let raw = write_header_block(&h(&[("streamtype", "stdout")]));
        let first = c.compress(&raw).unwrap();
        // zlib header with FDICT set, followed by the dictionary's Adler-32.
        assert_eq!(first[0] & 0x0f, 8);
        assert_ne!(first[1] & 0x20, 0, "FDICT flag");
        assert_eq!(&first[2..6], &0xe3c6_a7c2u32.to_be_bytes());
        // A second block continues the same stream: no new zlib header, and the repeated
        // header compresses to fewer bytes than the first time.
        let second = c.compress(&raw).unwrap();
        assert!(second.len() < first.len());
        let mut d = HeaderDecompressor::new();
        assert_eq!(d.decompress(&first).unwrap(), raw);
        assert_eq!(d.decompress(&second).unwrap(), raw);
    }

    #[test]
    fn decoder_accepts_blocks_without_a_dictionary() {
        // A peer may compress without FDICT (allowed by Go's reader); we must still read it.
        let mut z = Compress::new(Compression::default(), true);
        let raw = write_header_block(&h(&[("streamtype", "error")]));
        let mut block = Vec::with_capacity(256);
        z.compress_vec(&raw, &mut block, FlushCompress::Sync)
            .unwrap();
        let mut d = HeaderDecompressor::new();
        assert_eq!(
            parse_header_block(&d.decompress(&block).unwrap()).unwrap(),
            h(&[("streamtype", "error")])
        );
    }

    #[test]
    fn multi_valued_headers_join_with_nul() {
        let block = write_header_block(&h(&[("A", "1"), ("a", "2"), ("b", "3")]));
        let parsed = parse_header_block(&block).unwrap();
        assert_eq!(parsed, h(&[("a", "1"), ("a", "2"), ("b", "3")]));
        assert_eq!(header(&parsed, "B"), Some("3"));
    }

    #[test]
    fn large_data_is_split_and_fin_rides_last() {
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        let data = vec![7u8; MAX_DATA_CHUNK * 2 + 5];
        enc.encode_data(9, &data, true, &mut wire);
        let mut dec = Decoder::new();
        let mut frames = vec![];
        while let Some(f) = dec.decode(&mut wire).unwrap() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 3);
        let total: usize = frames
            .iter()
            .map(|f| match f {
                Frame::Data { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(total, data.len());
        assert!(matches!(frames[2], Frame::Data { fin: true, .. }));
        assert!(matches!(frames[0], Frame::Data { fin: false, .. }));
    }

    #[test]
    fn unknown_control_frames_are_skipped_and_bad_versions_rejected() {
        let mut buf = BytesMut::new();
        buf.put_u16(0x8000 | VERSION);
        buf.put_u16(0x42);
        buf.put_u32(2);
        buf.put_u16(0);
        Encoder::new()
            .encode(&Frame::Ping { id: 1 }, &mut buf)
            .unwrap();
        let mut dec = Decoder::new();
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Ping { id: 1 }));

        let mut bad = BytesMut::new();
        bad.put_u16(0x8000 | 2);
        bad.put_u16(TYPE_PING);
        bad.put_u32(4);
        bad.put_u32(1);
        assert!(matches!(dec.decode(&mut bad), Err(SpdyError::Version(2))));
    }

    #[test]
    fn truncated_header_blocks_fail() {
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(parse_header_block(&[0, 0]).is_err());
    }
}
