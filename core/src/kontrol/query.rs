//! Kontrol queries: validation (username required, no gaps), version constraints, and the
//! audience of the tokens minted for a query.

use crate::protocol::{Kite, KiteQuery};

const FIELDS: [&str; 7] = [
    "username",
    "environment",
    "name",
    "version",
    "region",
    "hostname",
    "id",
];

/// A validated query: what storage matches exactly, plus an optional version constraint.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Exact-match query for storage (version cleared when it is a constraint).
    pub exact: KiteQuery,
    /// Version constraint applied after the storage lookup.
    pub constraint: Option<semver::VersionReq>,
}

impl Prepared {
    /// Whether `kite` satisfies the query (exact fields and the constraint).
    pub fn matches(&self, kite: &Kite) -> bool {
        crate::kontrol::storage::matches(kite, &self.exact)
            && self
                .constraint
                .as_ref()
                .is_none_or(|c| version_matches(c, &kite.version))
    }
}

fn version_matches(c: &semver::VersionReq, version: &str) -> bool {
    semver::Version::parse(version).is_ok_and(|v| c.matches(&v))
}

/// Validates a query like the reference: username required; a field may only be set if
/// every field before it is set. The version is either an exact version or a constraint
/// (`">= 1.0, < 1.4"`, `"~1.2"`, `"1.x"` …).
pub fn prepare(q: &KiteQuery) -> Result<Prepared, String> {
    if q.username.is_empty() {
        return Err("Empty username field".into());
    }
    let mut empty: Option<&str> = None;
    for (name, value) in FIELDS.iter().zip(q.values()) {
        if value.is_empty() {
            empty.get_or_insert(name);
        } else if let Some(missing) = empty {
            return Err(format!("Invalid query. Query option is not set: {missing}"));
        }
    }
    let mut exact = q.clone();
    let mut constraint = None;
    if !q.version.is_empty() && semver::Version::parse(&q.version).is_err() {
        let req = parse_constraint(&q.version)
            .map_err(|e| format!("invalid version constraint {:?}: {e}", q.version))?;
        constraint = Some(req);
        exact.version.clear();
    }
    Ok(Prepared { exact, constraint })
}

/// Parses a Go-style (hashicorp/go-version) constraint into a semver requirement: `=`
/// means exact, and partial versions are allowed (`>= 1.0`).
fn parse_constraint(s: &str) -> Result<semver::VersionReq, String> {
    let normalized: Vec<String> = s
        .split(',')
        .map(|part| {
            let p = part.trim();
            let op_len = p
                .find(|c: char| c.is_ascii_digit() || c == 'v')
                .unwrap_or(p.len());
            let (op, ver) = p.split_at(op_len);
            let op = match op.trim() {
                "" | "=" | "==" => "=",
                other => other,
            };
            format!("{op}{}", ver.trim().trim_start_matches('v'))
        })
        .collect();
    semver::VersionReq::parse(&normalized.join(", ")).map_err(|e| e.to_string())
}

/// The audience of a token minted for `q`: `/username`, `/username/environment` or
/// `/username/environment/name`.
pub fn audience(q: &KiteQuery) -> String {
    if !q.name.is_empty() {
        format!("/{}/{}/{}", q.username, q.environment, q.name)
    } else if !q.environment.is_empty() {
        format!("/{}/{}", q.username, q.environment)
    } else {
        format!("/{}", q.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(fields: [&str; 7]) -> KiteQuery {
        let [username, environment, name, version, region, hostname, id] = fields.map(String::from);
        KiteQuery {
            username,
            environment,
            name,
            version,
            region,
            hostname,
            id,
        }
    }

    #[test]
    fn rules() {
        assert_eq!(
            prepare(&q(["", "", "", "", "", "", ""])).unwrap_err(),
            "Empty username field"
        );
        assert_eq!(
            prepare(&q(["u", "", "math", "", "", "", ""])).unwrap_err(),
            "Invalid query. Query option is not set: environment"
        );
        assert!(prepare(&q(["u", "e", "math", "1.0.0", "", "", ""]))
            .unwrap()
            .constraint
            .is_none());
        let p = prepare(&q(["u", "e", "math", ">= 1.0, < 1.4", "", "", ""])).unwrap();
        assert!(p.exact.version.is_empty());
        let kite = |v: &str| Kite {
            username: "u".into(),
            environment: "e".into(),
            name: "math".into(),
            version: v.into(),
            ..Kite::default()
        };
        assert!(p.matches(&kite("1.0.0")) && p.matches(&kite("1.3.9")));
        assert!(
            !p.matches(&kite("1.4.0")) && !p.matches(&kite("0.9.0")) && !p.matches(&kite("junk"))
        );
        assert!(prepare(&q(["u", "e", "math", ">= banana", "", "", ""]))
            .unwrap_err()
            .starts_with("invalid version constraint"));
    }

    #[test]
    fn audiences() {
        assert_eq!(audience(&q(["u", "", "", "", "", "", ""])), "/u");
        assert_eq!(audience(&q(["u", "e", "", "", "", "", ""])), "/u/e");
        assert_eq!(audience(&q(["u", "e", "n", "1.0.0", "", "", ""])), "/u/e/n");
    }
}
