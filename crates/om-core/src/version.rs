//! oslo.messaging's version compatibility rule (`overview.md` §5).

use crate::{Error, Result};

/// A parsed `major.minor[.revision]` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major part.
    pub major: u64,
    /// Minor part.
    pub minor: u64,
    /// Revision, 0 when absent.
    pub revision: u64,
}

impl Version {
    /// Parses `major.minor[.rev]` with integer parts, as `prepare(version=…)`
    /// validates it; anything else is a [`Error::Messaging`] error with
    /// oslo's message.
    pub fn parse(s: &str) -> Result<Version> {
        let bad = || {
            Error::Messaging(format!(
                "Version must contain a major and minor integer. Got {s}"
            ))
        };
        let num = |p: Option<&str>| -> Result<u64> {
            match p {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse::<u64>().map_err(|_| bad())
                }
                _ => Err(bad()),
            }
        };
        // Parsed in place: a client checks its version cap on every call.
        let mut parts = s.split('.');
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let revision = match parts.next() {
            Some(r) => num(Some(r))?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Version {
            major,
            minor,
            revision,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

/// `is_compatible(implemented, requested)` exactly as oslo computes it:
///
/// 1. `implemented` is `None` → compatible; 2. `requested` is `None` → not;
/// 3. major parts must be equal; 4. requested minor ≤ implemented minor;
/// 5. with equal minors, requested revision ≤ implemented revision.
///
/// Unparseable versions are never compatible (Python raises `ValueError`
/// there; a server must not dispatch such a request).
pub fn is_compatible(implemented: Option<&str>, requested: Option<&str>) -> bool {
    let Some(implemented) = implemented else {
        return true;
    };
    let Some(requested) = requested else {
        return false;
    };
    let (Ok(i), Ok(r)) = (Version::parse(implemented), Version::parse(requested)) else {
        return false;
    };
    if i.major != r.major {
        return false;
    }
    if r.minor > i.minor {
        return false;
    }
    if r.minor == i.minor && r.revision > i.revision {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_table() {
        let cases = [
            ("1.23", "1.23", true),
            ("1.24", "1.23", true),
            ("1.22", "1.23", false),
            ("2.23", "1.23", false),
            ("1.23", "2.23", false),
            ("1.23", "1.23.1", false),
            ("1.23.1", "1.23.2", false),
            ("1.23.2", "1.23.1", true),
            ("1.24", "1.23.1", true),
            ("1.23.0", "1.23", true),
            ("1.5", "1.3.7", true),
            ("1.5", "0.9", false),
        ];
        for (i, r, want) in cases {
            assert_eq!(is_compatible(Some(i), Some(r)), want, "{i} vs {r}");
        }
        assert!(is_compatible(None, Some("9.9")));
        assert!(!is_compatible(Some("1.0"), None));
    }

    #[test]
    fn parse_rejects_like_prepare() {
        for bad in ["5", "5.a", "5.5.a", "", "a.b", "1.2.3.4", "1..2", "-1.2"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Version::parse("2.4").unwrap(),
            Version {
                major: 2,
                minor: 4,
                revision: 0
            }
        );
    }
}
