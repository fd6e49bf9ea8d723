//! Rules over two columns of one clean row, which a column's own checks cannot state.
//!
//! Seed 000 records a refund as a transaction `status`, so a `completed` transaction with a
//! negative `amount` is bad input (a sign error in an export), not a refund: counted, it makes
//! an order with negative revenue. Such a row goes to the quarantine with the reason, like any
//! row the contract refuses; a refunded or failed transaction may carry any amount.
//!
//! The rules are built in per source name and apply when the source has both columns (a
//! `[sources.transactions]` of the user's that has no `status` column has none).

use crate::contract::{CleanRow, Contract, Op, Rejection, Value};
use crate::source::Source;

/// `column` must not be negative when `when_column` holds one of `when_values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRule {
    /// The short name counted in reports and stored in the quarantine's `rule`.
    pub name: &'static str,
    pub column: &'static str,
    pub when_column: &'static str,
    /// Compared with the stored (normalised) value.
    pub when_values: &'static [&'static str],
    /// Why the rule holds, for the quarantine's reason.
    pub why: &'static str,
}

const BUILT_IN: &[(&str, RowRule)] = &[(
    "transactions",
    RowRule {
        name: "negative_completed",
        column: "amount",
        when_column: "status",
        when_values: &["completed"],
        why: "seed 000 records a refund as its own status, so a completed transaction cannot have a negative \
              amount; send the refund as a row with status 'refunded'",
    },
)];

/// The built-in rules of `source` whose columns it has.
pub fn row_rules(source: &Source) -> Vec<RowRule> {
    BUILT_IN
        .iter()
        .filter(|(name, rule)| {
            *name == source.name && source.column(rule.column).is_some() && source.column(rule.when_column).is_some()
        })
        .map(|(_, rule)| rule.clone())
        .collect()
}

impl RowRule {
    /// Check one row the contract accepted (deletes carry no values worth checking).
    pub fn check(&self, contract: &Contract<'_>, row: &CleanRow) -> Result<(), Rejection> {
        if row.op == Op::Delete {
            return Ok(());
        }
        let value = |name: &str| contract.columns().iter().position(|c| c.name == name).map(|i| &row.values[i]);
        let applies = matches!(value(self.when_column), Some(Value::Text(t)) if self.when_values.contains(&t.as_str()));
        let negative = match value(self.column) {
            Some(Value::Float(v)) if *v < 0.0 => Some(v.to_string()),
            Some(Value::Int(v)) if *v < 0 => Some(v.to_string()),
            _ => None,
        };
        match negative {
            Some(amount) if applies => Err(Rejection {
                field: self.column.to_string(),
                rule: self.name,
                reason: format!(
                    "{} {amount} is negative while {} is {:?}: {}",
                    self.column,
                    self.when_column,
                    self.when_values.join("/"),
                    self.why
                ),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset;

    fn check(status: &str, amount: &str) -> Result<(), Rejection> {
        let source = preset("transactions").unwrap();
        let contract = Contract::new(&source, None);
        let names: Vec<String> =
            ["transaction_id", "customer_id", "product_id", "amount", "transaction_date", "status"]
                .map(String::from)
                .to_vec();
        let layout = contract.layout(&names).unwrap();
        let raw = [Some("T1"), Some("C1"), Some("P1"), Some(amount), Some("2024-05-01"), Some(status)];
        let row = contract.apply(&layout, &raw, &mut Vec::new()).unwrap();
        let rules = row_rules(&source);
        assert_eq!(rules.len(), 1);
        rules[0].check(&contract, &row)
    }

    #[test]
    fn a_completed_transaction_with_a_negative_amount_is_refused_with_the_reason() {
        let refused = check("Completed", "-12.50").unwrap_err();
        assert_eq!((refused.field.as_str(), refused.rule), ("amount", "negative_completed"));
        assert!(refused.reason.contains("-12.5 is negative while status is \"completed\""), "{}", refused.reason);
        assert!(check("completed", "12.50").is_ok());
        assert!(check("refunded", "-12.50").is_ok(), "a refund may be negative");
    }

    #[test]
    fn only_sources_with_both_columns_have_the_rule() {
        assert!(row_rules(&preset("orders").unwrap()).is_empty());
        let mut renamed = preset("transactions").unwrap();
        renamed.columns.retain(|c| c.name != "status");
        assert!(row_rules(&renamed).is_empty());
    }
}
