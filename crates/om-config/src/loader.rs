//! [`ConfigLoader`]: INI files and directories, then `OM__` environment
//! variables, then programmatic overrides, merged with the `config` crate
//! and checked against the option schema.
//!
//! How the `config` crate is used: every layer is turned into a table of
//! `section → option → value` (strings, or arrays of strings for
//! multi-valued options), each value carrying its origin; the crate merges
//! the layers (files, then environment, then overrides, later winning) and
//! the result is converted to typed option groups. Files are read by
//! [`crate::ini`] rather than by the crate's INI format, which keeps only
//! the last of repeated keys (see that module for why).

use crate::error::{decode_origin, encode_origin};
use crate::ini::{self, IniDocument};
use crate::schema::{self, GroupSpec, OptionDefault, OptionKind, OptionSpec, DEFAULT_GROUP};
use crate::{ConfigError, ConfigErrorKind, ConfigWarning, MessagingConfig, Origin};
use config::{Source, Value as CValue, ValueKind};
use serde_json::{Map as JsonMap, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Which URL schemes (driver names) are accepted in transport URLs when the
/// configuration is loaded.
///
/// Drivers are registered by the `om` facade (or by the application), often
/// after the configuration is read, so the default accepts oslo's driver
/// names and anything registered at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemeCheck {
    /// No check; an unknown driver fails only when the transport is opened.
    Off,
    /// Only these driver names.
    Known(Vec<String>),
    /// These driver names, plus any registered with
    /// [`om_driver_api::register_driver`] when the check runs.
    KnownOrRegistered(Vec<String>),
    /// Only drivers registered when the check runs
    /// ([`om_driver_api::lookup_driver`]).
    Registered,
}

impl Default for SchemeCheck {
    /// `KnownOrRegistered` with [`schema::OSLO_DRIVERS`].
    fn default() -> Self {
        SchemeCheck::KnownOrRegistered(
            schema::OSLO_DRIVERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        )
    }
}

impl SchemeCheck {
    /// Whether `driver` is accepted; `Err` carries the accepted names.
    pub fn check(&self, driver: &str) -> Result<(), Vec<String>> {
        let (list, registry): (&[String], bool) = match self {
            SchemeCheck::Off => return Ok(()),
            SchemeCheck::Known(l) => (l, false),
            SchemeCheck::KnownOrRegistered(l) => (l, true),
            SchemeCheck::Registered => (&[], true),
        };
        if list.iter().any(|s| s == driver)
            || (registry && om_driver_api::lookup_driver(driver).is_some())
        {
            return Ok(());
        }
        let mut known: Vec<String> = list.to_vec();
        if registry {
            known.extend(om_driver_api::registered_schemes());
        }
        known.sort();
        known.dedup();
        Err(known)
    }
}

/// A value given to [`ConfigLoader::set_override`]: one value, or several
/// for list and multi-valued options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideValue {
    /// One value, written as in a file (`"true"`, `"5"`, `"a,b"`).
    Single(String),
    /// Several values (list and multi options).
    Many(Vec<String>),
}

macro_rules! override_from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for OverrideValue {
            fn from(v: $t) -> Self {
                OverrideValue::Single(v.to_string())
            }
        }
    )*};
}
override_from_display!(&str, String, bool, i32, i64, u32, u64, usize, f64);

impl From<Vec<String>> for OverrideValue {
    fn from(v: Vec<String>) -> Self {
        OverrideValue::Many(v)
    }
}

impl From<Vec<&str>> for OverrideValue {
    fn from(v: Vec<&str>) -> Self {
        OverrideValue::Many(v.into_iter().map(str::to_owned).collect())
    }
}

impl From<&[&str]> for OverrideValue {
    fn from(v: &[&str]) -> Self {
        OverrideValue::Many(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

#[derive(Debug, Clone)]
enum FileSource {
    File(PathBuf),
    Dir(PathBuf),
    Text { name: PathBuf, text: String },
}

#[derive(Debug, Clone)]
enum EnvSetting {
    Disabled,
    Process,
    Vars(HashMap<String, String>),
}

/// Loads the messaging configuration, as oslo.config does for a service:
///
/// 1. INI files and directories, in the order given (later files override
///    earlier ones, like repeated `--config-file`; a directory stands for
///    its `*.conf` files in sorted order, like `--config-dir`). Values of
///    multi-valued options (`[oslo_messaging_notifications] driver`)
///    accumulate across files, as in oslo.
/// 2. Environment variables `OM__<SECTION>__<OPTION>` (prefix configurable;
///    `OM__DEFAULT__TRANSPORT_URL`, `OM__OSLO_MESSAGING_RABBIT__HEARTBEAT_RATE`).
///    Section and option are case-insensitive here.
/// 3. Programmatic overrides.
///
/// ```
/// let cfg = om_config::ConfigLoader::new()
///     .ini_text("inline.conf", "[DEFAULT]\ntransport_url = fake://\ncontrol_exchange = nova\n")
///     .no_env()
///     .set_override("oslo_messaging_rabbit", "heartbeat_rate", 5)
///     .load()?;
/// assert_eq!(cfg.default.control_exchange, "nova");
/// assert_eq!(cfg.rabbit.heartbeat_rate, 5);
/// # Ok::<(), om_config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ConfigLoader {
    files: Vec<FileSource>,
    env: EnvSetting,
    env_prefix: String,
    overrides: Vec<(String, String, OverrideValue)>,
    defaults: Vec<(String, String, OverrideValue)>,
    schemes: SchemeCheck,
    extras: Extras,
}

impl std::fmt::Debug for ConfigLoader {
    /// Lists sources and the names of overridden options, never values
    /// (they may hold passwords).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|s| match s {
                FileSource::File(p) => format!("file {}", p.display()),
                FileSource::Dir(p) => format!("dir {}", p.display()),
                FileSource::Text { name, .. } => format!("text {}", name.display()),
            })
            .collect();
        let env = match &self.env {
            EnvSetting::Disabled => "disabled".to_owned(),
            EnvSetting::Process => format!("process ({}__*)", self.env_prefix),
            EnvSetting::Vars(v) => format!("{} given variables ({}__*)", v.len(), self.env_prefix),
        };
        let names = |v: &[(String, String, OverrideValue)]| -> Vec<String> {
            v.iter().map(|(g, o, _)| format!("[{g}] {o}")).collect()
        };
        f.debug_struct("ConfigLoader")
            .field("files", &files)
            .field("env", &env)
            .field("defaults", &names(&self.defaults))
            .field("overrides", &names(&self.overrides))
            .field("schemes", &self.schemes)
            .field("extension_options", &self.extras)
            .finish()
    }
}

impl Default for ConfigLoader {
    fn default() -> Self {
        ConfigLoader::new()
    }
}

impl ConfigLoader {
    /// A loader with no files, reading the process environment with prefix
    /// `OM`, and the default [`SchemeCheck`].
    pub fn new() -> Self {
        ConfigLoader {
            files: Vec::new(),
            env: EnvSetting::Process,
            env_prefix: "OM".into(),
            overrides: Vec::new(),
            defaults: Vec::new(),
            schemes: SchemeCheck::default(),
            extras: Extras::new(),
        }
    }

    /// Adds a configuration file (`--config-file`). A missing file is an error.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(FileSource::File(path.into()));
        self
    }

    /// Adds several configuration files, in order.
    pub fn config_files<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.files
            .extend(paths.into_iter().map(|p| FileSource::File(p.into())));
        self
    }

    /// Adds every `*.conf` file of a directory, in sorted order
    /// (`--config-dir`). A missing directory is an error; an empty one is not.
    pub fn config_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(FileSource::Dir(path.into()));
        self
    }

    /// Adds INI text as if it were a file called `name` (used in messages).
    pub fn ini_text(mut self, name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.push(FileSource::Text {
            name: name.into(),
            text: text.into(),
        });
        self
    }

    /// Sets the environment variable prefix (default `OM`; variables are
    /// `<PREFIX>__<SECTION>__<OPTION>`).
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = prefix.into();
        self
    }

    /// Does not read environment variables.
    pub fn no_env(mut self) -> Self {
        self.env = EnvSetting::Disabled;
        self
    }

    /// Reads these variables instead of the process environment (tests,
    /// embedding).
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = EnvSetting::Vars(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Overrides an option, above files and environment. `group` is the
    /// section name (`DEFAULT`, `oslo_messaging_rabbit`, ...). An unknown
    /// group or option makes [`ConfigLoader::load`] fail.
    pub fn set_override(
        mut self,
        group: impl Into<String>,
        option: impl Into<String>,
        value: impl Into<OverrideValue>,
    ) -> Self {
        self.overrides
            .push((group.into(), option.into(), value.into()));
        self
    }

    /// Changes the default of an option, below every file (oslo's
    /// `cfg.set_defaults`). The value still counts as a default
    /// ([`Origin::Default`]). An unknown group or option makes
    /// [`ConfigLoader::load`] fail.
    pub fn set_default(
        mut self,
        group: impl Into<String>,
        option: impl Into<String>,
        value: impl Into<OverrideValue>,
    ) -> Self {
        self.defaults
            .push((group.into(), option.into(), value.into()));
        self
    }

    /// oslo's `set_transport_defaults(control_exchange)`: the project's
    /// exchange (`nova`, `neutron`, ...) unless the configuration sets one.
    pub fn set_transport_defaults(self, control_exchange: impl Into<String>) -> Self {
        self.set_default(DEFAULT_GROUP, "control_exchange", control_exchange.into())
    }

    /// Sets which driver names transport URLs may use (default:
    /// [`SchemeCheck::default`]).
    pub fn scheme_check(mut self, check: SchemeCheck) -> Self {
        self.schemes = check;
        self
    }

    /// Declares options a driver accepts in its group beyond oslo's (e.g.
    /// om extensions of the Kafka driver). They are kept as strings, passed
    /// to the driver in [`DriverConfig::options`](om_driver_api::DriverConfig)
    /// and rendered, instead of being warned about and dropped. `group` must
    /// be one of the [`schema::groups`]; otherwise the call has no effect.
    pub fn driver_extension_options<I, S>(mut self, group: &str, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Some(g) = schema::group(group) {
            let set = self.extras.entry(g.name).or_default();
            for n in names {
                let n = n.into();
                if g.option(&n).is_none() {
                    set.insert(n);
                }
            }
        }
        self
    }

    /// Reads, merges and checks everything.
    ///
    /// Errors ([`ConfigError`]): unreadable file or directory, INI syntax
    /// error, a value of the wrong type or out of range, a bad transport
    /// URL, an unknown driver, an invalid override. Unknown options and
    /// deprecated names are accepted with a warning
    /// ([`MessagingConfig::warnings`]).
    pub fn load(self) -> Result<MessagingConfig, ConfigError> {
        let mut warnings = Vec::new();
        let docs = self.read_files()?;
        let sources: Vec<PathBuf> = docs.iter().map(|d| d.path.clone()).collect();
        let files_map = files_layer(&docs, &self.extras, &mut warnings);
        let env_map = self.env_layer(&mut warnings)?;

        let mut builder = config::Config::builder()
            .add_source(Prepared(files_map))
            .add_source(Prepared(env_map));
        let default_origin = encode_origin(&Origin::Default);
        for (group, option, value) in &self.defaults {
            let r = resolve_override(group, option, &self.extras, &mut warnings)?;
            let key = format!("{}.{}", r.group.name, r.name);
            let kind = match value {
                OverrideValue::Single(s) => ValueKind::String(s.clone()),
                OverrideValue::Many(v) => ValueKind::Array(
                    v.iter()
                        .map(|s| CValue::new(default_origin.as_ref(), ValueKind::String(s.clone())))
                        .collect(),
                ),
            };
            builder = builder
                .set_default(&key, CValue::new(default_origin.as_ref(), kind))
                .map_err(|e| ConfigErrorKind::InvalidOverride {
                    group: group.clone(),
                    option: option.clone(),
                    reason: e.to_string(),
                })?;
        }
        for (group, option, value) in &self.overrides {
            let r = resolve_override(group, option, &self.extras, &mut warnings)?;
            let key = format!("{}.{}", r.group.name, r.name);
            builder = match value {
                OverrideValue::Single(s) => builder.set_override(&key, s.clone()),
                OverrideValue::Many(v) => builder.set_override(&key, v.clone()),
            }
            .map_err(|e| ConfigErrorKind::InvalidOverride {
                group: group.clone(),
                option: option.clone(),
                reason: e.to_string(),
            })?;
        }
        let merged = builder
            .build()
            .map_err(|e| ConfigErrorKind::Merge(e.to_string()))?;
        let root = merged
            .collect()
            .map_err(|e| ConfigErrorKind::Merge(e.to_string()))?;

        let mut doc = JsonMap::new();
        let mut origins = BTreeMap::new();
        let mut extras: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for group in schema::groups() {
            let table = match root.get(group.name).map(|v| &v.kind) {
                Some(ValueKind::Table(t)) => Some(t),
                _ => None,
            };
            let mut obj = JsonMap::new();
            for spec in group.options {
                let value = match table.and_then(|t| t.get(spec.name)) {
                    Some(v) => {
                        let origin = decode_origin(v.origin());
                        let raw = raw_values(v);
                        let typed = convert(group.name, spec, &raw, &origin, &mut warnings)?;
                        origins.insert((group.name.to_owned(), spec.name.to_owned()), origin);
                        typed
                    }
                    None => default_json(group.name, spec)?,
                };
                obj.insert(spec.name.to_owned(), value);
            }
            doc.insert(group.name.to_owned(), Json::Object(obj));
            if let (Some(table), Some(names)) = (table, self.extras.get(group.name)) {
                for name in names {
                    if let Some(v) = table.get(name) {
                        let origin = decode_origin(v.origin());
                        extras
                            .entry(group.name.to_owned())
                            .or_default()
                            .insert(name.clone(), raw_values(v).join(","));
                        origins.insert((group.name.to_owned(), name.clone()), origin);
                    }
                }
            }
        }
        let mut cfg = MessagingConfig::from_groups_json(Json::Object(doc))?;
        cfg.origins = origins;
        cfg.extras = extras;
        cfg.extra_names = self.extras.clone();
        cfg.sources = sources;
        cfg.schemes = self.schemes;
        cfg.env_prefix = match self.env {
            EnvSetting::Disabled => None,
            _ => Some(self.env_prefix.clone()),
        };
        cfg.override_count = self.overrides.len();
        cfg.check_urls(&mut warnings)?;
        tracing::debug!(
            files = cfg.sources.len(),
            overrides = cfg.override_count,
            warnings = warnings.len(),
            "messaging configuration loaded"
        );
        cfg.warnings = warnings;
        Ok(cfg)
    }

    fn read_files(&self) -> Result<Vec<IniDocument>, ConfigError> {
        let mut docs = Vec::new();
        for src in &self.files {
            match src {
                FileSource::File(p) => docs.push(read_file(p)?),
                FileSource::Dir(d) => {
                    let entries = std::fs::read_dir(d).map_err(|e| ConfigErrorKind::Io {
                        what: "directory",
                        path: d.clone(),
                        source: e,
                    })?;
                    let mut files = Vec::new();
                    for entry in entries {
                        let entry = entry.map_err(|e| ConfigErrorKind::Io {
                            what: "directory",
                            path: d.clone(),
                            source: e,
                        })?;
                        let path = entry.path();
                        let is_conf = path.extension().is_some_and(|x| x == "conf")
                            && path.file_stem().is_some_and(|s| !s.is_empty());
                        if is_conf && path.is_file() {
                            files.push(path);
                        }
                    }
                    files.sort();
                    for f in files {
                        docs.push(read_file(&f)?);
                    }
                }
                FileSource::Text { name, text } => docs.push(ini::parse(name, text)?),
            }
        }
        Ok(docs)
    }

    fn env_layer(
        &self,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<config::Map<String, CValue>, ConfigError> {
        let env = config::Environment::with_prefix(&self.env_prefix)
            .prefix_separator("__")
            .separator("__");
        let env = match &self.env {
            EnvSetting::Disabled => return Ok(config::Map::new()),
            EnvSetting::Process => env,
            EnvSetting::Vars(vars) => env.source(Some(
                vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            )),
        };
        let flat = env
            .collect()
            .map_err(|e| ConfigErrorKind::Merge(e.to_string()))?;
        let prefix = self.env_prefix.to_uppercase();
        let mut keys: Vec<&String> = flat.keys().collect();
        keys.sort();
        let mut layer = Layer::default();
        for key in keys {
            let Some(value) = flat.get(key) else { continue };
            let variable = format!("{prefix}__{}", key.replace('.', "__").to_uppercase());
            let origin = Origin::Environment {
                variable: variable.clone(),
            };
            let Some((group, option)) = key.split_once('.').filter(|(_, o)| !o.contains('.'))
            else {
                warnings.push(ConfigWarning::emit(
                    origin,
                    "",
                    "",
                    format!("ignored: expected {prefix}__<SECTION>__<OPTION>"),
                ));
                continue;
            };
            let group = if group == "default" {
                DEFAULT_GROUP
            } else {
                group
            };
            let text = match value.clone().into_string() {
                Ok(s) => s,
                Err(_) => continue,
            };
            let Some(r) = resolve(group, option, &origin, &self.extras, warnings) else {
                continue;
            };
            let values = if r.is_multi() {
                split_commas(&text)
            } else {
                vec![text]
            };
            layer.set(&r, values, &origin);
        }
        Ok(layer.into_map())
    }
}

fn read_file(path: &Path) -> Result<IniDocument, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrorKind::Io {
        what: "file",
        path: path.to_owned(),
        source: e,
    })?;
    ini::parse(path, &text)
}

/// A ready-made table handed to the `config` crate.
#[derive(Debug, Clone)]
struct Prepared(config::Map<String, CValue>);

impl Source for Prepared {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }
    fn collect(&self) -> Result<config::Map<String, CValue>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// One layer being built: group → option → (values, origin of the last
/// value, multi-valued?).
#[derive(Default)]
struct Layer {
    groups: BTreeMap<&'static str, BTreeMap<String, LayerEntry>>,
}

/// Values with their origins, the origin of the last one, multi-valued?
type LayerEntry = (Vec<(String, Origin)>, Origin, bool);

impl Layer {
    /// Sets an option, replacing what the layer had.
    fn set(&mut self, r: &Resolved, values: Vec<String>, origin: &Origin) {
        let vals = values.into_iter().map(|v| (v, origin.clone())).collect();
        self.groups
            .entry(r.group.name)
            .or_default()
            .insert(r.name.clone(), (vals, origin.clone(), r.is_multi()));
    }

    /// Appends values of a multi-valued option.
    fn append(&mut self, r: &Resolved, values: Vec<(String, Origin)>, origin: &Origin) {
        let entry = self
            .groups
            .entry(r.group.name)
            .or_default()
            .entry(r.name.clone())
            .or_insert_with(|| (Vec::new(), origin.clone(), r.is_multi()));
        entry.0.extend(values);
        entry.1 = origin.clone();
    }

    fn into_map(self) -> config::Map<String, CValue> {
        let mut root = config::Map::new();
        for (group, opts) in self.groups {
            let mut table = config::Map::new();
            for (name, (values, origin, multi)) in opts {
                let enc = encode_origin(&origin);
                let value = if multi {
                    let items = values
                        .into_iter()
                        .map(|(v, o)| CValue::new(encode_origin(&o).as_ref(), ValueKind::String(v)))
                        .collect();
                    CValue::new(enc.as_ref(), ValueKind::Array(items))
                } else {
                    let last = values
                        .into_iter()
                        .last()
                        .map(|(v, _)| v)
                        .unwrap_or_default();
                    CValue::new(enc.as_ref(), ValueKind::String(last))
                };
                table.insert(name, value);
            }
            root.insert(group.to_owned(), CValue::new(None, ValueKind::Table(table)));
        }
        root
    }
}

/// Option names, per group, that drivers accept beyond oslo's.
pub(crate) type Extras = BTreeMap<&'static str, BTreeSet<String>>;

/// An option name mapped to the schema.
struct Resolved {
    group: &'static GroupSpec,
    /// `None` for a driver extension option.
    spec: Option<&'static OptionSpec>,
    /// The current name.
    name: String,
    /// Whether a deprecated group or option name was used.
    deprecated: bool,
}

impl Resolved {
    fn is_multi(&self) -> bool {
        self.spec.is_some_and(|s| s.kind == OptionKind::Multi)
    }
}

/// Maps a section/option name (possibly deprecated) to the schema, warning
/// about deprecated and unknown names. `None`: not an om-config option.
fn resolve(
    group: &str,
    option: &str,
    origin: &Origin,
    extras: &Extras,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<Resolved> {
    let (spec_group, via_old_group) = match schema::group(group) {
        Some(g) => (g, false),
        None => match schema::group_by_deprecated_name(group) {
            Some(g) => (g, true),
            None => {
                warn_unknown_group(group, option, origin, warnings);
                return None;
            }
        },
    };
    let (spec, old_name) = match spec_group.option(option) {
        Some(s) => (s, false),
        None => match spec_group.option_by_deprecated_name(option) {
            Some(s) => (s, true),
            None => {
                if extras
                    .get(spec_group.name)
                    .is_some_and(|names| names.contains(option))
                {
                    return Some(Resolved {
                        group: spec_group,
                        spec: None,
                        name: option.to_owned(),
                        deprecated: via_old_group,
                    });
                }
                warn_unknown_option(spec_group, group, option, origin, warnings);
                return None;
            }
        },
    };
    if via_old_group || old_name {
        warnings.push(ConfigWarning::emit(
            origin.clone(),
            group,
            option,
            format!(
                "Option \"{option}\" from group \"{group}\" is deprecated. Use option \"{}\" from group \"{}\".",
                spec.name, spec_group.name
            ),
        ));
    }
    if let Some(reason) = spec.deprecated_for_removal {
        warnings.push(ConfigWarning::emit(
            origin.clone(),
            spec_group.name,
            spec.name,
            format!(
                "Option \"{}\" from group \"{}\" is deprecated for removal ({reason}). Its value may be silently ignored in the future.",
                spec.name, spec_group.name
            ),
        ));
    }
    Some(Resolved {
        group: spec_group,
        spec: Some(spec),
        name: spec.name.to_owned(),
        deprecated: via_old_group || old_name,
    })
}

fn warn_unknown_group(
    group: &str,
    option: &str,
    origin: &Origin,
    warnings: &mut Vec<ConfigWarning>,
) {
    // Other libraries' sections ([database], [keystone_authtoken], ...) are
    // none of our business; only names that look like ours are reported.
    let hint = if group.eq_ignore_ascii_case(DEFAULT_GROUP) {
        Some(format!(
            "section names are case-sensitive for [DEFAULT]; [{group}] is a different section"
        ))
    } else if group.starts_with("oslo_messaging") || group.starts_with("oslo.messaging") {
        Some(
            match closest(group, schema::groups().iter().map(|g| g.name)) {
                Some(best) => format!("unknown messaging section, ignored; did you mean [{best}]?"),
                None => "unknown messaging section, ignored".to_owned(),
            },
        )
    } else {
        None
    };
    match hint {
        Some(h) => warnings.push(ConfigWarning::emit(origin.clone(), group, option, h)),
        None => {
            tracing::debug!(origin = %origin, section = group, option, "not a messaging option, ignored")
        }
    }
}

fn warn_unknown_option(
    spec_group: &GroupSpec,
    group: &str,
    option: &str,
    origin: &Origin,
    warnings: &mut Vec<ConfigWarning>,
) {
    let suggestion = closest(option, spec_group.options.iter().map(|o| o.name));
    if spec_group.name == DEFAULT_GROUP && suggestion.is_none() {
        // [DEFAULT] is shared with the application (debug, log_dir, my_ip, ...).
        tracing::debug!(origin = %origin, section = group, option, "not a messaging option, ignored");
        return;
    }
    let message = match suggestion {
        Some(s) => format!("unknown option, ignored; did you mean {s}?"),
        None => "unknown option, ignored".to_owned(),
    };
    warnings.push(ConfigWarning::emit(origin.clone(), group, option, message));
}

/// The candidate within edit distance 2 (case-insensitive), if any.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (levenshtein(&lower, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn resolve_override(
    group: &str,
    option: &str,
    extras: &Extras,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Resolved, ConfigError> {
    let bad = |reason: String| -> ConfigError {
        ConfigErrorKind::InvalidOverride {
            group: group.to_owned(),
            option: option.to_owned(),
            reason,
        }
        .into()
    };
    let group_norm = ini::normalize_section(group);
    let spec_group = schema::group(&group_norm)
        .or_else(|| schema::group_by_deprecated_name(&group_norm))
        .ok_or_else(|| {
            bad(format!(
                "no such section; known sections: {}",
                schema::groups()
                    .iter()
                    .map(|g| g.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let is_extra = extras
        .get(spec_group.name)
        .is_some_and(|n| n.contains(option));
    if !is_extra
        && spec_group.option(option).is_none()
        && spec_group.option_by_deprecated_name(option).is_none()
    {
        return Err(bad(
            match closest(option, spec_group.options.iter().map(|o| o.name)) {
                Some(s) => format!("no such option in [{}]; did you mean {s}?", spec_group.name),
                None => format!("no such option in [{}]", spec_group.name),
            },
        ));
    }
    resolve(&group_norm, option, &Origin::Override, extras, warnings)
        .ok_or_else(|| bad("no such option".to_owned()))
}

/// The files layer with oslo's semantics: per file, a current option name
/// beats a deprecated one and the last occurrence wins; across files the
/// later file wins, except for multi-valued options, whose values
/// accumulate in file order.
fn files_layer(
    docs: &[IniDocument],
    extras: &Extras,
    warnings: &mut Vec<ConfigWarning>,
) -> config::Map<String, CValue> {
    let mut layer = Layer::default();
    for doc in docs {
        // (group, option) → (resolution, values with origins, origin of the last line)
        type Slot = (Resolved, Vec<(String, Origin)>, Origin);
        let mut per_file: BTreeMap<(&'static str, String), Slot> = BTreeMap::new();
        for e in &doc.entries {
            let origin = Origin::File {
                path: doc.path.clone(),
                line: e.line,
            };
            let Some(r) = resolve(&e.section, &e.key, &origin, extras, warnings) else {
                continue;
            };
            let key = (r.group.name, r.name.clone());
            let multi = r.is_multi();
            let values: Vec<(String, Origin)> = if multi {
                split_commas(&e.value)
                    .into_iter()
                    .map(|v| (v, origin.clone()))
                    .collect()
            } else {
                vec![(e.value.clone(), origin.clone())]
            };
            match per_file.get_mut(&key) {
                None => {
                    per_file.insert(key, (r, values, origin));
                }
                Some(slot) if multi => {
                    slot.1.extend(values);
                    slot.2 = origin;
                }
                // A current name replaces anything; a deprecated name only
                // replaces values given by deprecated names.
                Some(slot) if !r.deprecated || slot.0.deprecated => *slot = (r, values, origin),
                Some(_) => {}
            }
        }
        for (_, (r, values, last_origin)) in per_file {
            if r.is_multi() {
                layer.append(&r, values, &last_origin);
            } else {
                layer.set(
                    &r,
                    values.into_iter().map(|(v, _)| v).collect(),
                    &last_origin,
                );
            }
        }
    }
    layer.into_map()
}

/// Splits a multi-option value on commas (om extension: oslo would take
/// `messagingv2,log` as one driver name), trimming and dropping empties.
fn split_commas(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A merged value as strings: one for scalars, each item for arrays.
fn raw_values(v: &CValue) -> Vec<String> {
    match &v.kind {
        ValueKind::Array(items) => items
            .iter()
            .filter_map(|i| i.clone().into_string().ok())
            .collect(),
        ValueKind::Nil => Vec::new(),
        _ => v.clone().into_string().map(|s| vec![s]).unwrap_or_default(),
    }
}

fn invalid(
    group: &str,
    spec: &OptionSpec,
    value: &str,
    origin: &Origin,
    expected: String,
) -> ConfigError {
    let mut expected = expected;
    if value.contains(" #") || value.contains(" ;") {
        expected.push_str(" (note: `#` and `;` start a comment only at the beginning of a line)");
    }
    ConfigErrorKind::InvalidValue {
        origin: origin.clone(),
        group: group.to_owned(),
        option: spec.name.to_owned(),
        value: if spec.secret {
            "****".to_owned()
        } else {
            value.to_owned()
        },
        expected,
    }
    .into()
}

fn range_text<T: std::fmt::Display>(what: &str, min: Option<T>, max: Option<T>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("{what} between {a} and {b}"),
        (Some(a), None) => format!("{what} greater than or equal to {a}"),
        (None, Some(b)) => format!("{what} less than or equal to {b}"),
        (None, None) => what.to_owned(),
    }
}

/// Parses a boolean as oslo.config does.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Converts one option's value(s) to its typed JSON form, checking type,
/// range and choices.
pub(crate) fn convert(
    group: &str,
    spec: &OptionSpec,
    raw: &[String],
    origin: &Origin,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Json, ConfigError> {
    let single = raw.last().map(String::as_str).unwrap_or("");
    let trimmed = single.trim();
    let value = match spec.kind {
        OptionKind::Multi => Json::Array(
            raw.iter()
                .flat_map(|v| split_commas(v))
                .map(Json::String)
                .collect(),
        ),
        OptionKind::List => {
            let items: Vec<String> = if raw.len() > 1 {
                raw.iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            } else {
                let inner = trimmed
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .unwrap_or(trimmed);
                split_commas(inner)
            };
            Json::Array(items.into_iter().map(Json::String).collect())
        }
        OptionKind::Str | OptionKind::Url => {
            if single.is_empty() && spec.default == OptionDefault::Unset {
                Json::Null
            } else {
                Json::String(single.to_owned())
            }
        }
        OptionKind::Bool => match parse_bool(single) {
            Some(b) => Json::Bool(b),
            None => {
                return Err(invalid(
                    group,
                    spec,
                    single,
                    origin,
                    "a boolean (true/false, yes/no, on/off, 1/0)".to_owned(),
                ))
            }
        },
        OptionKind::Int { min, max } => {
            if trimmed.is_empty() {
                warnings.push(ConfigWarning::emit(
                    origin.clone(),
                    group,
                    spec.name,
                    "empty value, the default is used",
                ));
                return default_json(group, spec);
            }
            let n: i64 = trimmed.parse().map_err(|_| {
                invalid(
                    group,
                    spec,
                    single,
                    origin,
                    range_text("an integer", min, max),
                )
            })?;
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return Err(ConfigErrorKind::OutOfRange {
                    origin: origin.clone(),
                    group: group.to_owned(),
                    option: spec.name.to_owned(),
                    value: trimmed.to_owned(),
                    range: range_text("an integer", min, max),
                }
                .into());
            }
            Json::from(n)
        }
        OptionKind::Float { min, max } => {
            if trimmed.is_empty() {
                warnings.push(ConfigWarning::emit(
                    origin.clone(),
                    group,
                    spec.name,
                    "empty value, the default is used",
                ));
                return default_json(group, spec);
            }
            let x: f64 = trimmed
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite())
                .ok_or_else(|| {
                    invalid(
                        group,
                        spec,
                        single,
                        origin,
                        range_text("a number", min, max),
                    )
                })?;
            if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                return Err(ConfigErrorKind::OutOfRange {
                    origin: origin.clone(),
                    group: group.to_owned(),
                    option: spec.name.to_owned(),
                    value: trimmed.to_owned(),
                    range: range_text("a number", min, max),
                }
                .into());
            }
            serde_json::Number::from_f64(x)
                .map(Json::Number)
                .unwrap_or(Json::Null)
        }
    };
    if !spec.choices.is_empty() {
        if let Json::String(s) = &value {
            let ok = spec.choices.iter().any(|c| {
                if spec.choices_ignore_case {
                    c.eq_ignore_ascii_case(s)
                } else {
                    c == s
                }
            });
            if !ok {
                let list: Vec<String> = spec
                    .choices
                    .iter()
                    .map(|c| {
                        if c.is_empty() {
                            "\"\"".to_owned()
                        } else {
                            (*c).to_owned()
                        }
                    })
                    .collect();
                return Err(invalid(
                    group,
                    spec,
                    s,
                    origin,
                    format!(
                        "one of {}{}",
                        list.join(", "),
                        if spec.choices_ignore_case {
                            " (any case)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    Ok(value)
}

/// The typed JSON form of an option's default.
pub(crate) fn default_json(group: &str, spec: &OptionSpec) -> Result<Json, ConfigError> {
    Ok(match spec.default {
        OptionDefault::Text(t) => {
            let mut sink = Vec::new();
            convert(group, spec, &[t.to_owned()], &Origin::Default, &mut sink)?
        }
        OptionDefault::Values(v) => {
            Json::Array(v.iter().map(|s| Json::String((*s).to_owned())).collect())
        }
        OptionDefault::Unset => Json::Null,
        OptionDefault::Hostname => Json::String(crate::options::default_hostname()),
        OptionDefault::ProcessName => Json::String(crate::options::default_processname()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_words_as_oslo() {
        for t in ["1", "t", "TRUE", "On", "y", "yes"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "F", "false", "OFF", "n", "No"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("heartbeat_rte", ["heartbeat_rate", "ssl"].into_iter()),
            Some("heartbeat_rate")
        );
        assert_eq!(
            closest("debug", ["heartbeat_rate", "ssl"].into_iter()),
            None
        );
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn the_config_crate_ini_format_loses_repeated_keys() {
        // Why om-config reads INI itself (see the `ini` module).
        let text = "[oslo_messaging_notifications]\ndriver = messagingv2\ndriver = log\n";
        let cfg = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Ini))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let v = cfg
            .get_string("oslo_messaging_notifications.driver")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, "log", "the config crate keeps only the last value");
        let docs = vec![ini::parse(Path::new("n.conf"), text).unwrap_or_else(|e| panic!("{e}"))];
        let mut w = Vec::new();
        let map = files_layer(&docs, &Extras::new(), &mut w);
        let table = map
            .get("oslo_messaging_notifications")
            .cloned()
            .and_then(|t| t.into_table().ok())
            .unwrap_or_default();
        let drivers = table.get("driver").map(raw_values).unwrap_or_default();
        assert_eq!(drivers, vec!["messagingv2", "log"]);
    }

    #[test]
    fn the_config_crate_ini_format_eats_backslashes() {
        let text = "[DEFAULT]\nrouting_config = C:\\etc\\routing.yaml\n";
        let cfg = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Ini))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let v = cfg
            .get_string("DEFAULT.routing_config")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(v, "C:\\etc\\routing.yaml");
        let doc = ini::parse(Path::new("r.conf"), text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc.entries[0].value, "C:\\etc\\routing.yaml");
    }
}
