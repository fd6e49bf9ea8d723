//! `cdplake bench bitmaps` (hidden): synthetic segments of any size for the audience benchmark.
//!
//! Three segments `a`, `b`, `c` of `members` ids each, drawn from a population of twice that
//! many user_int_ids, either `random` (every id independently) or `clustered` (long runs, as ids
//! assigned in signup order give for cohorts). They are stored in `curated.segment_bitmaps` under
//! an as-of date of their own, so `cdplake audience build` runs on them as on real segments, and
//! written as Parquet id lists so DuckDB can run the equivalent joins on the same ids.

use std::sync::Arc;
use std::time::Instant;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{BinaryArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::bitmap::{from_bytes, to_bytes};
use cdplake_engine::parquet::arrow::ArrowWriter;
use chrono::{DateTime, Utc};
use roaring::RoaringBitmap;

use cdplake_core::columns::micros;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_profiles::audience::expr::Expr;
use cdplake_profiles::segments::{ALL_PERSONS, segment_bitmaps_spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    Random,
    Clustered,
}

/// splitmix64, as the data generator uses: the same ids on every run.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn segment(members: u32, layout: Layout, seed: u64) -> RoaringBitmap {
    let population = members.saturating_mul(2);
    let mut state = seed;
    let mut bitmap = RoaringBitmap::new();
    match layout {
        Layout::Random => {
            // Count inserts as they happen: `len()` walks every container.
            let mut count = 0;
            while count < members {
                if bitmap.insert(1 + (next(&mut state) % u64::from(population)) as u32) {
                    count += 1;
                }
            }
        }
        Layout::Clustered => {
            // Runs of 1,000–50,000 ids at random places until the segment is full.
            while bitmap.len() < u64::from(members) {
                let start = 1 + (next(&mut state) % u64::from(population)) as u32;
                let length = 1_000 + (next(&mut state) % 49_000) as u32;
                let missing = (u64::from(members) - bitmap.len()) as u32;
                let end = start.saturating_add(length.min(missing)).min(population + 1);
                bitmap.insert_range(start..end);
            }
        }
    }
    bitmap
}

/// Timings of the set operations, in milliseconds, with their results' sizes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BitmapBench {
    pub layout: String,
    pub members: u32,
    pub serialized_bytes: Vec<(String, usize)>,
    pub timings_ms: Vec<(String, f64, u64)>,
    pub as_of: String,
}

pub async fn bench_bitmaps(
    workspace: &Workspace,
    members: u32,
    layout: Layout,
    out: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<BitmapBench> {
    let segments = Segments::draw(members, layout);
    let timings = time_expressions(&segments)?;
    let as_of = store_segments(workspace, &segments, layout, now).await?;
    write_id_files(out, &segments)?;
    Ok(BitmapBench {
        layout: format!("{layout:?}").to_lowercase(),
        members,
        serialized_bytes: TAGS.iter().map(|t| t.to_string()).zip(segments.bytes.iter().map(Vec::len)).collect(),
        timings_ms: timings,
        as_of: as_of.to_string(),
    })
}

/// The benchmark segments' tags, in the order of [`Segments::sets`].
const TAGS: [&str; 3] = ["a", "b", "c"];

/// The three segments, the population they are drawn from, and their stored bytes.
struct Segments {
    sets: Vec<RoaringBitmap>,
    everyone: RoaringBitmap,
    bytes: Vec<Vec<u8>>,
}

impl Segments {
    fn draw(members: u32, layout: Layout) -> Self {
        let sets: Vec<RoaringBitmap> =
            TAGS.iter().enumerate().map(|(i, _)| segment(members, layout, 7 + i as u64 * 1_000_003)).collect();
        let everyone: RoaringBitmap = (1..=members.saturating_mul(2)).collect();
        let bytes: Vec<Vec<u8>> = sets.iter().map(to_bytes).collect();
        Segments { sets, everyone, bytes }
    }
}

/// Time what an audience build does for a few expressions: decode the stored bytes, then
/// evaluate; and evaluate alone. (label, milliseconds, result size) each.
fn time_expressions(segments: &Segments) -> Result<Vec<(String, f64, u64)>> {
    let Segments { sets, everyone, bytes } = segments;
    let mut timings = Vec::new();
    for expression in ["a AND b", "a OR b", "a AND NOT b", "(a OR b) AND NOT c"] {
        let expr = Expr::parse(expression).map_err(|e| JobError::bad_input(expression, e))?;
        let started = Instant::now();
        let decoded: Vec<RoaringBitmap> = bytes
            .iter()
            .map(|b| from_bytes(b))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| JobError::query("bench", e))?;
        let lookup = |t: &str| TAGS.iter().position(|x| *x == t).map(|i| &decoded[i]);
        let result = expr.evaluate(&lookup, everyone).map_err(|e| JobError::bad_input(expression, e))?.into_owned();
        let with_decode = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let lookup = |t: &str| TAGS.iter().position(|x| *x == t).map(|i| &sets[i]);
        let again = expr.evaluate(&lookup, everyone).map_err(|e| JobError::bad_input(expression, e))?.into_owned();
        let evaluate_only = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(result.len(), again.len());
        timings.push((format!("{expression} (decode + evaluate)"), with_decode, result.len()));
        timings.push((format!("{expression} (evaluate)"), evaluate_only, result.len()));
    }
    Ok(timings)
}

/// Store the segments and everyone in the lake under an as-of date of the layout's own, for
/// `cdplake audience build`; the date.
async fn store_segments(
    workspace: &Workspace,
    segments: &Segments,
    layout: Layout,
    now: DateTime<Utc>,
) -> Result<&'static str> {
    let as_of = match layout {
        Layout::Random => "2099-01-01",
        Layout::Clustered => "2099-01-02",
    };
    let spec = segment_bitmaps_spec();
    workspace.catalog.ensure_table(&spec, &TableMeta::default().with_primary_key(["segment_tag", "as_of"])).await?;
    let mut all_tags: Vec<&str> = TAGS.to_vec();
    all_tags.push(ALL_PERSONS);
    let mut all_bytes = segments.bytes.clone();
    all_bytes.push(to_bytes(&segments.everyone));
    let n = all_tags.len();
    let cardinalities = segments.sets.iter().chain([&segments.everyone]).map(|s| s.len() as i64);
    let batch = RecordBatch::try_new(
        spec.normalized_schema()?,
        vec![
            Arc::new(StringArray::from(all_tags.clone())),
            Arc::new(BinaryArray::from_iter_values(all_bytes.iter())),
            Arc::new(Int64Array::from_iter_values(cardinalities)),
            Arc::new(StringArray::from(vec![format!("synthetic {layout:?} benchmark segment"); n])),
            Arc::new(StringArray::from(vec![as_of; n])),
            micros(std::iter::repeat_n(now.timestamp_micros(), n)),
        ],
    )
    .map_err(|e| JobError::arrow("bench segments", e))?;
    workspace.lake().overwrite_partition(&spec.id, &format!("as_of = '{as_of}'"), vec![batch]).await?;
    Ok(as_of)
}

/// The segments' ids as Parquet under `out`, one `<tag>.parquet` per segment, for DuckDB.
fn write_id_files(out: &std::path::Path, segments: &Segments) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|source| JobError::Io {
        doing: "creating".into(),
        path: out.display().to_string(),
        source,
    })?;
    for (tag, set) in TAGS.iter().zip(&segments.sets) {
        write_ids(&out.join(format!("{tag}.parquet")), set)?;
    }
    Ok(())
}

/// A bitmap's ids as a Parquet file of one `user_int_id` column.
fn write_ids(path: &std::path::Path, set: &RoaringBitmap) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new("user_int_id", DataType::UInt32, false)]));
    let file = std::fs::File::create(path).map_err(|source| JobError::Io {
        doing: "creating".into(),
        path: path.display().to_string(),
        source,
    })?;
    let parquet = |e: cdplake_engine::parquet::errors::ParquetError| JobError::encoding(path.display().to_string(), e);
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None).map_err(parquet)?;
    let ids: Vec<u32> = set.iter().collect();
    for chunk in ids.chunks(1 << 20) {
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt32Array::from(chunk.to_vec()))])
            .map_err(|e| JobError::arrow("bench ids", e))?;
        writer.write(&batch).map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
    Ok(())
}
