//! The response's header block in HPACK (RFC 7541) without a dynamic table: `:status`
//! indexed when the static table has it, every other field a literal not indexed, its
//! name by static index when there is one, no Huffman coding. Like HAProxy's encoder,
//! it keeps no state, so a peer's `SETTINGS_HEADER_TABLE_SIZE` never matters to it.

use http::{HeaderMap, StatusCode};

/// Appends the header block of a response with `status` and `headers` to `out`;
/// connection-specific fields (RFC 9113 §8.2.2) are left out.
pub fn response_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    match status_index(status.as_u16()) {
        Some(index) => integer(out, 0x80, 7, index),
        None => {
            integer(out, 0x00, 4, 8);
            string(out, status.as_str().as_bytes());
        }
    }
    fields(out, headers);
}

/// Appends the fields of a trailer section.
pub fn fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        let name = name.as_str();
        if matches!(
            name,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
                | "te"
        ) {
            continue;
        }
        match name_index(name) {
            Some(index) => integer(out, 0x00, 4, index),
            None => {
                out.push(0x00);
                string(out, name.as_bytes());
            }
        }
        string(out, value.as_bytes());
    }
}

/// The static table's entry for `:status` `code` (RFC 7541 Appendix A).
fn status_index(code: u16) -> Option<usize> {
    Some(match code {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => return None,
    })
}

/// The static table's first entry named `name` (RFC 7541 Appendix A), for the names a
/// response carries.
fn name_index(name: &str) -> Option<usize> {
    Some(match name {
        "accept-ranges" => 18,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "date" => 33,
        "etag" => 34,
        "expires" => 36,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "proxy-authenticate" => 48,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => return None,
    })
}

/// An integer with an `n`-bit prefix, the prefix's other bits `first` (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A string literal, not Huffman-coded (RFC 7541 §5.2).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(block: &[u8]) -> Vec<(String, String)> {
        let mut decoder = loona_hpack::Decoder::new();
        let fields = decoder.decode(block).expect("a valid block");
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        fields
            .into_iter()
            .map(|(n, v)| (text(n), text(v)))
            .collect()
    }

    #[test]
    fn rfc7541_a_response_head_decodes_to_what_was_encoded() {
        let mut headers = HeaderMap::new();
        for name in [
            "accept-ranges",
            "access-control-allow-origin",
            "age",
            "allow",
            "cache-control",
            "content-disposition",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expires",
            "last-modified",
            "link",
            "location",
            "proxy-authenticate",
            "refresh",
            "retry-after",
            "server",
            "set-cookie",
            "strict-transport-security",
            "vary",
            "via",
            "www-authenticate",
            "x-own",
            "connection",
        ] {
            headers.append(name, format!("v-{name}").parse().unwrap());
        }
        headers.append("x-long", "y".repeat(300).parse().unwrap());
        for code in [200, 204, 206, 304, 400, 404, 500, 101, 503] {
            let mut out = Vec::new();
            response_head(&mut out, StatusCode::from_u16(code).unwrap(), &headers);
            let got = decoded(&out);
            assert_eq!(got[0], (":status".into(), code.to_string()));
            let want: Vec<(String, String)> = headers
                .iter()
                .filter(|(n, _)| n.as_str() != "connection")
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            assert_eq!(got[1..], want[..]);
        }
    }
}
