//! The domain writes no platform markup: Discord's timestamps (`<t:…>`), mentions (`<@…>`,
//! `<@&…>`, `<#…>`) and dependencies on poise, serenity or axum belong to the front doors.
//! Typed pieces (`chat::Span`) say what is meant; `bot/src/discord/render/` spells it.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn nothing_in_the_domain_spells_discord_syntax() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let forbidden = ["<t:", "<@", "<#", "poise::", "serenity::", "axum::"];
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for pattern in forbidden {
                if line.contains(pattern) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "platform syntax in the domain:\n{}",
        found.join("\n")
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("manifest");
    for framework in ["poise", "serenity", "axum"] {
        assert!(
            !manifest
                .lines()
                .any(|l| l.trim_start().starts_with(framework)),
            "the domain depends on {framework}"
        );
    }
}
