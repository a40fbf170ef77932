//! What a key may do: `admin`, or one kind of access to one competition.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{CompetitionSlug, ValidationError};

/// A kind of access to one competition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Upload entries (single and bulk).
    Submit,
    /// Read results, leaderboards, progress and exports.
    Read,
    /// Score entries as a juror.
    Judge,
    /// Run the competition's jury: add jurors, open and close rounds, import score sheets,
    /// override scores (docs/JURIES.md).
    Manage,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Submit => "submit",
            Access::Read => "read",
            Access::Judge => "judge",
            Access::Manage => "manage",
        }
    }
}

/// One grant of a key: `admin` (everything, keys and competitions included) or
/// `competition:<slug>:submit|read|judge|manage`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Admin,
    Competition { slug: CompetitionSlug, access: Access },
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = || {
            ValidationError::new(
                "scopes",
                format!("unknown scope {raw:?}; use `admin` or `competition:<slug>:submit|read|judge|manage`"),
            )
        };
        if raw == "admin" {
            return Ok(Scope::Admin);
        }
        let rest = raw.strip_prefix("competition:").ok_or_else(bad)?;
        let (slug, access) = rest.rsplit_once(':').ok_or_else(bad)?;
        let access = match access {
            "submit" => Access::Submit,
            "read" => Access::Read,
            "judge" => Access::Judge,
            "manage" => Access::Manage,
            _ => return Err(bad()),
        };
        let slug = CompetitionSlug::parse(slug).map_err(|_| bad())?;
        Ok(Scope::Competition { slug, access })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Competition { slug, access } => write!(f, "competition:{slug}:{}", access.as_str()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Scope::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A key's scopes, and the questions the routes ask of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

/// The most scopes one key holds.
pub const MAX_SCOPES: usize = 64;

impl Scopes {
    /// Parses a key's scopes: at least one, at most [`MAX_SCOPES`], duplicates dropped.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > MAX_SCOPES {
            return Err(ValidationError::new("scopes", format!("give 1 to {MAX_SCOPES} scopes")));
        }
        let mut scopes: Vec<Scope> = Vec::with_capacity(raw.len());
        for s in raw {
            let scope = Scope::parse(s.as_ref())?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(Self(scopes))
    }

    pub fn is_admin(&self) -> bool {
        self.0.contains(&Scope::Admin)
    }

    /// Whether the key may do `access` in the competition `slug`.
    pub fn allows(&self, slug: &str, access: Access) -> bool {
        self.is_admin()
            || self.0.iter().any(|s| matches!(s, Scope::Competition { slug: s, access: a } if s.as_str() == slug && *a == access))
    }

    /// Whether the key holds any scope in `slug`: a key that does not may not learn that the
    /// competition exists (it gets the 404 an unknown competition gets).
    pub fn knows(&self, slug: &str) -> bool {
        self.is_admin() || self.0.iter().any(|s| matches!(s, Scope::Competition { slug: s, .. } if s.as_str() == slug))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// As stored in `api_keys.scopes`.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(Scope::to_string).collect()
    }
}

/// Whether `c` may stand in a key's name (see [`parse_key_name`]).
pub fn is_key_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "-_.:@()'/".contains(c)
}

/// A key's label (`jury: Anna Müller`, `ci uploads`): 1–100 letters, digits, spaces and
/// `- _ . : @ ( ) ' /`, so it prints safely in a log, a list or a page.
pub fn parse_key_name(raw: &str) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ValidationError::new("name", "must be 1 to 100 characters long"));
    }
    if !name.chars().all(is_key_name_char) {
        return Err(ValidationError::new("name", "may hold letters, digits, spaces and - _ . : @ ( ) ' / only"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_back() {
        for raw in ["admin", "competition:spring-salon:submit", "competition:spring-salon:read", "competition:abc:judge", "competition:abc:manage"] {
            assert_eq!(Scope::parse(raw).unwrap().to_string(), raw);
        }
    }

    #[test]
    fn bad_scopes_are_refused() {
        for raw in [
            "",
            "Admin",
            "competition:spring-salon",
            "competition:spring-salon:write",
            "competition:Spring:read",
            "competition::read",
            "competition:a:read",
            "competition:spring-salon:read:extra",
            "competition:spring\u{202e}salon:read",
        ] {
            assert!(Scope::parse(raw).is_err(), "{raw:?} should be refused");
        }
        assert!(Scopes::parse::<&str>(&[]).is_err());
        assert!(Scopes::parse(&vec!["admin"; MAX_SCOPES + 1]).is_err());
    }

    #[test]
    fn key_names_are_printable_labels() {
        assert_eq!(parse_key_name("  jury: Anna Müller (2026) ").unwrap(), "jury: Anna Müller (2026)");
        for bad in ["", "   ", "a\u{202e}b", "tab\there", "new\nline", "<script>", &"x".repeat(101)] {
            assert!(parse_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_sees_only_its_competitions() {
        let scopes = Scopes::parse(&["competition:spring:read", "competition:spring:read", "competition:autumn:submit"]).unwrap();
        assert_eq!(scopes.iter().count(), 2, "duplicates dropped");
        assert!(scopes.allows("spring", Access::Read));
        assert!(!scopes.allows("spring", Access::Submit));
        assert!(scopes.knows("autumn") && !scopes.allows("autumn", Access::Read));
        assert!(!scopes.knows("winter"));
        assert!(!scopes.is_admin());
        let admin = Scopes::parse(&["admin"]).unwrap();
        assert!(admin.is_admin() && admin.allows("anything", Access::Judge) && admin.knows("anything"));
    }
}
