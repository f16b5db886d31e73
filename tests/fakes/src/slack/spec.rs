//! The methods the fake implements: token type, bot scopes (any-of) and rate tier, copied from
//! `shared/specs/slack-method-docs-2026-05/methods/<method>.json`.

/// Which token a method accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenReq {
    Bot,
    App,
}

/// Rate limit of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// N calls per (scaled) minute per workspace.
    PerMinute(u32),
    /// chat.postMessage: 1 per (scaled) second per channel (burst configurable).
    PerChannelPerSecond,
}

#[derive(Debug)]
pub(crate) struct MethodSpec {
    pub name: &'static str,
    pub token: TokenReq,
    /// Bot scopes, any of which allows the call; empty = no scope needed. The first one is
    /// reported as `needed` in `missing_scope`.
    pub scopes: &'static [&'static str],
    pub limit: Limit,
    /// Read method: GET with query arguments is accepted.
    pub get_ok: bool,
}

// Tier 1 (1/min) is not used by any implemented method.
const T2: Limit = Limit::PerMinute(20);
const T3: Limit = Limit::PerMinute(50);
const T4: Limit = Limit::PerMinute(100);

const CREATE_SCOPES: &[&str] = &[
    "channels:manage",
    "channels:write",
    "groups:write",
    "im:write",
    "mpim:write",
];
const READ_SCOPES: &[&str] = &["channels:read", "groups:read", "im:read", "mpim:read"];

pub(crate) static METHODS: &[MethodSpec] = &[
    MethodSpec {
        name: "auth.test",
        token: TokenReq::Bot,
        scopes: &[],
        limit: Limit::PerMinute(600),
        get_ok: true,
    },
    // CONFLICT in the sources: Tier 3 (docs.slack.dev 2026-05) vs Tier 1 (java SDK); the spec wins.
    MethodSpec {
        name: "apps.connections.open",
        token: TokenReq::App,
        scopes: &[],
        limit: T3,
        get_ok: false,
    },
    MethodSpec {
        name: "views.open",
        token: TokenReq::Bot,
        scopes: &[],
        limit: T4,
        get_ok: false,
    },
    MethodSpec {
        name: "views.update",
        token: TokenReq::Bot,
        scopes: &[],
        limit: T4,
        get_ok: false,
    },
    MethodSpec {
        name: "views.push",
        token: TokenReq::Bot,
        scopes: &[],
        limit: T4,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.create",
        token: TokenReq::Bot,
        scopes: CREATE_SCOPES,
        limit: T2,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.archive",
        token: TokenReq::Bot,
        scopes: CREATE_SCOPES,
        limit: T2,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.rename",
        token: TokenReq::Bot,
        scopes: CREATE_SCOPES,
        limit: T2,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.invite",
        token: TokenReq::Bot,
        scopes: &[
            "channels:manage",
            "channels:write.invites",
            "groups:write",
            "groups:write.invites",
            "im:write",
            "mpim:write",
        ],
        limit: T3,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.setTopic",
        token: TokenReq::Bot,
        scopes: &[
            "channels:manage",
            "channels:write.topic",
            "groups:write",
            "groups:write.topic",
            "im:write",
            "im:write.topic",
            "mpim:write",
            "mpim:write.topic",
        ],
        limit: T2,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.join",
        token: TokenReq::Bot,
        scopes: &["channels:join"],
        limit: T3,
        get_ok: false,
    },
    MethodSpec {
        name: "conversations.info",
        token: TokenReq::Bot,
        scopes: READ_SCOPES,
        limit: T3,
        get_ok: true,
    },
    MethodSpec {
        name: "conversations.history",
        token: TokenReq::Bot,
        scopes: &[
            "channels:history",
            "groups:history",
            "im:history",
            "mpim:history",
        ],
        limit: T3,
        get_ok: true,
    },
    MethodSpec {
        // Tier 3 on paper; since 2025-05 non-Marketplace apps get 1 per minute (and at most 15
        // messages per call), which is what the fake enforces.
        name: "conversations.replies",
        token: TokenReq::Bot,
        scopes: &[
            "channels:history",
            "groups:history",
            "im:history",
            "mpim:history",
        ],
        limit: Limit::PerMinute(1),
        get_ok: true,
    },
    MethodSpec {
        name: "views.publish",
        token: TokenReq::Bot,
        scopes: &[],
        limit: T4,
        get_ok: false,
    },
    MethodSpec {
        name: "chat.getPermalink",
        token: TokenReq::Bot,
        scopes: &[],
        limit: T4,
        get_ok: true,
    },
    MethodSpec {
        name: "conversations.members",
        token: TokenReq::Bot,
        scopes: READ_SCOPES,
        limit: T4,
        get_ok: true,
    },
    MethodSpec {
        name: "users.conversations",
        token: TokenReq::Bot,
        scopes: READ_SCOPES,
        limit: T3,
        get_ok: true,
    },
    MethodSpec {
        name: "users.info",
        token: TokenReq::Bot,
        scopes: &["users:read"],
        limit: T4,
        get_ok: true,
    },
    MethodSpec {
        name: "chat.postMessage",
        token: TokenReq::Bot,
        scopes: &["chat:write"],
        limit: Limit::PerChannelPerSecond,
        get_ok: false,
    },
    MethodSpec {
        name: "chat.update",
        token: TokenReq::Bot,
        scopes: &["chat:write"],
        limit: T3,
        get_ok: false,
    },
    MethodSpec {
        name: "chat.postEphemeral",
        token: TokenReq::Bot,
        scopes: &["chat:write"],
        limit: T4,
        get_ok: false,
    },
    MethodSpec {
        name: "pins.add",
        token: TokenReq::Bot,
        scopes: &["pins:write"],
        limit: T2,
        get_ok: false,
    },
    MethodSpec {
        name: "bookmarks.add",
        token: TokenReq::Bot,
        scopes: &["bookmarks:write"],
        limit: T2,
        get_ok: false,
    },
];

pub(crate) fn lookup(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// The bot scopes granted by default: enough for every implemented method on public and
/// private channels. Deliberately **without** `chat:write.public`, so posting to a public channel
/// the bot has not joined fails with `not_in_channel` unless a test grants it.
pub const DEFAULT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "bookmarks:write",
    "channels:history",
    "channels:join",
    "channels:manage",
    "channels:read",
    "chat:write",
    "commands",
    "groups:history",
    "groups:read",
    "groups:write",
    "im:history",
    "im:read",
    "im:write",
    "pins:read",
    "pins:write",
    "reactions:read",
    "users:read",
];
