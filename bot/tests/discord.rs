//! The real poise commands end to end through the emulator, against real Postgres.

mod support;

use opsbot_commands::audit::tail;
use sqlx::PgPool;
use support::TestBot;

const OPS: (&str, &[&str]) = ("ops", &["audit:*", "deploy:*"]);

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn whoami_names_roles_and_permissions(pool: PgPool) {
    let mut bot = TestBot::start(pool.clone(), &[OPS]).await;
    let reply = bot.say("ana", &["ops"], "/whoami").await;
    assert!(reply.ephemeral);
    let text = reply
        .content
        .replace(&format!("{}", bot.emulator.member("ana", None)), "<id>");
    insta::assert_snapshot!(text, @r"
    **ana** (`<id>`)
    roles: ops
    permissions: `audit:*`, `deploy:*`
    ");
    let events = tail(&pool, 5).await.expect("tail");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].command.as_str(), events[0].outcome.as_str()),
        ("whoami", "ok")
    );
    assert_eq!(events[0].source, "discord");
    assert!(events[0].interaction_id.is_some());
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn audit_commands_need_their_permission_and_denials_are_audited(pool: PgPool) {
    let mut bot = TestBot::start(pool.clone(), &[OPS, ("dev", &["deploy:staging"])]).await;
    let denied = bot.say("bo", &["dev"], "/audit recent").await;
    assert!(denied.ephemeral);
    insta::assert_snapshot!(denied.content, @"⛔ you need the `audit:read` permission to read the audit log. Ask an admin for a role that grants it.");

    let recent = bot.say("ana", &["ops"], "/audit recent").await;
    let listing = recent.embeds[0]["description"]
        .as_str()
        .expect("description");
    assert!(
        listing.contains("**bo** `audit recent` → **denied**"),
        "{listing}"
    );

    let verify = bot.say("ana", &["ops"], "/audit verify").await;
    assert_eq!(
        verify.event, "edit",
        "verify defers, then fills its reply in"
    );
    assert!(
        verify.content.starts_with("✅ audit chain ok: 0 events"),
        "{}",
        verify.content
    );

    let outcomes: Vec<String> = tail(&pool, 10)
        .await
        .expect("tail")
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor_name, e.command, e.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            "bo audit recent denied",
            "ana audit recent ok",
            "ana audit verify ok"
        ]
    );
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_older_button_pages_through_the_audit_log(pool: PgPool) {
    let mut bot = TestBot::start(pool.clone(), &[OPS]).await;
    for _ in 0..3 {
        bot.say("ana", &["ops"], "/whoami").await;
    }
    let first = bot.say("ana", &["ops"], "/audit recent count:2").await;
    let lines = |e: &opsbot::emulator::EmulatorEvent| -> Vec<String> {
        e.embeds[0]["description"]
            .as_str()
            .expect("description")
            .lines()
            .map(|l| l.split('`').nth(3).unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(lines(&first), ["whoami", "whoami"]);
    assert_eq!(first.components[0]["components"][0]["label"], "Older");

    let older = bot.click("ana", "Older").await;
    assert_eq!(
        older.event, "edit",
        "the page replaces the message the button is on"
    );
    assert_eq!(older.message_id, first.message_id);
    assert_eq!(lines(&older), ["whoami"]);
    assert!(older.components.is_empty(), "no older page: no button");

    // The press was audited like the command, with the page it asked for.
    let events = tail(&pool, 1).await.expect("tail");
    assert_eq!(
        (events[0].command.as_str(), events[0].outcome.as_str()),
        ("audit recent", "ok")
    );
    assert!(events[0].args["before"].is_i64(), "{}", events[0].args);

    // Someone else cannot see (so cannot press) ana's ephemeral reply.
    let bo = bot.emulator.member("bo", Some(&["ops".to_string()]));
    let err = bot
        .emulator
        .click(bo, "Older")
        .expect_err("not visible to bo");
    assert!(err.to_string().contains("no message you can see"), "{err}");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn over_long_options_are_refused_by_the_client_with_their_limit(pool: PgPool) {
    let mut bot = TestBot::start(pool.clone(), &[OPS]).await;
    let ana = bot.emulator.member("ana", Some(&["ops".to_owned()]));
    // Discord's client refuses an over-long value before it reaches the bot, so every refusal
    // that quotes one stays within Discord's 2000-character content limit.
    let cases = [
        (
            format!(
                "/deploy run service:{} version:v1 env:staging",
                "s".repeat(10_000)
            ),
            "option service must be at most 100 characters long, got 10000",
        ),
        (
            format!(
                "/deploy run service:api version:{} env:staging",
                "v".repeat(201)
            ),
            "option version must be at most 200 characters long, got 201",
        ),
        (
            format!(
                "/deploy lock service:api env:staging reason:{}",
                "r".repeat(4001)
            ),
            "option reason must be at most 4000 characters long, got 4001",
        ),
        (
            format!("/audit recent command:{}", "c".repeat(101)),
            "option command must be at most 100 characters long, got 101",
        ),
    ];
    for (line, refusal) in &cases {
        let err = bot
            .emulator
            .type_line(ana, bot.general, line)
            .expect_err("over the limit");
        assert_eq!(err.to_string(), *refusal);
    }
    // At the limit, the bot answers, and its refusal fits in a message.
    let reply = bot
        .say(
            "ana",
            &["ops"],
            &format!(
                "/deploy run service:{} version:{} env:staging",
                "s".repeat(100),
                "v".repeat(200)
            ),
        )
        .await;
    assert!(reply.content.starts_with('❌'), "{}", reply.content);
    assert!(reply.content.chars().count() <= 2000);
    assert!(reply.pings.nobody());
}
