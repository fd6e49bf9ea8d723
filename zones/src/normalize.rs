//! Normalising identifiers and treating personal data: emails, E.164 phones, ISO countries,
//! keyed hashing and masking.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Trimmed and lower-cased, if it looks like `local@domain.tld`.
pub fn email(value: &str) -> Option<String> {
    let email = value.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && !domain.contains('@');
    valid.then_some(email)
}

/// E.164 (`+447700900123`), reading numbers without a country code in `region` (ISO alpha-2).
///
/// A number the numbering plan does not allocate (`+1 555 …`, a test range) is still a number
/// its owner gave: it is kept in E.164 when it has the length of one (8 to 15 digits), so the
/// same number hashes the same in every system. Too short or not a number: `None`.
pub fn phone(value: &str, region: &str) -> Option<String> {
    phone_in(value, &[region])
}

/// [`phone`] trying several regions for a number without a country code: the first region in
/// which the number is valid wins (a UK mobile in a row whose country is France is still the UK
/// mobile); if none, the first region's reading when it has the length of a number.
pub fn phone_in(value: &str, regions: &[&str]) -> Option<String> {
    use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumber, PhoneNumberFormat, enums::Region};
    let value = value.trim();
    let e164 = |number: &PhoneNumber| number.format_as(PhoneNumberFormat::E164).to_string();
    // Parsing is the costly part of cleaning a contact table: each region is read only when
    // the regions before it gave no valid number, and a region named twice is read once.
    // (rlibphonenumber: the `phonenumber` crate kept its regexes behind one process-wide lock
    // and was 8x slower on one core, 18x on two, and misread `+49 (0) 30 1234567` in region US.)
    let mut first_reading = None;
    for (i, region) in regions.iter().enumerate() {
        if regions[..i].contains(region) {
            continue;
        }
        let Some(number) = PHONE_NUMBER_UTIL.parse(value, region.parse::<Region>().ok()).ok() else {
            continue;
        };
        if number.is_valid() {
            return Some(e164(&number));
        }
        first_reading.get_or_insert(number);
    }
    let first = e164(&first_reading?);
    let digits = first.chars().filter(char::is_ascii_digit).count();
    (8..=15).contains(&digits).then_some(first)
}

/// An id as systems write it: trimmed; `13085.0` (a whole number through a float column) → `13085`.
pub fn id(value: &str) -> String {
    let value = value.trim();
    match value.split_once('.') {
        Some((whole, fraction))
            if !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && !fraction.is_empty()
                && fraction.bytes().all(|b| b == b'0') =>
        {
            whole.to_string()
        }
        _ => value.to_string(),
    }
}

/// ISO 3166-1 alpha-2 from an alpha-2 or alpha-3 code or an English name, case-insensitive,
/// with the spellings real files use (`EIRE`, `RSA`, `USA`, `UK`, ...). `None` when the value
/// names no country (`Unspecified`, `European Community`).
pub fn country(value: &str) -> Option<String> {
    let key = value.trim().to_uppercase();
    country_codes().get(key.as_str()).map(|code| code.to_string())
}

/// Every spelling [`country`] knows, upper-cased, to its alpha-2 code: the ISO names, then the
/// alpha-3 and alpha-2 codes, then the aliases, each later kind winning over an earlier one.
/// Built once: cleaning reads a country per row (and again for each phone's region).
fn country_codes() -> &'static std::collections::HashMap<String, &'static str> {
    static CODES: std::sync::OnceLock<std::collections::HashMap<String, &'static str>> = std::sync::OnceLock::new();
    CODES.get_or_init(|| {
        let mut codes = std::collections::HashMap::new();
        for c in rust_iso3166::ALL.iter() {
            codes.entry(c.name.to_uppercase()).or_insert(c.alpha2);
        }
        for c in rust_iso3166::ALL.iter() {
            codes.insert(c.alpha3.to_uppercase(), c.alpha2);
        }
        for c in rust_iso3166::ALL.iter() {
            codes.insert(c.alpha2.to_uppercase(), c.alpha2);
        }
        for (alias, code) in ALIASES {
            codes.insert(alias.to_string(), code);
        }
        codes
    })
}

/// Common names that differ from the ISO short names.
const ALIASES: &[(&str, &str)] = &[
    ("UK", "GB"),
    ("UNITED KINGDOM", "GB"),
    ("GREAT BRITAIN", "GB"),
    ("ENGLAND", "GB"),
    ("SCOTLAND", "GB"),
    ("WALES", "GB"),
    ("NORTHERN IRELAND", "GB"),
    ("EIRE", "IE"),
    ("IRELAND", "IE"),
    ("USA", "US"),
    ("UNITED STATES", "US"),
    ("UNITED STATES OF AMERICA", "US"),
    ("AMERICA", "US"),
    ("RSA", "ZA"),
    ("SOUTH AFRICA", "ZA"),
    ("CZECH REPUBLIC", "CZ"),
    ("CZECHIA", "CZ"),
    ("RUSSIA", "RU"),
    ("SOUTH KOREA", "KR"),
    ("KOREA", "KR"),
    ("VIETNAM", "VN"),
    ("HONG KONG", "HK"),
    ("TAIWAN", "TW"),
    ("IRAN", "IR"),
    ("SYRIA", "SY"),
    ("BOLIVIA", "BO"),
    ("VENEZUELA", "VE"),
    ("TANZANIA", "TZ"),
    ("MOLDOVA", "MD"),
    ("LAOS", "LA"),
    ("NETHERLANDS", "NL"),
    ("HOLLAND", "NL"),
    ("THE NETHERLANDS", "NL"),
    ("UNITED ARAB EMIRATES", "AE"),
    ("UAE", "AE"),
    ("CHINA", "CN"),
    ("PRC", "CN"),
];

/// SHA-256 of the normalised value, keyed (HMAC-SHA256) when a key is set; lower-case hex.
///
/// Unkeyed, `sha256("alice@example.com")` equals what seed 001 stores as `email_hash`.
pub fn pii_hash(value: &str, key: Option<&[u8]>) -> String {
    match key {
        Some(key) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
            mac.update(value.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        None => hex::encode(Sha256::digest(value.as_bytes())),
    }
}

/// The key for [`pii_hash`] from `CDPLAKE_PII_KEY`, if set and non-empty.
pub fn pii_key_from_env() -> Option<Vec<u8>> {
    std::env::var("CDPLAKE_PII_KEY").ok().filter(|k| !k.is_empty()).map(String::into_bytes)
}

/// Partly hidden: `alice@example.com` → `a****@example.com`, `+447700900123` → `+44*******123`.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if let Some(at) = value.find('@') {
        let local: Vec<char> = value[..at].chars().collect();
        let first = local.first().map(|c| c.to_string()).unwrap_or_default();
        return format!("{first}{}{}", "*".repeat(local.len().saturating_sub(1)), &value[at..]);
    }
    let keep_start = if value.starts_with('+') { 3 } else { 1 }.min(chars.len());
    let keep_end = 3.min(chars.len().saturating_sub(keep_start));
    let hidden = chars.len() - keep_start - keep_end;
    chars[..keep_start].iter().collect::<String>()
        + &"*".repeat(hidden)
        + &chars[chars.len() - keep_end..].iter().collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("  Alice.Smith@Example.COM ").as_deref(), Some("alice.smith@example.com"));
        assert_eq!(email("not-an-email"), None);
        assert_eq!(email("a@b"), None);
    }

    #[test]
    fn phones_to_e164() {
        assert_eq!(phone("07911 123456", "GB").as_deref(), Some("+447911123456"));
        assert_eq!(phone("+1 (415) 555-2671", "GB").as_deref(), Some("+14155552671"));
        assert_eq!(phone("12", "GB"), None);
        // Not allocated (a fictional 555 number), but a number: kept, so it hashes the same everywhere.
        assert_eq!(phone("(555) 123-4567", "US").as_deref(), Some("+15551234567"));
        assert_eq!(phone("+1 555 123 4567", "GB").as_deref(), Some("+15551234567"));
        // A UK mobile in a row whose country is France: valid only as a UK number.
        assert_eq!(phone_in("07911 123456", &["FR", "GB"]).as_deref(), Some("+447911123456"));
        assert_eq!(phone_in("(415) 555-2671", &["US", "GB"]).as_deref(), Some("+14155552671"));
        // An international number with a national trunk prefix in brackets, read in another region.
        assert_eq!(phone("+49 (0) 30 1234567", "US").as_deref(), Some("+49301234567"));
        assert_eq!(phone("+86 138 0013 8000", "US").as_deref(), Some("+8613800138000"));
    }

    #[test]
    fn ids_from_float_columns() {
        assert_eq!(id(" 13085.0 "), "13085");
        assert_eq!(id("13085"), "13085");
        assert_eq!(id("A1.0"), "A1.0");
        assert_eq!(id("1.5"), "1.5");
    }

    #[test]
    fn countries() {
        for (input, code) in
            [("United Kingdom", "GB"), ("EIRE", "IE"), ("fr", "FR"), ("DEU", "DE"), ("RSA", "ZA"), ("Japan", "JP")]
        {
            assert_eq!(country(input).as_deref(), Some(code), "{input}");
        }
        assert_eq!(country("Unspecified"), None);
        assert_eq!(country("European Community"), None);
    }

    #[test]
    fn hashing_matches_plain_sha256_and_hmac() {
        assert_eq!(pii_hash("", None), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_ne!(pii_hash("a@b.co", Some(b"k")), pii_hash("a@b.co", None));
        assert_eq!(pii_hash("a@b.co", Some(b"k")).len(), 64);
    }

    #[test]
    fn masking() {
        assert_eq!(mask("alice@example.com"), "a****@example.com");
        assert_eq!(mask("+447700900123"), "+44*******123");
    }
}
