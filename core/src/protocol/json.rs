//! JSON text from the wire as the Go reference reads it, where serde_json is stricter:
//! lone UTF-16 surrogate escapes (what `JSON.stringify` makes of a cut emoji) become
//! U+FFFD, and nesting is measured without recursion so that deep documents can be
//! parsed on a stack of their own (or refused) instead of overflowing this one.
//!
//! Wire values here are hostile: every index is bounds-checked and no arithmetic can
//! overflow (enforced by `clippy::arithmetic_side_effects`).
#![deny(clippy::arithmetic_side_effects)]

/// Deepest nesting of arrays and objects accepted, as Go's `encoding/json`.
pub const MAX_DEPTH: usize = 10_000;

/// The deepest nesting of arrays and objects in `text`, counted outside strings, without
/// parsing it (a document with unbalanced brackets is measured all the same).
pub fn nesting_depth(text: &[u8]) -> usize {
    let mut depth: usize = 0;
    let mut deepest: usize = 0;
    for (_, b) in brackets(text) {
        if b == b'[' || b == b'{' {
            depth = depth.saturating_add(1);
            deepest = deepest.max(depth);
        } else {
            depth = depth.saturating_sub(1);
        }
    }
    deepest
}

/// The brackets (`[ ] { }`) of `text` outside strings, with their byte offsets: the one scan
/// that [`nesting_depth`] and [`truncate_nesting`] share.
fn brackets(text: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut in_string = false;
    let mut escaped = false;
    text.iter().enumerate().filter_map(move |(i, &b)| {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            return None;
        }
        match b {
            b'"' => {
                in_string = true;
                None
            }
            b'[' | b'{' | b']' | b'}' => Some((i, b)),
            _ => None,
        }
    })
}

/// `text` with every lone surrogate escape (`\ud83d` not followed by its low half, or a low
/// half alone) replaced by `\ufffd`, as Go's decoder reads them; `None` when there is none.
/// Escapes are recognised as JSON defines them (an escaped backslash is not an escape).
pub fn replace_lone_surrogates(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            i = i.saturating_add(1);
            continue;
        }
        if bytes.get(i.saturating_add(1)) != Some(&b'u') {
            // Any other escape: skip it whole (so `\\` never starts one).
            i = i.saturating_add(2);
            continue;
        }
        let Some(unit) = hex4(bytes, i.saturating_add(2)) else {
            i = i.saturating_add(2);
            continue;
        };
        let next = i.saturating_add(6);
        let lone = match unit {
            0xD800..=0xDBFF => {
                let paired = bytes.get(next) == Some(&b'\\')
                    && bytes.get(next.saturating_add(1)) == Some(&b'u')
                    && hex4(bytes, next.saturating_add(2))
                        .is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                if paired {
                    i = next.saturating_add(6);
                    continue;
                }
                true
            }
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if lone {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(text.get(copied..i)?);
            o.push_str("\\ufffd");
            copied = next;
        }
        i = next;
    }
    let mut o = out?;
    o.push_str(text.get(copied..)?);
    Some(o)
}

/// `text` with every array or object nested deeper than `max` levels replaced by `null`
/// (counted outside strings), so that what is left of a too deep document (its method and
/// callbacks, say) can still be read.
pub fn truncate_nesting(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut depth: usize = 0;
    let mut skipping = false;
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    for (i, b) in brackets(text.as_bytes()) {
        if b == b'[' || b == b'{' {
            depth = depth.saturating_add(1);
            if depth == max.saturating_add(1) && !skipping {
                out.push_str(text.get(copied..i).unwrap_or(""));
                out.push_str("null");
                skipping = true;
            }
        } else {
            if skipping && depth == max.saturating_add(1) {
                skipping = false;
                copied = i.saturating_add(1);
            }
            depth = depth.saturating_sub(1);
        }
    }
    if !skipping {
        out.push_str(text.get(copied..).unwrap_or(""));
    }
    out
}

/// The four hex digits at `at` as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at.checked_add(4)?)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let cases = [
            (r#""x\ud83d""#, Some(r#""x\ufffd""#)),
            (r#""\udc00x""#, Some(r#""\ufffdx""#)),
            (r#""\ud83d\ud83d\ude00""#, Some(r#""\ufffd\ud83d\ude00""#)),
            (r#""\uD83D\uDE00""#, None),
            (r#""\\ud83d""#, None),
            (r#""\\\ud83d""#, Some(r#""\\\ufffd""#)),
            (r#""plain""#, None),
            (r#""\ud83d"#, Some(r#""\ufffd"#)),
            (r#""\u12""#, None),
        ];
        for (text, want) in cases {
            assert_eq!(replace_lone_surrogates(text).as_deref(), want, "{text}");
        }
        // What serde_json then reads is what Go reads.
        let fixed = replace_lone_surrogates(r#"["x\ud83d"]"#).unwrap();
        let v: Vec<String> = serde_json::from_str(&fixed).unwrap();
        assert_eq!(v, vec!["x\u{fffd}"]);
    }

    #[test]
    fn truncation_keeps_the_shallow_part() {
        assert_eq!(
            truncate_nesting(r#"{"a":[[[1]],"]"],"b":{"c":[2]}}"#, 2),
            r#"{"a":[null,"]"],"b":{"c":null}}"#
        );
        assert_eq!(truncate_nesting("[1]", 5), "[1]");
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(truncate_nesting(&deep, 3), "[[[null]]]");
    }

    #[test]
    fn depth_counts_outside_strings() {
        assert_eq!(nesting_depth(b"1"), 0);
        assert_eq!(nesting_depth(br#"{"a":[[1],{"b":2}]}"#), 3);
        assert_eq!(nesting_depth(br#"["[[[[", "\"[["]"#), 1);
        assert_eq!(nesting_depth("[".repeat(20_000).as_bytes()), 20_000);
        assert_eq!(nesting_depth(b"]]]]["), 1);
    }
}
