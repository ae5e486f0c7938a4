//! Text output: `file:line:column: Kind ns/name (document N): /path: message`, one line per
//! finding, and a summary line at the end.

use std::io::{self, Write};

use ferry_schema::run::{FileReport, Summary};
use ferry_schema::validate::Status;

use super::{Reporter, describe, summary_line};

pub struct Text<W: Write> {
    out: W,
    verbose: bool,
}

impl<W: Write> Text<W> {
    pub fn new(out: W, verbose: bool) -> Self {
        Text { out, verbose }
    }
}

impl<W: Write> Reporter for Text<W> {
    fn file(&mut self, file: &FileReport) -> io::Result<()> {
        for r in &file.resources {
            let what = describe(r);
            match r.status {
                Status::Valid | Status::Skipped => {
                    if self.verbose {
                        writeln!(
                            self.out,
                            "{}:{}:{}: {what} is {}",
                            r.filename,
                            r.start.line,
                            r.start.column,
                            r.status.as_str()
                        )?;
                    }
                }
                Status::Invalid | Status::Error => {
                    let verdict = if r.status == Status::Error {
                        "could not be checked"
                    } else {
                        "is invalid"
                    };
                    for e in &r.errors {
                        let path = if e.path.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", e.path)
                        };
                        writeln!(
                            self.out,
                            "{}:{}:{}: {what} {verdict}: {path}{}",
                            r.filename, e.line, e.column, e.message
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        writeln!(self.out, "{}", summary_line(summary))?;
        self.out.flush()
    }
}
