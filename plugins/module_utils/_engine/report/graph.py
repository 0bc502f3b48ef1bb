# -*- coding: utf-8 -*-
# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A topology spec as a picture: Mermaid (renders in Markdown on most forges) or Graphviz DOT.

Namespaces (and the root namespace) are boxes listing their sysctls, bridges, routes and policy
routing rules (one line each); links are
edges labelled with each end's name and addresses. A live state is drawn the same way after
``info.spec_from_info``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

ROOT_LABEL = "root namespace"


class Drawing:
    """The boxes and edges of one topology, independent of the output language."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.boxes: List[Tuple[str, List[str]]] = []  # (node id, label lines)
        self.edges: List[Tuple[str, str, str, str, str]] = []  # (from id, to id, tail label, head label, kind)
        self._ids: Dict[Optional[str], str] = {}
        self._addresses: Dict[Tuple[Optional[str], str], List[str]] = {}
        self._collect(spec)

    def node(self, netns: Optional[str]) -> str:
        return self._ids.setdefault(netns, "ns%d" % len(self._ids))

    def _end(self, netns: Optional[str], name: str) -> str:
        return "\n".join([name] + self._addresses.get((netns, name), []))

    def _collect(self, spec: Dict[str, Any]) -> None:
        sections: List[Tuple[Optional[str], Dict[str, Any]]] = [(None, spec.get("host") or {})]
        sections += [(ns["name"], ns) for ns in spec.get("namespaces", [])]
        for netns, section in sections:
            for item in section.get("addresses", []):
                self._addresses.setdefault((netns, item["dev"]), []).append(item["address"])
        bridges: Dict[Optional[str], List[str]] = {}
        for link in spec.get("links", []):
            if link["type"] == "bridge":
                bridges.setdefault(link.get("netns"), []).append(
                    "bridge %s: %s" % (self._end(link.get("netns"), link["name"]).replace("\n", " "),
                                       ", ".join(link.get("ports", []))))
        if _touches_root(spec):
            self.boxes.append((self.node(None), [ROOT_LABEL] + bridges.get(None, [])
                               + [_rule_line(r) for r in (spec.get("host") or {}).get("rules", [])]))
        for ns in spec.get("namespaces", []):
            lines = ["netns " + ns["name"]]
            lines += ["%s=%s" % (key[len("net."):], value) for key, value in sorted((ns.get("sysctls") or {}).items())]
            lines += bridges.get(ns["name"], [])
            lines += ["%s via %s" % (r["dst"], r["via"]) if r.get("via") else "%s dev %s" % (r["dst"], r.get("dev"))
                      for r in ns.get("routes", [])]
            lines += [_rule_line(r) for r in ns.get("rules", [])]
            rules = sum(len(chain.get("rules", [])) for table in ns.get("iptables", []) for chain in table.get("chains", []))
            if rules:
                lines.append("%d iptables rule%s" % (rules, "" if rules == 1 else "s"))
            lines += ["nftables %s %s" % (t.get("family", "inet"), t.get("table")) for t in ns.get("nftables") or []]
            self.boxes.append((self.node(ns["name"]), lines))
        for link in spec.get("links", []):
            netns = link.get("netns")
            if link["type"] == "veth":
                self.edges.append((self.node(netns), self.node(link.get("peer_netns")), self._end(netns, link["name"]),
                                   self._end(link.get("peer_netns"), link["peer"]), "veth"))
            elif link["type"] in ("vlan", "macvlan"):
                kind = "vlan %s" % link.get("id") if link["type"] == "vlan" else "macvlan"
                self.edges.append((self.node(link.get("parent_netns")), self.node(netns), link["parent"],
                                   self._end(netns, link["name"]), kind))
            elif link["type"] == "wireguard":  # its UDP socket in the underlay; never a key
                port = link.get("listen_port")
                self.edges.append((self.node(link.get("underlay_netns")), self.node(netns),
                                   "udp %s" % (port or "any"), self._end(netns, link["name"]),
                                   "wireguard, %d peer%s" % (len(link.get("peers") or []),
                                                             "" if len(link.get("peers") or []) == 1 else "s")))
            elif link["type"] == "device":  # a host device, moved from the root namespace
                match = link.get("match") or {}
                self.edges.append((self.node(None), self.node(netns), match.get("name") or match.get("mac", ""),
                                   self._end(netns, link["name"]), "device"))
            elif link["type"] == "vxlan":
                self.edges.append((self.node(link.get("underlay_netns")), self.node(netns), link.get("dev") or "udp",
                                   self._end(netns, link["name"]), "vxlan %s" % link.get("id")))


def _rule_line(rule: Dict[str, Any]) -> str:
    """A policy routing rule as `ip rule` words: its priority, what it selects, its table."""
    words = ["rule %s" % rule.get("priority")]
    words += ["%s %s" % (key, rule[key]) for key in ("from", "to", "iif", "oif", "fwmark") if rule.get(key) is not None]
    return " ".join(words + ["table %s" % rule.get("table", "main")])


def _touches_root(spec: Dict[str, Any]) -> bool:
    """Whether the root namespace has a box: a link or an address of the topology is there."""
    for link in spec.get("links", []):
        ends = [link.get("netns")]
        if link["type"] == "veth":
            ends.append(link.get("peer_netns"))
        elif link["type"] in ("vlan", "macvlan"):
            ends.append(link.get("parent_netns"))
        elif link["type"] in ("wireguard", "vxlan"):
            ends.append(link.get("underlay_netns"))
        if None in ends or link["type"] == "device":
            return True
    return bool((spec.get("host") or {}).get("addresses"))


def _dot_text(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(spec: Dict[str, Any]) -> str:
    drawing = Drawing(spec)
    lines = ["graph %s {" % _dot_text(spec.get("name", "topology")),
             "  graph [rankdir=LR, fontname=\"Helvetica\", nodesep=0.8, ranksep=1.2];",
             "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\"];",
             "  edge [fontname=\"Helvetica\", fontsize=10];"]
    for node, label in drawing.boxes:
        fill = ', fillcolor="#f4f4f4"' if label[0] == ROOT_LABEL else ""
        lines.append("  %s [label=%s%s];" % (node, _dot_text("\n".join(label)), fill))
    for tail, head, tail_label, head_label, kind in drawing.edges:
        # one caption in the middle (end labels at the boxes collide with them): tail end, then head end
        caption = ([] if kind == "veth" else [kind]) + [tail_label.replace("\n", " "), head_label.replace("\n", " ")]
        lines.append("  %s -- %s [label=%s];" % (tail, head, _dot_text("\n".join(caption))))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return '"%s"' % text.replace('"', "#quot;").replace("\n", "<br/>")


def to_mermaid(spec: Dict[str, Any]) -> str:
    drawing = Drawing(spec)
    lines = ["flowchart LR"]
    for node, label in drawing.boxes:
        lines.append("  %s[%s]" % (node, _mermaid_text("\n".join(label))))
    for tail, head, tail_label, head_label, kind in drawing.edges:
        text = "%s — %s" % (tail_label.replace("\n", " "), head_label.replace("\n", " "))
        lines.append("  %s ---|%s| %s" % (tail, _mermaid_text("%s: %s" % (kind, text)), head))
    return "\n".join(lines) + "\n"


RENDERERS = {"dot": to_dot, "mermaid": to_mermaid}
