//! The documentation and the deployment files say what the roles really read.
//!
//! - `docs/configuration.md` has one table per role: each lists exactly the settings its
//!   role's settings type reads, with their built-in defaults.
//! - `docker-compose.yaml`, loaded by compose-go (the Compose specification's reference
//!   loader, `deploy/check`): every variable set on a role is one it reads, and its value
//!   parses; every port, health check, scrape target and proxy upstream is the port that
//!   role listens on; every host it names is a service; every NATS user it logs in as is in
//!   `deploy/nats/auth.conf` with that password; every file it mounts exists.
//! - `deploy/k8s/overlays/*`, rendered by the kustomize API (`deploy/check`): the same for
//!   every role's Deployment (variables, ports, probes, Services), an autoscaler for each
//!   API, a disruption budget for every workload, three NATS servers with the same users.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use http_kit::settings::{ConfigError, Defaults, Layered};
use serde_json::Value;

/// Read by every role besides its settings: the settings file and logging.
const EVERY_ROLE: &[&str] = &["APP_CONFIG_FILE", "APP_LOG_FORMAT", "RUST_LOG"];

/// Defaults the tables may describe in words: computed on the machine that runs the role.
const COMPUTED: &[&str] = &["hash_concurrency"];

/// The image every role runs from, and its default entry point (`deploy/Dockerfile`).
const IMAGE: &str = "chat/platform:dev";
const IMAGE_ENTRYPOINT: &str = "/usr/local/bin/chat";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    CommandApi,
    Projector,
    QueryApi,
    /// Single-node mode: every role in one process.
    Chat,
}

impl Role {
    fn from_binary(path: &str) -> Role {
        match path.rsplit('/').next() {
            Some("command-api") => Role::CommandApi,
            Some("projector") => Role::Projector,
            Some("query-api") => Role::QueryApi,
            Some("chat") => Role::Chat,
            other => panic!("{path}: {other:?} is no role's binary"),
        }
    }

    /// Every setting the role reads, with its default as text (see [`Layered::keys`]).
    fn keys(self) -> BTreeMap<String, Option<String>> {
        let keys = match self {
            Role::CommandApi => command_api::configuration::Settings::keys(),
            Role::Projector => projector::configuration::Settings::keys(),
            Role::QueryApi => query_api::configuration::Settings::keys(),
            Role::Chat => {
                let mut all = BTreeMap::new();
                for role in [Role::CommandApi, Role::Projector, Role::QueryApi] {
                    all.extend(role.keys());
                }
                all.insert("listen".to_owned(), Some("127.0.0.1:8080".to_owned()));
                return all;
            }
        };
        keys.expect("the role's defaults")
    }

    /// Loads the role's settings from its defaults with `values` (keys in lower case) over
    /// them: the values a deployment gives must parse.
    fn load(self, values: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        fn with(
            mut d: Defaults,
            values: &BTreeMap<String, String>,
        ) -> Result<Defaults, ConfigError> {
            for (k, v) in values {
                d = d.set_override(k.as_str(), v.as_str())?;
            }
            Ok(d)
        }
        use http_kit::settings::defaults_only;
        match self {
            Role::CommandApi => defaults_only::<command_api::configuration::Settings>(with(
                command_api::configuration::Settings::defaults()?,
                values,
            )?)
            .map(drop),
            Role::Projector => defaults_only::<projector::configuration::Settings>(with(
                projector::configuration::Settings::defaults()?,
                values,
            )?)
            .map(drop),
            Role::QueryApi => defaults_only::<query_api::configuration::Settings>(with(
                query_api::configuration::Settings::defaults()?,
                values,
            )?)
            .map(drop),
            Role::Chat => {
                for role in [Role::CommandApi, Role::Projector, Role::QueryApi] {
                    role.load(values)?;
                }
                Ok(())
            }
        }
    }

    /// Asserts that every variable of `vars` given to the role at `place` is one it reads,
    /// and that the values given (`None`: from a secret kept elsewhere) parse.
    fn check<'a>(self, place: &str, vars: impl Iterator<Item = (&'a str, Option<&'a str>)>) {
        let keys = self.keys();
        let mut values = BTreeMap::new();
        for (var, value) in vars {
            if EVERY_ROLE.contains(&var) {
                continue;
            }
            let key = var
                .strip_prefix("APP_")
                .map(str::to_lowercase)
                .unwrap_or_else(|| panic!("{place}: {var} is no setting of {self:?}"));
            assert!(
                keys.contains_key(&key),
                "{place}: {self:?} does not read {var}"
            );
            if let Some(value) = value {
                values.insert(key, value.to_owned());
            }
        }
        self.load(&values)
            .unwrap_or_else(|e| panic!("{place}: {self:?} refuses its settings: {e}"));
    }

    /// Asserts that the role at `place` connects to PostgreSQL as its own role of
    /// `deploy/postgres/roles.sql` (`<database>_<role>`); the single node has one role.
    fn check_database_user(self, place: &str, url: &str) {
        let suffix = match self {
            Role::CommandApi => "command",
            Role::Projector => "projector",
            Role::QueryApi => "query",
            Role::Chat => return,
        };
        let credentials = url.split("://").nth(1).and_then(|r| r.split_once('@'));
        let user = credentials.map(|(c, _)| c.split(':').next().unwrap_or(c));
        let database = url.rsplit('/').next().unwrap_or_default();
        let expected = format!("{database}_{suffix}");
        assert_eq!(
            user,
            Some(expected.as_str()),
            "{place}: its PostgreSQL role"
        );
    }

    /// The port the role listens on with `listen` (its `APP_LISTEN`) or its default.
    fn port(self, listen: Option<&str>) -> u16 {
        let default = self.keys()["listen"].clone().expect("a default address");
        let listen = listen.unwrap_or(&default);
        listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{listen:?} has no port"))
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn variable(key: &str) -> String {
    format!("APP_{}", key.to_uppercase())
}

/// The rows of the table under `## {heading}` in `docs/configuration.md`: variable →
/// default cell.
fn table(doc: &str, heading: &str) -> BTreeMap<String, String> {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("docs/configuration.md has no section `## {heading}`"));
    let section = &doc[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `APP_")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let name = cells[0]
            .trim_start_matches("| ")
            .trim_matches('`')
            .to_owned();
        let default = cells.get(1).copied().unwrap_or_default().to_owned();
        assert!(
            rows.insert(name.clone(), default).is_none(),
            "{heading}: {name} is listed twice"
        );
    }
    rows
}

#[test]
fn each_settings_table_lists_exactly_what_its_role_reads() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).expect("the document");
    for (heading, role) in [
        ("command-api", Role::CommandApi),
        ("projector", Role::Projector),
        ("query-api", Role::QueryApi),
    ] {
        let rows = table(&doc, heading);
        let keys = role.keys();
        let documented: BTreeSet<&String> = rows.keys().collect();
        let read: BTreeSet<String> = keys.keys().map(|k| variable(k)).collect();
        let read: BTreeSet<&String> = read.iter().collect();
        assert_eq!(
            documented.difference(&read).collect::<Vec<_>>(),
            Vec::<&&String>::new(),
            "{heading}: documented but not read by the role"
        );
        assert_eq!(
            read.difference(&documented).collect::<Vec<_>>(),
            Vec::<&&String>::new(),
            "{heading}: read by the role but not documented"
        );
        for (key, default) in &keys {
            let cell = rows[&variable(key)].as_str();
            let shown = match cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
                Some(value) if !value.contains('`') => Some(value.to_owned()),
                _ if cell == "empty" || cell.starts_with("— (required") => Some(String::new()),
                _ if cell.starts_with("= `APP_") => None,
                _ => {
                    assert!(
                        COMPUTED.contains(&key.as_str()),
                        "{heading}: {}'s default is described as {cell:?}, not given",
                        variable(key)
                    );
                    continue;
                }
            };
            assert_eq!(
                &shown,
                default,
                "{heading}: {}'s documented default",
                variable(key)
            );
        }
    }
}

/// What `deploy/check` (Go) makes of `what` (`compose` or `kustomize`) at `path`, or `None`
/// (loudly) without Go.
fn check(what: &str, path: &Path) -> Option<Value> {
    let root = root();
    let output = match Command::new("go")
        .args(["-C", "deploy/check", "run", ".", what])
        .arg(path)
        .current_dir(&root)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!(
                "\n!!! {}: NOT CHECKED: no Go toolchain to run deploy/check ({e})\n",
                path.display()
            );
            return None;
        }
    };
    assert!(
        output.status.success(),
        "{what} refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("deploy/check's JSON"))
}

/// docker-compose.yaml as compose-go loads it.
fn compose() -> Option<Value> {
    check("compose", &root().join("docker-compose.yaml"))
}

/// The users of `deploy/nats/nats.conf` and the variable each one's password comes from.
fn nats_users() -> BTreeMap<String, String> {
    let conf = std::fs::read_to_string(root().join("deploy/nats/auth.conf")).expect("auth.conf");
    conf.lines()
        .filter_map(|line| {
            let user = line.split("user: ").nth(1)?.split(',').next()?.trim();
            let password = line.split("password: $").nth(1)?.split(',').next()?.trim();
            Some((user.to_owned(), password.to_owned()))
        })
        .collect()
}

/// Host and port of a URL such as `nats://user:password@nats:4222`.
fn host_port(url: &str) -> (String, Option<u16>) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    match host_port.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().ok()),
        None => (host_port.to_owned(), None),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_sets_only_what_the_roles_read() {
    let Some(project) = compose() else {
        return;
    };
    let services = project["services"].as_object().expect("services");
    let env = |name: &str| -> BTreeMap<String, String> {
        services[name]["environment"]
            .as_object()
            .map(|e| {
                e.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let users = nats_users();
    let nats_env = env("nats");
    // Each chat service: its role and the port it listens on.
    let mut listening: BTreeMap<String, u16> = BTreeMap::new();
    for (name, service) in services {
        if service["image"].as_str() != Some(IMAGE) {
            continue;
        }
        let entrypoint = strings(&service["entrypoint"]);
        let role = Role::from_binary(entrypoint.first().map_or(IMAGE_ENTRYPOINT, String::as_str));
        let vars = env(name);
        role.check(
            name,
            vars.iter()
                .map(|(var, value)| (var.as_str(), Some(value.as_str()))),
        );

        let port = role.port(vars.get("APP_LISTEN").map(String::as_str));
        listening.insert(name.clone(), port);
        let mut targets: Vec<u64> = strings(&service["expose"])
            .iter()
            .map(|p| p.parse().expect("a port"))
            .collect();
        if let Some(ports) = service["ports"].as_array() {
            targets.extend(ports.iter().filter_map(|p| p["target"].as_u64()));
        }
        assert!(!targets.is_empty(), "{name}: no port exposed");
        for target in targets {
            assert_eq!(
                target,
                u64::from(port),
                "{name}: exposes {target}, listens on {port}"
            );
        }
        let check = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(
            check.contains(&format!("http://127.0.0.1:{port}/readyz"))
                || check.contains(&format!("http://127.0.0.1:{port}/healthz")),
            "{name}: its health check {check:?} does not ask its /readyz or /healthz on {port}"
        );

        for (var, value) in &vars {
            if !(var.ends_with("_URL")) {
                continue;
            }
            let (host, _) = host_port(value);
            assert!(
                services.contains_key(&host),
                "{name}: {var} names {host:?}, no service"
            );
        }
        if let Some(url) = vars.get("APP_DATABASE_URL") {
            role.check_database_user(name, url);
        }
        if let Some(url) = vars.get("APP_NATS_URL") {
            let credentials = url
                .split("://")
                .nth(1)
                .and_then(|r| r.split_once('@'))
                .map(|(c, _)| c)
                .unwrap_or_else(|| panic!("{name}: APP_NATS_URL logs in as nobody"));
            let (user, password) = credentials.split_once(':').expect("user:password");
            let variable = users
                .get(user)
                .unwrap_or_else(|| panic!("{name}: NATS user {user} is not in nats.conf"));
            assert_eq!(
                nats_env.get(variable).map(String::as_str),
                Some(password),
                "{name}: the NATS server gives {user} another password"
            );
        }
    }
    for role in ["command-api", "projector", "query-api", "chat"] {
        assert!(listening.contains_key(role), "no {role} service");
    }

    // The image's own variables are the single node's settings.
    let dockerfile =
        std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("the Dockerfile");
    let chat = Role::Chat.keys();
    let mut image_vars = 0;
    for word in dockerfile.split_whitespace() {
        if let Some((var, _)) = word.split_once('=').filter(|(v, _)| v.starts_with("APP_")) {
            let key = var.trim_start_matches("APP_").to_lowercase();
            assert!(
                chat.contains_key(&key),
                "deploy/Dockerfile sets {var}, which no role reads"
            );
            image_vars += 1;
        }
    }
    assert!(image_vars > 0, "deploy/Dockerfile sets no APP_ variable");

    // Every file mounted from the repository exists.
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            if volume["type"] == "bind" {
                let source = volume["source"].as_str().expect("a source");
                assert!(
                    Path::new(source).exists(),
                    "{name}: mounts {source}, which is missing"
                );
            }
        }
    }

    // Prometheus scrapes each role on the port it listens on.
    let prometheus =
        std::fs::read_to_string(root().join("deploy/prometheus.yml")).expect("prometheus.yml");
    let mut scraped = BTreeMap::new();
    let mut names = None;
    for line in prometheus.lines().map(str::trim) {
        if let Some(list) = line.strip_prefix("- names: [") {
            names = Some(list.trim_end_matches(']').to_owned());
        } else if let Some(port) = line.strip_prefix("port: ") {
            let name = names.take().expect("a port after its names");
            scraped.insert(name, port.parse::<u16>().expect("a port"));
        }
    }
    assert_eq!(scraped, listening, "deploy/prometheus.yml's targets");

    // The entry point proxies to the roles' ports.
    let nginx =
        std::fs::read_to_string(root().join("deploy/nginx/chat.conf")).expect("nginx config");
    let upstreams: Vec<(String, Option<u16>)> = nginx
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server ")?.strip_suffix(';'))
        .map(host_port)
        .collect();
    assert_eq!(upstreams.len(), 2, "{upstreams:?}");
    for (host, port) in upstreams {
        assert_eq!(
            listening.get(&host).copied(),
            port,
            "deploy/nginx/chat.conf: upstream {host}"
        );
    }
}

/// The resources of a kustomize overlay, by kind.
fn kustomize(overlay: &str) -> Option<Vec<Value>> {
    let rendered = check(
        "kustomize",
        &root().join("deploy/k8s/overlays").join(overlay),
    )?;
    Some(rendered.as_array().expect("a list of resources").clone())
}

fn of_kind<'a>(resources: &'a [Value], kind: &str) -> Vec<&'a Value> {
    resources.iter().filter(|r| r["kind"] == kind).collect()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kubernetes_sets_only_what_the_roles_read() {
    let users = nats_users();
    let auth = std::fs::read_to_string(root().join("deploy/nats/auth.conf")).expect("auth.conf");
    for overlay in ["dev", "production"] {
        let Some(resources) = kustomize(overlay) else {
            return;
        };
        let config_maps: BTreeMap<String, BTreeMap<String, String>> =
            of_kind(&resources, "ConfigMap")
                .into_iter()
                .map(|c| {
                    (
                        c["metadata"]["name"].as_str().unwrap().to_owned(),
                        labels(&c["data"]),
                    )
                })
                .collect();
        let secrets: BTreeMap<String, BTreeMap<String, String>> = of_kind(&resources, "Secret")
            .into_iter()
            .map(|c| {
                let data = c["data"].as_object().cloned().unwrap_or_default();
                let decoded = data
                    .into_iter()
                    .map(|(k, v)| {
                        let bytes = base64_decode(v.as_str().unwrap_or_default());
                        (k, String::from_utf8(bytes).expect("UTF-8"))
                    })
                    .collect();
                (c["metadata"]["name"].as_str().unwrap().to_owned(), decoded)
            })
            .collect();

        // Each role's Deployment: its variables, ports and probes.
        let mut roles = BTreeMap::new();
        let mut workloads: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for kind in ["Deployment", "StatefulSet"] {
            for w in of_kind(&resources, kind) {
                let name = w["metadata"]["name"].as_str().unwrap().to_owned();
                workloads.push((
                    name.clone(),
                    labels(&w["spec"]["template"]["metadata"]["labels"]),
                ));
                let container = &w["spec"]["template"]["spec"]["containers"][0];
                if !container["image"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("chat/platform")
                {
                    continue;
                }
                let command = strings(&container["command"]);
                let role =
                    Role::from_binary(command.first().map_or(IMAGE_ENTRYPOINT, String::as_str));
                let mut vars: BTreeMap<String, Option<String>> = BTreeMap::new();
                for from in container["envFrom"].as_array().into_iter().flatten() {
                    let map = from["configMapRef"]["name"].as_str().expect("a ConfigMap");
                    let data = config_maps
                        .get(map)
                        .unwrap_or_else(|| panic!("{overlay}/{name}: no ConfigMap {map}"));
                    vars.extend(data.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
                }
                for env in container["env"].as_array().into_iter().flatten() {
                    let var = env["name"].as_str().unwrap().to_owned();
                    let value = if let Some(v) = env["value"].as_str() {
                        Some(v.to_owned())
                    } else {
                        let secret = &env["valueFrom"]["secretKeyRef"];
                        let (sname, key) = (secret["name"].as_str(), secret["key"].as_str());
                        let (sname, key) = (sname.expect("a Secret"), key.expect("a key"));
                        // The production overlay's Secret is made outside the repository.
                        secrets.get(sname).map(|data| {
                            data.get(key)
                                .unwrap_or_else(|| panic!("{overlay}/{name}: {sname} has no {key}"))
                                .clone()
                        })
                    };
                    vars.insert(var, value);
                }
                let place = format!("{overlay}/{name}");
                role.check(
                    &place,
                    vars.iter()
                        .map(|(var, value)| (var.as_str(), value.as_deref())),
                );
                if let Some(Some(url)) = vars.get("APP_DATABASE_URL") {
                    role.check_database_user(&place, url);
                }
                if let Some(Some(url)) = vars.get("APP_NATS_URL") {
                    let user = url
                        .split("://")
                        .nth(1)
                        .and_then(|r| r.split_once(':'))
                        .map(|(u, _)| u);
                    let user = user.expect("a NATS user");
                    assert!(
                        users.contains_key(user),
                        "{overlay}/{name}: NATS user {user} is not in auth.conf"
                    );
                }
                let port = role.port(vars.get("APP_LISTEN").cloned().flatten().as_deref());
                let ports = container["ports"].as_array().expect("ports");
                assert_eq!(ports.len(), 1, "{overlay}/{name}: one port");
                assert_eq!(
                    ports[0]["containerPort"].as_u64(),
                    Some(u64::from(port)),
                    "{overlay}/{name}"
                );
                let port_name = ports[0]["name"].as_str().expect("a named port");
                for (probe, paths) in [
                    ("readinessProbe", ["/readyz"]),
                    ("livenessProbe", ["/healthz"]),
                ] {
                    let get = &container[probe]["httpGet"];
                    assert!(
                        paths.contains(&get["path"].as_str().unwrap_or_default()),
                        "{overlay}/{name}: {probe}"
                    );
                    assert_eq!(
                        get["port"].as_str(),
                        Some(port_name),
                        "{overlay}/{name}: {probe}'s port"
                    );
                }
                assert!(
                    !container["resources"]["requests"].is_null(),
                    "{overlay}/{name}: resources"
                );
                roles.insert(
                    name,
                    (
                        role,
                        port,
                        labels(&w["spec"]["template"]["metadata"]["labels"]),
                    ),
                );
            }
        }
        for role in ["command-api", "projector", "query-api"] {
            assert!(roles.contains_key(role), "{overlay}: no Deployment {role}");
        }

        // Services reach the roles on their ports.
        for svc in of_kind(&resources, "Service") {
            let name = svc["metadata"]["name"].as_str().unwrap();
            let Some((_, port, template)) = roles.get(name) else {
                continue;
            };
            let selector = labels(&svc["spec"]["selector"]);
            assert!(
                selector.iter().all(|(k, v)| template.get(k) == Some(v)),
                "{overlay}: Service {name} selects its pods"
            );
            assert_eq!(
                svc["spec"]["ports"][0]["port"].as_u64(),
                Some(u64::from(*port)),
                "{overlay}: Service {name}"
            );
        }
        // An autoscaler for each API; a disruption budget for every workload.
        let scaled: BTreeSet<String> = of_kind(&resources, "HorizontalPodAutoscaler")
            .into_iter()
            .map(|h| {
                h["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            scaled,
            BTreeSet::from(["command-api".to_owned(), "query-api".to_owned()]),
            "{overlay}: autoscalers"
        );
        for (name, template) in &workloads {
            let budgeted = of_kind(&resources, "PodDisruptionBudget")
                .into_iter()
                .any(|p| {
                    let selector = labels(&p["spec"]["selector"]["matchLabels"]);
                    !selector.is_empty() && selector.iter().all(|(k, v)| template.get(k) == Some(v))
                });
            assert!(budgeted, "{overlay}: no PodDisruptionBudget for {name}");
        }
        // Three NATS servers, with the users of deploy/nats/auth.conf.
        let nats = of_kind(&resources, "StatefulSet")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "nats")
            .expect("a NATS StatefulSet");
        assert_eq!(
            nats["spec"]["replicas"].as_u64(),
            Some(3),
            "{overlay}: NATS servers"
        );
        let conf = config_maps
            .iter()
            .find(|(name, _)| name.starts_with("nats-config"))
            .map(|(_, data)| data)
            .expect("the NATS configuration");
        assert_eq!(
            conf.get("auth.conf"),
            Some(&auth),
            "{overlay}: the cluster's auth.conf is deploy/nats/auth.conf"
        );
        for n in 0..3 {
            assert!(
                conf["nats.conf"].contains(&format!("nats-{n}.nats-cluster:6222")),
                "{overlay}: route to nats-{n}"
            );
        }
    }
}

/// Standard base64 (Kubernetes Secrets' `data`; kustomize folds long values).
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    let text: String = text.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}
