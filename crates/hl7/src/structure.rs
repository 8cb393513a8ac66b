//! Message-structure grammars: which segments a message of a given structure (`ORU_R01`,
//! `ADT_A01`, …) may contain, in which order, which are required and which repeat.
//!
//! Grammars are written in the standard's abstract message syntax: `[X]` optional, `{X}`
//! repeating, `[{X}]` optional and repeating, `<A|B>` a choice; groups nest. Sources: HL7 v2.5.1
//! Chapter 2 (ACK), Chapter 3 (ADT, sections 3.3.1–3.3.60), Chapter 4 (ORM_O01, OML_O21,
//! OML_O33, RDE_O11), Chapter 4A (VXU_V04), Chapter 6 (DFT_P03, BAR_P01), Chapter 7 (ORU_R01,
//! OUL_R22), Chapter 9 (MDM_T01/T02) and Chapter 10 (SIU_S12); the structure for an event is
//! HL7 table 0354. Each grammar is the **union over versions 2.3–2.8**: segments a later
//! version added (SFT, UAC, PRT, ARV, TQ1/TQ2) are optional where that version put them, so a
//! conformant message of any of those versions passes.
//!
//! Matching is greedy and left to right (as HL7 receivers such as HAPI parse): a group is
//! entered when the current segment can start it. Z-segments (local extensions) are allowed
//! anywhere. Reported:
//! * a required segment that is missing, with where it was expected;
//! * a segment that is not part of the structure at all;
//! * the first segment that is out of place (the segments after it are not checked).
//!
//! Not modelled: OML_O21's prior-result group (its PID/PV1 are reported as out of place) and
//! structures not in [`STRUCTURES`], for which [`check`] returns `None`.

use crate::message::Message;
use crate::validate::Problem;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Grammars by structure id.
pub const STRUCTURES: &[(&str, &str)] = &[
    ("ACK", "MSH [{SFT}] [UAC] MSA [{ERR}]"),
    (
        "ADT_A01",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{ARV}] [{ROL}] [{NK1}] PV1 [PV2] [{ARV}] [{ROL}] [{DB1}] \
         [{OBX [{PRT}]}] [{AL1}] [{DG1}] [DRG] [{PR1 [{ROL}]}] [{GT1}] \
         [{IN1 [IN2] [{IN3}] [{ROL}]}] [ACC] [UB1] [UB2] [PDA]",
    ),
    (
        "ADT_A02",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{ARV}] [{ROL}] PV1 [PV2] [{ARV}] [{ROL}] [{DB1}] [{OBX}] \
         [PDA]",
    ),
    (
        "ADT_A03",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{ARV}] [{ROL}] [{NK1}] PV1 [PV2] [{ARV}] [{ROL}] [{DB1}] [{AL1}] \
         [{DG1}] [DRG] [{PR1 [{ROL}]}] [{OBX}] [{GT1}] [{IN1 [IN2] [{IN3}] [{ROL}]}] [ACC] [PDA]",
    ),
    (
        "ADT_A05",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{ARV}] [{ROL}] [{NK1}] PV1 [PV2] [{ARV}] [{ROL}] [{DB1}] \
         [{OBX [{PRT}]}] [{AL1}] [{DG1}] [DRG] [{PR1 [{ROL}]}] [{GT1}] \
         [{IN1 [IN2] [{IN3}] [{ROL}]}] [ACC] [UB1] [UB2]",
    ),
    (
        "ADT_A06",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{ARV}] [{ROL}] [MRG] [{NK1}] PV1 [PV2] [{ARV}] [{ROL}] [{DB1}] [{OBX}] \
         [{AL1}] [{DG1}] [DRG] [{PR1 [{ROL}]}] [{GT1}] [{IN1 [IN2] [{IN3}] [{ROL}]}] [ACC] \
         [UB1] [UB2]",
    ),
    (
        "ADT_A09",
        "MSH [{SFT}] [UAC] EVN PID [PD1] PV1 [PV2] [{DB1}] [{OBX}] [{DG1}]",
    ),
    (
        "ADT_A12",
        "MSH [{SFT}] [UAC] EVN PID [PD1] PV1 [PV2] [{DB1}] [{OBX}] [DG1]",
    ),
    (
        "ADT_A15",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{ARV}] [{ROL}] PV1 [PV2] [{ARV}] [{ROL}] [{DB1}] [{OBX}] \
         [{DG1}]",
    ),
    (
        "ADT_A17",
        "MSH [{SFT}] [UAC] EVN PID [PD1] PV1 [PV2] [{DB1}] [{OBX}] PID [PD1] PV1 [PV2] [{DB1}] \
         [{OBX}]",
    ),
    (
        "ADT_A21",
        "MSH [{SFT}] [UAC] EVN PID [PD1] PV1 [PV2] [{DB1}] [{OBX}]",
    ),
    ("ADT_A30", "MSH [{SFT}] [UAC] EVN PID [PD1] MRG"),
    (
        "ADT_A38",
        "MSH [{SFT}] [UAC] EVN PID [PD1] PV1 [PV2] [{DB1}] [{OBX}] [{DG1}] [DRG]",
    ),
    ("ADT_A39", "MSH [{SFT}] [UAC] EVN {PID [PD1] MRG [PV1]}"),
    ("ADT_A43", "MSH [{SFT}] [UAC] EVN {PID [PD1] MRG}"),
    ("ADT_A45", "MSH [{SFT}] [UAC] EVN PID [PD1] {MRG PV1}"),
    ("ADT_A50", "MSH [{SFT}] [UAC] EVN PID [PD1] MRG PV1"),
    ("ADT_A52", "MSH [{SFT}] [UAC] EVN PID [PD1] PV1 [PV2]"),
    (
        "ADT_A60",
        "MSH [{SFT}] [UAC] EVN PID [{ARV}] [PV1 [{ARV}] [PV2]] [{IAM [{NTE}]}]",
    ),
    (
        "BAR_P01",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{PRT}] [{ROL}] {[PV1 [PV2] [{PRT}] [{ROL}] [{DB1}] \
         [{OBX [{PRT}]}] [{AL1}] [{DG1}] [DRG] [{PR1 [{PRT}] [{ROL}]}] [{GT1}] [{NK1}] \
         [{IN1 [IN2] [{IN3}] [{ROL}]}] [ACC] [UB1] [UB2]]}",
    ),
    (
        "DFT_P03",
        "MSH [{SFT}] [UAC] EVN PID [PD1] [{PRT}] [{ROL}] [PV1] [PV2] [{PRT}] [{ROL}] [{DB1}] \
         [{ORC [{PRT}] [{TQ1 [{TQ2}]}] [OBR [{PRT}] [{NTE}]] [{OBX [{PRT}] [{NTE}]}]}] [{OBX}] \
         {FT1 [{NTE}] [{PRT}] [{PR1 [{PRT}] [{ROL}]}] [{ORC [{PRT}] [{TQ1 [{TQ2}]}] \
         [OBR [{PRT}] [{NTE}]] [{OBX [{PRT}] [{NTE}]}]}]} \
         [{DG1}] [DRG] [{GT1}] [{IN1 [IN2] [{IN3}] [{ROL}]}] [ACC]",
    ),
    (
        "MDM_T01",
        "MSH [{SFT}] [UAC] EVN PID PV1 [{ORC [{TQ1 [{TQ2}]}] OBR [{NTE}]}] TXA [{CON}]",
    ),
    (
        "MDM_T02",
        "MSH [{SFT}] [UAC] EVN PID PV1 [{ORC [{TQ1 [{TQ2}]}] OBR [{NTE}]}] TXA [{CON}] \
         {OBX [{NTE}]}",
    ),
    (
        "OML_O21",
        "MSH [{SFT}] [UAC] [{NTE}] [PID [PD1] [{PRT}] [{NTE}] [{NK1}] [{ARV}] [PV1 [PV2] [{PRT}]] \
         [{IN1 [IN2] [IN3]}] [GT1] [{AL1}]] {ORC [{PRT}] [{TQ1 [{TQ2}]}] [OBR [TCD] [{PRT}] \
         [{NTE}] [CTD] [{DG1}] [{OBX [TCD] [{PRT}] [{NTE}]}] [{SPM [{OBX}] [{SAC [{OBX}]}]}]] \
         [{FT1}] [{CTI}] [BLG]}",
    ),
    (
        "OML_O33",
        "MSH [{SFT}] [UAC] [{NTE}] [PID [PD1] [{PRT}] [{NTE}] [{NK1}] [{ARV}] [PV1 [PV2] [{PRT}]] \
         [{IN1 [IN2] [IN3]}] [GT1] [{AL1}]] {SPM [{OBX}] [{SAC}] {ORC [{PRT}] [{TQ1 [{TQ2}]}] \
         [OBR [{TCD}] [{PRT}] [{NTE}] [{DG1}] [{OBX [TCD] [{PRT}] [{NTE}]}]] [{FT1}] [{CTI}] \
         [BLG]}}",
    ),
    (
        "ORM_O01",
        "MSH [{SFT}] [UAC] [{NTE}] [PID [PD1] [{NTE}] [PV1 [PV2]] [{IN1 [IN2] [IN3]}] [GT1] \
         [{AL1}]] {ORC [{TQ1 [{TQ2}]}] [<OBR|RQD|RQ1|RXO|ODS|ODT> [{NTE}] [CTD] [{DG1}] \
         [{OBX [{NTE}]}]] [{FT1}] [{CTI}] [BLG]}",
    ),
    (
        "ORU_R01",
        "MSH [{SFT}] [UAC] {[PID [PD1] [{PRT}] [{NTE}] [{NK1}] [{ARV}] [PV1 [PV2] [{ARV}] [{PRT}]]] \
         {[ORC] OBR [{NTE}] [{PRT}] [{TQ1 [{TQ2}]}] [CTD] [{OBX [{PRT}] [{NTE}]}] [{FT1}] \
         [{CTI}] [{SPM [{OBX [{PRT}]}]}]}} [DSC]",
    ),
    (
        "OUL_R22",
        "MSH [{SFT}] [UAC] [NTE] [PID [PD1] [{PRT}] [{NTE}]] [PV1 [PV2] [{PRT}]] \
         {SPM [{OBX [{PRT}]}] [{SAC [INV]}] {OBR [ORC] [{NTE}] [{PRT}] [{TQ1 [{TQ2}]}] \
         [{OBX [TCD] [{SID}] [{NTE}] [{PRT}]}] [{CTI}]}} [DSC]",
    ),
    (
        "RDE_O11",
        "MSH [{SFT}] [UAC] [{NTE}] [PID [PD1] [{PRT}] [{NTE}] [PV1 [PV2] [{PRT}]] \
         [{IN1 [IN2] [IN3]}] [GT1] [{AL1}]] {ORC [{PRT}] [{TQ1 [{TQ2}]}] [RXO [{PRT}] [{NTE}] \
         {RXR} [{RXC [{NTE}]}]] RXE [{PRT}] [{NTE}] [{TQ1 [{TQ2}]}] {RXR} [{RXC}] [{CDO}] \
         [{OBX [{PRT}] [{NTE}]}] [{FT1}] [BLG] [{CTI}]}",
    ),
    (
        "SIU_S12",
        "MSH [{SFT}] [UAC] SCH [{TQ1}] [{NTE}] [{PID [PD1] [{PRT}] [PV1] [PV2] [{OBX}] [{DG1}]}] \
         {RGS [{AIS [{NTE}]}] [{AIG [{NTE}]}] [{AIL [{NTE}]}] [{AIP [{NTE}]}]}",
    ),
    (
        "VXU_V04",
        "MSH [{SFT}] [UAC] PID [PD1] [{NK1}] [{ARV}] [PV1 [PV2] [{ARV}]] [{GT1}] \
         [{IN1 [IN2] [IN3]}] [{OBX [{PRT}] [{NTE}]}] \
         [{[ORC] [{PRT}] [{TQ1 [{TQ2}]}] RXA [RXR] [{OBX [{PRT}] [{NTE}]}]}]",
    ),
];

/// HL7 table 0354: the structure of a message type and trigger event, for messages whose
/// MSH-9 has no third component.
pub fn structure_for(message_type: &str, event: &str) -> Option<&'static str> {
    let s = match (message_type, event) {
        ("ACK", _) => "ACK",
        ("ADT", "A01" | "A04" | "A08" | "A13") => "ADT_A01",
        ("ADT", "A02") => "ADT_A02",
        ("ADT", "A03") => "ADT_A03",
        ("ADT", "A05" | "A14" | "A28" | "A31") => "ADT_A05",
        ("ADT", "A06" | "A07") => "ADT_A06",
        ("ADT", "A09" | "A10" | "A11") => "ADT_A09",
        ("ADT", "A12") => "ADT_A12",
        ("ADT", "A15") => "ADT_A15",
        ("ADT", "A17") => "ADT_A17",
        ("ADT", "A21" | "A22" | "A23" | "A25" | "A26" | "A27" | "A29" | "A32" | "A33") => "ADT_A21",
        ("ADT", "A30" | "A34" | "A35" | "A36" | "A46" | "A47" | "A48" | "A49") => "ADT_A30",
        ("ADT", "A38") => "ADT_A38",
        ("ADT", "A39" | "A40" | "A41" | "A42") => "ADT_A39",
        ("ADT", "A43" | "A44") => "ADT_A43",
        ("ADT", "A45") => "ADT_A45",
        ("ADT", "A50" | "A51") => "ADT_A50",
        ("ADT", "A52" | "A53" | "A55") => "ADT_A52",
        ("ADT", "A60") => "ADT_A60",
        ("BAR", "P01" | "P05") => "BAR_P01",
        ("DFT", "P03") => "DFT_P03",
        ("MDM", "T01" | "T03" | "T05" | "T07" | "T09" | "T11") => "MDM_T01",
        ("MDM", "T02" | "T04" | "T06" | "T08" | "T10") => "MDM_T02",
        ("OML", "O21") => "OML_O21",
        ("OML", "O33") => "OML_O33",
        ("ORM", "O01") => "ORM_O01",
        ("ORU", "R01") => "ORU_R01",
        ("OUL", "R22") => "OUL_R22",
        ("RDE", "O11") => "RDE_O11",
        (
            "SIU",
            "S12" | "S13" | "S14" | "S15" | "S16" | "S17" | "S18" | "S19" | "S20" | "S21" | "S22"
            | "S23" | "S24" | "S26",
        ) => "SIU_S12",
        ("VXU", "V04") => "VXU_V04",
        _ => return None,
    };
    Some(s)
}

/// One grammar node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// One segment.
    Segment(String),
    /// Items in order.
    Seq(Vec<Node>),
    /// `[X]`.
    Optional(Box<Node>),
    /// `{X}`: one or more.
    Repeat(Box<Node>),
    /// `<A|B|…>`: exactly one of.
    Choice(Vec<Node>),
}

/// A grammar that does not parse (a bug in [`STRUCTURES`] or in a caller's own grammar).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("grammar {grammar:?}: {reason} at token {at}")]
pub struct GrammarError {
    /// The grammar text.
    pub grammar: String,
    /// What is wrong.
    pub reason: &'static str,
    /// Index of the token where it went wrong.
    pub at: usize,
}

impl Node {
    /// Parses the abstract message syntax (`MSH [{SFT}] {PID [PD1]} <A|B>`).
    pub fn parse(grammar: &str) -> Result<Node, GrammarError> {
        let spaced = grammar
            .replace('[', " [ ")
            .replace(']', " ] ")
            .replace('{', " { ")
            .replace('}', " } ")
            .replace('<', " < ")
            .replace('>', " > ")
            .replace('|', " | ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let fail = |reason, at| GrammarError {
            grammar: grammar.to_string(),
            reason,
            at,
        };
        let mut pos = 0;
        let node = seq(&tokens, &mut pos, &fail)?;
        if pos != tokens.len() {
            return Err(fail("unbalanced closing bracket", pos));
        }
        Ok(node)
    }

    fn nullable(&self) -> bool {
        match self {
            Node::Segment(_) => false,
            Node::Seq(items) => items.iter().all(Node::nullable),
            Node::Optional(_) => true,
            Node::Repeat(n) => n.nullable(),
            Node::Choice(items) => items.iter().any(Node::nullable),
        }
    }

    /// Whether a segment with this id can start this node.
    fn starts_with(&self, id: &[u8]) -> bool {
        match self {
            Node::Segment(s) => s.as_bytes() == id,
            Node::Seq(items) => {
                for n in items {
                    if n.starts_with(id) {
                        return true;
                    }
                    if !n.nullable() {
                        return false;
                    }
                }
                false
            }
            Node::Optional(n) | Node::Repeat(n) => n.starts_with(id),
            Node::Choice(items) => items.iter().any(|n| n.starts_with(id)),
        }
    }

    fn first_required(&self) -> String {
        match self {
            Node::Segment(s) => s.clone(),
            Node::Seq(items) => items
                .iter()
                .find(|n| !n.nullable())
                .map(Node::first_required)
                .unwrap_or_default(),
            Node::Optional(n) | Node::Repeat(n) => n.first_required(),
            Node::Choice(items) => items
                .iter()
                .map(Node::first_required)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    fn mentions(&self, id: &[u8]) -> bool {
        match self {
            Node::Segment(s) => s.as_bytes() == id,
            Node::Seq(items) | Node::Choice(items) => items.iter().any(|n| n.mentions(id)),
            Node::Optional(n) | Node::Repeat(n) => n.mentions(id),
        }
    }
}

type Fail<'f> = dyn Fn(&'static str, usize) -> GrammarError + 'f;

fn seq(tokens: &[&str], pos: &mut usize, fail: &Fail<'_>) -> Result<Node, GrammarError> {
    let mut items = Vec::new();
    while let Some(&t) = tokens.get(*pos) {
        match t {
            "]" | "}" | ">" | "|" => break,
            "[" | "{" => {
                *pos += 1;
                let inner = seq(tokens, pos, fail)?;
                let close = if t == "[" { "]" } else { "}" };
                if tokens.get(*pos) != Some(&close) {
                    return Err(fail("unclosed bracket", *pos));
                }
                *pos += 1;
                items.push(if t == "[" {
                    Node::Optional(Box::new(inner))
                } else {
                    Node::Repeat(Box::new(inner))
                });
            }
            "<" => {
                *pos += 1;
                let mut options = vec![seq(tokens, pos, fail)?];
                while tokens.get(*pos) == Some(&"|") {
                    *pos += 1;
                    options.push(seq(tokens, pos, fail)?);
                }
                if tokens.get(*pos) != Some(&">") {
                    return Err(fail("unclosed choice", *pos));
                }
                *pos += 1;
                items.push(Node::Choice(options));
            }
            id if id.len() == 3 && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                *pos += 1;
                items.push(Node::Segment(id.to_string()));
            }
            _ => return Err(fail("not a segment id or bracket", *pos)),
        }
    }
    if items.is_empty() {
        return Err(fail("empty group", *pos));
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Node::Seq(items)
    })
}

struct Matcher<'m, 'a> {
    ids: Vec<&'a [u8]>,
    msg: &'m Message<'a>,
    pos: usize,
    structure: &'m str,
    problems: Vec<Problem>,
}

impl Matcher<'_, '_> {
    /// Skips Z-segments (allowed anywhere) and returns the id at the current position.
    fn current(&mut self) -> Option<&[u8]> {
        while self
            .ids
            .get(self.pos)
            .is_some_and(|id| id.first() == Some(&b'Z'))
        {
            self.pos += 1;
        }
        self.ids.get(self.pos).copied()
    }

    fn run(&mut self, node: &Node) -> bool {
        match node {
            Node::Segment(s) => {
                if self.current() == Some(s.as_bytes()) {
                    self.pos += 1;
                    true
                } else {
                    false
                }
            }
            Node::Optional(n) => {
                if self.current().is_some_and(|id| n.starts_with(id)) {
                    self.run(n);
                }
                true
            }
            Node::Repeat(n) => {
                let mut any = false;
                while self.current().is_some_and(|id| n.starts_with(id)) {
                    let before = self.pos;
                    self.run(n);
                    any = true;
                    if self.pos == before {
                        break;
                    }
                }
                any || n.nullable()
            }
            Node::Choice(items) => {
                let id = self.current();
                match items
                    .iter()
                    .find(|n| id.is_some_and(|id| n.starts_with(id)))
                {
                    Some(n) => self.run(n),
                    None => items.iter().any(Node::nullable),
                }
            }
            Node::Seq(items) => {
                let start = self.pos;
                for n in items {
                    if !self.run(n) {
                        if self.pos == start {
                            // Nothing of this group was seen: the caller decides.
                            return false;
                        }
                        self.missing(n);
                    }
                }
                true
            }
        }
    }

    fn missing(&mut self, n: &Node) {
        let (location, span) = match self.msg.segment_at(self.pos) {
            Some(s) => (
                format!(
                    "segment {} ({})",
                    self.pos + 1,
                    String::from_utf8_lossy(s.id())
                ),
                s.span(),
            ),
            None => {
                let end = self.msg.raw().len();
                ("end of message".to_string(), end..end)
            }
        };
        self.problems.push(Problem {
            location,
            span,
            message: format!(
                "required segment {} of {} is missing here",
                n.first_required(),
                self.structure
            ),
        });
    }
}

/// The structure `msg` declares or implies: MSH-9.3 if given, otherwise table 0354 applied to
/// MSH-9.1 and MSH-9.2.
pub fn structure_of(msg: &Message<'_>) -> Option<String> {
    let t = msg.segment_at(0)?.field(9)?.repetition(1)?;
    let comp = |n| {
        t.component(n)
            .map(|c| String::from_utf8_lossy(c.raw()).trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
    };
    if let Some(s) = comp(3) {
        return Some(s);
    }
    let ty = comp(1)?;
    let ev = comp(2).unwrap_or_default();
    structure_for(&ty, &ev).map(str::to_string)
}

/// Checks `msg` against the grammar of its structure. `None` when there is no grammar for it
/// (the structure is then not checked); otherwise the structure and every problem found.
pub fn check(msg: &Message<'_>) -> Option<(String, Vec<Problem>)> {
    static GRAMMARS: OnceLock<HashMap<&'static str, Node>> = OnceLock::new();
    let grammars = GRAMMARS.get_or_init(|| {
        // Every built-in grammar parses (unit test `every_built_in_grammar_parses`).
        STRUCTURES
            .iter()
            .filter_map(|(s, g)| Node::parse(g).ok().map(|n| (*s, n)))
            .collect()
    });
    let structure = structure_of(msg)?;
    let root = grammars.get(structure.as_str())?;
    let problems = check_against(msg, &structure, root);
    Some((structure, problems))
}

/// Checks `msg` against `root` (named `structure` in the problems).
pub fn check_against(msg: &Message<'_>, structure: &str, root: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Segments the structure does not have at all are reported and stepped over like
    // Z-segments, so the rest of the message is still checked. Ids that are not segment ids
    // at all are the id check's to report (`validate`).
    let ids: Vec<&[u8]> = msg
        .segments()
        .map(|s| {
            let id = s.id();
            let valid = id.len() == 3 && id.iter().all(u8::is_ascii_alphanumeric);
            if id.first() == Some(&b'Z') || root.mentions(id) {
                return id;
            }
            if valid {
                let name = String::from_utf8_lossy(id);
                problems.push(Problem {
                    location: format!("segment {} ({name})", s.index() + 1),
                    span: s.span(),
                    message: format!("{name} is not a segment of {structure}"),
                });
            }
            SKIP
        })
        .collect();
    let mut m = Matcher {
        ids,
        msg,
        pos: 0,
        structure,
        problems,
    };
    if !m.run(root) {
        m.missing(root);
    }
    if let (Some(id), Some(seg)) = (m.current().map(<[u8]>::to_vec), msg.segment_at(m.pos)) {
        let name = String::from_utf8_lossy(&id).into_owned();
        let rest = m.ids.len() - m.pos - 1;
        m.problems.push(Problem {
            location: format!("segment {} ({name})", m.pos + 1),
            span: seg.span(),
            message: format!(
                "{name} is out of place for {structure}{}",
                if rest > 0 {
                    format!(" (the {rest} segment(s) after it were not checked)")
                } else {
                    String::new()
                }
            ),
        });
    }
    let mut problems = m.problems;
    problems.sort_by_key(|p| p.span.start);
    problems
}

/// Stands in for a segment the matcher steps over (it starts with Z, like local segments).
const SKIP: &[u8] = b"Z--";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn problems(raw: &str) -> Vec<String> {
        let m = parse(raw.as_bytes()).unwrap();
        check(&m)
            .expect("a grammar")
            .1
            .into_iter()
            .map(|p| format!("{}: {}", p.location, p.message))
            .collect()
    }

    #[test]
    fn every_built_in_grammar_parses() {
        for (name, g) in STRUCTURES {
            Node::parse(g).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(Node::parse("MSH [PID").is_err());
        assert!(Node::parse("MSH PID]").is_err());
        assert!(Node::parse("MSH <A|B").is_err());
        assert!(Node::parse("MSH pid!").is_err());
    }

    #[test]
    fn a_conformant_oru_passes() {
        let p = problems(
            "MSH|^~\\&|L|F|R|F|20260101||ORU^R01|1|P|2.5.1\rPID|1||9\rPV1|1|O\rORC|RE\rOBR|1\r\
             NTE|1\rOBX|1|NM\rNTE|1\rOBX|2|NM\rZXX|local\rOBR|2\rOBX|1|ST\rSPM|1\rOBX|1\r",
        );
        assert_eq!(p, Vec::<String>::new());
    }

    #[test]
    fn a_missing_required_segment_is_named_with_where_it_was_expected() {
        let p = problems("MSH|^~\\&|L|F|R|F|20260101||ADT^A01|1|P|2.5.1\rEVN|A01\rPID|1\rAL1|1\r");
        assert_eq!(
            p,
            vec!["segment 4 (AL1): required segment PV1 of ADT_A01 is missing here"]
        );
        let p = problems("MSH|^~\\&|L|F|R|F|20260101||ORU^R01|1|P|2.5.1\rPID|1\r");
        assert_eq!(
            p,
            vec!["end of message: required segment OBR of ORU_R01 is missing here"]
        );
    }

    #[test]
    fn foreign_and_misplaced_segments_are_reported() {
        let p = problems(
            "MSH|^~\\&|L|F|R|F|20260101||ADT^A04^ADT_A01|1|P|2.5.1\rEVN|A04\rPID|1\rPV1|1\r\
             RXA|1\rAL1|1\rPID|2\rAL1|2\r",
        );
        assert_eq!(
            p,
            vec![
                "segment 5 (RXA): RXA is not a segment of ADT_A01",
                "segment 7 (PID): PID is out of place for ADT_A01 (the 1 segment(s) after it were not checked)"
            ]
        );
    }

    #[test]
    fn the_event_picks_the_structure_when_msh_9_3_is_empty() {
        let m =
            parse(b"MSH|^~\\&|L|F|R|F|20260101||ADT^A08|1|P|2.3\rEVN|A08\rPID|1\rPV1|1\r").unwrap();
        assert_eq!(structure_of(&m).as_deref(), Some("ADT_A01"));
        assert_eq!(check(&m).unwrap().1, vec![]);
        let m = parse(b"MSH|^~\\&|L|F|R|F|20260101||QRY^A19|1|P|2.3\rQRD|1\r").unwrap();
        assert_eq!(check(&m), None);
    }

    #[test]
    fn repeating_groups_and_choices() {
        // ADT_A39: {PID [PD1] MRG [PV1]}
        let ok = "MSH|^~\\&|L|F|R|F|20260101||ADT^A40|1|P|2.5\rEVN|A40\rPID|1\rMRG|9\rPID|2\rMRG|8\rPV1|1\r";
        assert_eq!(problems(ok), Vec::<String>::new());
        let p =
            problems("MSH|^~\\&|L|F|R|F|20260101||ADT^A40|1|P|2.5\rEVN|A40\rPID|1\rMRG|9\rPID|2\r");
        assert_eq!(
            p,
            vec!["end of message: required segment MRG of ADT_A39 is missing here"]
        );
        // ORM_O01's order detail is a choice.
        let ok = "MSH|^~\\&|L|F|R|F|20260101||ORM^O01|1|P|2.3\rPID|1\rORC|NW\rRXO|1\rORC|NW\rOBR|1\rNTE|1\r";
        assert_eq!(problems(ok), Vec::<String>::new());
    }
}
