//! How a step or a judgement ends ([`Stop`]) and what a judgement observed on the way
//! ([`Findings`]). The case context (`authconform::step::CaseCtx`) records observations as the
//! report's details; a pure judgement cannot hold the context (it owns the HTTP client), so it
//! writes into [`Findings`] with the same calls, and the check that wraps it replays them.

/// Why a case stopped before its last step.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The requirement was seen to hold before the last step (a refused registration).
    Pass(String),
    Fail(String),
    Skip(String),
    Error(String),
}

pub type StepResult = Result<(), Stop>;

/// One observation of a judgement, in the order made.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// What held (`ok: ...` in the details).
    Pass(String),
    /// A tolerated deviation: the case fails as a warning.
    Warn(String),
    /// Context that is neither (`no expires_in (RECOMMENDED)`).
    Note(String),
    /// The failure the judgement stops with (`FAILED: ...`).
    Fail(String),
}

/// The observations of one judgement. Its methods mirror the case context's (`pass`, `warn`,
/// `note`, `fail`), so a judgement reads like the check it was taken from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    pub fn pass(&mut self, msg: impl Into<String>) {
        self.0.push(Finding::Pass(msg.into()));
    }
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.0.push(Finding::Warn(msg.into()));
    }
    pub fn note(&mut self, msg: impl Into<String>) {
        self.0.push(Finding::Note(msg.into()));
    }
    /// Records a failure and returns it, to stop the judgement with.
    pub fn fail(&mut self, msg: impl Into<String>) -> StepResult {
        let msg = msg.into();
        self.0.push(Finding::Fail(msg.clone()));
        Err(Stop::Fail(msg))
    }
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|f| match f {
            Finding::Warn(m) => Some(m.as_str()),
            _ => None,
        })
    }
    pub fn failures(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|f| match f {
            Finding::Fail(m) => Some(m.as_str()),
            _ => None,
        })
    }
}

/// Runs a judgement and returns its findings with its result.
pub fn judged(judge: impl FnOnce(&mut Findings) -> StepResult) -> (Findings, StepResult) {
    let mut f = Findings::default();
    let r = judge(&mut f);
    (f, r)
}
