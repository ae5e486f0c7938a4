//! TAP (version 13) output: one test per resource, with a YAML block of findings under each
//! failure, and the plan at the end (the number of resources is known only then).

use std::io::{self, Write};

use ferry_schema::run::{FileReport, Summary};
use ferry_schema::validate::Status;

use super::{Reporter, describe, summary_line};

pub struct Tap<W: Write> {
    out: W,
    summary: bool,
    count: usize,
}

impl<W: Write> Tap<W> {
    pub fn new(out: W, summary: bool) -> Self {
        Tap {
            out,
            summary,
            count: 0,
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl<W: Write> Reporter for Tap<W> {
    fn start(&mut self) -> io::Result<()> {
        writeln!(self.out, "TAP version 13")
    }

    fn file(&mut self, file: &FileReport) -> io::Result<()> {
        for r in &file.resources {
            self.count += 1;
            let what = format!("{} {}", r.filename, describe(r));
            match r.status {
                Status::Valid => writeln!(self.out, "ok {} - {what}", self.count)?,
                Status::Skipped => writeln!(self.out, "ok {} - {what} # SKIP", self.count)?,
                Status::Invalid | Status::Error => {
                    writeln!(self.out, "not ok {} - {what}", self.count)?;
                    writeln!(self.out, "  ---")?;
                    writeln!(self.out, "  status: {}", r.status.as_str())?;
                    writeln!(self.out, "  errors:")?;
                    for e in &r.errors {
                        writeln!(self.out, "    - path: {}", quoted(&e.path))?;
                        writeln!(self.out, "      line: {}", e.line)?;
                        writeln!(self.out, "      column: {}", e.column)?;
                        writeln!(self.out, "      message: {}", quoted(&e.message))?;
                    }
                    writeln!(self.out, "  ...")?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        writeln!(self.out, "1..{}", self.count)?;
        if self.summary {
            writeln!(self.out, "# {}", summary_line(summary))?;
        }
        self.out.flush()
    }
}
