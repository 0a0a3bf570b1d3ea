//! Invariants of the parsers that read bytes from the network, as functions of one byte
//! string each: the fuzz targets in `fuzz/` call them with libFuzzer's inputs, and
//! `core/tests/fuzz_corpus.rs` replays the committed corpus through the same functions.
//! Each returns normally when the invariants hold and panics when one is broken (a panic
//! is what a fuzzer reports).
//!
//! Not part of the API: hidden from the docs, and free to change with the parsers.

use std::sync::{OnceLock, Weak};

use serde_json::Value;

use crate::auth::{parse_unverified, KiteClaims, Verifier};
use crate::dnode::{BoxFuture, FunctionSink, Message};
use crate::kontrol::query;
use crate::protocol::{Kite, KiteError, KiteQuery};
use crate::sockjs::frame::{self, Frame, PayloadError};

/// An invariant check: returns when the input keeps the invariants, panics otherwise.
pub type Invariant = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` and corpus directory) and its
/// invariant function.
pub const TARGETS: &[(&str, Invariant)] = &[
    ("sockjs_payload", sockjs_payload),
    ("sockjs_frame", sockjs_frame),
    ("dnode_message", dnode_message),
    ("call_options", call_options),
    ("jwt", jwt),
    ("kontrol_query", kontrol_query),
];

/// A client's SockJS payload (`["m1","m2"]`): the fast splitter agrees with serde_json, and
/// what parses is written back and parsed again to the same messages.
pub fn sockjs_payload(data: &[u8]) {
    let got = frame::parse_client_payload(data);
    let reference = if data.is_empty() {
        Err(PayloadError::Empty)
    } else {
        // Read as the Go reference reads it: invalid UTF-8 and lone surrogate escapes become
        // U+FFFD (what serde_json refuses outright).
        let parsed = serde_json::from_slice::<Value>(data).or_else(|e| {
            let text = String::from_utf8_lossy(data);
            let fixed = crate::protocol::json::replace_lone_surrogates(&text);
            match (fixed, &text) {
                (Some(fixed), _) => serde_json::from_str::<Value>(&fixed),
                (None, std::borrow::Cow::Owned(t)) => serde_json::from_str(t),
                (None, std::borrow::Cow::Borrowed(_)) => Err(e),
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
    };
    assert_eq!(got, reference, "payload {:?}", lossy(data));
    if let Ok(messages) = got {
        let again = frame::client_payload(&messages);
        assert_eq!(
            frame::parse_client_payload(again.as_bytes()).as_ref(),
            Ok(&messages),
            "round trip through {again:?}"
        );
    }
}

/// A server's SockJS frame as a client reads it: `a[…]` agrees with serde_json, messages
/// and close frames round-trip, and quoting any text yields JSON that reads back as it and
/// carries none of the characters SockJS escapes.
pub fn sockjs_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match frame::parse_frame(text) {
        Ok(Frame::Messages(messages)) => {
            let body = text.trim_end_matches('\n');
            if let Some(array) = body.strip_prefix('a') {
                // Lone surrogate escapes read as U+FFFD, as the Go reference reads them.
                let fixed = crate::protocol::json::replace_lone_surrogates(array);
                let reference: Vec<String> =
                    serde_json::from_str(fixed.as_deref().unwrap_or(array)).unwrap_or_else(|e| {
                        panic!("accepted {body:?} that serde_json refuses: {e}")
                    });
                assert_eq!(messages, reference, "frame {body:?}");
            }
            let again = frame::array_frame(&messages);
            assert_eq!(
                frame::parse_frame(&again),
                Ok(Frame::Messages(messages.clone())),
                "round trip through {again:?}"
            );
            if let [one] = messages.as_slice() {
                let m = frame::message_frame(one);
                assert_eq!(
                    frame::parse_frame(&m),
                    Ok(Frame::Messages(messages.clone()))
                );
            }
        }
        Ok(Frame::Close(reason)) => {
            let again = reason.frame();
            assert_eq!(
                frame::parse_frame(&again),
                Ok(Frame::Close(reason.clone())),
                "round trip through {again:?}"
            );
        }
        Ok(Frame::Open | Frame::Heartbeat) | Err(_) => {}
    }
    let mut quoted = String::new();
    frame::push_quoted(&mut quoted, text);
    let back: String = serde_json::from_str(&quoted)
        .unwrap_or_else(|e| panic!("quoted {text:?} as {quoted:?}, which is not JSON: {e}"));
    assert_eq!(back, text);
    for c in quoted.chars() {
        let v = c as u32;
        assert!(
            v >= 0x20
                && !matches!(v, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff),
            "quoted {text:?} as {quoted:?}, leaving {c:?} unescaped"
        );
    }
}

/// A dnode message with callbacks: the typed fast parse agrees with the reference parse
/// through a `Value` tree, a parsed message is written and read back unchanged, and every
/// callback path is followed and decoded without panicking.
pub fn dnode_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fast = Message::parse(text);
    let reference = Message::parse_value(text);
    match (&fast, &reference) {
        (Ok(a), Ok(b)) => assert!(same_message(a, b), "fast {a:?}\nreference {b:?}"),
        (Err(_), Err(_)) => {}
        // The typed parse skips fields it does not know without converting them (as Go's
        // decoder does), so it accepts `{"x":1e400,…}`, which a `Value` tree refuses; what it
        // returns must be what the reference reads from the message without those fields.
        (Ok(a), Err(_)) => {
            let known = Message::parse_value(&a.to_json());
            assert!(
                known.as_ref().is_ok_and(|b| same_message(a, b)),
                "fast parse of {text:?} gave {a:?}, which the reference reads as {known:?}"
            );
        }
        (Err(_), Ok(_)) => {
            panic!("parses disagree on {text:?}: fast {fast:?}, reference {reference:?}")
        }
    }
    let Ok(message) = fast else { return };
    let again = message.to_json();
    let back = Message::parse(&again)
        .unwrap_or_else(|e| panic!("wrote {message:?} as {again:?}, which does not parse: {e}"));
    // A peer can spell one callback id two ways (`"02"` and `"2"`): two keys, so Go and we
    // both read two functions calling remote callback 2. Written back, the id has one
    // spelling, and a JSON object keeps a repeated key once: the round trip holds only for
    // messages whose ids are distinct (found by this target: regress-callback-id-spelled-twice).
    let mut ids: Vec<u64> = message.callbacks.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() == message.callbacks.len() {
        assert!(
            same_message(&message, &back),
            "round trip through {again:?}"
        );
    }
    let mut arguments = message.arguments.clone();
    let mut functions = Vec::new();
    for (id, path) in &message.callbacks {
        if crate::dnode::value_at_mut(&mut arguments, path).is_some() {
            functions.push((path.clone(), *id));
        }
    }
    let args = crate::dnode::Arguments::received(message.arguments, functions, Weak::<Sink>::new());
    for i in 0..=args.len() {
        let _ = args.at::<Value>(i);
        let _ = args.function(i);
        let _ = args.at::<crate::protocol::CallOptions>(i);
    }
    let _ = args.get::<Vec<Value>>();
}

/// A call's options as the server decodes them (typed, straight from the message text) agree
/// with decoding them from a `Value` tree wherever the full parse succeeds.
pub fn call_options(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(lazy) = crate::dnode::LazyMessage::parse(text) else {
        return;
    };
    let got = crate::peer::call_options(&lazy, text);
    let reference = Message::parse(text)
        .ok()
        .map(|m| match m.arguments.into_iter().next() {
            Some(v @ Value::Object(_)) => {
                serde_json::from_value::<crate::protocol::CallOptions>(v).map_err(|_| ())
            }
            _ => Err(()),
        });
    match (&got, &reference) {
        (Some(Ok(a)), Some(Ok(b))) => assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "options of {text:?} disagree"
        ),
        (Some(Err(_)), Some(Err(()))) | (None, None) => {}
        // A message only the full parse refuses: nested deeper than its limit, or with a
        // number out of range in a field the typed decoder skips unconverted (as Go's
        // decoder does). Options decoded then must be what the reference reads from them
        // written back without those fields.
        (Some(Err(_)), None) => {}
        (Some(Ok(a)), None) => {
            let raw = match lazy.first_argument() {
                Ok(Some(raw)) => raw.get(),
                _ => panic!("options of {text:?} decoded without a first argument"),
            };
            let typed = serde_json::from_str::<crate::protocol::CallOptions>(raw)
                .unwrap_or_else(|e| panic!("options of {text:?} decoded, then not: {e}"));
            assert_eq!(format!("{a:?}"), format!("{typed:?}"));
        }
        _ => panic!("call options of {text:?}: decoded {got:?}, reference {reference:?}"),
    }
}

/// Reference kite key (signed by the reference's Kontrol) and the key that signed it.
const KONTROL_PEM: &str = include_str!("auth/testdata/golden_kontrol.pem");
const KITE_KEY: &str = include_str!("auth/testdata/golden_kite.key");

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        #[allow(clippy::expect_used)]
        Verifier::new("kontrol", Some(KONTROL_PEM)).expect("the golden Kontrol key parses")
    })
}

/// JWT and kite-key verification. The first byte picks the input: even, the rest is the
/// JWT; odd, the rest overwrites the reference kite key at the offset its next two bytes
/// give (so the fuzzer works on a real signature). Whatever it is: no panic, claims that
/// parse serialize and parse back to themselves, and nothing verifies unless its signed
/// part is the reference kite key's (no forgery).
pub fn jwt(data: &[u8]) {
    let golden = KITE_KEY.trim();
    let token = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 && rest.len() >= 2 => {
            let at = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % golden.len().max(1);
            let mut bytes = golden.as_bytes().to_vec();
            for (i, b) in rest[2..].iter().enumerate() {
                match bytes.get_mut(at.saturating_add(i)) {
                    Some(slot) => *slot = *b,
                    None => bytes.push(*b),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Some((_, rest)) => String::from_utf8_lossy(rest).into_owned(),
        None => return,
    };
    if let Ok(claims) = parse_unverified(&token) {
        let json = serde_json::to_string(&claims).unwrap_or_default();
        let back: KiteClaims = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("claims {claims:?} written as {json:?} do not parse: {e}"));
        assert_eq!(back, claims);
    }
    let signed_part = |t: &str| t.rsplit_once('.').map(|(m, _)| m.to_string());
    if let Ok(claims) = verifier().verify_kite_key(&token) {
        assert_eq!(
            signed_part(&token),
            signed_part(golden),
            "verified a kite key the reference Kontrol never signed: {token:?}"
        );
        assert_eq!(Some(claims), parse_unverified(golden).ok());
    }
    let local = Kite {
        username: "u".into(),
        environment: "e".into(),
        name: "n".into(),
        ..Kite::default()
    };
    if verifier().verify_token(&token, &local).is_ok() {
        panic!("verified a token nobody signed: {token:?}");
    }
}

/// A Kontrol query: as JSON (input starting with `{`) or as fields separated by `0xff`.
/// Validation never panics; a valid query has a username and no gaps, its audience starts
/// with `/username`, and a kite with exactly its fields matches it.
pub fn kontrol_query(data: &[u8]) {
    let q = if data.first() == Some(&b'{') {
        match serde_json::from_slice::<KiteQuery>(data) {
            Ok(q) => q,
            Err(_) => return,
        }
    } else {
        let mut fields = data
            .split(|b| *b == 0xff)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let mut next = || fields.next().unwrap_or_default();
        KiteQuery {
            username: next(),
            environment: next(),
            name: next(),
            version: next(),
            region: next(),
            hostname: next(),
            id: next(),
        }
    };
    let Ok(prepared) = query::prepare(&q) else {
        return;
    };
    let values = q.values();
    assert!(!q.username.is_empty());
    if let Some(gap) = values.iter().position(|v| v.is_empty()) {
        assert!(
            values[gap..].iter().all(|v| v.is_empty()),
            "accepted a query with a gap: {q:?}"
        );
    }
    if prepared.constraint.is_some() {
        assert!(prepared.exact.version.is_empty());
    }
    let audience = query::audience(&q);
    assert!(
        audience.starts_with(&format!("/{}", q.username)),
        "{audience:?} for {q:?}"
    );
    let filled = |v: &str| {
        if v.is_empty() {
            "x".to_string()
        } else {
            v.to_string()
        }
    };
    let kite = Kite {
        username: filled(&q.username),
        environment: filled(&q.environment),
        name: filled(&q.name),
        version: filled(&q.version),
        region: filled(&q.region),
        hostname: filled(&q.hostname),
        id: filled(&q.id),
    };
    if prepared.constraint.is_none() {
        assert!(prepared.matches(&kite), "{kite:?} does not match {q:?}");
    } else {
        let _ = prepared.matches(&kite);
    }
}

/// Messages equal, numbers compared as JSON numbers (serde_json's default float parser
/// may read a written float back one unit in the last place off).
fn same_message(a: &Message, b: &Message) -> bool {
    a.method == b.method
        && a.callbacks == b.callbacks
        && a.arguments.len() == b.arguments.len()
        && a.arguments
            .iter()
            .zip(&b.arguments)
            .all(|(x, y)| same_json(x, y))
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 2.0,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_json(vx, vy))
        }
        _ => a == b,
    }
}

fn lossy(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(256)]).into_owned()
}

/// A connection that sends nothing, for arguments decoded outside a connection.
struct Sink;

impl FunctionSink for Sink {
    fn call_function(
        &self,
        _: u64,
        _: Value,
        _: Vec<(crate::dnode::Path, crate::dnode::Callback)>,
    ) -> BoxFuture<'_, Result<(), KiteError>> {
        Box::pin(async { Ok(()) })
    }
}
