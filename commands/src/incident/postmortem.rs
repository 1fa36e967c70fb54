//! `/incident postmortem` (needs `incident:update`): a Markdown write-up of the incident —
//! summary, impact, severity and duration, roles, the whole timeline, the deploys and alerts
//! of its services, action items to fill in — attached to the reply. With
//! `[incidents.github]` (repo, token, labels) it also opens a GitHub issue with that body
//! and links it; running it again updates that issue instead of opening a second one (the
//! issue's number is kept in `incident_postmortems`).

use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use secrecy::{ExposeSecret as _, SecretString};

use super::IncidentCatalog;
use super::commands::Target;
use super::model::Incident;
use super::timeline::{Entry, EntryKind};
use super::view;
use crate::desk::{Desk, Invocation};
use crate::error::CommandError;

/// `[incidents.github]`: where postmortems become issues.
#[derive(Debug, Clone)]
pub struct GithubIssues {
    /// `owner/name`.
    pub repo: String,
    pub token: SecretString,
    pub labels: Vec<String>,
    /// `https://api.github.com`, or a stand-in.
    pub api_base: String,
}

/// What `/incident postmortem` produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Postmortem {
    pub incident_id: i64,
    /// `postmortem-inc-<n>.md`.
    pub file_name: String,
    pub markdown: String,
    /// The GitHub issue, when `[incidents.github]` is configured.
    pub issue: Option<IssueLink>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IssueLink {
    pub number: i64,
    pub url: String,
    /// `false`: an earlier run's issue was updated.
    pub created: bool,
}

impl Desk {
    pub async fn incident_postmortem(
        &self,
        inv: &Invocation,
        target: Target,
    ) -> Result<Postmortem, CommandError> {
        let id = match self.resolve_target(inv, target).await {
            Ok(id) => id,
            Err(e) => return Err(self.refuse(inv, e).await),
        };
        self.authorize(inv, "incident:update", "write postmortems")
            .await?;
        let result = self.write_postmortem(id).await;
        self.conclude(inv, result, |p| match &p.issue {
            None => format!("postmortem of incident {} written", p.incident_id),
            Some(issue) => format!(
                "postmortem of incident {} written; GitHub issue #{} {}",
                p.incident_id,
                issue.number,
                if issue.created { "opened" } else { "updated" }
            ),
        })
        .await
    }

    async fn write_postmortem(&self, id: i64) -> Result<Postmortem, CommandError> {
        let incident = self
            .incident_by_id(id)
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("there is no incident {id}")))?;
        let timeline = self.incident_timeline(&incident).await?;
        let catalog = self.incidents();
        let markdown = markdown(&incident, &timeline, catalog, Utc::now());
        let issue = match &catalog.github {
            None => None,
            Some(github) => Some(self.postmortem_issue(github, &incident, &markdown).await?),
        };
        Ok(Postmortem {
            incident_id: incident.id,
            file_name: format!("postmortem-inc-{}.md", incident.id),
            markdown,
            issue,
        })
    }

    /// Opens the incident's postmortem issue, or updates the one an earlier run opened.
    async fn postmortem_issue(
        &self,
        github: &GithubIssues,
        incident: &Incident,
        body: &str,
    ) -> Result<IssueLink, CommandError> {
        let (owner, repo) = github.repo.split_once('/').ok_or_else(|| {
            CommandError::Invalid(format!(
                "[incidents.github] repo {:?} is not owner/name",
                github.repo
            ))
        })?;
        let octocrab = Octocrab::builder()
            .base_uri(github.api_base.as_str())
            .and_then(|b| b.personal_token(github.token.expose_secret()).build())
            .map_err(CommandError::internal)?;
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT issue_number FROM incident_postmortems WHERE incident_id = $1",
        )
        .bind(incident.id)
        .fetch_optional(&self.pool)
        .await?;
        let title = format!("Postmortem: {}", view::headline(incident));
        let issues = octocrab.issues(owner, repo);
        let (issue, created) = match known {
            Some(number) => {
                let number = u64::try_from(number).unwrap_or_default();
                let updated = issues.update(number).body(body).send().await;
                (updated.map_err(github_failure)?, false)
            }
            None => {
                let opened = issues
                    .create(&title)
                    .body(body)
                    .labels(github.labels.clone())
                    .send()
                    .await;
                (opened.map_err(github_failure)?, true)
            }
        };
        let link = IssueLink {
            number: i64::try_from(issue.number).unwrap_or(i64::MAX),
            url: issue.html_url.to_string(),
            created,
        };
        sqlx::query(
            "INSERT INTO incident_postmortems (incident_id, issue_number, issue_url)
             VALUES ($1, $2, $3)
             ON CONFLICT (incident_id) DO UPDATE SET issue_url = EXCLUDED.issue_url, updated_at = now()",
        )
        .bind(incident.id)
        .bind(link.number)
        .bind(&link.url)
        .execute(&self.pool)
        .await?;
        Ok(link)
    }
}

/// GitHub's refusal in words: the status and GitHub's own message.
fn github_failure(error: octocrab::Error) -> CommandError {
    match &error {
        octocrab::Error::GitHub { source, .. } => CommandError::Unavailable(format!(
            "GitHub refused the postmortem issue ({}: {}); check [incidents.github] repo and token",
            source.status_code.as_u16(),
            source.message
        )),
        _ => CommandError::Unavailable(format!(
            "GitHub could not be reached for the postmortem issue: {}",
            crate::error::ErrorChain(&error)
        )),
    }
}

/// Text for a Markdown table cell: no line breaks, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The postmortem document (pure: everything it says comes from its arguments).
pub fn markdown(
    incident: &Incident,
    timeline: &[Entry],
    catalog: &IncidentCatalog,
    now: DateTime<Utc>,
) -> String {
    let mut out = format!("# Postmortem: {}\n\n", view::headline(incident));
    let severity = catalog
        .severities
        .get(&incident.severity)
        .map(|s| s.description.as_str())
        .filter(|d| !d.is_empty())
        .map_or(incident.severity.clone(), |d| {
            format!("{} — {d}", incident.severity)
        });
    let duration = view::duration_text(incident.duration(now));
    let resolved = match incident.resolved_at {
        Some(at) => format!("{} (after {duration})", utc(at)),
        None => format!("not yet ({duration} so far)"),
    };
    let services = if incident.services.is_empty() {
        "none named".to_owned()
    } else {
        incident.services.join(", ")
    };
    out.push_str("| | |\n|---|---|\n");
    for (key, value) in [
        ("Severity", severity),
        ("Status", incident.status.as_str().to_owned()),
        ("Started", utc(incident.started_at)),
        ("Resolved", resolved),
        ("Services", services),
        ("Declared by", incident.declared_by_name.clone()),
    ] {
        out.push_str(&format!("| {key} | {} |\n", cell(&value)));
    }
    out.push_str("\n## Summary\n\n");
    let summary = incident
        .resolution
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or(incident.description.as_str());
    if summary.trim().is_empty() {
        out.push_str("_What happened, in a few sentences. To be written._\n");
    } else {
        out.push_str(summary.trim());
        out.push('\n');
    }
    out.push_str("\n## Impact\n\n_Who was affected, how, and for how long. To be written._\n");

    out.push_str("\n## Roles\n\n");
    if incident.roles.is_empty() {
        out.push_str("Nobody took a role.\n");
    }
    for spec in &catalog.roles {
        if let Some(held) = incident.holder(&spec.name) {
            out.push_str(&format!(
                "- {}: {} (from {})\n",
                spec.name,
                held.user_name,
                utc(held.assigned_at)
            ));
        }
    }

    out.push_str("\n## Timeline (UTC)\n\n| Time | What | Who | Detail |\n|---|---|---|---|\n");
    for entry in timeline {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            utc(entry.at),
            cell(&entry.what),
            cell(&entry.who),
            cell(&entry.text)
        ));
    }

    out.push_str("\n## Contributing deploys\n\n");
    let deploys: Vec<&Entry> = timeline
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Deploy | EntryKind::Rollback))
        .collect();
    if deploys.is_empty() {
        out.push_str("No deploy of its services from an hour before it started until it ended.\n");
    }
    for entry in deploys {
        out.push_str(&format!(
            "- {} {} by {}: {}\n",
            utc(entry.at),
            entry.what,
            entry.who,
            entry.text
        ));
    }

    out.push_str("\n## Alerts\n\n");
    let alerts: Vec<&Entry> = timeline
        .iter()
        .filter(|e| e.kind == EntryKind::Alert && e.what == "alert fired")
        .collect();
    if alerts.is_empty() {
        out.push_str("No alert about its services fired in that time.\n");
    }
    for entry in alerts {
        out.push_str(&format!("- {} {}\n", utc(entry.at), entry.text));
    }

    out.push_str(
        "\n## Action items\n\n- [ ] _What will keep this from happening again (owner, due date)_\n",
    );
    out
}

impl Desk {
    /// The GitHub issue of incident `id`'s postmortem, if one was opened.
    pub async fn incident_postmortem_issue(
        &self,
        id: i64,
    ) -> Result<Option<(i64, String)>, CommandError> {
        Ok(sqlx::query_as(
            "SELECT issue_number, issue_url FROM incident_postmortems WHERE incident_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

/// The reply to `/incident postmortem` (the document itself is attached by the front door).
pub fn reply(postmortem: &Postmortem) -> crate::chat::Message {
    use crate::chat::{Message, Text};
    let mut text = Text::new()
        .plain("📝 The postmortem of incident ")
        .strong(format!("#{}", postmortem.incident_id))
        .plain(format!(" is attached ({}).", postmortem.file_name));
    if let Some(issue) = &postmortem.issue {
        let verb = if issue.created { "opened" } else { "updated" };
        text = text
            .plain(" GitHub issue ")
            .link(format!("#{}", issue.number), issue.url.clone())
            .plain(format!(" {verb}."));
    }
    Message::text(text)
}
