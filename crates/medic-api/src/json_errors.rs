//! Every error is JSON, including the ones no handler wrote: axum's extractor
//! rejections (body over the size limit, unreadable body, bad path or query),
//! a route's default `405` and the default `404`.
//!
//! [`json_errors`] adds a JSON `405` to every route of a router and a layer
//! that rewrites any error response that is not already JSON into the
//! [`ApiError`] of the code table ([`ErrorCode::for_status`]), keeping the
//! framework's text as the message and the `Allow` / `Retry-After` headers.
//! Errors written by handlers (already JSON) pass through untouched, and so
//! do successful responses (never buffered).

use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::{ApiError, ErrorCode};

/// Longest framework error text kept as the message.
const MAX_TEXT: usize = 8 * 1024;

/// Makes every error `router` answers a JSON error from the code table.
///
/// Adds no fallback, so the result can still be merged into a router that has
/// one (the API router's fallback answers unknown routes with `E0401`). The
/// layer applies to the routes `router` has now: call it after adding them.
pub fn json_errors<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(to_json_error))
}

/// `E0405 method_not_allowed` naming the method and path.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// `E0401 route_not_found` naming the path.
pub(crate) async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!("no route for {}", uri.path()),
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The response layer: error responses that are not JSON become [`ApiError`]s.
async fn to_json_error(method: Method, uri: Uri, resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = ErrorCode::for_status(status);
    let message = match code {
        _ if !text.is_empty() => text,
        ErrorCode::MethodNotAllowed => format!("{method} is not allowed on {}", uri.path()),
        ErrorCode::RouteNotFound => format!("no route for {}", uri.path()),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
    };
    let mut out = ApiError::new(code, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::extract::DefaultBodyLimit;
    use axum::http::{Request, StatusCode};
    use axum::routing::{get, post};

    async fn call(
        router: Router,
        req: Request<Body>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        use tower::ServiceExt;
        let resp = router.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (parts.status, parts.headers, v)
    }

    fn app() -> Router {
        json_errors(
            Router::new()
                .route(
                    "/bytes",
                    post(|b: Bytes| async move { b.len().to_string() }),
                )
                .route(
                    "/json",
                    post(
                        |axum::Json(v): axum::Json<serde_json::Value>| async move { axum::Json(v) },
                    ),
                )
                .route(
                    "/teapot",
                    get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
                )
                .layer(DefaultBodyLimit::max(1024)),
        )
    }

    #[tokio::test]
    async fn rejections_and_default_errors_become_table_errors() {
        let (s, _, v) = call(
            app(),
            Request::post("/bytes")
                .body(Body::from(vec![b'x'; 4096]))
                .unwrap(),
        )
        .await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (413, Some("E0413")),
            "{v}"
        );
        assert_eq!(v["error"]["name"], "payload_too_large");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("length limit"),
            "{v}"
        );

        let (s, h, v) = call(app(), Request::get("/bytes").body(Body::empty()).unwrap()).await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (405, Some("E0405")),
            "{v}"
        );
        assert_eq!(v["error"]["message"], "GET is not allowed on /bytes");
        assert_eq!(
            h.get(header::ALLOW).and_then(|v| v.to_str().ok()),
            Some("POST")
        );

        let (s, _, v) = call(
            app(),
            Request::post("/json")
                .header("content-type", "application/json")
                .body(Body::from("{nope"))
                .unwrap(),
        )
        .await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (400, Some("E0400")),
            "{v}"
        );

        let (s, _, v) = call(
            app(),
            Request::post("/json").body(Body::from("{}")).unwrap(),
        )
        .await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (415, Some("E0415")),
            "{v}"
        );

        // A status the table has no code for: the client-side catch-all, with the text kept.
        let (s, _, v) = call(app(), Request::get("/teapot").body(Body::empty()).unwrap()).await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (400, Some("E0400")),
            "{v}"
        );
        assert_eq!(v["error"]["message"], "short and stout");

        // No fallback of its own: the default 404 is still made JSON.
        let (s, _, v) = call(app(), Request::get("/nowhere").body(Body::empty()).unwrap()).await;
        assert_eq!(
            (s.as_u16(), v["error"]["code"].as_str()),
            (404, Some("E0401")),
            "{v}"
        );
        assert_eq!(v["error"]["message"], "no route for /nowhere");
    }

    #[tokio::test]
    async fn json_and_successful_responses_pass_through() {
        let (s, _, v) = call(
            app(),
            Request::post("/json")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"a":1}"#))
                .unwrap(),
        )
        .await;
        assert_eq!((s.as_u16(), &v), (200, &serde_json::json!({"a": 1})));
        let own = json_errors(Router::new().route(
            "/e",
            get(|| async { ApiError::invalid_field("x", "bad x") }),
        ));
        let (s, _, v) = call(own, Request::get("/e").body(Body::empty()).unwrap()).await;
        assert_eq!(s.as_u16(), 422);
        assert_eq!(v["error"]["field"], "x");
        assert_eq!(v["error"]["message"], "bad x");
    }
}
