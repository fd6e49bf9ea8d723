//! Athena / Glue DDL for the registered tables.
//!
//! Athena engine v3 reads a Delta table's schema and partitions from its `_delta_log`, so the
//! DDL names only the location and `table_type`; a column list would be rejected. Athena has
//! one level of database, so `zone.table` becomes the table `zone_table` in the given database.

use crate::entry::TableEntry;

/// Athena's name for a lake table: `curated.customer_profiles` → `curated_customer_profiles`.
pub fn athena_table_name(entry: &TableEntry) -> String {
    format!("{}_{}", entry.zone.trim_start_matches('_'), entry.table_name)
}

/// One `CREATE EXTERNAL TABLE` statement per entry, for tables stored under `s3_root`
/// (`s3://bucket/prefix`, with or without a trailing slash).
pub fn athena_ddl(database: &str, s3_root: &str, entries: &[TableEntry]) -> String {
    let root = s3_root.trim_end_matches('/');
    let mut out = format!("CREATE DATABASE IF NOT EXISTS `{database}`;\n");
    for entry in entries {
        out.push('\n');
        if !entry.description.is_empty() {
            out.push_str(&format!("-- {}: {}\n", entry.name, entry.description.replace('\n', " ")));
        }
        out.push_str(&format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{}`\nLOCATION '{root}/{}/'\nTBLPROPERTIES ('table_type' = 'DELTA');\n",
            athena_table_name(entry),
            entry.location,
        ));
    }
    out
}

/// First and last line of the generated Glue block in `infra/template.yaml`.
pub const GLUE_BLOCK_BEGIN: &str = "  # BEGIN cdplake catalog export-glue";
pub const GLUE_BLOCK_END: &str = "  # END cdplake catalog export-glue";

/// CloudFormation `AWS::Glue::Table` resources, one per entry, to sit under `Resources:` of a
/// template that defines `GlueDatabase` (an `AWS::Glue::Database`), `LakeBucket` and the
/// `LakePrefix` parameter, as `infra/template.yaml` does. Delimited by [`GLUE_BLOCK_BEGIN`] and
/// [`GLUE_BLOCK_END`], so a template's block can be regenerated and checked against a catalog.
pub fn glue_table_resources(entries: &[TableEntry]) -> String {
    let mut out =
        format!("{GLUE_BLOCK_BEGIN} (one Glue table per catalog entry; Athena reads the schema from the Delta log)\n");
    for entry in entries {
        let name = athena_table_name(entry);
        out.push_str(&format!("  {}Table:\n", logical_id(&name)));
        out.push_str("    Type: AWS::Glue::Table\n    Properties:\n      CatalogId: !Ref AWS::AccountId\n");
        out.push_str("      DatabaseName: !Ref GlueDatabase\n      TableInput:\n");
        out.push_str(&format!("        Name: {name}\n"));
        if !entry.description.is_empty() {
            // A JSON string is a valid YAML double-quoted scalar; Glue allows 2,048 characters.
            let description: String = entry.description.replace('\n', " ").chars().take(2048).collect();
            out.push_str(&format!("        Description: {}\n", serde_json::Value::String(description)));
        }
        out.push_str("        TableType: EXTERNAL_TABLE\n        Parameters:\n          table_type: DELTA\n");
        out.push_str("        StorageDescriptor:\n");
        out.push_str(&format!(
            "          Location: !Sub \"s3://${{LakeBucket}}/${{LakePrefix}}/{}/\"\n",
            entry.location
        ));
    }
    out.push_str(GLUE_BLOCK_END);
    out.push('\n');
    out
}

/// `clean_customers` → `CleanCustomers`: CloudFormation logical ids are alphanumeric.
fn logical_id(athena_name: &str) -> String {
    athena_name
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_alphanumeric_camel_case() {
        assert_eq!(logical_id("clean_customers"), "CleanCustomers");
        assert_eq!(logical_id("clean__quarantine"), "CleanQuarantine");
        assert_eq!(logical_id("curated_customer_profiles_daily"), "CuratedCustomerProfilesDaily");
    }
}
