//! Where a generated file goes: memory (the demo, tests) or a file on disk, gzip-compressed if
//! asked, written as it is generated so that 10M persons need no more memory than 1,000.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

enum Out {
    Memory(Vec<u8>),
    File(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

/// One generated file being written. Generators write to it with `writeln!`; the first I/O
/// error is kept and returned by [`Sink::finish`].
pub(crate) struct Sink {
    out: Out,
    path: Option<PathBuf>,
    lines: u64,
    error: Option<std::io::Error>,
}

/// A finished sink: its bytes when in memory, its path when on disk, and its line count.
pub(crate) struct Finished {
    pub bytes: Vec<u8>,
    pub path: Option<PathBuf>,
    pub lines: u64,
}

impl Sink {
    pub(crate) fn memory() -> Self {
        Self { out: Out::Memory(Vec::new()), path: None, lines: 0, error: None }
    }

    /// A file at `path` (created with its directory); `.gz` is appended when `gzip`.
    pub(crate) fn file(path: &Path, gzip: bool) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let path = if gzip { PathBuf::from(format!("{}.gz", path.display())) } else { path.to_path_buf() };
        let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let out = if gzip { Out::Gzip(GzEncoder::new(file, Compression::fast())) } else { Out::File(file) };
        Ok(Self { out, path: Some(path), lines: 0, error: None })
    }

    pub(crate) fn finish(self) -> std::io::Result<Finished> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let bytes = match self.out {
            Out::Memory(bytes) => bytes,
            Out::File(mut file) => {
                file.flush()?;
                Vec::new()
            }
            Out::Gzip(gzip) => {
                gzip.finish()?.flush()?;
                Vec::new()
            }
        };
        Ok(Finished { bytes, path: self.path, lines: self.lines })
    }
}

impl std::fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.error.is_some() {
            return Err(std::fmt::Error);
        }
        self.lines += s.bytes().filter(|&b| b == b'\n').count() as u64;
        let written = match &mut self.out {
            Out::Memory(bytes) => {
                bytes.extend_from_slice(s.as_bytes());
                Ok(())
            }
            Out::File(file) => file.write_all(s.as_bytes()),
            Out::Gzip(gzip) => gzip.write_all(s.as_bytes()),
        };
        written.map_err(|e| {
            self.error = Some(e);
            std::fmt::Error
        })
    }
}
