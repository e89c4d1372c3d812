//! `/favicon.ico`: where browsers look for an icon on pages that declare none (the JSON
//! at `/`). The admin's pages link the same file as `/admin/static/favicon.svg`.

use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::get_or_head;

/// The icon, embedded at compile time like the admin's other static files.
pub const FAVICON_SVG: &[u8] = include_bytes!("../../static/admin/favicon.svg");

pub fn route() -> BoxedFilter<(Response,)> {
    warp::path("favicon.ico")
        .and(warp::path::end())
        .and(get_or_head())
        .map(|| {
            let mut response = FAVICON_SVG.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            // The URL is not versioned: a week, not forever.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=604800"),
            );
            response
        })
        .boxed()
}
