//! Vector operations at each step: aggregations (`sum`, `topk`, ...), binary operators
//! with vector matching (`on`, `ignoring`, `group_left`/`group_right`), set operators and
//! `label_replace`.
//!
//! Must not: read records.

use std::collections::{BTreeMap, HashMap};

use super::super::error::QueryError;
use super::super::logql::ast::*;
use super::super::value::Series;
use super::{Builder, Matrix, Val, group_labels, render_series};

pub(super) fn aggregate(a: &VecAgg, inner: Matrix) -> Matrix {
    let steps = inner.points.len();
    let mut b = Builder::new(steps);
    for (k, points) in inner.points.iter().enumerate() {
        let mut groups: BTreeMap<Series, Vec<(usize, f64)>> = BTreeMap::new();
        for &(sid, v) in points {
            let mut key = inner.series[sid].clone();
            match &a.grouping {
                Some(g) => group_labels(&mut key, g),
                None if matches!(
                    a.op,
                    VecOp::Topk | VecOp::Bottomk | VecOp::Sort | VecOp::SortDesc
                ) => {}
                None => key.clear(),
            }
            if matches!(a.op, VecOp::Topk | VecOp::Bottomk) && a.grouping.is_none() {
                key.clear();
            }
            groups.entry(key).or_default().push((sid, v));
        }
        for (key, members) in groups {
            let vals: Vec<f64> = members.iter().map(|(_, v)| *v).collect();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let v = match a.op {
                VecOp::Sum => vals.iter().sum(),
                VecOp::Avg => mean,
                VecOp::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                VecOp::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                VecOp::Count => n,
                VecOp::Stddev => var.sqrt(),
                VecOp::Stdvar => var,
                VecOp::Topk | VecOp::Bottomk => {
                    let mut m = members;
                    let desc = a.op == VecOp::Topk;
                    m.sort_by(|x, y| {
                        let o = x.1.total_cmp(&y.1);
                        if desc { o.reverse() } else { o }
                    });
                    for (sid, v) in m.into_iter().take(a.param.unwrap_or(1.0) as usize) {
                        b.push(k, &inner.series[sid], v);
                    }
                    continue;
                }
                VecOp::Sort | VecOp::SortDesc => {
                    for (sid, v) in members {
                        b.push(k, &inner.series[sid], v);
                    }
                    continue;
                }
            };
            b.push(k, &key, v);
        }
    }
    b.m.sort = match a.op {
        VecOp::Sort => Some(false),
        VecOp::SortDesc => Some(true),
        _ => None,
    };
    b.m
}

/// What `x op y` leaves: the arithmetic result, 1 or 0 with `bool`, or for a filtering
/// comparison `keep` when it holds and nothing when it does not.
fn outcome(op: BinOp, bool_mod: bool, x: f64, y: f64, keep: f64) -> Option<f64> {
    let (res, held) = apply(op, x, y);
    if !op.is_comparison() || bool_mod {
        Some(res)
    } else {
        held.then_some(keep)
    }
}

/// `op` on two numbers: the value, and for comparisons whether it held.
fn apply(op: BinOp, a: f64, b: f64) -> (f64, bool) {
    let cmp = |c: bool| (if c { 1.0 } else { 0.0 }, c);
    match op {
        BinOp::Add => (a + b, true),
        BinOp::Sub => (a - b, true),
        BinOp::Mul => (a * b, true),
        BinOp::Div => (a / b, true),
        BinOp::Mod => (a % b, true),
        BinOp::Pow => (a.powf(b), true),
        BinOp::Eq => cmp(a == b),
        BinOp::Ne => cmp(a != b),
        BinOp::Gt => cmp(a > b),
        BinOp::Ge => cmp(a >= b),
        BinOp::Lt => cmp(a < b),
        BinOp::Le => cmp(a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => (a, true),
    }
}

pub(super) fn binary(
    op: BinOp,
    bool_mod: bool,
    matching: Option<&VectorMatching>,
    l: Val,
    r: Val,
    steps: usize,
) -> Result<Val, QueryError> {
    match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => {
            if op.is_comparison() && !bool_mod {
                return Err(QueryError::bad(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            if op.is_set() {
                return Err(QueryError::bad(format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    op.as_str()
                )));
            }
            Ok(Val::Scalar(
                a.iter().zip(&b).map(|(x, y)| apply(op, *x, *y).0).collect(),
            ))
        }
        (Val::Vector(m), Val::Scalar(s)) => vector_scalar(op, bool_mod, m, &s, false),
        (Val::Scalar(s), Val::Vector(m)) => vector_scalar(op, bool_mod, m, &s, true),
        (Val::Vector(a), Val::Vector(b)) => {
            if op.is_set() {
                Ok(Val::Vector(set_op(op, matching, a, b, steps)))
            } else {
                Ok(Val::Vector(vector_vector(
                    op, bool_mod, matching, a, b, steps,
                )?))
            }
        }
    }
}

fn vector_scalar(
    op: BinOp,
    bool_mod: bool,
    m: Matrix,
    s: &[f64],
    scalar_left: bool,
) -> Result<Val, QueryError> {
    if op.is_set() {
        return Err(QueryError::bad(format!(
            "set operator \"{}\" not allowed in binary scalar expression",
            op.as_str()
        )));
    }
    let mut b = Builder::new(m.points.len());
    for (k, points) in m.points.iter().enumerate() {
        for &(sid, v) in points {
            let (x, y) = if scalar_left { (s[k], v) } else { (v, s[k]) };
            if let Some(value) = outcome(op, bool_mod, x, y, v) {
                b.push(k, &m.series[sid], value);
            }
        }
    }
    Ok(Val::Vector(b.m))
}

fn signature(s: &Series, m: Option<&VectorMatching>) -> Series {
    match m {
        Some(m) if m.on => s
            .iter()
            .filter(|(k, _)| m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(m) => s
            .iter()
            .filter(|(k, _)| !m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => s.clone(),
    }
}

fn vector_vector(
    op: BinOp,
    bool_mod: bool,
    matching: Option<&VectorMatching>,
    a: Matrix,
    b: Matrix,
    steps: usize,
) -> Result<Matrix, QueryError> {
    let group_right = matching.and_then(|m| m.group_right);
    // The "one" side is the right unless group_right.
    let (many, one, swapped) = if group_right == Some(true) {
        (b, a, true)
    } else {
        (a, b, false)
    };
    let many_allowed = group_right.is_some();
    let mut out = Builder::new(steps);
    for k in 0..steps {
        let mut ones: HashMap<Series, (usize, f64)> = HashMap::new();
        for &(sid, v) in &one.points[k] {
            let sig = signature(&one.series[sid], matching);
            if ones.insert(sig.clone(), (sid, v)).is_some() {
                return Err(QueryError::bad(format!(
                    "found duplicate series for the match group {} on the {} hand-side of \
                     the operation; many-to-many matching not allowed: matching labels must \
                     be unique on one side",
                    render_series(&sig),
                    if swapped { "left" } else { "right" }
                )));
            }
        }
        let mut seen: HashMap<Series, ()> = HashMap::new();
        for &(sid, v) in &many.points[k] {
            let sig = signature(&many.series[sid], matching);
            let Some(&(oid, ov)) = ones.get(&sig) else {
                continue;
            };
            if !many_allowed && seen.insert(sig.clone(), ()).is_some() {
                return Err(QueryError::bad(format!(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right) for {}",
                    render_series(&sig)
                )));
            }
            let (x, y) = if swapped { (ov, v) } else { (v, ov) };
            let Some(value) = outcome(op, bool_mod, x, y, x) else {
                continue;
            };
            let labels = result_labels(&many.series[sid], &one.series[oid], matching);
            out.push(k, &labels, value);
        }
    }
    Ok(out.m)
}

fn result_labels(many: &Series, one: &Series, m: Option<&VectorMatching>) -> Series {
    let Some(m) = m else {
        return many.clone();
    };
    if m.group_right.is_some() {
        let mut l = many.clone();
        for name in &m.include {
            match one.get(name) {
                Some(v) if !v.is_empty() => {
                    l.insert(name.clone(), v.clone());
                }
                _ => {
                    l.remove(name);
                }
            }
        }
        return l;
    }
    signature_result(many, m)
}

/// One-to-one results keep the `on` labels only, or drop the `ignoring` ones.
fn signature_result(s: &Series, m: &VectorMatching) -> Series {
    signature(s, Some(m))
}

fn set_op(
    op: BinOp,
    matching: Option<&VectorMatching>,
    a: Matrix,
    b: Matrix,
    steps: usize,
) -> Matrix {
    let mut out = Builder::new(steps);
    for k in 0..steps {
        let rsigs: std::collections::HashSet<Series> = b.points[k]
            .iter()
            .map(|&(sid, _)| signature(&b.series[sid], matching))
            .collect();
        let lsigs: std::collections::HashSet<Series> = a.points[k]
            .iter()
            .map(|&(sid, _)| signature(&a.series[sid], matching))
            .collect();
        for &(sid, v) in &a.points[k] {
            let present = rsigs.contains(&signature(&a.series[sid], matching));
            let keep = match op {
                BinOp::And => present,
                BinOp::Unless => !present,
                _ => true,
            };
            if keep {
                out.push(k, &a.series[sid], v);
            }
        }
        if op == BinOp::Or {
            for &(sid, v) in &b.points[k] {
                if !lsigs.contains(&signature(&b.series[sid], matching)) {
                    out.push(k, &b.series[sid], v);
                }
            }
        }
    }
    out.m
}

pub(super) fn label_replace(
    m: Matrix,
    dst: &str,
    replacement: &str,
    src: &str,
    re: &regex::Regex,
    steps: usize,
) -> Matrix {
    let renamed: Vec<Series> = m
        .series
        .iter()
        .map(|s| {
            let v = s.get(src).map_or("", String::as_str);
            let mut out = s.clone();
            if let Some(caps) = re.captures(v) {
                let mut value = String::new();
                caps.expand(replacement, &mut value);
                if value.is_empty() {
                    out.remove(dst);
                } else {
                    out.insert(dst.to_owned(), value);
                }
            }
            out
        })
        .collect();
    let mut b = Builder::new(steps);
    for (k, points) in m.points.iter().enumerate() {
        for &(sid, v) in points {
            b.push(k, &renamed[sid], v);
        }
    }
    b.m
}
