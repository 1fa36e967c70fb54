use super::input::interaction_json;
use super::*;
use poise::serenity_prelude as serenity;

fn sample_guild() -> Guild {
    let mut guild = Guild {
        id: 100_000_000_000_000_001,
        name: "g".into(),
        ..Guild::default()
    };
    guild.application_id = guild.ids.issue();
    guild.bot_user_id = guild.application_id;
    guild.roles.push(guild::Role {
        id: guild.id,
        name: "@everyone".into(),
        position: 0,
    });
    let ops = guild.ensure_role("ops");
    guild.members.push(Member {
        id: guild.bot_user_id,
        name: "opsbot".into(),
        role_ids: vec![],
        bot: true,
    });
    let ana = guild.ids.issue();
    guild.members.push(Member {
        id: ana,
        name: "ana".into(),
        role_ids: vec![ops],
        bot: false,
    });
    guild.add_channel(None, "general", CHANNEL_TEXT, None);
    let general = guild.channels[0].id;
    guild.add_channel(
        None,
        "deploy-1",
        guild::CHANNEL_PUBLIC_THREAD,
        Some(general),
    );
    guild
}

#[test]
fn guild_create_deserializes_into_serenitys_guild() {
    let guild = sample_guild();
    let parsed: serenity::Guild =
        serde_json::from_value(guild.guild_create_json()).expect("serenity Guild");
    assert_eq!(parsed.roles.len(), 2);
    assert_eq!(parsed.members.len(), 2);
    assert_eq!(parsed.threads.len(), 1);
}

#[test]
fn interactions_deserialize_into_serenitys_interaction() {
    let guild = sample_guild();
    let member = &guild.members[1];
    let channel = &guild.channels[0];
    let data = json!({"id": "1", "name": "whoami", "type": 1, "guild_id": guild.id.to_string(), "options": []});
    let value = interaction_json(&guild, member, channel, data, 5, "tok");
    let parsed: serenity::Interaction =
        serde_json::from_value(value).expect("serenity Interaction");
    let command = parsed.command().expect("a command interaction");
    assert_eq!(command.data.name, "whoami");
    assert_eq!(command.member.as_ref().map(|m| m.roles.len()), Some(1));
}

#[test]
fn button_presses_deserialize_into_serenitys_component_interaction() {
    let guild = sample_guild();
    let data = json!({"custom_id": "audit-older|1|2|||", "component_type": 2});
    let mut value = interaction_json(
        &guild,
        &guild.members[1],
        &guild.channels[0],
        data,
        6,
        "tok",
    );
    value["type"] = json!(3);
    let message = guild::Message {
        id: 9,
        channel_id: guild.channels[0].id,
        author_id: guild.bot_user_id,
        content: String::new(),
        embeds: vec![],
        components: vec![
            json!({"type": 1, "components": [{"type": 2, "style": 2, "label": "Older", "custom_id": "audit-older|1|2|||"}]}),
        ],
        attachments: vec![],
        files: vec![],
        flags: 64,
        pinned: false,
        edited: false,
        nonce: None,
        interaction_id: Some(5),
        visible_to: Some(guild.members[1].id),
        created_at: chrono::Utc::now(),
    };
    value["message"] = guild.message_json(&message);
    let parsed: serenity::Interaction =
        serde_json::from_value(value).expect("serenity Interaction");
    let press = parsed.message_component().expect("a component interaction");
    assert_eq!(press.data.custom_id, "audit-older|1|2|||");
}

#[test]
fn messages_and_channels_deserialize_into_serenitys_models() {
    let mut guild = sample_guild();
    let channel_id = guild.channels[0].id;
    let message = guild::Message {
        id: guild.ids.issue(),
        channel_id,
        author_id: guild.bot_user_id,
        content: "hi".into(),
        embeds: vec![json!({"title": "t", "description": "d", "type": "rich"})],
        components: vec![],
        attachments: vec![],
        files: vec![],
        flags: 0,
        pinned: false,
        edited: false,
        nonce: Some("n".into()),
        interaction_id: None,
        visible_to: None,
        created_at: chrono::Utc::now(),
    };
    let _: serenity::Message =
        serde_json::from_value(guild.message_json(&message)).expect("serenity Message");
    for channel in &guild.channels {
        let _: serenity::GuildChannel =
            serde_json::from_value(guild.channel_json(channel)).expect("serenity GuildChannel");
    }
    let _: serenity::Member = serde_json::from_value(json!({"guild_id": guild.id.to_string(), "user": guild.user_json(&guild.members[1]), "roles": [], "joined_at": guild::JOINED_AT, "deaf": false, "mute": false, "flags": 0, "pending": false})).expect("member");
}
