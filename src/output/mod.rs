//! The output formats of `ferry validate`: text, JSON, JUnit XML and TAP. Each is a
//! [`Reporter`] that receives files in input order as they are validated, so output streams.

mod json;
mod junit;
mod tap;
mod text;

use std::io::{self, Write};

use ferry_schema::run::{FileReport, Summary, object_name};
use ferry_schema::validate::ResourceReport;

use crate::Format;

/// Writes validation results in one format.
pub trait Reporter {
    /// Called once before any file.
    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called for each file, in input order.
    fn file(&mut self, file: &FileReport) -> io::Result<()>;
    /// Called once at the end.
    fn finish(&mut self, summary: &Summary) -> io::Result<()>;
}

/// The reporter for a format.
pub fn reporter<'a, W: Write + 'a>(
    format: Format,
    out: W,
    verbose: bool,
    summary: bool,
) -> Box<dyn Reporter + 'a> {
    let out = io::BufWriter::new(out);
    match format {
        Format::Text => Box::new(text::Text::new(out, verbose)),
        Format::Json => Box::new(json::Json::new(out)),
        Format::Junit => Box::new(junit::Junit::new(out)),
        Format::Tap => Box::new(tap::Tap::new(out, summary)),
    }
}

/// `Deployment default/web (document 0)`, or `document 2` when the kind is unknown.
pub fn describe(r: &ResourceReport) -> String {
    match (r.kind.is_empty(), r.name.is_empty()) {
        (true, _) => format!("document {}", r.document),
        (false, true) => format!("{} (unnamed, document {})", r.kind, r.document),
        (false, false) => format!(
            "{} {} (document {})",
            r.kind,
            object_name(&r.namespace, &r.name),
            r.document
        ),
    }
}

/// The summary line shared by the text and TAP formats.
pub fn summary_line(s: &Summary) -> String {
    format!(
        "Summary: {} resource{} found in {} file{} - Valid: {}, Invalid: {}, Errors: {}, Skipped: {}",
        s.resources,
        if s.resources == 1 { "" } else { "s" },
        s.files,
        if s.files == 1 { "" } else { "s" },
        s.valid,
        s.invalid,
        s.errors,
        s.skipped
    )
}
