//! The identifiers the clean zone will compute, for the generator's ground truth.

use cdplake_zones::normalize::{email, phone, pii_hash};

pub fn email_hash(value: &str) -> String {
    pii_hash(&email(value).unwrap_or_default(), None)
}

pub fn phone_hash(value: &str) -> String {
    pii_hash(&phone(value, "GB").unwrap_or_default(), None)
}

/// Plain SHA-256 of a value as given (what a CRM stores for whatever it was handed).
pub fn sha256(value: &str) -> String {
    pii_hash(value, None)
}
