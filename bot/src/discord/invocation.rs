//! Who invoked a command and with what, from a poise context: the [`Invocation`] every
//! domain call takes.

use opsbot_commands::{Actor, Invocation, Source};
use poise::serenity_prelude as serenity;
use serde_json::{Map, Value};

use super::Context;

/// Builds the invocation of the current command: actor (with role names), options as given,
/// guild, channel and interaction ids.
pub async fn invocation(ctx: Context<'_>) -> Invocation {
    let author = ctx.author();
    let actor = Actor {
        id: snowflake(author.id.get()),
        name: author.name.clone(),
        roles: role_names(ctx).await,
        source: Source::Discord,
    };
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

/// Discord ids fit in 63 bits (they are milliseconds since 2015 shifted left by 22).
fn snowflake(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The names of the author's roles in this guild (role names are what `[roles]` maps).
async fn role_names(ctx: Context<'_>) -> Vec<String> {
    let Some(member) = ctx.author_member().await else {
        return Vec::new();
    };
    let role_ids = member.roles.clone();
    if role_ids.is_empty() {
        return Vec::new();
    }
    let cached: Option<Vec<String>> = ctx.guild().map(|guild| {
        role_ids
            .iter()
            .filter_map(|id| guild.roles.get(id).map(|r| r.name.clone()))
            .collect()
    });
    if let Some(names) = cached.filter(|n| n.len() == role_ids.len()) {
        return names;
    }
    let Some(guild_id) = ctx.guild_id() else {
        return Vec::new();
    };
    match guild_id.roles(ctx.http()).await {
        Ok(roles) => role_ids
            .iter()
            .filter_map(|id| roles.get(id).map(|r| r.name.clone()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, guild = %guild_id, "could not fetch guild roles; acting without roles");
            Vec::new()
        }
    }
}

/// Slash options as a JSON object, exactly as given (users, roles and channels by id).
fn options_json(options: &[serenity::ResolvedOption<'_>]) -> Value {
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
