//! The guild, its channels, threads, roles and members.

use super::*;

pub(super) async fn get_channel(State(shared): Shared_, Path(channel): Path<u64>) -> Response {
    let state = shared.state();
    match state.guild.channel(channel) {
        Some(c) => Json(state.guild.channel_json(c)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
    }
}

pub(super) async fn modify_channel(
    State(shared): Shared_,
    Path(channel): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    let Some(c) = state.guild.channels.iter_mut().find(|c| c.id == channel) else {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    if let Some(name) = body["name"].as_str() {
        c.name = name.to_owned();
    }
    if let Some(topic) = body.get("topic") {
        c.topic = topic.as_str().map(str::to_owned);
    }
    if let Some(parent) = body.get("parent_id") {
        c.parent_id = parent.as_str().and_then(|p| p.parse().ok());
    }
    if let Some(overwrites) = body["permission_overwrites"].as_array() {
        // Discord answers with ids as strings and permissions as decimal strings.
        c.permission_overwrites = overwrites
            .iter()
            .map(|o| {
                let text = |v: &Value| match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => "0".to_owned(),
                };
                json!({
                    "id": text(&o["id"]),
                    "type": o["type"].as_u64().unwrap_or(0),
                    "allow": text(&o["allow"]),
                    "deny": text(&o["deny"]),
                })
            })
            .collect();
    }
    let c = c.clone();
    Json(state.guild.channel_json(&c)).into_response()
}

pub(super) fn create_thread(shared: &Shared, channel: u64, body: &Value) -> Response {
    let mut state = shared.state();
    if state.guild.channel(channel).is_none() {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    }
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: name is required",
        );
    };
    let id = state
        .guild
        .add_channel(None, name, CHANNEL_PUBLIC_THREAD, Some(channel));
    let json = state
        .guild
        .channel(id)
        .map(|c| state.guild.channel_json(c))
        .unwrap_or(Value::Null);
    announce_channel(shared, &state, id);
    (StatusCode::CREATED, Json(json)).into_response()
}

pub(super) fn announce_channel(shared: &Shared, state: &EmulatorState, id: u64) {
    if let Some(c) = state.guild.channel(id) {
        shared.emit(EmulatorEvent {
            event: "channel_created",
            interaction_id: None,
            channel_id: c.id,
            channel: c.name.clone(),
            message_id: None,
            content: c.topic.clone().unwrap_or_default(),
            embeds: Vec::new(),
            components: Vec::new(),
            attachments: Vec::new(),
            files: Vec::new(),
            ephemeral: false,
            allowed_mentions: None,
            pings: mentions::Pings::default(),
        });
    }
}

pub(super) async fn start_thread_from_message(
    State(shared): Shared_,
    Path((channel, _message)): Path<(u64, u64)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    create_thread(&shared, channel, &body)
}

pub(super) async fn start_thread(
    State(shared): Shared_,
    Path(channel): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    create_thread(&shared, channel, &body)
}

pub(super) async fn get_guild(State(shared): Shared_, Path(guild): Path<u64>) -> Response {
    let state = shared.state();
    if guild != state.guild.id {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    }
    let mut json = state.guild.guild_create_json();
    if let Some(object) = json.as_object_mut() {
        for key in [
            "members",
            "channels",
            "threads",
            "voice_states",
            "presences",
            "joined_at",
            "large",
            "unavailable",
            "member_count",
            "stage_instances",
            "guild_scheduled_events",
        ] {
            object.remove(key);
        }
        // Fields of GET /guilds/{id} that GUILD_CREATE does not carry.
        let fields = json!({
            "home_header": null,
            "region": "deprecated",
            "widget_enabled": false,
            "widget_channel_id": null,
            "max_presences": null,
            "max_members": 500_000,
            "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25,
            "nsfw": false,
            "incidents_data": null,
        });
        object.extend(fields.as_object().cloned().unwrap_or_default());
    }
    Json(json).into_response()
}

pub(super) async fn create_channel(
    State(shared): Shared_,
    Path(guild): Path<u64>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let mut state = shared.state();
    if guild != state.guild.id {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    }
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: name is required",
        );
    };
    let kind = body["type"]
        .as_u64()
        .and_then(|k| u8::try_from(k).ok())
        .unwrap_or(CHANNEL_TEXT);
    let parent = body["parent_id"].as_str().and_then(|p| p.parse().ok());
    let id = state.guild.add_channel(None, name, kind, parent);
    if let Some(topic) = body["topic"].as_str()
        && let Some(c) = state.guild.channels.iter_mut().find(|c| c.id == id)
    {
        c.topic = Some(topic.to_owned());
    }
    let json = state
        .guild
        .channel(id)
        .map(|c| state.guild.channel_json(c))
        .unwrap_or(Value::Null);
    announce_channel(&shared, &state, id);
    (StatusCode::CREATED, Json(json)).into_response()
}

pub(super) async fn list_channels(State(shared): Shared_) -> Json<Value> {
    let state = shared.state();
    // Discord's list leaves threads out (they have their own routes).
    let channels = state
        .guild
        .channels
        .iter()
        .filter(|c| c.kind != CHANNEL_PUBLIC_THREAD);
    Json(Value::Array(
        channels.map(|c| state.guild.channel_json(c)).collect(),
    ))
}

pub(super) async fn list_roles(State(shared): Shared_) -> Json<Value> {
    let state = shared.state();
    Json(Value::Array(
        state
            .guild
            .roles
            .iter()
            .map(|r| state.guild.role_json(r))
            .collect(),
    ))
}

pub(super) async fn get_member(
    State(shared): Shared_,
    Path((_guild, user)): Path<(u64, u64)>,
) -> Response {
    let state = shared.state();
    match state.guild.member(user) {
        Some(m) => Json(state.guild.member_json(m)).into_response(),
        None => error(StatusCode::NOT_FOUND, 10007, "Unknown Member"),
    }
}
