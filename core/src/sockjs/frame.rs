//! SockJS frames, IO-free: what the server writes (`o`, `h`, `a[…]`, `c[…]`) and what
//! clients send (a JSON array of strings).
//!
//! Both the server transports and the client use these functions, so the exact bytes on
//! the wire are decided in one place.

use serde_json::Value;

/// The open frame.
pub const OPEN: &str = "o";
/// The heartbeat frame.
pub const HEARTBEAT: &str = "h";

/// A close code and reason as carried by a `c[code,"reason"]` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Close code (3000 "Go away!", 2010 "Another connection still open", 1002 "Connection interrupted", …).
    pub code: u16,
    /// Human readable reason.
    pub reason: String,
}

impl CloseReason {
    /// Builds a close reason.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// `3000 "Go away!"`: the application closed the session.
    pub fn go_away() -> Self {
        Self::new(3000, "Go away!")
    }

    /// `1000 "Normal closure"`.
    pub fn normal() -> Self {
        Self::new(1000, "Normal closure")
    }

    /// `2010 "Another connection still open"`: a second receiver tried to attach.
    pub fn another_connection() -> Self {
        Self::new(2010, "Another connection still open")
    }

    /// `1002 "Connection interrupted"`: the receiving request was aborted by the client.
    pub fn interrupted() -> Self {
        Self::new(1002, "Connection interrupted")
    }

    /// `3000 "Broken framing."`: the client sent something that is not a JSON array of
    /// strings. On websockets the connection is dropped without a close frame.
    pub fn broken_framing() -> Self {
        Self::new(3000, "Broken framing.")
    }

    /// `1009 "Message too big"`: a message exceeded the configured maximum size.
    pub fn too_big() -> Self {
        Self::new(1009, "Message too big")
    }

    /// The `c[code,"reason"]` frame.
    pub fn frame(&self) -> String {
        let mut out = String::with_capacity(self.reason.len() + 12);
        out.push_str("c[");
        out.push_str(&self.code.to_string());
        out.push(',');
        push_quoted(&mut out, &self.reason);
        out.push(']');
        out
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

/// Characters SockJS servers escape as `\uXXXX` beyond what JSON requires, because some
/// browsers mangle them (see the protocol's "JSON encoding" section).
fn needs_sockjs_escape(c: char) -> bool {
    matches!(c as u32,
        0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff)
}

// Word-at-a-time byte tests (the classic "has a zero byte" tricks): each is non-zero iff
// some byte of `x` matches. Used to skip 8 plain bytes per step in the hot paths below.
const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline(always)]
fn has_byte(x: u64, b: u8) -> u64 {
    let v = x ^ (LO * b as u64);
    v.wrapping_sub(LO) & !v & HI
}

#[inline(always)]
fn has_control(x: u64) -> u64 {
    // Some byte < 0x20 (bytes >= 0x80 never count: `!x` clears their high bit).
    x.wrapping_sub(LO * 0x20) & !x & HI
}

#[inline(always)]
fn word(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Index of the first byte at or after `i` that [`push_quoted`] must look at: a control
/// byte, `"`, `\`, or 0xE2/0xEF (the lead bytes of every character SockJS escapes beyond
/// JSON, U+200C…U+206F and U+FFF0…U+FFFF).
#[inline]
fn next_to_quote(bytes: &[u8], mut i: usize) -> usize {
    while i + 8 <= bytes.len() {
        let x = word(bytes, i);
        if has_control(x)
            | has_byte(x, b'"')
            | has_byte(x, b'\\')
            | has_byte(x, 0xE2)
            | has_byte(x, 0xEF)
            != 0
        {
            break;
        }
        i += 8;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 || b == b'"' || b == b'\\' || b == 0xE2 || b == 0xEF {
            return i;
        }
        i += 1;
    }
    i
}

/// Index of the first control byte, `"` or `\\` in `bytes` (its length if none).
#[inline]
fn next_json_special(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let x = word(bytes, i);
        if has_control(x) | has_byte(x, b'"') | has_byte(x, b'\\') != 0 {
            break;
        }
        i += 8;
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 || b == b'"' || b == b'\\' {
            return i;
        }
        i += 1;
    }
    i
}

/// Appends `s` as a JSON string literal, escaping what SockJS requires.
pub fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Runs that need no escape are copied whole; `i` always lands on a character boundary
    // (the bytes looked at are ASCII or lead bytes).
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = next_to_quote(bytes, 0);
    while i < bytes.len() {
        let c = s[i..].chars().next().unwrap_or('\u{0}');
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{08}' => Some("\\b"),
            '\u{0c}' => Some("\\f"),
            _ => None,
        };
        if let Some(e) = esc {
            out.push_str(&s[start..i]);
            out.push_str(e);
            start = i + 1;
        } else if (c as u32) < 0x20 || needs_sockjs_escape(c) {
            out.push_str(&s[start..i]);
            push_unicode_escape(out, c as u32);
            start = i + c.len_utf8();
        }
        i = next_to_quote(bytes, i + c.len_utf8());
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn push_unicode_escape(out: &mut String, v: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((v >> shift) & 0xf) as usize] as char);
    }
}

/// The `a["m1","m2",…]` frame carrying `messages`.
pub fn array_frame<S: AsRef<str>>(messages: &[S]) -> String {
    let len: usize = messages.iter().map(|m| m.as_ref().len() + 3).sum();
    let mut out = String::with_capacity(len + 3);
    out.push_str("a[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_quoted(&mut out, m.as_ref());
    }
    out.push(']');
    out
}

/// The `m"message"` frame (single message; understood by clients, not sent by this server).
pub fn message_frame(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 3);
    out.push('m');
    push_quoted(&mut out, message);
    out
}

/// What a client sends: a JSON array of strings, `["m1","m2"]`.
pub fn client_payload<S: AsRef<str>>(messages: &[S]) -> String {
    let mut out = array_frame(messages);
    out.remove(0);
    out
}

/// Why a client payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body was empty.
    #[error("Payload expected.")]
    Empty,
    /// The body was not JSON, or not a string / array of strings.
    #[error("Broken JSON encoding.")]
    BrokenJson,
}

/// Parses what a client sent: a JSON array of strings, or (leniently, like sockjs-node) a
/// single JSON string. An empty array yields no messages.
pub fn parse_client_payload(payload: &[u8]) -> Result<Vec<String>, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    if let Some(messages) = split_plain_array(payload) {
        return Ok(messages);
    }
    // Next fastest: an array of strings, without building a `Value` first.
    if let Ok(messages) = serde_json::from_slice::<Vec<String>>(payload) {
        return Ok(messages);
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(PayloadError::BrokenJson),
            })
            .collect(),
        Ok(Value::String(s)) => Ok(vec![s]),
        _ => Err(PayloadError::BrokenJson),
    }
}

/// `["a","b"]` with no escapes in it, split without a JSON parser. Without a backslash no
/// string can contain a quote, so `","` only ever separates messages. `None` for anything
/// else (the JSON parser then decides).
fn split_plain_array(payload: &[u8]) -> Option<Vec<String>> {
    let inner = payload.strip_prefix(b"[\"")?.strip_suffix(b"\"]")?;
    let text = std::str::from_utf8(inner).ok()?;
    let mut out = Vec::new();
    let mut rest = inner;
    let mut at = 0;
    loop {
        let n = next_json_special(rest);
        if n == rest.len() {
            // The common case, one message per frame, ends here at the first look.
            out.push(text[at..].to_string());
            return Some(out);
        }
        // Only a `","` separator may follow; escapes and control bytes go to the parser.
        if !rest[n..].starts_with(b"\",\"") {
            return None;
        }
        out.push(text[at..at + n].to_string());
        at += n + 3;
        rest = &rest[n + 3..];
    }
}

/// A frame received by a SockJS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `o`: the session is open.
    Open,
    /// `h`: heartbeat.
    Heartbeat,
    /// `a[…]` (or `m"…"`): messages.
    Messages(Vec<String>),
    /// `c[code,"reason"]`: the server closed the session.
    Close(CloseReason),
}

/// Why a server frame could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SockJS frame: {0}")]
pub struct FrameError(pub String);

/// Parses one server frame (without the trailing newline of the HTTP transports).
pub fn parse_frame(frame: &str) -> Result<Frame, FrameError> {
    let frame = frame.trim_end_matches('\n');
    let bad = || FrameError(truncate(frame));
    let (kind, rest) = match frame.chars().next() {
        Some(c) => (c, &frame[c.len_utf8()..]),
        None => return Err(bad()),
    };
    match kind {
        'o' if rest.is_empty() => Ok(Frame::Open),
        'h' if rest.is_empty() => Ok(Frame::Heartbeat),
        'a' => serde_json::from_str::<Vec<String>>(rest)
            .map(Frame::Messages)
            .map_err(|_| bad()),
        'm' => serde_json::from_str::<String>(rest)
            .map(|m| Frame::Messages(vec![m]))
            .map_err(|_| bad()),
        'c' => {
            let (code, reason): (u16, String) = serde_json::from_str(rest).map_err(|_| bad())?;
            Ok(Frame::Close(CloseReason { code, reason }))
        }
        _ => Err(bad()),
    }
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_frame_matches_json() {
        let msgs = ["a", "b\"c", "\n\u{0}"];
        let f = array_frame(&msgs);
        assert_eq!(f, r#"a["a","b\"c","\n\u0000"]"#);
        let back: Vec<String> = serde_json::from_str(&f[1..]).unwrap();
        assert_eq!(back, msgs);
    }

    #[test]
    fn escapes_what_sockjs_escapes() {
        let s: String = [
            '\u{200c}', '\u{2028}', '\u{2060}', '\u{fff0}', '\u{ffff}', 'é', '\u{2000}',
        ]
        .iter()
        .collect();
        let mut out = String::new();
        push_quoted(&mut out, &s);
        assert_eq!(out, "\"\\u200c\\u2028\\u2060\\ufff0\\uffffé\u{2000}\"");
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
    }

    #[test]
    fn quoting_round_trips() {
        let samples = [
            "",
            "plain",
            "\"q\"",
            "back\\slash",
            "é☃🚀",
            "\u{2027}\u{2028}\u{2030}",
            "\u{e000}\u{ffef}\u{fff0}",
            "\u{1}\u{1f}\u{7f}",
            "a\u{200b}\u{200c}b\u{206f}\u{2070}",
        ];
        for s in samples {
            let mut out = String::new();
            push_quoted(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
            for c in out.chars() {
                assert!(
                    !needs_sockjs_escape(c) && (c as u32) >= 0x20,
                    "{out:?} leaks {c:?}"
                );
            }
        }
    }

    /// Strings from an alphabet of every character class the scanners care about, at every
    /// offset of an 8-byte word (deterministic, no extra dependency).
    fn tricky_strings() -> Vec<String> {
        let alphabet = [
            "a", "Z", "0", " ", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "☃", "🚀",
            "\u{2028}", "\u{200c}", "\u{2027}", "\u{fff0}", "\u{ffef}", ",", "\",\"", "[", "]",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = Vec::new();
        for len in 0..40 {
            for _ in 0..25 {
                let plain = next() % 3 == 0;
                let s: String = (0..len)
                    .map(|_| {
                        if plain {
                            "abcdefgh"
                        } else {
                            alphabet[(next() % alphabet.len() as u64) as usize]
                        }
                    })
                    .collect();
                out.push(s);
            }
        }
        out
    }

    #[test]
    fn quoting_matches_json_on_many_strings() {
        for s in tricky_strings() {
            let mut out = String::new();
            push_quoted(&mut out, &s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
            assert!(
                !out.chars()
                    .any(|c| needs_sockjs_escape(c) || (c as u32) < 0x20),
                "{out:?}"
            );
        }
    }

    #[test]
    fn fast_split_agrees_with_the_json_parser() {
        let strings = tricky_strings();
        for group in strings.chunks(3) {
            // As a client would send them, and as hand-written raw payloads.
            let encoded = serde_json::to_vec(group).unwrap();
            assert_eq!(parse_client_payload(&encoded).unwrap(), group);
            let raw = format!("[\"{}\"]", group.join("\",\""));
            let want = serde_json::from_str::<Vec<String>>(&raw).ok();
            if let Some(fast) = split_plain_array(raw.as_bytes()) {
                assert_eq!(Some(fast), want, "{raw:?}");
            }
        }
    }

    #[test]
    fn close_frames() {
        assert_eq!(CloseReason::go_away().frame(), r#"c[3000,"Go away!"]"#);
        assert_eq!(
            CloseReason::another_connection().frame(),
            r#"c[2010,"Another connection still open"]"#
        );
    }

    #[test]
    fn parses_client_payloads() {
        assert_eq!(
            parse_client_payload(b"[\"a\",\"b\"]").unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(parse_client_payload(b"[]").unwrap(), Vec::<String>::new());
        assert_eq!(parse_client_payload(b"\"x\"").unwrap(), vec!["x"]);
        assert_eq!(parse_client_payload(b""), Err(PayloadError::Empty));
        assert_eq!(parse_client_payload(b"[\"a"), Err(PayloadError::BrokenJson));
        assert_eq!(parse_client_payload(b"[1]"), Err(PayloadError::BrokenJson));
        assert_eq!(parse_client_payload(b"{}"), Err(PayloadError::BrokenJson));
        assert_eq!(
            parse_client_payload(&[0xff, 0xfe]),
            Err(PayloadError::BrokenJson)
        );
    }

    #[test]
    fn parses_server_frames() {
        assert_eq!(parse_frame("o").unwrap(), Frame::Open);
        assert_eq!(parse_frame("h\n").unwrap(), Frame::Heartbeat);
        assert_eq!(
            parse_frame(r#"a["x","y"]"#).unwrap(),
            Frame::Messages(vec!["x".into(), "y".into()])
        );
        assert_eq!(
            parse_frame(r#"m"x""#).unwrap(),
            Frame::Messages(vec!["x".into()])
        );
        assert_eq!(
            parse_frame(r#"c[3000,"Go away!"]"#).unwrap(),
            Frame::Close(CloseReason::go_away())
        );
        for bad in ["", "x", "a[", "a[1]", "c[1]", "oo", "c[70000,\"x\"]", "é"] {
            assert!(parse_frame(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_payload_roundtrip() {
        let p = client_payload(&["a\u{2028}", "b"]);
        assert_eq!(p, "[\"a\\u2028\",\"b\"]");
        assert_eq!(
            parse_client_payload(p.as_bytes()).unwrap(),
            vec!["a\u{2028}", "b"]
        );
    }
}
