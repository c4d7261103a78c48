//! Pure: RFC 5424 syslog messages and their RFC 5425 (syslog over TLS) framing. Values
//! in, bytes out; the time is passed in. `syslog_send.rs` is the shell that sends them.
//!
//! A message is
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME aiwarden PROCID MSGID [aiwarden@32473 site="..." row="..." hash="..."] BOM{json}
//! ```
//!
//! PRI is `facility * 8 + severity` (RFC 5424 §6.2.1). The structured data's SD-ID is a
//! private one, `name@enterprise-number` (§7.2.2): 32473 is the number IANA reserves for
//! examples in documentation (RFC 5612), a placeholder until the project registers its own
//! private enterprise number; [`SD_ID`] is the one place to change it. Parameter values
//! escape `"`, `\` and `]` with a backslash (§6.3.3). The message is UTF-8 and says so with
//! a byte-order mark (§6.4). Over TLS each message is sent as `LEN SP MSG`, LEN the
//! message's length in octets (RFC 5425 §4.3, octet counting).

/// The structured data element's id: `aiwarden` at the documentation example enterprise
/// number (see the module comment).
pub const SD_ID: &str = "aiwarden@32473";
/// The APP-NAME.
pub const APP_NAME: &str = "aiwarden";
/// The MSGID of an incident.
pub const MSGID_INCIDENT: &str = "incident";
/// UTF-8 byte-order mark: the MSG is UTF-8 (RFC 5424 §6.4).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// RFC 5424 severities aiwarden uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 4: a flagged incident (the device got through).
    Warning = 4,
    /// 5: a blocked incident (nothing got through, but someone tried).
    Notice = 5,
    /// 6.
    Informational = 6,
}

/// Syslog severity of a verdict: a flagged incident is a Warning, a blocked one a Notice.
pub fn severity(verdict: crate::policy::Verdict) -> Severity {
    match verdict {
        crate::policy::Verdict::Flag => Severity::Warning,
        crate::policy::Verdict::Block => Severity::Notice,
        crate::policy::Verdict::Allow => Severity::Informational,
    }
}

/// The header fields that stay the same for every message of a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Facility 0 to 23 (16 to 23 are local0 to local7). Larger values are clamped to 23.
    pub facility: u8,
    /// The appliance's host name.
    pub hostname: String,
    /// The process id, when there is one to say.
    pub procid: Option<u32>,
}

/// Facility `local0`, the default: the one an admin most often routes to a SIEM.
pub const DEFAULT_FACILITY: u8 = 16;

/// One RFC 5424 message (without framing): `time_micros` (unix microseconds) is the
/// TIMESTAMP, `params` the structured data element [`SD_ID`]'s parameters (names must be
/// 1 to 32 printable ASCII characters other than `=`, space, `]` and `"`; others are left
/// out), `msg` the text after the BOM.
pub fn message(
    h: &Header,
    severity: Severity,
    time_micros: i64,
    msgid: &str,
    params: &[(&str, &str)],
    msg: &str,
) -> Vec<u8> {
    let pri = u16::from(h.facility.min(23)) * 8 + severity as u16;
    let procid = h.procid.map_or_else(|| "-".to_string(), |p| p.to_string());
    let mut sd = format!("[{SD_ID}");
    for (name, value) in params {
        if is_sd_name(name) {
            sd.push_str(&format!(" {name}=\"{}\"", escape_param(value)));
        }
    }
    sd.push(']');
    let head = format!(
        "<{pri}>1 {} {} {} {} {} {sd} ",
        timestamp(time_micros),
        field(&h.hostname, 255),
        field(APP_NAME, 48),
        field(&procid, 128),
        field(msgid, 32),
    );
    let mut out = Vec::with_capacity(head.len() + BOM.len() + msg.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(BOM);
    out.extend_from_slice(msg.as_bytes());
    out
}

/// RFC 5425 octet-counting frame: `LEN SP MSG`.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    out
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped by a backslash (RFC 5424 §6.3.3).
pub fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 3339 with microseconds in UTC, as RFC 5424's TIMESTAMP allows (at most six
/// fraction digits). A time before 1970 is written as the epoch.
pub fn timestamp(micros: i64) -> String {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    humantime::format_rfc3339_micros(t).to_string()
}

/// A header field: printable US-ASCII (33 to 126) only, any other character replaced by
/// `_`, cut to `max` characters; `-` (the NILVALUE) when empty.
fn field(value: &str, max: usize) -> String {
    let s: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// An SD-NAME: 1 to 32 printable US-ASCII characters except `=`, space, `]` and `"`.
fn is_sd_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'=' | b']' | b'"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            facility: DEFAULT_FACILITY,
            hostname: "aiwarden-elm".into(),
            procid: Some(4242),
        }
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket_only() {
        assert_eq!(escape_param(r#"a"b\c]d[e"#), r#"a\"b\\c\]d[e"#);
        assert_eq!(escape_param("Clínica São José"), "Clínica São José");
        assert_eq!(escape_param(""), "");
    }

    #[test]
    fn a_message_has_every_rfc5424_field_in_order() {
        let m = message(
            &header(),
            Severity::Notice,
            1_764_650_000_123_456,
            MSGID_INCIDENT,
            &[
                ("site", r#"Elm "St" [2]"#),
                ("row", "42"),
                ("bad name", "x"),
            ],
            r#"{"a":1}"#,
        );
        let text = String::from_utf8(m.clone()).expect("utf8");
        assert_eq!(
            text,
            "<133>1 2025-12-02T04:33:20.123456Z aiwarden-elm aiwarden 4242 incident \
             [aiwarden@32473 site=\"Elm \\\"St\\\" [2\\]\" row=\"42\"] \u{feff}{\"a\":1}"
        );
        assert!(m.windows(3).any(|w| w == BOM));
    }

    #[test]
    fn facility_clamps_and_header_fields_are_printable_ascii() {
        let h = Header {
            facility: 200,
            hostname: "box with space".into(),
            procid: None,
        };
        let m = message(&h, Severity::Warning, -5, "", &[], "x");
        let text = String::from_utf8(m).expect("utf8");
        assert!(
            text.starts_with(
                "<188>1 1970-01-01T00:00:00.000000Z box_with_space aiwarden - - [aiwarden@32473] "
            ),
            "{text}"
        );
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let msg = "é]".as_bytes();
        assert_eq!(frame(msg), b"3 \xC3\xA9]".to_vec());
        assert_eq!(frame(b""), b"0 ".to_vec());
    }
}
