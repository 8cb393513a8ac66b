//! The pipeline expression language: small, JSON-native, deterministic.
//!
//! Used by `filter` (`when`), `map` (`set`), `route` (`when`), `dedupe` (`key`) and `window`
//! (`key`, `time`, aggregate inputs). An expression is parsed and checked once, when the
//! pipeline is built, into a tree that is then evaluated against each event.
//!
//! ## Why our own
//! CEL (`cel-interpreter`), jaq (jq) and VRL were considered. CEL's Rust crates convert every
//! value into their own reference-counted types; jq's generator semantics (every expression is
//! a stream of outputs) is a poor fit for "is this record in or out"; VRL brings ~200 crates. The
//! operations pipelines need are few (paths, comparisons, arithmetic, boolean logic, a dozen
//! functions), and evaluating them straight on `serde_json::Value` without copying is what keeps
//! a filter cheap. The syntax follows what users of CEL, SQL and JavaScript expect.
//!
//! ## Reference (documented for users in docs/pipelines.md)
//! * Paths: `hr`, `patient.id`, `code.coding[0].code`, `tags[-1]` (from the end). A missing
//!   field is `null`, never an error.
//! * Literals: `42`, `-1.5`, `"text"` or `'text'` (escapes `\" \' \\ \n \t`), `true`, `false`,
//!   `null`, lists `[1, 2]`.
//! * Operators, loosest first: `||` `or`, `&&` `and`, `!` `not`, `== != < <= > >=`, `in`,
//!   `+ -`, `* / %`, unary `-`. `+` also joins strings. `&&`/`||` short-circuit.
//! * Comparison: numbers with numbers (integers and decimals compare by value), strings with
//!   strings (byte order); `==` between other kinds is `false` unless both are equal JSON.
//!   An ordering comparison of mismatched kinds (or with `null`) is `false`.
//! * Truth: only `true` is true in a condition; anything else (including `null`) is false.
//! * Errors (the event goes to the dead-letter topic with the reason): arithmetic on a
//!   non-number, integer overflow, division by zero, a function given the wrong kinds.
//! * Functions: `exists(x)`, `coalesce(a, b, …)`, `if(cond, a, b)`, `len(x)`, `lower(s)`,
//!   `upper(s)`, `trim(s)`, `contains(s_or_list, x)`, `starts_with(s, p)`, `ends_with(s, p)`,
//!   `split(s, sep)`, `substr(s, start[, len])`, `int(x)`, `float(x)`, `string(x)`,
//!   `abs(x)`, `floor(x)`, `ceil(x)`, `round(x[, digits])`, `min(a, b, …)`, `max(a, b, …)`,
//!   `time_ms(s)` (an RFC 3339 / FHIR dateTime with a time → epoch milliseconds).
//! * Record metadata: `key()`, `timestamp()` (ms), `topic()`, `partition()`, `offset()`,
//!   `header("name")` (UTF-8, or `null`).

use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// An expression that failed to parse or check, with the byte position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position} in `{source_text}`")]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Byte offset into the source.
    pub position: usize,
    /// The expression as written.
    pub source_text: String,
}

/// A runtime error of one evaluation (the event is dead-lettered with this text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// The record metadata an expression can read besides the value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta<'a> {
    /// Record key, if any.
    pub key: Option<&'a [u8]>,
    /// Record timestamp (ms).
    pub timestamp_ms: i64,
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: u32,
    /// Source offset.
    pub offset: u64,
    /// Record headers.
    pub headers: &'a [(String, bytes::Bytes)],
}

/// A value during evaluation: scalars by value, JSON containers borrowed from the event.
#[derive(Clone, Debug)]
pub enum Val<'a> {
    /// `null` (also a missing field).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A decimal.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array or object (borrowed or built).
    Json(Cow<'a, Value>),
}

impl<'a> Val<'a> {
    fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => number_val(n),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            _ => Val::Json(Cow::Borrowed(v)),
        }
    }

    /// Converts to an owned JSON value (non-finite decimals become `null`).
    pub fn into_json(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => Value::Number(i.into()),
            Val::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.into_owned()),
            Val::Json(v) => v.into_owned(),
        }
    }

    /// `true` only for the boolean `true`.
    pub fn is_true(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    /// The value as a decimal, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "boolean",
            Val::Int(_) | Val::Float(_) => "number",
            Val::Str(_) => "string",
            Val::Json(v) if v.is_array() => "list",
            Val::Json(_) => "object",
        }
    }

    /// A text form for keys and `string()`: strings as they are, everything else as JSON.
    pub fn to_key_string(&self) -> String {
        match self {
            Val::Str(s) => s.to_string(),
            other => other.clone().into_json().to_string(),
        }
    }
}

fn number_val<'a>(n: &Number) -> Val<'a> {
    if let Some(i) = n.as_i64() {
        Val::Int(i)
    } else {
        Val::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Dynamic(Box<Node>),
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Lit(Value),
    Path(Vec<Step>),
    List(Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    /// A postfix path applied to a computed value (`split(s, ",")[0]`).
    Sub(Box<Node>, Vec<Step>),
}

macro_rules! funcs {
    ($($name:ident = $text:literal ($min:expr, $max:expr)),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Func { $($name),* }
        impl Func {
            fn lookup(s: &str) -> Option<Func> {
                match s { $($text => Some(Func::$name),)* _ => None }
            }
            fn name(self) -> &'static str {
                match self { $(Func::$name => $text),* }
            }
            fn arity(self) -> (usize, usize) {
                match self { $(Func::$name => ($min, $max)),* }
            }
        }
    };
}

funcs! {
    Exists = "exists"(1, 1),
    Coalesce = "coalesce"(1, usize::MAX),
    If = "if"(3, 3),
    Len = "len"(1, 1),
    Lower = "lower"(1, 1),
    Upper = "upper"(1, 1),
    Trim = "trim"(1, 1),
    Contains = "contains"(2, 2),
    StartsWith = "starts_with"(2, 2),
    EndsWith = "ends_with"(2, 2),
    Split = "split"(2, 2),
    Substr = "substr"(2, 3),
    Int = "int"(1, 1),
    Float = "float"(1, 1),
    String = "string"(1, 1),
    Abs = "abs"(1, 1),
    Floor = "floor"(1, 1),
    Ceil = "ceil"(1, 1),
    Round = "round"(1, 2),
    Min = "min"(1, usize::MAX),
    Max = "max"(1, usize::MAX),
    TimeMs = "time_ms"(1, 1),
    Key = "key"(0, 0),
    Timestamp = "timestamp"(0, 0),
    Topic = "topic"(0, 0),
    Partition = "partition"(0, 0),
    Offset = "offset"(0, 0),
    Header = "header"(1, 1),
}

/// A parsed, checked expression.
#[derive(Clone, PartialEq)]
pub struct Expr {
    root: Node,
    source: String,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({})", self.source)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Expr {
    /// Parses and checks an expression.
    pub fn parse(source: &str) -> Result<Expr, ParseError> {
        let mut p = Parser {
            src: source,
            pos: 0,
        };
        let root = p.expr(0)?;
        p.skip_ws();
        if p.pos < source.len() {
            return Err(p.error("unexpected text after the expression"));
        }
        Ok(Expr {
            root,
            source: source.to_string(),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// If the expression is a plain path (`a.b[0]`), the path's first field: lets operators
    /// know which top-level fields they read.
    pub fn root_field(&self) -> Option<&str> {
        match &self.root {
            Node::Path(steps) => match steps.first() {
                Some(Step::Field(f)) => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// If the expression is exactly one top-level field (`hr`, not `vitals.hr`): what a step
    /// can read with [`crate::fields::FieldSet`] instead of decoding the whole record.
    pub fn single_field(&self) -> Option<&str> {
        match &self.root {
            Node::Path(steps) => match steps.as_slice() {
                [Step::Field(f)] => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// Evaluates against a value and its record metadata.
    pub fn eval<'a>(&self, value: &'a Value, meta: &Meta<'a>) -> Result<Val<'a>, EvalError> {
        eval(&self.root, value, meta)
    }

    /// Evaluates as a condition: only `true` passes.
    pub fn test(&self, value: &Value, meta: &Meta<'_>) -> Result<bool, EvalError> {
        Ok(self.eval(value, meta)?.is_true())
    }
}

impl serde::Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> serde::Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Expr, D::Error> {
        let s = String::deserialize(d)?;
        Expr::parse(&s).map_err(serde::de::Error::custom)
    }
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
}

/// Binding power of infix operators (higher binds tighter).
fn infix(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::In => 4,
        BinOp::Add | BinOp::Sub => 5,
        BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
    }
}

const MAX_DEPTH: usize = 64;

impl<'s> Parser<'s> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            position: self.pos,
            source_text: self.src.to_string(),
        }
    }

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{token}`")))
        }
    }

    /// A keyword operator (`and`, `or`, `not`, `in`) not followed by an identifier character.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with(word)
            && !rest[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn peek_op(&mut self) -> Option<(BinOp, usize)> {
        self.skip_ws();
        let r = self.rest();
        let sym = [
            ("||", BinOp::Or),
            ("&&", BinOp::And),
            ("==", BinOp::Eq),
            ("!=", BinOp::Ne),
            ("<=", BinOp::Le),
            (">=", BinOp::Ge),
            ("<", BinOp::Lt),
            (">", BinOp::Gt),
            ("+", BinOp::Add),
            ("-", BinOp::Sub),
            ("*", BinOp::Mul),
            ("/", BinOp::Div),
            ("%", BinOp::Rem),
        ];
        for (s, op) in sym {
            if r.starts_with(s) {
                return Some((op, s.len()));
            }
        }
        for (w, op) in [("or", BinOp::Or), ("and", BinOp::And), ("in", BinOp::In)] {
            if r.starts_with(w)
                && !r[w.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                return Some((op, w.len()));
            }
        }
        None
    }

    fn expr(&mut self, depth: usize) -> Result<Node, ParseError> {
        self.binary(0, depth)
    }

    fn binary(&mut self, min_bp: u8, depth: usize) -> Result<Node, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mut lhs = self.unary(depth + 1)?;
        while let Some((op, len)) = self.peek_op() {
            let bp = infix(op);
            if bp <= min_bp {
                break;
            }
            self.pos += len;
            // Comparisons do not chain: `a < b < c` is an error rather than a surprise.
            let rhs = self.binary(bp, depth + 1)?;
            if bp == 4
                && let Some((next, _)) = self.peek_op()
                && infix(next) == 4
            {
                return Err(self.error(format!(
                    "comparisons do not chain; use `&&` (found `{}` after `{}`)",
                    next.symbol(),
                    op.symbol()
                )));
            }
            lhs = Node::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<Node, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.skip_ws();
        if self.rest().starts_with("!=") {
            return Err(self.error("expected a value"));
        }
        if self.eat("!") || self.eat_word("not") {
            // `!` binds looser than comparisons: `!a == b` is `!(a == b)`.
            return Ok(Node::Not(Box::new(self.binary(3, depth + 1)?)));
        }
        if self.eat("-") {
            let inner = self.unary(depth + 1)?;
            return Ok(match inner {
                Node::Lit(Value::Number(n)) => Node::Lit(negate(&n)),
                other => Node::Neg(Box::new(other)),
            });
        }
        let base = self.primary(depth)?;
        let steps = self.postfix(depth)?;
        Ok(match (base, steps.is_empty()) {
            (b, true) => b,
            (Node::Path(mut p), false) => {
                p.extend(steps);
                Node::Path(p)
            }
            (b, false) => Node::Sub(Box::new(b), steps),
        })
    }

    fn postfix(&mut self, depth: usize) -> Result<Vec<Step>, ParseError> {
        let mut steps = Vec::new();
        loop {
            if self.rest().starts_with('.') {
                self.pos += 1;
                let name = self
                    .ident()
                    .ok_or_else(|| self.error("expected a field name"))?;
                steps.push(Step::Field(name.to_string()));
            } else if self.rest().starts_with('[') {
                self.pos += 1;
                let inner = self.expr(depth + 1)?;
                self.expect("]")?;
                steps.push(match inner {
                    Node::Lit(Value::Number(n)) if n.as_i64().is_some() => {
                        Step::Index(n.as_i64().unwrap_or(0))
                    }
                    Node::Lit(Value::String(s)) => Step::Field(s),
                    other => Step::Dynamic(Box::new(other)),
                });
            } else {
                return Ok(steps);
            }
        }
    }

    fn ident(&mut self) -> Option<&'s str> {
        let r = self.rest();
        let mut chars = r.char_indices();
        match chars.next() {
            Some((_, c)) if c.is_alphabetic() || c == '_' || c == '$' => {}
            _ => return None,
        }
        let end = chars
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '$'))
            .map_or(r.len(), |(i, _)| i);
        self.pos += end;
        Some(&r[..end])
    }

    fn primary(&mut self, depth: usize) -> Result<Node, ParseError> {
        self.skip_ws();
        let r = self.rest();
        let Some(c) = r.chars().next() else {
            return Err(self.error("expected a value, found the end"));
        };
        if c == '(' {
            self.pos += 1;
            let inner = self.expr(depth + 1)?;
            self.expect(")")?;
            return Ok(inner);
        }
        if c == '[' {
            self.pos += 1;
            let items = self.args("]", depth)?;
            if items.iter().all(|n| matches!(n, Node::Lit(_))) {
                return Ok(Node::Lit(Value::Array(
                    items
                        .into_iter()
                        .map(|n| match n {
                            Node::Lit(v) => v,
                            _ => Value::Null,
                        })
                        .collect(),
                )));
            }
            return Ok(Node::List(items));
        }
        if c == '"' || c == '\'' {
            return self.string(c).map(|s| Node::Lit(Value::String(s)));
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        let start = self.pos;
        let Some(name) = self.ident() else {
            return Err(self.error(format!("unexpected `{c}`")));
        };
        match name {
            "true" => return Ok(Node::Lit(Value::Bool(true))),
            "false" => return Ok(Node::Lit(Value::Bool(false))),
            "null" => return Ok(Node::Lit(Value::Null)),
            _ => {}
        }
        if self.rest().trim_start().starts_with('(') {
            let Some(f) = Func::lookup(name) else {
                self.pos = start;
                return Err(self.error(format!("unknown function `{name}`")));
            };
            self.eat("(");
            let args = self.args(")", depth)?;
            let (min, max) = f.arity();
            if args.len() < min || args.len() > max {
                self.pos = start;
                let want = if min == max {
                    format!("{min}")
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} to {max}")
                };
                return Err(self.error(format!(
                    "`{}` takes {want} argument(s), got {}",
                    f.name(),
                    args.len()
                )));
            }
            return Ok(Node::Call(f, args));
        }
        Ok(Node::Path(vec![Step::Field(name.to_string())]))
    }

    fn args(&mut self, close: &str, depth: usize) -> Result<Vec<Node>, ParseError> {
        let mut items = Vec::new();
        if self.eat(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr(depth + 1)?);
            if self.eat(close) {
                return Ok(items);
            }
            self.expect(",")?;
        }
    }

    fn string(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c == '\\' {
                let Some((_, e)) = chars.next() else { break };
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '\\' | '"' | '\'' => e,
                    other => {
                        self.pos += i;
                        return Err(self.error(format!("unknown escape `\\{other}`")));
                    }
                });
            } else {
                out.push(c);
            }
        }
        self.pos = start;
        Err(self.error("string is not closed"))
    }

    fn number(&mut self) -> Result<Node, ParseError> {
        let r = self.rest();
        let end = r
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_digit()
                    || c == '.'
                    || c == 'e'
                    || c == 'E'
                    || ((c == '-' || c == '+') && i > 0 && matches!(&r[i - 1..i], "e" | "E")))
            })
            .map_or(r.len(), |(i, _)| i);
        let text = &r[..end];
        let v = if let Ok(i) = text.parse::<i64>() {
            Value::Number(i.into())
        } else {
            match text.parse::<f64>().ok().and_then(Number::from_f64) {
                Some(n) => Value::Number(n),
                None => return Err(self.error(format!("`{text}` is not a number"))),
            }
        };
        self.pos += end;
        Ok(Node::Lit(v))
    }
}

fn negate(n: &Number) -> Value {
    if let Some(i) = n.as_i64().and_then(i64::checked_neg) {
        Value::Number(i.into())
    } else {
        Number::from_f64(-n.as_f64().unwrap_or(0.0)).map_or(Value::Null, Value::Number)
    }
}

fn lookup<'a>(
    mut cur: &'a Value,
    steps: &[Step],
    env: (&'a Value, &Meta<'a>),
) -> Result<Val<'a>, EvalError> {
    for step in steps {
        let next = match step {
            Step::Field(f) => cur.get(f.as_str()),
            Step::Index(i) => index(cur, *i),
            Step::Dynamic(n) => match eval(n, env.0, env.1)? {
                Val::Int(i) => index(cur, i),
                Val::Str(s) => cur.get(s.as_ref()),
                other => {
                    return Err(EvalError(format!(
                        "an index must be a number or a string, not {}",
                        other.kind()
                    )));
                }
            },
        };
        match next {
            Some(v) => cur = v,
            None => return Ok(Val::Null),
        }
    }
    Ok(Val::from_json(cur))
}

fn index(v: &Value, i: i64) -> Option<&Value> {
    let a = v.as_array()?;
    let idx = if i < 0 {
        a.len().checked_sub(i.unsigned_abs() as usize)?
    } else {
        i as usize
    };
    a.get(idx)
}

fn eval<'a>(node: &Node, value: &'a Value, meta: &Meta<'a>) -> Result<Val<'a>, EvalError> {
    Ok(match node {
        Node::Lit(v) => match v {
            Value::Array(_) | Value::Object(_) => Val::Json(Cow::Owned(v.clone())),
            other => Val::from_json(other).into_static(),
        },
        Node::Path(steps) => lookup(value, steps, (value, meta))?,
        Node::Sub(base, steps) => {
            let b = eval(base, value, meta)?.into_json();
            lookup(&b, steps, (value, meta))?.into_static()
        }
        Node::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                out.push(eval(n, value, meta)?.into_json());
            }
            Val::Json(Cow::Owned(Value::Array(out)))
        }
        Node::Not(n) => Val::Bool(!eval(n, value, meta)?.is_true()),
        Node::Neg(n) => match eval(n, value, meta)? {
            Val::Int(i) => Val::Int(
                i.checked_neg()
                    .ok_or_else(|| EvalError("integer overflow".into()))?,
            ),
            Val::Float(f) => Val::Float(-f),
            other => return Err(EvalError(format!("cannot negate a {}", other.kind()))),
        },
        Node::Bin(BinOp::And, a, b) => {
            Val::Bool(eval(a, value, meta)?.is_true() && eval(b, value, meta)?.is_true())
        }
        Node::Bin(BinOp::Or, a, b) => {
            Val::Bool(eval(a, value, meta)?.is_true() || eval(b, value, meta)?.is_true())
        }
        Node::Bin(op, a, b) => binary(*op, eval(a, value, meta)?, eval(b, value, meta)?)?,
        Node::Call(f, args) => call(*f, args, value, meta)?,
    })
}

impl Val<'_> {
    /// Detaches the value from the event it was read from.
    pub fn into_static(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Float(f) => Val::Float(f),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Json(v) => Val::Json(Cow::Owned(v.into_owned())),
        }
    }
}

/// Equality as the language defines it (numbers by value).
pub fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => a.as_f64() == b.as_f64(),
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Json(x), Val::Json(y)) => x == y,
        _ => false,
    }
}

fn order(a: &Val<'_>, b: &Val<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => {
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        _ => None,
    }
}

fn arith_error(op: BinOp, a: &Val<'_>, b: &Val<'_>) -> EvalError {
    EvalError(format!(
        "`{}` needs two numbers, got {} and {}",
        op.symbol(),
        a.kind(),
        b.kind()
    ))
}

fn binary<'a>(op: BinOp, a: Val<'a>, b: Val<'a>) -> Result<Val<'a>, EvalError> {
    use std::cmp::Ordering::*;
    let overflow = || EvalError("integer overflow".into());
    Ok(match op {
        BinOp::Eq => Val::Bool(equal(&a, &b)),
        BinOp::Ne => Val::Bool(!equal(&a, &b)),
        BinOp::Lt => Val::Bool(order(&a, &b) == Some(Less)),
        BinOp::Le => Val::Bool(matches!(order(&a, &b), Some(Less | Equal))),
        BinOp::Gt => Val::Bool(order(&a, &b) == Some(Greater)),
        BinOp::Ge => Val::Bool(matches!(order(&a, &b), Some(Greater | Equal))),
        BinOp::In => match &b {
            Val::Json(v) if v.is_array() => Val::Bool(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .any(|item| equal(&a, &Val::from_json(item))),
            ),
            Val::Json(v) => Val::Bool(match &a {
                Val::Str(k) => v.get(k.as_ref()).is_some(),
                _ => false,
            }),
            Val::Str(hay) => match &a {
                Val::Str(needle) => Val::Bool(hay.contains(needle.as_ref())),
                _ => {
                    return Err(EvalError(format!(
                        "`in` a string needs a string, got {}",
                        a.kind()
                    )));
                }
            },
            Val::Null => Val::Bool(false),
            other => {
                return Err(EvalError(format!(
                    "`in` needs a list, object or string on the right, got {}",
                    other.kind()
                )));
            }
        },
        BinOp::Add => match (&a, &b) {
            (Val::Int(x), Val::Int(y)) => Val::Int(x.checked_add(*y).ok_or_else(overflow)?),
            (Val::Str(x), Val::Str(y)) => Val::Str(Cow::Owned(format!("{x}{y}"))),
            _ => float_op(op, &a, &b, |x, y| x + y)?,
        },
        BinOp::Sub => match (&a, &b) {
            (Val::Int(x), Val::Int(y)) => Val::Int(x.checked_sub(*y).ok_or_else(overflow)?),
            _ => float_op(op, &a, &b, |x, y| x - y)?,
        },
        BinOp::Mul => match (&a, &b) {
            (Val::Int(x), Val::Int(y)) => Val::Int(x.checked_mul(*y).ok_or_else(overflow)?),
            _ => float_op(op, &a, &b, |x, y| x * y)?,
        },
        BinOp::Div | BinOp::Rem => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return Err(arith_error(op, &a, &b));
            };
            if y == 0.0 {
                return Err(EvalError("division by zero".into()));
            }
            match (&a, &b, op) {
                (Val::Int(i), Val::Int(j), BinOp::Rem) => {
                    Val::Int(i.checked_rem(*j).ok_or_else(overflow)?)
                }
                (Val::Int(i), Val::Int(j), BinOp::Div) if i % j == 0 => {
                    Val::Int(i.checked_div(*j).ok_or_else(overflow)?)
                }
                (_, _, BinOp::Rem) => Val::Float(x % y),
                _ => Val::Float(x / y),
            }
        }
        BinOp::And | BinOp::Or => unreachable_logic(),
    })
}

/// `&&` and `||` short-circuit in `eval` and never reach `binary`.
fn unreachable_logic<'a>() -> Val<'a> {
    Val::Null
}

fn float_op<'a>(
    op: BinOp,
    a: &Val<'_>,
    b: &Val<'_>,
    f: impl Fn(f64, f64) -> f64,
) -> Result<Val<'a>, EvalError> {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => Ok(Val::Float(f(x, y))),
        _ => Err(arith_error(op, a, b)),
    }
}

fn want_str<'a>(f: Func, v: &'a Val<'_>) -> Result<&'a str, EvalError> {
    match v {
        Val::Str(s) => Ok(s),
        other => Err(EvalError(format!(
            "`{}` needs a string, got {}",
            f.name(),
            other.kind()
        ))),
    }
}

fn want_num(f: Func, v: &Val<'_>) -> Result<f64, EvalError> {
    v.as_f64()
        .ok_or_else(|| EvalError(format!("`{}` needs a number, got {}", f.name(), v.kind())))
}

fn owned(s: String) -> Val<'static> {
    Val::Str(Cow::Owned(s))
}

fn float_to_val(x: f64) -> Val<'static> {
    if x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 {
        Val::Int(x as i64)
    } else {
        Val::Float(x)
    }
}

fn call<'a>(
    f: Func,
    args: &[Node],
    value: &'a Value,
    meta: &Meta<'a>,
) -> Result<Val<'a>, EvalError> {
    let arg = |i: usize| eval(&args[i], value, meta);
    Ok(match f {
        Func::Exists => Val::Bool(!matches!(arg(0)?, Val::Null)),
        Func::Coalesce => {
            for n in args {
                let v = eval(n, value, meta)?;
                if !matches!(v, Val::Null) {
                    return Ok(v);
                }
            }
            Val::Null
        }
        Func::If => {
            if arg(0)?.is_true() {
                arg(1)?
            } else {
                arg(2)?
            }
        }
        Func::Len => match arg(0)? {
            Val::Str(s) => Val::Int(s.chars().count() as i64),
            Val::Json(v) => Val::Int(match v.as_ref() {
                Value::Array(a) => a.len() as i64,
                Value::Object(o) => o.len() as i64,
                _ => 0,
            }),
            Val::Null => Val::Int(0),
            other => {
                return Err(EvalError(format!(
                    "`len` needs a string, list or object, got {}",
                    other.kind()
                )));
            }
        },
        Func::Lower => owned(want_str(f, &arg(0)?)?.to_lowercase()),
        Func::Upper => owned(want_str(f, &arg(0)?)?.to_uppercase()),
        Func::Trim => owned(want_str(f, &arg(0)?)?.trim().to_string()),
        Func::Contains => binary(BinOp::In, arg(1)?, arg(0)?)?,
        Func::StartsWith => {
            let (s, p) = (arg(0)?, arg(1)?);
            Val::Bool(want_str(f, &s)?.starts_with(want_str(f, &p)?))
        }
        Func::EndsWith => {
            let (s, p) = (arg(0)?, arg(1)?);
            Val::Bool(want_str(f, &s)?.ends_with(want_str(f, &p)?))
        }
        Func::Split => {
            let (s, sep) = (arg(0)?, arg(1)?);
            let sep = want_str(f, &sep)?;
            if sep.is_empty() {
                return Err(EvalError("`split` needs a non-empty separator".into()));
            }
            Val::Json(Cow::Owned(Value::Array(
                want_str(f, &s)?
                    .split(sep)
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )))
        }
        Func::Substr => {
            let s = arg(0)?;
            let s = want_str(f, &s)?;
            let start = want_num(f, &arg(1)?)?.max(0.0) as usize;
            let len = if args.len() == 3 {
                want_num(f, &arg(2)?)?.max(0.0) as usize
            } else {
                usize::MAX
            };
            owned(s.chars().skip(start).take(len).collect())
        }
        Func::Int => match arg(0)? {
            Val::Int(i) => Val::Int(i),
            Val::Float(x) if x.is_finite() && x.abs() < 9.2e18 => Val::Int(x.trunc() as i64),
            Val::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Val::Int(i),
                Err(_) => match s.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x.abs() < 9.2e18 => Val::Int(x.trunc() as i64),
                    _ => return Err(EvalError(format!("`int`: {s:?} is not a number"))),
                },
            },
            Val::Bool(b) => Val::Int(i64::from(b)),
            Val::Null => Val::Null,
            other => {
                return Err(EvalError(format!(
                    "`int` cannot convert a {}",
                    other.kind()
                )));
            }
        },
        Func::Float => match arg(0)? {
            Val::Str(s) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Val::Float(x),
                _ => return Err(EvalError(format!("`float`: {s:?} is not a number"))),
            },
            Val::Null => Val::Null,
            v => Val::Float(want_num(f, &v)?),
        },
        Func::String => match arg(0)? {
            Val::Null => Val::Null,
            v => owned(v.to_key_string()),
        },
        Func::Abs => match arg(0)? {
            Val::Int(i) => Val::Int(
                i.checked_abs()
                    .ok_or_else(|| EvalError("integer overflow".into()))?,
            ),
            v => Val::Float(want_num(f, &v)?.abs()),
        },
        Func::Floor => float_to_val(want_num(f, &arg(0)?)?.floor()),
        Func::Ceil => float_to_val(want_num(f, &arg(0)?)?.ceil()),
        Func::Round => {
            let x = want_num(f, &arg(0)?)?;
            if args.len() == 2 {
                let d = want_num(f, &arg(1)?)?.clamp(0.0, 15.0) as i32;
                let m = 10f64.powi(d);
                Val::Float((x * m).round() / m)
            } else {
                float_to_val(x.round())
            }
        }
        Func::Min | Func::Max => {
            let mut best: Option<Val<'a>> = None;
            for n in args {
                let v = eval(n, value, meta)?;
                if matches!(v, Val::Null) {
                    continue;
                }
                want_num(f, &v)?;
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let o = order(&v, b);
                        if f == Func::Min {
                            o == Some(std::cmp::Ordering::Less)
                        } else {
                            o == Some(std::cmp::Ordering::Greater)
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            best.unwrap_or(Val::Null)
        }
        Func::TimeMs => match arg(0)? {
            Val::Null => Val::Null,
            Val::Int(i) => Val::Int(i),
            v => {
                let s = want_str(f, &v)?;
                match aorta_fhir::datetime::to_utc_nanos(s) {
                    Some(ns) => Val::Int((ns.div_euclid(1_000_000)) as i64),
                    None => {
                        return Err(EvalError(format!(
                            "`time_ms`: {s:?} is not a dateTime with a time (RFC 3339)"
                        )));
                    }
                }
            }
        },
        Func::Key => match meta.key {
            Some(k) => match std::str::from_utf8(k) {
                Ok(s) => Val::Str(Cow::Borrowed(s)),
                Err(_) => Val::Null,
            },
            None => Val::Null,
        },
        Func::Timestamp => Val::Int(meta.timestamp_ms),
        Func::Topic => Val::Str(Cow::Borrowed(meta.topic)),
        Func::Partition => Val::Int(i64::from(meta.partition)),
        Func::Offset => Val::Int(meta.offset as i64),
        Func::Header => {
            let name = arg(0)?;
            let name = want_str(f, &name)?;
            match meta.headers.iter().find(|(k, _)| k == name) {
                Some((_, v)) => match std::str::from_utf8(v) {
                    Ok(s) => Val::Str(Cow::Borrowed(s)),
                    Err(_) => Val::Null,
                },
                None => Val::Null,
            }
        }
    })
}

/// Sets `path` (dotted fields, e.g. `vitals.hr`) in an object value, creating objects on the way.
pub fn set_path(target: &mut Value, path: &str, v: Value) -> Result<(), EvalError> {
    let mut cur = target;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            if cur.is_null() {
                *cur = Value::Object(Map::new());
            } else {
                return Err(EvalError(format!(
                    "cannot set `{path}`: `{part}` is inside a value that is not an object"
                )));
            }
        }
        let Value::Object(obj) = cur else {
            return Err(EvalError(format!("cannot set `{path}`")));
        };
        if parts.peek().is_none() {
            obj.insert(part.to_string(), v);
            return Ok(());
        }
        cur = obj.entry(part.to_string()).or_insert(Value::Null);
    }
    Ok(())
}

/// Removes `path` (dotted fields) from an object value, if present.
pub fn remove_path(target: &mut Value, path: &str) {
    let mut cur = target;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(obj) = cur else { return };
        if i + 1 == parts.len() {
            obj.shift_remove(*part);
            return;
        }
        match obj.get_mut(*part) {
            Some(next) => cur = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(src: &str, v: &Value) -> Value {
        Expr::parse(src)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(v, &Meta::default())
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .into_json()
    }

    #[test]
    fn paths_literals_and_precedence() {
        let v = json!({"hr": 112, "temp": 38.4, "p": {"ids": ["a", "b"]}, "code": {"coding": [{"code": "8867-4"}]}});
        assert_eq!(ev("hr", &v), json!(112));
        assert_eq!(ev("p.ids[1]", &v), json!("b"));
        assert_eq!(ev("p.ids[-1]", &v), json!("b"));
        assert_eq!(ev("p.ids[5]", &v), Value::Null);
        assert_eq!(ev("code.coding[0].code == '8867-4'", &v), json!(true));
        assert_eq!(ev("missing.deeper", &v), Value::Null);
        assert_eq!(ev("1 + 2 * 3", &v), json!(7));
        assert_eq!(ev("(1 + 2) * 3", &v), json!(9));
        assert_eq!(ev("hr > 90 && temp > 38 || false", &v), json!(true));
        assert_eq!(ev("!hr > 200", &v), json!(true));
        assert_eq!(ev("not (hr > 100)", &v), json!(false));
        assert_eq!(ev("7 / 2", &v), json!(3.5));
        assert_eq!(ev("8 / 2", &v), json!(4));
        assert_eq!(ev("-hr", &v), json!(-112));
        assert_eq!(ev("'a' + \"b\"", &v), json!("ab"));
        assert_eq!(ev("hr in [100, 112]", &v), json!(true));
        assert_eq!(ev("'p' in p", &v), json!(false));
        assert_eq!(ev("1 == 1.0", &v), json!(true));
        assert_eq!(ev("p.ids[hr - 111]", &v), json!("b"));
        assert_eq!(ev("split('a,b', ',')[1]", &v), json!("b"));
        assert_eq!(ev("[hr, 1]", &v), json!([112, 1]));
    }

    #[test]
    fn null_is_never_true_and_never_orders() {
        let v = json!({});
        assert_eq!(ev("x > 1", &v), json!(false));
        assert_eq!(ev("x < 1", &v), json!(false));
        assert_eq!(ev("x == null", &v), json!(true));
        assert_eq!(ev("exists(x)", &v), json!(false));
        assert_eq!(ev("coalesce(x, 'dflt')", &v), json!("dflt"));
        assert_eq!(ev("'1' == 1", &v), json!(false));
    }

    #[test]
    fn functions() {
        let v = json!({"s": "  Hello ", "n": -2.5, "t": "2024-03-01T10:00:00+01:00"});
        assert_eq!(ev("trim(s)", &v), json!("Hello"));
        assert_eq!(ev("lower(trim(s))", &v), json!("hello"));
        assert_eq!(ev("len(trim(s))", &v), json!(5));
        assert_eq!(ev("abs(n)", &v), json!(2.5));
        assert_eq!(ev("floor(n)", &v), json!(-3));
        assert_eq!(ev("round(2.345, 2)", &v), json!(2.35));
        assert_eq!(ev("int('42')", &v), json!(42));
        assert_eq!(ev("max(1, n, 3)", &v), json!(3));
        assert_eq!(ev("min(1, n, 3)", &v), json!(-2.5));
        assert_eq!(ev("substr('abcdef', 2, 3)", &v), json!("cde"));
        assert_eq!(ev("if(n < 0, 'neg', 'pos')", &v), json!("neg"));
        assert_eq!(ev("time_ms(t)", &v), json!(1_709_283_600_000i64));
        assert_eq!(ev("contains('abc', 'b')", &v), json!(true));
        assert_eq!(ev("string(12)", &v), json!("12"));
    }

    #[test]
    fn metadata() {
        let headers = vec![("src".to_string(), bytes::Bytes::from_static(b"lab"))];
        let meta = Meta {
            key: Some(b"MRN1"),
            timestamp_ms: 5,
            topic: "t",
            partition: 2,
            offset: 9,
            headers: &headers,
        };
        let e = Expr::parse("key() + ':' + topic() + string(partition()) + header('src')").unwrap();
        assert_eq!(
            e.eval(&Value::Null, &meta).unwrap().into_json(),
            json!("MRN1:t2lab")
        );
        let e = Expr::parse("offset() + timestamp()").unwrap();
        assert_eq!(e.eval(&Value::Null, &meta).unwrap().into_json(), json!(14));
    }

    #[test]
    fn runtime_errors_are_named() {
        let v = json!({"s": "x"});
        let e = |src: &str| {
            Expr::parse(src)
                .unwrap()
                .eval(&v, &Meta::default())
                .unwrap_err()
                .to_string()
        };
        assert!(e("s * 2").contains("needs two numbers, got string and number"));
        assert!(e("1 / 0").contains("division by zero"));
        assert!(e("9223372036854775807 + 1").contains("overflow"));
        assert!(e("lower(1)").contains("`lower` needs a string"));
    }

    #[test]
    fn parse_errors_say_where() {
        let e = |src: &str| Expr::parse(src).unwrap_err();
        assert_eq!(e("hr >").position, 4);
        assert!(e("nope(1)").message.contains("unknown function `nope`"));
        assert!(e("len(1, 2)").message.contains("takes 1 argument"));
        assert!(e("'open").message.contains("not closed"));
        assert!(e("1 < 2 < 3").message.contains("do not chain"));
        assert!(e("hr hr").message.contains("unexpected text"));
        let deep = "(".repeat(200) + "1" + &")".repeat(200);
        assert!(e(&deep).message.contains("nested deeper"));
    }

    #[test]
    fn set_and_remove_paths() {
        let mut v = json!({"a": 1});
        set_path(&mut v, "b.c", json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        assert!(set_path(&mut v, "a.x", json!(3)).is_err());
        remove_path(&mut v, "b.c");
        assert_eq!(v, json!({"a": 1, "b": {}}));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            /// The parser never panics, whatever the text.
            #[test]
            fn arbitrary_text_never_panics(s in "\\PC{0,64}") {
                if let Ok(e) = Expr::parse(&s) {
                    let _ = e.eval(&json!({"a": 1, "b": [1, 2]}), &Meta::default());
                }
            }

            /// Integer arithmetic agrees with Rust's checked arithmetic.
            #[test]
            fn integer_arithmetic_matches_rust(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
                let v = json!({"a": a, "b": b});
                prop_assert_eq!(ev("a + b", &v), json!(a + b));
                prop_assert_eq!(ev("a - b * 3", &v), json!(a - b * 3));
                prop_assert_eq!(ev("a < b", &v), json!(a < b));
                prop_assert_eq!(ev("a == b || a != b", &v), json!(true));
                if b != 0 {
                    prop_assert_eq!(ev("a % b", &v), json!(a % b));
                }
            }
        }
    }
}
