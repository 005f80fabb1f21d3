//! The one middleware around every request: remote-access rule, HTTP Basic authentication,
//! method override (`X-HTTP-Method-Override`, `?_method=`), `nosniff`, and the Orthanc JSON
//! body of errors (which needs the request's method and URI).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use base64::Engine;

use super::error::{ApiError, ErrorInfo, OrthancCode};
use super::respond::{percent_decode, query_pairs};
use super::AppState;

/// The authenticated user of a request, if any.
#[derive(Debug, Clone)]
pub struct HttpUser(pub String);

fn is_loopback(req: &ServiceRequest) -> bool {
    req.peer_addr().is_none_or(|a| a.ip().is_loopback())
}

fn basic_user(req: &ServiceRequest, state: &AppState) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (state
        .settings
        .registered_users
        .get(user)
        .map(String::as_str)
        == Some(password))
    .then(|| user.to_string())
}

fn override_method(req: &mut ServiceRequest) {
    let header_override = req
        .headers()
        .get("x-http-method-override")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_uppercase());
    let query_override = (req.method() == Method::GET)
        .then(|| {
            query_pairs(req.request())
                .into_iter()
                .find(|(k, _)| k == "_method")
                .map(|(_, v)| v.to_ascii_uppercase())
        })
        .flatten();
    let wanted = header_override.or(query_override);
    let method = match wanted.as_deref() {
        Some("PUT") => Method::PUT,
        Some("DELETE") => Method::DELETE,
        Some("GET") => Method::GET,
        Some("POST") => Method::POST,
        _ => return,
    };
    req.head_mut().method = method;
}

/// The middleware function.
pub async fn orthanc(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let original_method = req.method().to_string();
    let uri = percent_decode(req.path());
    if let Some(state) = &state {
        if !state.settings.remote_access_allowed && !is_loopback(&req) {
            let res = HttpResponse::Forbidden().finish();
            return Ok(req.into_response(res));
        }
        if state.settings.authentication() {
            match basic_user(&req, state) {
                Some(user) => {
                    req.extensions_mut().insert(HttpUser(user));
                }
                None => {
                    let res = HttpResponse::Unauthorized()
                        .insert_header((
                            header::WWW_AUTHENTICATE,
                            "Basic realm=\"Orthanc Secure Area\"",
                        ))
                        .finish();
                    return Ok(req.into_response(res));
                }
            }
        }
    }
    override_method(&mut req);
    let describe = state
        .as_ref()
        .is_none_or(|s| s.settings.http_describe_errors);
    let mut res = next.call(req).await?.map_into_boxed_body();
    res.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    let info = res.response().extensions().get::<ErrorInfo>().cloned();
    if let Some(ErrorInfo(err)) = info {
        if describe && !err.silent {
            let body =
                serde_json::to_string_pretty(&err.body(&original_method, &uri)).unwrap_or_default();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            res = res.map_body(|_, _| BoxBody::new(body));
        }
    }
    Ok(res)
}

/// The answer to a route that exists with another method: 405 with `Allow`, no body.
pub fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::route().to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .finish()
    })
}

/// The answer to an unknown route.
pub async fn unknown_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::bare(OrthancCode::UnknownResource))
}
