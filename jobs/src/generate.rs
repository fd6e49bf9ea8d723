//! `cdplake generate`: a deterministic, seed-style multi-channel data set at any scale.
//!
//! One person shows up in several systems under different identifiers: a CRM member (hashed
//! mobile and email), app devices (device_id, union_id, open_id, logins that carry the member
//! id), a web-shop customer (plaintext email and phone, orders, transactions, web events,
//! support tickets). The hidden ground truth — which identifiers belong to which person — is
//! written to a separate file (`truth.csv`) for the identity tests; sources never see it.
//! A few rows are broken on purpose (an unparseable date) so the demo shows the quarantine at
//! work, and the identity data is adversarial: store kiosk devices that many members log in on
//! (hubs, which belong to nobody), junk union ids (`unknown`, `null`), and people who gave the
//! shop a different email than the CRM (linked through their phone). No randomness from the system: the same `--persons` and `--seed`
//! give byte-identical files.

use std::fmt::Write;

use chrono::{Duration, NaiveDate, NaiveDateTime};

use crate::normalize_for_truth as nz;

/// One generated file: its source and name (`<source>/<name>` under landing/).
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub source: &'static str,
    pub name: String,
    pub content: String,
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
const COUNTRIES: &[&str] =
    &["United Kingdom", "GB", "France", "DE", "Germany", "Ireland", "EIRE", "Spain", "NL", "USA"];

/// Generate every source for `persons` people.
pub fn generate(persons: u64, seed: u64) -> (Vec<GeneratedFile>, String) {
    let mut rng = Rng(seed);
    let base = NaiveDate::from_ymd_opt(2024, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default();
    let mut truth = String::from("person_id,id_type,id_value\n");
    let mut customers = String::from(
        "customer_id,email,phone,first_name,last_name,country,acquisition_channel,loyalty_tier,signup_date,updated_at\n",
    );
    let mut transactions = String::from("transaction_id,customer_id,product_id,amount,transaction_date,status\n");
    let mut web = String::new();
    let mut members = String::new();
    let mut app = String::new();
    let mut orders =
        String::from("order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\n");
    let mut tickets = String::from("ticket_id,customer_id,status,category,created_at,resolved_at\n");
    let mut behavior = String::new();
    let ts = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();

    let mut member_numbers: Vec<u64> = Vec::new();
    let mut order_ids: Vec<(String, String)> = Vec::new();
    for p in 1..=persons {
        let person = format!("P{p:07}");
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let email = format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), p);
        let phone = format!("07911 {:06}", 100_000 + p % 900_000);
        let signup = base + Duration::days(rng.below(120) as i64);
        let is_member = rng.chance(70);
        // The app needs an account: app users are members, and each device logs in first.
        let has_app = is_member && rng.chance(80);
        let is_shopper = rng.chance(80);
        let _ = writeln!(truth, "{person},email_hash,{}", nz::email_hash(&email));
        let _ = writeln!(truth, "{person},mobile_hash,{}", nz::phone_hash(&phone));

        let member_id = format!("MBR{p:07}");
        if is_member {
            member_numbers.push(p);
            let _ = writeln!(truth, "{person},member_id,{member_id}");
            let level = rng.pick(&["bronze", "silver", "gold"]);
            let _ = writeln!(
                members,
                r#"{{"member_id":"{member_id}","mobile_hash":"{}","email_hash":"{}","real_name":"{first} {last}","gender":"{}","birthday":"19{}-0{}-1{}","register_date":"{}","channel":"{}","level":"{level}","total_points":{},"updated_at":"{}"}}"#,
                nz::phone_hash(&phone),
                nz::email_hash(&email),
                rng.pick(&["F", "M"]),
                70 + rng.below(30),
                1 + rng.below(9),
                rng.below(10),
                signup.format("%Y-%m-%d"),
                rng.pick(&["offline", "online", "miniapp"]),
                rng.below(3000),
                ts(signup + Duration::hours(1)),
            );
        }
        if has_app {
            let devices = 1 + rng.below(2);
            for d in 0..devices {
                let device = format!("DEV{p:07}{d}");
                // A few app installs report a junk union id.
                let union_id = if rng.chance(3) {
                    rng.pick(&["unknown", "null", "0"]).to_string()
                } else {
                    format!("union_{p:07}")
                };
                let open_id = format!("open_{p:07}{d}");
                let _ = writeln!(truth, "{person},device_id,{device}");
                if union_id.starts_with("union_") {
                    let _ = writeln!(truth, "{person},union_id,{union_id}");
                }
                let _ = writeln!(truth, "{person},open_id,{open_id}");
                for e in 0..(2 + rng.below(5)) {
                    let at = signup + Duration::hours(rng.below(24 * 200) as i64);
                    let (event_type, page, item, price) = match if e == 0 { 0 } else { rng.below(4) } {
                        0 if is_member => ("login", member_id.clone(), String::new(), String::from("null")),
                        1 => (
                            "purchase",
                            "checkout".into(),
                            format!("SKU{:03}", rng.below(200)),
                            format!("{}.{}", 5 + rng.below(500), rng.below(10)),
                        ),
                        2 => (
                            "add_cart",
                            "product".into(),
                            format!("SKU{:03}", rng.below(200)),
                            format!("{}.0", 5 + rng.below(500)),
                        ),
                        _ => ("view", "home".into(), String::new(), String::from("null")),
                    };
                    let item = if item.is_empty() { "null".to_string() } else { format!("\"{item}\"") };
                    let _ = writeln!(
                        app,
                        r#"{{"event_id":"EVT{p:07}{d}{e:02}","device_id":"{device}","union_id":"{union_id}","open_id":"{open_id}","event_type":"{event_type}","page_name":"{page}","item_id":{item},"item_price":{price},"channel":"{}","platform":"{}","event_time":"{}","session_id":"sess_{p}_{d}_{e}"}}"#,
                        rng.pick(&["miniapp", "app"]),
                        rng.pick(&["wechat", "ios", "android"]),
                        ts(at),
                    );
                }
            }
        }
        if is_shopper {
            let customer_id = format!("C{p:07}");
            let _ = writeln!(truth, "{person},customer_id,{customer_id}");
            let country = rng.pick(COUNTRIES);
            // One in five shoppers gave the shop another address than the CRM.
            let shop_email = if is_member && rng.chance(20) {
                let other = format!("{}{}@shop-mail.example", first.to_lowercase(), p);
                let _ = writeln!(truth, "{person},email_hash,{}", nz::email_hash(&other));
                other
            } else {
                email.clone()
            };
            let shown_email = if rng.chance(50) { shop_email.to_uppercase() } else { format!(" {shop_email} ") };
            let _ = writeln!(
                customers,
                "{customer_id},{shown_email},{phone},{first},{last},{country},{},{},{},{}",
                rng.pick(&["web", "mobile", "marketplace"]),
                rng.pick(&["standard", "silver", "gold", "platinum"]),
                signup.format("%Y-%m-%d"),
                ts(signup + Duration::hours(2)),
            );
            for t in 0..rng.below(8) {
                let day = signup + Duration::days(rng.below(300) as i64);
                let broken_date = p % 97 == 0 && t == 0;
                let _ = writeln!(
                    transactions,
                    "T{p:07}{t:02},{customer_id},P{:03},{}.{:02},{},{}",
                    rng.below(300),
                    5 + rng.below(400),
                    rng.below(100),
                    if broken_date { "2024-02-31".to_string() } else { day.format("%Y-%m-%d").to_string() },
                    rng.pick(&["completed", "completed", "completed", "refunded", "pending"]),
                );
                let order_time = day + Duration::hours(rng.below(12) as i64);
                order_ids.push((format!("O{p:07}{t:02}"), customer_id.clone()));
                let _ = writeln!(
                    orders,
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
            for v in 0..rng.below(25) {
                let at = signup + Duration::minutes(rng.below(60 * 24 * 300) as i64);
                let _ = writeln!(
                    web,
                    r#"{{"event_id":"W{p:07}{v:03}","customer_id":"{customer_id}","event_type":"page_view","page_url":"/p/{}","event_time":"{}"}}"#,
                    rng.below(50),
                    at.format("%Y-%m-%dT%H:%M:%SZ"),
                );
            }
            let cookie = format!("ck{p:07}");
            let _ = writeln!(truth, "{person},cookie_id,{cookie}");
            let sessions = rng.below(6);
            for b in 0..sessions {
                // Anonymous browsing first; a login later ties the cookie to the customer.
                let logged_in = b % 2 == 1 || sessions == 1;
                let at = signup + Duration::minutes(rng.below(60 * 24 * 300) as i64);
                let _ = writeln!(
                    behavior,
                    r#"{{"event_id":"B{p:07}{b:02}","customer_id":{},"cookie_id":"{cookie}","session_id":"s{p}{b}","event_type":"{}","product_id":"P{:03}","category_id":"K{}","event_time":"{}"}}"#,
                    if logged_in { format!("\"{customer_id}\"") } else { "null".into() },
                    rng.pick(&["product_view", "add_to_cart", "search"]),
                    rng.below(300),
                    rng.below(12),
                    at.format("%Y-%m-%dT%H:%M:%SZ"),
                );
            }
            if rng.chance(25) {
                let opened = signup + Duration::days(rng.below(200) as i64);
                let resolved = rng.chance(60);
                let _ = writeln!(
                    tickets,
                    "K{p:07},{customer_id},{},{},{},{}",
                    if resolved { "resolved" } else { rng.pick(&["open", "escalated"]) },
                    rng.pick(&["billing", "delivery", "product", "account"]),
                    ts(opened),
                    if resolved { ts(opened + Duration::hours(30)) } else { String::new() },
                );
            }
        }
    }
    // Store kiosks: members log in on shared devices. With more than five members each, they
    // are hubs: they belong to no one and must never join two people.
    for k in 0..(persons / 100).max(1) {
        let mut visitors: Vec<u64> = Vec::new();
        while visitors.len() < 8.min(member_numbers.len()) {
            let p = member_numbers[rng.below(member_numbers.len() as u64) as usize];
            if !visitors.contains(&p) {
                visitors.push(p);
            }
        }
        for (visit, p) in visitors.into_iter().enumerate() {
            let _ = writeln!(
                app,
                r#"{{"event_id":"KIOSK{k:04}{visit:02}","device_id":"KIOSK-{k:04}","union_id":null,"open_id":null,"event_type":"login","page_name":"MBR{p:07}","item_id":null,"item_price":null,"channel":"store","platform":"kiosk","event_time":"{}"}}"#,
                ts(base + Duration::days(200 + visit as i64)),
            );
        }
    }
    // A change file as AWS DMS writes it: one cancellation, one order deleted.
    let mut dms =
        String::from("Op,order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\n");
    if let [(cancelled, customer), (deleted, _), ..] = order_ids.as_slice() {
        let _ = writeln!(
            dms,
            "U,{cancelled},{customer},cancelled,10.00,1,web,2024-01-01 00:00:00,{}",
            ts(base + Duration::days(400))
        );
        let _ = writeln!(dms, "D,{deleted},,,,,,,2024-12-31 00:00:00");
    }
    let files = vec![
        GeneratedFile { source: "customers", name: "customers.csv".into(), content: customers },
        GeneratedFile { source: "transactions", name: "transactions.csv".into(), content: transactions },
        GeneratedFile { source: "web_events", name: "web_events.json".into(), content: web },
        GeneratedFile { source: "crm_members", name: "crm_members.json".into(), content: members },
        GeneratedFile { source: "app_events", name: "app_events.json".into(), content: app },
        GeneratedFile { source: "orders", name: "orders.csv".into(), content: orders },
        GeneratedFile { source: "orders", name: "orders_dms_changes.csv".into(), content: dms },
        GeneratedFile { source: "support_tickets", name: "support_tickets.csv".into(), content: tickets },
        GeneratedFile { source: "behavioral_events", name: "behavioral_events.json".into(), content: behavior },
    ];
    (files, truth)
}
