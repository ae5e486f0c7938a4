//! JSON output: one object, `{"resources": [...], "summary": {...}}`, streamed resource by
//! resource.

use std::io::{self, Write};

use ferry_schema::run::{FileReport, Summary};
use serde_json::json;

use super::Reporter;

pub struct Json<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> Json<W> {
    pub fn new(out: W) -> Self {
        Json { out, first: true }
    }
}

impl<W: Write> Reporter for Json<W> {
    fn start(&mut self) -> io::Result<()> {
        write!(self.out, "{{\"resources\": [")
    }

    fn file(&mut self, file: &FileReport) -> io::Result<()> {
        for r in &file.resources {
            let errors: Vec<_> = r
                .errors
                .iter()
                .map(|e| json!({"path": e.path, "line": e.line, "column": e.column, "message": e.message}))
                .collect();
            let resource = json!({
                "filename": r.filename,
                "document": r.document,
                "apiVersion": r.api_version,
                "kind": r.kind,
                "namespace": r.namespace,
                "name": r.name,
                "status": r.status.as_str(),
                "errors": errors,
            });
            let sep = if self.first { "\n  " } else { ",\n  " };
            self.first = false;
            write!(self.out, "{sep}{resource}")?;
        }
        Ok(())
    }

    fn finish(&mut self, s: &Summary) -> io::Result<()> {
        let summary = json!({
            "resources": s.resources,
            "files": s.files,
            "valid": s.valid,
            "invalid": s.invalid,
            "errors": s.errors,
            "skipped": s.skipped,
        });
        writeln!(self.out, "\n], \"summary\": {summary}}}")?;
        self.out.flush()
    }
}
