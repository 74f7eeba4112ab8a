//! `multipart/form-data` as browsers send a file upload (RFC 7578), read whole from a body
//! already bounded by the caller: a few parts, each named once, with short headers. Only what
//! the upload form needs; anything else is refused, never guessed at.

/// Most parts one upload may have.
const MAX_PARTS: usize = 8;
/// Longest header block of a part.
const MAX_HEADERS: usize = 4096;

/// One part of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    /// The field name.
    pub(super) name: String,
    /// The file name, for a file field.
    pub(super) filename: Option<String>,
    /// The content.
    pub(super) data: Vec<u8>,
}

/// Why a body is not a usable multipart form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the upload is not a multipart form: {0}")]
pub(super) struct MultipartError(pub &'static str);

/// The boundary of a `multipart/form-data` content type.
pub(super) fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut fields = content_type.split(';');
    let mime = fields.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError(
            "the content type is not multipart/form-data",
        ));
    }
    let b = fields
        .filter_map(|f| f.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .ok_or(MultipartError("no boundary"))?;
    if b.is_empty() || b.len() > 70 || !b.bytes().all(|c| c.is_ascii_graphic() || c == b' ') {
        return Err(MultipartError("a malformed boundary"));
    }
    Ok(b)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..].iter().position(|&b| b == first) {
            Some(off) => {
                let at = i + off;
                if at + needle.len() > hay.len() {
                    return None;
                }
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
            None => return None,
        }
    }
    None
}

/// A parameter (`name="…"`) of a `Content-Disposition` value.
fn param(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Reads the parts of `body` delimited by `boundary`.
pub(super) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let delim = format!("--{boundary}");
    let inner = format!("\r\n--{boundary}");
    let mut at =
        find(body, delim.as_bytes(), 0).ok_or(MultipartError("no first boundary"))? + delim.len();
    let mut parts: Vec<Part> = Vec::new();
    loop {
        let rest = body.get(at..).ok_or(MultipartError("cut short"))?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return Err(MultipartError("a boundary not followed by a line end"));
        }
        if parts.len() >= MAX_PARTS {
            return Err(MultipartError("too many parts"));
        }
        let head_start = at + 2;
        let head_end = find(body, b"\r\n\r\n", head_start)
            .filter(|e| e - head_start <= MAX_HEADERS)
            .ok_or(MultipartError("a part without a header end"))?;
        let headers = std::str::from_utf8(&body[head_start..head_end])
            .map_err(|_| MultipartError("headers that are not UTF-8"))?;
        let disposition = headers
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
            .map(|(_, v)| v.trim())
            .ok_or(MultipartError("a part without Content-Disposition"))?;
        if !disposition
            .split(';')
            .next()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case("form-data"))
        {
            return Err(MultipartError("a part that is not form-data"));
        }
        let name = param(disposition, "name").ok_or(MultipartError("a part without a name"))?;
        if parts.iter().any(|p| p.name == name) {
            return Err(MultipartError("a field is repeated"));
        }
        let data_start = head_end + 4;
        let data_end = find(body, inner.as_bytes(), data_start)
            .ok_or(MultipartError("no closing boundary"))?;
        parts.push(Part {
            name,
            filename: param(disposition, "filename"),
            data: body[data_start..data_end].to_vec(),
        });
        at = data_end + inner.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_browser_sends_and_refuses_the_rest() {
        let ct = "multipart/form-data; boundary=----WebKitFormBoundaryAbC";
        let b = boundary(ct).expect("boundary");
        let body = "------WebKitFormBoundaryAbC\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n------WebKitFormBoundaryAbC\r\nContent-Disposition: form-data; name=\"presentation\"; filename=\"p.json\"\r\nContent-Type: application/json\r\n\r\n{\"a\":\"\r\n--x\"}\r\n------WebKitFormBoundaryAbC--\r\n";
        let parts = parse(body.as_bytes(), &b).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(parts[0].data, b"tok");
        assert_eq!(parts[1].filename.as_deref(), Some("p.json"));
        assert_eq!(parts[1].data, b"{\"a\":\"\r\n--x\"}");
        assert!(boundary("application/x-www-form-urlencoded").is_err());
        assert!(parse(b"no boundary here", &b).is_err());
        let repeated = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n2\r\n--B--";
        assert!(parse(repeated.as_bytes(), "B").is_err());
        let unterminated = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1";
        assert!(parse(unterminated.as_bytes(), "B").is_err());
    }
}
