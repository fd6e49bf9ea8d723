//! SQL functions users' warehouse SQL calls that DataFusion lacks, registered on every session.
//!
//! - `datediff(end, start)`: whole days from `start` to `end` (MaxCompute, Hive, Spark and
//!   seed 000 spell it this way); each side a date, a timestamp or `'YYYY-MM-DD[ HH:MM:SS]'` text.
//! - seed 001's bitmap functions ([`crate::bitmap`]);
//! - Athena's (Trino's) functions DataFusion lacks ([`crate::trino`]).

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Date32Type, TimeUnit};
use deltalake::datafusion::common::{Result, exec_err};
use deltalake::datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use deltalake::datafusion::prelude::SessionContext;

/// Register cdplake's SQL functions on a session.
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(DateDiff::new()));
    crate::bitmap::register_bitmap_functions(ctx);
    crate::trino::register_trino_functions(ctx);
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDiff {
    signature: Signature,
}

impl DateDiff {
    fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

/// Days since 1970-01-01 of each value, whatever date-like type it has.
fn epoch_days(values: &ArrayRef) -> Result<ArrayRef> {
    let as_date = |a: &ArrayRef| cast(a, &DataType::Date32);
    Ok(match values.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            // Text holding a timestamp ('2024-05-01 10:00:00') parses as one, then truncates.
            let timestamps = cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            as_date(&timestamps)?
        }
        _ => as_date(values)?,
    })
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "datediff"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [end, start] = args.args.as_slice() else {
            return exec_err!("datediff(end, start) takes two arguments");
        };
        let all_scalars = matches!((end, start), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let rows = args.number_rows;
        let end = epoch_days(&end.to_array(rows)?)?;
        let start = epoch_days(&start.to_array(rows)?)?;
        let (end, start) = (end.as_primitive::<Date32Type>(), start.as_primitive::<Date32Type>());
        let days: Int64Array = (0..end.len())
            .map(|i| (end.is_valid(i) && start.is_valid(i)).then(|| end.value(i) as i64 - start.value(i) as i64))
            .collect();
        let days: ArrayRef = Arc::new(days);
        if all_scalars {
            return Ok(ColumnarValue::Scalar(deltalake::datafusion::scalar::ScalarValue::try_from_array(&days, 0)?));
        }
        Ok(ColumnarValue::Array(days))
    }
}
