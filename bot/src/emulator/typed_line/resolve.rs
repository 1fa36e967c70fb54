//! Members, roles and channels named in a line (by name, id or mention), and the
//! `resolved` block Discord sends with them.

use super::*;

/// A snowflake written as digits, or inside a mention such as `<@…>`.
pub(super) fn mentioned_id(text: &str, prefixes: &[&str]) -> Option<u64> {
    if let Ok(id) = text.parse() {
        return Some(id);
    }
    let inner = text.strip_prefix('<')?.strip_suffix('>')?;
    prefixes
        .iter()
        .find_map(|p| inner.strip_prefix(p)?.parse().ok())
}

pub(super) fn find_member<'a>(
    directory: &'a GuildDirectory,
    text: &str,
) -> Option<&'a DirectoryMember> {
    if let Some(id) = mentioned_id(text, &["@!", "@"]) {
        return directory.members.iter().find(|m| m.id == id);
    }
    let name = text.strip_prefix('@').unwrap_or(text);
    directory
        .members
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
}

pub(super) fn find_role<'a>(
    directory: &'a GuildDirectory,
    text: &str,
) -> Option<&'a DirectoryRole> {
    if let Some(id) = mentioned_id(text, &["@&"]) {
        return directory.roles.iter().find(|r| r.id == id);
    }
    directory
        .roles
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(text))
        .or_else(|| {
            let name = text.strip_prefix('@').unwrap_or(text);
            directory
                .roles
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(name))
        })
}

/// The channel named by `text`, if its type is one the option allows (`channel_types`).
pub(super) fn find_channel<'a>(
    option: &Value,
    text: &str,
    directory: &'a GuildDirectory,
) -> Result<&'a DirectoryChannel, LineError> {
    let allowed: Option<Vec<u64>> = field(option, "channel_types")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_u64).collect());
    let allows = |channel: &DirectoryChannel| {
        allowed
            .as_ref()
            .is_none_or(|a| a.contains(&u64::from(channel.kind)))
    };
    let name = name_of(option);
    let channel = match mentioned_id(text, &["#"]) {
        Some(id) => directory.channels.iter().find(|c| c.id == id),
        None => {
            let wanted = text.strip_prefix('#').unwrap_or(text);
            let mut named = directory
                .channels
                .iter()
                .filter(|c| c.name.eq_ignore_ascii_case(wanted));
            // Two channels may share a name (a category and a text channel): prefer one that fits.
            named.clone().find(|c| allows(c)).or_else(|| named.next())
        }
    };
    let listed = || {
        let names = directory
            .channels
            .iter()
            .filter(|c| allows(c))
            .map(|c| format!("#{}", c.name));
        list("channels", names)
    };
    let channel = channel.ok_or_else(|| {
        error(format!(
            "no channel \"{text}\" for option {name}; {}",
            listed()
        ))
    })?;
    if !allows(channel) {
        let kinds: Vec<&str> = allowed
            .iter()
            .flatten()
            .map(|&k| u8::try_from(k).map_or("channel", channel_kind))
            .collect();
        let kinds = match kinds.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "channel".to_owned(),
        };
        return Err(error(format!(
            "#{} is a {}, but option {name} takes a {kinds}; {}",
            channel.name,
            channel_kind(channel.kind),
            listed()
        )));
    }
    Ok(channel)
}

/// Discord's name for a channel type, as its client shows it.
pub(super) fn channel_kind(kind: u8) -> &'static str {
    match kind {
        0 => "text channel",
        2 => "voice channel",
        4 => "category",
        5 => "announcement channel",
        10 => "announcement thread",
        11 => "public thread",
        12 => "private thread",
        13 => "stage channel",
        15 => "forum channel",
        16 => "media channel",
        _ => "channel",
    }
}

pub(super) fn is_thread(kind: u8) -> bool {
    matches!(kind, 10..=12)
}

pub(super) fn at_role(role: &DirectoryRole) -> String {
    if role.name.starts_with('@') {
        role.name.clone()
    } else {
        format!("@{}", role.name)
    }
}

pub(super) fn list_members(directory: &GuildDirectory) -> String {
    list("members", directory.members.iter().map(|m| m.name.clone()))
}

pub(super) fn list_roles(directory: &GuildDirectory) -> String {
    list("roles", directory.roles.iter().map(|r| r.name.clone()))
}

/// `members: ana, bob` sorted, at most [`MAX_LISTED`], saying how many were left out.
pub(super) fn list(what: &str, names: impl Iterator<Item = String>) -> String {
    let mut names: Vec<String> = names.collect();
    if names.is_empty() {
        return format!("there are no {what}");
    }
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup();
    let more = names.len().saturating_sub(MAX_LISTED);
    names.truncate(MAX_LISTED);
    let mut listed = format!("{what}: {}", names.join(", "));
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    listed
}

/// The `resolved` object: what the options referenced, shaped as Discord sends it.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    users: Map<String, Value>,
    members: Map<String, Value>,
    roles: Map<String, Value>,
    channels: Map<String, Value>,
}

impl Resolved {
    pub(super) fn add_member(&mut self, member: &DirectoryMember) {
        let id = member.id.to_string();
        self.users.insert(
            id.clone(),
            json!({
                "id": id,
                "username": member.name,
                "global_name": null,
                "discriminator": "0",
                "avatar": null,
            }),
        );
        self.members.insert(
            id,
            json!({
                "roles": member.role_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
                "joined_at": JOINED_AT,
                "deaf": false,
                "mute": false,
                "flags": 0,
                "pending": false,
                "permissions": "0",
                "nick": null,
                "avatar": null,
            }),
        );
    }

    pub(super) fn add_role(&mut self, role: &DirectoryRole, guild_id: u64) {
        let id = role.id.to_string();
        // @everyone has the guild's id and sits at the bottom.
        let position = if role.id == guild_id { 0 } else { 1 };
        self.roles.insert(
            id.clone(),
            json!({
                "id": id,
                "name": role.name,
                "color": 0,
                "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
                "hoist": false,
                "position": position,
                "permissions": "0",
                "managed": false,
                "mentionable": false,
                "flags": 0,
                "icon": null,
                "unicode_emoji": null,
            }),
        );
    }

    pub(super) fn add_channel(&mut self, channel: &DirectoryChannel) {
        let id = channel.id.to_string();
        let mut value = json!({
            "id": id,
            "name": channel.name,
            "type": channel.kind,
            "permissions": "0",
        });
        if is_thread(channel.kind) {
            value["parent_id"] = Value::Null;
            value["thread_metadata"] = json!({
                "archived": false,
                "auto_archive_duration": 1440,
                "archive_timestamp": JOINED_AT,
                "locked": false,
                "create_timestamp": JOINED_AT,
            });
        }
        self.channels.insert(id, value);
    }

    pub(super) fn into_json(self) -> Option<Value> {
        let mut resolved = Map::new();
        for (key, map) in [
            ("users", self.users),
            ("members", self.members),
            ("roles", self.roles),
            ("channels", self.channels),
        ] {
            if !map.is_empty() {
                resolved.insert(key.to_owned(), Value::Object(map));
            }
        }
        (!resolved.is_empty()).then_some(Value::Object(resolved))
    }
}
