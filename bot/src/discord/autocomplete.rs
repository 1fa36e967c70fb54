//! The one shape of every autocomplete answer (`/deploy` services, environments and versions,
//! `/incident` severities and roles, `/digest` names, `/metrics` metrics and services):
//! Discord shows at most 25 choices of at most 100 characters each.

use poise::serenity_prelude as serenity;

/// Choices Discord accepts in one answer.
pub const CHOICES_MAX: usize = 25;
/// Characters of one choice.
pub const CHOICE_LENGTH_MAX: usize = 100;

/// The names containing `partial` (in any case), in order, within Discord's limits.
pub fn choices(
    names: impl IntoIterator<Item = String>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let partial = partial.to_lowercase();
    exactly(
        names
            .into_iter()
            .filter(|n| n.to_lowercase().contains(&partial)),
    )
}

/// These choices as they are (already matched), within Discord's limits.
pub fn exactly(choices: impl IntoIterator<Item = String>) -> serenity::CreateAutocompleteResponse {
    let choices = choices
        .into_iter()
        .filter(|c| c.chars().count() <= CHOICE_LENGTH_MAX)
        .take(CHOICES_MAX)
        .map(serenity::AutocompleteChoice::from)
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}
