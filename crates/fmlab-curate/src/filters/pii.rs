//! PII formatting as datatrove's `PIIFormatter` does it: e-mail addresses and public IPv4
//! addresses in the text are replaced by harmless stand-ins (datatrove's defaults:
//! `email@example.com`, `firstname.lastname@example.org`, and six IP addresses that did not
//! answer pings), taken in turn. The patterns are datatrove's; an IP address is replaced
//! only when Python's `ipaddress` would call it global (not private, loopback, link-local,
//! shared, reserved or documentation space; no leading zeros).
//!
//! One difference: datatrove's turn-taking carries over from one document to the next, in
//! reading order; here it restarts with each document, so the output does not depend on
//! how documents are split among ranks.

use std::borrow::Cow;

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};

use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::{Error, Result};

/// What to replace and with what. Default: datatrove's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    pub remove_emails: bool,
    pub remove_ips: bool,
    /// Replace only public addresses (private ones are not personal).
    pub only_remove_public_ips: bool,
    pub email_replacement: Vec<String>,
    pub ip_replacement: Vec<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            remove_emails: true,
            remove_ips: true,
            only_remove_public_ips: true,
            email_replacement: vec![
                "email@example.com".into(),
                "firstname.lastname@example.org".into(),
            ],
            ip_replacement: [
                "22.214.171.124",
                "126.96.36.199",
                "188.8.131.52",
                "184.108.40.206",
                "220.127.116.11",
                "18.104.22.168",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

const EMAIL: &str = r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)\])";
const IPV4: &str =
    r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";

/// The PII formatter, a text modifier. Block name `pii`. Statistics: `emails` and `ips`
/// replaced.
#[derive(Debug, Clone)]
pub struct PiiFormatter {
    config: PiiConfig,
    email: Regex,
    ip: Regex,
}

impl PiiFormatter {
    pub fn new(config: PiiConfig) -> Result<Self> {
        if config.email_replacement.is_empty() || config.ip_replacement.is_empty() {
            return Err(Error::Config(
                "pii: replacement lists must not be empty".into(),
            ));
        }
        let compile = |p: &str| Regex::new(p).map_err(|e| Error::Config(format!("pii: {e}")));
        Ok(PiiFormatter {
            email: compile(EMAIL)?,
            ip: compile(IPV4)?,
            config,
        })
    }
}

/// Python's `ipaddress.ip_address(s)` succeeds (no leading zeros) and, when `public_only`,
/// `is_global` holds (Python 3.11's special-purpose ranges).
pub fn ip_is_replaceable(s: &str, public_only: bool) -> bool {
    let mut o = [0u32; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with('0'))
        {
            return false;
        }
        let Ok(v) = part.parse::<u32>() else {
            return false;
        };
        if v > 255 {
            return false;
        }
        o[n] = v;
        n += 1;
    }
    if n != 4 {
        return false;
    }
    if !public_only {
        return true;
    }
    let ip = (o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3];
    const NOT_GLOBAL: [(u32, u32); 15] = [
        (0x0000_0000, 8),
        (0x0a00_0000, 8),
        (0x7f00_0000, 8),
        (0xa9fe_0000, 16),
        (0xac10_0000, 12),
        (0xc000_0000, 29),
        (0xc000_00aa, 31),
        (0xc000_0200, 24),
        (0xc0a8_0000, 16),
        (0xc612_0000, 15),
        (0xc633_6400, 24),
        (0xcb00_7100, 24),
        (0xf000_0000, 4),
        (0xffff_ffff, 32),
        (0x6440_0000, 10),
    ];
    !NOT_GLOBAL.iter().any(|&(net, bits)| {
        let mask = if bits == 32 {
            u32::MAX
        } else {
            !(u32::MAX >> bits)
        };
        ip & mask == net
    })
}

fn replace<'t>(
    re: &Regex,
    text: &'t str,
    with: &[String],
    valid: impl Fn(&str) -> bool,
    count: &mut usize,
) -> Cow<'t, str> {
    re.replace_all(text, |c: &Captures| {
        let m = &c[0];
        if !valid(m) {
            return m.to_string();
        }
        let r = with[*count % with.len()].clone();
        *count += 1;
        r
    })
}

impl Block for PiiFormatter {
    fn name(&self) -> &str {
        "pii"
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let cfg = &self.config;
        let (mut emails, mut ips) = (0, 0);
        if cfg.remove_emails && doc.text.contains('@') {
            if let Cow::Owned(t) = replace(
                &self.email,
                &doc.text,
                &cfg.email_replacement,
                |_| true,
                &mut emails,
            ) {
                doc.text = t;
            }
        }
        if cfg.remove_ips {
            let public = cfg.only_remove_public_ips;
            let valid = |s: &str| ip_is_replaceable(s, public);
            if let Cow::Owned(t) =
                replace(&self.ip, &doc.text, &cfg.ip_replacement, valid, &mut ips)
            {
                doc.text = t;
            }
        }
        out.stat("emails", emails as f64);
        out.stat("ips", ips as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    #[test]
    fn emails_and_public_ips_replaced() {
        let f = PiiFormatter::new(PiiConfig::default()).unwrap();
        let mut d = Document::new(
            "t",
            "Mail jane.doe@corp.example.net or bob@x.io; hosts 8.8.8.8, 192.168.1.1, 010.1.2.3 and 1.2.3.4.",
            DocKey::new(0, 0),
        );
        let mut out = Decision::default();
        f.apply(&mut d, &mut out);
        assert_eq!(
            d.text,
            "Mail email@example.com or firstname.lastname@example.org; hosts 22.214.171.124, \
             192.168.1.1, 010.1.2.3 and 126.96.36.199."
        );
        assert_eq!(out.stats, [("emails".into(), 2.0), ("ips".into(), 2.0)]);
        assert!(!ip_is_replaceable("100.64.0.1", true) && ip_is_replaceable("192.0.0.9", true));
    }
}
