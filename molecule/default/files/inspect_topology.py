"""Runs on a Molecule instance, independently of the collection's engine (iproute2's JSON output,
sysctl, iptables, ping).

    python3 inspect_topology.py verify SPEC.json PINGS.json   check every declared object, then reachability
    python3 inspect_topology.py services SPEC.json WEB.json   each declared service in its namespace, with its DNS
    python3 inspect_topology.py dump                          the host's namespace state, normalised

``verify`` prints a JSON report {"checks": N, "failures": [...]} and exits 1 on any failure.
``dump`` prints what must be equal before and after a reboot: without ifindexes, random MACs,
IPv6 link-local addresses and routes, counters.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any, Dict, List, Optional

WEB_PATIENCE = 30.0  # seconds a web server has to answer
# A ping to another host (over its vxlan or WireGuard tunnel) may need that host to have finished
# booting, or a WireGuard handshake first: as many tries, two seconds each.
PING_TRIES = 15
SYSCTLS = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.all.disable_ipv6"]


def run(argv: List[str], ns: Optional[str] = None) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    # Callers judge the exit status: a rule that is missing (iptables -C) or a ping that fails is a finding.
    return subprocess.run(prefix + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False)


def ip_json(args: List[str], ns: Optional[str] = None) -> Any:
    out = run(["ip"] + (["-n", ns] if ns else []) + ["-d", "-j"] + args).stdout
    return json.loads(out) if out.strip() else []


def namespaces() -> List[str]:
    return sorted(entry["name"] for entry in ip_json(["netns", "list"]))


def link_local(text: str) -> bool:
    return text.startswith("fe80:") or text.startswith("ff00:")


def sysctl(ns: Optional[str], key: str) -> str:
    return run(["sysctl", "-n", key], ns).stdout.strip()


def iptables_lines(ns: Optional[str]) -> List[str]:
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        for line in run([tool], ns).stdout.splitlines():
            if line.startswith(":"):
                line = line.split(" [")[0]  # chain policy without its counters
            if line[:1] in ("*", ":", "-"):
                lines.append(line)
    return lines


def dump() -> Dict[str, Any]:
    state: Dict[str, Any] = {"netns": namespaces()}
    for ns in [None] + state["netns"]:
        links = []
        for link in ip_json(["addr", "show"], ns):
            links.append({
                "name": link["ifname"], "kind": (link.get("linkinfo") or {}).get("info_kind"), "mtu": link["mtu"],
                "up": "UP" in link.get("flags", []), "master": link.get("master"),
                "addresses": sorted("%s/%s" % (a["local"], a["prefixlen"])
                                    for a in link.get("addr_info", []) if not link_local(a["local"]))})
        routes = []
        for family in ("-4", "-6"):
            for route in ip_json([family, "route", "show", "table", "all"], ns):
                if link_local(route.get("dst", "")):
                    continue
                routes.append([route.get("dst"), route.get("gateway"), route.get("dev"), route.get("table", "main"),
                               route.get("metric"), route.get("protocol"), route.get("type"), route.get("prefsrc")])
        state[ns or "<root>"] = {
            "links": sorted(links, key=lambda l: l["name"]),
            "routes": sorted(routes, key=str),
            "sysctls": {key: sysctl(ns, key) for key in SYSCTLS},
            "iptables": iptables_lines(ns),
            "rules": [ip_json([family, "rule", "show"], ns) for family in ("-4", "-6")],
            # stateless: without the counters; empty where nft is not installed
            "nftables": run(["nft", "-s", "list", "ruleset"], ns).stdout if os.path.exists("/usr/sbin/nft") else "",
        }
    return state


class Verifier:
    def __init__(self) -> None:
        self.checks = 0
        self.failures: List[str] = []

    def expect(self, ok: bool, what: str) -> None:
        self.checks += 1
        if not ok:
            self.failures.append(what)

    def link(self, ns: Optional[str], name: str) -> Optional[Dict[str, Any]]:
        found = [l for l in ip_json(["link", "show"], ns) if l["ifname"] == name]
        self.expect(bool(found), "link %s missing in %s" % (name, ns or "the root namespace"))
        return found[0] if found else None

    def verify(self, spec: Dict[str, Any], pings: List[Dict[str, Any]]) -> None:
        present = namespaces()
        for ns in spec.get("namespaces", []):
            self.expect(ns["name"] in present, "namespace %s missing" % ns["name"])
        for decl in spec.get("links", []):
            self.verify_link(decl)
        scopes = [(ns["name"], ns) for ns in spec.get("namespaces", [])] + [(None, spec.get("host") or {})]
        for ns, scope in scopes:
            where = ns or "the root namespace"
            if ns is not None and scope.get("loopback", "up") == "up":
                lo = self.link(ns, "lo")
                self.expect(bool(lo) and "UP" in lo["flags"], "lo not up in %s" % where)
            for address in scope.get("addresses", []):
                dev = ip_json(["addr", "show", "dev", address["dev"]], ns)
                have = ["%s/%s" % (a["local"], a["prefixlen"]) for d in dev for a in d.get("addr_info", [])]
                self.expect(address["address"] in have, "address %s missing on %s in %s" % (address["address"], address["dev"], where))
            for route in scope.get("routes", []):
                table = str(route.get("table", "main"))
                family = "-6" if ":" in route["dst"] + (route.get("via") or "") else "-4"
                found = [r for r in ip_json([family, "route", "show", "table", table], ns) if r.get("dst") == route["dst"]]
                self.expect(bool(found), "route %s missing in %s" % (route["dst"], where))
                if found and route.get("via"):
                    self.expect(found[0].get("gateway") == route["via"], "route %s in %s goes via %s, not %s"
                                % (route["dst"], where, found[0].get("gateway"), route["via"]))
            for key, value in (scope.get("sysctls") or {}).items():
                self.expect(sysctl(ns, key) == str(value), "sysctl %s in %s is %s, not %s" % (key, where, sysctl(ns, key), value))
            for table in scope.get("iptables", []):
                tool = "ip6tables" if table.get("ip_version") == "ipv6" else "iptables"
                for chain in table.get("chains", []):
                    for rule in chain.get("rules", []):
                        checked = run([tool, "-t", table["table"], "-C", chain["name"]] + rule.split(), ns)
                        self.expect(checked.returncode == 0, "%s rule '%s' missing in %s %s of %s"
                                    % (tool, rule, table["table"], chain["name"], where))
            self.verify_rules(ns, scope.get("rules", []))
            for table in scope.get("nftables", []):
                listed = run(["nft", "-j", "list", "table", table.get("family", "inet"), table["table"]], ns)
                self.expect(listed.returncode == 0, "nftables table %s %s missing in %s"
                            % (table.get("family", "inet"), table["table"], where))
        for ping in pings:
            self.expect(answered(ping), "no reply from %s to %s" % (ping["to"], ping.get("from") or "the root namespace"))

    def verify_rules(self, ns: Optional[str], rules: List[Dict[str, Any]]) -> None:
        for rule in rules:
            family = "-6" if ":" in (rule.get("from") or "") + (rule.get("to") or "") else "-4"
            found = [r for r in ip_json([family, "rule", "show"], ns) if r.get("priority") == rule["priority"]]
            self.expect(bool(found) and str(found[0].get("table")) == str(rule["table"]),
                        "rule %s missing in %s (or not to table %s)" % (rule["priority"], ns or "the root namespace", rule["table"]))

    def verify_link(self, decl: Dict[str, Any]) -> None:
        ns = decl.get("netns")
        link = self.link(ns, decl["name"])
        if link is None:
            return
        info = ip_json(["link", "show", "dev", decl["name"]], ns)[0].get("linkinfo") or {}
        kind = info.get("info_kind")
        # a moved host device keeps its own kind (here nspawn's veth); wireguard-go's link is a TUN
        expected = {"device": kind, "wireguard": kind if kind in ("wireguard", "tun") else "wireguard"}.get(decl["type"], decl["type"])
        self.expect(kind == expected, "%s is a %s, not a %s" % (decl["name"], kind, decl["type"]))
        if decl["type"] == "device" and (decl.get("match") or {}).get("mac"):
            self.expect(link.get("address") == decl["match"]["mac"].lower(), "%s has MAC %s, not %s"
                        % (decl["name"], link.get("address"), decl["match"]["mac"]))
        if decl["type"] == "vxlan":
            self.expect((info.get("info_data") or {}).get("id") == decl["id"], "%s has not the vxlan id %s" % (decl["name"], decl["id"]))
        self.expect(("UP" in link["flags"]) == decl.get("up", True), "%s is not %s" % (decl["name"], "up" if decl.get("up", True) else "down"))
        if decl.get("mtu"):
            self.expect(link["mtu"] == decl["mtu"], "%s has MTU %s, not %s" % (decl["name"], link["mtu"], decl["mtu"]))
        if decl["type"] == "veth":
            peer = self.link(decl.get("peer_netns"), decl["peer"])
            if peer is not None:
                self.expect(link.get("link_index") == peer["ifindex"] and peer.get("link_index") == link["ifindex"],
                            "%s and %s are not each other's peers" % (decl["name"], decl["peer"]))
                self.expect(("UP" in peer["flags"]) == decl.get("peer_up", True), "%s is not up" % decl["peer"])
                if decl.get("peer_mtu"):
                    self.expect(peer["mtu"] == decl["peer_mtu"], "%s has MTU %s" % (decl["peer"], peer["mtu"]))
        if decl["type"] == "bridge":
            for port in decl.get("ports", []):
                found = self.link(ns, port)
                self.expect(bool(found) and found.get("master") == decl["name"], "%s is not a port of %s" % (port, decl["name"]))


def answered(ping: Dict[str, Any]) -> bool:
    for _attempt in range(PING_TRIES):
        if run(["ping", "-c", "1", "-W", "2", ping["to"]], ping.get("from")).returncode == 0:
            return True
    return False


def service_pid(unit: str) -> int:
    # MainPID is one of systemctl show's documented properties; --value prints only the value.
    shown = run(["systemctl", "show", "--property=MainPID", "--value", "--", unit]).stdout.strip()
    return int(shown) if shown.isdigit() else 0


def nameservers_seen(pid: int) -> List[str]:
    """The nameservers in /etc/resolv.conf as the process sees it (its own mount namespace)."""
    with open("/proc/%d/root/etc/resolv.conf" % pid) as resolv:
        return [words[1] for words in (line.split() for line in resolv) if len(words) > 1 and words[0] == "nameserver"]


def verify_services(verifier: Verifier, spec: Dict[str, Any], web: List[Dict[str, Any]]) -> None:
    """Each service of the spec runs in its namespace and sees its DNS files; each web entry answers
    from the root namespace (this process's) on its namespace address, through the topology's links."""
    declared = {ns["name"]: ns for ns in spec.get("namespaces", [])}
    for service in spec.get("services", []):
        unit, netns = service["unit"], service["netns"]
        active = run(["systemctl", "is-active", "--", unit]).stdout.strip()
        verifier.expect(active == "active", "%s is %s, not active" % (unit, active))
        pid = service_pid(unit)
        verifier.expect(pid > 0, "%s has no main process" % unit)
        if pid <= 0:
            continue
        inode, expected = os.stat("/proc/%d/ns/net" % pid).st_ino, os.stat("/run/netns/%s" % netns).st_ino
        verifier.expect(inode == expected, "%s (pid %d) runs in network namespace %d, not %s's %d" % (unit, pid, inode, netns, expected))
        wanted = [str(server) for server in declared[netns].get("nameservers", [])]
        if service.get("dns", True) and wanted:
            seen = nameservers_seen(pid)
            verifier.expect(seen == wanted, "%s sees nameservers %s in /etc/resolv.conf, not %s's %s" % (unit, seen, netns, wanted))
        # the unit with the role's drop-in, and the topology's unit it binds to
        units = [unit, "linuxnet-netns-%s.service" % spec["name"]]
        analyzed = run(["systemd-analyze", "verify", "--man=no", "--"] + units)
        verifier.expect((analyzed.returncode, analyzed.stderr) == (0, ""),
                        "systemd-analyze verify %s: exit %d: %s" % (" ".join(units), analyzed.returncode, analyzed.stderr.strip()))
    for entry in web:
        url = "http://%s:%d/" % (entry["address"], entry["port"])
        body = fetch(url, time.monotonic() + WEB_PATIENCE)
        verifier.expect(body == entry["body"], "%s answered %r, not %r" % (url, body, entry["body"]))


def fetch(url: str, deadline: float) -> str:
    """The page, asked again until ``deadline``: a service just restarted into a re-created namespace
    binds its port a moment after systemd started it, and the root namespace's neighbour entry of
    the address may still name the old namespace's MAC until the kernel probes it again."""
    # no proxy from the environment: the address is the namespace's, reached through the veth
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(url, timeout=5) as response:
                return response.read().decode()
        except OSError as error:
            if time.monotonic() >= deadline:
                return "no answer: %s" % error
        time.sleep(0.5)


def main(argv: List[str]) -> int:
    if argv[:1] == ["dump"]:
        json.dump(dump(), sys.stdout, indent=1, sort_keys=True)
        return 0
    if argv[:1] == ["verify"] and len(argv) == 3:
        with open(argv[1]) as spec, open(argv[2]) as pings:
            verifier = Verifier()
            verifier.verify(json.load(spec), json.load(pings))
        json.dump({"checks": verifier.checks, "failures": verifier.failures}, sys.stdout, indent=1)
        return 1 if verifier.failures else 0
    if argv[:1] == ["services"] and len(argv) == 3:
        with open(argv[1]) as spec, open(argv[2]) as web:
            verifier = Verifier()
            verify_services(verifier, json.load(spec), json.load(web))
        json.dump({"checks": verifier.checks, "failures": verifier.failures}, sys.stdout, indent=1)
        return 1 if verifier.failures else 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
