//! `/changes` (with the extended `type` and `to` filters) and `/exports`.

use actix_web::{web, HttpRequest};
use pacsnode_actors::index::ChangeRow;
use pacsnode_actors::model::ChangeType;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, OrthancCode};
use super::middleware::not_allowed;
use super::respond::{arg, flag, Answer};
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/changes")
            .route(web::get().to(get_changes))
            .route(web::delete().to(delete_changes))
            .default_service(not_allowed("DELETE,GET")),
    )
    .service(
        web::resource("/exports")
            .route(web::get().to(get_exports))
            .route(web::delete().to(delete_exports))
            .default_service(not_allowed("DELETE,GET")),
    );
}

fn int_arg(req: &HttpRequest, name: &str) -> ApiResult<Option<i64>> {
    match arg(req, name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            ApiError::new(
                OrthancCode::ParameterOutOfRange,
                format!("Argument \"{name}\" must be an integer: {v}"),
            )
        }),
    }
}

fn change_json(c: &ChangeRow) -> Value {
    let name = ChangeType::from_number(c.change_type).map_or("Unknown", |t| t.name());
    json!({
        "ChangeType": name,
        "Date": c.date,
        "ID": c.public_id,
        "Path": format!("/{}/{}", c.level.plural(), c.public_id),
        "ResourceType": c.level.name(),
        "Seq": c.seq,
    })
}

async fn get_changes(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let reader = &state.reader;
    let limit = int_arg(&req, "limit")?.unwrap_or(100).clamp(0, 100_000);
    let since = int_arg(&req, "since")?;
    let to = int_arg(&req, "to")?;
    let mut types = Vec::new();
    for name in arg(&req, "type")
        .unwrap_or_default()
        .split(';')
        .filter(|s| !s.is_empty())
    {
        let t = ChangeType::from_name(name.trim()).ok_or_else(|| {
            ApiError::new(
                OrthancCode::ParameterOutOfRange,
                format!("Unknown change type: {name}"),
            )
        })?;
        types.push(t.number());
    }
    let global_last = reader.last_seq().await?;
    let (changes, done) = if flag(&req, "last")?.unwrap_or(false) {
        (
            reader.last_change().await?.into_iter().collect::<Vec<_>>(),
            true,
        )
    } else if let (Some(to), None) = (to, since) {
        (reader.changes_before(to, limit, &types).await?, false)
    } else {
        let mut rows = reader
            .changes(since.unwrap_or(0), limit + 1, &types, to)
            .await?;
        let done = rows.len() as i64 <= limit;
        rows.truncate(limit as usize);
        (rows, done)
    };
    let last = changes.last().map_or(global_last, |c| c.seq);
    let first = changes.first().map_or(last, |c| c.seq);
    Ok(Answer::Json(json!({
        "Changes": changes.iter().map(change_json).collect::<Vec<_>>(),
        "Done": done,
        "First": first,
        "Last": last,
    })))
}

async fn delete_changes(state: web::Data<AppState>) -> ApiResult<Answer> {
    state
        .writer
        .write(pacsnode_actors::index::write::clear_changes)
        .await?;
    Ok(Answer::Empty)
}

async fn get_exports(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<Answer> {
    let limit = int_arg(&req, "limit")?.unwrap_or(100).clamp(0, 100_000);
    let since = int_arg(&req, "since")?.unwrap_or(0);
    let (rows, done) = if flag(&req, "last")?.unwrap_or(false) {
        let last = state.reader.last_export().await?;
        (last.into_iter().collect::<Vec<_>>(), true)
    } else {
        let mut rows = state.reader.exports(since, limit + 1).await?;
        let done = rows.len() as i64 <= limit;
        rows.truncate(limit as usize);
        (rows, done)
    };
    let last = rows
        .last()
        .and_then(|r| r.get("Seq").and_then(Value::as_i64))
        .unwrap_or(since);
    Ok(Answer::Json(
        json!({ "Exports": rows, "Done": done, "Last": last }),
    ))
}

async fn delete_exports(state: web::Data<AppState>) -> ApiResult<Answer> {
    state
        .writer
        .write(pacsnode_actors::index::write::clear_exports)
        .await?;
    Ok(Answer::Empty)
}
