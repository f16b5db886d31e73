//! Block Kit and modal validation (platform-contracts §2.5), and the `block_id`/`action_id`
//! filling Slack does on stored blocks.
//!
//! Errors are reported the way Slack reports them in `response_metadata.messages`:
//! `[ERROR] <what> [json-pointer:/view/blocks/0/label/text]`.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Where blocks are shown; decides the block-count cap and which blocks are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// Messages: ≤50 blocks.
    Message,
    /// Modals: 1..=100 blocks.
    Modal,
}

/// Max blocks per message.
pub(crate) const MAX_MESSAGE_BLOCKS: usize = 50;
/// Max blocks per modal.
pub(crate) const MAX_MODAL_BLOCKS: usize = 100;

#[derive(Default)]
struct Checker {
    errs: Vec<String>,
    block_ids: HashSet<String>,
}

fn len(s: &str) -> usize {
    s.chars().count()
}

impl Checker {
    fn err(&mut self, ptr: &str, msg: impl std::fmt::Display) {
        self.errs
            .push(format!("[ERROR] {msg} [json-pointer:{ptr}]"));
    }

    /// Optional string field with a max length.
    fn opt_str(&mut self, obj: &Map<String, Value>, key: &str, ptr: &str, max: usize) {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                if len(s) > max {
                    self.err(
                        &format!("{ptr}/{key}"),
                        format!("must be less than {} characters", max + 1),
                    );
                }
            }
            Some(_) => self.err(&format!("{ptr}/{key}"), "must be a string"),
        }
    }

    fn req_str(&mut self, obj: &Map<String, Value>, key: &str, ptr: &str, max: usize) {
        match obj.get(key) {
            None | Some(Value::Null) => {
                self.err(ptr, format!("missing required field: {key}"));
            }
            Some(Value::String(s)) if s.is_empty() => {
                self.err(&format!("{ptr}/{key}"), "must be more than 0 characters")
            }
            _ => self.opt_str(obj, key, ptr, max),
        }
    }

    fn opt_bool(&mut self, obj: &Map<String, Value>, key: &str, ptr: &str) {
        if let Some(v) = obj.get(key) {
            if !v.is_boolean() {
                self.err(&format!("{ptr}/{key}"), "must be a boolean");
            }
        }
    }

    /// A text object under `obj[key]`.
    fn text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        ptr: &str,
        max: usize,
        plain_only: bool,
        required: bool,
    ) {
        let p = format!("{ptr}/{key}");
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.err(ptr, format!("missing required field: {key}"));
                }
            }
            Some(v) => self.text_value(v, &p, max, plain_only),
        }
    }

    fn text_value(&mut self, v: &Value, p: &str, max: usize, plain_only: bool) {
        let Some(t) = v.as_object() else {
            self.err(p, "must be a text object");
            return;
        };
        match t.get("type").and_then(Value::as_str) {
            Some("plain_text") => self.opt_bool(t, "emoji", p),
            Some("mrkdwn") if !plain_only => self.opt_bool(t, "verbatim", p),
            Some("mrkdwn") => {
                self.err(&format!("{p}/type"), "must be plain_text");
            }
            Some(other) => self.err(
                &format!("{p}/type"),
                format!("must be one of plain_text, mrkdwn (got `{other}`)"),
            ),
            None => self.err(p, "missing required field: type"),
        }
        match t.get("text") {
            Some(Value::String(s)) => {
                if s.is_empty() {
                    self.err(&format!("{p}/text"), "must be more than 0 characters");
                } else if len(s) > max {
                    self.err(
                        &format!("{p}/text"),
                        format!("must be less than {} characters", max + 1),
                    );
                }
            }
            Some(_) => self.err(&format!("{p}/text"), "must be a string"),
            None => self.err(p, "missing required field: text"),
        }
    }

    fn confirm(&mut self, obj: &Map<String, Value>, ptr: &str) {
        let Some(c) = obj.get("confirm") else { return };
        let p = format!("{ptr}/confirm");
        let Some(c) = c.as_object() else {
            self.err(&p, "must be an object");
            return;
        };
        self.text(c, "title", &p, 100, true, true);
        self.text(c, "text", &p, 300, false, true);
        self.text(c, "confirm", &p, 30, true, true);
        self.text(c, "deny", &p, 30, true, true);
    }

    fn option(&mut self, o: &Value, p: &str, plain_only: bool, allow_url: bool) {
        let Some(o) = o.as_object() else {
            self.err(p, "must be an option object");
            return;
        };
        self.text(o, "text", p, 75, plain_only, true);
        self.req_str(o, "value", p, 150);
        self.text(o, "description", p, 75, true, false);
        if allow_url {
            self.opt_str(o, "url", p, 3000);
        } else if o.contains_key("url") {
            self.err(&format!("{p}/url"), "url is only allowed in overflow menus");
        }
    }

    /// Checks `options` (min..=max) or, when `groups`, `option_groups`; returns all options.
    fn options(&mut self, el: &Map<String, Value>, ptr: &str, rule: OptionsRule) -> Vec<Value> {
        let OptionsRule {
            min,
            max,
            plain_only,
            groups,
            allow_url,
        } = rule;
        let mut all = Vec::new();
        match (
            el.get("options"),
            groups.then(|| el.get("option_groups")).flatten(),
        ) {
            (Some(_), Some(_)) => self.err(
                ptr,
                "must provide either options or option_groups, not both",
            ),
            (Some(opts), None) => {
                let p = format!("{ptr}/options");
                match opts.as_array() {
                    Some(a) => {
                        if a.len() < min {
                            self.err(&p, format!("must provide at least {min} items"));
                        }
                        if a.len() > max {
                            self.err(&p, format!("must provide at most {max} items"));
                        }
                        for (i, o) in a.iter().enumerate() {
                            self.option(o, &format!("{p}/{i}"), plain_only, allow_url);
                        }
                        all.extend(a.iter().cloned());
                    }
                    None => self.err(&p, "must be an array"),
                }
            }
            (None, Some(gs)) => {
                let p = format!("{ptr}/option_groups");
                match gs.as_array() {
                    Some(a) => {
                        if a.is_empty() || a.len() > 100 {
                            self.err(&p, "must provide between 1 and 100 items");
                        }
                        for (i, g) in a.iter().enumerate() {
                            let gp = format!("{p}/{i}");
                            let Some(g) = g.as_object() else {
                                self.err(&gp, "must be an option group");
                                continue;
                            };
                            self.text(g, "label", &gp, 75, true, true);
                            match g.get("options").and_then(Value::as_array) {
                                Some(os) => {
                                    if os.is_empty() || os.len() > 100 {
                                        self.err(
                                            &format!("{gp}/options"),
                                            "must provide between 1 and 100 items",
                                        );
                                    }
                                    for (j, o) in os.iter().enumerate() {
                                        self.option(
                                            o,
                                            &format!("{gp}/options/{j}"),
                                            plain_only,
                                            false,
                                        );
                                    }
                                    all.extend(os.iter().cloned());
                                }
                                None => self.err(&gp, "missing required field: options"),
                            }
                        }
                    }
                    None => self.err(&p, "must be an array"),
                }
            }
            (None, None) => {
                if groups {
                    self.err(ptr, "must provide either options or option_groups")
                } else {
                    self.err(ptr, "missing required field: options")
                }
            }
        }
        all
    }

    fn initial_option(&mut self, el: &Map<String, Value>, key: &str, ptr: &str, opts: &[Value]) {
        let Some(init) = el.get(key) else { return };
        let p = format!("{ptr}/{key}");
        let matches = |o: &Value| -> bool {
            opts.iter().any(|x| {
                x.get("value") == o.get("value")
                    && x.pointer("/text/text") == o.pointer("/text/text")
            })
        };
        if key == "initial_options" {
            match init.as_array() {
                Some(a) => {
                    for (i, o) in a.iter().enumerate() {
                        if !matches(o) {
                            self.err(
                                &format!("{p}/{i}"),
                                "must match one of the provided options",
                            );
                        }
                    }
                }
                None => self.err(&p, "must be an array"),
            }
        } else if !matches(init) {
            self.err(&p, "must match one of the provided options");
        }
    }

    fn action_id(&mut self, el: &Map<String, Value>, ptr: &str, seen: &mut HashSet<String>) {
        match el.get("action_id") {
            None => {}
            Some(Value::String(a)) => {
                if a.is_empty() {
                    self.err(
                        &format!("{ptr}/action_id"),
                        "must be more than 0 characters",
                    );
                } else if len(a) > 255 {
                    self.err(
                        &format!("{ptr}/action_id"),
                        "must be less than 256 characters",
                    );
                }
                if !seen.insert(a.clone()) {
                    self.err(
                        &format!("{ptr}/action_id"),
                        format!("action_id `{a}` is not unique within the block"),
                    );
                }
            }
            Some(_) => self.err(&format!("{ptr}/action_id"), "must be a string"),
        }
    }

    fn element(&mut self, el: &Value, ptr: &str, ctx: ElemCtx, seen: &mut HashSet<String>) {
        let Some(o) = el.as_object() else {
            self.err(ptr, "must be an element object");
            return;
        };
        let Some(ty) = o.get("type").and_then(Value::as_str) else {
            self.err(ptr, "missing required field: type");
            return;
        };
        if !ctx.allows(ty) {
            self.err(
                &format!("{ptr}/type"),
                format!("element type `{ty}` is not allowed in {}", ctx.name()),
            );
            return;
        }
        if ty != "image" {
            self.action_id(o, ptr, seen);
        }
        match ty {
            "button" => {
                self.text(o, "text", ptr, 75, true, true);
                self.opt_str(o, "value", ptr, 2000);
                self.opt_str(o, "url", ptr, 3000);
                self.opt_str(o, "accessibility_label", ptr, 75);
                if let Some(s) = o.get("style") {
                    if s != "primary" && s != "danger" {
                        self.err(&format!("{ptr}/style"), "must be one of primary, danger");
                    }
                }
                self.confirm(o, ptr);
            }
            "workflow_button" => {
                self.text(o, "text", ptr, 75, true, true);
                if !o.contains_key("workflow") {
                    self.err(ptr, "missing required field: workflow");
                }
            }
            "static_select" | "multi_static_select" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                let opts = self.options(o, ptr, OptionsRule::SELECT);
                self.initial_option(o, "initial_option", ptr, &opts);
                self.initial_option(o, "initial_options", ptr, &opts);
                self.max_selected(o, ptr);
                self.confirm(o, ptr);
            }
            "external_select" | "multi_external_select" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                self.max_selected(o, ptr);
                self.confirm(o, ptr);
            }
            "users_select" | "conversations_select" | "channels_select" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                for k in ["initial_user", "initial_conversation", "initial_channel"] {
                    self.opt_str(o, k, ptr, 255);
                }
                self.confirm(o, ptr);
            }
            "multi_users_select" | "multi_conversations_select" | "multi_channels_select" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                self.max_selected(o, ptr);
                self.confirm(o, ptr);
            }
            "overflow" => {
                self.options(o, ptr, OptionsRule::OVERFLOW);
                self.confirm(o, ptr);
            }
            "checkboxes" | "radio_buttons" => {
                let opts = self.options(o, ptr, OptionsRule::CHOICES);
                self.initial_option(o, "initial_option", ptr, &opts);
                self.initial_option(o, "initial_options", ptr, &opts);
                self.confirm(o, ptr);
            }
            "plain_text_input" => self.plain_text_input(o, ptr),
            "email_text_input" | "url_text_input" | "rich_text_input" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                if ty != "rich_text_input" {
                    self.opt_str(o, "initial_value", ptr, 3000);
                }
            }
            "number_input" => {
                match o.get("is_decimal_allowed") {
                    Some(Value::Bool(_)) => {}
                    Some(_) => self.err(&format!("{ptr}/is_decimal_allowed"), "must be a boolean"),
                    None => self.err(ptr, "missing required field: is_decimal_allowed"),
                }
                self.text(o, "placeholder", ptr, 150, true, false);
                for k in ["initial_value", "min_value", "max_value"] {
                    self.opt_str(o, k, ptr, 100);
                }
            }
            "datepicker" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                if let Some(d) = o.get("initial_date") {
                    if !d.as_str().is_some_and(is_date) {
                        self.err(&format!("{ptr}/initial_date"), "must be YYYY-MM-DD");
                    }
                }
                self.confirm(o, ptr);
            }
            "timepicker" => {
                self.text(o, "placeholder", ptr, 150, true, false);
                if let Some(d) = o.get("initial_time") {
                    if !d.as_str().is_some_and(is_time) {
                        self.err(&format!("{ptr}/initial_time"), "must be HH:mm");
                    }
                }
                self.confirm(o, ptr);
            }
            "datetimepicker" => {
                if let Some(d) = o.get("initial_date_time") {
                    if !d.is_u64() {
                        self.err(&format!("{ptr}/initial_date_time"), "must be an integer");
                    }
                }
                self.confirm(o, ptr);
            }
            "image" => self.image_el(o, ptr),
            "file_input" => {
                if let Some(n) = o.get("max_files") {
                    if !n.as_u64().is_some_and(|n| (1..=10).contains(&n)) {
                        self.err(&format!("{ptr}/max_files"), "must be between 1 and 10");
                    }
                }
            }
            _ => unreachable!("allows() filtered unknown types"),
        }
    }

    fn max_selected(&mut self, o: &Map<String, Value>, ptr: &str) {
        if let Some(n) = o.get("max_selected_items") {
            if n.as_u64().is_none_or(|n| n < 1) {
                self.err(&format!("{ptr}/max_selected_items"), "must be at least 1");
            }
        }
    }

    fn plain_text_input(&mut self, o: &Map<String, Value>, ptr: &str) {
        self.text(o, "placeholder", ptr, 150, true, false);
        self.opt_bool(o, "multiline", ptr);
        self.opt_bool(o, "focus_on_load", ptr);
        let int = |k: &str| o.get(k).map(|v| v.as_u64());
        let min = match int("min_length") {
            None => None,
            Some(Some(n)) if n <= 3000 => Some(n),
            Some(_) => {
                self.err(
                    &format!("{ptr}/min_length"),
                    "must be an integer between 0 and 3000",
                );
                None
            }
        };
        let max = match int("max_length") {
            None => None,
            Some(Some(n)) if (1..=3000).contains(&n) => Some(n),
            Some(_) => {
                self.err(
                    &format!("{ptr}/max_length"),
                    "must be an integer between 1 and 3000",
                );
                None
            }
        };
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                self.err(
                    &format!("{ptr}/min_length"),
                    "min_length must not be greater than max_length",
                );
            }
        }
        match o.get("initial_value") {
            None => {}
            Some(Value::String(v)) => {
                let l = len(v) as u64;
                if l > max.unwrap_or(3000) {
                    self.err(
                        &format!("{ptr}/initial_value"),
                        "must not be longer than max_length",
                    );
                }
            }
            Some(_) => self.err(&format!("{ptr}/initial_value"), "must be a string"),
        }
    }

    fn image_el(&mut self, o: &Map<String, Value>, ptr: &str) {
        if o.contains_key("image_url") {
            self.req_str(o, "image_url", ptr, 3000);
        } else if !o.contains_key("slack_file") {
            self.err(ptr, "missing required field: image_url");
        }
        self.req_str(o, "alt_text", ptr, 2000);
    }

    fn block_id(&mut self, b: &Map<String, Value>, ptr: &str) {
        match b.get("block_id") {
            None => {}
            Some(Value::String(id)) => {
                if id.is_empty() {
                    self.err(&format!("{ptr}/block_id"), "must be more than 0 characters");
                } else if len(id) > 255 {
                    self.err(
                        &format!("{ptr}/block_id"),
                        "must be less than 256 characters",
                    );
                }
                if !self.block_ids.insert(id.clone()) {
                    self.err(
                        &format!("{ptr}/block_id"),
                        format!("block_id `{id}` is not unique"),
                    );
                }
            }
            Some(_) => self.err(&format!("{ptr}/block_id"), "must be a string"),
        }
    }

    fn block(&mut self, b: &Value, ptr: &str, surface: Surface) {
        let Some(o) = b.as_object() else {
            self.err(ptr, "must be a block object");
            return;
        };
        let Some(ty) = o.get("type").and_then(Value::as_str) else {
            self.err(ptr, "missing required field: type");
            return;
        };
        self.block_id(o, ptr);
        let mut seen = HashSet::new();
        match ty {
            "section" => {
                let has_text = o.contains_key("text");
                self.text(o, "text", ptr, 3000, false, false);
                match o.get("fields") {
                    None => {
                        if !has_text {
                            self.err(ptr, "must provide either text or fields");
                        }
                    }
                    Some(Value::Array(fs)) => {
                        if fs.is_empty() && !has_text {
                            self.err(ptr, "must provide either text or fields");
                        }
                        if fs.len() > 10 {
                            self.err(&format!("{ptr}/fields"), "must provide at most 10 items");
                        }
                        for (i, f) in fs.iter().enumerate() {
                            self.text_value(f, &format!("{ptr}/fields/{i}"), 2000, false);
                        }
                    }
                    Some(_) => self.err(&format!("{ptr}/fields"), "must be an array"),
                }
                if let Some(acc) = o.get("accessory") {
                    self.element(
                        acc,
                        &format!("{ptr}/accessory"),
                        ElemCtx::Accessory,
                        &mut seen,
                    );
                }
                self.opt_bool(o, "expand", ptr);
            }
            "header" => self.text(o, "text", ptr, 150, true, true),
            "divider" => {}
            "context" => match o.get("elements").and_then(Value::as_array) {
                Some(els) => {
                    if els.is_empty() || els.len() > 10 {
                        self.err(
                            &format!("{ptr}/elements"),
                            "must provide between 1 and 10 items",
                        );
                    }
                    for (i, e) in els.iter().enumerate() {
                        let p = format!("{ptr}/elements/{i}");
                        match e.get("type").and_then(Value::as_str) {
                            Some("image") => self.element(e, &p, ElemCtx::Context, &mut seen),
                            _ => self.text_value(e, &p, 3000, false),
                        }
                    }
                }
                None => self.err(ptr, "missing required field: elements"),
            },
            "actions" => match o.get("elements").and_then(Value::as_array) {
                Some(els) => {
                    if els.is_empty() || els.len() > 25 {
                        self.err(
                            &format!("{ptr}/elements"),
                            "must provide between 1 and 25 items",
                        );
                    }
                    for (i, e) in els.iter().enumerate() {
                        self.element(
                            e,
                            &format!("{ptr}/elements/{i}"),
                            ElemCtx::Actions,
                            &mut seen,
                        );
                    }
                }
                None => self.err(ptr, "missing required field: elements"),
            },
            "input" => {
                self.text(o, "label", ptr, 2000, true, true);
                self.text(o, "hint", ptr, 2000, true, false);
                self.opt_bool(o, "optional", ptr);
                self.opt_bool(o, "dispatch_action", ptr);
                match o.get("element") {
                    Some(e) => {
                        self.element(e, &format!("{ptr}/element"), ElemCtx::Input, &mut seen)
                    }
                    None => self.err(ptr, "missing required field: element"),
                }
            }
            "image" => {
                self.image_el(o, ptr);
                self.text(o, "title", ptr, 2000, true, false);
            }
            "rich_text" => {
                if !o.get("elements").is_some_and(Value::is_array) {
                    self.err(ptr, "missing required field: elements");
                }
            }
            "markdown" if surface == Surface::Message => self.req_str(o, "text", ptr, 12000),
            "file" => {
                self.req_str(o, "external_id", ptr, 255);
                self.req_str(o, "source", ptr, 255);
            }
            "video" => {
                self.req_str(o, "alt_text", ptr, 2000);
                self.text(o, "title", ptr, 200, true, true);
                self.req_str(o, "thumbnail_url", ptr, 3000);
                self.req_str(o, "video_url", ptr, 3000);
            }
            other => self.err(
                &format!("{ptr}/type"),
                format!("unsupported block type `{other}` on this surface"),
            ),
        }
    }
}

/// How an element's option list is checked.
#[derive(Clone, Copy)]
struct OptionsRule {
    min: usize,
    max: usize,
    /// Option text must be plain_text.
    plain_only: bool,
    /// `option_groups` allowed instead of `options`.
    groups: bool,
    /// Options may carry `url` (overflow menus).
    allow_url: bool,
}

impl OptionsRule {
    /// static selects: 1..=100 options or groups.
    const SELECT: OptionsRule = OptionsRule {
        min: 1,
        max: 100,
        plain_only: true,
        groups: true,
        allow_url: false,
    };
    /// overflow menus: 2..=5 options.
    const OVERFLOW: OptionsRule = OptionsRule {
        min: 2,
        max: 5,
        plain_only: true,
        groups: false,
        allow_url: true,
    };
    /// checkboxes / radio buttons: 1..=10 options, mrkdwn allowed.
    const CHOICES: OptionsRule = OptionsRule {
        min: 1,
        max: 10,
        plain_only: false,
        groups: false,
        allow_url: false,
    };
}

#[derive(Clone, Copy)]
enum ElemCtx {
    Actions,
    Accessory,
    Input,
    Context,
}

impl ElemCtx {
    fn name(self) -> &'static str {
        match self {
            ElemCtx::Actions => "an actions block",
            ElemCtx::Accessory => "a section accessory",
            ElemCtx::Input => "an input block",
            ElemCtx::Context => "a context block",
        }
    }

    fn allows(self, ty: &str) -> bool {
        const SELECTS: &[&str] = &[
            "static_select",
            "external_select",
            "users_select",
            "conversations_select",
            "channels_select",
            "multi_static_select",
            "multi_external_select",
            "multi_users_select",
            "multi_conversations_select",
            "multi_channels_select",
        ];
        let common = SELECTS.contains(&ty)
            || matches!(
                ty,
                "checkboxes" | "radio_buttons" | "datepicker" | "timepicker"
            );
        match self {
            ElemCtx::Actions => {
                common
                    || matches!(
                        ty,
                        "button"
                            | "overflow"
                            | "datetimepicker"
                            | "workflow_button"
                            | "rich_text_input"
                    )
            }
            ElemCtx::Accessory => {
                common || matches!(ty, "button" | "overflow" | "image" | "workflow_button")
            }
            ElemCtx::Input => {
                common
                    || matches!(
                        ty,
                        "plain_text_input"
                            | "email_text_input"
                            | "url_text_input"
                            | "number_input"
                            | "rich_text_input"
                            | "datetimepicker"
                            | "file_input"
                    )
            }
            ElemCtx::Context => ty == "image",
        }
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
}

/// Outcome of checking a `blocks` argument.
#[derive(Debug)]
pub(crate) enum BlocksProblem {
    /// Not a JSON array of objects → `invalid_blocks_format`.
    Format(String),
    /// Violates Block Kit rules → `invalid_blocks` (messages are Slack-style strings).
    Invalid(Vec<String>),
}

/// Validate message blocks (≤50). `ptr` is the json-pointer prefix, e.g. `/blocks`.
pub(crate) fn check_message_blocks(blocks: &Value, ptr: &str) -> Result<(), BlocksProblem> {
    let Some(arr) = blocks.as_array() else {
        return Err(BlocksProblem::Format(format!(
            "[ERROR] must be an array [json-pointer:{ptr}]"
        )));
    };
    let mut c = Checker::default();
    if arr.len() > MAX_MESSAGE_BLOCKS {
        c.err(
            ptr,
            format!("no more than {MAX_MESSAGE_BLOCKS} items allowed"),
        );
    }
    for (i, b) in arr.iter().enumerate() {
        c.block(b, &format!("{ptr}/{i}"), Surface::Message);
    }
    if c.errs.is_empty() {
        Ok(())
    } else {
        Err(BlocksProblem::Invalid(c.errs))
    }
}

/// Validate a modal view object. Returns Slack-style messages (empty = valid).
/// A Home tab view (`views.publish`): `type: home`, 1 to 100 blocks.
pub(crate) fn check_home(view: &Value, ptr: &str) -> Vec<String> {
    let mut c = Checker::default();
    let Some(v) = view.as_object() else {
        c.err(ptr, "must be a view object");
        return c.errs;
    };
    match v.get("type").and_then(Value::as_str) {
        Some("home") => {}
        Some(other) => c.err(
            &format!("{ptr}/type"),
            format!("must be `home` (got `{other}`)"),
        ),
        None => c.err(ptr, "missing required field: type"),
    }
    c.opt_str(v, "private_metadata", ptr, 3000);
    c.opt_str(v, "callback_id", ptr, 255);
    c.opt_str(v, "external_id", ptr, 255);
    match v.get("blocks") {
        Some(Value::Array(bs)) => {
            let p = format!("{ptr}/blocks");
            if bs.is_empty() {
                c.err(&p, "must provide at least 1 item");
            }
            if bs.len() > MAX_MODAL_BLOCKS {
                c.err(&p, format!("no more than {MAX_MODAL_BLOCKS} items allowed"));
            }
            for (i, b) in bs.iter().enumerate() {
                c.block(b, &format!("{p}/{i}"), Surface::Modal);
            }
        }
        _ => c.err(ptr, "missing required field: blocks"),
    }
    c.errs
}

pub(crate) fn check_modal(view: &Value, ptr: &str) -> Vec<String> {
    let mut c = Checker::default();
    let Some(v) = view.as_object() else {
        c.err(ptr, "must be a view object");
        return c.errs;
    };
    match v.get("type").and_then(Value::as_str) {
        Some("modal") => {}
        Some(other) => c.err(
            &format!("{ptr}/type"),
            format!("must be `modal` (got `{other}`)"),
        ),
        None => c.err(ptr, "missing required field: type"),
    }
    c.text(v, "title", ptr, 24, true, true);
    c.text(v, "close", ptr, 24, true, false);
    c.text(v, "submit", ptr, 24, true, false);
    c.opt_str(v, "private_metadata", ptr, 3000);
    c.opt_str(v, "callback_id", ptr, 255);
    c.opt_str(v, "external_id", ptr, 255);
    c.opt_bool(v, "clear_on_close", ptr);
    c.opt_bool(v, "notify_on_close", ptr);
    c.opt_bool(v, "submit_disabled", ptr);
    match v.get("blocks") {
        Some(Value::Array(bs)) => {
            let p = format!("{ptr}/blocks");
            if bs.is_empty() {
                c.err(&p, "must provide at least 1 item");
            }
            if bs.len() > MAX_MODAL_BLOCKS {
                c.err(&p, format!("no more than {MAX_MODAL_BLOCKS} items allowed"));
            }
            for (i, b) in bs.iter().enumerate() {
                c.block(b, &format!("{p}/{i}"), Surface::Modal);
                if b.get("type").and_then(Value::as_str) == Some("input")
                    && !v.contains_key("submit")
                {
                    c.err(
                        &format!("{p}/{i}/input"),
                        "must define submit to use input block",
                    );
                }
            }
        }
        Some(_) => c.err(&format!("{ptr}/blocks"), "must be an array"),
        None => c.err(ptr, "missing required field: blocks"),
    }
    c.errs
}

/// Block ids of `input` blocks.
pub(crate) fn input_block_ids(blocks: &[Value]) -> Vec<String> {
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("input"))
        .filter_map(|b| b.get("block_id").and_then(Value::as_str).map(String::from))
        .collect()
}

/// Fill in missing `block_id`s and element `action_id`s the way Slack does when it stores blocks.
pub(crate) fn assign_ids(blocks: &mut Value, mut next: impl FnMut() -> String) {
    let Some(arr) = blocks.as_array_mut() else {
        return;
    };
    for b in arr {
        let Some(o) = b.as_object_mut() else { continue };
        if !o.contains_key("block_id") {
            o.insert("block_id".into(), Value::String(next()));
        }
        let mut fill = |e: &mut Value| {
            if let Some(eo) = e.as_object_mut() {
                let ty = eo.get("type").and_then(Value::as_str).unwrap_or("");
                if ty != "image" && !eo.contains_key("action_id") {
                    eo.insert("action_id".into(), Value::String(next()));
                }
            }
        };
        match o.get("type").and_then(Value::as_str) {
            Some("actions") => {
                if let Some(Value::Array(els)) = o.get_mut("elements") {
                    els.iter_mut().for_each(&mut fill);
                }
            }
            Some("input") => {
                if let Some(e) = o.get_mut("element") {
                    fill(e);
                }
            }
            Some("section") => {
                if let Some(e) = o.get_mut("accessory") {
                    fill(e);
                }
            }
            _ => {}
        }
    }
}
