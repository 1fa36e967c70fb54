use super::*;

/// The real registration (`opsbot commands export`) plus synthetic commands covering every
/// option type, each with the id the emulator would assign.
fn registered() -> Vec<Value> {
    let mut commands = crate::discord::registration_json()
        .as_array()
        .cloned()
        .expect("the export is an array");
    // The synthetic /deploy and /incident below exercise every option type; they stand in
    // for the real ones.
    commands.retain(|c| c["name"] != "deploy" && c["name"] != "incident");
    commands.extend([deploy(), incident(), inspect()]);
    // Ids by name, so that snapshots do not move when the real export grows.
    let order = ["whoami", "audit", "deploy", "incident", "inspect"];
    for command in commands.iter_mut() {
        let name = command["name"].as_str().unwrap_or_default();
        let i = order
            .iter()
            .position(|n| *n == name)
            .unwrap_or(order.len() + name.len());
        command["id"] = json!((1_300_000_000_000_000_000_u64 + i as u64).to_string());
    }
    commands
}

/// Shaped as poise registers: unset fields are `null` or `[]`.
fn deploy() -> Value {
    let option = |name: &str, kind: u64, required: bool| {
        json!({
            "autocomplete": false, "channel_types": [], "choices": [], "description": name,
            "max_length": null, "max_value": null, "min_length": null, "min_value": null,
            "name": name, "options": [], "required": required, "type": kind,
        })
    };
    let mut service = option("service", STRING, true);
    service["autocomplete"] = json!(true);
    let mut version = option("version", STRING, true);
    version["min_length"] = json!(2);
    version["max_length"] = json!(32);
    let mut env = option("env", STRING, true);
    env["choices"] = json!([
        { "name": "Staging", "value": "staging" },
        { "name": "Production", "value": "production" },
    ]);
    let mut reason = option("reason", STRING, false);
    reason["max_length"] = json!(100);
    let mut canary = option("canary", NUMBER, false);
    canary["min_value"] = json!(0.0);
    canary["max_value"] = json!(100.0);
    let mut run = option("run", SUB_COMMAND, false);
    run["options"] = json!([
        service,
        version,
        env,
        reason,
        option("dry_run", BOOLEAN, false),
        canary,
    ]);
    json!({ "name": "deploy", "description": "Deploy", "options": [run] })
}

/// Shaped as Discord documents: unset fields are absent.
fn incident() -> Value {
    json!({
        "name": "incident",
        "description": "Incidents",
        "type": 1,
        "options": [
            {
                "name": "open", "description": "Open one", "type": 1,
                "options": [
                    { "name": "title", "description": "t", "type": 3, "required": true },
                    {
                        "name": "severity", "description": "s", "type": 4, "required": true,
                        "choices": [
                            { "name": "SEV1", "value": 1 },
                            { "name": "SEV2", "value": 2 },
                            { "name": "SEV3", "value": 3 },
                        ],
                    },
                    { "name": "screenshot", "description": "f", "type": 11 },
                    { "name": "page", "description": "p", "type": 4, "autocomplete": true },
                ],
            },
            {
                "name": "role", "description": "Incident roles", "type": 2,
                "options": [
                    {
                        "name": "assign", "description": "Assign", "type": 1,
                        "options": [
                            { "name": "user", "description": "u", "type": 6, "required": true },
                            { "name": "role", "description": "r", "type": 8, "required": true },
                            {
                                "name": "channel", "description": "c", "type": 7,
                                "channel_types": [0, 11],
                            },
                            { "name": "notify", "description": "n", "type": 9 },
                        ],
                    },
                    { "name": "clear", "description": "Clear", "type": 1 },
                ],
            },
        ],
    })
}

/// A user context-menu command: not something a typed line can invoke.
fn inspect() -> Value {
    json!({ "name": "inspect", "type": 2 })
}

fn directory() -> GuildDirectory {
    let member = |id, name: &str, role_ids: &[u64]| DirectoryMember {
        id,
        name: name.to_owned(),
        role_ids: role_ids.to_vec(),
    };
    let role = |id, name: &str| DirectoryRole {
        id,
        name: name.to_owned(),
    };
    let channel = |id, name: &str, kind| DirectoryChannel {
        id,
        name: name.to_owned(),
        kind,
    };
    GuildDirectory {
        guild_id: 900,
        members: vec![
            member(1001, "ana", &[2001]),
            member(1002, "bob", &[]),
            member(1003, "Carol", &[2001, 2002]),
        ],
        roles: vec![
            role(900, "@everyone"),
            role(2001, "oncall"),
            role(2002, "sre"),
        ],
        channels: vec![
            channel(3001, "general", 0),
            channel(3002, "incidents", 4),
            channel(3003, "inc-42", 11),
            channel(3004, "ops", 0),
        ],
    }
}

fn parse(line: &str) -> TypedCommand {
    parse_line(line, &registered(), &directory()).expect("the line parses")
}

fn err(line: &str) -> String {
    parse_line(line, &registered(), &directory())
        .expect_err("the line is refused")
        .to_string()
}

#[test]
fn audit_recent_from_the_real_export() {
    let typed = parse("/audit recent count:5 actor:ana");
    assert_eq!(typed.name, "audit");
    insta::assert_json_snapshot!(typed.data, @r#"
    {
      "guild_id": "900",
      "id": "1300000000000000001",
      "name": "audit",
      "options": [
        {
          "name": "recent",
          "options": [
            {
              "name": "count",
              "type": 4,
              "value": 5
            },
            {
              "name": "actor",
              "type": 3,
              "value": "ana"
            }
          ],
          "type": 1
        }
      ],
      "type": 1
    }
    "#);
    insta::assert_json_snapshot!(typed.display_args, @r#"
    {
      "actor": "ana",
      "count": 5
    }
    "#);
}

#[test]
fn subcommand_without_options_and_command_without_subcommands() {
    insta::assert_json_snapshot!(parse("/audit verify").data, @r#"
    {
      "guild_id": "900",
      "id": "1300000000000000001",
      "name": "audit",
      "options": [
        {
          "name": "verify",
          "options": [],
          "type": 1
        }
      ],
      "type": 1
    }
    "#);
    insta::assert_json_snapshot!(parse("/whoami").data, @r#"
    {
      "guild_id": "900",
      "id": "1300000000000000000",
      "name": "whoami",
      "options": [],
      "type": 1
    }
    "#);
}

#[test]
fn options_in_any_order_come_out_in_schema_order() {
    let typed = parse(
        r#"/deploy run reason:"hotfix for the login bug" env:Staging version:v1.2.3 dry_run:yes service:api canary:12.5"#,
    );
    insta::assert_json_snapshot!(typed.data, @r#"
    {
      "guild_id": "900",
      "id": "1300000000000000002",
      "name": "deploy",
      "options": [
        {
          "name": "run",
          "options": [
            {
              "name": "service",
              "type": 3,
              "value": "api"
            },
            {
              "name": "version",
              "type": 3,
              "value": "v1.2.3"
            },
            {
              "name": "env",
              "type": 3,
              "value": "staging"
            },
            {
              "name": "reason",
              "type": 3,
              "value": "hotfix for the login bug"
            },
            {
              "name": "dry_run",
              "type": 5,
              "value": true
            },
            {
              "name": "canary",
              "type": 10,
              "value": 12.5
            }
          ],
          "type": 1
        }
      ],
      "type": 1
    }
    "#);
    insta::assert_json_snapshot!(typed.display_args, @r#"
    {
      "canary": 12.5,
      "dry_run": true,
      "env": "staging",
      "reason": "hotfix for the login bug",
      "service": "api",
      "version": "v1.2.3"
    }
    "#);
}

#[test]
fn choices_match_by_name_or_value_and_keep_the_value_type() {
    let typed = parse("/deploy run service:api version:v1 env:production dry_run:False");
    assert_eq!(typed.display_args["env"], json!("production"));
    assert_eq!(typed.display_args["dry_run"], json!(false));
    let by_name = parse("/incident open title:'db down' severity:sev1");
    let by_value = parse("/incident open title:'db down' severity:1");
    assert_eq!(by_name, by_value);
    insta::assert_json_snapshot!(by_name.data, @r#"
    {
      "guild_id": "900",
      "id": "1300000000000000003",
      "name": "incident",
      "options": [
        {
          "name": "open",
          "options": [
            {
              "name": "title",
              "type": 3,
              "value": "db down"
            },
            {
              "name": "severity",
              "type": 4,
              "value": 1
            }
          ],
          "type": 1
        }
      ],
      "type": 1
    }
    "#);
}

#[test]
fn autocomplete_options_take_any_value_of_their_type() {
    let typed = parse("/audit recent outcome:whatever-you-like");
    assert_eq!(
        typed.display_args,
        json!({ "outcome": "whatever-you-like" })
    );
    let typed = parse("/deploy run service:not-a-known-service version:v1 env:staging");
    assert_eq!(typed.display_args["service"], json!("not-a-known-service"));
    let typed = parse("/incident open title:x severity:2 page:7");
    assert_eq!(typed.display_args["page"], json!(7));
    assert_eq!(
        err("/incident open title:x severity:2 page:seven"),
        r#"option page must be a whole number, got "seven""#
    );
}

#[test]
fn group_subcommand_with_member_role_channel_and_mentionable() {
    let typed =
        parse("/incident role assign notify:@sre channel:#inc-42 role:@oncall user:<@1002>");
    insta::assert_json_snapshot!(typed.data, @r#"
    {
      "guild_id": "900",
      "id": "1300000000000000003",
      "name": "incident",
      "options": [
        {
          "name": "role",
          "options": [
            {
              "name": "assign",
              "options": [
                {
                  "name": "user",
                  "type": 6,
                  "value": "1002"
                },
                {
                  "name": "role",
                  "type": 8,
                  "value": "2001"
                },
                {
                  "name": "channel",
                  "type": 7,
                  "value": "3003"
                },
                {
                  "name": "notify",
                  "type": 9,
                  "value": "2002"
                }
              ],
              "type": 1
            }
          ],
          "type": 2
        }
      ],
      "resolved": {
        "channels": {
          "3003": {
            "id": "3003",
            "name": "inc-42",
            "parent_id": null,
            "permissions": "0",
            "thread_metadata": {
              "archive_timestamp": "2026-01-01T00:00:00+00:00",
              "archived": false,
              "auto_archive_duration": 1440,
              "create_timestamp": "2026-01-01T00:00:00+00:00",
              "locked": false
            },
            "type": 11
          }
        },
        "members": {
          "1002": {
            "avatar": null,
            "deaf": false,
            "flags": 0,
            "joined_at": "2026-01-01T00:00:00+00:00",
            "mute": false,
            "nick": null,
            "pending": false,
            "permissions": "0",
            "roles": []
          }
        },
        "roles": {
          "2001": {
            "color": 0,
            "colors": {
              "primary_color": 0,
              "secondary_color": null,
              "tertiary_color": null
            },
            "flags": 0,
            "hoist": false,
            "icon": null,
            "id": "2001",
            "managed": false,
            "mentionable": false,
            "name": "oncall",
            "permissions": "0",
            "position": 1,
            "unicode_emoji": null
          },
          "2002": {
            "color": 0,
            "colors": {
              "primary_color": 0,
              "secondary_color": null,
              "tertiary_color": null
            },
            "flags": 0,
            "hoist": false,
            "icon": null,
            "id": "2002",
            "managed": false,
            "mentionable": false,
            "name": "sre",
            "permissions": "0",
            "position": 1,
            "unicode_emoji": null
          }
        },
        "users": {
          "1002": {
            "avatar": null,
            "discriminator": "0",
            "global_name": null,
            "id": "1002",
            "username": "bob"
          }
        }
      },
      "type": 1
    }
    "#);
    insta::assert_json_snapshot!(typed.display_args, @r##"
    {
      "channel": "#inc-42",
      "notify": "@sre",
      "role": "@oncall",
      "user": "@bob"
    }
    "##);
}

/// What serenity (and so poise) makes of the data: every reference resolves.
#[test]
fn serenity_reads_the_data_and_resolves_every_reference() {
    use poise::serenity_prelude::{CommandData, ResolvedValue};

    let typed = parse("/incident role assign user:carol role:sre channel:inc-42 notify:ana");
    let data: CommandData = serde_json::from_value(typed.data).expect("serenity reads it");
    assert_eq!(data.name, "incident");
    let options = data.options();
    let ResolvedValue::SubCommandGroup(group) = &options[0].value else {
        panic!("a group: {options:?}");
    };
    let ResolvedValue::SubCommand(assign) = &group[0].value else {
        panic!("a subcommand: {group:?}");
    };
    let values: Vec<String> = assign
        .iter()
        .map(|o| match &o.value {
            ResolvedValue::User(user, Some(member)) => {
                format!("{}={} roles={:?}", o.name, user.name, member.roles)
            }
            ResolvedValue::Role(role) => format!("{}={}", o.name, role.name),
            ResolvedValue::Channel(channel) => format!(
                "{}={:?} thread={}",
                o.name,
                channel.name,
                channel.thread_metadata.is_some()
            ),
            other => format!("{}={other:?}", o.name),
        })
        .collect();
    insta::assert_snapshot!(values.join("\n"), @r#"
    user=Carol roles=[RoleId(2001), RoleId(2002)]
    role=sre
    channel=Some("inc-42") thread=true
    notify=ana roles=[RoleId(2001)]
    "#);
}

#[test]
fn members_roles_and_channels_by_every_spelling() {
    let user = |text: &str| {
        parse(&format!("/incident role assign role:sre user:{text}")).display_args["user"].clone()
    };
    for text in ["carol", "CAROL", "@Carol", "1003", "<@1003>", "<@!1003>"] {
        assert_eq!(user(text), json!("@Carol"), "{text}");
    }
    let role = |text: &str| {
        parse(&format!("/incident role assign user:ana role:{text}")).display_args["role"].clone()
    };
    for text in ["oncall", "@OnCall", "2001", "<@&2001>"] {
        assert_eq!(role(text), json!("@oncall"), "{text}");
    }
    assert_eq!(role("@everyone"), json!("@everyone"));
    let channel = |text: &str| {
        parse(&format!(
            "/incident role assign user:ana role:sre channel:{text}"
        ))
        .display_args["channel"]
            .clone()
    };
    for text in ["ops", "#OPS", "3004", "<#3004>"] {
        assert_eq!(channel(text), json!("#ops"), "{text}");
    }
    let typed = parse("/incident role assign user:ana role:sre notify:<@&2002>");
    assert_eq!(
        typed.data["resolved"]["roles"]["2002"]["name"],
        json!("sre")
    );
}

#[test]
fn split_words_honours_quotes_and_escapes() {
    let split = |line: &str| split_words(line).expect("splits");
    assert_eq!(split("  a   b "), ["a", "b"]);
    assert_eq!(split(r#"reason:"a b" x"#), ["reason:a b", "x"]);
    assert_eq!(split("reason:'a \"b\" c'"), ["reason:a \"b\" c"]);
    assert_eq!(
        split(r#"reason:"say \"hi\" \\ bye""#),
        [r#"reason:say "hi" \ bye"#]
    );
    assert_eq!(split(r#""whole word" 'x y'"#), ["whole word", "x y"]);
    assert_eq!(split("reason:it's fine"), ["reason:it's", "fine"]);
    assert_eq!(split(r#"a:b:"c""#), [r#"a:b:"c""#]);
    assert_eq!(split(r#"reason:"" """#), ["reason:", ""]);
    assert_eq!(split(r"path:C:\dir"), [r"path:C:\dir"]);
    insta::assert_snapshot!(split_words(r#"reason:"abc"#).expect_err("unclosed"), @r#"unclosed " quote in `reason:"abc`; end the quoted value with " (use \" for a " inside it)"#);
    insta::assert_snapshot!(split_words("x 'abc").expect_err("unclosed"), @r#"unclosed ' quote in `x 'abc`; end the quoted value with ' (use \' for a ' inside it)"#);
}

#[test]
fn the_line_and_the_command() {
    insta::assert_snapshot!(err("audit recent"), @"a command starts with /, e.g. /whoami; commands: /alerts, /audit, /deploy, /digest, /incident, /metrics, /rollback, /whoami");
    insta::assert_snapshot!(err("/"), @"type a command right after /, e.g. /whoami; commands: /alerts, /audit, /deploy, /digest, /incident, /metrics, /rollback, /whoami");
    insta::assert_snapshot!(err("/ audit"), @"type a command right after /, e.g. /whoami; commands: /alerts, /audit, /deploy, /digest, /incident, /metrics, /rollback, /whoami");
    insta::assert_snapshot!(err("/deplo"), @"unknown command /deplo; did you mean /deploy?");
    insta::assert_snapshot!(err("/deplyo run"), @"unknown command /deplyo; did you mean /deploy?");
    insta::assert_snapshot!(err("/inspect"), @"unknown command /inspect; commands: /alerts, /audit, /deploy, /digest, /incident, /metrics, /rollback, /whoami");
    insta::assert_snapshot!(err(r#"/deploy run reason:"unfinished"#), @r#"unclosed " quote in `/deploy run reason:"unfinished`; end the quoted value with " (use \" for a " inside it)"#);
    let mut unregistered = deploy();
    unregistered
        .as_object_mut()
        .expect("an object")
        .remove("id");
    insta::assert_snapshot!(
        parse_line("/deploy run", &[unregistered], &directory()).expect_err("no id"),
        @"/deploy has no id yet: it was not registered with Discord"
    );
}

#[test]
fn subcommands_and_groups() {
    insta::assert_snapshot!(err("/audit"), @"/audit needs a subcommand: recent, verify");
    insta::assert_snapshot!(err("/audit count:5"), @"/audit needs a subcommand: recent, verify");
    insta::assert_snapshot!(err("/audit rcent"), @r#"unknown subcommand "rcent" for /audit; did you mean /audit recent? subcommands: recent, verify"#);
    insta::assert_snapshot!(err("/incident role"), @"/incident role needs a subcommand: assign, clear");
    insta::assert_snapshot!(err("/incident role unassign"), @r#"unknown subcommand "unassign" for /incident role; did you mean /incident role assign? subcommands: assign, clear"#);
}

#[test]
fn option_names_and_forms() {
    insta::assert_snapshot!(err("/audit recent cnt:5"), @r#"unknown option "cnt" for /audit recent; options: count, actor, command, outcome"#);
    insta::assert_snapshot!(err("/audit recent cuont:5"), @r#"unknown option "cuont" for /audit recent; did you mean count? options: count, actor, command, outcome"#);
    insta::assert_snapshot!(err("/audit recent count:1 count:2"), @"option count is given twice; give it once");
    insta::assert_snapshot!(err("/audit recent 5"), @r#""5" is not an option: give options as name:value, e.g. count:…; options for /audit recent: count, actor, command, outcome"#);
    insta::assert_snapshot!(err("/audit verify count:5"), @r#"/audit verify takes no options, but got "count:5""#);
    insta::assert_snapshot!(err("/whoami me"), @r#"/whoami takes no options, but got "me""#);
    insta::assert_snapshot!(err("/audit recent actor:"), @"option actor needs a value after the colon, e.g. actor:…");
    insta::assert_snapshot!(err("/deploy run service:api"), @"/deploy run is missing required options: version, env");
    insta::assert_snapshot!(err("/deploy run service:api env:staging"), @"/deploy run is missing required option: version");
}

#[test]
fn values_of_the_wrong_type_or_out_of_range() {
    insta::assert_snapshot!(err("/audit recent count:five"), @r#"option count must be a whole number, got "five""#);
    insta::assert_snapshot!(err("/audit recent count:2.5"), @r#"option count must be a whole number, got "2.5""#);
    insta::assert_snapshot!(err("/audit recent count:30"), @"option count must be between 1 and 25, got 30");
    insta::assert_snapshot!(err("/audit recent count:0"), @"option count must be between 1 and 25, got 0");
    let deploy = "/deploy run service:api env:staging";
    insta::assert_snapshot!(err(&format!("{deploy} version:v")), @"option version must be between 2 and 32 characters long, got 1");
    insta::assert_snapshot!(err(&format!("{deploy} version:{}", "v".repeat(33))), @"option version must be between 2 and 32 characters long, got 33");
    // Without a max_length, Discord's client stops at 6,000 characters.
    let title = format!("/incident open severity:1 title:{}", "t".repeat(6001));
    insta::assert_snapshot!(err(&title), @"option title must be at most 6000 characters long, got 6001");
    // The real /audit recent limits its text filters.
    insta::assert_snapshot!(err(&format!("/audit recent actor:{}", "a".repeat(101))), @"option actor must be at most 100 characters long, got 101");
    insta::assert_snapshot!(err(&format!("{deploy} version:v1 canary:abc")), @r#"option canary must be a number, got "abc""#);
    insta::assert_snapshot!(err(&format!("{deploy} version:v1 canary:150")), @"option canary must be between 0 and 100, got 150");
    insta::assert_snapshot!(err(&format!("{deploy} version:v1 canary:NaN")), @r#"option canary must be a number, got "NaN""#);
    insta::assert_snapshot!(err(&format!("{deploy} version:v1 dry_run:maybe")), @r#"option dry_run must be true or false, got "maybe""#);
    insta::assert_snapshot!(err("/deploy run service:api version:v1 env:prod"), @r#""prod" is not a choice for option env; choices: Staging, Production"#);
    insta::assert_snapshot!(err("/incident open title:x severity:4"), @r#""4" is not a choice for option severity; choices: SEV1, SEV2, SEV3"#);
    insta::assert_snapshot!(err("/incident open title:x severity:1 screenshot:x.png"), @"option screenshot takes a file, and the shell cannot attach files; leave it out or use Discord");
}

#[test]
fn unknown_members_roles_and_channels_list_the_known_ones() {
    insta::assert_snapshot!(err("/incident role assign role:sre user:zed"), @r#"no member "zed" for option user; members: ana, bob, Carol"#);
    insta::assert_snapshot!(err("/incident role assign role:sre user:<@42>"), @r#"no member "<@42>" for option user; members: ana, bob, Carol"#);
    insta::assert_snapshot!(err("/incident role assign user:ana role:admins"), @r#"no role "admins" for option role; roles: @everyone, oncall, sre"#);
    insta::assert_snapshot!(err("/incident role assign user:ana role:sre notify:nobody"), @r#"no member or role "nobody" for option notify; members: ana, bob, Carol; roles: @everyone, oncall, sre"#);
    insta::assert_snapshot!(err("/incident role assign user:ana role:sre channel:#nowhere"), @r##"no channel "#nowhere" for option channel; channels: #general, #inc-42, #ops"##);
    insta::assert_snapshot!(err("/incident role assign user:ana role:sre channel:incidents"), @"#incidents is a category, but option channel takes a text channel or public thread; channels: #general, #inc-42, #ops");
}

#[test]
fn long_lists_stop_at_25() {
    let mut directory = directory();
    directory.members = (0..30)
        .map(|i| DirectoryMember {
            id: 5000 + i,
            name: format!("m{i:02}"),
            role_ids: Vec::new(),
        })
        .collect();
    let refused = parse_line(
        "/incident role assign role:sre user:zed",
        &registered(),
        &directory,
    )
    .expect_err("unknown member");
    insta::assert_snapshot!(refused, @r#"no member "zed" for option user; members: m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, m10, m11, m12, m13, m14, m15, m16, m17, m18, m19, m20, m21, m22, m23, m24 and 5 more"#);
}
