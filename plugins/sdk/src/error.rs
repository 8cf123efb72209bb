//! The plugin error type: the Rust twin of the WIT `error` variant.

use std::fmt;

/// What went wrong inside a plugin. The host adds the plugin's name and the function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// An option was unknown, malformed or out of range; the message names it.
    InvalidOptions(String),
    /// The input bytes are not a valid encoding.
    CorruptInput(String),
    /// A valid request this plugin does not handle.
    Unsupported(String),
    /// A bug in the plugin.
    Internal(String),
}

impl Error {
    /// Shorthand for a `CorruptInput` error.
    pub fn corrupt(msg: impl Into<String>) -> Error {
        Error::CorruptInput(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidOptions(m) => write!(f, "invalid options: {m}"),
            Error::CorruptInput(m) => write!(f, "corrupt input: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result with the plugin error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
