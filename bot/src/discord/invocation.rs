//! Who invoked a command and with what, from a poise context or a button press: the
//! [`Invocation`] every domain call takes.

use opsbot_commands::{Actor, Invocation, Source};
use poise::serenity_prelude as serenity;
use serde_json::{Map, Value};

use super::Context;

/// Builds the invocation of the current command: actor (with role names), options as given,
/// guild, channel and interaction ids.
pub async fn invocation(ctx: Context<'_>) -> Invocation {
    let role_ids = match ctx.author_member().await {
        Some(member) => member.roles.clone(),
        None => Vec::new(),
    };
    let actor = actor(
        ctx.serenity_context(),
        ctx.guild_id(),
        ctx.author(),
        &role_ids,
    )
    .await;
    let (args, interaction_id) = match ctx {
        poise::Context::Application(app) => (
            options_json(app.args),
            Some(snowflake(app.interaction.id.get())),
        ),
        poise::Context::Prefix(_) => (Value::Object(Map::new()), None),
    };
    let mut inv = Invocation::new(actor, ctx.command().qualified_name.clone(), args);
    inv.guild_id = ctx.guild_id().map(|g| snowflake(g.get()));
    inv.channel_id = Some(snowflake(ctx.channel_id().get()));
    inv.interaction_id = interaction_id;
    inv
}

/// The invocation of a button press: recorded under `command` with `args`.
pub async fn component_invocation(
    ctx: &serenity::Context,
    press: &serenity::ComponentInteraction,
    command: &str,
    args: Value,
) -> Invocation {
    let role_ids = press
        .member
        .as_ref()
        .map(|m| m.roles.clone())
        .unwrap_or_default();
    let actor = actor(ctx, press.guild_id, &press.user, &role_ids).await;
    let mut inv = Invocation::new(actor, command, args);
    inv.guild_id = press.guild_id.map(|g| snowflake(g.get()));
    inv.channel_id = Some(snowflake(press.channel_id.get()));
    inv.interaction_id = Some(snowflake(press.id.get()));
    inv
}

/// The door this connection serves (the serenity client's data): `discord`, or `shell`.
pub struct Door;

impl serenity::prelude::TypeMapKey for Door {
    type Value = Source;
}

/// The door of this connection: `discord`, or `shell`.
pub async fn door_of(ctx: &serenity::Context) -> Source {
    ctx.data
        .read()
        .await
        .get::<Door>()
        .copied()
        .unwrap_or(Source::Discord)
}

async fn actor(
    ctx: &serenity::Context,
    guild_id: Option<serenity::GuildId>,
    user: &serenity::User,
    role_ids: &[serenity::RoleId],
) -> Actor {
    let source = door_of(ctx).await;
    Actor {
        id: snowflake(user.id.get()),
        name: user.name.clone(),
        roles: role_names(ctx, guild_id, role_ids).await,
        source,
    }
}

/// Discord ids fit in 63 bits (they are milliseconds since 2015 shifted left by 22).
fn snowflake(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The names of these roles in the guild (role names are what `[roles]` maps): from the
/// gateway cache, else asked over HTTP.
async fn role_names(
    ctx: &serenity::Context,
    guild_id: Option<serenity::GuildId>,
    role_ids: &[serenity::RoleId],
) -> Vec<String> {
    let Some(guild_id) = guild_id else {
        return Vec::new();
    };
    if role_ids.is_empty() {
        return Vec::new();
    }
    let cached: Option<Vec<String>> = ctx.cache.guild(guild_id).map(|guild| {
        role_ids
            .iter()
            .filter_map(|id| guild.roles.get(id).map(|r| r.name.clone()))
            .collect()
    });
    if let Some(names) = cached.filter(|n| n.len() == role_ids.len()) {
        return names;
    }
    match role_names_over_http(&ctx.http, guild_id, role_ids).await {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, guild = %guild_id, "could not fetch guild roles; acting without roles");
            Vec::new()
        }
    }
}

/// The names of these roles in the guild, asked over HTTP: the one role id → name lookup of
/// every door (the dashboard's Discord login uses it too).
pub async fn role_names_over_http(
    http: &serenity::Http,
    guild_id: serenity::GuildId,
    role_ids: &[serenity::RoleId],
) -> Result<Vec<String>, serenity::Error> {
    let roles = guild_id.roles(http).await?;
    Ok(role_ids
        .iter()
        .filter_map(|id| roles.get(id).map(|r| r.name.clone()))
        .collect())
}

/// Slash options as a JSON object, exactly as given (users, roles and channels by id).
pub(super) fn options_json(options: &[serenity::ResolvedOption<'_>]) -> Value {
    let mut map = Map::new();
    for option in options {
        let value = match &option.value {
            serenity::ResolvedValue::String(s) => Value::from(*s),
            serenity::ResolvedValue::Integer(i) => Value::from(*i),
            serenity::ResolvedValue::Number(n) => Value::from(*n),
            serenity::ResolvedValue::Boolean(b) => Value::from(*b),
            serenity::ResolvedValue::User(user, _) => Value::from(user.id.to_string()),
            serenity::ResolvedValue::Role(role) => Value::from(role.id.to_string()),
            serenity::ResolvedValue::Channel(channel) => Value::from(channel.id.to_string()),
            serenity::ResolvedValue::Attachment(a) => Value::from(a.filename.clone()),
            serenity::ResolvedValue::SubCommand(nested)
            | serenity::ResolvedValue::SubCommandGroup(nested) => options_json(nested),
            serenity::ResolvedValue::Autocomplete { value, .. } => Value::from(*value),
            other => Value::from(format!("{other:?}")),
        };
        map.insert(option.name.to_owned(), value);
    }
    Value::Object(map)
}
