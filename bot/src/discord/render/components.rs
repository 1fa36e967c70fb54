//! Message components as Discord takes them: action rows (type 1) of buttons (type 2), and
//! string selects (type 3) in a row of their own, within the limits [`super::message`]
//! documents.

use opsbot_commands::chat::{ButtonStyle, Message, Select};
use poise::serenity_prelude as serenity;
use serde::Serialize;

use super::message::{
    BUTTONS_PER_ROW, CUSTOM_ID_MAX, LABEL_MAX, OPTION_TEXT_MAX, OPTIONS_MAX, PLACEHOLDER_MAX,
    ROWS_MAX, non_blank, truncate,
};

/// An action row (component type 1) of buttons (type 2), or of one string select (type 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    #[serde(rename = "type")]
    pub kind: u8,
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Component {
    Button(ButtonBody),
    Select(SelectBody),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectBody {
    #[serde(rename = "type")]
    pub kind: u8,
    pub custom_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub placeholder: String,
    pub options: Vec<OptionBody>,
    pub min_values: u8,
    pub max_values: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionBody {
    pub label: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ButtonBody {
    #[serde(rename = "type")]
    pub kind: u8,
    pub style: u8,
    pub label: String,
    pub custom_id: String,
}

pub(super) fn rows(message: &Message) -> Vec<Row> {
    let mut rows: Vec<Row> = message
        .buttons
        .iter()
        // A custom id Discord would refuse makes the whole message fail: drop the button.
        .filter(|b| (1..=CUSTOM_ID_MAX).contains(&b.custom_id.chars().count()))
        .take(ROWS_MAX * BUTTONS_PER_ROW)
        .collect::<Vec<_>>()
        .chunks(BUTTONS_PER_ROW)
        .map(|row| Row {
            kind: 1,
            components: row
                .iter()
                .map(|b| {
                    Component::Button(ButtonBody {
                        kind: 2,
                        style: match b.style {
                            ButtonStyle::Primary => 1,
                            ButtonStyle::Secondary => 2,
                            ButtonStyle::Success => 3,
                            ButtonStyle::Danger => 4,
                        },
                        label: truncate(non_blank(&b.label), LABEL_MAX),
                        custom_id: b.custom_id.clone(),
                    })
                })
                .collect(),
        })
        .collect();
    let room = ROWS_MAX.saturating_sub(rows.len());
    rows.extend(
        message
            .selects
            .iter()
            .filter_map(select_body)
            .take(room)
            .map(|select| Row {
                kind: 1,
                components: vec![Component::Select(select)],
            }),
    );
    rows
}

/// A select as Discord takes it; `None` when Discord would refuse it whatever we cut (a bad
/// custom id, no options, two options with one value).
fn select_body(select: &Select) -> Option<SelectBody> {
    if !(1..=CUSTOM_ID_MAX).contains(&select.custom_id.chars().count()) {
        return None;
    }
    let mut values = std::collections::BTreeSet::new();
    let options: Vec<OptionBody> = select
        .options
        .iter()
        .filter(|o| (1..=OPTION_TEXT_MAX).contains(&o.value.chars().count()))
        .filter(|o| values.insert(o.value.clone()))
        .take(OPTIONS_MAX)
        .map(|o| OptionBody {
            label: truncate(non_blank(&o.label), OPTION_TEXT_MAX),
            value: o.value.clone(),
            description: o
                .description
                .as_deref()
                .filter(|d| !d.trim().is_empty())
                .map(|d| truncate(d, OPTION_TEXT_MAX)),
        })
        .collect();
    if options.is_empty() {
        return None;
    }
    Some(SelectBody {
        kind: 3,
        custom_id: select.custom_id.clone(),
        placeholder: truncate(&select.placeholder, PLACEHOLDER_MAX),
        options,
        min_values: 1,
        max_values: 1,
    })
}

pub(super) fn serenity_rows(components: &[Row]) -> Vec<serenity::CreateActionRow> {
    components
        .iter()
        .filter_map(|row| {
            if let [Component::Select(select)] = row.components.as_slice() {
                let options = select
                    .options
                    .iter()
                    .map(|o| {
                        let option = serenity::CreateSelectMenuOption::new(&o.label, &o.value);
                        match &o.description {
                            Some(d) => option.description(d),
                            None => option,
                        }
                    })
                    .collect();
                let mut menu = serenity::CreateSelectMenu::new(
                    &select.custom_id,
                    serenity::CreateSelectMenuKind::String { options },
                )
                .min_values(select.min_values)
                .max_values(select.max_values);
                if !select.placeholder.is_empty() {
                    menu = menu.placeholder(&select.placeholder);
                }
                return Some(serenity::CreateActionRow::SelectMenu(menu));
            }
            let buttons: Vec<serenity::CreateButton> = row
                .components
                .iter()
                .filter_map(|c| match c {
                    Component::Button(b) => Some(b),
                    Component::Select(_) => None,
                })
                .map(|b| {
                    let style = match b.style {
                        1 => serenity::ButtonStyle::Primary,
                        3 => serenity::ButtonStyle::Success,
                        4 => serenity::ButtonStyle::Danger,
                        _ => serenity::ButtonStyle::Secondary,
                    };
                    serenity::CreateButton::new(&b.custom_id)
                        .label(&b.label)
                        .style(style)
                })
                .collect();
            (!buttons.is_empty()).then_some(serenity::CreateActionRow::Buttons(buttons))
        })
        .collect()
}
