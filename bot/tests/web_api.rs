//! The audit API (`/api/audit`, `/api/audit.csv`, `/api/audit.jsonl`) through the real
//! router, against real Postgres.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use opsbot::web::api::parse_filters;
use opsbot::web::{WebState, router};
use opsbot_commands::Desk;
use opsbot_commands::access::RoleMap;
use opsbot_commands::actor::Source;
use opsbot_commands::audit::{self, NewEvent, Outcome, append, seal_pending};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt as _;

fn app(pool: &PgPool) -> Router {
    router(WebState {
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), RoleMap::default()),
        dashboard: std::sync::Arc::new(opsbot::web::auth::Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: opsbot::web::auth::Dashboard::key_from(None),
            session_ttl: std::time::Duration::from_secs(3600),
            secure_cookies: false,
            discord: None,
            attempts: Default::default(),
        }),
    })
}

/// The dashboard token every request here carries (the API is behind authentication).
const TOKEN: &str = "test-dashboard-token-of-at-least-32-bytes";

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

async fn get(pool: &PgPool, uri: &str) -> Answer {
    let request = Request::get(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("a request");
    let response = app(pool).oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the whole body");
    let body = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    Answer {
        status,
        headers,
        body,
    }
}

/// The ids `/api/audit` returns for `query`, asserting it is a single, last page.
async fn ids(pool: &PgPool, query: &str) -> Vec<i64> {
    let answer = get(pool, &format!("/api/audit?{query}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
    let page = answer.json();
    assert_eq!(page["next_cursor"], Value::Null, "{query}");
    event_ids(&page["events"])
}

/// Whether `event` is the record the API made of one of this test's own requests (each
/// query and export is audited, one event per request).
fn is_own_record(event: &Value) -> bool {
    event["actor_name"] == "token"
        && event["source"] == "web"
        && event["command"]
            .as_str()
            .is_some_and(|c| c == "audit api" || c.starts_with("audit export"))
}

/// The ids of `events`, leaving out the API's records of this test's own requests.
fn event_ids(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .expect("an array")
        .iter()
        .filter(|e| !is_own_record(e))
        .map(|e| e["id"].as_i64().expect("an id"))
        .collect()
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn event(command: &str) -> NewEvent {
    NewEvent {
        actor_id: 1,
        actor_name: "alice".into(),
        source: Source::Discord,
        guild_id: Some(100),
        channel_id: Some(200),
        interaction_id: None,
        command: command.into(),
        args: json!({}),
        outcome: Outcome::Ok,
        detail: String::new(),
        correlation_id: None,
    }
}

async fn insert(pool: &PgPool, events: &[NewEvent]) -> Vec<i64> {
    let mut tx = pool.begin().await.expect("begin");
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        ids.push(append(&mut *tx, e).await.expect("append"));
    }
    tx.commit().await.expect("commit");
    ids
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn each_filter_narrows(pool: PgPool) {
    let inserted = insert(
        &pool,
        &[
            NewEvent {
                args: json!({"service": "api"}),
                ..event("deploy run")
            },
            NewEvent {
                actor_id: 2,
                actor_name: "Bob".into(),
                source: Source::Shell,
                ..event("deploy status")
            },
            event("deploy"),
            NewEvent {
                outcome: Outcome::Denied,
                source: Source::Web,
                ..event("deployment")
            },
            NewEvent {
                actor_id: 3,
                actor_name: "carol".into(),
                args: json!({"pattern": "100%_done"}),
                ..event("whoami")
            },
            NewEvent {
                actor_id: 3,
                actor_name: "carol".into(),
                detail: "100 and done".into(),
                ..event("whoami")
            },
        ],
    )
    .await;
    let [run, status, deploy, deployment, literal, lookalike] = inserted[..] else {
        panic!("six events")
    };

    assert_eq!(
        ids(&pool, "").await,
        [lookalike, literal, deployment, deploy, status, run]
    );
    // Empty values are "any", as an unused HTML form field sends them.
    assert_eq!(
        ids(&pool, "actor=&outcome=&since=&limit=&cursor=")
            .await
            .len(),
        6
    );

    assert_eq!(ids(&pool, "actor=bob").await, [status]);
    assert_eq!(ids(&pool, "actor=%40BOB").await, [status]);
    assert_eq!(ids(&pool, "actor=2").await, [status]);
    assert_eq!(ids(&pool, "actor=nobody").await, [] as [i64; 0]);

    assert_eq!(ids(&pool, "command=deploy").await, [deploy, status, run]);
    assert_eq!(ids(&pool, "command=deploy+run").await, [run]);
    assert_eq!(ids(&pool, "command=deploy%20run").await, [run]);

    assert_eq!(ids(&pool, "outcome=denied").await, [deployment]);
    assert_eq!(ids(&pool, "outcome=DENIED").await, [deployment]);
    assert_eq!(ids(&pool, "source=shell").await, [status]);
    assert_eq!(ids(&pool, "source=web").await, [deployment]);

    assert_eq!(ids(&pool, "q=API").await, [run]);
    assert_eq!(ids(&pool, "q=ployme").await, [deployment]);
    assert_eq!(ids(&pool, "q=and+done").await, [lookalike]);
    // `%` and `_` are literal: as LIKE wildcards, `100%_` would match "100 and done" too.
    assert_eq!(
        ids(&pool, &format!("q={}", encode("100%_"))).await,
        [literal]
    );
    assert_eq!(
        ids(&pool, &format!("q={}", encode("100%"))).await,
        [literal]
    );
    // The search index joins command, detail and args with spaces; a match across that
    // seam is not a match (the command is "deploy run", its detail empty, its args JSON).
    assert_eq!(
        ids(&pool, &format!("q={}", encode("run  {"))).await,
        [] as [i64; 0]
    );
    // Fewer than 3 letters or digits in a row: refused, saying why, instead of a full scan.
    for short in ["0%", "db", "a b"] {
        let answer = get(&pool, &format!("/api/audit?q={}", encode(short))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{short}");
        assert!(
            answer
                .body
                .contains("at least 3 letters or digits in a row"),
            "{short}: {}",
            answer.body
        );
    }

    assert_eq!(
        ids(&pool, "actor=alice&command=deploy&source=discord").await,
        [deploy, run]
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn since_is_inclusive_and_until_exclusive(pool: PgPool) {
    let inserted = insert(&pool, &[event("a"), event("b"), event("c")]).await;
    let page = get(&pool, "/api/audit").await.json();
    let mut at: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| !is_own_record(e))
        .map(|e| e["at"].as_str().expect("at").to_owned())
        .collect();
    at.reverse();
    let instants: Vec<_> = at
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("RFC 3339"))
        .collect();
    assert!(instants.is_sorted() && instants[0] < instants[2], "{at:?}");
    let (first, second, third) = (inserted[0], inserted[1], inserted[2]);

    let since = |t: &str| format!("since={}", encode(t));
    let until = |t: &str| format!("until={}", encode(t));
    assert_eq!(ids(&pool, &since(&at[1])).await, [third, second]);
    assert_eq!(ids(&pool, &until(&at[1])).await, [first]);
    assert_eq!(
        ids(&pool, &format!("{}&{}", since(&at[0]), until(&at[2]))).await,
        [second, first]
    );
    assert_eq!(
        ids(&pool, &format!("{}&{}", since(&at[1]), until(&at[2]))).await,
        [second]
    );

    // The same instant with another offset is the same filter.
    let shifted = instants[1]
        .with_timezone(&chrono::FixedOffset::east_opt(3600).expect("an offset"))
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    assert!(shifted.contains("+01:00"), "{shifted}");
    assert_eq!(ids(&pool, &since(&shifted)).await, [third, second]);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn pages_follow_the_cursor_to_the_last_one(pool: PgPool) {
    let mut inserted = insert(&pool, &vec![event("whoami"); 5]).await;
    inserted.reverse();

    // (Each request is audited too, as a web event: `source=discord` leaves those out.)
    // Exactly `limit` events: one page, no cursor.
    assert_eq!(ids(&pool, "source=discord&limit=5").await, inserted);

    // `limit + 1` events: a second page of one.
    let page = get(&pool, "/api/audit?source=discord&limit=4").await.json();
    assert_eq!(event_ids(&page["events"]), inserted[..4]);
    assert_eq!(page["next_cursor"], json!(inserted[3].to_string()));
    let cursor = page["next_cursor"].as_str().expect("a cursor");
    assert_eq!(
        ids(&pool, &format!("source=discord&limit=4&cursor={cursor}")).await,
        inserted[4..]
    );

    // Pages of two: 2 + 2 + 1, each cursor the id of the previous page's last event.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/audit?source=discord&limit=2&cursor={c}"),
            None => "/api/audit?source=discord&limit=2".to_owned(),
        };
        let page = get(&pool, &query).await.json();
        pages += 1;
        seen.extend(event_ids(&page["events"]));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((pages, seen), (3, inserted.clone()));

    // The cursor of the last event: nothing older.
    let oldest = inserted[4];
    assert_eq!(
        ids(&pool, &format!("cursor={oldest}")).await,
        [] as [i64; 0]
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn invalid_parameters_are_refused_and_named(pool: PgPool) {
    let mut table = String::new();
    for query in [
        "/api/audit?since=yesterday",
        "/api/audit?until=2026-11-31",
        "/api/audit?since=2026-11-28T09:00:00+01:00",
        "/api/audit?since=2026-11-28T10:00:00Z&until=2026-11-28T09:00:00Z",
        "/api/audit?limit=0",
        "/api/audit?limit=501",
        "/api/audit?limit=ten",
        "/api/audit?cursor=abc",
        "/api/audit?cursor=-5",
        "/api/audit?outcome=okay",
        "/api/audit?source=slack",
        "/api/audit?outcom=ok",
        "/api/audit?actor=alice&actor=bob",
        "/api/audit.csv?cursor=10",
        "/api/audit.jsonl?limit=10",
        "/api/audit.csv?actr=alice",
    ] {
        let answer = get(&pool, query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.header(header::CONTENT_TYPE), "application/json");
        let error = answer.json();
        let parameter = error["parameter"].as_str().expect("a parameter");
        assert!(
            error["error"]
                .as_str()
                .expect("a message")
                .contains(parameter),
            "{error}"
        );
        table.push_str(&format!("{query}\n  {}\n", answer.body));
    }
    insta::assert_snapshot!(table, @r#"
    /api/audit?since=yesterday
      {"error":"since: \"yesterday\" is not an RFC 3339 time or a date, e.g. 2026-11-28T09:00:00Z or 2026-11-28","parameter":"since"}
    /api/audit?until=2026-11-31
      {"error":"until: \"2026-11-31\" is not an RFC 3339 time or a date, e.g. 2026-11-28T09:00:00Z or 2026-11-28","parameter":"until"}
    /api/audit?since=2026-11-28T09:00:00+01:00
      {"error":"since: \"2026-11-28T09:00:00 01:00\" is not an RFC 3339 time or a date, e.g. 2026-11-28T09:00:00Z or 2026-11-28 (a + in a URL must be written %2B)","parameter":"since"}
    /api/audit?since=2026-11-28T10:00:00Z&until=2026-11-28T09:00:00Z
      {"error":"until: 2026-11-28T09:00:00Z is not after since (2026-11-28T10:00:00Z); the range would be empty","parameter":"until"}
    /api/audit?limit=0
      {"error":"limit: 0 is out of range; give 1 to 500 and follow next_cursor for more","parameter":"limit"}
    /api/audit?limit=501
      {"error":"limit: 501 is out of range; give 1 to 500 and follow next_cursor for more","parameter":"limit"}
    /api/audit?limit=ten
      {"error":"limit: \"ten\" is not a number; give 1 to 500 and follow next_cursor for more","parameter":"limit"}
    /api/audit?cursor=abc
      {"error":"cursor: \"abc\" is not a cursor; pass the next_cursor of the previous page","parameter":"cursor"}
    /api/audit?cursor=-5
      {"error":"cursor: \"-5\" is not a cursor; pass the next_cursor of the previous page","parameter":"cursor"}
    /api/audit?outcome=okay
      {"error":"outcome: \"okay\" is not an outcome; one of ok, denied, invalid, conflict, refused, error, requested, approved, started, succeeded, failed, rejected, expired, cancelled","parameter":"outcome"}
    /api/audit?source=slack
      {"error":"source: \"slack\" is not a source; one of discord, shell, web, scheduler, webhook","parameter":"source"}
    /api/audit?outcom=ok
      {"error":"unknown parameter \"outcom\"; known parameters: actor, command, outcome, source, since, until, q, cursor, limit","parameter":"outcom"}
    /api/audit?actor=alice&actor=bob
      {"error":"actor is given twice; each filter takes one value","parameter":"actor"}
    /api/audit.csv?cursor=10
      {"error":"cursor is not accepted here: an export always starts from the newest matching event; narrow it with until","parameter":"cursor"}
    /api/audit.jsonl?limit=10
      {"error":"limit is not accepted here: an export holds every matching event; narrow it with since and until","parameter":"limit"}
    /api/audit.csv?actr=alice
      {"error":"unknown parameter \"actr\"; known parameters: actor, command, outcome, source, since, until, q, cursor, limit","parameter":"actr"}
    "#);
}

#[test]
fn parse_filters_serves_html_forms_too() {
    let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let query = parse_filters(&form(&[
        ("actor", " alice "),
        ("command", "deploy"),
        ("outcome", ""),
        ("q", " run"),
    ]))
    .expect("valid");
    assert_eq!(query.actor.as_deref(), Some("alice"));
    assert_eq!(query.command.as_deref(), Some("deploy"));
    assert_eq!(query.outcome, None);
    assert_eq!(query.text.as_deref(), Some(" run"));
    assert_eq!(query.limit, opsbot::web::api::DEFAULT_LIMIT);
    let error = parse_filters(&form(&[("since", "soon")])).expect_err("refused");
    assert_eq!(error.parameter.as_deref(), Some("since"));
    assert_eq!(
        error.to_string(),
        "since: \"soon\" is not an RFC 3339 time or a date, e.g. 2026-11-28T09:00:00Z or 2026-11-28"
    );
    // A date alone: since from its start, until to its end, so one date is that whole day.
    let day =
        parse_filters(&form(&[("since", "2026-11-28"), ("until", "2026-11-28")])).expect("a day");
    assert_eq!(
        day.since.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-28T00:00:00+00:00")
    );
    assert_eq!(
        day.until.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-29T00:00:00+00:00")
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_database_that_does_not_answer_is_a_503(pool: PgPool) {
    insert(&pool, &[event("whoami")]).await;
    pool.close().await;
    for uri in ["/api/audit", "/api/audit.csv", "/api/audit.jsonl"] {
        let answer = get(&pool, uri).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(
            answer.json(),
            json!({"error": "the database is not answering; nothing was changed, try again in a moment"})
        );
    }
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn an_export_cut_short_breaks_instead_of_ending_cleanly(pool: PgPool) {
    insert(&pool, &vec![event("whoami"); 501]).await;
    let request = Request::get("/api/audit.jsonl")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("a request");
    let response = app(&pool).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    // The first page is fetched; the second cannot be.
    pool.close().await;
    assert!(to_bytes(response.into_body(), usize::MAX).await.is_err());
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn csv_quotes_and_defuses_formulas(pool: PgPool) {
    let [id] = insert(
        &pool,
        &[NewEvent {
            actor_name: "@mallory".into(),
            args: json!({"note": "say \"hi\", then\nleave", "cmd": "=cmd|' /C calc'!A0"}),
            detail: "=1+2, \"quoted\"\nsecond line".into(),
            interaction_id: Some(42),
            ..event("audit recent")
        }],
    )
    .await[..] else {
        panic!("one event")
    };
    // The export first: the API's record of the query below would be a row of it.
    let answer = get(&pool, "/api/audit.csv").await;
    let at = get(&pool, "/api/audit?source=discord").await.json()["events"][0]["at"]
        .as_str()
        .expect("at")
        .to_owned();

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header(header::CONTENT_TYPE),
        "text/csv; charset=utf-8"
    );
    let disposition = answer.header(header::CONTENT_DISPOSITION);
    assert!(
        disposition.starts_with("attachment; filename=\"opsbot-audit-")
            && disposition.ends_with("Z.csv\""),
        "{disposition}"
    );
    let header = "id,at,actor_id,actor_name,source,guild_id,channel_id,interaction_id,command,\
                  args,outcome,detail,correlation_id,position,hash";
    let row = format!(
        r#"{id},{at},1,'@mallory,discord,100,200,42,audit recent,"{{""cmd"":""=cmd|' /C calc'!A0"",""note"":""say \""hi\"", then\nleave""}}",ok,"'=1+2, ""quoted""{newline}second line",,,"#,
        newline = '\n'
    );
    let expected = format!("{header}\r\n{row}\r\n");
    assert_eq!(answer.body, expected);

    // Read back by an RFC 4180 reader, the cells are the event's (the `'` aside).
    let rows = parse_csv(&answer.body);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].len(), 15);
    assert_eq!(rows[1][3], "'@mallory");
    let args: Value = serde_json::from_str(&rows[1][9]).expect("args are JSON");
    assert_eq!(args["note"], "say \"hi\", then\nleave");
    assert_eq!(rows[1][11], "'=1+2, \"quoted\"\nsecond line");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn csv_defuses_cells_that_spreadsheets_read_as_formulas(pool: PgPool) {
    let starts = [
        "\n=1+2",
        " =1+2",
        "\u{a0}=1+2",
        "\u{3000}=1+2",
        "＝1+2",
        "＋1",
        "－1",
        "＠SUM(A1)",
        "|calc!A0",
        "\t=1",
        "\r=1",
        "=1",
        "+1",
        "-1",
        "@SUM(A1)",
    ];
    let events: Vec<NewEvent> = starts
        .iter()
        .map(|start| NewEvent {
            detail: (*start).to_owned(),
            ..event("whoami")
        })
        .collect();
    insert(&pool, &events).await;
    insert(
        &pool,
        &[NewEvent {
            detail: "plain, and 1+2=3 inside".into(),
            ..event("whoami")
        }],
    )
    .await;
    let answer = get(&pool, "/api/audit.csv").await;
    assert_eq!(answer.status, StatusCode::OK);
    let rows = parse_csv(&answer.body);
    let details: Vec<&str> = rows[1..].iter().map(|row| row[11].as_str()).collect();
    assert_eq!(details[0], "plain, and 1+2=3 inside", "newest first");
    let defused: Vec<String> = starts.iter().rev().map(|s| format!("'{s}")).collect();
    assert_eq!(details[1..], defused);
}

/// A strict RFC 4180 reader: rows end with CRLF, quoted cells double their quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => {
                assert!(!matches!(c, '"' | '\n'), "unquoted {c:?}");
                cell.push(c);
            }
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "text ends mid-row"
    );
    rows
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn jsonl_lines_are_the_events_of_the_api_and_of_audit_tail(pool: PgPool) {
    insert(
        &pool,
        &[
            NewEvent {
                args: json!({"service": "api", "nested": [1, {"a": null}]}),
                correlation_id: Some(uuid::Uuid::new_v4()),
                ..event("deploy run")
            },
            NewEvent {
                guild_id: None,
                channel_id: None,
                outcome: Outcome::Failed,
                detail: "line one\nline two".into(),
                ..event("deploy run")
            },
        ],
    )
    .await;
    seal_pending(&pool).await.expect("seal");
    insert(&pool, &[event("whoami")]).await; // one unsealed: position and hash are null

    let seeded = |events: Vec<Value>| -> Value {
        Value::Array(events.into_iter().filter(|e| !is_own_record(e)).collect())
    };
    let api = get(&pool, "/api/audit").await.json()["events"].clone();
    let api = seeded(api.as_array().expect("events").clone());
    let jsonl = get(&pool, "/api/audit.jsonl").await;
    assert_eq!(jsonl.header(header::CONTENT_TYPE), "application/x-ndjson");
    assert!(
        jsonl
            .header(header::CONTENT_DISPOSITION)
            .ends_with("Z.jsonl\"")
    );
    assert!(jsonl.body.ends_with('\n'));
    let lines: Vec<Value> = jsonl
        .body
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(seeded(lines), api);

    // The fields of `opsbot audit tail --json`, which prints `serde_json::to_string(&event)`.
    let mut tail = audit::tail(&pool, 10).await.expect("tail");
    tail.reverse();
    let tail = serde_json::to_value(&tail).expect("JSON");
    assert_eq!(api, seeded(tail.as_array().expect("events").clone()));
    assert!(
        api[0]["hash"].is_null() && api[1]["hash"].is_string(),
        "{api}"
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn exports_span_many_pages_complete_and_in_order(pool: PgPool) {
    let events: Vec<NewEvent> = (0..1201)
        .map(|i| NewEvent {
            actor_name: if i % 3 == 0 { "bob" } else { "alice" }.into(),
            args: json!({"i": i}),
            ..event("whoami")
        })
        .collect();
    let mut inserted = insert(&pool, &events).await;
    inserted.reverse();

    let csv = get(&pool, "/api/audit.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    let rows = parse_csv(&csv.body);
    let csv_ids: Vec<i64> = rows[1..]
        .iter()
        .map(|row| row[0].parse().expect("an id"))
        .collect();
    assert_eq!(csv_ids, inserted);

    let jsonl = get(&pool, "/api/audit.jsonl").await;
    let jsonl_ids: Vec<i64> = jsonl
        .body
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON"))
        .filter(|e| !is_own_record(e))
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(jsonl_ids, inserted);

    // Filters apply across pages: 801 alice events are two internal pages.
    let alice: Vec<i64> = inserted
        .iter()
        .zip(events.iter().rev())
        .filter(|(_, e)| e.actor_name == "alice")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(alice.len(), 800);
    let filtered = get(&pool, "/api/audit.jsonl?actor=alice").await;
    let filtered_ids: Vec<i64> = filtered
        .body
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).expect("JSON")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(filtered_ids, alice);

    // The page API defaults to 50 events.
    let page = get(&pool, "/api/audit?source=discord").await.json();
    assert_eq!(event_ids(&page["events"]), inserted[..50]);
    assert_eq!(page["next_cursor"], json!(inserted[49].to_string()));
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn markup_in_events_comes_back_as_data(pool: PgPool) {
    let script = "<script>alert(1)</script>";
    insert(
        &pool,
        &[NewEvent {
            args: json!({"note": script}),
            detail: script.into(),
            ..event("whoami")
        }],
    )
    .await;
    let answer = get(&pool, "/api/audit?source=discord").await;
    assert_eq!(answer.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(answer.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let events = answer.json()["events"].clone();
    assert_eq!(events[0]["args"], json!({"note": script}));
    assert_eq!(events[0]["detail"], script);
}

/// The audit events the API wrote about this test's own requests, oldest first.
async fn own_records(pool: &PgPool) -> Vec<(String, Value, String, String)> {
    sqlx::query_as(
        "SELECT command, args, outcome, detail FROM audit_events \
         WHERE source = 'web' AND actor_name = 'token' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("own records")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn every_query_and_export_is_recorded_once_with_its_filters_and_count(pool: PgPool) {
    insert(&pool, &vec![event("whoami"); 3]).await;
    assert_eq!(
        get(&pool, "/api/audit?actor=alice&limit=2").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&pool, "/api/audit.csv?command=whoami").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&pool, "/api/audit?limit=zero").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&pool, "/api/audit.jsonl?cursor=5").await.status,
        StatusCode::BAD_REQUEST
    );
    let records = own_records(&pool).await;
    assert_eq!(
        records,
        [
            (
                "audit api".to_owned(),
                json!({"actor": "alice", "limit": "2"}),
                "ok".to_owned(),
                "2 events".to_owned()
            ),
            (
                "audit export csv".to_owned(),
                json!({"command": "whoami"}),
                "ok".to_owned(),
                "3 events exported".to_owned()
            ),
            (
                "audit api".to_owned(),
                json!({"limit": "zero"}),
                "invalid".to_owned(),
                "limit: \"zero\" is not a number; give 1 to 500 and follow next_cursor for more"
                    .to_owned()
            ),
            (
                "audit export jsonl".to_owned(),
                json!({"cursor": "5"}),
                "invalid".to_owned(),
                "cursor is not accepted here: an export always starts from the newest matching event; narrow it with until"
                    .to_owned()
            ),
        ]
    );
}
