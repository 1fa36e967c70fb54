//! The emulator against Discord's official OpenAPI spec: every REST route the emulator serves
//! is called as serenity and poise call it, and each answer is validated (JSON Schema 2020-12)
//! against the response the spec gives for that operation and status, so the emulator cannot
//! drift from real Discord unnoticed. A route added to the emulator's router without a row in
//! [`ROUTES`] fails the table test.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use jsonschema::Validator;
use opsbot::emulator::{Emulator, GuildSpec};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where to point the test at the spec when it is not in the shared fixtures.
const SPEC_ENV: &str = "OPSBOT_DISCORD_OPENAPI";

/// The emulator serves Discord's routes under this prefix; the spec's paths have none.
const API_PREFIX: &str = "/api/v10";

/// Every route the emulator's router serves: (method, emulator template, spec template).
/// Emulator templates are as in `rest.rs` without [`API_PREFIX`].
#[rustfmt::skip]
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET",    "/gateway",                                       "/gateway"),
    ("GET",    "/gateway/bot",                                   "/gateway/bot"),
    ("GET",    "/users/@me",                                     "/users/@me"),
    ("GET",    "/oauth2/applications/@me",                       "/oauth2/applications/@me"),
    ("PUT",    "/applications/{app}/commands",                   "/applications/{application_id}/commands"),
    ("GET",    "/applications/{app}/commands",                   "/applications/{application_id}/commands"),
    ("PUT",    "/applications/{app}/guilds/{guild}/commands",    "/applications/{application_id}/guilds/{guild_id}/commands"),
    ("GET",    "/applications/{app}/guilds/{guild}/commands",    "/applications/{application_id}/guilds/{guild_id}/commands"),
    ("POST",   "/interactions/{id}/{token}/callback",            "/interactions/{interaction_id}/{interaction_token}/callback"),
    ("GET",    "/webhooks/{app}/{token}/messages/@original",     "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("PATCH",  "/webhooks/{app}/{token}/messages/@original",     "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("DELETE", "/webhooks/{app}/{token}/messages/@original",     "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("POST",   "/webhooks/{app}/{token}",                        "/webhooks/{webhook_id}/{webhook_token}"),
    ("PATCH",  "/webhooks/{app}/{token}/messages/{message}",     "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"),
    ("GET",    "/channels/{channel}",                            "/channels/{channel_id}"),
    ("PATCH",  "/channels/{channel}",                            "/channels/{channel_id}"),
    ("POST",   "/channels/{channel}/messages",                   "/channels/{channel_id}/messages"),
    ("GET",    "/channels/{channel}/messages/{message}",         "/channels/{channel_id}/messages/{message_id}"),
    ("PATCH",  "/channels/{channel}/messages/{message}",         "/channels/{channel_id}/messages/{message_id}"),
    ("PUT",    "/channels/{channel}/pins/{message}",             "/channels/{channel_id}/pins/{message_id}"),
    ("PUT",    "/channels/{channel}/messages/pins/{message}",    "/channels/{channel_id}/messages/pins/{message_id}"),
    ("POST",   "/channels/{channel}/messages/{message}/threads", "/channels/{channel_id}/messages/{message_id}/threads"),
    ("POST",   "/channels/{channel}/threads",                    "/channels/{channel_id}/threads"),
    ("GET",    "/guilds/{guild}",                                "/guilds/{guild_id}"),
    ("POST",   "/guilds/{guild}/channels",                       "/guilds/{guild_id}/channels"),
    ("GET",    "/guilds/{guild}/channels",                       "/guilds/{guild_id}/channels"),
    ("GET",    "/guilds/{guild}/roles",                          "/guilds/{guild_id}/roles"),
    ("GET",    "/guilds/{guild}/members/{user}",                 "/guilds/{guild_id}/members/{user_id}"),
    ("GET",    "/users/@me/guilds/{guild}/member",               "/users/@me/guilds/{guild_id}/member"),
];

const DEPLOYS: u64 = 111_000_000_000_000_111;
const INCIDENTS: u64 = 111_000_000_000_000_222;

/// Schema errors quoted in a violation are cut to this many characters: a failed `oneOf`
/// otherwise prints the whole answer.
const QUOTE_LIMIT: usize = 200;

/// Leaf errors listed under a failed `oneOf`/`anyOf`, enough to see which fields are wrong.
const BRANCH_ERRORS_LIMIT: usize = 12;

fn spec_path() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os(SPEC_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{SPEC_ENV}={} does not name a file; point it at Discord's openapi.json",
            path.display()
        );
        return path;
    }
    tried.push(format!("${SPEC_ENV} (unset)"));
    for candidate in [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/discord/openapi.json"
        ),
        "/work/shared/fixtures/discord/openapi.json",
    ] {
        let path = PathBuf::from(candidate);
        if path.is_file() {
            return path;
        }
        tried.push(candidate.to_owned());
    }
    panic!(
        "Discord's OpenAPI spec not found; looked at: {}. Set {SPEC_ENV} to the path of openapi.json \
         (discord/discord-api-spec, specs/openapi.json)",
        tried.join(", ")
    );
}

fn load_spec() -> Value {
    let path = spec_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the OpenAPI spec at {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the OpenAPI spec at {} is not JSON: {e}", path.display()))
}

fn segments(template: &str) -> Vec<&str> {
    template.trim_start_matches('/').split('/').collect()
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// The template of [`ROUTES`] that serves `method path` (path without the prefix), preferring
/// literal segments over parameters as axum does (`@original` over `{message}`).
fn route_for(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    let actual = segments(path);
    ROUTES
        .iter()
        .filter(|(m, template, _)| {
            let expected = segments(template);
            *m == method
                && expected.len() == actual.len()
                && expected
                    .iter()
                    .zip(&actual)
                    .all(|(e, a)| is_parameter(e) || e == a)
        })
        .max_by_key(|(_, template, _)| {
            segments(template)
                .iter()
                .filter(|s| !is_parameter(s))
                .count()
        })
        .map(|(_, template, spec)| (*template, *spec))
}

/// `(METHOD, template)` of every `.route(...)` in the emulator's router source.
fn router_routes(source: &str) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
    let mut routes = BTreeSet::new();
    for (start, _) in source.match_indices(".route(") {
        let rest = &source[start + ".route(".len()..];
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })
            .expect("a .route( call closes");
        let call = &rest[..end];
        let template = call
            .split('"')
            .nth(1)
            .expect(".route( starts with a string literal");
        let handlers = &call[call.find(',').expect(".route(path, handler)")..];
        // A method router is an identifier called right away: `get(handler)`, `.patch(handler)`.
        let mut identifier = String::new();
        for c in handlers.chars() {
            if c.is_alphanumeric() || c == '_' {
                identifier.push(c);
                continue;
            }
            if c == '(' && METHODS.contains(&identifier.as_str()) {
                let template = template.strip_prefix(API_PREFIX).unwrap_or(template);
                routes.insert((identifier.to_uppercase(), template.to_owned()));
            }
            identifier.clear();
        }
    }
    routes
}

/// Emulator routes Discord documents outside its OpenAPI spec (the OAuth2 topic page): the
/// consent page, its approval link, and the token endpoint. Their behaviour is tested in
/// `tests/emulator.rs` and `tests/web_dashboard.rs`.
const OUTSIDE_THE_SPEC: &[(&str, &str)] = &[
    ("GET", "/oauth2/authorize"),
    ("GET", "/oauth2/authorize/approve"),
    ("POST", "/oauth2/token"),
    ("POST", "/api/oauth2/token"),
];

/// Every route the emulator serves that the spec describes (REST and OAuth2 routers).
fn served_routes() -> BTreeSet<(String, String)> {
    let mut served = router_routes(include_str!("../src/emulator/rest/mod.rs"));
    served.extend(router_routes(include_str!("../src/emulator/oauth.rs")));
    for (method, path) in OUTSIDE_THE_SPEC {
        served.remove(&((*method).to_owned(), (*path).to_owned()));
    }
    served
}

fn table_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, t, _)| ((*m).to_owned(), (*t).to_owned()))
        .collect()
}

#[test]
fn the_route_table_lists_every_route_of_the_emulators_router() {
    let served = served_routes();
    assert!(
        served.len() > 10,
        "parsed too few routes from rest.rs: {served:?}"
    );
    let table = table_routes();
    let untested: Vec<_> = served.difference(&table).collect();
    let gone: Vec<_> = table.difference(&served).collect();
    assert!(
        untested.is_empty() && gone.is_empty(),
        "ROUTES and the router in rest.rs differ.\n  served but not in ROUTES (add a row and call it \
         in the conformance test): {untested:?}\n  in ROUTES but not served: {gone:?}"
    );

    let spec = load_spec();
    let mut problems = Vec::new();
    for (method, template, spec_template) in ROUTES {
        let (ours, theirs) = (segments(template), segments(spec_template));
        let aligned = ours.len() == theirs.len()
            && ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a == b || (is_parameter(a) && is_parameter(b)));
        if !aligned {
            problems.push(format!(
                "{method} {template} does not have the shape of {spec_template}"
            ));
        }
        if spec["paths"][spec_template][method.to_lowercase()].is_null() {
            problems.push(format!(
                "the spec has no operation {method} {spec_template}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An answer from the emulator.
#[derive(Debug)]
struct Answer {
    status: u16,
    json: Value,
}

/// What one request sends.
enum Body {
    None,
    Json(Value),
    /// serenity's shape for messages with files: `payload_json` plus `files[n]` parts.
    Multipart {
        payload: Value,
        filename: &'static str,
        content: &'static str,
    },
}

/// Calls the emulator and checks every answer against the spec, collecting violations.
struct Conformance {
    spec: Value,
    client: reqwest::Client,
    base_url: String,
    token: String,
    /// Compiled response schemas, by `spec path  method  status key`.
    validators: HashMap<String, Validator>,
    violations: Vec<String>,
}

impl Conformance {
    fn new(spec: Value, emulator: &Emulator) -> Self {
        Conformance {
            spec,
            client: reqwest::Client::new(),
            base_url: emulator.base_url().to_owned(),
            token: emulator.token().to_owned(),
            validators: HashMap::new(),
            violations: Vec::new(),
        }
    }

    async fn call(&mut self, method: Method, path: &str, body: Body) -> Answer {
        self.call_as(method, path, body, &format!("Bot {}", self.token))
            .await
    }

    async fn call_as(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        authorization: &str,
    ) -> Answer {
        let url = format!("{}{API_PREFIX}{path}", self.base_url);
        let request = self
            .client
            .request(method.clone(), url)
            .header("authorization", authorization)
            .header(
                "user-agent",
                "DiscordBot (https://github.com/serenity-rs/serenity, 0.12.5)",
            );
        let request = match body {
            Body::None => request,
            Body::Json(json) => request.json(&json),
            Body::Multipart {
                payload,
                filename,
                content,
            } => {
                let boundary = "opsbot-conformance-boundary";
                let text = format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{filename}\"\r\n\
                     Content-Type: text/plain\r\n\r\n{content}\r\n\
                     --{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\
                     Content-Type: application/json\r\n\r\n{payload}\r\n--{boundary}--\r\n"
                );
                request
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(text)
            }
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let json = self.check(method.as_str(), path, status, &bytes);
        Answer { status, json }
    }

    fn violation(&mut self, method: &str, path: &str, status: u16, what: impl std::fmt::Display) {
        self.violations
            .push(format!("{method} {path} -> {status}: {what}"));
    }

    /// Validates one answer; returns its JSON (`null` for an empty body).
    fn check(&mut self, method: &str, path: &str, status: u16, body: &[u8]) -> Value {
        let json: Option<Value> = if body.is_empty() {
            None
        } else {
            serde_json::from_slice(body).ok()
        };
        if !body.is_empty() && json.is_none() {
            let text = String::from_utf8_lossy(body).into_owned();
            self.violation(
                method,
                path,
                status,
                format!("the body is not JSON: {text:?}"),
            );
        }
        let Some((_, spec_template)) = route_for(method, path) else {
            self.violation(method, path, status, "no row of ROUTES serves this request");
            return json.unwrap_or(Value::Null);
        };
        let responses = &self.spec["paths"][spec_template][method.to_lowercase()]["responses"];
        let status_key = [
            status.to_string(),
            format!("{}XX", status / 100),
            "default".to_owned(),
        ]
        .into_iter()
        .find(|key| responses.get(key).is_some());
        let Some(status_key) = status_key else {
            let listed: Vec<&String> = responses
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            self.violation(
                method,
                path,
                status,
                format!("the spec lists no such status for {method} {spec_template} (it lists {listed:?})"),
            );
            return json.unwrap_or(Value::Null);
        };
        let response = self.resolve(&responses[&status_key]).clone();
        let schema = response["content"]["application/json"]["schema"].clone();
        if status >= 400 {
            let text = |key: &str| json.as_ref().and_then(|j| j.get(key)).cloned();
            if !text("message").is_some_and(|m| m.is_string())
                || !text("code").is_some_and(|c| c.is_u64())
            {
                self.violation(
                    method,
                    path,
                    status,
                    "an error body needs a string `message` and an integer `code`",
                );
            }
        }
        if schema.is_null() {
            if !body.is_empty() {
                self.violation(
                    method,
                    path,
                    status,
                    format!("the spec's {status_key} for {spec_template} has no content, but the body is not empty"),
                );
            }
            return Value::Null;
        }
        let Some(instance) = json else {
            self.violation(
                method,
                path,
                status,
                format!("the spec's {status_key} has a JSON body; the answer has none"),
            );
            return Value::Null;
        };
        let key = format!("{spec_template}  {method}  {status_key}");
        if !self.validators.contains_key(&key) {
            let validator = self
                .compile(&schema)
                .unwrap_or_else(|e| panic!("compiling the schema of {key}: {e}"));
            self.validators.insert(key.clone(), validator);
        }
        let validator = &self.validators[&key];
        let mut found = Vec::new();
        for error in validator.iter_errors(&instance) {
            let mut line = format!(
                "at {:?}: {}",
                error.instance_path().as_str(),
                quote(&error.to_string())
            );
            let schema_path = error.schema_path().as_str();
            if schema_path.ends_with("oneOf") || schema_path.ends_with("anyOf") {
                line.push_str(&branch_errors(
                    validator,
                    &instance,
                    error.instance_path().as_str(),
                ));
            }
            found.push(line);
        }
        for line in found {
            self.violation(method, path, status, line);
        }
        instance
    }

    /// Follows a `$ref` to `#/components/responses/...`.
    fn resolve<'a>(&'a self, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str() {
            Some(reference) => self
                .spec
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("the spec's {reference} does not resolve")),
            None => response,
        }
    }

    /// A root document whose `components` let the spec's `#/components/schemas/...` resolve.
    fn compile(&self, schema: &Value) -> Result<Validator, jsonschema::ValidationError<'static>> {
        let mut root = match schema["$ref"].as_str() {
            Some(reference) => json!({ "$ref": reference }),
            None => json!({ "allOf": [schema] }),
        };
        root["components"] = self.spec["components"].clone();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
    }
}

fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_LIMIT {
        return text.to_owned();
    }
    let cut: String = text.chars().take(QUOTE_LIMIT).collect();
    format!("{cut}…")
}

/// The leaf errors under a failed `oneOf`/`anyOf` at `at`, one per line.
fn branch_errors(validator: &Validator, instance: &Value, at: &str) -> String {
    let evaluation = validator.evaluate(instance);
    // (variant, line, instance location); the variant is `/components/schemas/<Name>`.
    let errors: Vec<(String, String, String)> = evaluation
        .iter_errors()
        .map(|e| {
            let variant = e
                .schema_location
                .split('/')
                .take(4)
                .collect::<Vec<_>>()
                .join("/");
            let instance = e.instance_location.as_str().to_owned();
            let line = format!(
                "{}: at {instance:?}: {}",
                e.schema_location,
                quote(&e.error.to_string())
            );
            (variant, line, instance)
        })
        .collect();
    // A branch whose `type` is not the object's is another variant, not what was meant there.
    let other_variant = |schema: &str, instance: &str| {
        errors.iter().any(|(s, line, i)| {
            s == schema
                && i.strip_suffix("/type")
                    .is_some_and(|object| instance.starts_with(object))
                && line.contains("/properties/type/")
        })
    };
    let lines: BTreeSet<&String> = errors
        .iter()
        .filter(|(schema, line, instance)| {
            instance.starts_with(at)
                && !line.contains("is not valid under any of the")
                && !other_variant(schema, instance)
        })
        .map(|(_, line, _)| line)
        .collect();
    let total = lines.len();
    let mut text: String = lines
        .iter()
        .take(BRANCH_ERRORS_LIMIT)
        .map(|line| format!("\n      branch {line}"))
        .collect();
    if total > BRANCH_ERRORS_LIMIT {
        text.push_str(&format!(
            "\n      … and {} more",
            total - BRANCH_ERRORS_LIMIT
        ));
    }
    text
}

fn id(answer: &Answer) -> String {
    answer.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the answer has no string id: {answer:?}"))
        .to_owned()
}

fn embed() -> Value {
    json!({
        "title": "Deploy api 1.2.3",
        "description": "requested by <@1>",
        "color": 0x2ecc71,
        "fields": [{ "name": "environment", "value": "staging", "inline": true }],
        "footer": { "text": "opsbot" },
        "timestamp": "2026-01-01T00:00:00Z",
    })
}

fn buttons() -> Value {
    json!([{
        "type": 1,
        "components": [
            { "type": 2, "style": 3, "label": "Approve", "custom_id": "deploy:approve:1" },
            { "type": 2, "style": 4, "label": "Reject", "custom_id": "deploy:reject:1" },
        ],
    }, {
        "type": 1,
        "components": [{
            "type": 3, "custom_id": "alerts-silence:1", "placeholder": "Silence for…",
            "min_values": 1, "max_values": 1,
            "options": [
                { "label": "30m", "value": "30m" },
                { "label": "until resolved", "value": "until resolved", "description": "expired by opsbot" },
            ],
        }],
    }])
}

/// What opsbot's one renderer sends (buttons and a string select past every limit) is a
/// create-message request Discord's spec accepts.
#[test]
fn rendered_buttons_and_selects_are_valid_create_message_requests() {
    use opsbot_commands::chat::{Button, ButtonStyle, Message, Select, SelectOption};
    let spec = load_spec();
    let long = "x".repeat(300);
    let message = Message {
        content: "firing".into(),
        buttons: (0..7)
            .map(|i| Button {
                label: long.clone(),
                custom_id: format!("b{i}"),
                style: ButtonStyle::Primary,
            })
            .collect(),
        selects: vec![Select {
            custom_id: "alerts-silence:1".to_owned(),
            placeholder: long.clone(),
            options: (0..40)
                .map(|i| SelectOption {
                    label: long.clone(),
                    value: format!("v{i}"),
                    description: Some(long.clone()),
                })
                .collect(),
        }],
        ..Message::default()
    };
    let body = opsbot::discord::render::message::create_message_body(&message, "nonce-1");
    assert_eq!(
        body["components"][2]["components"][0]["type"], 3,
        "{body:#}"
    );
    let mut root = json!({ "$ref": "#/components/schemas/MessageCreateRequest" });
    root["components"] = spec["components"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("schema");
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The check can fail: 26 options is one too many for Discord.
    let mut too_many = body.clone();
    too_many["components"][2]["components"][0]["options"] = json!(
        (0..26)
            .map(|i| json!({ "label": "l", "value": format!("v{i}") }))
            .collect::<Vec<_>>()
    );
    assert!(!validator.is_valid(&too_many));
}

#[tokio::test]
async fn every_emulator_route_answers_in_the_shapes_of_discords_openapi_spec() {
    let spec = load_spec();
    let shutdown = CancellationToken::new();
    let guild_spec = GuildSpec {
        roles: vec!["ops".to_owned()],
        channels: vec![(DEPLOYS, "deploys".to_owned())],
        category: Some((INCIDENTS, "incidents".to_owned())),
        ..GuildSpec::default()
    };
    let emulator = Emulator::start(guild_spec, shutdown.clone())
        .await
        .expect("emulator");
    let guild = emulator.guild_id();
    let mut api = Conformance::new(spec, &emulator);
    use Method as M;

    // What serenity asks when it starts.
    api.call(M::GET, "/gateway", Body::None).await;
    api.call(M::GET, "/gateway/bot", Body::None).await;
    let me = api.call(M::GET, "/users/@me", Body::None).await;
    let bot_user = id(&me);
    let application = api
        .call(M::GET, "/oauth2/applications/@me", Body::None)
        .await;
    let app = id(&application);

    // What poise registers, globally and in the guild.
    let commands = opsbot::discord::registration_json();
    api.call(
        M::PUT,
        &format!("/applications/{app}/commands"),
        Body::Json(commands.clone()),
    )
    .await;
    api.call(M::GET, &format!("/applications/{app}/commands"), Body::None)
        .await;
    let guild_commands = format!("/applications/{app}/guilds/{guild}/commands");
    api.call(M::PUT, &guild_commands, Body::Json(commands))
        .await;
    api.call(M::GET, &guild_commands, Body::None).await;

    // An interaction answered at once, edited, followed up, then deleted.
    let ana = emulator.member("ana", Some(&["ops".to_owned()]));
    let (interaction, token) = emulator.open_interaction(DEPLOYS);
    let reply = json!({
        "type": 4,
        "data": { "content": "Deploy requested", "embeds": [embed()], "components": buttons(),
                  "allowed_mentions": { "parse": [] }, "flags": 64 },
    });
    let callback = format!("/interactions/{interaction}/{token}/callback");
    api.call(M::POST, &callback, Body::Json(reply.clone()))
        .await;
    let original = format!("/webhooks/{app}/{token}/messages/@original");
    api.call(M::GET, &original, Body::None).await;
    api.call(
        M::PATCH,
        &original,
        Body::Json(json!({ "content": "Deploy approved", "components": [] })),
    )
    .await;
    let followup = api
        .call(
            M::POST,
            &format!("/webhooks/{app}/{token}"),
            Body::Json(json!({ "content": "Rolling out", "embeds": [embed()], "flags": 64 })),
        )
        .await;
    let followup_id = id(&followup);
    api.call(
        M::PATCH,
        &format!("/webhooks/{app}/{token}/messages/{followup_id}"),
        Body::Json(json!({ "content": "Rolled out", "embeds": [] })),
    )
    .await;
    api.call(M::DELETE, &original, Body::None).await;
    // Acknowledging twice is Discord's 40060.
    let twice = api.call(M::POST, &callback, Body::Json(reply)).await;
    assert_eq!(twice.status, 400, "{twice:?}");

    // A deferred interaction whose first follow-up fills the "thinking…" message in.
    let (deferred, deferred_token) = emulator.open_interaction(DEPLOYS);
    api.call(
        M::POST,
        &format!("/interactions/{deferred}/{deferred_token}/callback"),
        Body::Json(json!({ "type": 5, "data": { "flags": 64 } })),
    )
    .await;
    api.call(
        M::POST,
        &format!("/webhooks/{app}/{deferred_token}"),
        Body::Json(json!({ "content": "Audit export ready" })),
    )
    .await;

    // Channel messages, as the outbox posts them.
    let channel = format!("/channels/{DEPLOYS}");
    api.call(M::GET, &channel, Body::None).await;
    api.call(
        M::PATCH,
        &channel,
        Body::Json(json!({ "topic": "deploys of api" })),
    )
    .await;
    let posted = api
        .call(
            M::POST,
            &format!("{channel}/messages"),
            Body::Json(json!({
                "content": "api 1.2.3 deployed", "embeds": [embed()], "components": buttons(),
                "nonce": "outbox-1", "enforce_nonce": true, "allowed_mentions": { "parse": [] },
            })),
        )
        .await;
    let message = id(&posted);
    api.call(
        M::POST,
        &format!("{channel}/messages"),
        Body::Multipart {
            payload: json!({ "content": "audit export", "attachments": [{ "id": 0, "filename": "audit.csv" }] }),
            filename: "audit.csv",
            content: "at,actor,action\n",
        },
    )
    .await;
    api.call(M::GET, &format!("{channel}/messages/{message}"), Body::None)
        .await;
    api.call(
        M::PATCH,
        &format!("{channel}/messages/{message}"),
        Body::Json(json!({ "content": "api 1.2.3 deployed (verified)", "embeds": [embed()] })),
    )
    .await;
    api.call(M::PUT, &format!("{channel}/pins/{message}"), Body::None)
        .await;
    api.call(
        M::PUT,
        &format!("{channel}/messages/pins/{message}"),
        Body::None,
    )
    .await;

    // Threads, from a message and standalone, and reading one back.
    api.call(
        M::POST,
        &format!("{channel}/messages/{message}/threads"),
        Body::Json(json!({ "name": "deploy api 1.2.3", "auto_archive_duration": 1440 })),
    )
    .await;
    let thread = api
        .call(
            M::POST,
            &format!("{channel}/threads"),
            Body::Json(json!({ "name": "incident 7", "type": 11, "auto_archive_duration": 1440 })),
        )
        .await;
    api.call(M::GET, &format!("/channels/{}", id(&thread)), Body::None)
        .await;

    // The guild, its channels, roles and members.
    api.call(M::GET, &format!("/guilds/{guild}"), Body::None)
        .await;
    api.call(
        M::POST,
        &format!("/guilds/{guild}/channels"),
        Body::Json(
            json!({ "name": "inc-7-db-down", "type": 0, "parent_id": INCIDENTS.to_string(),
                           "topic": "incident 7: database down" }),
        ),
    )
    .await;
    api.call(M::GET, &format!("/guilds/{guild}/channels"), Body::None)
        .await;
    api.call(M::GET, &format!("/guilds/{guild}/roles"), Body::None)
        .await;
    api.call(
        M::GET,
        &format!("/guilds/{guild}/members/{ana}"),
        Body::None,
    )
    .await;
    api.call(
        M::GET,
        &format!("/guilds/{guild}/members/{bot_user}"),
        Body::None,
    )
    .await;

    // OAuth2: a member's own guild membership, with the bearer token a web login gets.
    let access = oauth_access_token(&emulator, "ana").await;
    api.call_as(
        M::GET,
        &format!("/users/@me/guilds/{guild}/member"),
        Body::None,
        &format!("Bearer {access}"),
    )
    .await;

    // Errors: unknown objects, a refused token, an empty message, a rate limit.
    let unknown = api.call(M::GET, "/channels/1", Body::None).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let refused = api
        .call_as(M::GET, "/users/@me", Body::None, "Bot wrong-token")
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let empty = api
        .call(
            M::POST,
            &format!("{channel}/messages"),
            Body::Json(json!({ "content": "" })),
        )
        .await;
    assert_eq!(empty.status, 400, "{empty:?}");
    emulator.script_failure(Some("POST"), "/messages", 429, 1, 0.25);
    let limited = api
        .call(
            M::POST,
            &format!("{channel}/messages"),
            Body::Json(json!({ "content": "again" })),
        )
        .await;
    assert_eq!(limited.status, 429, "{limited:?}");

    // Every served route was exercised above (a new route needs a call here too).
    let exercised: BTreeSet<(String, String)> = emulator
        .requests()
        .iter()
        .filter_map(|request| {
            let (method, path) = request.split_once(' ')?;
            let path = path.strip_prefix(API_PREFIX)?;
            route_for(method, path).map(|(template, _)| (method.to_owned(), template.to_owned()))
        })
        .collect();
    let missed: Vec<_> = table_routes().difference(&exercised).cloned().collect();
    shutdown.cancel();

    assert!(
        missed.is_empty(),
        "routes never called by this test: {missed:?}"
    );
    assert!(
        api.violations.is_empty(),
        "the emulator violates Discord's OpenAPI spec ({} violations):\n  {}",
        api.violations.len(),
        api.violations.join("\n  ")
    );
}

/// Runs the emulator's authorization code grant for `member` and returns the access token.
async fn oauth_access_token(emulator: &opsbot::emulator::Emulator, member: &str) -> String {
    let (client_id, client_secret) = emulator.oauth_client();
    let base = emulator.base_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect_uri = "http://127.0.0.1:9/callback";
    let page = http
        .get(format!("{base}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", "identify guilds.members.read"),
        ])
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("page");
    let href = page
        .split(&format!("id=\"as-{member}\" href=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a consent link")
        .replace("&amp;", "&");
    let approved = http
        .get(format!("{base}{href}"))
        .send()
        .await
        .expect("approve");
    let location = approved.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|c| c.split('&').next())
        .expect("code")
        .to_owned();
    let token: Value = http
        .post(format!("{base}/api/v10/oauth2/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    token["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}
