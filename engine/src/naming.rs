//! Naming rules shared by every table in the lake.
//!
//! Athena (and Glue) lower-case every identifier, so a Delta column `CustomerID` would be
//! unreadable there. The lake therefore accepts only lower-case snake_case names
//! (`[a-z_][a-z0-9_]*`, at most 128 characters) for zones, tables and columns.

use std::fmt;
use std::str::FromStr;

use crate::error::{EngineError, Result};

const MAX_NAME_LEN: usize = 128;

/// Check that `name` is lower-case snake_case; `what` names the kind of thing in the error.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("it is longer than {MAX_NAME_LEN} characters"))
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        Some("it starts with a digit".to_string())
    } else {
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')).map(|bad| {
            format!(
                "'{bad}' is not allowed; use lower-case snake_case such as '{}' so Athena can read it",
                suggest_snake_case(name)
            )
        })
    };
    match reason {
        Some(reason) => Err(EngineError::InvalidName { what, name: name.to_string(), reason }),
        None => Ok(()),
    }
}

/// `CustomerID` → `customer_id`, `Unit Price` → `unit_price`, `e-mail` → `e_mail`.
pub fn suggest_snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.trim().chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if !out.is_empty() && !out.ends_with('_') && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) { format!("_{out}") } else { out }
}

/// A table's identity in the lake: `zone.table`, stored at `<root>/<zone>/<table>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    zone: String,
    name: String,
}

impl TableId {
    /// A validated table id.
    pub fn new(zone: impl Into<String>, name: impl Into<String>) -> Result<Self> {
        let (zone, name) = (zone.into(), name.into());
        validate_name("zone", &zone)?;
        validate_name("table", &name)?;
        Ok(Self { zone, name })
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Location relative to the lake root, e.g. `curated/customer_profiles`.
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.zone, self.name)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone, self.name)
    }
}

impl FromStr for TableId {
    type Err = EngineError;

    /// Parses `zone.table`.
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('.') {
            Some((zone, name)) if !name.contains('.') => TableId::new(zone, name),
            _ => Err(EngineError::InvalidName {
                what: "table",
                name: s.to_string(),
                reason: "expected ZONE.TABLE, for example raw.crm_members".to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_snake_case() {
        for ok in ["customer_id", "_source_uri", "dt", "r2d2"] {
            validate_name("column", ok).unwrap();
        }
    }

    #[test]
    fn rejects_others_with_a_suggestion() {
        let err = validate_name("column", "CustomerID").unwrap_err().to_string();
        assert!(err.contains("'CustomerID'"), "{err}");
        assert!(err.contains("customer_id"), "{err}");
        for bad in ["", "1abc", "unit price", "e-mail", "Ä"] {
            assert!(validate_name("column", bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn suggests_snake_case() {
        assert_eq!(suggest_snake_case("CustomerID"), "customer_id");
        assert_eq!(suggest_snake_case("InvoiceNo"), "invoice_no");
        assert_eq!(suggest_snake_case("Customer ID"), "customer_id");
        assert_eq!(suggest_snake_case("unitPrice"), "unit_price");
        assert_eq!(suggest_snake_case("e-mail"), "e_mail");
    }

    #[test]
    fn parses_table_ids() {
        let id: TableId = "curated.customer_profiles".parse().unwrap();
        assert_eq!(id.zone(), "curated");
        assert_eq!(id.name(), "customer_profiles");
        assert_eq!(id.relative_path(), "curated/customer_profiles");
        assert!("profiles".parse::<TableId>().is_err());
        assert!("a.b.c".parse::<TableId>().is_err());
        assert!("Raw.x".parse::<TableId>().is_err());
    }
}
