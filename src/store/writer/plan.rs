//! Planning a transaction from the writer's operations: new incidents once per key,
//! touches paired with their rows or with incidents new in the same batch, usage summed.

use rustc_hash::FxHashMap;

use super::Known;
use crate::incident::IncidentOp;
use crate::policy::Verdict;
use crate::store::write::{Batch, Target};
use crate::store::StoreOp;

/// Builds one transaction's batch from operations in order: new incidents (each key once),
/// touches of rows or of incidents new in the batch, a touch of an incident the chain no
/// longer holds (after a break) opening it again from its record, usage summed. Returns the
/// batch, the keys of its incidents in order, and touches of unknown incidents (skipped).
pub(super) fn plan(
    ops: &[(u64, StoreOp)],
    ids: &FxHashMap<(u64, u64), Known>,
) -> (Batch, Vec<(u64, u64)>, usize) {
    let mut batch = Batch::default();
    let mut keys: Vec<(u64, u64)> = Vec::new();
    let mut new: FxHashMap<(u64, u64), usize> = FxHashMap::default();
    let mut usage: FxHashMap<(&str, &str, Verdict), u64> = FxHashMap::default();
    let mut orphans = 0;
    for (epoch, op) in ops {
        match op {
            StoreOp::Incident(IncidentOp::Open { key, record }) => {
                let k = (*epoch, *key);
                if new.contains_key(&k) || ids.get(&k).is_some_and(|x| x.id.is_some()) {
                    continue;
                }
                new.insert(k, batch.incidents.len());
                batch.incidents.push((**record).clone());
                keys.push(k);
            }
            StoreOp::Incident(IncidentOp::Touch { key, touch }) => {
                let k = (*epoch, *key);
                let target = match (new.get(&k), ids.get(&k)) {
                    (Some(i), _) => Target::New(*i),
                    (None, Some(Known { id: Some(id), .. })) => Target::Row(*id),
                    (None, Some(Known { id: None, record })) => {
                        new.insert(k, batch.incidents.len());
                        batch.incidents.push((**record).clone());
                        keys.push(k);
                        Target::New(batch.incidents.len() - 1)
                    }
                    (None, None) => {
                        orphans += 1;
                        continue;
                    }
                };
                batch.touches.push((target, touch.clone()));
            }
            StoreOp::Usage(u) => {
                *usage
                    .entry((u.day.as_str(), u.service.as_str(), u.verdict))
                    .or_insert(0) += 1;
            }
            StoreOp::Forget(_) => {}
        }
    }
    batch.usage = usage
        .into_iter()
        .map(|((d, s, v), n)| (d.to_string(), s.to_string(), v, n))
        .collect();
    (batch, keys, orphans)
}

pub(super) fn clone_op(op: &StoreOp) -> StoreOp {
    match op {
        StoreOp::Incident(i) => StoreOp::Incident(i.clone()),
        StoreOp::Usage(u) => StoreOp::Usage(u.clone()),
        StoreOp::Forget(k) => StoreOp::Forget(*k),
    }
}
