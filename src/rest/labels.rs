//! Labels: `/{level}/{id}/labels`, `/{level}/{id}/labels/{label}` and `/tools/labels`.

use actix_web::{web, HttpRequest};
use pacsnode_actors::index::{read, write, IndexError};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::middleware::not_allowed;
use super::resources::lookup;
use super::respond::Answer;
use super::AppState;

const L: &str = "{level:patients|studies|series|instances}";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(format!("/{L}/{{id}}/labels"))
            .route(web::get().to(list))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource(format!("/{L}/{{id}}/labels/{{label}}"))
            .route(web::get().to(get))
            .route(web::put().to(put))
            .route(web::delete().to(delete))
            .default_service(not_allowed("DELETE,GET,PUT")),
    )
    .service(
        web::resource("/tools/labels")
            .route(web::get().to(all))
            .default_service(not_allowed("GET")),
    );
}

/// Orthanc's rule: 1 to 64 characters among letters, digits, `_` and `-`.
fn check(label: &str) -> ApiResult<String> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(label.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "A label can only contain alphanumeric characters, underscores and dashes, and must have at most 64 characters: {label}"
        )))
    }
}

fn label_of(req: &HttpRequest) -> ApiResult<String> {
    check(req.match_info().get("label").unwrap_or_default())
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let labels = state.reader.with(move |c| read::labels(c, row.id)).await?;
    Ok(Answer::Json(json!(labels)))
}

async fn get(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let label = label_of(&req)?;
    let labels = state.reader.with(move |c| read::labels(c, row.id)).await?;
    if labels.contains(&label) {
        Ok(Answer::Empty)
    } else {
        Err(IndexError::InexistentItem.into())
    }
}

async fn put(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let label = label_of(&req)?;
    state
        .writer
        .write(move |c| write::add_label(c, row.id, &label))
        .await?;
    Ok(Answer::Empty)
}

async fn delete(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let row = lookup(&state, &req).await?;
    let label = label_of(&req)?;
    state
        .writer
        .write(move |c| write::remove_label(c, row.id, &label))
        .await?;
    Ok(Answer::Empty)
}

async fn all(state: web::Data<AppState>) -> ApiResult<Answer> {
    Ok(Answer::Json(json!(
        state.reader.with(read::all_labels).await?
    )))
}
