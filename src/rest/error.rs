//! Orthanc's errors: the numeric codes, their HTTP statuses, and the JSON error body.
//! Every lower-layer error maps to one code here, in exhaustive matches.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pacsnode_actors::index::IndexError;
use pacsnode_actors::ingest::IngestError;
use pacsnode_actors::jobs::JobError;
use pacsnode_actors::lua::LuaError;
use pacsnode_actors::storage::StorageError;
use serde_json::json;

/// Orthanc's error codes (OrthancFramework Enumerations.h) that pacsnode can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrthancCode {
    InternalError,
    NotImplemented,
    ParameterOutOfRange,
    InexistentItem,
    BadRequest,
    NetworkProtocol,
    InexistentFile,
    BadFileFormat,
    UnknownResource,
    InexistentTag,
    FullStorage,
    IncompatibleImageFormat,
    CorruptedFile,
    DatabaseUnavailable,
    Database,
    Revision,
    ForbiddenAccess,
    BadRange,
    CannotExecuteLua,
    NotAcceptable,
    BadSequenceOfCalls,
    BadParameterType,
    UnknownDicomTag,
    CreateDicomNotString,
    CreateDicomOverrideTag,
    CreateDicomUseContent,
    CreateDicomNoPayload,
    CreateDicomUseDataUriScheme,
    CreateDicomBadParent,
    CreateDicomParentIsInstance,
}

impl OrthancCode {
    /// (Orthanc number, HTTP status, description).
    pub fn info(self) -> (i32, u16, &'static str) {
        match self {
            OrthancCode::InternalError => (-1, 500, "Internal error"),
            OrthancCode::NotImplemented => (2, 500, "Not implemented yet"),
            OrthancCode::ParameterOutOfRange => (3, 400, "Parameter out of range"),
            OrthancCode::InexistentItem => (7, 404, "Accessing an inexistent item"),
            OrthancCode::BadRequest => (8, 400, "Bad request"),
            OrthancCode::NetworkProtocol => (9, 500, "Error in the network protocol"),
            OrthancCode::Database => (11, 500, "Error with the database engine"),
            OrthancCode::InexistentFile => (13, 404, "Inexistent file"),
            OrthancCode::BadFileFormat => (15, 400, "Bad file format"),
            OrthancCode::UnknownResource => (17, 404, "Unknown resource"),
            OrthancCode::InexistentTag => (21, 404, "Inexistent tag"),
            OrthancCode::FullStorage => (19, 507, "The file storage is full"),
            OrthancCode::IncompatibleImageFormat => (23, 415, "Incompatible format of the images"),
            OrthancCode::CorruptedFile => (20, 500, "Corrupted file (e.g. inconsistent MD5 hash)"),
            OrthancCode::DatabaseUnavailable => (36, 503, "The database is currently not available (probably a transient situation)"),
            OrthancCode::Revision => (
                43,
                409,
                "A bad revision number was provided, which might indicate conflict between multiple writers",
            ),
            OrthancCode::ForbiddenAccess => (45, 403, "Access to a resource is forbidden"),
            OrthancCode::BadRange => (41, 416, "Incorrect range request"),
            OrthancCode::CannotExecuteLua => (2031, 500, "Cannot execute a Lua command"),
            OrthancCode::BadSequenceOfCalls => (6, 400, "Bad sequence of calls"),
            OrthancCode::BadParameterType => (5, 400, "Bad type for a parameter"),
            OrthancCode::UnknownDicomTag => (27, 500, "Unknown DICOM tag"),
            OrthancCode::CreateDicomNotString => (
                2019,
                400,
                "Only string values are supported when creating DICOM instances",
            ),
            OrthancCode::CreateDicomOverrideTag => (
                2020,
                400,
                "Trying to override a value inherited from a parent module",
            ),
            OrthancCode::CreateDicomUseContent => (
                2021,
                400,
                "Use \"Content\" to inject an image into a new DICOM instance",
            ),
            OrthancCode::CreateDicomNoPayload => (
                2022,
                400,
                "No payload is present for one instance in the series",
            ),
            OrthancCode::CreateDicomUseDataUriScheme => (
                2023,
                400,
                "The payload of the DICOM instance must be specified according to Data URI scheme",
            ),
            OrthancCode::CreateDicomBadParent => (
                2024,
                400,
                "Trying to attach a new DICOM instance to an inexistent resource",
            ),
            OrthancCode::CreateDicomParentIsInstance => (
                2025,
                400,
                "Trying to attach a new DICOM instance to an instance (must be a series, study or patient)",
            ),
            OrthancCode::NotAcceptable => (
                34,
                406,
                "Cannot send a response which is acceptable according to the Accept HTTP header",
            ),
        }
    }
}

/// The one error type of the REST layer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: OrthancCode,
    pub details: Option<String>,
    /// Answer with the status only, as Orthanc does for an absent resource or metadata.
    pub silent: bool,
}

/// What the error middleware needs to complete the body with `Method` and `Uri`.
#[derive(Debug, Clone)]
pub struct ErrorInfo(pub ApiError);

impl ApiError {
    pub fn new(code: OrthancCode, details: impl Into<String>) -> Self {
        ApiError {
            code,
            details: Some(details.into()),
            silent: false,
        }
    }
    pub fn bare(code: OrthancCode) -> Self {
        ApiError {
            code,
            details: None,
            silent: false,
        }
    }
    /// An error answered without a body.
    pub fn silent(code: OrthancCode) -> Self {
        ApiError {
            code,
            details: None,
            silent: true,
        }
    }
    pub fn bad_request(details: impl Into<String>) -> Self {
        Self::new(OrthancCode::BadRequest, details)
    }
    pub fn unknown_resource() -> Self {
        Self::bare(OrthancCode::UnknownResource)
    }
    pub fn inexistent_item(details: impl Into<String>) -> Self {
        Self::new(OrthancCode::InexistentItem, details)
    }

    /// The JSON body, completed with the request's method and URI.
    pub fn body(&self, method: &str, uri: &str) -> serde_json::Value {
        let (number, status, message) = self.code.info();
        let http = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = json!({
            "HttpError": http.canonical_reason().unwrap_or(""),
            "HttpStatus": status,
            "Message": message,
            "Method": method,
            "OrthancError": message,
            "OrthancStatus": number,
            "Uri": uri,
        });
        if let Some(d) = &self.details {
            body["Details"] = json!(d);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code.info().2)?;
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.info().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        // The middleware renders the body (it knows the method and URI).
        let mut res = HttpResponse::build(self.status_code()).finish();
        res.extensions_mut().insert(ErrorInfo(self.clone()));
        res
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> Self {
        let code = match &e {
            IndexError::UnknownResource => OrthancCode::UnknownResource,
            IndexError::InexistentItem => OrthancCode::InexistentItem,
            IndexError::FullStorage => OrthancCode::FullStorage,
            IndexError::Revision => OrthancCode::Revision,
            IndexError::BadRequest(_) => OrthancCode::BadRequest,
            IndexError::Database(_) | IndexError::Migration(_) | IndexError::Commit(_) => {
                OrthancCode::Database
            }
            IndexError::Unavailable => OrthancCode::DatabaseUnavailable,
        };
        match code {
            OrthancCode::UnknownResource | OrthancCode::InexistentItem => ApiError::silent(code),
            _ => ApiError::new(code, e.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let code = match &e {
            StorageError::Missing(_) => OrthancCode::InexistentFile,
            StorageError::Io(_) => OrthancCode::InternalError,
            StorageError::Corrupted(_) => OrthancCode::CorruptedFile,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::BadFileFormat(d) => ApiError::new(OrthancCode::BadFileFormat, d),
            IngestError::Storage(s) => s.into(),
            IngestError::Index(i) => i.into(),
            IngestError::Internal(d) => ApiError::new(OrthancCode::InternalError, d),
        }
    }
}

impl From<LuaError> for ApiError {
    fn from(e: LuaError) -> Self {
        let details = match &e {
            LuaError::Syntax(m)
            | LuaError::Runtime(m)
            | LuaError::Memory(m)
            | LuaError::NoSuchFunction(m) => m.clone(),
            LuaError::Timeout(_) => e.to_string(),
        };
        ApiError::new(OrthancCode::CannotExecuteLua, details)
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::UnknownJob => ApiError::bare(OrthancCode::UnknownResource),
            JobError::UnknownResource(id) => ApiError::new(OrthancCode::UnknownResource, id),
            JobError::BadSequence(d) => ApiError::new(OrthancCode::BadSequenceOfCalls, d),
            JobError::Canceled | JobError::Failed(_) => {
                ApiError::new(OrthancCode::InternalError, e.to_string())
            }
            JobError::Unavailable => ApiError::bare(OrthancCode::DatabaseUnavailable),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::new(OrthancCode::InternalError, e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::new(OrthancCode::InternalError, e.to_string())
    }
}

/// The result type of REST handlers.
pub type ApiResult<T> = Result<T, ApiError>;
