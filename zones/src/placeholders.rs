//! Placeholder identifiers: values that systems write when they have no real one (`guest`,
//! `N/A`, `test@test.com`, `noemail@shop.com`, an all-zero device id, `undefined`).
//!
//! Such a value is shared by strangers, so it must never join them into one person. Rules work
//! on the normalised plaintext (an email trimmed and lower-cased, a phone in E.164); since CRM
//! files arrive hashed, [`Placeholders::hashes`] also knows the hashes of the common placeholder
//! plaintexts. No list is complete: the identity job also finds placeholders from the data (an
//! identifier seen with more persons than one person can have is a hub).

use std::collections::HashSet;

use crate::normalize::pii_hash;

/// What kind of value an identifier column holds, for choosing the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A normalised email address (`local@domain`).
    Email,
    /// An E.164 phone number (`+447700900123`).
    Phone,
    /// Any other id: a member id, a device id, a union id, ...
    Other,
}

/// Words that mean "no value" in any id column (compared lower-cased, without the separators
/// `-`, `_`, `.`, space, `/`, brackets).
const NO_VALUE_WORDS: &[&str] = &[
    "",
    "0",
    "00",
    "na",
    "nan",
    "nil",
    "null",
    "none",
    "nothing",
    "undefined",
    "undef",
    "unknown",
    "unkown",
    "notset",
    "notavailable",
    "notapplicable",
    "unavailable",
    "notprovided",
    "notgiven",
    "noemail",
    "nomail",
    "noreply",
    "donotreply",
    "nophone",
    "nonumber",
    "missing",
    "empty",
    "blank",
    "default",
    "test",
    "testing",
    "tester",
    "testuser",
    "demo",
    "sample",
    "example",
    "dummy",
    "fake",
    "placeholder",
    "tbd",
    "tba",
    "todo",
    "xxx",
    "xx",
    "x",
    "abc",
    "asdf",
    "qwerty",
    "guest",
    "guestuser",
    "anonymous",
    "anon",
    "visitor",
    "nobody",
    "noone",
    "user",
    "customer",
    "member",
    "device",
    "deviceid",
    "unionid",
    "openid",
    "id",
    "false",
    "true",
    "error",
    "invalid",
    "deleted",
    "removed",
    "private",
    "hidden",
    "redacted",
    "system",
    "admin",
    "root",
];

/// Email local parts that stand for "no address" (after removing digits at the end).
const PLACEHOLDER_LOCAL_PARTS: &[&str] = &[
    "test",
    "testing",
    "tester",
    "noemail",
    "no-email",
    "no_email",
    "no.email",
    "nomail",
    "no-mail",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "none",
    "null",
    "nil",
    "na",
    "n/a",
    "n.a",
    "unknown",
    "nobody",
    "noone",
    "no-one",
    "anonymous",
    "anon",
    "guest",
    "dummy",
    "fake",
    "sample",
    "example",
    "placeholder",
    "invalid",
    "default",
    "email",
    "mail",
    "user",
    "customer",
    "abc",
    "asdf",
    "qwerty",
    "xxx",
    "xx",
    "x",
    "a",
    "aa",
    "aaa",
    "demo",
    "nothing",
    "notprovided",
    "not-provided",
    "not_provided",
    "notavailable",
    "noaddress",
    "no-address",
    "none-given",
    "nonegiven",
];

/// Domains no real mailbox lives under (RFC 2606 / 6761 names and common fill-ins).
const PLACEHOLDER_DOMAINS: &[&str] = &[
    "test.com",
    "test.org",
    "test.net",
    "testing.com",
    "noemail.com",
    "no-email.com",
    "nomail.com",
    "none.com",
    "null.com",
    "na.com",
    "nowhere.com",
    "invalid.com",
    "fake.com",
    "dummy.com",
    "placeholder.com",
    "domain.com",
    "email.invalid",
    "example.invalid",
    "localhost",
    "localdomain",
];

/// Top-level names reserved for tests and examples, never delivered to.
const RESERVED_TLDS: &[&str] = &["test", "invalid", "localhost", "example", "local"];

/// Domains paired with the placeholder local parts when building the hash list (a CRM that
/// hashes `test@example.com` hashes it exactly so).
const HASHED_DOMAINS: &[&str] = &[
    "test.com",
    "example.com",
    "example.org",
    "example.net",
    "email.com",
    "mail.com",
    "domain.com",
    "noemail.com",
    "nomail.com",
    "none.com",
    "na.com",
    "gmail.com",
    "qq.com",
    "163.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "test.org",
    "fake.com",
    "invalid.com",
    "abc.com",
    "xxx.com",
    "company.com",
    "shop.com",
];

/// Country calling codes whose all-same-digit numbers go into the hash list.
const PHONE_PREFIXES: &[(&str, usize)] = &[("+86", 11), ("+44", 10), ("+1", 10), ("+49", 10), ("+33", 9), ("+81", 10)];

/// The longest placeholder word (without separators): longer values skip the word list.
const LONGEST_WORD: usize = 24;

/// The rule a value breaks, if it is a placeholder.
pub fn placeholder_rule(value: &str, kind: IdKind) -> Option<&'static str> {
    let trimmed = value.trim();
    // Most values are long ids or hashes in lower case: no copy for them.
    let lower = if trimmed.bytes().any(|b| b.is_ascii_uppercase()) || !trimmed.is_ascii() {
        std::borrow::Cow::Owned(trimmed.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    };
    if kind == IdKind::Other && lower.len() > LONGEST_WORD * 2 {
        return long_value_rule(&lower);
    }
    let bare: String = lower.chars().filter(|c| !is_separator(*c)).collect();
    if NO_VALUE_WORDS.contains(&bare.as_str()) || matches!(&*lower, "-1" | "-99" | "-999" | "?" | "??") {
        return Some("placeholder word");
    }
    match kind {
        IdKind::Email => email_rule(&lower),
        IdKind::Phone => phone_rule(&bare),
        IdKind::Other => other_rule(&bare),
    }
}

/// [`other_rule`] for a long value (a hash, a UUID), without copying it.
fn long_value_rule(lower: &str) -> Option<&'static str> {
    let mut bare = lower.bytes().filter(|b| !is_separator(*b as char));
    let first = bare.next()?;
    let (mut same, mut up, mut down, mut previous) = (true, true, true, first);
    for b in bare {
        same &= b == first;
        up &= b == previous + 1 || (previous == b'9' && b == b'0');
        down &= previous == b + 1 || (previous == b'0' && b == b'9');
        previous = b;
    }
    match (same, first) {
        (true, b'0') => Some("all zeros"),
        (true, _) => Some("repeated character"),
        _ if up || down => Some("counting sequence"),
        _ => None,
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, '-' | '_' | '.' | ' ' | '/' | '(' | ')' | '[' | ']' | '{' | '}' | ':' | '+' | '#' | '\'' | '"')
}

fn email_rule(email: &str) -> Option<&'static str> {
    let (local, domain) = email.rsplit_once('@')?;
    let stem = local.trim_end_matches(|c: char| c.is_ascii_digit());
    if PLACEHOLDER_LOCAL_PARTS.contains(&stem) || PLACEHOLDER_LOCAL_PARTS.contains(&local) {
        return Some("placeholder email address");
    }
    if PLACEHOLDER_DOMAINS.contains(&domain)
        || domain.rsplit('.').next().is_some_and(|tld| RESERVED_TLDS.contains(&tld))
    {
        return Some("placeholder email domain");
    }
    let local_bare: String = local.chars().filter(|c| c.is_alphanumeric()).collect();
    if local_bare.is_empty() || same_character(&local_bare) && local_bare.len() >= 2 {
        return Some("placeholder email address");
    }
    None
}

fn phone_rule(digits: &str) -> Option<&'static str> {
    let digits: String = digits.chars().filter(|c| c.is_ascii_digit()).collect();
    // The subscriber part: what follows a country code of 1 to 3 digits.
    let national = (1..=3)
        .filter_map(|n| digits.get(n..))
        .any(|rest| rest.len() >= 6 && (same_character(rest) || is_sequence(rest)));
    if digits.len() < 6 || same_character(&digits) || national || is_sequence(&digits) {
        return Some("placeholder phone number");
    }
    None
}

fn other_rule(bare: &str) -> Option<&'static str> {
    if bare.chars().all(|c| c == '0') {
        return Some("all zeros");
    }
    if bare.len() >= 4 && same_character(bare) {
        return Some("repeated character");
    }
    // Six or more: five-digit customer numbers such as 23456 are real ids.
    if bare.len() >= 6 && is_sequence(bare) {
        return Some("counting sequence");
    }
    None
}

fn same_character(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|first| chars.all(|c| c == first))
}

/// `123456789`, `0123456789`, `987654321`, `abcdef`: every character one above (or below)
/// the previous one.
fn is_sequence(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 5 {
        return false;
    }
    let up = bytes.windows(2).all(|w| w[1] == w[0] + 1 || (w[0] == b'9' && w[1] == b'0'));
    let down = bytes.windows(2).all(|w| w[0] == w[1] + 1 || (w[0] == b'0' && w[1] == b'9'));
    up || down
}

/// Placeholder plaintexts whose hashes stand for "no value" in hashed columns.
fn hashed_plaintexts() -> Vec<String> {
    let mut texts: Vec<String> = NO_VALUE_WORDS.iter().map(|w| w.to_string()).collect();
    texts.extend(
        ["n/a", "n.a.", "-", "--", "(null)", "<null>", "[null]", "#n/a", "not set", "not available"].map(String::from),
    );
    for local in PLACEHOLDER_LOCAL_PARTS {
        for domain in HASHED_DOMAINS.iter().chain(PLACEHOLDER_DOMAINS) {
            texts.push(format!("{local}@{domain}"));
        }
    }
    for digit in '0'..='9' {
        for (prefix, length) in PHONE_PREFIXES {
            texts.push(format!("{prefix}{}", digit.to_string().repeat(*length)));
        }
        for length in 6..=12 {
            texts.push(digit.to_string().repeat(length));
        }
    }
    for (prefix, _) in PHONE_PREFIXES {
        texts.push(format!("{prefix}1234567890"));
        texts.push(format!("{prefix}123456789"));
    }
    texts.extend(
        ["1234567890", "123456789", "0123456789", "12345678", "13800138000", "+8613800138000"].map(String::from),
    );
    texts
}

/// Hashes of placeholder plaintexts, in both forms a lake meets: plain SHA-256 (what seed
/// 001's CRM stores) and the lake's keyed HMAC (what clean writes when `CDPLAKE_PII_KEY` is set).
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    hashes: HashSet<String>,
}

impl Placeholders {
    pub fn new(pii_key: Option<&[u8]>, extra_plaintexts: &[String]) -> Self {
        let mut hashes = HashSet::new();
        let texts = hashed_plaintexts().into_iter().chain(extra_plaintexts.iter().map(|t| t.trim().to_lowercase()));
        for text in texts {
            hashes.insert(pii_hash(&text, None));
            if let Some(key) = pii_key {
                hashes.insert(pii_hash(&text, Some(key)));
            }
        }
        Self { hashes }
    }

    /// Whether `value` (a lower-case hex hash) is the hash of a placeholder.
    pub fn is_placeholder_hash(&self, value: &str) -> bool {
        self.hashes.contains(value.trim())
    }

    /// How many hashes are known.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_words_in_any_column() {
        for value in ["guest", "N/A", "undefined", "(null)", "Unknown", " none ", "0", "-1", "TEST", "anonymous", "000"]
        {
            assert!(placeholder_rule(value, IdKind::Other).is_some(), "{value}");
        }
        for value in ["MBR0000123", "C0012345", "union_0001234", "DEV00012340", "ck0000042", "14527", "23456", "1"] {
            assert_eq!(placeholder_rule(value, IdKind::Other), None, "{value}");
        }
    }

    #[test]
    fn placeholder_device_ids() {
        for value in
            ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "123456789", "aaaa"]
        {
            assert!(placeholder_rule(value, IdKind::Other).is_some(), "{value}");
        }
        assert_eq!(placeholder_rule("6f1c2a9e-0b7d-4c1e-9f3a-2d4b5c6e7f80", IdKind::Other), None);
        // Long values (hashes) take the copy-free path, with the same rules.
        assert_eq!(placeholder_rule(&"0".repeat(64), IdKind::Other), Some("all zeros"));
        assert_eq!(placeholder_rule(&"F".repeat(64), IdKind::Other), Some("repeated character"));
        let hash = crate::normalize::pii_hash("alice@example.com", None);
        assert_eq!(placeholder_rule(&hash, IdKind::Other), None);
    }

    #[test]
    fn placeholder_emails() {
        for value in [
            "test@test.com",
            "noemail@myshop.com",
            "no-reply@brand.co.uk",
            "none@none.com",
            "a@a.com",
            "xxx@gmail.com",
            "test123@example.com",
            "jane@doe.invalid",
            "donotreply@x.io",
        ] {
            assert!(placeholder_rule(value, IdKind::Email).is_some(), "{value}");
        }
        for value in ["alice.wang1@example.com", "bob@shop-mail.example.org", "testa.rossi@gmail.com", "ann@test.co"] {
            assert_eq!(placeholder_rule(value, IdKind::Email), None, "{value}");
        }
    }

    #[test]
    fn placeholder_phones() {
        for value in ["+440000000000", "+8611111111111", "+11234567890", "0000000"] {
            assert!(placeholder_rule(value, IdKind::Phone).is_some(), "{value}");
        }
        assert_eq!(placeholder_rule("+447911123456", IdKind::Phone), None);
    }

    #[test]
    fn hashes_of_placeholders_plain_and_keyed() {
        let plain = Placeholders::new(None, &[]);
        assert!(plain.is_placeholder_hash(&pii_hash("test@test.com", None)));
        assert!(plain.is_placeholder_hash(&pii_hash("guest", None)));
        assert!(plain.is_placeholder_hash(&pii_hash("+8600000000000", None)));
        assert!(!plain.is_placeholder_hash(&pii_hash("alice.wang1@example.com", None)));
        let keyed = Placeholders::new(Some(b"secret"), &["ops@internal.example".to_string()]);
        assert!(keyed.is_placeholder_hash(&pii_hash("noemail@test.com", Some(b"secret"))));
        assert!(keyed.is_placeholder_hash(&pii_hash("ops@internal.example", None)));
    }
}
