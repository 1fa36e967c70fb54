//! `/incident postmortem` end to end: the real bot against the emulator, GitHub as wiremock
//! serving GitHub's documented issue responses. The Markdown is attached (and its shape is a
//! snapshot), the issue is opened once and updated on a second run; the dashboard's
//! `/incidents` pages show the incident, its timeline and the issue.

mod support;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestBot;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "a-dashboard-token-of-at-least-32-bytes!";

fn user() -> Value {
    json!({
        "login": "opsbot", "id": 1, "node_id": "MDQ6VXNlcjE=",
        "avatar_url": "https://github.com/images/error/octocat_happy.gif", "gravatar_id": "",
        "url": "https://api.github.com/users/opsbot", "html_url": "https://github.com/opsbot",
        "followers_url": "https://api.github.com/users/opsbot/followers",
        "following_url": "https://api.github.com/users/opsbot/following{/other_user}",
        "gists_url": "https://api.github.com/users/opsbot/gists{/gist_id}",
        "starred_url": "https://api.github.com/users/opsbot/starred{/owner}{/repo}",
        "subscriptions_url": "https://api.github.com/users/opsbot/subscriptions",
        "organizations_url": "https://api.github.com/users/opsbot/orgs",
        "repos_url": "https://api.github.com/users/opsbot/repos",
        "events_url": "https://api.github.com/users/opsbot/events{/privacy}",
        "received_events_url": "https://api.github.com/users/opsbot/received_events",
        "type": "User", "site_admin": false
    })
}

/// An issue as GitHub's REST API returns it (`POST/PATCH /repos/{owner}/{repo}/issues`).
fn issue(number: u64, title: &str) -> Value {
    let api = "https://api.github.com/repos/acme/postmortems";
    json!({
        "id": 1_000 + number, "node_id": "MDU6SXNzdWUx",
        "url": format!("{api}/issues/{number}"), "repository_url": api,
        "labels_url": format!("{api}/issues/{number}/labels{{/name}}"),
        "comments_url": format!("{api}/issues/{number}/comments"),
        "events_url": format!("{api}/issues/{number}/events"),
        "html_url": format!("https://github.com/acme/postmortems/issues/{number}"),
        "number": number, "state": "open", "state_reason": null, "title": title,
        "body": "…", "user": user(),
        "labels": [{ "id": 208045946, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
                     "url": format!("{api}/labels/postmortem"), "name": "postmortem",
                     "description": null, "color": "f29513", "default": false }],
        "assignee": null, "assignees": [], "milestone": null, "locked": false,
        "active_lock_reason": null, "comments": 0, "closed_at": null,
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
        "author_association": "COLLABORATOR"
    })
}

/// `line` with every `2026-12-01 10:00:00 UTC` replaced by `<time>`.
fn without_times(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(" UTC") {
        let start = at.saturating_sub(19);
        let candidate = &rest[start..at];
        let is_time = candidate.len() == 19
            && candidate.as_bytes()[4] == b'-'
            && candidate.as_bytes()[13] == b':';
        if is_time {
            out.push_str(&rest[..start]);
            out.push_str("<time>");
        } else {
            out.push_str(&rest[..at + 4]);
        }
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_postmortem_is_attached_and_becomes_one_github_issue(pool: PgPool) {
    let github = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/postmortems/issues"))
        .and(header("authorization", "Bearer ghp_test"))
        .and(body_partial_json(
            json!({ "title": "Postmortem: #1 Checkout down", "labels": ["postmortem", "sev1"] }),
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(issue(42, "Postmortem: #1 Checkout down")),
        )
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/postmortems/issues/42"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(issue(42, "Postmortem: #1 Checkout down")),
        )
        .expect(1)
        .mount(&github)
        .await;
    let secrets = tempfile::tempdir().expect("dir");
    let token_file = secrets.path().join("github");
    std::fs::write(&token_file, "ghp_test\n").expect("token");
    let dashboard_file = secrets.path().join("dashboard");
    std::fs::write(&dashboard_file, TOKEN).expect("token");
    let config = format!(
        r##"
[roles]
ops = ["incident:*", "audit:read"]
[http]
listen = "127.0.0.1:0"
dashboard_tokens = ["file:{dashboard}"]
[channels]
incidents = 222000000000000222
incident_category = 444000000000000444
[incidents.severities.sev1]
description = "customer-facing outage"
[incidents.github]
repo = "acme/postmortems"
token = "file:{token}"
labels = ["postmortem", "sev1"]
api_base = "{base}"
"##,
        dashboard = dashboard_file.display(),
        token = token_file.display(),
        base = github.uri(),
    );
    let mut bot = TestBot::with_config(pool.clone(), &config).await;

    bot.say(
        "ana",
        &["ops"],
        "/incident declare title:\"Checkout down\" severity:sev1 services:api",
    )
    .await;
    bot.say(
        "ana",
        &["ops"],
        "/incident note id:1 text:\"5xx | from the LB\"",
    )
    .await;
    bot.say(
        "ana",
        &["ops"],
        "/incident resolve id:1 summary:\"config rolled back\"",
    )
    .await;

    let denied = bot.say("eve", &[], "/incident postmortem id:1").await;
    assert!(
        denied.content.contains("incident:update"),
        "{}",
        denied.content
    );

    let first = bot.say("ana", &["ops"], "/incident postmortem id:1").await;
    assert!(first.content.contains("GitHub issue"), "{}", first.content);
    assert!(first.content.contains("opened"), "{}", first.content);
    assert!(first.pings.nobody());
    let (name, bytes) = first
        .files
        .first()
        .cloned()
        .expect("the postmortem is attached");
    assert_eq!(name, "postmortem-inc-1.md");
    let markdown = String::from_utf8(bytes).expect("UTF-8");
    // Times vary; the shape does not.
    let shape: Vec<String> = markdown
        .lines()
        .map(without_times)
        .map(|l| match l.split_once("(after ") {
            Some((head, _)) => format!("{head}(after <duration>) |"),
            None => l,
        })
        .collect();
    insta::assert_snapshot!(shape.join("\n"), @r"
    # Postmortem: #1 Checkout down

    | | |
    |---|---|
    | Severity | sev1 — customer-facing outage |
    | Status | resolved |
    | Started | <time> |
    | Resolved | <time> (after <duration>) |
    | Services | api |
    | Declared by | ana |

    ## Summary

    config rolled back

    ## Impact

    _Who was affected, how, and for how long. To be written._

    ## Roles

    Nobody took a role.

    ## Timeline (UTC)

    | Time | What | Who | Detail |
    |---|---|---|---|
    | <time> | declared | ana | incident #1 Checkout down (sev1) |
    | <time> | note | ana | note: 5xx \| from the LB |
    | <time> | resolved | ana | resolved: config rolled back |

    ## Contributing deploys

    No deploy of its services from an hour before it started until it ended.

    ## Alerts

    No alert about its services fired in that time.

    ## Action items

    - [ ] _What will keep this from happening again (owner, due date)_
    ");

    let second = bot.say("ana", &["ops"], "/incident postmortem id:1").await;
    assert!(second.content.contains("updated"), "{}", second.content);

    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome, detail FROM audit_events WHERE command = 'incident postmortem' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("events");
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[1].1,
        "postmortem of incident 1 written; GitHub issue #42 opened"
    );
    assert_eq!(
        events[2].1,
        "postmortem of incident 1 written; GitHub issue #42 updated"
    );

    // The dashboard shows it.
    let base = format!(
        "http://{}",
        bot.services
            .as_ref()
            .expect("services")
            .http_addr
            .expect("http")
    );
    let http = reqwest::Client::new();
    let get = |uri: String| {
        let http = http.clone();
        async move {
            let response = http.get(uri).bearer_auth(TOKEN).send().await.expect("get");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    };
    let (status, list) = get(format!("{base}/incidents?status=resolved")).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("<a href=\"/incidents/1\">#1 Checkout down</a>"),
        "{list}"
    );
    let (_, none) = get(format!("{base}/incidents?status=open")).await;
    assert!(none.contains("No incidents match these filters"), "{none}");
    let (status, page) = get(format!("{base}/incidents/1")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("GitHub issue #42"), "{page}");
    assert!(page.contains("5xx | from the LB"), "{page}");
    let (status, bad) = get(format!("{base}/incidents?status=burning")).await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = get(format!("{base}/incidents/99")).await;
    assert_eq!(status, 404);
}
