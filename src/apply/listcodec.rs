//! IRIS `$List` bytes (the `%HandlerStack` / `%SubroutineStack` columns), as far as stacks of
//! state names need: each element is `<len><type><data>` where `len` counts itself and the
//! type byte; a zero `len` is followed by a 2-byte (or, when that is zero, a 4-byte) little-endian
//! length. Types: 1 = 8-bit string, 2 = UTF-16LE string, 4/5 = positive/negative integer.

/// Decodes a `$List` of strings (integers are turned into their decimal text). `None` when the
/// bytes are not a well-formed `$List` of such elements.
pub fn decode_list(bytes: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < bytes.len() {
        let (len, header) = match bytes[i] {
            0 => {
                let short = u16::from_le_bytes([*bytes.get(i + 1)?, *bytes.get(i + 2)?]) as usize;
                if short != 0 {
                    (short, 3)
                } else {
                    let b = bytes.get(i + 3..i + 7)?;
                    (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 7)
                }
            }
            n => (usize::from(n), 1),
        };
        if len == 1 && header == 1 {
            // An undefined element: `$LB(,)`.
            out.push(String::new());
            i += 1;
            continue;
        }
        // `len` counts the length byte(s) and the type byte, then the data.
        let data_len = len.checked_sub(header + 1)?;
        let ty = *bytes.get(i + header)?;
        let data = bytes.get(i + header + 1..i + header + 1 + data_len)?;
        out.push(match ty {
            1 => data.iter().map(|&b| char::from(b)).collect(),
            2 => {
                let units: Vec<u16> = data
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16(&units).ok()?
            }
            4 | 5 => {
                let mut v: u64 = 0;
                for (k, b) in data.iter().enumerate().take(8) {
                    v |= u64::from(*b) << (8 * k);
                }
                if ty == 5 {
                    // Negative integers are stored as two's complement of the shortest width.
                    let bits = 8 * data.len().min(8) as u32;
                    let signed = if bits == 0 || bits >= 64 {
                        v as i64
                    } else {
                        (v as i64) - (1i64 << bits)
                    };
                    signed.to_string()
                } else {
                    v.to_string()
                }
            }
            _ => return None,
        });
        i += len;
    }
    Some(out)
}

/// Encodes 8-bit strings as a `$List` (what `$LISTBUILD('S5','S9')` stores).
pub fn encode_list<S: AsRef<str>>(items: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        let data: Vec<u8> = s
            .as_ref()
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect();
        let len = data.len() + 2;
        if len <= 255 {
            out.push(len as u8);
        } else if len + 2 <= 0xFFFF {
            out.push(0);
            out.extend_from_slice(&((len + 2) as u16).to_le_bytes());
        } else {
            out.push(0);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&((len + 6) as u32).to_le_bytes());
        }
        out.push(1);
        out.extend_from_slice(&data);
    }
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_round_trip() {
        let b = encode_list(&["S5", "S9"]);
        assert_eq!(b, vec![4, 1, b'S', b'5', 4, 1, b'S', b'9']);
        assert_eq!(
            decode_list(&b),
            Some(vec!["S5".to_string(), "S9".to_string()])
        );
        assert_eq!(decode_list(&[]), Some(vec![]));
    }

    #[test]
    fn long_strings_use_the_extended_length() {
        let long = "x".repeat(300);
        let b = encode_list(&[long.as_str()]);
        assert_eq!(b[0], 0);
        assert_eq!(decode_list(&b), Some(vec![long]));
    }

    #[test]
    fn unicode_and_integers_decode() {
        assert_eq!(
            decode_list(&[6, 2, b'S', 0, b'7', 0]),
            Some(vec!["S7".to_string()])
        );
        assert_eq!(decode_list(&[3, 4, 12]), Some(vec!["12".to_string()]));
        assert_eq!(decode_list(&[1]), Some(vec![String::new()]));
    }

    #[test]
    fn garbage_is_not_a_list() {
        assert_eq!(decode_list(&[9, 1, b'S']), None);
        assert_eq!(decode_list(&[4, 99, b'S', b'1']), None);
        assert_eq!(decode_list(b"\\x0401"), None);
    }
}
