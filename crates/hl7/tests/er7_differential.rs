//! Differential check against the er7 crate (pinned 0.1.4): for every message of the HL7 corpus,
//! our field/repetition/component/subcomponent tree (raw strings, from field 1) must equal
//! er7's. Messages are split by our stream parser and each message's bytes handed to er7, so
//! the comparison is of message parsing, not of file splitting. Differences are listed with the
//! reason in `EXPLAINED`.

use aorta_hl7::parse_stream;

type Tree = Vec<(String, Vec<Vec<Vec<Vec<String>>>>)>;

/// (file prefix, reason) for files where er7 and we read a message differently on purpose.
const EXPLAINED: &[(&str, &str)] = &[];

fn ours(m: &aorta_hl7::Message<'_>) -> Tree {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    m.segments()
        .map(|seg| {
            let fields = seg
                .fields()
                .skip(1)
                .map(|f| {
                    f.repetitions()
                        .map(|r| {
                            r.components()
                                .map(|c| c.subcomponents().map(s).collect())
                                .collect()
                        })
                        .collect()
                })
                .collect();
            (s(seg.id()), fields)
        })
        .collect()
}

fn theirs(m: &er7::Message) -> Tree {
    m.segments
        .iter()
        .map(|seg| {
            let fields = seg
                .fields
                .iter()
                .map(|f| {
                    f.repetitions
                        .iter()
                        .map(|r| {
                            r.components
                                .iter()
                                .map(|c| c.subcomponents.iter().map(|x| x.raw.clone()).collect())
                                .collect()
                        })
                        .collect()
                })
                .collect();
            (seg.name.clone(), fields)
        })
        .collect()
}

/// er7 writes an empty field, repetition or component as an empty list where we (like
/// python-hl7) write one empty value; both mean "empty". Canonicalise both sides: at every
/// level, a single empty element becomes no element.
fn canonical(t: Tree) -> Tree {
    fn sub(v: Vec<String>) -> Vec<String> {
        if v.len() == 1 && v[0].is_empty() {
            Vec::new()
        } else {
            v
        }
    }
    fn level<T: PartialEq + Default, U>(v: Vec<U>, f: impl Fn(U) -> T, empty: T) -> Vec<T> {
        let v: Vec<T> = v.into_iter().map(f).collect();
        if v.len() == 1 && v[0] == empty {
            Vec::new()
        } else {
            v
        }
    }
    t.into_iter()
        .map(|(id, fields)| {
            let fields = fields
                .into_iter()
                .map(|reps| level(reps, |comps| level(comps, sub, Vec::new()), Vec::new()))
                .collect();
            (id, fields)
        })
        .collect()
}

#[test]
fn every_corpus_message_parses_like_er7() {
    let Some(root) = aorta_testkit::corpus("hl7v2") else {
        return;
    };
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('_') {
                    stack.push(p);
                }
            } else if !name.ends_with(".json")
                && !name.ends_with(".tsv")
                && !name.ends_with(".md")
                && !name.ends_with(".fhir")
                && !name.ends_with(".csv")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let (mut messages, mut same, mut er7_rejects, mut explained) = (0, 0, 0, 0);
    let mut differ = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let Ok(batch) = parse_stream(&bytes) else {
            continue;
        };
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for m in &batch.messages {
            let Ok(text) = std::str::from_utf8(m.raw()) else {
                continue;
            };
            messages += 1;
            let Ok(e) = er7::parse(text) else {
                er7_rejects += 1;
                continue;
            };
            let (a, b) = (canonical(ours(m)), canonical(theirs(&e)));
            if a == b {
                same += 1;
            } else if EXPLAINED.iter().any(|(p, _)| rel.starts_with(p)) {
                explained += 1;
            } else {
                let at = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                let show = |t: &Tree| {
                    t.get(at)
                        .map(|(id, fields)| {
                            format!("{id} {:?}", fields.iter().take(6).collect::<Vec<_>>())
                        })
                        .unwrap_or_else(|| format!("{} segments", t.len()))
                };
                differ.push(format!(
                    "{rel}: segment {at}: ours {} | er7 {}",
                    show(&a),
                    show(&b)
                ));
            }
        }
    }
    eprintln!(
        "er7 differential: {messages} messages; {same} identical, {explained} explained, {er7_rejects} rejected by er7, {} unexplained",
        differ.len()
    );
    assert!(
        messages > 800,
        "expected the corpus, compared {messages} messages"
    );
    assert!(
        differ.is_empty(),
        "{} messages parse differently from er7:\n{}",
        differ.len(),
        differ
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
