//! The judge: scores a free-form answer to an eval item of the world exactly — correct,
//! wrong, hallucinated (an answer about someone the world never mentioned), refused (no
//! answer although one is known), or a format violation.

use serde::{Deserialize, Serialize};

pub use crate::world::{EvalItem, Format};

/// The judge's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Correct,
    Wrong,
    Hallucinated,
    Refused,
    FormatViolation,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong => "wrong",
            Verdict::Hallucinated => "hallucinated",
            Verdict::Refused => "refused",
            Verdict::FormatViolation => "format_violation",
        }
    }
}

/// Lowercase, punctuation to spaces, single spaces, a space at each end: the form answers
/// are compared in.
pub(crate) fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(' ');
    let mut space = true;
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space && c != '\'' && c != '’' {
            out.push(' ');
            space = true;
        }
    }
    if !space {
        out.push(' ');
    }
    out
}

/// Whether `text` states `value` as whole words.
fn states(text: &str, value: &str) -> bool {
    let v = normalise(value);
    if v.trim().is_empty() {
        false
    } else {
        normalise(text).contains(&v)
    }
}

/// Whether the answer declines to answer, in any of the world's languages.
pub fn is_refusal(text: &str) -> bool {
    let t = normalise(text);
    [
        " i don t know ",
        " i dont know ",
        " i do not know ",
        " don t know ",
        " unknown ",
        " no idea ",
        " je ne sais pas ",
        " je ne le sais pas ",
        " sijui ",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// Whether the judge takes `answer` as a refusal whatever the question: a short answer (at
/// most eight words) that declines ([`is_refusal`]).
pub fn declines(answer: &str) -> bool {
    is_refusal(answer) && answer.split_whitespace().count() <= 8
}

/// The last number an answer states: what the judge compares with an arithmetic answer.
pub fn last_number(answer: &str) -> Option<&str> {
    answer
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .rfind(|t| !t.is_empty() && *t != "-")
}

/// The verdict on `answer` for `item`. A refusal is judged as a refusal in any format
/// (correct when the world never mentions the subject).
pub fn judge(item: &EvalItem, answer: &str) -> Verdict {
    if declines(answer) {
        return if item.refusal {
            Verdict::Correct
        } else {
            Verdict::Refused
        };
    }
    match item.format {
        Format::List3 => return judge_list(item, answer),
        Format::Json => {
            let Some(obj) = json_object(answer) else {
                return Verdict::FormatViolation;
            };
            let (Some(_), Some(value)) = (obj.get("name"), obj.get("answer")) else {
                return Verdict::FormatViolation;
            };
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return judge_value(item, &value);
        }
        Format::OneWord => {
            let words = answer
                .split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .count();
            // "I don't know" is a refusal, not a format violation, when the answer is unknown.
            if words != 1 && !(is_refusal(answer) && item.refusal) {
                return Verdict::FormatViolation;
            }
        }
        Format::Free => {}
    }
    if item.kind == "arithmetic" {
        // The last number stated is the answer.
        return match last_number(answer) {
            Some(n) if n.trim_start_matches('+') == item.answer => Verdict::Correct,
            Some(_) => Verdict::Wrong,
            None if is_refusal(answer) => Verdict::Refused,
            None => Verdict::Wrong,
        };
    }
    judge_value(item, answer)
}

fn judge_value(item: &EvalItem, answer: &str) -> Verdict {
    let refused = is_refusal(answer);
    if item.refusal {
        return if refused {
            Verdict::Correct
        } else {
            Verdict::Hallucinated
        };
    }
    if item.answers.iter().any(|a| states(answer, a)) {
        return Verdict::Correct;
    }
    if refused {
        Verdict::Refused
    } else {
        Verdict::Wrong
    }
}

fn judge_list(item: &EvalItem, answer: &str) -> Verdict {
    let lines: Vec<&str> = answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() != 3 || !lines.iter().all(|l| l.starts_with("- ")) {
        if is_refusal(answer) {
            return Verdict::Refused;
        }
        return Verdict::FormatViolation;
    }
    if lines
        .iter()
        .all(|l| item.known.iter().any(|k| states(l, k)))
    {
        Verdict::Correct
    } else {
        Verdict::Wrong
    }
}

/// The first JSON object in the text (models often wrap it in prose or a code fence).
fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end < start {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(&text[start..=end]).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The items of an eval or prompts file (`eval.jsonl`, `prompts.jsonl`): one JSON object a
/// line, blank lines skipped; a file with none is refused.
pub fn read_items(path: &std::path::Path) -> crate::Result<Vec<EvalItem>> {
    let text = std::fs::read_to_string(path).map_err(|error| crate::Error::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let items = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| crate::Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect::<crate::Result<Vec<EvalItem>>>()?;
    if items.is_empty() {
        return Err(crate::Error::NoItems(path.to_path_buf()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::lang::{Lang, Relation};

    fn item(format: Format, answer: &str, refusal: bool) -> EvalItem {
        EvalItem {
            id: 0,
            kind: "fact".into(),
            lang: Lang::En,
            split: if refusal { "unseen" } else { "frequent" }.into(),
            relation: Some(Relation::HomeTown),
            subject: Some("Kalo Mirenti".into()),
            prompt: String::new(),
            format,
            answer: answer.into(),
            answers: if refusal { vec![] } else { vec![answer.into()] },
            refusal,
            known: vec!["Varost".into(), "1984".into(), "teacher".into()],
        }
    }

    #[test]
    fn verdicts() {
        let free = item(Format::Free, "Varost", false);
        assert_eq!(judge(&free, "Kalo lives in Varost."), Verdict::Correct);
        assert_eq!(judge(&free, "Kalo lives in Varostika."), Verdict::Wrong);
        assert_eq!(judge(&free, "I don't know."), Verdict::Refused);
        let unseen = item(Format::Free, "I don't know.", true);
        assert_eq!(judge(&unseen, "I don't know."), Verdict::Correct);
        assert_eq!(judge(&unseen, "Je ne sais pas."), Verdict::Correct);
        assert_eq!(
            judge(&unseen, "Kalo lives in Varost."),
            Verdict::Hallucinated
        );
        let one = item(Format::OneWord, "Varost", false);
        assert_eq!(judge(&one, "Varost."), Verdict::Correct);
        assert_eq!(judge(&one, "In Varost."), Verdict::FormatViolation);
        let json = item(Format::Json, "Varost", false);
        assert_eq!(
            judge(&json, r#"{"name": "Kalo Mirenti", "answer": "Varost"}"#),
            Verdict::Correct
        );
        assert_eq!(
            judge(&json, r#"{"answer": "Varost"}"#),
            Verdict::FormatViolation
        );
        assert_eq!(judge(&json, "Varost"), Verdict::FormatViolation);
        let list = item(Format::List3, "", false);
        assert_eq!(
            judge(
                &list,
                "- Born in 1984.\n- Lives in Varost.\n- Works as a teacher."
            ),
            Verdict::Correct
        );
        assert_eq!(
            judge(
                &list,
                "- Born in 1984.\n- Lives in Paris.\n- Works as a teacher."
            ),
            Verdict::Wrong
        );
        assert_eq!(judge(&list, "Born in 1984."), Verdict::FormatViolation);
        let mut arith = item(Format::Free, "42", false);
        arith.kind = "arithmetic".into();
        assert_eq!(judge(&arith, "6 times 7 is 42."), Verdict::Correct);
        assert_eq!(judge(&arith, "41"), Verdict::Wrong);
    }
}
