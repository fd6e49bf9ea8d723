//! Audience expressions over segment tags: `"At Risk" AND "High Value" AND NOT channel_miniapp`.
//!
//! Grammar (NOT binds tightest, then AND, then OR; keywords in any case):
//!
//! ```text
//! or   := and (OR and)*
//! and  := not (AND not)*
//! not  := NOT not | atom
//! atom := "tag" | 'tag' | bare_tag | ( or )
//! ```
//! A bare tag is letters, digits, `_` and `-`; quote any other tag.

use std::borrow::Cow;

use roaring::RoaringBitmap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Tag(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Tag(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((i, Token::Open));
                i += 1;
            }
            ')' => {
                out.push((i, Token::Close));
                i += 1;
            }
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| format!("unclosed quote at character {}", i + 1))?;
                out.push((i, Token::Tag(chars[i + 1..i + 1 + end].iter().collect())));
                i += end + 2;
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push((
                    start,
                    match word.to_ascii_uppercase().as_str() {
                        "AND" => Token::And,
                        "OR" => Token::Or,
                        "NOT" => Token::Not,
                        _ => Token::Tag(word),
                    },
                ));
            }
            other => return Err(format!("unexpected {other:?} at character {}", i + 1)),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|t| &t.1)
    }

    fn where_(&self) -> String {
        match self.tokens.get(self.at) {
            Some((pos, _)) => format!("at character {}", pos + 1),
            None => "at the end".into(),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.peek().cloned() {
            Some(Token::Tag(tag)) => {
                self.at += 1;
                Ok(Expr::Tag(tag))
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(format!("expected ')' {}", self.where_()));
                }
                self.at += 1;
                Ok(inner)
            }
            _ => Err(format!("expected a segment tag, NOT or '(' {}", self.where_())),
        }
    }
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut parser = Parser { tokens: tokens(text)?, at: 0 };
        let expr = parser.or()?;
        if parser.at < parser.tokens.len() {
            return Err(format!("unexpected text {}", parser.where_()));
        }
        Ok(expr)
    }

    /// Every tag the expression names.
    pub fn tags(&self) -> Vec<&str> {
        match self {
            Expr::Tag(t) => vec![t.as_str()],
            Expr::Not(e) => e.tags(),
            Expr::And(a, b) | Expr::Or(a, b) => [a.tags(), b.tags()].concat(),
        }
    }

    /// Evaluate on bitmaps; `NOT x` is everyone in `universe` but x. Segments are borrowed,
    /// never copied: only the results of operations are new bitmaps.
    pub fn evaluate<'a>(
        &self,
        bitmap_of: &impl Fn(&str) -> Option<&'a RoaringBitmap>,
        universe: &RoaringBitmap,
    ) -> Result<Cow<'a, RoaringBitmap>, String> {
        Ok(match self {
            Expr::Tag(t) => Cow::Borrowed(bitmap_of(t).ok_or_else(|| format!("no segment {t:?}"))?),
            Expr::Not(e) => Cow::Owned(universe - e.evaluate(bitmap_of, universe)?.as_ref()),
            // `x AND NOT y` is a difference: no need to build everyone-but-y first.
            Expr::And(x, not_y) | Expr::And(not_y, x)
                if matches!(**not_y, Expr::Not(_)) && !matches!(**x, Expr::Not(_)) =>
            {
                let Expr::Not(y) = &**not_y else { unreachable!("matched above") };
                Cow::Owned(x.evaluate(bitmap_of, universe)?.as_ref() - y.evaluate(bitmap_of, universe)?.as_ref())
            }
            Expr::And(a, b) => {
                Cow::Owned(a.evaluate(bitmap_of, universe)?.as_ref() & b.evaluate(bitmap_of, universe)?.as_ref())
            }
            Expr::Or(a, b) => {
                Cow::Owned(a.evaluate(bitmap_of, universe)?.as_ref() | b.evaluate(bitmap_of, universe)?.as_ref())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> Box<Expr> {
        Box::new(Expr::Tag(t.into()))
    }

    #[test]
    fn precedence_not_and_or() {
        let e = Expr::parse(r#""At Risk" AND 'High Value' or not channel_miniapp"#).unwrap();
        assert_eq!(
            e,
            Expr::Or(
                Box::new(Expr::And(tag("At Risk"), tag("High Value"))),
                Box::new(Expr::Not(tag("channel_miniapp")))
            )
        );
        let e = Expr::parse("a AND (b OR c)").unwrap();
        assert_eq!(e, Expr::And(tag("a"), Box::new(Expr::Or(tag("b"), tag("c")))));
    }

    #[test]
    fn errors_say_where() {
        assert!(Expr::parse("a AND").unwrap_err().contains("at the end"));
        assert!(Expr::parse("(a OR b").unwrap_err().contains("expected ')'"));
        assert!(Expr::parse("a b").unwrap_err().contains("character 3"));
        assert!(Expr::parse("\"a").unwrap_err().contains("unclosed quote"));
    }

    #[test]
    fn evaluates_on_bitmaps() {
        let a: RoaringBitmap = [1u32, 2, 3].into_iter().collect();
        let b: RoaringBitmap = [2u32, 3, 4].into_iter().collect();
        let sets = |t: &str| match t {
            "a" => Some(&a),
            "b" => Some(&b),
            _ => None,
        };
        let universe: RoaringBitmap = (1u32..=5).collect();
        let eval = |s: &str| Expr::parse(s).unwrap().evaluate(&sets, &universe).map(|b| b.iter().collect::<Vec<_>>());
        assert_eq!(eval("a AND NOT b").unwrap(), [1]);
        assert_eq!(eval("NOT b AND a").unwrap(), [1]);
        assert_eq!(eval("NOT a AND NOT b").unwrap(), [5]);
        assert_eq!(eval("NOT (a OR b)").unwrap(), [5]);
        assert!(eval("a AND zzz").unwrap_err().contains("zzz"));
    }
}
