//! `cdplake generate`: a deterministic, adversarial, seed-style multi-channel data set.
//!
//! One person shows up in several systems under different identifiers: a CRM member (hashed
//! mobile and email, delivered as a change log in which people move to a new email, then a new
//! phone), app devices (device_id, union_id, open_id; logins carry the member id), a web-shop
//! customer (plaintext email and phone, its own change log, orders, transactions, web and
//! behavioural events, support tickets), an Online Retail customer number, and identity link
//! files (a loyalty export that still uses old emails).
//!
//! What real data does and the identity job must survive is here on purpose: placeholder values
//! in every source, as plaintext and as hashes (`test@test.com`, `noemail@…`, `N/A`, all-zero
//! device ids, `undefined` union ids), logins as `guest` and as an unlisted demo account used on
//! dozens of devices, family tablets shared by two or three members, store kiosks used by
//! dozens, people known in one channel only, rows timed over years (a backfill), and a few rows
//! broken on purpose (an impossible date) for the quarantine.
//!
//! Beside the files it writes the truth: the owner of every real identifier that appears in the
//! data (`truth.csv`; placeholders and kiosks belong to no one) and every *true edge*, two
//! identifiers of the same person on one row (`truth_edges.csv`), so that a test can compute the
//! evidence ceiling (union-find over the true edges). No randomness from the system: the same
//! `--persons` and `--seed` give byte-identical files.

mod normalize_for_truth;
mod sink;

use std::collections::HashSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use chrono::{Duration, NaiveDate, NaiveDateTime};

use crate::normalize_for_truth as nz;
use crate::sink::Sink;

/// One generated file: its source and name (`<source>/<name>` under landing/).
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub source: &'static str,
    pub name: String,
    pub content: String,
}

/// The files and the truth about them.
#[derive(Debug, Clone)]
pub struct Generated {
    pub files: Vec<GeneratedFile>,
    /// `person_id,id_type,id_value`: the owner of every real identifier in the files.
    pub truth: String,
    /// `id_type_a,id_value_a,id_type_b,id_value_b`: two identifiers of one person on one row.
    pub truth_edges: String,
}

/// splitmix64: small, fast, and the same on every platform and version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A chance in ten thousand, for rare events.
    fn chance_bp(&mut self, basis_points: u64) -> bool {
        self.below(10_000) < basis_points
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia",
    "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yasmin",
];
const LAST: &[&str] = &[
    "Wang", "Chen", "Liu", "Zhang", "Li", "Smith", "Jones", "Brown", "Garcia", "Muller", "Rossi", "Dubois", "Silva",
    "Kim", "Sato", "Novak",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "post.example.com", "inbox.example.org"];
const COUNTRIES: &[&str] =
    &["United Kingdom", "GB", "France", "DE", "Germany", "Ireland", "EIRE", "Spain", "NL", "USA"];
/// What shop staff type when a customer gives no email.
const PLACEHOLDER_EMAILS: &[&str] =
    &["test@test.com", "noemail@shop.example.com", "N/A", "none@none.com", "noemail@noemail.com", "na@na.com"];
/// What CRM systems hash when a member gives no email (a plain SHA-256 of these).
const HASHED_PLACEHOLDERS: &[&str] = &["noemail@brand.example.com", "test@test.com", "n/a", "unknown"];
const ZERO_DEVICE: &str = "00000000-0000-0000-0000-000000000000";
const JUNK_UNION_IDS: &[&str] = &["undefined", "null", "unknown", "0"];
/// A shared account no placeholder list knows: only its degree gives it away.
const DEMO_ACCOUNT: &str = "STORE-DEMO-7";

/// Who an identifier on a row belongs to (`None`: a placeholder or a shared device of no one).
type Owner = Option<u64>;

/// The truth, written as the files are. What was written already is remembered by a 128-bit
/// fingerprint, not the text: 10M persons have 58M identifiers and 110M true edges.
struct Truth {
    truth: Sink,
    edges: Sink,
    known: HashSet<u128>,
    edge_set: HashSet<u128>,
}

/// The first 128 bits of the SHA-256 of `parts` joined by a unit separator.
fn fingerprint(parts: &[&str]) -> u128 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    u128::from_le_bytes(digest[..16].try_into().unwrap_or_default())
}

impl Truth {
    fn new(mut truth: Sink, mut edges: Sink) -> Self {
        let _ = writeln!(truth, "person_id,id_type,id_value");
        let _ = writeln!(edges, "id_type_a,id_value_a,id_type_b,id_value_b");
        Self { truth, edges, known: HashSet::new(), edge_set: HashSet::new() }
    }

    /// One row's identifiers: each real one is its owner's; same-owner pairs are true edges.
    fn row(&mut self, ids: &[(&str, String, Owner)]) {
        for (t, v, owner) in ids {
            if let Some(p) = owner
                && self.known.insert(fingerprint(&[t, v]))
            {
                let _ = writeln!(self.truth, "P{p:07},{t},{v}");
            }
        }
        for (i, (ta, va, oa)) in ids.iter().enumerate() {
            for (tb, vb, ob) in &ids[i + 1..] {
                if oa.is_some() && oa == ob && (ta, va) != (tb, vb) {
                    let (a, b) = if (ta, va) <= (tb, vb) { ((ta, va), (tb, vb)) } else { ((tb, vb), (ta, va)) };
                    if self.edge_set.insert(fingerprint(&[a.0, a.1, b.0, b.1])) {
                        let _ = writeln!(self.edges, "{},{},{},{}", a.0, a.1, b.0, b.1);
                    }
                }
            }
        }
    }
}

/// A person's contact points over time: the first one, then the ones they moved to.
struct Person {
    p: u64,
    first: &'static str,
    last: &'static str,
    emails: Vec<String>,
    phones: Vec<String>,
    /// When they joined; every row of theirs is later.
    since: NaiveDateTime,
}

/// A UK mobile as its owner writes it: nationally (`07911 123456`) in a UK row, with the
/// country code (`+44 7911 123456`) in a row of another country.
fn written_phone(national: &str, country: &str) -> String {
    if matches!(country, "United Kingdom" | "GB") {
        national.to_string()
    } else {
        format!("+44 {}", national.trim_start_matches('0'))
    }
}

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The files of every source, as they are built.
struct Files {
    customers: Sink,
    customer_changes: Sink,
    transactions: Sink,
    web: Sink,
    members: Sink,
    app: Sink,
    orders: Sink,
    dms: Sink,
    tickets: Sink,
    behavior: Sink,
    retail: Sink,
    links: Sink,
}

const CUSTOMER_HEADER: &str =
    "customer_id,email,phone,first_name,last_name,country,acquisition_channel,loyalty_tier,signup_date,updated_at";

/// Every generated file: its source, its name, and its header line (CSV) or none (NDJSON).
const FILES: [(&str, &str, Option<&str>); 12] = [
    ("customers", "customers.csv", Some(CUSTOMER_HEADER)),
    ("customers", "customers_changes.csv", Some(CUSTOMER_HEADER)),
    ("transactions", "transactions.csv", Some("transaction_id,customer_id,product_id,amount,transaction_date,status")),
    ("web_events", "web_events.json", None),
    ("crm_members", "crm_members.json", None),
    ("app_events", "app_events.json", None),
    (
        "orders",
        "orders.csv",
        Some("order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at"),
    ),
    (
        "orders",
        "orders_dms_changes.csv",
        Some("Op,order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at"),
    ),
    ("support_tickets", "support_tickets.csv", Some("ticket_id,customer_id,status,category,created_at,resolved_at")),
    ("behavioral_events", "behavioral_events.json", None),
    (
        "retail_transactions",
        "online_retail.csv",
        Some("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"),
    ),
    ("identity_links", "loyalty_links.csv", Some("id_type_a,id_value_a,id_type_b,id_value_b,source")),
];

/// Where the files go.
#[derive(Clone)]
enum Target {
    Memory,
    Dir { out: PathBuf, gzip: bool },
}

impl Target {
    fn sink(&self, relative: &str) -> std::io::Result<Sink> {
        match self {
            Target::Memory => Ok(Sink::memory()),
            Target::Dir { out, gzip } => Sink::file(&out.join(relative), *gzip),
        }
    }
}

impl Files {
    /// Every file opened, headers written, in the order of [`FILES`].
    fn open(target: &Target) -> std::io::Result<Self> {
        let mut sinks = Vec::new();
        for (source, name, header) in FILES {
            let mut sink = target.sink(&format!("{source}/{name}"))?;
            if let Some(header) = header {
                let _ = writeln!(sink, "{header}");
            }
            sinks.push(sink);
        }
        // Field by field in the order of FILES.
        let mut sinks = sinks.into_iter();
        let mut next = || sinks.next().ok_or_else(|| std::io::Error::other("one sink per file"));
        Ok(Self {
            customers: next()?,
            customer_changes: next()?,
            transactions: next()?,
            web: next()?,
            members: next()?,
            app: next()?,
            orders: next()?,
            dms: next()?,
            tickets: next()?,
            behavior: next()?,
            retail: next()?,
            links: next()?,
        })
    }

    /// The sinks in the order of [`FILES`].
    fn into_sinks(self) -> [Sink; 12] {
        let Files {
            customers,
            customer_changes,
            transactions,
            web,
            members,
            app,
            orders,
            dms,
            tickets,
            behavior,
            retail,
            links,
        } = self;
        [customers, customer_changes, transactions, web, members, app, orders, dms, tickets, behavior, retail, links]
    }
}

/// Generate every person into `f` and `truth`.
fn generate_into(persons: u64, seed: u64, f: &mut Files, truth: &mut Truth) {
    let mut rng = Rng(seed);
    let base = NaiveDate::from_ymd_opt(2021, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default();
    let mut members: Vec<u64> = Vec::new();
    // The DMS change file needs the first two orders only.
    let mut first_orders: Vec<(String, String)> = Vec::new();
    for p in 1..=persons {
        let person = new_person(&mut rng, p, base);
        let is_member = rng.chance(70);
        let has_app = is_member && rng.chance(80);
        let is_shopper = rng.chance(if is_member { 75 } else { 85 });
        let is_retail = rng.chance(12);
        if is_member {
            members.push(p);
            crm_versions(&mut rng, &person, f, truth);
        }
        if has_app {
            app_devices(&mut rng, &person, f, truth);
        }
        if is_shopper {
            shopper(&mut rng, &person, is_member, f, truth, &mut first_orders);
        }
        if is_retail {
            retail_customer(&mut rng, &person, f, truth);
        }
        if is_member && is_shopper && rng.chance(25) {
            // The loyalty programme's export links the card to the shop account.
            link(f, truth, ("member_id", format!("MBR{p:07}")), ("customer_id", format!("C{p:07}")), Some(p));
        }
    }
    shared_devices(&mut rng, &members, base, f, truth);
    dms_changes(&first_orders, base, &mut f.dms);
}

/// Generate every source for `persons` people: the files and the truth about them, in memory.
pub fn generate_with_truth(persons: u64, seed: u64) -> Generated {
    let target = Target::Memory;
    let opened = Files::open(&target).and_then(|f| Ok((f, target.sink("truth.csv")?, target.sink("truth_edges.csv")?)));
    let Ok((mut f, truth, edges)) = opened else { unreachable!("memory sinks cannot fail") };
    let mut truth = Truth::new(truth, edges);
    generate_into(persons, seed, &mut f, &mut truth);
    let text = |sink: Sink| {
        let finished = sink.finish().expect("memory sinks cannot fail");
        String::from_utf8(finished.bytes).expect("generated text is UTF-8")
    };
    let files: Vec<GeneratedFile> = FILES
        .iter()
        .zip(f.into_sinks())
        .map(|((source, name, _), sink)| file(source, name, text(sink)))
        .filter(has_rows)
        .collect();
    Generated { files, truth: text(truth.truth), truth_edges: text(truth.edges) }
}

/// What [`generate_to_dir`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The source files with rows, as `(source, path, lines)`.
    pub files: Vec<(&'static str, PathBuf, u64)>,
    pub truth: PathBuf,
    pub truth_edges: PathBuf,
}

/// Generate every source for `persons` people into `out/<source>/<file>` (plus `truth.csv` and
/// `truth_edges.csv`), written as generated: memory does not grow with the files. With `gzip`
/// every file is gzip-compressed (`.gz` appended). A file with no rows is not kept.
pub fn generate_to_dir(persons: u64, seed: u64, out: &Path, gzip: bool) -> std::io::Result<Written> {
    let target = Target::Dir { out: out.to_path_buf(), gzip };
    let mut f = Files::open(&target)?;
    let mut truth = Truth::new(target.sink("truth.csv")?, target.sink("truth_edges.csv")?);
    generate_into(persons, seed, &mut f, &mut truth);
    let mut files = Vec::new();
    for ((source, _, header), sink) in FILES.iter().zip(f.into_sinks()) {
        let finished = sink.finish()?;
        let path = finished.path.ok_or_else(|| std::io::Error::other("a file sink has a path"))?;
        if finished.lines > u64::from(header.is_some()) {
            files.push((*source, path, finished.lines));
        } else {
            std::fs::remove_file(&path)?;
            // Its source's directory goes too when no other file of the source is in it.
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
    let truth_path = truth.truth.finish()?.path.unwrap_or_default();
    let edges_path = truth.edges.finish()?.path.unwrap_or_default();
    Ok(Written { files, truth: truth_path, truth_edges: edges_path })
}

/// Generate every source for `persons` people; the truth as `person_id,id_type,id_value`.
pub fn generate(persons: u64, seed: u64) -> (Vec<GeneratedFile>, String) {
    let generated = generate_with_truth(persons, seed);
    (generated.files, generated.truth)
}

/// A file with at least one row (a CSV file's first line is its header).
fn has_rows(file: &GeneratedFile) -> bool {
    let header = usize::from(file.name.ends_with(".csv"));
    file.content.lines().count() > header
}

fn file(source: &'static str, name: &str, content: String) -> GeneratedFile {
    GeneratedFile { source, name: name.to_string(), content }
}

fn new_person(rng: &mut Rng, p: u64, base: NaiveDateTime) -> Person {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let domain = rng.pick(DOMAINS);
    let mut emails = vec![format!("{}.{}{}@{domain}", first.to_lowercase(), last.to_lowercase(), p)];
    let moves = if rng.chance(30) { 1 + rng.chance(25) as u64 } else { 0 };
    for m in 0..moves {
        emails.push(format!("{}{}.{}@{}", first.to_lowercase(), m + 2, p, rng.pick(DOMAINS)));
    }
    // Six digits hold 900,000 numbers: each further 900,000 people get the next mobile prefix, so
    // no two people share a number by accident (at 1M they did, from person 900,000 on).
    let (block, number) = (p / 900_000, 100_000 + p % 900_000);
    let mut phones = vec![format!("07{:03} {number:06}", 911 + 20 * block)];
    if rng.chance(20) {
        phones.push(format!("07{:03} {number:06}", 922 + 20 * block));
    }
    let since = base + Duration::days(rng.below(365 * 4) as i64) + Duration::minutes(rng.below(1440) as i64);
    Person { p, first, last, emails, phones, since }
}

/// The CRM's change log: a first version, then one per move to a new email or phone, and
/// versions that change only the points. Some members gave no email: a hashed placeholder.
fn crm_versions(rng: &mut Rng, person: &Person, f: &mut Files, truth: &mut Truth) {
    let p = person.p;
    let member = format!("MBR{p:07}");
    let placeholder = rng.chance(2).then(|| nz::sha256(rng.pick(HASHED_PLACEHOLDERS)));
    let (mut email, mut phone) = (0usize, 0usize);
    let mut at = person.since;
    let level = rng.pick(&["bronze", "silver", "gold"]);
    let versions = 1 + person.emails.len() + person.phones.len() - 2 + rng.below(2) as usize;
    for v in 0..versions {
        if v > 0 {
            at += Duration::days(30 + rng.below(400) as i64);
            if email + 1 < person.emails.len() && (phone + 1 >= person.phones.len() || rng.chance(60)) {
                email += 1;
            } else if phone + 1 < person.phones.len() {
                phone += 1;
            }
        }
        let email_hash = match &placeholder {
            Some(hash) => hash.clone(),
            None => nz::email_hash(&person.emails[email]),
        };
        let mobile_hash = nz::phone_hash(&person.phones[phone]);
        let owner_of_email = if placeholder.is_some() { None } else { Some(p) };
        truth.row(&[
            ("member_id", member.clone(), Some(p)),
            ("mobile_hash", mobile_hash.clone(), Some(p)),
            ("email_hash", email_hash.clone(), owner_of_email),
        ]);
        let _ = writeln!(
            f.members,
            r#"{{"member_id":"{member}","mobile_hash":"{mobile_hash}","email_hash":"{}","real_name":"{} {}","gender":"{}","birthday":"19{}-0{}-1{}","register_date":"{}","channel":"{}","level":"{level}","total_points":{},"updated_at":"{}"}}"#,
            if rng.chance(10) { email_hash.to_uppercase() } else { email_hash },
            person.first,
            person.last,
            rng.pick(&["F", "M"]),
            70 + rng.below(30),
            1 + rng.below(9),
            rng.below(10),
            person.since.format("%Y-%m-%d"),
            rng.pick(&["offline", "online", "miniapp"]),
            rng.below(3000),
            ts(at),
        );
    }
}

/// A member's app devices: a login first, then events; a few events carry a junk union id or
/// the all-zero device id; some devices once log in as `guest`.
fn app_devices(rng: &mut Rng, person: &Person, f: &mut Files, truth: &mut Truth) {
    let p = person.p;
    let member = format!("MBR{p:07}");
    let union_id = format!("union_{p:07}");
    for d in 0..(1 + rng.below(2)) {
        let device = format!("DEV{p:07}{d}");
        let open_id = format!("open_{p:07}{d}");
        let guest_once = rng.chance(4);
        for e in 0..(2 + rng.below(5)) {
            let at = person.since + Duration::hours(rng.below(24 * 450) as i64);
            let (device_id, device_owner) =
                if e > 0 && rng.chance(2) { (ZERO_DEVICE.to_string(), None) } else { (device.clone(), Some(p)) };
            let (union, union_owner) =
                if rng.chance(3) { (rng.pick(JUNK_UNION_IDS).to_string(), None) } else { (union_id.clone(), Some(p)) };
            let kind = if e == 0 {
                0
            } else if e == 1 && guest_once {
                4
            } else {
                rng.below(4)
            };
            let login = match kind {
                0 => Some((member.clone(), Some(p))),
                4 => Some(("guest".to_string(), None)),
                _ => None,
            };
            let mut ids = vec![
                ("device_id", device_id.clone(), device_owner),
                ("union_id", union.clone(), union_owner),
                ("open_id", open_id.clone(), Some(p)),
            ];
            if let Some((m, owner)) = &login {
                ids.push(("member_id", m.clone(), *owner));
            }
            truth.row(&ids);
            app_event(
                rng,
                f,
                &format!("EVT{p:07}{d}{e:02}"),
                &device_id,
                Some(&union),
                Some(&open_id),
                login.map(|l| l.0),
                at,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn app_event(
    rng: &mut Rng,
    f: &mut Files,
    event_id: &str,
    device: &str,
    union: Option<&str>,
    open: Option<&str>,
    login: Option<String>,
    at: NaiveDateTime,
) {
    let quoted = |v: Option<&str>| v.map_or("null".to_string(), |v| format!("\"{v}\""));
    let (event_type, page, item, price) = match (&login, rng.below(3)) {
        (Some(member), _) => ("login", member.clone(), "null".to_string(), "null".to_string()),
        (None, 0) => (
            "purchase",
            "checkout".into(),
            format!("\"SKU{:03}\"", rng.below(200)),
            format!("{}.{}", 5 + rng.below(500), rng.below(10)),
        ),
        (None, 1) => {
            ("add_cart", "product".into(), format!("\"SKU{:03}\"", rng.below(200)), format!("{}.0", 5 + rng.below(500)))
        }
        _ => ("view", "home".into(), "null".into(), "null".into()),
    };
    let _ = writeln!(
        f.app,
        r#"{{"event_id":"{event_id}","device_id":"{device}","union_id":{},"open_id":{},"event_type":"{event_type}","page_name":"{page}","item_id":{item},"item_price":{price},"channel":"{}","platform":"{}","event_time":"{}","session_id":"sess_{event_id}"}}"#,
        quoted(union),
        quoted(open),
        rng.pick(&["miniapp", "app"]),
        rng.pick(&["wechat", "ios", "android"]),
        ts(at),
    );
}

/// A web-shop customer: a change log of its own (the shop may keep an old email for a while),
/// orders, transactions, web and behavioural events, support tickets; some typed a placeholder.
fn shopper(
    rng: &mut Rng,
    person: &Person,
    is_member: bool,
    f: &mut Files,
    truth: &mut Truth,
    order_ids: &mut Vec<(String, String)>,
) {
    let p = person.p;
    let account = ShopAccount::new(rng, person, is_member);
    account_versions(rng, person, &account, f, truth);
    transactions_and_orders(rng, p, &account, f, order_ids);
    truth.row(&[("customer_id", account.customer_id.clone(), Some(p))]);
    web_events(rng, p, &account, f);
    browsing_sessions(rng, p, &account, f, truth);
    support_ticket(rng, p, &account, f);
    // The loyalty export still carries the email the person had when they joined.
    if person.emails.len() > 1 && account.placeholder.is_none() && rng.chance(50) {
        link(
            f,
            truth,
            ("customer_id", account.customer_id.clone()),
            ("email_hash", nz::email_hash(&person.emails[0])),
            Some(p),
        );
    }
    if rng.chance_bp(50) {
        // A shop account seen once in the web log only: known in one channel.
        truth.row(&[("customer_id", account.customer_id, Some(p))]);
    }
}

/// A shopper's account as the shop keeps it.
struct ShopAccount {
    customer_id: String,
    /// The address given to the shop when it is not the CRM's (one member in five).
    own_email: Option<String>,
    /// A placeholder typed instead of an email (one shopper in three).
    placeholder: Option<String>,
    country: &'static str,
    channel: &'static str,
    tier: &'static str,
    signup: NaiveDateTime,
}

impl ShopAccount {
    fn new(rng: &mut Rng, person: &Person, is_member: bool) -> Self {
        let p = person.p;
        // One in five members gave the shop another address than the CRM.
        let own_email = (is_member && rng.chance(20)).then(|| {
            format!("{}{}@{}", person.first.to_lowercase(), p, rng.pick(&["shopmail.example.com", "example.net"]))
        });
        let placeholder = rng.chance(3).then(|| rng.pick(PLACEHOLDER_EMAILS).to_string());
        ShopAccount {
            customer_id: format!("C{p:07}"),
            own_email,
            placeholder,
            country: rng.pick(COUNTRIES),
            channel: rng.pick(&["web", "mobile", "marketplace"]),
            tier: rng.pick(&["standard", "silver", "gold", "platinum"]),
            signup: person.since + Duration::days(rng.below(60) as i64),
        }
    }
}

/// The account's rows in the customers file and, when the person's email changed, the change
/// in the changes file: version 1 with the first email, the change to the latest one.
fn account_versions(rng: &mut Rng, person: &Person, account: &ShopAccount, f: &mut Files, truth: &mut Truth) {
    let p = person.p;
    let ShopAccount { customer_id, own_email, placeholder, country, channel, tier, signup } = account;
    let versions: Vec<(&String, &String, bool)> = if person.emails.len() > 1 && own_email.is_none() {
        vec![
            (&person.emails[0], &person.phones[0], false),
            (
                person.emails.last().unwrap_or(&person.emails[0]),
                person.phones.last().unwrap_or(&person.phones[0]),
                true,
            ),
        ]
    } else {
        vec![(own_email.as_ref().unwrap_or(&person.emails[0]), &person.phones[0], false)]
    };
    for (v, (email, phone, is_change)) in versions.into_iter().enumerate() {
        let (email_text, email_owner) = match placeholder {
            Some(junk) => (junk.clone(), None),
            None => (email.clone(), Some(p)),
        };
        let shown = if rng.chance(50) { email_text.to_uppercase() } else { format!(" {email_text} ") };
        let mut ids =
            vec![("customer_id", customer_id.clone(), Some(p)), ("mobile_hash", nz::phone_hash(phone), Some(p))];
        let email_hash = nz::email_hash(&email_text);
        if cdplake_zones::normalize::email(&email_text).is_some() {
            ids.push(("email_hash", email_hash, email_owner));
        }
        truth.row(&ids);
        let updated = *signup + Duration::hours(2) + Duration::days(400 * v as i64);
        let line = format!(
            "{customer_id},{shown},{},{},{},{country},{channel},{tier},{},{}\n",
            written_phone(phone, country),
            person.first,
            person.last,
            signup.format("%Y-%m-%d"),
            ts(updated)
        );
        let _ = if is_change { f.customer_changes.write_str(&line) } else { f.customers.write_str(&line) };
    }
}

/// Up to seven transactions, each with its order (one person in 97 has an impossible date on
/// the first).
fn transactions_and_orders(
    rng: &mut Rng,
    p: u64,
    account: &ShopAccount,
    f: &mut Files,
    order_ids: &mut Vec<(String, String)>,
) {
    let customer_id = &account.customer_id;
    for t in 0..rng.below(8) {
        let day = account.signup + Duration::days(rng.below(450) as i64);
        let broken_date = p % 97 == 0 && t == 0;
        let _ = writeln!(
            f.transactions,
            "T{p:07}{t:02},{customer_id},P{:03},{}.{:02},{},{}",
            rng.below(300),
            5 + rng.below(400),
            rng.below(100),
            if broken_date { "2024-02-31".to_string() } else { day.format("%Y-%m-%d").to_string() },
            rng.pick(&["completed", "completed", "completed", "refunded", "pending"]),
        );
        let order_time = day + Duration::hours(rng.below(12) as i64);
        if order_ids.len() < 2 {
            order_ids.push((format!("O{p:07}{t:02}"), customer_id.clone()));
        }
        let _ = writeln!(
            f.orders,
            "O{p:07}{t:02},{customer_id},{},{}.{:02},{},{},{},{}",
            rng.pick(&["placed", "shipped", "delivered", "cancelled"]),
            10 + rng.below(400),
            rng.below(100),
            1 + rng.below(5),
            rng.pick(&["web", "mobile", "marketplace"]),
            ts(order_time),
            ts(order_time + Duration::hours(6)),
        );
    }
}

/// Up to 24 web events of the logged-in customer.
fn web_events(rng: &mut Rng, p: u64, account: &ShopAccount, f: &mut Files) {
    let customer_id = &account.customer_id;
    for v in 0..rng.below(25) {
        let at = account.signup + Duration::minutes(rng.below(60 * 24 * 450) as i64);
        let _ = writeln!(
            f.web,
            r#"{{"event_id":"W{p:07}{v:03}","customer_id":"{customer_id}","event_type":"{}","page_url":"/p/{}","event_time":"{}"}}"#,
            rng.pick(&["page_view", "page_view", "page_view", "click", "scroll"]),
            rng.below(50),
            at.format("%Y-%m-%dT%H:%M:%SZ"),
        );
    }
}

/// Up to five behavioural sessions under one cookie: anonymous browsing first; a login later
/// ties the cookie to the customer.
fn browsing_sessions(rng: &mut Rng, p: u64, account: &ShopAccount, f: &mut Files, truth: &mut Truth) {
    let customer_id = &account.customer_id;
    let cookie = format!("ck{p:07}");
    let sessions = rng.below(6);
    for b in 0..sessions {
        let logged_in = b % 2 == 1 || sessions == 1;
        let at = account.signup + Duration::minutes(rng.below(60 * 24 * 450) as i64);
        let mut ids = vec![("cookie_id", cookie.clone(), Some(p))];
        if logged_in {
            ids.push(("customer_id", customer_id.clone(), Some(p)));
        }
        truth.row(&ids);
        let _ = writeln!(
            f.behavior,
            r#"{{"event_id":"B{p:07}{b:02}","customer_id":{},"cookie_id":"{cookie}","session_id":"s{p}{b}","event_type":"{}","product_id":"P{:03}","category_id":"K{}","event_time":"{}"}}"#,
            if logged_in { format!("\"{customer_id}\"") } else { "null".into() },
            rng.pick(&["product_view", "add_to_cart", "search"]),
            rng.below(300),
            rng.below(12),
            at.format("%Y-%m-%dT%H:%M:%SZ"),
        );
    }
}

/// A support ticket, for one shopper in four.
fn support_ticket(rng: &mut Rng, p: u64, account: &ShopAccount, f: &mut Files) {
    if !rng.chance(25) {
        return;
    }
    let opened = account.signup + Duration::days(rng.below(450) as i64);
    let resolved = rng.chance(60);
    let _ = writeln!(
        f.tickets,
        "K{p:07},{},{},{},{},{}",
        account.customer_id,
        if resolved { "resolved" } else { rng.pick(&["open", "escalated"]) },
        rng.pick(&["billing", "delivery", "product", "account"]),
        ts(opened),
        if resolved { ts(opened + Duration::hours(30)) } else { String::new() },
    );
}

/// Online Retail lines under a customer number; most retail customers are matched to their
/// email by a link file.
fn retail_customer(rng: &mut Rng, person: &Person, f: &mut Files, truth: &mut Truth) {
    let p = person.p;
    let retail_id = format!("R{p:07}");
    truth.row(&[("retail_customer_id", retail_id.clone(), Some(p))]);
    for i in 0..(1 + rng.below(4)) {
        let at = person.since + Duration::days(rng.below(450) as i64);
        let invoice = 500_000 + p * 10 + i;
        let _ = writeln!(
            f.retail,
            "{invoice},{},ITEM {},{},{},{}.{:02},{retail_id},United Kingdom",
            20_000 + rng.below(3_000),
            rng.below(100),
            1 + rng.below(12),
            at.format("%-m/%-d/%Y %-H:%M"),
            1 + rng.below(20),
            rng.below(100),
        );
    }
    if rng.chance(70) {
        let email = person.emails.last().unwrap_or(&person.emails[0]);
        link(f, truth, ("retail_customer_id", retail_id), ("email_hash", nz::email_hash(email)), Some(p));
    }
}

fn link(f: &mut Files, truth: &mut Truth, a: (&str, String), b: (&str, String), owner: Owner) {
    truth.row(&[(a.0, a.1.clone(), owner), (b.0, b.1.clone(), owner)]);
    let _ = writeln!(f.links, "{},{},{},{},loyalty", a.0, a.1, b.0, b.1);
}

/// Devices shared between people: family tablets (an owner and one or two relatives log in),
/// store kiosks (dozens of members), and an unlisted demo account logged in on dozens of
/// people's phones.
fn shared_devices(rng: &mut Rng, members: &[u64], base: NaiveDateTime, f: &mut Files, truth: &mut Truth) {
    if members.len() < 4 {
        return;
    }
    let pick_member = |rng: &mut Rng| members[rng.below(members.len() as u64) as usize];
    let mut event = 0u64;
    let mut next_event = || {
        event += 1;
        format!("SHARED{event:08}")
    };
    for _ in 0..(members.len() as u64 * 3 / 100).max(1) {
        let owner = pick_member(rng);
        let tablet = format!("TAB{owner:07}");
        // Half the tablets run the owner's WeChat account, whoever logs in to the app.
        let owners_union = rng.chance(50).then(|| format!("union_{owner:07}"));
        let mut users = vec![owner];
        for _ in 0..(1 + rng.below(2)) {
            users.push(pick_member(rng));
        }
        for (visit, user) in users.into_iter().enumerate() {
            let at = base + Duration::days(300 + rng.below(1000) as i64 + visit as i64);
            let member = format!("MBR{user:07}");
            let mut ids = vec![("device_id", tablet.clone(), Some(owner)), ("member_id", member.clone(), Some(user))];
            if let Some(union) = &owners_union {
                ids.push(("union_id", union.clone(), Some(owner)));
            }
            truth.row(&ids);
            app_event(rng, f, &next_event(), &tablet, owners_union.as_deref(), None, Some(member), at);
        }
    }
    for k in 0..(members.len() as u64 / 150).max(1) {
        let kiosk = format!("KIOSK-{k:04}");
        for visit in 0..(20 + rng.below(20)) {
            let user = pick_member(rng);
            let member = format!("MBR{user:07}");
            truth.row(&[("device_id", kiosk.clone(), None), ("member_id", member.clone(), Some(user))]);
            let at = base + Duration::days(200 + visit as i64);
            app_event(rng, f, &next_event(), &kiosk, None, None, Some(member), at);
        }
    }
    for _ in 0..(members.len() as u64 / 50).clamp(12, 60) {
        let user = pick_member(rng);
        let device = format!("DEV{user:07}0");
        truth.row(&[("device_id", device.clone(), Some(user)), ("member_id", DEMO_ACCOUNT.to_string(), None)]);
        let at = base + Duration::days(900 + rng.below(300) as i64);
        app_event(rng, f, &next_event(), &device, None, None, Some(DEMO_ACCOUNT.to_string()), at);
    }
}

/// A change file as AWS DMS writes it: one cancellation, one order deleted.
fn dms_changes(order_ids: &[(String, String)], base: NaiveDateTime, dms: &mut Sink) {
    if let [(cancelled, customer), (deleted, _), ..] = order_ids {
        let _ = writeln!(
            dms,
            "U,{cancelled},{customer},cancelled,10.00,1,web,2019-01-01 00:00:00,{}",
            ts(base + Duration::days(2200))
        );
        let _ = writeln!(dms, "D,{deleted},,,,,,,2025-06-30 00:00:00");
    }
}
