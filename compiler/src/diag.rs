//! Diagnostics for policy authors: what is wrong, where, and how to fix it.
//!
//! A [`Diagnostic`] carries a stable code (`pgate::unknown-table`), a severity, a lowercase
//! message with user input in backticks, labelled source spans and an optional help line.
//! It renders three ways: human (miette's graphical report with the source excerpt), JSON
//! (one document for tools) and GitHub annotations (`::error file=…,line=…,col=…::msg`).
//!
//! Codes are part of the CLI's contract: never rename one, only add. This module never
//! decides whether a policy is valid; it only describes what other passes found.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use serde::Serialize;

use crate::source::{Sources, Span};

/// Stable diagnostic codes.
pub mod codes {
    pub const KDL_SYNTAX: &str = "pgate::kdl-syntax";
    pub const INPUT_LIMIT: &str = "pgate::input-limit";
    pub const UNKNOWN_NODE: &str = "pgate::unknown-node";
    pub const UNKNOWN_PROPERTY: &str = "pgate::unknown-property";
    pub const MISSING_ARGUMENT: &str = "pgate::missing-argument";
    pub const MISSING_PROPERTY: &str = "pgate::missing-property";
    pub const INVALID_VALUE: &str = "pgate::invalid-value";
    pub const DUPLICATE: &str = "pgate::duplicate-declaration";
    pub const UNQUALIFIED_NAME: &str = "pgate::unqualified-name";
    pub const UNKNOWN_ROLE: &str = "pgate::unknown-role";
    pub const UNKNOWN_TABLE: &str = "pgate::unknown-table";
    pub const UNKNOWN_COLUMN: &str = "pgate::unknown-column";
    pub const UNKNOWN_TAG: &str = "pgate::unknown-tag";
    pub const UNKNOWN_CLASS: &str = "pgate::unknown-class";
    pub const UNKNOWN_FUNCTION: &str = "pgate::unknown-function";
    pub const INHERITANCE_CYCLE: &str = "pgate::inheritance-cycle";
    pub const MASK_UNREADABLE: &str = "pgate::mask-unreadable";
    pub const MASK_CONFLICT: &str = "pgate::mask-conflict";
    pub const ALLOW_DENY_OVERLAP: &str = "pgate::allow-deny-overlap";
    pub const SHADOWED_RULE: &str = "pgate::shadowed-rule";
    pub const REDUNDANT_RULE: &str = "pgate::redundant-rule";
    pub const INVARIANT_VIOLATED: &str = "pgate::invariant-violated";
    pub const EMPTY_SELECTION: &str = "pgate::empty-selection";
    pub const TABLE_LIMIT: &str = "pgate::table-limit";
    /// A `delegated` block may only narrow (no allow, no membership, no nesting).
    pub const DELEGATED_WIDENS: &str = "pgate::delegated-widens";
    /// More delegated variants than a role may have.
    pub const DELEGATION_LIMIT: &str = "pgate::delegation-limit";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A labelled span. The first label of a diagnostic is its primary location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
    pub fn primary(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// The diagnostics of one compilation, in a deterministic order.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn count(&self, s: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == s).count()
    }
    /// Sorts by (file, offset, code, message) and drops exact duplicates.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            let ka = (a.primary(), a.severity, a.code, &a.message);
            let kb = (b.primary(), b.severity, b.code, &b.message);
            ka.cmp(&kb)
        });
        self.items.dedup();
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
}

/// "did you mean `x`?" — the closest candidate, if close enough.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::normalized_damerau_levenshtein(input, c)
            .max(strsim::jaro_winkler(input, c) - 0.1);
        if score >= 0.7 && best.is_none_or(|(s, b)| score > s || (score == s && c < b)) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Output formats for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DiagFormat {
    #[default]
    Human,
    Json,
    Github,
}

/// The lines of a file around a diagnostic's labels, as miette reads them. miette finds
/// a span's line by scanning from the start of what it is given, so handing it whole files
/// made rendering N diagnostics cost N passes over a large catalog.
struct Window {
    name: String,
    text: Arc<str>,
    start: usize,
    end: usize,
    /// 0-based line of `start`.
    first_line: usize,
}

impl miette::SourceCode for Window {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let window = self.text.get(self.start..self.end).unwrap_or("");
        let rel = span
            .offset()
            .checked_sub(self.start)
            .ok_or(miette::MietteError::OutOfBounds)?;
        let inner = <str as miette::SourceCode>::read_span(
            window,
            &miette::SourceSpan::new(rel.into(), span.len()),
            before,
            after,
        )?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            miette::SourceSpan::new(
                (inner.span().offset() + self.start).into(),
                inner.span().len(),
            ),
            inner.line() + self.first_line,
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// A diagnostic bound to its source text, for miette's renderer.
struct Rendered<'a> {
    diag: &'a Diagnostic,
    source: Option<Window>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}
impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}
impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

fn rendered<'a>(diag: &'a Diagnostic, sources: &Sources) -> Rendered<'a> {
    let primary_file = diag.primary().map(|s| s.file);
    let in_file = diag
        .labels
        .iter()
        .filter(|l| Some(l.span.file) == primary_file);
    let from = in_file.clone().map(|l| l.span.offset).min().unwrap_or(0);
    let to = in_file
        .map(|l| l.span.offset.saturating_add(l.span.len))
        .max()
        .unwrap_or(0);
    let source = primary_file.and_then(|f| sources.file(f)).map(|f| {
        // miette shows a line or two of context; four is a margin.
        let (start, end, first_line) = f.lines_around(from, to, 4);
        Window {
            name: f.path.clone(),
            text: f.text.clone(),
            start,
            end,
            first_line,
        }
    });
    let mut labels = Vec::new();
    let mut elsewhere = Vec::new();
    for (i, l) in diag.labels.iter().enumerate() {
        if Some(l.span.file) == primary_file {
            let text = if l.text.is_empty() {
                None
            } else {
                Some(l.text.clone())
            };
            let span = (l.span.offset as usize, l.span.len as usize);
            labels.push(if i == 0 {
                LabeledSpan::new_primary_with_span(text, span)
            } else {
                LabeledSpan::new_with_span(text, span)
            });
        } else {
            elsewhere.push(format!("{}: {}", sources.location(l.span), l.text));
        }
    }
    let mut help = diag.help.clone();
    if !elsewhere.is_empty() {
        let extra = elsewhere.join("\n");
        help = Some(match help {
            Some(h) => format!("{h}\n{extra}"),
            None => extra,
        });
    }
    Rendered {
        diag,
        source,
        labels,
        help,
    }
}

/// Renders diagnostics for a terminal (miette's graphical report) with a summary line.
pub fn render_human(diags: &Diagnostics, sources: &Sources, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for d in diags.iter() {
        let r = rendered(d, sources);
        if handler.render_report(&mut out, &r).is_err() {
            out.push_str(&format!(
                "{}: {} [{}]\n",
                d.severity.name(),
                d.message,
                d.code
            ));
        }
        out.push('\n');
    }
    out
}

/// One line summarising errors and warnings.
pub fn summary(diags: &Diagnostics) -> String {
    let e = diags.count(Severity::Error);
    let w = diags.count(Severity::Warning);
    let plural = |n: usize, s: &str| {
        if n == 1 {
            format!("{n} {s}")
        } else {
            format!("{n} {s}s")
        }
    };
    format!("{}, {}", plural(e, "error"), plural(w, "warning"))
}

/// One diagnostic, flattened for JSON.
#[derive(Clone, Debug, Serialize)]
pub struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub help: Option<String>,
    pub labels: Vec<JsonLabel>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub text: String,
}

pub fn to_json(d: &Diagnostic, sources: &Sources) -> JsonDiagnostic {
    let loc = d.primary().map(|s| sources.location(s));
    JsonDiagnostic {
        code: d.code,
        severity: d.severity,
        message: d.message.clone(),
        file: loc.as_ref().map(|l| l.file.clone()),
        line: loc.as_ref().map(|l| l.line),
        column: loc.as_ref().map(|l| l.column),
        help: d.help.clone(),
        labels: d
            .labels
            .iter()
            .map(|l| {
                let loc = sources.location(l.span);
                JsonLabel {
                    file: loc.file,
                    line: loc.line,
                    column: loc.column,
                    text: l.text.clone(),
                }
            })
            .collect(),
    }
}

/// The JSON document `check`/`build` print: `{"ok":…, "errors":…, "warnings":…, "diagnostics":[…]}`.
pub fn render_json(diags: &Diagnostics, sources: &Sources) -> serde_json::Value {
    serde_json::json!({
        "ok": !diags.has_errors(),
        "errors": diags.count(Severity::Error),
        "warnings": diags.count(Severity::Warning),
        "diagnostics": diags.iter().map(|d| to_json(d, sources)).collect::<Vec<_>>(),
    })
}

/// GitHub Actions workflow commands, one line per diagnostic.
pub fn render_github(diags: &Diagnostics, sources: &Sources) -> String {
    let mut out = String::new();
    for d in diags.iter() {
        out.push_str(&github_line(d, sources));
        out.push('\n');
    }
    out
}

pub fn github_line(d: &Diagnostic, sources: &Sources) -> String {
    let mut msg = format!("{} [{}]", d.message, d.code);
    if let Some(h) = &d.help {
        msg.push_str(" — ");
        msg.push_str(h);
    }
    let mut props = Vec::new();
    if let Some(span) = d.primary() {
        let loc = sources.location(span);
        let file = match sources.root.is_dir() {
            true => sources.root.join(&loc.file).display().to_string(),
            false => sources.root.display().to_string(),
        };
        props.push(format!("file={}", github_escape_property(&file)));
        props.push(format!("line={}", loc.line));
        props.push(format!("col={}", loc.column));
    }
    props.push(format!("title={}", github_escape_property(d.code)));
    format!(
        "::{} {}::{}",
        d.severity.name(),
        props.join(","),
        github_escape_data(&msg)
    )
}

/// Escaping of a workflow command's message.
pub fn github_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a workflow command's property value.
pub fn github_escape_property(s: &str) -> String {
    github_escape_data(s)
        .replace(':', "%3A")
        .replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    #[test]
    fn suggestions_pick_the_closest_name() {
        let c = ["public.customers", "public.orders"];
        assert_eq!(
            did_you_mean("public.custmers", c).as_deref(),
            Some("did you mean `public.customers`?")
        );
        assert_eq!(did_you_mean("zzz", c), None);
    }

    #[test]
    fn github_lines_escape_and_locate() {
        let sources = Sources::from_memory([("p.kdl", "role \"a\" {\n  allow \"x\"\n}\n")]);
        let d = Diagnostic::error(codes::UNKNOWN_CLASS, "unknown class `x`\nsecond")
            .label(Span::new(FileId(0), 19, 3), "here");
        let line = github_line(&d, &sources);
        assert!(line.starts_with("::error file="), "{line}");
        assert!(line.contains(",line=2,col=9,"), "{line}");
        assert!(line.contains("unknown class `x`%0Asecond"), "{line}");
        assert_eq!(line.lines().count(), 1);
    }
}
