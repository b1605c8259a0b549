//! A deliberately small XML reader for the two XML documents FreeSWITCH sends us:
//! `text/event-xml` events and `sofia xmlstatus` replies. Both are plain element trees with
//! text content and no namespaces, so a 150-line reader beats a new dependency. Attributes
//! are skipped (neither document uses them), entities and CDATA are decoded.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum XmlError {
    #[error("unexpected end of document")]
    UnexpectedEnd,
    #[error("closing tag </{found}> where </{expected}> was open")]
    MismatchedTag { expected: String, found: String },
    #[error("no root element")]
    NoRoot,
    #[error("malformed markup at byte {0}")]
    Malformed(usize),
}

/// One element: its name, its child elements, and its text content (concatenated, entities
/// decoded, untrimmed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    #[cfg(test)]
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document and returns its root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let bytes = input.as_bytes();
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let end = find(bytes, i, b"<").unwrap_or(bytes.len());
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&unescape(&input[i..end]));
            }
            i = end;
            continue;
        }
        let rest = &bytes[i..];
        if rest.starts_with(b"<?") {
            i = find(bytes, i, b"?>").ok_or(XmlError::UnexpectedEnd)? + 2;
        } else if rest.starts_with(b"<!--") {
            i = find(bytes, i, b"-->").ok_or(XmlError::UnexpectedEnd)? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(bytes, i, b"]]>").ok_or(XmlError::UnexpectedEnd)?;
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&input[i + 9..end]);
            }
            i = end + 3;
        } else if rest.starts_with(b"<!") {
            i = find(bytes, i, b">").ok_or(XmlError::UnexpectedEnd)? + 1;
        } else if rest.starts_with(b"</") {
            let end = find(bytes, i, b">").ok_or(XmlError::UnexpectedEnd)?;
            let name = input[i + 2..end].trim();
            let el = stack.pop().ok_or(XmlError::Malformed(i))?;
            if el.name != name {
                return Err(XmlError::MismatchedTag {
                    expected: el.name,
                    found: name.to_string(),
                });
            }
            close(&mut stack, &mut root, el);
            i = end + 1;
        } else {
            let end = tag_end(bytes, i).ok_or(XmlError::UnexpectedEnd)?;
            let self_closing = bytes[end - 1] == b'/';
            let inner = &input[i + 1..if self_closing { end - 1 } else { end }];
            let name: String = inner
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                return Err(XmlError::Malformed(i));
            }
            let el = Element {
                name,
                ..Element::default()
            };
            if self_closing {
                close(&mut stack, &mut root, el);
            } else {
                stack.push(el);
            }
            i = end + 1;
        }
    }
    if let Some(open) = stack.pop() {
        let _ = open;
        return Err(XmlError::UnexpectedEnd);
    }
    root.ok_or(XmlError::NoRoot)
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => {
            if root.is_none() {
                *root = Some(el);
            }
        }
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// End of a start tag, skipping `>` inside quoted attribute values.
fn tag_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (off, &b) in bytes.get(from..)?.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(from + off),
            None => {}
        }
    }
    None
}

/// Decodes the five predefined entities and numeric references; unknown ones stay as text.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';').filter(|&p| p <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_entities_and_cdata() {
        let doc = "<?xml version=\"1.0\"?>\n<!-- c -->\n<a x=\"1>2\">\n<b>one &amp; &lt;two&gt; &#65;&#x42;</b><c/><b><![CDATA[<raw>]]></b>\n</a>\n";
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "a");
        let texts: Vec<&str> = root.children_named("b").map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["one & <two> AB", "<raw>"]);
        assert!(root.child("c").is_some());
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(matches!(
            parse("<a><b></a>"),
            Err(XmlError::MismatchedTag { .. })
        ));
        assert_eq!(parse("<a><b></b>"), Err(XmlError::UnexpectedEnd));
        assert_eq!(parse("Invalid Profile!\n"), Err(XmlError::NoRoot));
    }
}
