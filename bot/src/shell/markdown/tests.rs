use super::*;

/// 2026-12-01 16:20:00 UTC.
const NOW: i64 = 1_796_142_000;

fn names() -> GuildNames {
    GuildNames {
        users: [(11, "ana".to_owned())].into(),
        roles: [(22, "ops".to_owned())].into(),
        channels: [(33, "deploys".to_owned())].into(),
    }
}

fn style(color: bool) -> Style {
    Style {
        color,
        zone: Zone::Fixed(FixedOffset::east_opt(3_600).expect("an offset")),
        now: NOW,
    }
}

fn plain(text: &str) -> String {
    render(text, &names(), &style(false))
}

fn coloured(text: &str) -> String {
    render(text, &names(), &style(true)).replace('\x1b', "⎋")
}

#[test]
fn emphasis_loses_its_markers() {
    insta::assert_snapshot!(
        plain("**api** v1.2.3 is *live* on __staging__, ~~not~~ ***really*** ||secret||"),
        @"api v1.2.3 is live on staging, not really secret"
    );
    insta::assert_snapshot!(
        coloured("**api** is *live*"),
        @"⎋[1mapi⎋[22m is ⎋[3mlive⎋[23m"
    );
}

#[test]
fn what_is_not_emphasis_stays_as_typed() {
    insta::assert_snapshot!(
        plain(r"2 * 3 * 4, my_service_name, a lone ** and \*escaped\*"),
        @"2 * 3 * 4, my_service_name, a lone ** and *escaped*"
    );
}

#[test]
fn inline_code_keeps_its_text_without_backticks() {
    insta::assert_snapshot!(
        plain("needs `deploy:approve:production` and ``a `tick` inside``"),
        @"needs deploy:approve:production and a `tick` inside"
    );
    insta::assert_snapshot!(coloured("`x`"), @"⎋[36mx⎋[39m");
}

#[test]
fn code_blocks_are_indented_and_not_parsed() {
    insta::assert_snapshot!(
        plain("output:\n```text\n**not bold** <@11>\nline 2\n```\ndone"),
        @r"
    output:
        **not bold** <@11>
        line 2
    done
    "
    );
}

#[test]
fn block_quotes_get_a_bar() {
    insta::assert_snapshot!(
        plain("reason:\n> hot fix\nafter\n>>> all\nthe rest"),
        @r"
    reason:
    │ hot fix
    after
    │ all
    │ the rest
    "
    );
}

#[test]
fn headings_subtext_and_lists_lose_their_markers() {
    insta::assert_snapshot!(
        plain("# Deploys\n-# as of now\n- api\n  * worker"),
        @r"
    Deploys
    as of now
    • api
      • worker
    "
    );
}

#[test]
fn times_are_shown_in_the_local_zone() {
    let at = NOW + 5 * 60;
    insta::assert_snapshot!(
        plain(&format!(
            "<t:{at}:t> · <t:{at}:T> · <t:{at}:d> · <t:{at}:D> · <t:{at}> · <t:{at}:F>"
        )),
        @"17:25 · 17:25:00 · 2026-12-01 · 1 December 2026 · 1 December 2026 17:25 · Tuesday, 1 December 2026 17:25"
    );
}

#[test]
fn relative_times_count_from_now() {
    insta::assert_snapshot!(
        plain(&format!(
            "<t:{}:R>, <t:{}:R>, <t:{}:R>, <t:{}:R>, <t:{}:R>",
            NOW + 5 * 60,
            NOW - 3 * 3_600,
            NOW - 60,
            NOW + 10,
            NOW - 2 * 86_400
        )),
        @"in 5 minutes, 3 hours ago, 1 minute ago, in a few seconds, 2 days ago"
    );
}

#[test]
fn mentions_show_names_from_the_guild() {
    insta::assert_snapshot!(
        plain("<@11> (<@!11>) paged <@&22> in <#33>; <@99> <@&98> <#97> :x: <:party:123>"),
        @"@ana (@ana) paged @ops in #deploys; @unknown-user @unknown-role #unknown-channel :x: :party:"
    );
    insta::assert_snapshot!(coloured("<@11>"), @"⎋[34m@ana⎋[39m");
}

#[test]
fn links_show_label_and_address() {
    insta::assert_snapshot!(
        plain("[run 42](https://ci.example/42) and <https://ci.example/43>; [not](a link)"),
        @"run 42 (https://ci.example/42) and https://ci.example/43; [not](a link)"
    );
}

#[test]
fn no_colour_means_no_escape_codes() {
    let text = "**a** *b* `c` <@11> # d\n> e\n```\nf\n```";
    assert!(!render(text, &names(), &style(false)).contains('\x1b'));
}
