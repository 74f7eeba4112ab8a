//! Writing JSON objects straight to text, member by member, for the signing hot paths
//! (an SD-JWT VC payload is written once and never needs to be a `serde_json::Map`).

use serde::Serialize;

/// A JSON object being written: `{` on creation, commas between members, `}` on
/// [`ObjectWriter::finish`]. Member names are escaped like any JSON string.
pub(crate) struct ObjectWriter {
    buf: Vec<u8>,
    empty: bool,
}

impl ObjectWriter {
    pub(crate) fn with_capacity(capacity: usize) -> ObjectWriter {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(b'{');
        ObjectWriter { buf, empty: true }
    }

    /// Writes `"name":` and leaves the buffer ready for the value.
    fn name(&mut self, name: &str) -> Result<&mut Vec<u8>, serde_json::Error> {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut self.buf, name)?;
        self.buf.push(b':');
        Ok(&mut self.buf)
    }

    /// A member whose value is serialized with serde.
    pub(crate) fn member<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let buf = self.name(name)?;
        serde_json::to_writer(buf, value)
    }

    /// A member whose value is an array of strings that need no escaping (base64url).
    pub(crate) fn b64_array_member<'a>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), serde_json::Error> {
        let buf = self.name(name)?;
        buf.push(b'[');
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.push(b'"');
            buf.extend_from_slice(s.as_bytes());
            buf.push(b'"');
        }
        buf.push(b']');
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_serde_json_reads_back() {
        let mut w = ObjectWriter::with_capacity(8);
        w.member("a\"b", &serde_json::json!({"x": [1, "é\n"]}))
            .expect("member");
        w.member("n", &42).expect("number");
        w.b64_array_member("_sd", ["AA", "B-_"]).expect("array");
        let text = w.finish();
        let v: serde_json::Value = serde_json::from_slice(&text).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"a\"b": {"x": [1, "é\n"]}, "n": 42, "_sd": ["AA", "B-_"]})
        );
        assert_eq!(ObjectWriter::with_capacity(0).finish(), b"{}");
    }
}
