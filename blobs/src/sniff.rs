//! [`sniff`]: an upload's content type, from its bytes.

/// The content type of a blob from its first bytes ([`crate::Stored::head`]), by magic
/// numbers (the `infer` crate), never from what the client claimed: `Some("image/png")`,
/// `Some("application/pdf")`, ...; `None` when unknown (callers then use
/// `application/octet-stream`).
///
/// Never anything a browser could render as a page or run as script: HTML, XML, SVG, shell
/// scripts and every other `text/*` type give `None`, so a file of HTML bytes is served as
/// `application/octet-stream` whatever it claimed.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let kind = infer::get(head)?;
    if kind.matcher_type() == infer::MatcherType::Text {
        return None;
    }
    let mime = kind.mime_type();
    let lower = mime.to_ascii_lowercase();
    let page_like = lower.starts_with("text/")
        || ["html", "svg", "javascript", "ecmascript"]
            .iter()
            .any(|word| lower.contains(word))
        || lower.ends_with("/xml")
        || lower.ends_with("+xml");
    (!page_like).then_some(mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_are_never_returned() {
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><svg></svg>"), None);
        assert_eq!(sniff(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(sniff(b"<html><body>hi</body></html>"), None);
        assert_eq!(sniff(b""), None);
    }
}
