//! Resources that share storage with another representation: `events.k8s.io/v1` Events
//! are stored as core/v1 Events (as upstream does), so both APIs see the same objects.

use crate::resources::{self, ResourceInfo};
use serde_json::{Map, Value};

/// (core/v1 field, events.k8s.io/v1 field) pairs that only change name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// The resource whose storage keys a resource uses.
pub fn storage_of(res: &ResourceInfo) -> &ResourceInfo {
    if res.group == "events.k8s.io" && res.plural == "events" {
        resources::find("", "v1", "events").expect("core events served")
    } else {
        res
    }
}

pub(crate) fn is_new_event(res: &ResourceInfo) -> bool {
    res.group == "events.k8s.io" && res.plural == "events"
}

fn rename(obj: Value, from_core: bool, api_version: &str) -> Value {
    let Value::Object(m) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = EVENT_FIELDS.iter().find_map(|(core, new)| {
            if from_core && k == *core {
                Some(*new)
            } else if !from_core && k == *new {
                Some(*core)
            } else {
                None
            }
        });
        out.insert(renamed.map(str::to_string).unwrap_or(k), v);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// Stored form → the resource's form.
pub fn from_storage(res: &ResourceInfo, obj: Value) -> Value {
    if is_new_event(res) {
        rename(obj, true, "events.k8s.io/v1")
    } else {
        obj
    }
}

/// The resource's form → stored form.
pub fn to_storage(res: &ResourceInfo, obj: Value) -> Value {
    if is_new_event(res) {
        rename(obj, false, "v1")
    } else {
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let new = resources::find("events.k8s.io", "v1", "events").unwrap();
        let core = json!({"apiVersion":"v1","kind":"Event","metadata":{"name":"e"},
            "involvedObject":{"kind":"Pod","name":"p"},"message":"hi","reason":"Started","count":2});
        let converted = from_storage(new, core.clone());
        assert_eq!(converted["regarding"]["name"], "p");
        assert_eq!(converted["note"], "hi");
        assert_eq!(converted["deprecatedCount"], 2);
        assert_eq!(converted["apiVersion"], "events.k8s.io/v1");
        assert_eq!(to_storage(new, converted), core);
        assert_eq!(storage_of(new).group, "");
    }
}
