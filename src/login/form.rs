//! Reading HTML login and consent forms (with `scraper`): which fields a form posts, and which
//! of its buttons approves or denies.

// The parser lives in the member crate (the `login_form` fuzz target runs it there).
pub use authconform_core::login_form::{Button, Form, Link, Page, parse};
