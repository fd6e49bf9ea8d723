//! Seed 001's BITMAP function family, on Roaring bitmaps stored as `Binary` in the portable
//! Roaring serialization (the format Java, Go, C and ClickHouse readers decode).
//!
//! | function | returns |
//! |---|---|
//! | `group_bitmap_state(int)` | the bitmap of the group's ids |
//! | `group_bitmap(int)` | the number of distinct ids |
//! | `group_bitmap_and(bitmap)`, `group_bitmap_or(bitmap)` | cardinality of the intersection / union of the group's bitmaps |
//! | `bitmap_and(a, b)`, `bitmap_or(a, b)`, `bitmap_andnot(a, b)` | a bitmap |
//! | `bitmap_count(b)` | its cardinality |
//! | `bitmap_to_array(b)` | its ids, ascending (explode with `unnest`) |
//! | `bitmap_contains(b, id)` | whether `id` is in it |
//!
//! Ids are non-negative integers below 2^32 (`user_int_id`); anything else is an error, never a
//! silent truncation.

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, Int64Builder, ListBuilder,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use deltalake::datafusion::common::{Result, ScalarValue, exec_err};
use deltalake::datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use deltalake::datafusion::logical_expr::utils::format_state_name;
use deltalake::datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use deltalake::datafusion::prelude::SessionContext;
use roaring::RoaringBitmap;

/// Register every bitmap function on a session.
pub fn register_bitmap_functions(ctx: &SessionContext) {
    for (name, input, output) in [
        ("group_bitmap_state", Input::Ids, Output::Bitmap),
        ("group_bitmap", Input::Ids, Output::Count),
        ("group_bitmap_and", Input::Intersect, Output::Count),
        ("group_bitmap_or", Input::Union, Output::Count),
    ] {
        ctx.register_udaf(AggregateUDF::from(GroupBitmap::new(name, input, output)));
    }
    for op in [Op::And, Op::Or, Op::AndNot, Op::Count, Op::ToArray, Op::Contains] {
        ctx.register_udf(ScalarUDF::from(BitmapFunction::new(op)));
    }
}

/// Serialize in the portable Roaring format.
pub fn to_bytes(bitmap: &RoaringBitmap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap.serialize_into(&mut bytes).expect("writing to a Vec cannot fail");
    bytes
}

pub fn from_bytes(bytes: &[u8]) -> Result<RoaringBitmap> {
    RoaringBitmap::deserialize_from(bytes).or_else(|e| exec_err!("not a Roaring bitmap: {e}"))
}

fn id_of(value: i64) -> Result<u32> {
    u32::try_from(value).or_else(|_| exec_err!("bitmap ids are integers from 0 to 4294967295, got {value}"))
}

/// Every non-null id of an integer column.
fn ids(values: &ArrayRef) -> Result<Vec<u32>> {
    let values = cast(values, &DataType::Int64)?;
    let values = values.as_primitive::<Int64Type>();
    values.iter().flatten().map(id_of).collect()
}

fn bitmaps(values: &ArrayRef) -> Result<Vec<Option<RoaringBitmap>>> {
    let values = cast(values, &DataType::Binary)?;
    let values = values.as_binary::<i32>();
    (0..values.len())
        .map(|i| if values.is_valid(i) { from_bytes(values.value(i)).map(Some) } else { Ok(None) })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Input {
    /// Integer ids, unioned.
    Ids,
    /// Bitmaps, intersected.
    Intersect,
    /// Bitmaps, unioned.
    Union,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Bitmap,
    Count,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct GroupBitmap {
    name: &'static str,
    input: Input,
    output: Output,
    signature: Signature,
}

impl GroupBitmap {
    fn new(name: &'static str, input: Input, output: Output) -> Self {
        Self { name, input, output, signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for GroupBitmap {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            Output::Bitmap => DataType::Binary,
            Output::Count => DataType::Int64,
        })
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(BitmapAccumulator { input: self.input, output: self.output, bitmap: None }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format_state_name(args.name, "bitmap"), DataType::Binary, true))])
    }
}

/// The group's bitmap so far; `None` until the first row (the identity of AND is "everything").
#[derive(Debug)]
struct BitmapAccumulator {
    input: Input,
    output: Output,
    bitmap: Option<RoaringBitmap>,
}

impl BitmapAccumulator {
    fn combine(&mut self, other: RoaringBitmap) {
        self.bitmap = Some(match (self.bitmap.take(), self.input) {
            (None, _) => other,
            (Some(mine), Input::Intersect) => mine & other,
            (Some(mine), Input::Ids | Input::Union) => mine | other,
        });
    }
}

impl Accumulator for BitmapAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match self.input {
            Input::Ids => {
                let mut bitmap = self.bitmap.take().unwrap_or_default();
                bitmap.extend(ids(&values[0])?);
                self.bitmap = Some(bitmap);
            }
            Input::Intersect | Input::Union => {
                for bitmap in bitmaps(&values[0])?.into_iter().flatten() {
                    self.combine(bitmap);
                }
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for bitmap in bitmaps(&states[0])?.into_iter().flatten() {
            self.combine(bitmap);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(self.bitmap.as_ref().map(to_bytes))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let bitmap = self.bitmap.clone().unwrap_or_default();
        Ok(match self.output {
            Output::Bitmap => ScalarValue::Binary(Some(to_bytes(&bitmap))),
            Output::Count => ScalarValue::Int64(Some(bitmap.len() as i64)),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bitmap.as_ref().map_or(0, |b| b.serialized_size())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    And,
    Or,
    AndNot,
    Count,
    ToArray,
    Contains,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BitmapFunction {
    op: Op,
    signature: Signature,
}

impl BitmapFunction {
    fn new(op: Op) -> Self {
        let arity = match op {
            Op::Count | Op::ToArray => 1,
            _ => 2,
        };
        Self { op, signature: Signature::any(arity, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for BitmapFunction {
    fn name(&self) -> &str {
        match self.op {
            Op::And => "bitmap_and",
            Op::Or => "bitmap_or",
            Op::AndNot => "bitmap_andnot",
            Op::Count => "bitmap_count",
            Op::ToArray => "bitmap_to_array",
            Op::Contains => "bitmap_contains",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::And | Op::Or | Op::AndNot => DataType::Binary,
            Op::Count => DataType::Int64,
            Op::ToArray => DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            Op::Contains => DataType::Boolean,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalars { 1 } else { args.number_rows };
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        let first = bitmaps(&arrays[0])?;
        let result: ArrayRef = match self.op {
            Op::And | Op::Or | Op::AndNot => {
                let second = bitmaps(&arrays[1])?;
                let out: BinaryArray = first
                    .iter()
                    .zip(&second)
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => Some(to_bytes(&match self.op {
                            Op::And => a & b,
                            Op::Or => a | b,
                            _ => a - b,
                        })),
                        _ => None,
                    })
                    .collect();
                Arc::new(out)
            }
            Op::Count => Arc::new(first.iter().map(|b| b.as_ref().map(|b| b.len() as i64)).collect::<Int64Array>()),
            Op::ToArray => {
                let mut builder = ListBuilder::new(Int64Builder::new());
                for bitmap in &first {
                    match bitmap {
                        Some(b) => {
                            b.iter().for_each(|id| builder.values().append_value(id as i64));
                            builder.append(true);
                        }
                        None => builder.append(false),
                    }
                }
                Arc::new(builder.finish())
            }
            Op::Contains => {
                let wanted = cast(&arrays[1], &DataType::Int64)?;
                let wanted = wanted.as_primitive::<Int64Type>();
                let out: BooleanArray = first
                    .iter()
                    .enumerate()
                    .map(|(i, b)| match b {
                        Some(b) if wanted.is_valid(i) => {
                            Some(u32::try_from(wanted.value(i)).is_ok_and(|id| b.contains(id)))
                        }
                        _ => None,
                    })
                    .collect();
                Arc::new(out)
            }
        };
        if all_scalars {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn query(sql: &str) -> Vec<deltalake::arrow::array::RecordBatch> {
        let ctx = SessionContext::new();
        register_bitmap_functions(&ctx);
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    fn int(batches: &[deltalake::arrow::array::RecordBatch]) -> i64 {
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    #[tokio::test]
    async fn set_operations_on_group_bitmaps() {
        let sets = "WITH t(tag, id) AS (VALUES ('a', 1), ('a', 2), ('a', 3), ('b', 2), ('b', 3), ('b', 4)), \
                    s AS (SELECT tag, group_bitmap_state(id) AS bm FROM t GROUP BY tag)";
        let count = |expr: &str| format!("{sets} SELECT bitmap_count({expr})");
        let a = "(SELECT bm FROM s WHERE tag = 'a')";
        let b = "(SELECT bm FROM s WHERE tag = 'b')";
        assert_eq!(int(&query(&count(&format!("bitmap_and({a}, {b})"))).await), 2);
        assert_eq!(int(&query(&count(&format!("bitmap_or({a}, {b})"))).await), 4);
        assert_eq!(int(&query(&count(&format!("bitmap_andnot({a}, {b})"))).await), 1);
        assert_eq!(int(&query(&format!("{sets} SELECT group_bitmap_and(bm) FROM s")).await), 2);
        assert_eq!(int(&query(&format!("{sets} SELECT group_bitmap_or(bm) FROM s")).await), 4);
        assert_eq!(int(&query("SELECT group_bitmap(x) FROM (VALUES (5), (5), (7)) v(x)").await), 2);
        let ids = query(&format!("{sets} SELECT unnest(bitmap_to_array({a})) AS id ORDER BY id")).await;
        let ids: Vec<i64> =
            ids.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(ids, [1, 2, 3]);
        let contains = query(&format!("{sets} SELECT bitmap_contains({a}, 3), bitmap_contains({a}, 4)")).await;
        assert!(contains[0].column(0).as_boolean().value(0) && !contains[0].column(1).as_boolean().value(0));
    }

    #[tokio::test]
    async fn negative_ids_are_an_error() {
        let ctx = SessionContext::new();
        register_bitmap_functions(&ctx);
        let result = ctx.sql("SELECT group_bitmap_state(x) FROM (VALUES (-1)) v(x)").await.unwrap().collect().await;
        assert!(result.unwrap_err().to_string().contains("bitmap ids are integers"));
    }

    #[test]
    fn the_serialization_is_portable_roaring() {
        let bitmap: RoaringBitmap = [1u32, 2, 100_000].into_iter().collect();
        let bytes = to_bytes(&bitmap);
        // The portable format's cookie: 12346 (no run containers) or 12347 (with runs).
        let cookie = u16::from_le_bytes([bytes[0], bytes[1]]);
        assert!(cookie == 12346 || cookie == 12347, "{cookie}");
        assert_eq!(from_bytes(&bytes).unwrap(), bitmap);
    }
}
