//! Stateless operators: `filter`, `map`, `project`, `route`.

use super::{OpResult, Operator, Out, reject};
use crate::config::RouteConfig;
use crate::event::Event;
use crate::expr::{Expr, remove_path, set_path};
use serde_json::{Map as JsonMap, Value};
use std::collections::BTreeMap;

/// `op = "filter"`: keeps events for which `when` is true.
pub struct Filter {
    when: Expr,
    dropped: u64,
}

impl Filter {
    /// Builds it.
    pub fn new(when: Expr) -> Filter {
        Filter { when, dropped: 0 }
    }
}

impl Operator for Filter {
    fn kind(&self) -> &'static str {
        "filter"
    }
    fn describe(&self) -> String {
        format!("filter when {}", self.when)
    }
    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        match self.when.test(e.value(), &e.meta()) {
            Ok(true) => out.next(e),
            Ok(false) => self.dropped += 1,
            Err(x) => return reject(e, x.to_string()),
        }
        Ok(())
    }
    fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// `op = "map"`: sets fields to computed values, then removes fields.
pub struct Map {
    set: Vec<(String, Expr)>,
    remove: Vec<String>,
}

impl Map {
    /// Builds it.
    pub fn new(set: BTreeMap<String, Expr>, remove: Vec<String>) -> Map {
        Map {
            set: set.into_iter().collect(),
            remove,
        }
    }
}

impl Operator for Map {
    fn kind(&self) -> &'static str {
        "map"
    }
    fn describe(&self) -> String {
        let sets: Vec<String> = self.set.iter().map(|(k, e)| format!("{k} = {e}")).collect();
        format!("map set [{}] remove {:?}", sets.join(", "), self.remove)
    }
    fn process(&mut self, mut e: Event, out: &mut Out) -> OpResult {
        if e.json.is_none() {
            return reject(e, "map needs a JSON payload");
        }
        // Every value is computed from the input before any is written, so the order of `set`
        // entries never matters.
        let mut computed = Vec::with_capacity(self.set.len());
        for (path, expr) in &self.set {
            match expr.eval(e.value(), &e.meta()) {
                Ok(v) => computed.push((path, v.into_json())),
                Err(x) => {
                    let reason = format!("{path} = {expr}: {x}");
                    return reject(e, reason);
                }
            }
        }
        let json = e.json.get_or_insert(Value::Null);
        for (path, v) in computed {
            if let Err(x) = set_path(json, path, v) {
                return reject(e, x.to_string());
            }
        }
        for path in &self.remove {
            remove_path(json, path);
        }
        out.next(e);
        Ok(())
    }
}

/// `op = "project"`: keeps only the listed fields.
pub struct Project {
    fields: Vec<(String, Expr)>,
}

impl Project {
    /// Builds it; each field must be a path.
    pub fn new(fields: Vec<String>) -> Result<Project, String> {
        let mut out = Vec::new();
        for f in fields {
            let e = Expr::parse(&f).map_err(|x| format!("project field {f:?}: {x}"))?;
            if e.root_field().is_none() {
                return Err(format!("project field {f:?} must be a path like a.b"));
            }
            out.push((f, e));
        }
        Ok(Project { fields: out })
    }
}

impl Operator for Project {
    fn kind(&self) -> &'static str {
        "project"
    }
    fn describe(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|(f, _)| f.as_str()).collect();
        format!("project {names:?}")
    }
    fn process(&mut self, mut e: Event, out: &mut Out) -> OpResult {
        let mut obj = Value::Object(JsonMap::new());
        for (path, expr) in &self.fields {
            let v = match expr.eval(e.value(), &e.meta()) {
                Ok(v) => v.into_json(),
                Err(x) => return reject(e, x.to_string()),
            };
            if !v.is_null()
                && let Err(x) = set_path(&mut obj, path, v)
            {
                return reject(e, x.to_string());
            }
        }
        e.json = Some(obj);
        out.next(e);
        Ok(())
    }
}

/// `op = "route"`: the first route whose condition holds sends the event to its topic.
pub struct Route {
    routes: Vec<RouteConfig>,
    default: Option<String>,
}

impl Route {
    /// Builds it.
    pub fn new(routes: Vec<RouteConfig>, default: Option<String>) -> Result<Route, String> {
        for t in routes.iter().map(|r| &r.to).chain(default.iter()) {
            aorta_log::validate_topic_name(t).map_err(|e| e.to_string())?;
        }
        Ok(Route { routes, default })
    }
}

impl Operator for Route {
    fn kind(&self) -> &'static str {
        "route"
    }
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("{} -> {}", r.when, r.to))
            .collect();
        parts.push(match &self.default {
            Some(d) => format!("otherwise -> {d}"),
            None => "otherwise -> next step".into(),
        });
        format!("route [{}]", parts.join("; "))
    }
    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        for r in &self.routes {
            match r.when.test(e.value(), &e.meta()) {
                Ok(true) => {
                    out.topic(&r.to, e);
                    return Ok(());
                }
                Ok(false) => {}
                Err(x) => {
                    let reason = format!("route to {}: {x}", r.to);
                    return reject(e, reason);
                }
            }
        }
        match &self.default {
            Some(d) => out.topic(d, e),
            None => out.next(e),
        }
        Ok(())
    }
    fn topics(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| r.to.clone())
            .chain(self.default.clone())
            .collect()
    }
}

/// `op = "explode"`: one event per element of the list at `path`, each element (an object)
/// with the `keep` fields of its parent added. An event whose list is empty or missing produces
/// nothing (counted as dropped); an element that is not an object is an error.
pub struct Explode {
    path: String,
    list: Expr,
    keep: Vec<(String, Expr)>,
    dropped: u64,
}

impl Explode {
    /// Builds it; `path` and each `keep` entry must be paths.
    pub fn new(path: String, keep: Vec<String>) -> Result<Explode, String> {
        let as_path = |p: &str| -> Result<Expr, String> {
            let e = Expr::parse(p).map_err(|x| format!("explode path {p:?}: {x}"))?;
            if e.root_field().is_none() {
                return Err(format!("explode path {p:?} must be a path like a.b"));
            }
            Ok(e)
        };
        let list = as_path(&path)?;
        let keep = keep
            .into_iter()
            .map(|k| as_path(&k).map(|e| (k, e)))
            .collect::<Result<_, _>>()?;
        Ok(Explode {
            path,
            list,
            keep,
            dropped: 0,
        })
    }
}

impl Operator for Explode {
    fn kind(&self) -> &'static str {
        "explode"
    }
    fn describe(&self) -> String {
        let keep: Vec<&str> = self.keep.iter().map(|(k, _)| k.as_str()).collect();
        format!("explode {} keeping {keep:?}", self.path)
    }
    fn process(&mut self, e: Event, out: &mut Out) -> OpResult {
        let list = match self.list.eval(e.value(), &e.meta()) {
            Ok(v) => v.into_json(),
            Err(x) => return reject(e, x.to_string()),
        };
        let items = match list {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                let kind = match other {
                    Value::Object(_) => "an object",
                    Value::String(_) => "a string",
                    _ => "a scalar",
                };
                return reject(e, format!("explode: {} is {kind}, not a list", self.path));
            }
        };
        if items.is_empty() {
            self.dropped += 1;
            return Ok(());
        }
        let mut kept = Vec::with_capacity(self.keep.len());
        for (k, expr) in &self.keep {
            match expr.eval(e.value(), &e.meta()) {
                Ok(v) => kept.push((k, v.into_json())),
                Err(x) => return reject(e, x.to_string()),
            }
        }
        let mut made = Vec::with_capacity(items.len());
        for (i, mut item) in items.into_iter().enumerate() {
            if !item.is_object() {
                return reject(e, format!("explode: {}[{i}] is not an object", self.path));
            }
            for (k, v) in &kept {
                if v.is_null() {
                    continue;
                }
                if let Err(x) = set_path(&mut item, k, v.clone()) {
                    return reject(e, x.to_string());
                }
            }
            made.push(item);
        }
        for item in made {
            out.next(e.derive(item));
        }
        Ok(())
    }
    fn dropped(&self) -> u64 {
        self.dropped
    }
}
