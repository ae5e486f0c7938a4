//! JUnit XML output: one `<testsuite>` per file, one `<testcase>` per resource; invalid
//! resources are `<failure>`s, unchecked ones `<error>`s, skipped ones `<skipped/>`.

use std::io::{self, Write};

use ferry_schema::run::{FileReport, Summary};
use ferry_schema::validate::Status;
use quick_xml::escape::escape;

use super::{Reporter, describe, summary_line};

pub struct Junit<W: Write> {
    out: W,
}

impl<W: Write> Junit<W> {
    pub fn new(out: W) -> Self {
        Junit { out }
    }
}

impl<W: Write> Reporter for Junit<W> {
    fn start(&mut self) -> io::Result<()> {
        writeln!(self.out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(self.out, "<testsuites name=\"ferry validate\">")
    }

    fn file(&mut self, file: &FileReport) -> io::Result<()> {
        let count = |s: Status| file.resources.iter().filter(|r| r.status == s).count();
        writeln!(
            self.out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            escape(&file.filename),
            file.resources.len(),
            count(Status::Invalid),
            count(Status::Error),
            count(Status::Skipped)
        )?;
        for r in &file.resources {
            let name = describe(r);
            write!(
                self.out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&file.filename),
                escape(&name)
            )?;
            let details: Vec<String> = r
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}: {} {}",
                        r.filename, e.line, e.column, e.path, e.message
                    )
                })
                .collect();
            let first = r
                .errors
                .first()
                .map(|e| e.message.as_str())
                .unwrap_or_default();
            match r.status {
                Status::Valid => writeln!(self.out, "/>")?,
                Status::Skipped => writeln!(self.out, ">\n      <skipped/>\n    </testcase>")?,
                Status::Invalid | Status::Error => {
                    let tag = if r.status == Status::Invalid {
                        "failure"
                    } else {
                        "error"
                    };
                    writeln!(
                        self.out,
                        ">\n      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>\n    </testcase>",
                        escape(first),
                        r.status.as_str(),
                        escape(details.join("\n"))
                    )?;
                }
            }
        }
        writeln!(self.out, "  </testsuite>")
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        writeln!(self.out, "  <!-- {} -->", summary_line(summary))?;
        writeln!(self.out, "</testsuites>")?;
        self.out.flush()
    }
}
