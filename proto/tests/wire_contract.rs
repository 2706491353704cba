//! Pins raftmq's `apache.rocketmq.v2` protos to the upstream wire contract.
//!
//! raftmq writes its own .proto text, but official RocketMQ clients only work
//! if every name and number on the wire matches apache/rocketmq-apis. The
//! tables below were read from upstream: the v2 files as shipped in npm
//! `rocketmq-client-nodejs` 1.0.8 (upstream as of `v2.1.2`), plus the two
//! later additions of upstream commit `bc8e184` (PR #108):
//! `Settings.client_properties = 9` and `Code.INVALID_CLIENT_PROPERTIES =
//! 40021`, which together give upstream HEAD `3e60073c6dab`. The tests
//! compile our files with protox and fail, naming the difference, on drift.
//!
//! Field rows are `(number, name, type, label)`. Type is a scalar, a message or
//! enum name relative to the package, or `map<key,value>`. Label is `""`
//! (singular), `"opt"` (proto3 `optional`), `"rep"` (repeated), `"map"`, or
//! `"oneof:<name>"`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

#[path = "wire_contract/upstream.rs"]
mod upstream;

use upstream::*;

fn compile() -> FileDescriptorSet {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    protox::compile([DEFINITION, SERVICE], [root]).expect("our protos compile")
}

fn file<'a>(fds: &'a FileDescriptorSet, name: &str) -> &'a FileDescriptorProto {
    fds.file.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("{name} not compiled"))
}

fn ours(fds: &FileDescriptorSet) -> impl Iterator<Item = &FileDescriptorProto> {
    fds.file.iter().filter(|f| f.package() == PACKAGE)
}

fn short(type_name: &str) -> String {
    let name = type_name.trim_start_matches('.');
    name.strip_prefix("apache.rocketmq.v2.").unwrap_or(name).to_string()
}

/// The synthetic `XxxEntry` message behind a `map<_, _>` field, if it is one.
fn map_entry<'a>(field: &FieldDescriptorProto, owner: &'a DescriptorProto) -> Option<&'a DescriptorProto> {
    if field.label() != Label::Repeated || field.r#type() != Type::Message {
        return None;
    }
    let entry = short(field.type_name());
    owner.nested_type.iter().find(|n| {
        n.options.as_ref().and_then(|o| o.map_entry) == Some(true) && entry == format!("{}.{}", owner.name(), n.name())
    })
}

fn type_of(field: &FieldDescriptorProto, owner: &DescriptorProto) -> String {
    if let Some(entry) = map_entry(field, owner) {
        let key = type_of(&entry.field[0], entry);
        let value = type_of(&entry.field[1], entry);
        return format!("map<{key},{value}>");
    }
    match field.r#type() {
        Type::Message | Type::Enum => short(field.type_name()),
        Type::Double => "double".into(),
        Type::Float => "float".into(),
        Type::Int64 => "int64".into(),
        Type::Uint64 => "uint64".into(),
        Type::Int32 => "int32".into(),
        Type::Fixed64 => "fixed64".into(),
        Type::Fixed32 => "fixed32".into(),
        Type::Bool => "bool".into(),
        Type::String => "string".into(),
        Type::Bytes => "bytes".into(),
        Type::Uint32 => "uint32".into(),
        Type::Sfixed32 => "sfixed32".into(),
        Type::Sfixed64 => "sfixed64".into(),
        Type::Sint32 => "sint32".into(),
        Type::Sint64 => "sint64".into(),
        Type::Group => "group".into(),
    }
}

fn label_of(field: &FieldDescriptorProto, owner: &DescriptorProto) -> String {
    if map_entry(field, owner).is_some() {
        "map".into()
    } else if field.proto3_optional() {
        "opt".into()
    } else if let Some(i) = field.oneof_index {
        let oneof = usize::try_from(i).expect("oneof index");
        format!("oneof:{}", owner.oneof_decl[oneof].name())
    } else if field.label() == Label::Repeated {
        "rep".into()
    } else {
        String::new()
    }
}

/// Our fields of one message, as table rows sorted by number.
fn rows(message: &DescriptorProto) -> Vec<(i32, String, String, String)> {
    let mut rows: Vec<_> = message
        .field
        .iter()
        .map(|f| (f.number(), f.name().to_string(), type_of(f, message), label_of(f, message)))
        .collect();
    rows.sort();
    rows
}

fn expected_rows(fields: &[Field]) -> Vec<(i32, String, String, String)> {
    let mut rows: Vec<_> =
        fields.iter().map(|&(n, name, ty, label)| (n, name.to_string(), ty.to_string(), label.to_string())).collect();
    rows.sort();
    rows
}

fn check_messages(fds: &FileDescriptorSet, file_name: &str, table: &[Msg]) -> Vec<String> {
    let f = file(fds, file_name);
    let mut problems = Vec::new();
    for &(name, fields) in table {
        let Some(message) = f.message_type.iter().find(|m| m.name() == name) else {
            problems.push(format!("{file_name}: message {name} missing"));
            continue;
        };
        let (got, want) = (rows(message), expected_rows(fields));
        for row in want.iter().filter(|r| !got.contains(r)) {
            problems.push(format!("{name}: expected field {row:?}"));
        }
        for row in got.iter().filter(|r| !want.contains(r)) {
            problems.push(format!("{name}: unexpected field {row:?}"));
        }
    }
    problems
}

fn report(problems: &[String]) {
    assert!(problems.is_empty(), "drift from upstream:\n  {}", problems.join("\n  "));
}

#[test]
fn package_and_imports_match_upstream() {
    let fds = compile();
    let mut problems = Vec::new();
    for &(name, imports) in IMPORTS {
        let f = file(&fds, name);
        if f.package() != PACKAGE {
            problems.push(format!("{name}: package {}", f.package()));
        }
        if f.syntax() != "proto3" {
            problems.push(format!("{name}: syntax {}", f.syntax()));
        }
        let got: BTreeSet<&str> = f.dependency.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = imports.iter().copied().collect();
        if got != want {
            problems.push(format!("{name}: imports {got:?}, upstream {want:?}"));
        }
    }
    report(&problems);
}

#[test]
fn messaging_service_matches_upstream() {
    let fds = compile();
    let services: Vec<_> = ours(&fds).flat_map(|f| &f.service).collect();
    assert_eq!(services.len(), 1, "exactly one service in {PACKAGE}");
    let service = services[0];
    assert_eq!(service.name(), "MessagingService");
    assert_eq!(file(&fds, SERVICE).service.len(), 1, "it lives in service.proto");

    let got: BTreeSet<_> = service
        .method
        .iter()
        .map(|m| {
            (
                m.name().to_string(),
                short(m.input_type()),
                short(m.output_type()),
                m.client_streaming(),
                m.server_streaming(),
            )
        })
        .collect();
    let want: BTreeSet<_> = RPCS
        .iter()
        .map(|&(name, input, output, cs, ss)| (name.to_string(), input.to_string(), output.to_string(), cs, ss))
        .collect();
    let mut problems = Vec::new();
    for rpc in want.difference(&got) {
        problems.push(format!("expected rpc {rpc:?}"));
    }
    for rpc in got.difference(&want) {
        problems.push(format!("unexpected rpc {rpc:?}"));
    }
    report(&problems);
}

#[test]
fn definition_messages_match_upstream() {
    report(&check_messages(&compile(), DEFINITION, DEFINITION_MESSAGES));
}

#[test]
fn service_messages_match_upstream() {
    report(&check_messages(&compile(), SERVICE, SERVICE_MESSAGES));
}

#[test]
fn enums_match_upstream() {
    let fds = compile();
    let f = file(&fds, DEFINITION);
    let mut problems = Vec::new();
    for &(name, values) in ENUMS {
        let found = match name.split_once('.') {
            None => f.enum_type.iter().find(|e| e.name() == name),
            Some((outer, inner)) => f
                .message_type
                .iter()
                .find(|m| m.name() == outer)
                .and_then(|m| m.enum_type.iter().find(|e| e.name() == inner)),
        };
        let Some(e) = found else {
            problems.push(format!("enum {name} missing from {DEFINITION}"));
            continue;
        };
        let got: BTreeSet<(String, i32)> = e.value.iter().map(|v| (v.name().to_string(), v.number())).collect();
        let want: BTreeSet<(String, i32)> = values.iter().map(|&(v, n)| (v.to_string(), n)).collect();
        for v in want.difference(&got) {
            problems.push(format!("{name}: expected value {v:?}"));
        }
        for v in got.difference(&want) {
            problems.push(format!("{name}: unexpected value {v:?}"));
        }
    }
    report(&problems);
}

/// Every message and enum we declare is in the tables above (and so upstream),
/// and sits in the same file as upstream's.
#[test]
fn no_types_beyond_upstream() {
    let fds = compile();
    let mut problems = Vec::new();
    for (file_name, table) in [(DEFINITION, DEFINITION_MESSAGES), (SERVICE, SERVICE_MESSAGES)] {
        let f = file(&fds, file_name);
        let got: BTreeSet<&str> = f.message_type.iter().map(|m| m.name()).collect();
        let want: BTreeSet<&str> = table.iter().map(|&(name, _)| name).collect();
        for name in got.difference(&want) {
            problems.push(format!("{file_name}: message {name} is not upstream's"));
        }
        for m in &f.message_type {
            for n in m.nested_type.iter().filter(|n| n.options.as_ref().and_then(|o| o.map_entry) != Some(true)) {
                problems.push(format!("{file_name}: nested message {}.{} is not upstream's", m.name(), n.name()));
            }
        }
    }
    let mut enums: BTreeSet<String> = BTreeSet::new();
    for f in ours(&fds) {
        if f.name() != DEFINITION && !f.enum_type.is_empty() {
            problems.push(format!("{}: upstream declares no enums here", f.name()));
        }
        enums.extend(f.enum_type.iter().map(|e| e.name().to_string()));
        for m in &f.message_type {
            enums.extend(m.enum_type.iter().map(|e| format!("{}.{}", m.name(), e.name())));
        }
    }
    let want: BTreeSet<String> = ENUMS.iter().map(|&(name, _)| name.to_string()).collect();
    for name in enums.difference(&want) {
        problems.push(format!("enum {name} is not upstream's"));
    }
    report(&problems);
}

/// These codes exist upstream and must stay in the enum, although raftmq must
/// never send them to the Rust client 5.0.0 (it panics on codes it does not
/// know).
#[test]
fn codes_unknown_to_the_rust_client_are_declared() {
    let fds = compile();
    let code = file(&fds, DEFINITION).enum_type.iter().find(|e| e.name() == "Code").expect("enum Code");
    for (name, number) in [
        ("ILLEGAL_OFFSET", 40019),
        ("ILLEGAL_LITE_TOPIC", 40020),
        ("INVALID_CLIENT_PROPERTIES", 40021),
        ("OFFSET_NOT_FOUND", 40404),
        ("MESSAGE_BODY_EMPTY", 41302),
        ("LITE_TOPIC_QUOTA_EXCEEDED", 42901),
        ("LITE_SUBSCRIPTION_QUOTA_EXCEEDED", 42902),
    ] {
        assert!(code.value.iter().any(|v| v.name() == name && v.number() == number), "Code.{name} = {number} missing");
    }
}
