//! **BlockDensity**: fmlab's HTML main-text extractor (our own code; the ideas are
//! jusText's and boilerpipe's).
//!
//! 1. *Tokenise* with a small forgiving HTML tokenizer (comments, doctypes, attributes with
//!    or without quotes, raw-text elements, character references), keeping a stack of open
//!    elements with HTML's implied end tags for `p`, `li`, `dt`/`dd`, table rows and cells.
//! 2. *Drop boilerplate subtrees* whole: `script`, `style`, `noscript`, `template`, `head`,
//!    `nav`, `aside`, `footer`, `form` and its controls, `iframe`, `svg`, `math`, `menu`,
//!    `dialog`; `header` outside `main`/`article`; elements with `hidden`,
//!    `aria-hidden="true"`, ARIA roles `navigation`, `search`, `banner`, `contentinfo`,
//!    `complementary`, `menu`. Elements whose `class` or `id` names navigation or
//!    boilerplate (`nav`, `menu`, `sidebar`, `breadcrumb`, `footer`, `cookie`, `share`,
//!    `social`, `related`, `advert`, `toc`, `pagination`…) become *regions*, dropped in
//!    step 4 unless they enclose the page's `main`/`article` or hold half of its good text
//!    (themes name page-wide wrappers `wy-nav-content` and the like).
//! 3. *Cut the rest into text blocks* at every block-level element (`p`, `div`, headings,
//!    `li`, `pre`, `td`, `br`…). A block records its text (whitespace collapsed, `pre` kept
//!    verbatim), its length, the share of its characters inside links (link density), its
//!    words, whether it is a heading or `pre`, and whether it lies in `main`/`article`/
//!    `role="main"`.
//! 4. *Classify each block* as jusText does, with a language-free prose test standing in
//!    for its stop-word density: link density > 0.2 or a short copyright line → bad;
//!    under 70 characters → short; 200 characters or more of prose (mostly alphabetic words
//!    and a sentence end) → good; otherwise near-good. When the page marks its main content
//!    (`main`, `article`, `role="main"`) and that holds 200 characters or more, blocks
//!    outside it are bad. A page without a single good block is read again with prose of
//!    70 characters or more counted good.
//! 5. *Decide by context* (jusText's rules): a short block between two good blocks (short
//!    and near-good ones skipped) is good, between two bad ones bad, and good when a bad
//!    side has a near-good block next to it; a near-good block is good unless both
//!    neighbours are bad; a heading is kept when a good block follows it within 200
//!    characters.
//! 6. *Output* the good blocks, one per line (headings and paragraphs each on their own
//!    line, `pre` blocks with their line breaks).
//!
//! `scripts/check_html_extract.sh` compares it with trafilatura on the same pages.

mod entities;

/// The main text of an HTML page (see the module doc); empty when nothing is content.
pub fn extract(html: &str) -> String {
    let mut b = Builder::default();
    tokenize(html, &mut b);
    b.flush();
    let mut blocks = b.blocks;
    classify(&mut blocks, &b.regions);
    let mut out = String::new();
    for block in blocks.iter().filter(|b| b.class == Class::Good) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(block.text.trim_end());
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Good,
    Bad,
    Short,
    NearGood,
}

#[derive(Debug)]
struct Block {
    text: String,
    chars: usize,
    link_chars: usize,
    heading: bool,
    pre: bool,
    in_main: bool,
    /// The class/id-named boilerplate regions the block lies in.
    regions: Vec<usize>,
    class: Class,
}

/// An open element and what it switched on.
#[derive(Debug)]
struct Open {
    name: String,
    skip: bool,
    main: bool,
    heading: bool,
    pre: bool,
    link: bool,
    /// A region whose class or id names boilerplate (see [`classify`]).
    region: Option<usize>,
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Open>,
    skip: usize,
    main: usize,
    heading: usize,
    pre: usize,
    link: usize,
    // the block being filled
    text: String,
    chars: usize,
    link_chars: usize,
    block_heading: bool,
    block_pre: bool,
    block_main: bool,
    block_regions: Vec<usize>,
    blocks: Vec<Block>,
    /// Per boilerplate-named region: does it enclose the page's `main`/`article`?
    regions: Vec<bool>,
    open_regions: Vec<usize>,
}

const SKIP_TAGS: &[&str] = &[
    "head",
    "nav",
    "aside",
    "footer",
    "form",
    "button",
    "select",
    "input",
    "textarea",
    "label",
    "iframe",
    "svg",
    "math",
    "menu",
    "dialog",
    "canvas",
    "object",
    "embed",
    "video",
    "audio",
    "map",
    "figure-nav",
];
const RAW_TAGS: &[&str] = &["script", "style", "noscript", "template", "title", "xmp"];
const VOID_TAGS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
    "br",
    "nav",
    "aside",
    "form",
];
const SKIP_ROLES: &[&str] = &[
    "navigation",
    "search",
    "banner",
    "contentinfo",
    "complementary",
    "menu",
    "menubar",
    "toolbar",
    "dialog",
    "alert",
];
/// class/id tokens (split at `-`, `_`, spaces) that name boilerplate.
const SKIP_TOKENS: &[&str] = &[
    "nav",
    "navbar",
    "navigation",
    "menu",
    "sidebar",
    "sidenav",
    "breadcrumb",
    "breadcrumbs",
    "footer",
    "cookie",
    "cookies",
    "share",
    "sharing",
    "social",
    "related",
    "advert",
    "ads",
    "ad",
    "sponsor",
    "sponsored",
    "toc",
    "pagination",
    "pager",
    "popup",
    "modal",
    "banner",
    "newsletter",
    "subscribe",
    "skip",
    "widget",
    "promo",
    "masthead",
    "sphinxsidebar",
    "sidebarwrapper",
    "rellinks",
    "headerlink",
];

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.contains(&name)
}

impl Builder {
    fn start(&mut self, name: &str, attrs: &Attrs, self_closing: bool) {
        if is_one_of(name, BLOCK_TAGS) {
            self.flush();
        }
        if is_one_of(name, VOID_TAGS) {
            return;
        }
        self.auto_close(name);
        let container = matches!(name, "html" | "body" | "main" | "article");
        let main = matches!(name, "main" | "article")
            || attrs.role == "main"
            || attrs.itemprop == "articlebody";
        let skip = is_one_of(name, SKIP_TAGS)
            || (name == "header" && self.main == 0)
            || attrs.hidden
            || is_one_of(attrs.role.as_str(), SKIP_ROLES);
        if main {
            for &r in &self.open_regions {
                self.regions[r] = true;
            }
        }
        let region =
            (!self_closing && !skip && !container && !main && boilerplate_name(&attrs.class_id))
                .then(|| {
                    self.regions.push(false);
                    self.open_regions.push(self.regions.len() - 1);
                    self.regions.len() - 1
                });
        let open = Open {
            name: name.to_string(),
            skip,
            main,
            heading: matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6"),
            pre: name == "pre",
            link: name == "a",
            region,
        };
        if self_closing {
            return;
        }
        self.count(&open, true);
        self.stack.push(open);
    }

    fn count(&mut self, open: &Open, on: bool) {
        let bump = |n: &mut usize, yes: bool| {
            if yes {
                *n = if on { *n + 1 } else { n.saturating_sub(1) };
            }
        };
        bump(&mut self.skip, open.skip);
        bump(&mut self.main, open.main);
        bump(&mut self.heading, open.heading);
        bump(&mut self.pre, open.pre);
        bump(&mut self.link, open.link);
        if let (false, Some(r)) = (on, open.region) {
            if let Some(i) = self.open_regions.iter().rposition(|&o| o == r) {
                self.open_regions.remove(i);
            }
        }
    }

    /// HTML's implied end tags: a new `p` closes an open `p`, a new `li` the open `li` of the
    /// same list, and so on, up to the nearest enclosing container.
    fn auto_close(&mut self, name: &str) {
        let closes: &[&str] = match name {
            "li" => &["li"],
            "dt" | "dd" => &["dt", "dd"],
            "tr" => &["tr", "td", "th"],
            "td" | "th" => &["td", "th"],
            "option" => &["option"],
            n if is_one_of(n, BLOCK_TAGS) && n != "br" => &["p"],
            _ => return,
        };
        let boundary = |n: &str| {
            matches!(
                n,
                "ul" | "ol"
                    | "dl"
                    | "table"
                    | "tbody"
                    | "thead"
                    | "tfoot"
                    | "div"
                    | "section"
                    | "article"
                    | "main"
                    | "body"
                    | "html"
                    | "blockquote"
                    | "nav"
                    | "aside"
                    | "select"
                    | "td"
                    | "th"
                    | "li"
            ) && !closes.contains(&n)
        };
        let mut at = None;
        for (i, open) in self.stack.iter().enumerate().rev() {
            if closes.contains(&open.name.as_str()) {
                at = Some(i);
                break;
            }
            if boundary(&open.name) {
                break;
            }
        }
        if let Some(i) = at {
            self.pop_to(i);
        }
    }

    fn pop_to(&mut self, i: usize) {
        while self.stack.len() > i {
            if let Some(open) = self.stack.pop() {
                self.count(&open, false);
            }
        }
    }

    fn end(&mut self, name: &str) {
        if is_one_of(name, BLOCK_TAGS) {
            self.flush();
        }
        if let Some(i) = self.stack.iter().rposition(|o| o.name == name) {
            self.pop_to(i);
        }
    }

    fn text(&mut self, raw: &str) {
        if self.skip > 0 {
            return;
        }
        let decoded = entities::decode(raw);
        if self.text.is_empty() && !decoded.chars().all(char::is_whitespace) {
            self.block_heading = self.heading > 0;
            self.block_pre = self.pre > 0;
            self.block_main = self.main > 0;
            self.block_regions.clone_from(&self.open_regions);
        }
        if self.pre > 0 {
            let n = decoded.chars().filter(|c| !c.is_whitespace()).count();
            self.chars += n;
            if self.link > 0 {
                self.link_chars += n;
            }
            self.text.push_str(&decoded);
            return;
        }
        for (i, word) in decoded.split_whitespace().enumerate() {
            let space_before = i > 0 || decoded.starts_with(char::is_whitespace);
            // a run glued to the previous one (`<b>x</b>y`) gets no space
            if space_before && !self.text.is_empty() && !self.text.ends_with(' ') {
                self.text.push(' ');
            }
            let n = word.chars().count() + 1;
            self.chars += n;
            if self.link > 0 {
                self.link_chars += n;
            }
            self.text.push_str(word);
        }
        if decoded.ends_with(char::is_whitespace) && !self.text.is_empty() && self.pre == 0 {
            self.text.push(' ');
        }
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.text);
        let trimmed = if self.block_pre {
            text.trim_matches('\n').trim_end()
        } else {
            text.trim()
        };
        if self.chars > 0 && !trimmed.is_empty() {
            let chars = trimmed.chars().count();
            self.blocks.push(Block {
                text: trimmed.to_string(),
                chars,
                link_chars: self.link_chars.min(chars),
                heading: self.block_heading,
                pre: self.block_pre,
                in_main: self.block_main,
                regions: std::mem::take(&mut self.block_regions),
                class: Class::Bad,
            });
        }
        self.chars = 0;
        self.link_chars = 0;
    }
}

/// Does a `class`/`id` value name navigation or other boilerplate?
fn boilerplate_name(class_id: &str) -> bool {
    class_id
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .any(|t| !t.is_empty() && is_one_of(t, SKIP_TOKENS))
}

/// The attributes the extractor looks at (values lower-cased).
#[derive(Debug, Default)]
struct Attrs {
    class_id: String,
    role: String,
    itemprop: String,
    hidden: bool,
}

/// Runs the tokenizer over `html`, calling the builder for tags and text.
fn tokenize(html: &str, b: &mut Builder) {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(lt) = html[i..].find('<').map(|p| p + i) else {
            b.text(&html[i..]);
            break;
        };
        if lt > i {
            b.text(&html[i..lt]);
        }
        i = lt;
        let rest = &lower[i..];
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        if let Some(comment) = rest.strip_prefix("<!--") {
            i = comment.find("-->").map_or(bytes.len(), |p| i + 4 + p + 3);
        } else if next == b'!' || next == b'?' {
            i = rest.find('>').map_or(bytes.len(), |p| i + p + 1);
        } else if next == b'/' && bytes.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
            let name = tag_name(&lower[i + 2..]);
            i = rest.find('>').map_or(bytes.len(), |p| i + p + 1);
            b.end(name);
        } else if next.is_ascii_alphabetic() {
            let name = tag_name(&lower[i + 1..]);
            let (attrs, self_closing, end) = parse_attrs(&lower, i + 1 + name.len());
            i = end;
            if is_one_of(name, RAW_TAGS) {
                let close = format!("</{name}");
                i = lower[i..]
                    .find(&close)
                    .and_then(|p| lower[i + p..].find('>').map(|q| i + p + q + 1))
                    .unwrap_or(bytes.len());
                continue;
            }
            b.start(name, &attrs, self_closing);
        } else {
            b.text("<");
            i += 1;
        }
    }
}

fn tag_name(s: &str) -> &str {
    let end = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len());
    &s[..end]
}

/// Parses attributes from `at` to the tag's `>`: (attributes, self-closing, index after `>`).
fn parse_attrs(lower: &str, mut at: usize) -> (Attrs, bool, usize) {
    let bytes = lower.as_bytes();
    let mut attrs = Attrs::default();
    let mut self_closing = false;
    while at < bytes.len() {
        let c = bytes[at];
        if c == b'>' {
            return (attrs, self_closing, at + 1);
        }
        if c.is_ascii_whitespace() || c == b'/' {
            self_closing = c == b'/';
            at += 1;
            continue;
        }
        self_closing = false;
        let name_end = lower[at..]
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .map_or(bytes.len(), |p| at + p);
        let name = &lower[at..name_end];
        at = name_end;
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = "";
        if bytes.get(at) == Some(&b'=') {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            match bytes.get(at) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let end = lower[at + 1..]
                        .find(char::from(q))
                        .map_or(bytes.len(), |p| at + 1 + p);
                    value = &lower[at + 1..end];
                    at = (end + 1).min(bytes.len());
                }
                _ => {
                    let end = lower[at..]
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .map_or(bytes.len(), |p| at + p);
                    value = &lower[at..end];
                    at = end;
                }
            }
        }
        match name {
            "class" | "id" => {
                attrs.class_id.push(' ');
                attrs.class_id.push_str(value);
            }
            "role" => attrs.role = value.trim().to_string(),
            "itemprop" => attrs.itemprop = value.trim().to_string(),
            "hidden" => attrs.hidden = true,
            "aria-hidden" => attrs.hidden |= value.trim() == "true",
            "style" => {
                let v: String = value.split_whitespace().collect();
                attrs.hidden |= v.contains("display:none") || v.contains("visibility:hidden");
            }
            _ => {}
        }
    }
    (attrs, self_closing, bytes.len())
}

/// Is the block prose: mostly letters, eight words or more (or, for scripts written without
/// spaces, 30 letters or more), and a sentence end somewhere?
fn prose(text: &str) -> bool {
    let mut words = 0usize;
    let mut alpha_words = 0usize;
    let mut letters = 0usize;
    for w in text.split_whitespace() {
        words += 1;
        let n = w.chars().filter(|c| c.is_alphabetic()).count();
        letters += n;
        if n * 2 >= w.chars().count() {
            alpha_words += 1;
        }
    }
    let enough = words >= 8 || (letters >= 30 && letters >= words * 8);
    enough
        && alpha_words * 10 >= words * 7
        && text.contains(['.', '!', '?', '。', '！', '？', ';', ':'])
}

/// jusText's classification with context (see the module doc, steps 4 and 5).
fn classify(blocks: &mut [Block], regions_with_main: &[bool]) {
    const LOW: usize = 70;
    const HIGH: usize = 200;
    let main_chars: usize = blocks.iter().filter(|b| b.in_main).map(|b| b.chars).sum();
    let use_main = main_chars >= HIGH;
    for b in blocks.iter_mut() {
        let density = b.link_chars as f64 / b.chars.max(1) as f64;
        let lower = b.text.to_lowercase();
        let copyright = lower.contains('©') || lower.contains("copyright");
        b.class = if (use_main && !b.in_main) || density > 0.2 || (copyright && b.chars < HIGH) {
            Class::Bad
        } else if b.chars < LOW && !b.pre {
            Class::Short
        } else if b.chars >= HIGH && prose(&b.text) {
            Class::Good
        } else {
            Class::NearGood
        };
    }
    // A page of medium paragraphs only: relax, and let prose of 70+ characters be good.
    if !blocks.iter().any(|b| b.class == Class::Good) {
        for b in blocks.iter_mut() {
            if b.class == Class::NearGood && prose(&b.text) {
                b.class = Class::Good;
            }
        }
    }
    // A region named like boilerplate is dropped unless it encloses the page's main
    // element or holds at least half of its good text (a page-wide wrapper named `nav-…`).
    let good = |b: &Block| if b.class == Class::Good { b.chars } else { 0 };
    let good_total: usize = blocks.iter().map(good).sum();
    let mut region_good = vec![0usize; regions_with_main.len()];
    for b in blocks.iter() {
        for &r in &b.regions {
            region_good[r] += good(b);
        }
    }
    for b in blocks.iter_mut() {
        if b.regions
            .iter()
            .any(|&r| !regions_with_main[r] && region_good[r] * 2 < good_total.max(1))
        {
            b.class = Class::Bad;
        }
    }
    let initial: Vec<Class> = blocks.iter().map(|b| b.class).collect();
    // headings followed closely by good text are near-good (jusText's preprocessing)
    let mut classes = initial.clone();
    for i in 0..blocks.len() {
        if blocks[i].heading && classes[i] == Class::Short {
            let mut distance = 0;
            for (j, b) in blocks.iter().enumerate().skip(i + 1) {
                if initial[j] == Class::Good {
                    classes[i] = Class::NearGood;
                    break;
                }
                distance += b.chars;
                if distance > HIGH {
                    break;
                }
            }
        }
    }
    let neighbour = |classes: &[Class], i: usize, forward: bool, ignore_near: bool| {
        let mut j = i;
        loop {
            if forward {
                j += 1;
                if j >= classes.len() {
                    return Class::Bad;
                }
            } else {
                if j == 0 {
                    return Class::Bad;
                }
                j -= 1;
            }
            match classes[j] {
                Class::Good | Class::Bad => return classes[j],
                Class::NearGood if !ignore_near => return Class::NearGood,
                _ => {}
            }
        }
    };
    let mut decided = classes.clone();
    for i in 0..classes.len() {
        if classes[i] != Class::Short {
            continue;
        }
        let prev = neighbour(&classes, i, false, true);
        let next = neighbour(&classes, i, true, true);
        decided[i] = if prev == Class::Good && next == Class::Good {
            Class::Good
        } else if prev == Class::Bad && next == Class::Bad {
            Class::Bad
        } else if (prev == Class::Bad && neighbour(&classes, i, false, false) == Class::NearGood)
            || (next == Class::Bad && neighbour(&classes, i, true, false) == Class::NearGood)
        {
            Class::Good
        } else {
            Class::Bad
        };
    }
    let mut done = decided.clone();
    for i in 0..decided.len() {
        if decided[i] != Class::NearGood {
            continue;
        }
        let prev = neighbour(&decided, i, false, true);
        let next = neighbour(&decided, i, true, true);
        done[i] = if prev == Class::Bad && next == Class::Bad {
            Class::Bad
        } else {
            Class::Good
        };
    }
    for (b, c) in blocks.iter_mut().zip(done) {
        b.class = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><title>T</title>
<style>p { color: red }</style><script>var x = "<p>not text</p>";</script></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/a">About us</a></li></ul></nav>
<div class="sidebar">Popular posts: a list of many things that are not content at all here.</div>
<main><h1>The river &amp; the sea</h1>
<p>Rivers carry water from the mountains to the sea. Along the way they cut valleys, carry
sand and stones, and feed the fields of the plains, where most people have always lived.</p>
<p>Short line.</p>
<p>At the coast the river slows down and drops what it carried; deltas grow where the sea
is calm, and estuaries form where tides are strong enough to carry the sand away again.</p>
<pre>code  line 1
  line 2</pre>
</main>
<footer>Copyright 2024 Example Inc. All rights reserved.</footer></body></html>"#;

    #[test]
    fn keeps_the_article_and_drops_boilerplate() {
        let text = extract(PAGE);
        assert!(
            text.starts_with("The river & the sea\nRivers carry water"),
            "{text}"
        );
        assert!(text.contains("Short line."), "{text}");
        assert!(text.contains("estuaries form"), "{text}");
        assert!(text.contains("code  line 1\n  line 2"), "{text}");
        for junk in ["Home", "About", "Popular", "Copyright", "not text", "color"] {
            assert!(!text.contains(junk), "{junk} in {text}");
        }
    }

    #[test]
    fn link_lists_are_dropped_without_markup_hints() {
        let mut page = String::from("<div>");
        for i in 0..10 {
            page.push_str(&format!("<div><a href='/{i}'>Link number {i}</a></div>"));
        }
        page.push_str("<div><p>");
        page.push_str(&"This is a sentence of real prose about the topic. ".repeat(6));
        page.push_str("</p></div></div>");
        let text = extract(&page);
        assert!(!text.contains("Link number"), "{text}");
        assert!(text.starts_with("This is a sentence"), "{text}");
    }

    #[test]
    fn a_page_wide_wrapper_named_nav_is_not_boilerplate() {
        let para = "A paragraph of real prose that says something useful about the page. ";
        let page = format!(
            "<div class='wy-grid-for-nav'><div class='wy-nav-side'>Menu entry</div>\
             <div class='wy-nav-content'><p>{}</p></div></div>",
            para.repeat(4)
        );
        let text = extract(&page);
        assert!(text.starts_with("A paragraph"), "{text}");
        assert!(!text.contains("Menu entry"), "{text}");
    }

    #[test]
    fn text_without_spaces_can_be_prose() {
        assert!(prose("内核的页表是一棵多级的树，每一级把虚拟地址的一部分翻译成下一级表的物理地址。这样的设计节省了内存。"));
        assert!(!prose("Home | About | Contact"));
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for page in [
            "<",
            "<a",
            "<p class=\"x",
            "<!--",
            "<script>",
            "&#xFFFFFFFF;",
            "<p>&",
            "</",
            "<b/>",
        ] {
            let _ = extract(page);
        }
    }
}
