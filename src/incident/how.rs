//! How an observation was seen, as incidents record it: the protocol and its qualifiers,
//! written `tls,unresolved,ech` in the store, the log and reports.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::detect::Proto;

/// How an observation was seen and decided, as incidents record it: the protocol, then
/// what qualifies it. Written `tls,unresolved,ech` (the stored and printed form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct How {
    /// How it was seen.
    pub proto: Proto,
    /// No DNS answer to the device explained the server address.
    pub unresolved: bool,
    /// Real ECH: the outer SNI was a public name, not the name the device asked for.
    pub ech: bool,
    /// A ClientHello without a name.
    pub no_sni: bool,
    /// To port 853 (DNS over TLS or QUIC).
    pub port_853: bool,
    /// Decided by the server's address, not by a name.
    pub by_address: bool,
    /// A TCP first flight given up on before it named anything (see
    /// [`crate::detect::Observation::incomplete`]): judged like any nameless connection,
    /// by address and port.
    pub incomplete: bool,
    /// The client address was seen from a MAC other than its own: someone may be using
    /// another device's address (counted against a small budget of its own).
    pub spoofed: bool,
    /// What enforcement did about it, when it did something: written last
    /// (`tls,unresolved,reset`).
    pub action: Option<Action>,
}

/// What enforcement did to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// The resolver answered the name NXDOMAIN (or the block address).
    Nxdomain,
    /// The connection was reset (the router's kernel `reject with tcp reset`, or resets
    /// injected onto the LAN by a sensor).
    Reset,
    /// A QUIC flow was dropped or refused with ICMP administratively-prohibited.
    QuicDrop,
    /// A DNS query to another resolver was redirected to aiwarden's.
    Redirected,
}

impl Action {
    /// The stored and printed form.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Nxdomain => "nxdomain",
            Action::Reset => "reset",
            Action::QuicDrop => "quic_drop",
            Action::Redirected => "redirected",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        [
            Action::Nxdomain,
            Action::Reset,
            Action::QuicDrop,
            Action::Redirected,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

const QUALIFIERS: [&str; 7] = [
    "unresolved",
    "ech",
    "no_sni",
    "port_853",
    "addr",
    "incomplete",
    "spoofed",
];

impl How {
    /// Just the protocol.
    pub fn of(proto: Proto) -> How {
        How {
            proto,
            unresolved: false,
            ech: false,
            no_sni: false,
            port_853: false,
            by_address: false,
            incomplete: false,
            spoofed: false,
            action: None,
        }
    }

    fn flags(&self) -> [bool; 7] {
        [
            self.unresolved,
            self.ech,
            self.no_sni,
            self.port_853,
            self.by_address,
            self.incomplete,
            self.spoofed,
        ]
    }
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proto.as_str())?;
        for (q, on) in QUALIFIERS.iter().zip(self.flags()) {
            if on {
                write!(f, ",{q}")?;
            }
        }
        if let Some(a) = self.action {
            write!(f, ",{}", a.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for How {
    type Err = String;

    fn from_str(s: &str) -> Result<How, String> {
        let mut parts = s.split(',');
        let mut how = How::of(parts.next().unwrap_or("").parse()?);
        for p in parts {
            match p {
                "unresolved" => how.unresolved = true,
                "ech" => how.ech = true,
                "no_sni" => how.no_sni = true,
                "port_853" => how.port_853 = true,
                "addr" => how.by_address = true,
                "incomplete" => how.incomplete = true,
                "spoofed" => how.spoofed = true,
                other if Action::parse(other).is_some() => how.action = Action::parse(other),
                _ => return Err(format!("unknown qualifier {p:?} in {s:?}")),
            }
        }
        Ok(how)
    }
}

impl Serialize for How {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
