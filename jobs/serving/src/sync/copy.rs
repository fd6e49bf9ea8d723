//! Arrow columns as PostgreSQL types, and rows as PostgreSQL's binary COPY format (header, one
//! tuple per row: field count, then per field its length and big-endian bytes; a trailer).
//! Written straight from the Arrow arrays: no value is boxed or formatted as text.

use bytes::{BufMut, Bytes, BytesMut};
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use cdplake_engine::arrow::error::ArrowError;

/// Days from 1970-01-01 (Arrow) to 2000-01-01 (PostgreSQL).
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Bytes per chunk sent to the server.
const CHUNK: usize = 1 << 20;

/// The PostgreSQL type a lake column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Text,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Boolean,
    Date,
    Timestamp,
    TimestampTz,
    Bytea,
}

impl PgType {
    /// The type for an Arrow type; None for nested types (lists, structs, maps).
    /// Decimals become double precision (binary COPY of numeric is not written here).
    pub fn of(data_type: &DataType) -> Option<PgType> {
        Some(match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => PgType::Text,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => PgType::SmallInt,
            DataType::Int32 | DataType::UInt16 => PgType::Integer,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => PgType::BigInt,
            DataType::Float16 | DataType::Float32 => PgType::Real,
            DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => PgType::Double,
            DataType::Boolean => PgType::Boolean,
            DataType::Date32 | DataType::Date64 => PgType::Date,
            DataType::Timestamp(_, Some(_)) => PgType::TimestampTz,
            DataType::Timestamp(_, None) => PgType::Timestamp,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                PgType::Bytea
            }
            DataType::Dictionary(_, values) => return PgType::of(values),
            _ => return None,
        })
    }

    /// The type's name in DDL.
    pub fn sql(self) -> &'static str {
        match self {
            PgType::Text => "text",
            PgType::SmallInt => "smallint",
            PgType::Integer => "integer",
            PgType::BigInt => "bigint",
            PgType::Real => "real",
            PgType::Double => "double precision",
            PgType::Boolean => "boolean",
            PgType::Date => "date",
            PgType::Timestamp => "timestamp",
            PgType::TimestampTz => "timestamptz",
            PgType::Bytea => "bytea",
        }
    }

    /// The Arrow type a column is cast to before encoding.
    fn arrow(self) -> DataType {
        match self {
            PgType::Text => DataType::Utf8,
            PgType::SmallInt => DataType::Int16,
            PgType::Integer => DataType::Int32,
            PgType::BigInt => DataType::Int64,
            PgType::Real => DataType::Float32,
            PgType::Double => DataType::Float64,
            PgType::Boolean => DataType::Boolean,
            PgType::Date => DataType::Date32,
            PgType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgType::Bytea => DataType::Binary,
        }
    }
}

/// Encodes batches whose columns are, in order, of `types`.
pub struct CopyEncoder {
    types: Vec<PgType>,
}

impl CopyEncoder {
    pub fn new(types: Vec<PgType>) -> Self {
        Self { types }
    }

    /// The signature, flags and header extension of a binary COPY stream.
    pub fn header(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(19);
        b.put_slice(b"PGCOPY\n\xff\r\n\0");
        b.put_i32(0);
        b.put_i32(0);
        b.freeze()
    }

    /// The end-of-data marker.
    pub fn trailer(&self) -> Bytes {
        Bytes::from_static(&[0xff, 0xff])
    }

    /// A batch's rows as chunks of the COPY stream.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Bytes>, ArrowError> {
        if batch.num_columns() != self.types.len() {
            return Err(ArrowError::SchemaError(format!(
                "{} columns for {} PostgreSQL columns",
                batch.num_columns(),
                self.types.len()
            )));
        }
        let columns =
            batch.columns().iter().zip(&self.types).map(|(c, t)| cast(c, &t.arrow())).collect::<Result<Vec<_>, _>>()?;
        let mut chunks = Vec::new();
        let mut buf = BytesMut::with_capacity(CHUNK + 4096);
        for row in 0..batch.num_rows() {
            buf.put_i16(self.types.len() as i16);
            for (column, kind) in columns.iter().zip(&self.types) {
                if column.is_null(row) {
                    buf.put_i32(-1);
                    continue;
                }
                match kind {
                    PgType::Text => {
                        let v = column.as_string::<i32>().value(row).as_bytes();
                        buf.put_i32(v.len() as i32);
                        buf.put_slice(v);
                    }
                    PgType::Bytea => {
                        let v = column.as_binary::<i32>().value(row);
                        buf.put_i32(v.len() as i32);
                        buf.put_slice(v);
                    }
                    PgType::SmallInt => {
                        buf.put_i32(2);
                        buf.put_i16(column.as_primitive::<Int16Type>().value(row));
                    }
                    PgType::Integer => {
                        buf.put_i32(4);
                        buf.put_i32(column.as_primitive::<Int32Type>().value(row));
                    }
                    PgType::BigInt => {
                        buf.put_i32(8);
                        buf.put_i64(column.as_primitive::<Int64Type>().value(row));
                    }
                    PgType::Real => {
                        buf.put_i32(4);
                        buf.put_f32(column.as_primitive::<Float32Type>().value(row));
                    }
                    PgType::Double => {
                        buf.put_i32(8);
                        buf.put_f64(column.as_primitive::<Float64Type>().value(row));
                    }
                    PgType::Boolean => {
                        buf.put_i32(1);
                        buf.put_u8(u8::from(column.as_boolean().value(row)));
                    }
                    PgType::Date => {
                        buf.put_i32(4);
                        buf.put_i32(column.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS);
                    }
                    PgType::Timestamp | PgType::TimestampTz => {
                        buf.put_i32(8);
                        buf.put_i64(column.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS);
                    }
                }
            }
            if buf.len() >= CHUNK {
                chunks.push(buf.split().freeze());
            }
        }
        if !buf.is_empty() {
            chunks.push(buf.freeze());
        }
        Ok(chunks)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cdplake_engine::arrow::array::{Date32Array, Int64Array, StringArray};
    use cdplake_engine::arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn rows_encode_as_binary_copy_tuples() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("d", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("xy"), None])),
                Arc::new(Int64Array::from(vec![Some(7), Some(-1)])),
                Arc::new(Date32Array::from(vec![Some(PG_EPOCH_DAYS + 1), None])),
            ],
        )
        .unwrap();
        let mut encoder = CopyEncoder::new(vec![PgType::Text, PgType::BigInt, PgType::Date]);
        let bytes: Vec<u8> = encoder.encode(&batch).unwrap().concat();
        let first: Vec<u8> = [
            &3i16.to_be_bytes()[..],
            &2i32.to_be_bytes(),
            b"xy",
            &8i32.to_be_bytes(),
            &7i64.to_be_bytes(),
            &4i32.to_be_bytes(),
            &1i32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(&bytes[..first.len()], first.as_slice());
        let second: Vec<u8> = [
            &3i16.to_be_bytes()[..],
            &(-1i32).to_be_bytes(),
            &8i32.to_be_bytes(),
            &(-1i64).to_be_bytes(),
            &(-1i32).to_be_bytes(),
        ]
        .concat();
        assert_eq!(&bytes[first.len()..], second.as_slice());
        assert_eq!(PgType::of(&DataType::Utf8View), Some(PgType::Text));
        assert_eq!(PgType::of(&DataType::List(Arc::new(Field::new("x", DataType::Int32, true)))), None);
    }
}
