//! `opsbot audit verify [--expect-head POSITION:HASH]... [--checkpoint PATH]`: walks the
//! chain read-only and checks it against heads recorded outside the database.
//!
//! stdout: `ok: N events`, or one line per finding (`event 42: what is wrong`,
//! `expected head 5:ab…: …`, `checkpoint PATH: …`); exit 1 when there is any.
//! stderr: the head (`head: position N (event E), hash H`, and its MAC under
//! `[audit] chain_key`), how the checkpoint was checked, and unsealed events.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use opsbot_commands::audit::{
    self, Authenticity, CheckpointError, ExpectedHead, check_checkpoint, check_expected_head,
};

use super::not_migrated_hint;
use crate::config::AuditConfig;
use crate::database::Database;
use crate::sealer::chain_key;

/// Which checkpoint to check: the one named on the command line must exist; the configured
/// one may not have been written yet.
enum CheckpointSource<'a> {
    Given(&'a Path),
    Configured(&'a Path),
}

pub(super) async fn verify_command(
    db: &Database,
    audit_config: &AuditConfig,
    expect_heads: &[ExpectedHead],
    checkpoint: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let key = chain_key(audit_config)?;
    let verification = audit::verify_all(&db.pool)
        .await
        .map_err(not_migrated_hint)?;
    let mut failures: Vec<String> = verification
        .findings
        .iter()
        .map(|f| format!("event {}: {}", f.event_id, f.message))
        .collect();
    if verification.more_findings > 0 {
        failures.push(format!(
            "… and {} more findings (the first {} are listed)",
            verification.more_findings,
            audit::MAX_FINDINGS
        ));
    }
    let mut notes = Vec::new();
    for expected in expect_heads {
        if let Err(mismatch) = check_expected_head(&db.pool, expected)
            .await
            .map_err(not_migrated_hint)?
        {
            failures.push(format!("expected head {expected}: {mismatch}"));
        } else {
            notes.push(format!(
                "expected head {expected}: the chain still holds it"
            ));
        }
    }
    let source = match (checkpoint, &audit_config.checkpoint_path) {
        (Some(path), _) => Some(CheckpointSource::Given(path)),
        (None, Some(path)) => Some(CheckpointSource::Configured(path)),
        (None, None) => None,
    };
    if let Some(source) = source {
        let (path, required) = match source {
            CheckpointSource::Given(path) => (path, true),
            CheckpointSource::Configured(path) => (path, false),
        };
        match check_checkpoint(&db.pool, path, key.as_ref()).await {
            Ok(Some((checkpoint, authenticity))) => notes.push(format!(
                "checkpoint {}: the chain still holds position {} from {} ({})",
                path.display(),
                checkpoint.position,
                checkpoint
                    .written_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                match authenticity {
                    Authenticity::Verified => "its MAC is verified with [audit] chain_key",
                    Authenticity::Unchecked =>
                        "it has a MAC, but without [audit] chain_key it cannot be checked",
                    Authenticity::Unkeyed =>
                        "written without a chain key: whoever can write the file could have forged it",
                }
            )),
            Ok(None) if required => {
                failures.push(format!("checkpoint {}: there is no such file", path.display()));
            }
            Ok(None) => notes.push(format!(
                "note: no checkpoint at {} yet; `opsbot run` writes one every {}s",
                path.display(),
                audit_config.checkpoint_interval.as_secs()
            )),
            Err(CheckpointError::Database(e)) => return Err(not_migrated_hint(e)),
            Err(e) => failures.push(format!("checkpoint: {e}")),
        }
    }

    let report = &verification.report;
    let mut out = std::io::stdout().lock();
    if failures.is_empty() {
        writeln!(out, "{}", report.summary())?;
    }
    for failure in &failures {
        writeln!(out, "{failure}")?;
    }
    if let Some(head) = &report.head {
        let mac = key
            .as_ref()
            .map(|key| format!(", mac {}", key.head_mac(head.position, &head.hash)))
            .unwrap_or_default();
        eprintln!(
            "head: position {} (event {}), hash {}{mac}; record `{}:{}` elsewhere and check it with --expect-head",
            head.position, head.event_id, head.hash, head.position, head.hash
        );
    }
    for note in notes {
        eprintln!("{note}");
    }
    if let Some(warning) = report.unsealed_warning() {
        eprintln!("{warning}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
