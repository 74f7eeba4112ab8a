//! URL-encoded forms, read whole and bounded: every field once, text only.

use bizcred_schemas::ReasonCode;

/// Most fields one form may have.
pub const MAX_FIELDS: usize = 256;

/// Why a form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// Larger than the page accepts.
    #[error("the form is larger than this page accepts")]
    TooLarge,
    /// Not URL-encoded UTF-8 text, too many fields or a field repeated.
    #[error("the form is not valid: {0}")]
    Invalid(String),
    /// A required field is missing or empty.
    #[error("the field {0} is required")]
    Missing(String),
}

impl FormError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            FormError::TooLarge => ReasonCode::FormTooLarge,
            FormError::Invalid(_) | FormError::Missing(_) => ReasonCode::FormInvalid,
        }
    }
}

/// A posted form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Reads `application/x-www-form-urlencoded` bytes of at most `max` bytes.
    pub fn parse(body: &[u8], max: usize) -> Result<Form, FormError> {
        if body.len() > max {
            return Err(FormError::TooLarge);
        }
        std::str::from_utf8(body).map_err(|_| FormError::Invalid("not UTF-8".into()))?;
        let mut fields: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if fields.len() >= MAX_FIELDS {
                return Err(FormError::Invalid("too many fields".into()));
            }
            if fields.iter().any(|(n, _)| *n == k) {
                return Err(FormError::Invalid(format!("{k} is repeated")));
            }
            fields.push((k.into_owned(), v.into_owned()));
        }
        Ok(Form { fields })
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field that must be present and not blank (trimmed).
    pub fn require(&self, name: &str) -> Result<&str, FormError> {
        match self.get(name).map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(FormError::Missing(name.to_owned())),
        }
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_strict() {
        let f = Form::parse(b"a=1&b=%3Cscript%3E", 100).expect("form");
        assert_eq!(f.get("b"), Some("<script>"));
        assert_eq!(Form::parse(&[b'a'; 101], 100), Err(FormError::TooLarge));
        assert_eq!(
            Form::parse(b"a=1&a=2", 100).expect_err("repeated").code(),
            ReasonCode::FormInvalid
        );
        assert_eq!(
            Form::parse(b"a=%20%20", 100)
                .expect("form")
                .require("a")
                .expect_err("blank"),
            FormError::Missing("a".into())
        );
    }
}
