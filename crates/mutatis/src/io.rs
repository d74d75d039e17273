//! JSON-lines input and output.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Where records come from: a file, or standard input for `-` or no argument.
pub struct Input {
    pub name: String,
    reader: Box<dyn BufRead>,
}

impl Input {
    pub fn open(path: Option<&Path>) -> Result<Input, CliError> {
        match path {
            None => Ok(Input::stdin()),
            Some(p) if p == Path::new("-") => Ok(Input::stdin()),
            Some(p) => {
                let f = File::open(p).map_err(|error| CliError::Read {
                    path: p.to_path_buf(),
                    error,
                })?;
                Ok(Input {
                    name: p.display().to_string(),
                    reader: Box::new(BufReader::with_capacity(1 << 16, f)),
                })
            }
        }
    }

    /// The name [`Input::open`] gives the input at `path` in messages.
    pub fn name_of(path: Option<&Path>) -> String {
        match path {
            Some(p) if p != Path::new("-") => p.display().to_string(),
            _ => "<stdin>".into(),
        }
    }

    fn stdin() -> Input {
        Input {
            name: "<stdin>".into(),
            reader: Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
        }
    }

    /// Call `f` with each non-blank line (without its newline) and its 1-based number.
    pub fn for_each_line(
        mut self,
        mut f: impl FnMut(&[u8], usize) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let mut buf = Vec::with_capacity(4096);
        let mut line = 0;
        loop {
            buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .map_err(|error| CliError::Read {
                    path: PathBuf::from(&self.name),
                    error,
                })?;
            if n == 0 {
                return Ok(());
            }
            line += 1;
            let trimmed = buf.trim_ascii();
            if !trimmed.is_empty() {
                f(trimmed, line)?;
            }
        }
    }
}

/// Buffered standard output that reports a closed pipe as an error rather than panicking.
pub struct Output {
    out: BufWriter<io::StdoutLock<'static>>,
}

impl Output {
    pub fn stdout() -> Output {
        Output {
            out: BufWriter::with_capacity(1 << 16, io::stdout().lock()),
        }
    }

    pub fn line(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        self.out
            .write_all(bytes)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(write_err)
    }

    pub fn finish(mut self) -> Result<(), CliError> {
        self.out.flush().map_err(write_err)
    }
}

fn write_err(error: io::Error) -> CliError {
    CliError::Write {
        path: PathBuf::from("<stdout>"),
        error,
    }
}

/// Read a whole file as text.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|error| CliError::Read {
        path: path.to_path_buf(),
        error,
    })
}
