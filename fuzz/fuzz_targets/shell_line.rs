//! The shell's (and the emulator's) typed-line parser: any line, against the commands opsbot
//! registers and a small guild. It must answer Ok or a LineError, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use opsbot::emulator::typed_line::{
    DirectoryChannel, DirectoryMember, DirectoryRole, GuildDirectory, parse_line, split_words,
};
use serde_json::Value;

fn registered() -> &'static Vec<Value> {
    static REGISTERED: OnceLock<Vec<Value>> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        let mut commands = opsbot::discord::registration_json()
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, command) in commands.iter_mut().enumerate() {
            command["id"] = Value::String((1000 + i).to_string());
        }
        commands
    })
}

fn directory() -> &'static GuildDirectory {
    static DIRECTORY: OnceLock<GuildDirectory> = OnceLock::new();
    DIRECTORY.get_or_init(|| GuildDirectory {
        guild_id: 1,
        members: vec![DirectoryMember {
            id: 10,
            name: "ana".into(),
            role_ids: vec![20],
        }],
        roles: vec![DirectoryRole {
            id: 20,
            name: "ops".into(),
        }],
        channels: vec![DirectoryChannel {
            id: 30,
            name: "general".into(),
            kind: 0,
        }],
    })
}

fuzz_target!(|line: &str| {
    let _ = split_words(line);
    let _ = parse_line(line, registered(), directory());
});
