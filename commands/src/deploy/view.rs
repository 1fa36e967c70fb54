//! What people read about a deploy: its status message (edited live as it progresses), the
//! announcements in `[channels] deploys`, and the approval buttons. Platform-neutral
//! ([`Message`]); front doors only translate.

use crate::chat::{Button, ButtonStyle, Embed, Field, Message, Text, TimeStyle};

use super::DeployCatalog;
use super::model::{Deploy, DeployState};

/// Prefix of the custom ids of the Approve and Reject buttons.
pub const APPROVE_BUTTON: &str = "deploy-approve";
pub const REJECT_BUTTON: &str = "deploy-reject";

const GREEN: u32 = 0x2e_a0_43;
const RED: u32 = 0xd0_36_36;
const AMBER: u32 = 0xd9_8e_04;
const BLUE: u32 = 0x1f_6f_eb;
const GREY: u32 = 0x6e_76_81;

/// `deploy #12 api v1.2.3 → production` (or `rollback #13 ...`).
pub fn headline(deploy: &Deploy) -> String {
    format!(
        "{} #{} {} {} → {}",
        if deploy.is_rollback {
            "rollback"
        } else {
            "deploy"
        },
        deploy.id,
        deploy.service,
        deploy.version,
        deploy.environment
    )
}

fn color(state: DeployState) -> u32 {
    match state {
        DeployState::Succeeded => GREEN,
        DeployState::Failed | DeployState::Rejected => RED,
        DeployState::Requested => AMBER,
        DeployState::Approved | DeployState::Running => BLUE,
        DeployState::Cancelled | DeployState::Expired => GREY,
    }
}

/// The status message: title, state in words, who asked and why, approvals, link, detail;
/// with Approve/Reject buttons while approvals are awaited.
/// `catalog` names the backend in words and gives the public URL.
pub fn status_message(deploy: &Deploy, catalog: &DeployCatalog) -> Message {
    let public_url = catalog.public_url.as_deref();
    let mut fields = vec![Field {
        name: "requested by".to_owned(),
        value: Text::from(deploy.requested_by_name.as_str()),
        inline: true,
    }];
    if deploy.approvals_required > 0 {
        let who = if deploy.approved_by.is_empty() {
            "none yet".to_owned()
        } else {
            deploy.approved_by.join(", ")
        };
        fields.push(Field {
            name: "approvals".to_owned(),
            value: Text::from(format!(
                "{}/{}: {who}",
                deploy.approved_by.len(),
                deploy.approvals_required
            )),
            inline: true,
        });
    }
    if !deploy.reason.is_empty() {
        fields.push(Field {
            name: "reason".to_owned(),
            value: Text::from(deploy.reason.as_str()),
            inline: false,
        });
    }
    if deploy.freeze_overridden {
        fields.push(Field {
            name: "⚠️ freeze overridden".to_owned(),
            value: Text::from(format!(
                "{} deployed during a freeze window",
                deploy.requested_by_name
            )),
            inline: false,
        });
    }
    if let Some(link) = &deploy.link {
        fields.push(Field {
            name: "backend".to_owned(),
            value: link_text(link),
            inline: false,
        });
    }
    if !deploy.detail.is_empty() {
        fields.push(Field {
            name: "detail".to_owned(),
            value: Text::new().block(deploy.detail.as_str()),
            inline: false,
        });
    }
    let description = match deploy.state {
        DeployState::Requested => {
            let text = Text::new()
                .strong("requested")
                .plain(format!(
                    ": waiting for {} approval(s) from someone with ",
                    deploy.approvals_required - deploy.approved_by.len() as i32
                ))
                .code(format!("deploy:approve:{}", deploy.environment));
            match deploy.approval_expires_at {
                Some(until) => text.plain(", until ").time(until, TimeStyle::ShortTime),
                None => text,
            }
        }
        DeployState::Approved if deploy.approvals_required == 0 => Text::new()
            .strong("starting")
            .plain(" (no approval needed)"),
        DeployState::Approved => Text::new().strong("approved").plain(": starting"),
        DeployState::Running => Text::new()
            .strong("running")
            .plain(format!(": {}", backend_in_words(deploy, catalog))),
        state => Text::new().strong(state.as_str()),
    };
    let buttons = if deploy.state == DeployState::Requested {
        let binding = format!("{}|{}", deploy.id, binding_hash(deploy));
        vec![
            Button {
                label: "Approve".to_owned(),
                custom_id: format!("{APPROVE_BUTTON}|{binding}"),
                style: ButtonStyle::Success,
            },
            Button {
                label: "Reject".to_owned(),
                custom_id: format!("{REJECT_BUTTON}|{binding}"),
                style: ButtonStyle::Danger,
            },
        ]
    } else {
        Vec::new()
    };
    Message {
        content: Text::new(),
        embeds: vec![Embed {
            title: headline(deploy),
            description,
            url: public_url.map(|base| format!("{base}/deploys/{}", deploy.id)),
            color: Some(color(deploy.state)),
            fields,
            footer: Some(format!("correlation {}", deploy.correlation_id)),
        }],
        buttons,
        ..Message::default()
    }
}

/// The deploy's backend as configured now (`./scripts/deploy.sh`, `GitHub Actions acme/api
/// deploy.yml@main`), or its kind when the service is no longer configured.
pub fn backend_in_words(deploy: &Deploy, catalog: &DeployCatalog) -> String {
    catalog
        .services
        .get(&deploy.service)
        .map(|service| service.backend.describe(&deploy.environment))
        .unwrap_or_else(|| deploy.backend.clone())
}

/// A deploy's backend link as stored (`[label](url)`, the form the link column has always
/// held), as a typed link; anything else as plain text.
pub fn link_text(stored: &str) -> Text {
    let parsed = stored
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]("))
        .and_then(|(label, rest)| rest.strip_suffix(')').map(|url| (label, url)));
    match parsed {
        Some((label, url)) => Text::new().link(label, url),
        None => Text::from(stored),
    }
}

/// The one-line announcement of a transition in `[channels] deploys`.
pub fn announcement(deploy: &Deploy, by: &str) -> Message {
    let icon = match deploy.state {
        DeployState::Requested => "📝",
        DeployState::Approved => "👍",
        DeployState::Running => "🚀",
        DeployState::Succeeded => "✅",
        DeployState::Failed => "❌",
        DeployState::Rejected => "🛑",
        DeployState::Cancelled | DeployState::Expired => "⌛",
    };
    // With no approval to wait for, "approved" would claim a decision nobody made.
    let (icon, state) = match deploy.state {
        DeployState::Approved if deploy.approvals_required == 0 => ("▶️", "starting"),
        state => (icon, state.as_str()),
    };
    let mut text = Text::new()
        .plain(format!("{icon} {} ", headline(deploy)))
        .strong(state)
        .plain(format!(" (by {by})"));
    if deploy.freeze_overridden
        && matches!(deploy.state, DeployState::Requested | DeployState::Approved)
    {
        text = Text::new()
            .plain("🚨 ")
            .strong("FREEZE OVERRIDDEN")
            .plain(format!(" by {}: ", deploy.requested_by_name))
            .append(text);
    }
    if matches!(deploy.state, DeployState::Failed) && !deploy.detail.is_empty() {
        let first = deploy.detail.lines().last().unwrap_or_default();
        text = text.plain(format!(": {first}"));
    }
    Message::text(text)
}

/// What an Approve/Reject button is bound to: the deploy id, and a hash of its exact
/// service, environment, version and correlation id (custom ids are at most 100 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonBinding {
    pub approve: bool,
    pub deploy_id: i64,
    pub hash: String,
}

/// The first 16 hex digits of sha256 over what an approval is bound to.
pub fn binding_hash(deploy: &Deploy) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "{}|{}|{}|{}",
        deploy.service, deploy.environment, deploy.version, deploy.correlation_id
    ));
    hex::encode(&digest[..8])
}

/// Reads an Approve/Reject custom id; `None` if it is not one.
pub fn parse_button(custom_id: &str) -> Option<ButtonBinding> {
    let (approve, rest) = if let Some(rest) = custom_id.strip_prefix(APPROVE_BUTTON) {
        (true, rest)
    } else {
        (false, custom_id.strip_prefix(REJECT_BUTTON)?)
    };
    let (id, hash) = rest.strip_prefix('|')?.split_once('|')?;
    Some(ButtonBinding {
        approve,
        deploy_id: id.parse().ok()?,
        hash: hash.to_owned(),
    })
}
