//! Blocklists from user files, one entry a line (blank lines and lines starting with `#`
//! skipped):
//! - [`UrlBlocklistFilter`]: `doc.metadata["url"]` against listed domains and URLs, as
//!   datatrove's `URLFilter` checks them: the URL's registered domain listed → `domain`,
//!   its full host listed → `subdomain`, the URL itself listed → `url`. An entry with a
//!   `/` is a URL, any other a domain. The registered domain is the last two labels of the
//!   host, three when the second-to-last is a common second-level label (`co.uk`,
//!   `com.au`…): datatrove asks the full public-suffix list (tldextract), which we do not
//!   ship.
//! - [`WordBlocklistFilter`]: the text against listed words or phrases, matched whole
//!   (not inside a longer word: `\W` or the text's edge on each side, as C4's bad-words
//!   filter matches), case-insensitively → `blocklisted_word`.

use std::collections::HashSet;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::block::{Block, Decision};
use crate::doc::Document;
use crate::{Error, Result};

/// The entries of a blocklist file.
pub fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(parse_list(&text))
}

fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Drops documents whose URL is listed. Block name `url_blocklist`.
#[derive(Debug, Clone, Default)]
pub struct UrlBlocklistFilter {
    domains: HashSet<String>,
    urls: HashSet<String>,
}

const SECOND_LEVEL: [&str; 12] = [
    "co", "com", "ac", "org", "net", "gov", "edu", "or", "ne", "go", "gob", "nic",
];

/// The host of `url` (scheme, user, port and path removed), lowercased.
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let auth = auth.split(':').next().unwrap_or(auth);
    auth.trim_end_matches('.').to_lowercase()
}

/// The registered domain of `host` (see the module's note).
fn registered_domain(host: &str) -> &str {
    let labels: Vec<&str> = host.rsplitn(4, '.').collect();
    let take = if labels.len() >= 3 && labels[0].len() == 2 && SECOND_LEVEL.contains(&labels[1]) {
        3
    } else {
        2
    };
    if labels.len() <= take {
        return host;
    }
    let keep: usize = labels[..take].iter().map(|l| l.len()).sum::<usize>() + take - 1;
    &host[host.len() - keep..]
}

impl UrlBlocklistFilter {
    /// A filter from entries (domains, and URLs: entries with a `/`).
    pub fn new(entries: impl IntoIterator<Item = String>) -> Self {
        let mut f = UrlBlocklistFilter::default();
        for e in entries {
            if e.contains('/') {
                f.urls.insert(e);
            } else {
                f.domains.insert(e.to_lowercase());
            }
        }
        f
    }
    /// A filter from a blocklist file.
    pub fn from_file(path: &Path) -> Result<Self> {
        Ok(Self::new(read_list(path)?))
    }
}

impl Block for UrlBlocklistFilter {
    fn name(&self) -> &str {
        "url_blocklist"
    }

    /// A document without a `url` is kept (datatrove stops with an error).
    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let Some(url) = doc.metadata.get("url").and_then(|u| u.as_str()) else {
            out.stat("no_url", 1.0);
            return;
        };
        let h = host(url);
        if self.domains.contains(registered_domain(&h)) {
            out.drop_for("domain");
        } else if self.domains.contains(&h) {
            out.drop_for("subdomain");
        } else if self.urls.contains(url) {
            out.drop_for("url");
        }
    }
}

/// Drops documents that contain a listed word or phrase. Block name `word_blocklist`.
/// Statistic: `blocklisted_words`, how many matches.
#[derive(Debug, Clone)]
pub struct WordBlocklistFilter {
    matcher: AhoCorasick,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl WordBlocklistFilter {
    pub fn new(words: impl IntoIterator<Item = String>) -> Result<Self> {
        let words: Vec<String> = words.into_iter().map(|w| w.to_lowercase()).collect();
        if words.is_empty() {
            return Err(Error::Config("word blocklist: the list is empty".into()));
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&words)
            .map_err(|e| Error::Config(format!("word blocklist: {e}")))?;
        Ok(WordBlocklistFilter { matcher })
    }
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::new(read_list(path)?).map_err(|e| Error::format(path, e.to_string()))
    }

    /// How many listed words `text` holds, whole and case-insensitively.
    pub fn count(&self, text: &str) -> usize {
        let lower = text.to_lowercase();
        self.matcher
            .find_overlapping_iter(&lower)
            .filter(|m| {
                let before = lower[..m.start()].chars().next_back();
                let after = lower[m.end()..].chars().next();
                !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
            })
            .count()
    }
}

impl Block for WordBlocklistFilter {
    fn name(&self) -> &str {
        "word_blocklist"
    }

    fn apply(&self, doc: &mut Document, out: &mut Decision) {
        let n = self.count(&doc.text);
        out.stat("blocklisted_words", n as f64);
        if n > 0 {
            out.drop_for("blocklisted_word");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKey;

    fn doc_with_url(url: &str) -> Document {
        let mut d = Document::new("t", "text", DocKey::new(0, 0));
        d.metadata.insert("url".into(), url.into());
        d
    }

    #[test]
    fn urls_by_domain_subdomain_and_url() {
        let list = parse_list("# spam\nspam.com\nnews.bad.co.uk\n\nhttp://ok.org/one/page\n");
        let f = UrlBlocklistFilter::new(list);
        let check = |url: &str| {
            let mut out = Decision::default();
            f.apply(&mut doc_with_url(url), &mut out);
            out.drop.map(|c| c.into_owned())
        };
        assert_eq!(check("https://www.spam.com/x").as_deref(), Some("domain"));
        assert_eq!(
            check("https://news.bad.co.uk:8080/a?b").as_deref(),
            Some("subdomain")
        );
        assert_eq!(check("https://other.bad.co.uk/").as_deref(), None);
        assert_eq!(check("http://ok.org/one/page").as_deref(), Some("url"));
        assert_eq!(check("http://ok.org/two").as_deref(), None);
        assert_eq!(registered_domain("a.b.example.com"), "example.com");
    }

    #[test]
    fn words_match_whole_and_ignore_case() {
        let f = WordBlocklistFilter::new(["badword".to_string(), "two words".to_string()]).unwrap();
        assert_eq!(f.count("A BadWord here, and Two Words."), 2);
        assert_eq!(f.count("badwords and twowords"), 0);
        assert!(WordBlocklistFilter::new(Vec::new()).is_err());
    }
}
