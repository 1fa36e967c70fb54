//! Application command registration: global and per guild, listed back as Discord does.

use super::*;

pub(super) fn store_commands(
    state: &mut EmulatorState,
    guild_id: Option<u64>,
    commands: Vec<Value>,
) -> Vec<Value> {
    let guild = &mut state.guild;
    let stored: Vec<Value> = commands
        .into_iter()
        .map(|mut command| {
            let id = guild.ids.issue();
            command["id"] = json!(id.to_string());
            command["application_id"] = json!(guild.application_id.to_string());
            command["version"] = json!(id.to_string());
            if command.get("type").is_none() {
                command["type"] = json!(1);
            }
            // Context-menu commands are registered without one; Discord answers "".
            if command.get("description").is_none_or(Value::is_null) {
                command["description"] = json!("");
            }
            // Discord omits `guild_id` on global commands (it is never null).
            if let Some(g) = guild_id {
                command["guild_id"] = json!(g.to_string());
            }
            if let Some(options) = command.get_mut("options") {
                drop_unset_option_fields(options);
            }
            command["default_member_permissions"] = command
                .get("default_member_permissions")
                .cloned()
                .unwrap_or(Value::Null);
            command
        })
        .collect();
    guild.commands = stored.clone();
    stored
}

/// Discord does not echo option fields sent as `null` (poise sends `"min_value": null` and the
/// like); its answers leave them out.
pub(super) fn drop_unset_option_fields(options: &mut Value) {
    for option in options.as_array_mut().into_iter().flatten() {
        if let Some(object) = option.as_object_mut() {
            object.retain(|_, value| !value.is_null());
            if let Some(nested) = object.get_mut("options") {
                drop_unset_option_fields(nested);
            }
        }
    }
}

pub(super) async fn register_commands(
    State(shared): Shared_,
    DiscordBody(body): DiscordBody,
) -> Response {
    let Value::Array(commands) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: expected an array of commands",
        );
    };
    let stored = store_commands(&mut shared.state(), None, commands);
    Json(Value::Array(stored)).into_response()
}

pub(super) async fn register_guild_commands(
    State(shared): Shared_,
    Path((_app, guild)): Path<(u64, u64)>,
    DiscordBody(body): DiscordBody,
) -> Response {
    let Value::Array(commands) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: expected an array of commands",
        );
    };
    let mut state = shared.state();
    if guild != state.guild.id {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    }
    let stored = store_commands(&mut state, Some(guild), commands);
    Json(Value::Array(stored)).into_response()
}

pub(super) async fn list_commands(State(shared): Shared_) -> Json<Value> {
    Json(Value::Array(shared.state().guild.commands.clone()))
}

pub(super) async fn list_commands_in_guild(State(shared): Shared_) -> Json<Value> {
    Json(Value::Array(shared.state().guild.commands.clone()))
}
