//! The nftables backend: opens each session's UDP port, one by one,
//! through nft's JSON API (commands built with the `nftables` crate's
//! schema, each change one atomic transaction).
//!
//! The commands go to libnftables in this process ([`super::libnftables`]),
//! the library `nft` itself runs them with, so a session's port opens
//! without starting a program: a child per change made setup through the
//! daemon slower than stock mosh's. Netlink by hand (nftnl, rustables)
//! would mean re-implementing the library's JSON, cache and error
//! reporting, with crates far less kept than it; a long-lived `nft -i`
//! reads lines meant for people and reports errors on standard error
//! with nothing marking where one command's ends. Where the library cannot
//! be loaded, the daemon logs why and runs `nft -j -f -` for each change,
//! as before.
//!
//! The daemon owns table `inet mosh_daemon`: a set `ports` of open UDP
//! ports and an `input` chain, hooked before the usual `filter` priority,
//! that accepts them. An `accept` there is final only for that chain: a
//! distribution's input chain with `policy drop` in another table still
//! sees the packet and drops it. So the daemon also puts one rule, tagged
//! with the comment [`COMMENT`], at the top of every other input base
//! chain, matching a set [`FOREIGN_SET`] it adds to that chain's table and
//! keeps equal to its own. Removing everything (daemon stop, a stale
//! leftover at start) deletes the table, the tagged rules and those sets,
//! which leaves the rest of the ruleset exactly as it was.

use std::borrow::Cow;
use std::collections::BTreeSet;

use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{
    Chain, Element, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::Deserialize;

use super::libnftables::{self, Context, LoadError};
use super::tool::{self, ToolError};

/// The daemon's own table (family `inet`).
pub const TABLE: &str = "mosh_daemon";
/// The set of open ports in the daemon's table.
pub const SET: &str = "ports";
/// The set the daemon adds to another table that has an input chain.
pub const FOREIGN_SET: &str = "mosh_daemon_ports";
/// The comment that marks the rules the daemon adds to other tables.
pub const COMMENT: &str = "mosh-daemon";
/// The priority of the daemon's input chain: before `filter` (0).
const PRIORITY: i32 = -10;

/// A place holding a copy of the open ports: a table and its set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortSet {
    family: NfFamily,
    table: String,
    set: &'static str,
}

/// The nftables backend's state: how commands reach nftables, where the
/// port sets are, and which ports are in them.
#[derive(Debug)]
pub struct NftablesBackend {
    nft: Nft,
    sets: Vec<PortSet>,
    open: BTreeSet<u16>,
}

/// How commands reach nftables.
#[derive(Debug)]
pub enum Nft {
    /// A libnftables context in this process.
    Library(Context),
    /// The `nft` program, started for each command, because libnftables
    /// could not be used for this reason.
    Program(LoadError),
}

/// The command line `nft` would run a listing with.
const LIST: [&str; 3] = ["-j", "list", "ruleset"];
/// The command line `nft` would run a JSON document with.
const APPLY: [&str; 3] = ["-j", "-f", "-"];

impl Nft {
    /// libnftables if it can be used here, else the `nft` program.
    pub fn open() -> Nft {
        match Context::new() {
            Ok(context) => Nft::Library(context),
            Err(reason) => Nft::Program(reason),
        }
    }

    /// Runs `nft ARGS` with `input`, or its equivalent in the library
    /// (`commands`); returns what it printed.
    fn run(&mut self, args: &[&str], commands: &str) -> Result<String, ToolError> {
        match self {
            Nft::Library(context) => context.run(commands).map_err(|error| ToolError::Refused {
                command: format!("nft {}", args.join(" ")),
                library: libnftables::SONAME,
                error: tool::shorten(error.trim()),
            }),
            Nft::Program(_) => {
                let input = (args == APPLY).then_some(commands.as_bytes());
                tool::run("nft", args, input)
            }
        }
    }

    fn list(&mut self) -> Result<Survey, ToolError> {
        let text = self.run(&LIST, "list ruleset")?;
        survey(&text).map_err(|reason| ToolError::Unexpected {
            command: format!("nft {}", LIST.join(" ")),
            reason,
        })
    }

    fn apply(&mut self, commands: Vec<NfObject<'static>>) -> Result<(), ToolError> {
        if commands.is_empty() {
            return Ok(());
        }
        let document = Nftables {
            objects: Cow::Owned(commands),
        };
        let text = serde_json::to_string(&document).map_err(|e| ToolError::Unexpected {
            command: format!("nft {}", APPLY.join(" ")),
            reason: e.to_string(),
        })?;
        self.run(&APPLY, &text).map(drop)
    }
}

/// What the daemon needs to know of the current ruleset.
#[derive(Debug, Default, PartialEq, Eq)]
struct Survey {
    /// Whether the daemon's table exists.
    own_table: bool,
    /// Input base chains of other tables (family ip, ip6 or inet).
    foreign_inputs: Vec<(NfFamily, String, String)>,
    /// Rules tagged [`COMMENT`] outside the daemon's table: family, table,
    /// chain, handle.
    tagged_rules: Vec<(NfFamily, String, String, u32)>,
    /// Sets named [`FOREIGN_SET`] outside the daemon's table.
    foreign_sets: Vec<(NfFamily, String)>,
    /// The ports in the daemon's own set.
    own_ports: BTreeSet<u16>,
}

#[derive(Deserialize)]
struct Listing {
    nftables: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ListedChain {
    family: String,
    table: String,
    name: String,
    hook: Option<String>,
}

#[derive(Deserialize)]
struct ListedRule {
    family: String,
    table: String,
    chain: String,
    handle: u32,
    comment: Option<String>,
}

#[derive(Deserialize)]
struct ListedTable {
    family: String,
    name: String,
}

#[derive(Deserialize)]
struct ListedSet {
    family: String,
    table: String,
    name: String,
    #[serde(default)]
    elem: Vec<serde_json::Value>,
}

fn family(name: &str) -> Option<NfFamily> {
    match name {
        "ip" => Some(NfFamily::IP),
        "ip6" => Some(NfFamily::IP6),
        "inet" => Some(NfFamily::INet),
        _ => None,
    }
}

/// Reads what matters of `nft -j list ruleset` output.
fn survey(listing: &str) -> Result<Survey, String> {
    let listing: Listing = serde_json::from_str(listing).map_err(|e| e.to_string())?;
    let mut survey = Survey::default();
    for object in listing.nftables {
        for (kind, value) in object {
            match kind.as_str() {
                "table" => {
                    let table: ListedTable =
                        serde_json::from_value(value).map_err(|e| e.to_string())?;
                    if table.family == "inet" && table.name == TABLE {
                        survey.own_table = true;
                    }
                }
                "chain" => {
                    let chain: ListedChain =
                        serde_json::from_value(value).map_err(|e| e.to_string())?;
                    let Some(family) = family(&chain.family) else {
                        continue;
                    };
                    let own = family == NfFamily::INet && chain.table == TABLE;
                    if chain.hook.as_deref() == Some("input") && !own {
                        survey
                            .foreign_inputs
                            .push((family, chain.table, chain.name));
                    }
                }
                "rule" => {
                    let rule: ListedRule =
                        serde_json::from_value(value).map_err(|e| e.to_string())?;
                    let Some(family) = family(&rule.family) else {
                        continue;
                    };
                    let own = family == NfFamily::INet && rule.table == TABLE;
                    if rule.comment.as_deref() == Some(COMMENT) && !own {
                        survey
                            .tagged_rules
                            .push((family, rule.table, rule.chain, rule.handle));
                    }
                }
                "set" => {
                    let set: ListedSet =
                        serde_json::from_value(value).map_err(|e| e.to_string())?;
                    let Some(family) = family(&set.family) else {
                        continue;
                    };
                    let own = family == NfFamily::INet && set.table == TABLE;
                    if own && set.name == SET {
                        survey.own_ports = set
                            .elem
                            .iter()
                            .filter_map(|port| port.as_u64())
                            .filter_map(|port| u16::try_from(port).ok())
                            .collect();
                    } else if set.name == FOREIGN_SET && !own {
                        survey.foreign_sets.push((family, set.table));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(survey)
}

fn cmd(command: NfCmd<'static>) -> NfObject<'static> {
    NfObject::CmdObject(command)
}

fn own_table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

fn port_set(family: NfFamily, table: String, name: &'static str) -> Set<'static> {
    Set {
        family,
        table: table.into(),
        name: name.into(),
        set_type: SetTypeValue::Single(SetType::InetService),
        comment: Some(COMMENT.into()),
        ..Set::default()
    }
}

/// `udp dport @SET accept`.
fn accept_ports(set: &str) -> Vec<Statement<'static>> {
    vec![
        Statement::Match(Match {
            left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                PayloadField {
                    protocol: "udp".into(),
                    field: "dport".into(),
                },
            ))),
            right: Expression::String(format!("@{set}").into()),
            op: Operator::EQ,
        }),
        Statement::Accept(None),
    ]
}

/// Commands deleting everything a daemon added, as `survey` found it.
fn removal(found: &Survey) -> Vec<NfObject<'static>> {
    let mut commands = Vec::new();
    if found.own_table {
        commands.push(cmd(NfCmd::Delete(NfListObject::Table(own_table()))));
    }
    for (family, table, chain, handle) in &found.tagged_rules {
        commands.push(cmd(NfCmd::Delete(NfListObject::Rule(Rule {
            family: *family,
            table: table.clone().into(),
            chain: chain.clone().into(),
            handle: Some(*handle),
            ..Rule::default()
        }))));
    }
    for (family, table) in &found.foreign_sets {
        commands.push(cmd(NfCmd::Delete(NfListObject::Set(Box::new(port_set(
            *family,
            table.clone(),
            FOREIGN_SET,
        ))))));
    }
    commands
}

fn elements(sets: &[PortSet], ports: &BTreeSet<u16>, add: bool) -> Vec<NfObject<'static>> {
    if ports.is_empty() {
        return Vec::new();
    }
    sets.iter()
        .map(|place| {
            let element = NfListObject::Element(Element {
                family: place.family,
                table: place.table.clone().into(),
                name: place.set.into(),
                elem: Cow::Owned(
                    ports
                        .iter()
                        .map(|&port| Expression::Number(u32::from(port)))
                        .collect(),
                ),
            });
            cmd(if add {
                NfCmd::Add(element)
            } else {
                NfCmd::Delete(element)
            })
        })
        .collect()
}

impl NftablesBackend {
    /// A backend that sends its commands through `nft`; says in the log
    /// when that is the `nft` program, and why.
    pub fn new(nft: Nft) -> NftablesBackend {
        if let Nft::Program(reason) = &nft {
            tracing::error!("firewall (nftables): {reason}; running `nft` for each change instead");
        }
        NftablesBackend {
            nft,
            sets: Vec::new(),
            open: BTreeSet::new(),
        }
    }

    /// Removes what an earlier daemon left, then adds the daemon's table
    /// and a tagged rule in every other input base chain, all in one
    /// transaction; no port is open afterwards.
    pub fn install(&mut self) -> Result<(), ToolError> {
        let found = self.nft.list()?;
        let mut commands = removal(&found);
        commands.push(cmd(NfCmd::Add(NfListObject::Table(own_table()))));
        commands.push(cmd(NfCmd::Add(NfListObject::Set(Box::new(port_set(
            NfFamily::INet,
            TABLE.into(),
            SET,
        ))))));
        commands.push(cmd(NfCmd::Add(NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: "input".into(),
            _type: Some(NfChainType::Filter),
            hook: Some(NfHook::Input),
            prio: Some(PRIORITY),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        }))));
        commands.push(cmd(NfCmd::Add(NfListObject::Rule(Rule {
            family: NfFamily::INet,
            table: TABLE.into(),
            chain: "input".into(),
            expr: Cow::Owned(accept_ports(SET)),
            ..Rule::default()
        }))));
        let mut sets = vec![PortSet {
            family: NfFamily::INet,
            table: TABLE.into(),
            set: SET,
        }];
        for (family, table, chain) in &found.foreign_inputs {
            let place = PortSet {
                family: *family,
                table: table.clone(),
                set: FOREIGN_SET,
            };
            if !sets.contains(&place) {
                commands.push(cmd(NfCmd::Add(NfListObject::Set(Box::new(port_set(
                    *family,
                    table.clone(),
                    FOREIGN_SET,
                ))))));
                sets.push(place);
            }
            commands.push(cmd(NfCmd::Insert(NfListObject::Rule(Rule {
                family: *family,
                table: table.clone().into(),
                chain: chain.clone().into(),
                expr: Cow::Owned(accept_ports(FOREIGN_SET)),
                comment: Some(COMMENT.into()),
                ..Rule::default()
            }))));
        }
        self.nft.apply(commands)?;
        self.sets = sets;
        self.open.clear();
        Ok(())
    }

    /// Makes exactly `ports` open, in one transaction.
    pub fn set_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), ToolError> {
        let closing: BTreeSet<u16> = self.open.difference(ports).copied().collect();
        let opening: BTreeSet<u16> = ports.difference(&self.open).copied().collect();
        let mut commands = elements(&self.sets, &closing, false);
        commands.extend(elements(&self.sets, &opening, true));
        self.nft.apply(commands)?;
        self.open = ports.clone();
        Ok(())
    }

    /// Whether the daemon's table is there, every other input base chain
    /// has its tagged rule, and the ports are in the sets.
    pub fn in_place(&mut self) -> Result<bool, ToolError> {
        let found = self.nft.list()?;
        let every_chain = found.foreign_inputs.iter().all(|(family, table, chain)| {
            found
                .tagged_rules
                .iter()
                .any(|(f, t, c, _)| (f, t, c) == (family, table, chain))
        });
        Ok(found.own_table && every_chain && found.own_ports == self.open)
    }

    /// Deletes the daemon's table, its tagged rules and its sets.
    pub fn remove(&mut self) -> Result<(), ToolError> {
        let found = self.nft.list()?;
        self.nft.apply(removal(&found))?;
        self.sets.clear();
        self.open.clear();
        Ok(())
    }

    /// The ports open now.
    pub fn open_ports(&self) -> &BTreeSet<u16> {
        &self.open
    }
}

/// Whether the ruleset has an input base chain of ip, ip6 or inet family
/// other than the daemon's, and whether all of them look like
/// iptables-nft's (`INPUT` in table `filter`).
pub fn detect(nft: &mut Nft) -> Result<Option<bool>, ToolError> {
    let found = nft.list()?;
    if found.foreign_inputs.is_empty() {
        return Ok(None);
    }
    let iptables_nft = found.foreign_inputs.iter().all(|(family, table, chain)| {
        *family != NfFamily::INet && table == "filter" && chain == "INPUT"
    });
    Ok(Some(iptables_nft))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "filter", "handle": 1}},
        {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"set": {"family": "inet", "name": "mosh_daemon_ports", "table": "filter", "type": "inet_service", "handle": 5}},
        {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6, "comment": "mosh-daemon", "expr": []}},
        {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 3, "expr": [{"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": "established"}}, {"accept": null}]}},
        {"table": {"family": "inet", "name": "mosh_daemon", "handle": 7}},
        {"chain": {"family": "inet", "table": "mosh_daemon", "name": "input", "handle": 2, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "mosh_daemon", "chain": "input", "handle": 4, "comment": "mosh-daemon", "expr": []}},
        {"chain": {"family": "netdev", "table": "edge", "name": "ingress", "handle": 1, "type": "filter", "hook": "ingress", "prio": 0, "policy": "accept"}}
    ]}"#;

    #[test]
    fn the_survey_finds_foreign_input_chains_and_leftovers() {
        let found = survey(LISTING).unwrap();
        assert!(found.own_table);
        assert_eq!(
            found.foreign_inputs,
            [(NfFamily::INet, "filter".into(), "input".into())]
        );
        assert_eq!(
            found.tagged_rules,
            [(NfFamily::INet, "filter".into(), "input".into(), 6)]
        );
        assert_eq!(found.foreign_sets, [(NfFamily::INet, "filter".into())]);
    }

    #[test]
    fn removal_deletes_table_rules_then_sets() {
        let found = survey(LISTING).unwrap();
        let text = serde_json::to_string(&removal(&found)).unwrap();
        assert_eq!(
            text,
            r#"[{"delete":{"table":{"family":"inet","name":"mosh_daemon"}}},{"delete":{"rule":{"family":"inet","table":"filter","chain":"input","expr":[],"handle":6}}},{"delete":{"set":{"family":"inet","table":"filter","name":"mosh_daemon_ports","type":"inet_service","comment":"mosh-daemon"}}}]"#
        );
    }

    #[test]
    fn an_unreadable_listing_is_an_error() {
        assert!(survey("not json").is_err());
        assert!(survey(r#"{"nftables": [{"chain": {"family": "inet"}}]}"#).is_err());
    }
}
