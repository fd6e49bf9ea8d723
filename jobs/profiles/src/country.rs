//! `country_code(text)`: the ISO 3166-1 alpha-2 code of a country name or code, as the clean
//! contract's `country` normalisation computes it (`United States` → `US`, `UK` → `GB`); NULL
//! for text that names no country.
//!
//! Seed 000's profile keeps the source's `country` as it came; the profile's `country_code`
//! column beside it is cdplake's reading, computed with this function.

use std::sync::Arc;

use cdplake_engine::SqlSession;
use cdplake_engine::arrow::array::{AsArray, StringArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::datafusion::common::{Result, ScalarValue};
use cdplake_engine::datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

/// The function's SQL name.
pub const COUNTRY_CODE: &str = "country_code";

/// Register `country_code` on a session.
pub fn register(session: &SqlSession) {
    let udf = create_udf(COUNTRY_CODE, vec![DataType::Utf8], DataType::Utf8, Volatility::Immutable, Arc::new(codes));
    session.context().register_udf(udf);
}

fn codes(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let text = cast(&arrays[0], &DataType::Utf8)?;
    let codes: StringArray =
        text.as_string::<i32>().iter().map(|v| v.and_then(cdplake_zones::normalize::country)).collect();
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&codes, 0)?));
    }
    Ok(ColumnarValue::Array(Arc::new(codes)))
}
