//! Session errors, as the HTTP layer needs to tell them apart.

/// A session could not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Unknown, expired, terminated, or owned by someone else (legacy: HTTP 404).
    #[error("session not found")]
    NotFound,
    /// The tenant holds as many sessions as it may.
    #[error("too many sessions for this tenant (limit {0})")]
    TooMany(usize),
    /// The caller's key holds as many sessions as it may.
    #[error("too many sessions for this API key (limit {0})")]
    TooManyForKey(usize),
    /// The session's mailbox stayed full.
    #[error("the session is busy; retry shortly")]
    Busy,
    /// A stream cannot be resumed from the given event id.
    #[error("cannot resume from event {0:?}")]
    UnknownEvent(String),
}

impl From<actix::MailboxError> for SessionError {
    fn from(e: actix::MailboxError) -> Self {
        match e {
            actix::MailboxError::Closed => SessionError::NotFound,
            actix::MailboxError::Timeout => SessionError::Busy,
        }
    }
}
