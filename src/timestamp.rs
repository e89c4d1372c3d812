//! Timestamps as RFC 3339 text, formatted on the stack: `GET /`'s body and every access
//! line carry one, and a `String` for each was an allocation per request.

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A moment in UTC that serialises as "2026-01-01T00:00:00.123456789Z".
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // RFC 3339 with nanoseconds and an offset is at most 35 bytes.
        let mut text = [0u8; 40];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        self.0
            .format_into(&mut cursor, &Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        let len = usize::try_from(cursor.position()).map_err(serde::ser::Error::custom)?;
        let text = std::str::from_utf8(&text[..len]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn serialises_as_rfc3339_like_the_time_crate() {
        for moment in [
            datetime!(2026-01-01 00:00:00 UTC),
            datetime!(2026-12-31 23:59:59.999999999 UTC),
            datetime!(1999-02-03 04:05:06.07 +05:30),
        ] {
            let expected = moment.format(&Rfc3339).unwrap();
            assert_eq!(
                serde_json::to_string(&Timestamp(moment)).unwrap(),
                format!("\"{expected}\"")
            );
        }
    }
}
