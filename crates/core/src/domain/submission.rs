use serde::{Deserialize, Serialize};

use super::{ValidationError, check_text};

/// The competition's own id for an entry; repeating it returns the existing submission.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(s: &str, max_bytes: usize) -> Result<Self, ValidationError> {
        let bad = |message: String| Err(ValidationError::new("external_id", message));
        if s.is_empty() {
            return bad("must not be empty".into());
        }
        if s.len() > max_bytes {
            return bad(format!("is {} bytes, over the limit of {max_bytes}", s.len()));
        }
        check_text("external_id", s, false)?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The artist's text about a painting, given to the model with the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub fn parse(s: &str, max_bytes: usize) -> Result<Self, ValidationError> {
        let bad = |message: String| Err(ValidationError::new("description", message));
        if s.len() > max_bytes {
            return bad(format!("is {} bytes, over the limit of {max_bytes}", s.len()));
        }
        check_text("description", s, true)?;
        Ok(Self(s.to_string()))
    }

    /// Parses raw bytes, which must be UTF-8.
    pub fn parse_bytes(bytes: &[u8], max_bytes: usize) -> Result<Self, ValidationError> {
        if bytes.len() > max_bytes {
            return Err(ValidationError::new(
                "description",
                format!("is {} bytes, over the limit of {max_bytes}", bytes.len()),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ValidationError::new("description", "is not valid UTF-8"))?;
        Self::parse(text, max_bytes)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a submission is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionStatus {
    /// Stored and its job written; waiting for a worker.
    Queued,
    /// A worker holds it.
    Processing,
    /// Has a result.
    Done,
    /// Permanently failed; `failure_code` and `failure_reason` say why.
    Failed,
}

impl SubmissionStatus {
    pub const ALL: [SubmissionStatus; 4] = [Self::Queued, Self::Processing, Self::Done, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert!(Description::parse("Oil on canvas.\nSecond line\twith a tab", 100).is_ok());
        assert!(Description::parse("nul \0 byte", 100).is_err());
        assert!(Description::parse_bytes(&[0xff, 0xfe, 0x41], 100).is_err());
        assert!(Description::parse_bytes("ééé".as_bytes(), 5).is_err());
        let err = Description::parse("a sunset \u{202E}txt.exe", 100).unwrap_err();
        assert_eq!(err.field, "description");
        assert!(Description::parse("Huile sur toile — مرحبا", 100).is_ok());
    }

    #[test]
    fn external_ids() {
        assert!(ExternalId::parse("entry-0042", 64).is_ok());
        assert!(ExternalId::parse("", 64).is_err());
        assert!(ExternalId::parse("a\u{7}b", 64).is_err());
        assert!(ExternalId::parse(&"x".repeat(65), 64).is_err());
        for bidi in ["entry\u{2066}-1", "\u{200F}entry", "a\u{061C}b"] {
            assert_eq!(ExternalId::parse(bidi, 64).unwrap_err().field, "external_id", "{bidi:?}");
        }
    }
}
