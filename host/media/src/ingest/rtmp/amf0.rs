//! AMF0, the encoding of RTMP commands and metadata (the subset RTMP
//! publishers use: numbers, booleans, strings, objects, arrays, null).

use super::RtmpError;

/// An AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// 0x00
    Number(f64),
    /// 0x01
    Boolean(bool),
    /// 0x02 / 0x0c
    String(String),
    /// 0x03 (also 0x08 ECMA arrays, read as objects)
    Object(Vec<(String, Value)>),
    /// 0x05
    Null,
    /// 0x06
    Undefined,
    /// 0x0a
    Array(Vec<Value>),
    /// 0x0b (milliseconds)
    Date(f64),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        if let Value::String(s) = self { Some(s) } else { None }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        if let Value::Number(n) = self { Some(*n) } else { None }
    }

    /// A property of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Value::Object(props) = self { props.iter().find(|(k, _)| k == key).map(|(_, v)| v) } else { None }
    }
}

/// Nesting deeper than this is refused (a hostile peer could recurse).
const MAX_DEPTH: usize = 32;

/// Decodes every value in `data`.
pub fn decode_all(data: &[u8]) -> Result<Vec<Value>, RtmpError> {
    let mut r = Reader { data, pos: 0 };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bad(&self, detail: impl Into<String>) -> RtmpError {
        RtmpError::Amf { offset: self.pos, detail: detail.into() }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], RtmpError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else { return Err(self.bad(format!("needs {n} bytes, {} left", self.data.len() - self.pos))) };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<usize, RtmpError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Result<usize, RtmpError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn f64(&mut self) -> Result<f64, RtmpError> {
        let b = self.take(8)?;
        Ok(f64::from_be_bytes(b.try_into().unwrap()))
    }

    fn string(&mut self, len: usize) -> Result<String, RtmpError> {
        let at = self.pos;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| RtmpError::Amf { offset: at, detail: "string is not UTF-8".into() })
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, RtmpError> {
        let mut props = Vec::new();
        loop {
            let len = self.u16()?;
            if len == 0 && self.data.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.string(len)?;
            props.push((key, self.value(depth + 1)?));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, RtmpError> {
        if depth > MAX_DEPTH {
            return Err(self.bad("values nested too deeply"));
        }
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00 => Value::Number(self.f64()?),
            0x01 => Value::Boolean(self.take(1)?[0] != 0),
            0x02 => {
                let len = self.u16()?;
                Value::String(self.string(len)?)
            }
            0x03 => Value::Object(self.properties(depth)?),
            0x05 => Value::Null,
            0x06 => Value::Undefined,
            0x08 => {
                self.u32()?; // approximate count; the end marker is authoritative
                Value::Object(self.properties(depth)?)
            }
            0x0a => {
                let n = self.u32()?;
                if n > self.data.len() - self.pos {
                    return Err(self.bad(format!("array of {n} items in {} bytes", self.data.len() - self.pos)));
                }
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect::<Result<_, _>>()?)
            }
            0x0b => {
                let ms = self.f64()?;
                self.take(2)?; // time zone, unused
                Value::Date(ms)
            }
            0x0c => {
                let len = self.u32()?;
                Value::String(self.string(len)?)
            }
            other => return Err(RtmpError::Amf { offset: self.pos - 1, detail: format!("unsupported type marker {other:#04x}") }),
        })
    }
}

/// Encodes values one after another.
pub fn encode(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        write(&mut out, v);
    }
    out
}

fn write(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[0x01, u8::from(*b)]),
        Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.push(0x02);
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::String(s) => {
            out.push(0x0c);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Object(props) => {
            out.push(0x03);
            for (k, v) in props {
                out.extend_from_slice(&(k.len() as u16).to_be_bytes());
                out.extend_from_slice(k.as_bytes());
                write(out, v);
            }
            out.extend_from_slice(&[0, 0, 0x09]);
        }
        Value::Null => out.push(0x05),
        Value::Undefined => out.push(0x06),
        Value::Array(items) => {
            out.push(0x0a);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                write(out, i);
            }
        }
        Value::Date(ms) => {
            out.push(0x0b);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// Shorthand for an object.
pub fn object(props: &[(&str, Value)]) -> Value {
    Value::Object(props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

/// Shorthand for a string.
pub fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let values = vec![
            string("connect"),
            Value::Number(1.0),
            object(&[("app", string("live")), ("tcUrl", string("rtmp://localhost/live")), ("fpad", Value::Boolean(false))]),
            Value::Null,
            Value::Array(vec![Value::Number(2.0), Value::Undefined]),
        ];
        assert_eq!(decode_all(&encode(&values)).unwrap(), values);
    }

    #[test]
    fn ecma_arrays_read_as_objects_and_truncation_is_an_error() {
        let data = [0x08, 0, 0, 0, 1, 0, 1, b'w', 0, 0x40, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0x09];
        assert_eq!(decode_all(&data).unwrap(), [object(&[("w", Value::Number(100.0))])]);
        assert!(decode_all(&data[..12]).is_err());
        assert!(decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([0x03, 0, 1, b'a'], 100).flatten().collect();
        assert!(decode_all(&deep).is_err());
    }
}
