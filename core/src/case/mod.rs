//! Case files: loading, validation and selection.
//!
//! A case file is data (see [`model`]); loading checks it three ways, each naming file, line,
//! column and field: TOML syntax, the Rust model (`deny_unknown_fields` catches typos), and
//! `schemas/case.schema.json` (value rules: id form, levels, revisions, areas). The shipped cases
//! are compiled into the binary, so an installed `authconform` needs no checkout.

pub mod model;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use include_dir::{Dir, include_dir};

pub use model::{CaseFile, Feature, Role, Step};
use model::{CheckStep, DocumentStep, FetchesStep, TokenStep};

use crate::record::Level;
use crate::spec::Revision;

// The repository's `cases/` and `schemas/` (this crate lives in `core/`).
static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../cases");
static BUILTIN_SCHEMAS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../schemas");

/// A schema shipped under `schemas/`, by file name.
pub fn schema_text(name: &str) -> Option<&'static str> {
    BUILTIN_SCHEMAS
        .get_file(name)
        .and_then(|f| f.contents_utf8())
}

/// A loaded, validated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub file: CaseFile,
    /// Where it came from (for messages).
    pub path: String,
}

impl Case {
    pub fn id(&self) -> &str {
        &self.file.id
    }
    /// Does the case wait on purpose (for something to expire)? Such cases start first.
    pub fn waits(&self) -> bool {
        self.file.steps.iter().any(|s| match s {
            Step::Wait(_) => true,
            Step::Check(c) => c.name == "code_lifetime" || c.name == "refresh_idle_expiry",
            _ => false,
        })
    }
    /// The requirement id without the variant suffix.
    pub fn requirement(&self) -> &str {
        self.file.id.split('.').next().unwrap_or(&self.file.id)
    }
    /// Level at a revision; `Info` when the requirement is not part of it.
    pub fn level_at(&self, rev: Revision) -> Level {
        if !self.file.specs.iter().any(|s| s == rev.as_str()) {
            return Level::Info;
        }
        self.file
            .levels
            .get(rev.as_str())
            .copied()
            .unwrap_or(self.file.level)
            .into()
    }
}

/// A case file (or config file) error, located.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field (`steps[2].expect.status`), when known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for FileError {}

impl FileError {
    /// An error at the value of the first of `paths` (JSON-pointer-like, see [`span_of`]) found
    /// in the TOML `text`; line 1, column 1 when none is. Every loader of a TOML file locates
    /// its own checks with it.
    pub fn at(file: &str, text: &str, paths: &[&[String]], field: String, message: String) -> Self {
        let (line, column) = (paths.iter())
            .find_map(|p| span_of(text, p))
            .map(|s| line_col(text, s.start))
            .unwrap_or((1, 1));
        FileError {
            file: file.to_string(),
            line,
            column,
            field: Some(field),
            message,
        }
    }
}

/// All the errors of a load (every file is checked, so one run shows every mistake).
#[derive(Debug, Clone)]
pub struct LoadErrors(pub Vec<FileError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Reads a text file for loading; a read failure is a located error like any other.
pub fn read_text(path: &Path) -> Result<(String, String), FileError> {
    let display = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(t) => Ok((display, t)),
        Err(e) => Err(FileError {
            file: display,
            line: 1,
            column: 1,
            field: None,
            message: format!("cannot read: {e}"),
        }),
    }
}

/// Turns a TOML/serde error into a located [`FileError`].
pub fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> FileError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    let message = e.message().trim().to_string();
    // serde names the field in its messages (`unknown field `x``, `missing field `y``).
    let field = extract_backticked(&message);
    FileError {
        file: file.to_string(),
        line,
        column,
        field,
        message,
    }
}

fn extract_backticked(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(msg[start..start + len].to_string())
}

/// Byte span of the value at a JSON-pointer-like path (`["steps", "2", "expect"]`) in TOML text.
pub fn span_of(text: &str, path: &[String]) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut cur_table = Some(root.get_ref());
    let mut cur_array: Option<&toml::de::DeArray<'_>> = None;
    for seg in path {
        if let Some(t) = cur_table.take() {
            let (k, v) = t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == seg.as_str())?;
            span = k.span();
            descend(v.get_ref(), &mut cur_table, &mut cur_array);
        } else if let Some(a) = cur_array.take() {
            let i: usize = seg.parse().ok()?;
            let v = a.get(i)?;
            span = v.span();
            descend(v.get_ref(), &mut cur_table, &mut cur_array);
        } else {
            break;
        }
    }
    fn descend<'a, 'i>(
        v: &'a DeValue<'i>,
        t: &mut Option<&'a DeTable<'i>>,
        a: &mut Option<&'a toml::de::DeArray<'i>>,
    ) {
        match v {
            DeValue::Table(x) => *t = Some(x),
            DeValue::Array(x) => *a = Some(x),
            _ => {}
        }
    }
    Some(span)
}

fn catalogue() -> &'static BTreeSet<String> {
    static IDS: OnceLock<BTreeSet<String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let v: serde_json::Value =
            serde_json::from_str(schema_text("requirements.json").unwrap_or("{}"))
                .unwrap_or_default();
        v["requirements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Is `id` a catalogue requirement id (optionally with a variant)?
pub fn is_requirement_id(id: &str) -> bool {
    catalogue().contains(id.split('.').next().unwrap_or(id))
}

fn case_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(schema_text("case.schema.json").expect("case schema shipped"))
                .expect("case.schema.json is valid JSON");
        jsonschema::draft202012::new(&schema).expect("case.schema.json is a valid schema")
    })
}

/// Parses and validates one case file. `rel` is its path relative to the cases root
/// (`<area>/<id>.toml`), which must agree with the file's `area` and `id`. `known_checks` are
/// the names a `do = "check"` step may use (`authconform::checks::NAMES`): the loader does not
/// know the checks, whose implementations need the network.
pub fn parse_case(
    display: &str,
    rel: &Path,
    text: &str,
    known_checks: &[&str],
) -> Result<Case, Vec<FileError>> {
    let at = |path: &[String], field: String, message: String| {
        FileError::at(display, text, &[path], field, message)
    };
    // Value rules first: they give exact paths, where serde's errors inside steps only give
    // the step's table.
    let raw: toml::Table = toml::from_str(text).map_err(|e| vec![toml_error(display, text, &e)])?;
    let json = serde_json::to_value(&raw).unwrap_or_default();
    let mut errors: Vec<FileError> = case_validator()
        .iter_errors(&json)
        .map(|e| {
            let mut path: Vec<String> = e
                .instance_path()
                .as_str()
                .split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect();
            // An unknown key is reported at its parent; point at the key itself, since that is
            // the typo the author has to fix.
            let mut message = e.to_string();
            if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
                e.kind()
                && let Some(first) = unexpected.first()
            {
                path.push(first.clone());
                message = format!("unknown key `{first}` (not part of the case format)");
            }
            let field = if path.is_empty() {
                "(top level)".to_string()
            } else {
                dotted(&path)
            };
            at(&path, field, message)
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let file: CaseFile = toml::from_str(text).map_err(|e| vec![toml_error(display, text, &e)])?;
    if !is_requirement_id(&file.id) {
        errors.push(at(
            &["id".into()],
            "id".into(),
            format!(
                "{:?} is not a requirement id of the catalogue (../shared/requirements.md)",
                file.id
            ),
        ));
    }
    let stem = rel.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != file.id {
        errors.push(at(
            &["id".into()],
            "id".into(),
            format!("id {:?} must match the file name {stem:?}.toml", file.id),
        ));
    }
    let dir = rel
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("");
    if dir != file.area {
        errors.push(at(
            &["area".into()],
            "area".into(),
            format!("area {:?} must match the directory {dir:?}", file.area),
        ));
    }
    if file.fault.is_none() == file.no_fault.is_none() {
        errors.push(at(
            &["id".into()],
            "fault".into(),
            "a case declares exactly one of `fault` (its negative control in the reference server) and `no_fault` (why it cannot have one)".into(),
        ));
    }
    for (i, step) in file.steps.iter().enumerate() {
        let here = |k: &str| vec!["steps".to_string(), i.to_string(), k.to_string()];
        match step {
            Step::Check(CheckStep { name, .. }) if !known_checks.contains(&name.as_str()) => {
                errors.push(at(
                    &here("name"),
                    format!("steps[{i}].name"),
                    format!(
                        "unknown check {name:?} (known: {})",
                        known_checks.join(", ")
                    ),
                ));
            }
            _ => {}
        }
        let expect = step.expect();
        for (field, value) in match step {
            Step::Document(DocumentStep { listener, .. })
            | Step::Fetches(FetchesStep { listener, .. }) => {
                vec![("listener", listener.as_deref())]
            }
            _ => vec![],
        } {
            if let Some(v) = value
                && !["https", "http", "canary"].contains(&v)
            {
                errors.push(at(
                    &here(field),
                    format!("steps[{i}].{field}"),
                    format!("unknown listener {v:?} (https, http, canary)"),
                ));
            }
        }
        if let Step::Token(TokenStep { auth: Some(a), .. }) = step
            && !["none", "basic", "post", "both", "query", "omit", "jwt"].contains(&a.as_str())
        {
            errors.push(at(
                &here("auth"),
                format!("steps[{i}].auth"),
                format!(
                    "unknown client authentication {a:?} (none, basic, post, both, query, omit, jwt)"
                ),
            ));
        }
        if let Some(schema) = expect.and_then(|e| e.schema.as_ref())
            && schema_text(schema).is_none()
        {
            errors.push(at(
                &[
                    "steps".into(),
                    i.to_string(),
                    "expect".into(),
                    "schema".into(),
                ],
                format!("steps[{i}].expect.schema"),
                format!("no schema {schema:?} under schemas/"),
            ));
        }
    }
    for (rev, _) in file.levels.iter() {
        if !file.specs.contains(rev) {
            errors.push(at(
                &["levels".into(), rev.clone()],
                format!("levels.{rev}"),
                format!("a level is given for {rev} but {rev} is not in `specs`"),
            ));
        }
    }
    if errors.is_empty() {
        let mut file = file;
        infer_preconditions(&mut file);
        Ok(Case {
            file,
            path: display.to_string(),
        })
    } else {
        Err(errors)
    }
}

/// A request that must succeed and is followed by a step that judges is the stage for that
/// judgement, not the judgement itself: when it fails, the case cannot be judged and is
/// `errored`, never `failed` (a first redemption answered 500 says nothing about single use).
/// Steps that say `precondition` explicitly keep what they say; a case whose own requirement is
/// the success of an early step (a rotated refresh token must come back) says `false` there.
pub fn infer_preconditions(file: &mut CaseFile) {
    let n = file.steps.len();
    for i in 0..n {
        let judged_later = file.steps[i + 1..].iter().any(|s| match s {
            Step::Check(_) | Step::Authorize(_) => true,
            other => other.expect().is_some(),
        });
        let success = file.steps[i]
            .expect()
            .is_some_and(model::Expect::demands_success);
        match &mut file.steps[i] {
            Step::Token(TokenStep { precondition, .. })
            | Step::McpRequest(model::McpRequestStep { precondition, .. }) => {
                precondition.get_or_insert(success && judged_later);
            }
            _ => {}
        }
    }
}

fn dotted(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if seg.chars().all(|c| c.is_ascii_digit()) {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

fn finish(mut cases: Vec<Case>, mut errors: Vec<FileError>) -> Result<Vec<Case>, LoadErrors> {
    let mut seen = BTreeSet::new();
    for c in &cases {
        if !seen.insert(c.id().to_string()) {
            errors.push(FileError {
                file: c.path.clone(),
                line: 1,
                column: 1,
                field: Some("id".into()),
                message: format!("duplicate case id {:?}", c.id()),
            });
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    cases.sort_by(|a, b| (area_rank(&a.file.area), a.id()).cmp(&(area_rank(&b.file.area), b.id())));
    Ok(cases)
}

/// Areas in the order a client meets them, so reports read like a walk through the flow.
pub const AREAS: &[&str] = &[
    "challenge",
    "prm",
    "as_metadata",
    "pkce",
    "redirect_uri",
    "authorization_code",
    "dcr",
    "cimd",
    "token_endpoint",
    "token_lifecycle",
    "revocation",
    "audience",
    "scopes",
    "transport",
    "client_credentials",
    // Catalogue area 15, one area per mechanism: PAR (RFC 9126), DPoP (RFC 9449), token
    // exchange (RFC 8693); then area 16, enterprise-managed authorization (ID-JAG).
    "par",
    "dpop",
    "token_exchange",
    "id_jag",
];

fn area_rank(a: &str) -> usize {
    AREAS.iter().position(|x| *x == a).unwrap_or(AREAS.len())
}

/// The case files compiled into the binary, unparsed: `(<area>/<id>.toml, text)`.
pub fn builtin_files() -> impl Iterator<Item = (&'static Path, &'static str)> {
    BUILTIN
        .dirs()
        .flat_map(|d| d.files())
        .filter(|f| f.path().extension().and_then(|e| e.to_str()) == Some("toml"))
        .map(|f| (f.path(), f.contents_utf8().unwrap_or("")))
}

/// The cases compiled into the binary; `known_checks` as for [`parse_case`].
pub fn load_builtin(known_checks: &[&str]) -> Result<Vec<Case>, LoadErrors> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for (rel, text) in builtin_files() {
        let display = format!("cases/{}", rel.display());
        match parse_case(&display, rel, text, known_checks) {
            Ok(c) => cases.push(c),
            Err(e) => errors.extend(e),
        }
    }
    finish(cases, errors)
}

/// The cases of a directory (`--cases DIR`): `DIR/<area>/<id>.toml`; `known_checks` as for
/// [`parse_case`].
pub fn load_dir(root: &Path, known_checks: &[&str]) -> Result<Vec<Case>, LoadErrors> {
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let io_err = |p: &Path, e: std::io::Error| FileError {
        file: p.display().to_string(),
        line: 1,
        column: 1,
        field: None,
        message: format!("cannot read: {e}"),
    };
    let areas = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) => return Err(LoadErrors(vec![io_err(root, e)])),
    };
    let mut dirs: Vec<_> = areas.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    for area in dirs.into_iter().filter(|p| p.is_dir()) {
        let mut files: Vec<_> = match std::fs::read_dir(&area) {
            Ok(r) => r.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) => {
                errors.push(io_err(&area, e));
                continue;
            }
        };
        files.sort();
        for f in files {
            if f.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let rel = f.strip_prefix(root).unwrap_or(&f).to_path_buf();
            match std::fs::read_to_string(&f) {
                Ok(text) => match parse_case(&f.display().to_string(), &rel, &text, known_checks) {
                    Ok(c) => cases.push(c),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(io_err(&f, e)),
            }
        }
    }
    if cases.is_empty() && errors.is_empty() {
        errors.push(FileError {
            file: root.display().to_string(),
            line: 1,
            column: 1,
            field: None,
            message: "no case files (expected <area>/<id>.toml)".into(),
        });
    }
    finish(cases, errors)
}

/// `--only` / `--skip` / `--level` selection.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// Keep cases at this declared level or stricter.
    pub level: Option<Level>,
}

impl Selection {
    /// A pattern matches a case id (exactly, or as a glob like `prm-*`), its requirement id (so
    /// `rs-400-malformed-auth` selects its variants), or its area.
    pub fn matches(pattern: &str, case: &Case) -> bool {
        if pattern == case.id() || pattern == case.requirement() || pattern == case.file.area {
            return true;
        }
        globset::Glob::new(pattern)
            .map(|g| g.compile_matcher().is_match(case.id()))
            .unwrap_or(false)
    }

    pub fn keeps(&self, case: &Case) -> bool {
        if !self.only.is_empty() && !self.only.iter().any(|p| Self::matches(p, case)) {
            return false;
        }
        if self.skip.iter().any(|p| Self::matches(p, case)) {
            return false;
        }
        if let Some(max) = self.level
            && Level::from(case.file.level) > max
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loader knows no checks of its own: a shipped case with a check step loads when the
    /// caller names its checks, and is refused at each step's `name` when the caller knows none.
    /// (That every shipped case loads with the real names is tested in `tests/catalogue.rs`.)
    #[test]
    fn check_names_come_from_the_caller() {
        let (rel, text) = builtin_files()
            .find(|(_, t)| t.contains("do = \"check\""))
            .expect("a shipped case with a check step");
        let file: CaseFile = toml::from_str(text).expect("a shipped case parses");
        let names: Vec<&str> = file
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Check(c) => Some(c.name.as_str()),
                _ => None,
            })
            .collect();
        assert!(!names.is_empty());
        let case = parse_case("c.toml", rel, text, &names).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(case.file.id, file.id);
        let errors = parse_case("c.toml", rel, text, &[]).expect_err("no check is known");
        assert_eq!(errors.len(), names.len(), "{errors:?}");
        for e in &errors {
            let field = e.field.as_deref().unwrap_or("");
            assert!(
                field.starts_with("steps[") && field.ends_with("].name"),
                "{e}"
            );
            assert!(e.line > 1 && e.message.starts_with("unknown check"), "{e}");
        }
    }

    fn token_preconditions(steps: &str) -> Vec<Option<bool>> {
        let text = format!(
            "id = \"code-single-use\"\ntitle = \"t\"\narea = \"authorization_code\"\nrole = \"as\"\nlevel = \"MUST\"\nrefs = []\nspecs = []\n{steps}"
        );
        let mut file: CaseFile = toml::from_str(&text).expect("parses");
        infer_preconditions(&mut file);
        file.steps
            .iter()
            .filter_map(|s| match s {
                Step::Token(t) => Some(t.precondition),
                _ => None,
            })
            .collect()
    }

    /// A request that must succeed before a later judgement sets the stage; the last judged
    /// request, a refusal, and an explicit choice do not.
    #[test]
    fn preconditions_are_inferred_from_what_follows() {
        let ok = "[[steps]]\ndo = \"token\"\n[steps.expect]\nstatus = [200]\n";
        let refused = "[[steps]]\ndo = \"token\"\n[steps.expect]\nstatus = [400]\n";
        let explicit =
            "[[steps]]\ndo = \"token\"\nprecondition = false\n[steps.expect]\nstatus = [200]\n";
        let toml_steps = |parts: &[&str]| parts.concat();
        assert_eq!(
            token_preconditions(&toml_steps(&[ok, refused])).as_slice(),
            [Some(true), Some(false)]
        );
        assert_eq!(
            token_preconditions(&toml_steps(&[refused, ok])).as_slice(),
            [Some(false), Some(false)]
        );
        assert_eq!(
            token_preconditions(&toml_steps(&[explicit, refused])).as_slice(),
            [Some(false), Some(false)]
        );
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
