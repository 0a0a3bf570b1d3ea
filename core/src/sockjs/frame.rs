//! SockJS frames, IO-free: what the server writes (`o`, `h`, `a[…]`, `c[…]`) and what
//! clients send (a JSON array of strings).
//!
//! Both the server transports and the client use these functions, so the exact bytes on
//! the wire are decided in one place.
#![deny(clippy::arithmetic_side_effects)]

use serde_json::Value;

use crate::protocol::json::replace_lone_surrogates;

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
        let mut out = String::with_capacity(self.reason.len().saturating_add(12));
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
    let v = x ^ LO.wrapping_mul(b as u64);
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
    w.copy_from_slice(&bytes[i..i.saturating_add(8)]);
    u64::from_le_bytes(w)
}

/// Index of the first byte at or after `i` that [`push_quoted`] must look at: a control
/// byte, `"`, `\`, or 0xE2/0xEF (the lead bytes of every character SockJS escapes beyond
/// JSON, U+200C…U+206F and U+FFF0…U+FFFF).
#[inline]
fn next_to_quote(bytes: &[u8], mut i: usize) -> usize {
    while i.saturating_add(8) <= bytes.len() {
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
        i = i.saturating_add(8);
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 || b == b'"' || b == b'\\' || b == 0xE2 || b == 0xEF {
            return i;
        }
        i = i.saturating_add(1);
    }
    i
}

/// Index of the first control byte, `"` or `\\` in `bytes` (its length if none).
#[inline]
fn next_json_special(bytes: &[u8]) -> usize {
    let mut i: usize = 0;
    while i.saturating_add(8) <= bytes.len() {
        let x = word(bytes, i);
        if has_control(x) | has_byte(x, b'"') | has_byte(x, b'\\') != 0 {
            break;
        }
        i = i.saturating_add(8);
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 || b == b'"' || b == b'\\' {
            return i;
        }
        i = i.saturating_add(1);
    }
    i
}

/// Appends `s` as a JSON string literal, escaping what SockJS requires.
pub fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len().saturating_add(2));
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
            start = i.saturating_add(1);
        } else if (c as u32) < 0x20 || needs_sockjs_escape(c) {
            out.push_str(&s[start..i]);
            push_unicode_escape(out, c as u32);
            start = i.saturating_add(c.len_utf8());
        }
        i = next_to_quote(bytes, i.saturating_add(c.len_utf8()));
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
    let len = messages.iter().fold(0usize, |n, m| {
        n.saturating_add(m.as_ref().len()).saturating_add(3)
    });
    let mut out = String::with_capacity(len.saturating_add(3));
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
    let mut out = String::with_capacity(message.len().saturating_add(3));
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
    if let Some(messages) = string_array(payload) {
        return Ok(messages);
    }
    let parsed = serde_json::from_slice::<Value>(payload).or_else(|e| {
        // As the reference reads it: invalid UTF-8 and lone surrogate escapes become U+FFFD.
        let text = String::from_utf8_lossy(payload);
        match replace_lone_surrogates(&text) {
            Some(fixed) => serde_json::from_str::<Value>(&fixed),
            None if matches!(text, std::borrow::Cow::Owned(_)) => serde_json::from_str(&text),
            None => Err(e),
        }
    });
    match parsed {
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

/// A JSON array of strings: the fast split, else the JSON parser (without a `Value` tree).
fn string_array(payload: &[u8]) -> Option<Vec<String>> {
    split_array(payload).or_else(|| serde_json::from_slice(payload).ok())
}

/// `["…","…"]` — what every SockJS client sends — split and unescaped without a JSON
/// parser (serde_json decodes escapes one call at a time; kite messages are JSON inside JSON
/// and full of `\"`). Takes only the exact shape clients produce: no whitespace between
/// tokens, and the escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (surrogate pairs
/// included). `None` for anything else — a lone surrogate, a raw control byte, invalid
/// UTF-8 — and the JSON parser then decides, so the result is always the parser's.
fn split_array(payload: &[u8]) -> Option<Vec<String>> {
    let mut rest = payload.strip_prefix(b"[\"")?;
    let mut out = Vec::new();
    loop {
        // Sized for the rest of the frame: exact for the usual one message per frame.
        let mut s: Vec<u8> = Vec::with_capacity(rest.len());
        loop {
            let n = next_json_special(rest);
            s.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            match *rest.first()? {
                b'"' => break,
                b'\\' => {
                    let (c, len) = unescape(rest)?;
                    s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    rest = &rest[len..];
                }
                _ => return None,
            }
        }
        if s.capacity() > s.len().saturating_mul(2).saturating_add(64) {
            s.shrink_to_fit();
        }
        // Valid UTF-8 in, valid UTF-8 out: escapes only ever add whole characters.
        out.push(String::from_utf8(s).ok()?);
        match rest.get(1..)? {
            [b']'] => return Some(out),
            [b',', b'"', tail @ ..] => rest = tail,
            _ => return None,
        }
    }
}

/// The character of the escape at the start of `esc` (which begins with `\`), and the
/// escape's length; `None` when the JSON parser should decide.
#[inline]
fn unescape(esc: &[u8]) -> Option<(char, usize)> {
    let simple = match *esc.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(esc.get(2..6)?)?;
            if !(0xD800..0xE000).contains(&hi) {
                return Some((char::from_u32(hi)?, 6));
            }
            // A surrogate pair, high then low; a lone half is the parser's to refuse.
            if hi >= 0xDC00 || esc.get(6..8)? != b"\\u" {
                return None;
            }
            let lo = hex4(esc.get(8..12)?)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            let c = hi
                .checked_sub(0xD800)?
                .checked_mul(0x400)?
                .checked_add(lo.checked_sub(0xDC00)?)?
                .checked_add(0x10000)?;
            return Some((char::from_u32(c)?, 12));
        }
        _ => return None,
    };
    Some((simple, 2))
}

#[inline]
fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |v, &b| Some(v << 4 | (b as char).to_digit(16)?))
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
        'a' => string_array(rest.as_bytes())
            .or_else(|| string_array(replace_lone_surrogates(rest)?.as_bytes()))
            .map(Frame::Messages)
            .ok_or_else(bad),
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
        end = end.saturating_sub(1);
    }
    s[..end].to_string()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
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
            agrees(raw.as_bytes());
            // The same strings with every escape a client may write, and broken variants.
            let escaped = format!(
                "[{}]",
                group
                    .iter()
                    .map(|s| escape_all(s))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            agrees(escaped.as_bytes());
            assert!(split_array(escaped.as_bytes()).is_some(), "{escaped}");
            for cut in [1, 2, 3, 5, 7, 11] {
                agrees(&escaped.as_bytes()[..escaped.len().saturating_sub(cut)]);
            }
        }
        for raw in [
            r#"["\ud83d\ude80"]"#,
            r#"["\ud83d"]"#,
            r#"["\ude80"]"#,
            r#"["\ud83d\u0041"]"#,
            r#"["\ud83dx"]"#,
            r#"["\u00e9\u2028\uFFFF\u0000"]"#,
            r#"["\u12"]"#,
            r#"["\uzzzz"]"#,
            r#"["\x"]"#,
            r#"["\"]"#,
            r#"["a" ,"b"]"#,
            r#"[ "a"]"#,
            r#"["a"] "#,
            r#"["a",]"#,
            r#"["a""b"]"#,
            r#"["a"]x"#,
            r#"[""]"#,
            r#"["",""]"#,
            "[\"\t\"]",
            "[\"\u{7f}\"]",
            r#"["\/\b\f\n\r\t\"\\"]"#,
        ] {
            agrees(raw.as_bytes());
        }
        assert_eq!(split_array(br#"["\ud83d\ude80\/"]"#).unwrap(), ["🚀/"]);
        agrees(b"[\"\xff\"]");
        agrees(b"[\"\xe2\x98\"]");
        assert_eq!(
            split_array(br#"["{\"a\":1}","x"]"#).unwrap(),
            [r#"{"a":1}"#, "x"]
        );
    }

    /// The fast split, when it answers, says what the JSON parser says.
    fn agrees(raw: &[u8]) {
        let want = serde_json::from_slice::<Vec<String>>(raw).ok();
        if let Some(fast) = split_array(raw) {
            assert_eq!(Some(fast), want, "{:?}", String::from_utf8_lossy(raw));
        }
        // And what the whole payload parse decides never depends on the fast path.
        if let Some(want) = want {
            assert_eq!(parse_client_payload(raw).ok(), Some(want));
        }
    }

    /// `s` as a JSON string with escapes for quotes, controls and, by turns, `\uXXXX` for
    /// everything else (surrogate pairs beyond the BMP) and `\/` for slashes.
    fn escape_all(s: &str) -> String {
        let mut out = String::from("\"");
        for (i, c) in s.chars().enumerate() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                c if i % 2 == 0 || (c as u32) < 0x20 => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
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
        for bad in [
            "",
            "x",
            "a[",
            "a[1]",
            "a\"x\"",
            "c[1]",
            "oo",
            "c[70000,\"x\"]",
            "é",
        ] {
            assert!(parse_frame(bad).is_err(), "{bad:?}");
        }
        // Whatever a server writes comes back as it was (the fast split included).
        for group in tricky_strings().chunks(3) {
            let frame = array_frame(group);
            assert_eq!(
                parse_frame(&frame).unwrap(),
                Frame::Messages(group.to_vec())
            );
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
