//! The refusal of a mistyped shell line (`:clik Approve`): the nearest `:` command, as the
//! emulator suggests the nearest slash command or option for a mistyped `/deplyo`.

use crate::emulator::typed_line::nearest;

/// The shell's own commands (see `:help`).
const SHELL_COMMANDS: [&str; 13] = [
    ":help",
    ":quit",
    ":exit",
    ":click",
    ":select",
    ":as",
    ":in",
    ":channels",
    ":write",
    ":apps",
    ":modal",
    ":complete",
    ":sleep",
];

/// `unknown shell command `:clik`; did you mean :click?`, or a pointer to `:help`.
pub(super) fn unknown_shell_command(typed: &str) -> String {
    let names = SHELL_COMMANDS.iter().map(|c| &c[1..]);
    match nearest(typed.trim_start_matches(':'), names) {
        Some(near) => format!("unknown shell command `{typed}`; did you mean :{near}?"),
        None => format!("unknown shell command `{typed}`; type :help"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_shell_command_suggests_the_nearest() {
        insta::assert_snapshot!(unknown_shell_command(":clik"), @"unknown shell command `:clik`; did you mean :click?");
        insta::assert_snapshot!(unknown_shell_command(":chanels"), @"unknown shell command `:chanels`; did you mean :channels?");
        insta::assert_snapshot!(unknown_shell_command(":frobnicate"), @"unknown shell command `:frobnicate`; type :help");
    }
}
