//! Built-in sources for every source in the seed documents, so they work with no config.
//!
//! | preset | seed | format | key |
//! |---|---|---|---|
//! | `customers` | 000, 002 | CSV | customer_id (latest `updated_at` / `last_updated` wins) |
//! | `transactions` | 000 | CSV | transaction_id |
//! | `web_events` | 000 | CSV or JSON lines | event_id |
//! | `crm_members` | 001 | JSON lines | member_id (latest `updated_at` wins) |
//! | `app_events` | 001 | JSON lines | event_id |
//! | `retail_transactions` | 001 + UCI Online Retail | CSV | none: an exact repeat is a duplicate |
//! | `orders` | 002 | CSV | order_id (latest `updated_at` wins) |
//! | `support_tickets` | 002 | CSV | ticket_id |
//! | `behavioral_events` | 002 | JSON lines | event_id |
//! | `identity_links` | — | CSV | the two identifiers |
//!
//! Any of them also accepts change files: AWS DMS CSV (an `Op` column first) and Debezium JSON.

use crate::source::ColumnType::{Date, Float, Int, String as Text, Timestamp};
use crate::source::Normalize::{Country, Email, Id, Lower, Phone, Upper};
use crate::source::PiiTreatment::{Hash, Keep};
use crate::source::{ColumnDef as C, FileFormat, Source};

/// Every built-in source.
pub fn presets() -> Vec<Source> {
    vec![
        customers(),
        transactions(),
        web_events(),
        crm_members(),
        app_events(),
        retail_transactions(),
        orders(),
        support_tickets(),
        behavioral_events(),
        identity_links(),
    ]
}

/// The built-in source of that name.
pub fn preset(name: &str) -> Option<Source> {
    presets().into_iter().find(|s| s.name == name)
}

fn customers() -> Source {
    Source::new(
        "customers",
        FileFormat::Csv,
        vec![
            C::new("customer_id", Text).required().id_type("customer_id"),
            C::new("email", Text).normalize(Email).pii(Hash).id_type("email_hash"),
            C::new("phone", Text).normalize(Phone).pii(Hash).id_type("mobile_hash"),
            C::new("first_name", Text).pii(Keep),
            C::new("last_name", Text).pii(Keep),
            // The country as the source writes it (seed 000's profiles keep it), and its ISO code.
            C::new("country", Text),
            C::new("country_code", Text).from(&["country"]).normalize(Country),
            C::new("acquisition_channel", Text).normalize(Lower),
            C::new("loyalty_tier", Text).normalize(Lower),
            C::new("signup_date", Date),
            C::new("updated_at", Timestamp).from(&["updated_at", "last_updated"]),
        ],
    )
    .key(&["customer_id"])
    .ordered_by("updated_at")
    .timed_by("updated_at")
    .describe("Web shop / CRM customers (seeds 000 and 002).")
}

fn transactions() -> Source {
    Source::new(
        "transactions",
        FileFormat::Csv,
        vec![
            C::new("transaction_id", Text).required(),
            C::new("customer_id", Text).id_type("customer_id"),
            C::new("product_id", Text),
            C::new("amount", Float).required(),
            C::new("transaction_date", Date).required(),
            C::new("status", Text).normalize(Lower),
        ],
    )
    .key(&["transaction_id"])
    .timed_by("transaction_date")
    .describe("Purchases (seed 000); only `completed` ones count as orders.")
}

fn web_events() -> Source {
    Source::new(
        "web_events",
        FileFormat::Csv,
        vec![
            C::new("event_id", Text).required(),
            C::new("customer_id", Text).id_type("customer_id"),
            C::new("event_type", Text).normalize(Lower),
            C::new("page_url", Text),
            C::new("event_time", Timestamp).required(),
        ],
    )
    .key(&["event_id"])
    .timed_by("event_time")
    .describe("Website events from log files, CSV or JSON lines (seed 000).")
}

fn crm_members() -> Source {
    let mut source = Source::new(
        "crm_members",
        FileFormat::Ndjson,
        vec![
            C::new("member_id", Text).required().id_type("member_id"),
            C::new("mobile_hash", Text).normalize(Lower).id_type("mobile_hash"),
            C::new("email_hash", Text).normalize(Lower).id_type("email_hash"),
            C::new("real_name", Text).pii(Keep),
            C::new("gender", Text).normalize(Upper),
            C::new("birthday", Date).pii(Keep),
            C::new("register_date", Date),
            C::new("channel", Text).normalize(Lower),
            C::new("level", Text).normalize(Lower),
            C::new("total_points", Int),
            C::new("updated_at", Timestamp).required(),
        ],
    )
    .key(&["member_id"])
    .ordered_by("updated_at")
    .timed_by("updated_at")
    .describe("CRM members with hashed mobile and email, as CDC delivers them (seed 001).");
    source.phone_region = "CN".into();
    source
}

fn app_events() -> Source {
    Source::new(
        "app_events",
        FileFormat::Ndjson,
        vec![
            C::new("event_id", Text).required(),
            C::new("device_id", Text).id_type("device_id"),
            C::new("union_id", Text).id_type("union_id"),
            C::new("open_id", Text).id_type("open_id"),
            C::new("event_type", Text).normalize(Lower),
            C::new("page_name", Text),
            C::new("item_id", Text),
            C::new("item_price", Float).non_negative(),
            C::new("channel", Text).normalize(Lower),
            C::new("platform", Text).normalize(Lower),
            C::new("event_time", Timestamp).required(),
            C::new("session_id", Text),
        ],
    )
    .key(&["event_id"])
    .timed_by("event_time")
    .describe("Mini-program and app events as Kafka / Firehose deliver them (seed 001).")
}

fn retail_transactions() -> Source {
    Source::new(
        "retail_transactions",
        FileFormat::Csv,
        vec![
            C::new("invoice", Text).from(&["Invoice", "InvoiceNo"]).required(),
            C::new("stock_code", Text).from(&["StockCode"]).required(),
            C::new("description", Text).from(&["Description"]),
            C::new("quantity", Int).from(&["Quantity"]).required(),
            C::new("invoice_date", Timestamp).from(&["InvoiceDate"]).required(),
            C::new("price", Float).from(&["Price", "UnitPrice"]).required().non_negative(),
            C::new("customer_id", Text)
                .from(&["Customer ID", "CustomerID"])
                .normalize(Id)
                .id_type("retail_customer_id"),
            C::new("country", Text).from(&["Country"]).normalize(Country),
        ],
    )
    .timed_by("invoice_date")
    .describe(
        "Online Retail (II) invoice lines (seed 001, UCI). Lines have no id: an exact repeat of a \
         line is reported as a duplicate. Cancellations (invoice C...) are kept as negative lines.",
    )
}

fn orders() -> Source {
    Source::new(
        "orders",
        FileFormat::Csv,
        vec![
            C::new("order_id", Text).required(),
            C::new("customer_id", Text).id_type("customer_id"),
            C::new("order_status", Text).normalize(Lower),
            C::new("total_amount", Float),
            C::new("item_count", Int),
            C::new("channel", Text).normalize(Lower),
            C::new("created_at", Timestamp),
            C::new("updated_at", Timestamp).required(),
        ],
    )
    .key(&["order_id"])
    .ordered_by("updated_at")
    .timed_by("created_at")
    .describe("Orders from the shop database's change stream (seed 002).")
}

fn support_tickets() -> Source {
    Source::new(
        "support_tickets",
        FileFormat::Csv,
        vec![
            C::new("ticket_id", Text).required(),
            C::new("customer_id", Text).id_type("customer_id"),
            C::new("status", Text).normalize(Lower),
            C::new("category", Text),
            C::new("created_at", Timestamp),
            C::new("resolved_at", Timestamp),
        ],
    )
    .key(&["ticket_id"])
    .timed_by("created_at")
    .describe("Support tickets (seed 002).")
}

fn behavioral_events() -> Source {
    Source::new(
        "behavioral_events",
        FileFormat::Ndjson,
        vec![
            C::new("event_id", Text).required(),
            C::new("customer_id", Text).id_type("customer_id"),
            C::new("cookie_id", Text).id_type("cookie_id"),
            C::new("session_id", Text),
            C::new("event_type", Text).normalize(Lower),
            C::new("product_id", Text),
            C::new("category_id", Text),
            C::new("event_time", Timestamp).required(),
        ],
    )
    .key(&["event_id"])
    .timed_by("event_time")
    .describe("Behavioural events from Kafka (seed 002).")
}

fn identity_links() -> Source {
    Source::new(
        "identity_links",
        FileFormat::Csv,
        vec![
            C::new("id_type_a", Text).required().normalize(Lower),
            C::new("id_value_a", Text).required(),
            C::new("id_type_b", Text).required().normalize(Lower),
            C::new("id_value_b", Text).required(),
            C::new("source", Text),
        ],
    )
    .key(&["id_type_a", "id_value_a", "id_type_b", "id_value_b"])
    .describe("Explicit links between two identifiers of one person.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for source in presets() {
            source.validate().unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
