"""Benchmarks: our engine against the kernel floor and against today's tools, in one run.

    python bench/run.py [--sizes 10,100,500,1000] [--repeat 3] [--repeat-at 5000=1] [--contenders floor,restore,...]
                        [--output bench/RESULTS.md]

Every contender runs as its own process; wall time and peak memory (ru_maxrss of that process and
the children it waited for) are recorded, the median of the repetitions reported, with each time's
ratio to the floor of the same run (applies -> floor apply; no-change runs and check -> floor read;
teardowns -> floor teardown). Contenders alternate within a repetition so that drift of the machine
spreads over all of them. Prints a Markdown table; with --output also writes it, the machine it ran
on and a plot of time against N (PNG, when matplotlib is installed) next to it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLLECTIONS = os.path.join(REPO, "build", "collections")
sys.path.insert(0, HERE)

import others  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from workload import topology  # noqa: E402

PY = sys.executable
RESTORE = "from ansible_collections.linuxnet.netns.plugins.module_utils._engine.cli import main; import sys; sys.exit(main())"


def timed(argv: List[str], env: Optional[Dict[str, str]] = None, ok: Tuple[int, ...] = (0,)) -> Tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process, from wait4's rusage of that very process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in ok:
            out.seek(0)
            err.seek(0)
            raise SystemExit("%s failed (%s):\n%s\n%s" % (" ".join(argv[:6]), proc.returncode,
                                                          out.read()[-2000:], err.read()[-2000:]))
    return wall, usage.ru_maxrss / 1024.0


ANSIBLE_VENV = os.path.join(REPO, ".venv-bench-ansible")  # the `ansible` package, for contender 4 only


class Workspace:
    """One contender's run at one N: its own name prefix, spec and work directory; ``firewall`` picks
    the workload (workload.FIREWALLS: W(N), W_nft(N), W_0(N))."""

    def __init__(self, size: int, firewall: str = "iptables") -> None:
        self.size = size
        self.sandbox: Optional[Sandbox] = None
        # "ln" like the tests, so that a test run beside a benchmark leaves its objects out of snapshots;
        # "z" is no hex digit, so no test run prefix ("ln" + 3 hex digits) is a prefix of ours.
        self.prefix = "lnz%s" % os.urandom(2).hex()[:3]
        self.dir = tempfile.mkdtemp(prefix="linuxnet-bench-")
        self.spec = os.path.join(self.dir, "topology.json")
        self.state = os.path.join(self.dir, "state")
        with open(self.spec, "w") as handle:
            json.dump(topology(self.prefix, size, firewall), handle)
        self.env = dict(os.environ, PYTHONPATH=COLLECTIONS, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                        ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")

    def floor(self, command: str) -> Tuple[float, float]:
        return timed([PY, os.path.join(HERE, "floor.py"), command, self.prefix, str(self.size)])

    def kernel_floor(self, command: str) -> Tuple[float, float]:
        return timed([PY, os.path.join(HERE, "kernel_floor.py"), command, self.prefix, str(self.size)])

    def ifstate(self) -> Tuple[float, float]:
        """``ifstatecli apply`` in the workspace's sandbox (made before the clock starts; nsenter's
        own ~2 ms are in the time)."""
        if self.sandbox is None:
            self.config = others.ifstate_config(self.dir, self.prefix, self.size)
            self.sandbox = Sandbox(self.prefix)
        binary = os.path.join(os.path.dirname(PY), "ifstatecli")
        return timed(self.sandbox.command([binary, "-q", "-c", self.config, "apply"]))

    def close(self) -> Tuple[float, float]:
        """Ends the workspace's sandbox, if it has one (its namespaces go with it)."""
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        return 0.0, 0.0

    def restore(self, command: str, ok: Tuple[int, ...] = (0,)) -> Tuple[float, float]:
        return timed([PY, "-c", RESTORE, command, self.spec, "--state-dir", self.state], env=self.env, ok=ok)

    def playbook(self, path: str) -> Tuple[float, float]:
        binary = os.path.join(os.path.dirname(PY), "ansible-playbook")
        return timed([binary, "-i", os.path.join(REPO, "playbooks", "inventory", "localhost.yml"), path], env=self.env)

    def module(self) -> Tuple[float, float]:
        path = os.path.join(self.dir, "apply.yml")
        with open(path, "w") as handle:
            handle.write("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                         "    - linuxnet.netns.topology:\n        topology: \"{{ lookup('file', '%s') | from_json }}\"\n"
                         "        state_dir: %s\n" % (self.spec, self.state))
        return self.playbook(path)

    def ansible_fixed_cost(self) -> Tuple[float, float]:
        """ansible-playbook with one no-op module on localhost: what any module run costs before it
        does anything (the ratio shows how much of a target ansible-playbook alone already uses)."""
        path = os.path.join(self.dir, "noop.yml")
        with open(path, "w") as handle:
            handle.write("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
        return self.playbook(path)

    def objects(self) -> Tuple[float, float]:
        return self.playbook(others.per_object_modules(self.dir, self.prefix, self.size))

    def ip_batch(self) -> Tuple[float, float]:
        return timed(others.ip_batch(self.dir, self.prefix, self.size))

    def shell(self) -> Tuple[float, float]:
        return timed(others.naive_shell(self.dir, self.prefix, self.size))

    def shell_teardown(self) -> Tuple[float, float]:
        """Tutorial order, then waits like every teardown here until the root ends are gone."""
        wall, memory = timed(others.naive_shell_teardown(self.dir, self.prefix, self.size))
        settle = self.floor("teardown")[0]
        return wall + settle, memory

    def community_general(self) -> Tuple[float, float]:
        python = os.path.join(ANSIBLE_VENV, "bin", "python")
        return timed(others.community_general(self.dir, self.prefix, self.size, python),
                     env=dict(self.env, ANSIBLE_COLLECTIONS_PATH=""))


# A step: (label, label of the floor step it is compared with, how to run it). Every contender's
# last step removes what it made (timed as a teardown, or untimed when its label starts with "(").
Step = Tuple[str, str, Callable[[Workspace], Tuple[float, float]]]
CONTENDERS: Dict[str, List[Step]] = {
    "floor": [("floor apply", "", lambda w: w.floor("apply")),
              ("floor read", "", lambda w: w.floor("read")),
              ("floor teardown", "", lambda w: w.floor("teardown"))],
    "ip-batch": [("ip -batch apply", "floor apply", lambda w: w.ip_batch()),
                 ("(teardown)", "", lambda w: w.floor("teardown"))],
    "shell": [("naive shell apply", "floor apply", lambda w: w.shell()),
              ("naive shell teardown (links first)", "floor teardown", lambda w: w.shell_teardown())],
    "community-general": [("community.general + command apply", "floor apply", lambda w: w.community_general()),
                          ("(teardown)", "", lambda w: w.floor("teardown"))],
    "module": [("topology module apply", "floor apply", lambda w: w.module()),
               ("topology module re-run (no change)", "floor read", lambda w: w.module()),
               ("(teardown)", "", lambda w: w.restore("teardown"))],
    "ansible-noop": [("ansible-playbook alone (one no-op module)", "floor read", lambda w: w.ansible_fixed_cost())],
    "objects": [("per-object modules apply", "floor apply", lambda w: w.objects()),
                ("per-object modules re-run (no change)", "floor read", lambda w: w.objects()),
                ("(teardown)", "", lambda w: w.floor("teardown"))],
    "restore": [("restore apply (boot)", "floor apply", lambda w: w.restore("apply")),
                ("restore check (no change)", "floor read", lambda w: w.restore("check")),
                ("restore apply (no change)", "floor read", lambda w: w.restore("apply")),
                ("restore teardown", "floor teardown", lambda w: w.restore("teardown"))],
    # W_nft(N): the kernel floor (bench/kernel_floor.py) and the restore program.
    "kernel-floor": [("kernel floor apply (W_nft)", "", lambda w: w.kernel_floor("apply")),
                     ("kernel floor read (W_nft)", "", lambda w: w.kernel_floor("read")),
                     ("kernel floor teardown", "", lambda w: w.floor("teardown"))],
    "restore-nft": [("restore apply (boot, W_nft)", "kernel floor apply (W_nft)", lambda w: w.restore("apply")),
                    ("restore check (no change, W_nft)", "kernel floor read (W_nft)", lambda w: w.restore("check")),
                    ("restore apply (no change, W_nft)", "kernel floor read (W_nft)", lambda w: w.restore("apply")),
                    ("restore teardown (W_nft)", "kernel floor teardown", lambda w: w.restore("teardown"))],
    # W_0(N), no firewall: ifstate (in a sandbox of its own, bench/sandbox.py) and the restore program on
    # the same workload; both against the kernel floor of W_nft(N) (its rule is ~0.2 ms of ~2.7 ms).
    "restore-w0": [("restore apply (boot, W_0)", "kernel floor apply (W_nft)", lambda w: w.restore("apply")),
                   ("restore apply (no change, W_0)", "kernel floor read (W_nft)", lambda w: w.restore("apply")),
                   ("(teardown)", "", lambda w: w.restore("teardown"))],
    "ifstate": [("ifstate apply (W_0)", "kernel floor apply (W_nft)", lambda w: w.ifstate()),
                ("ifstate apply (no change, W_0)", "kernel floor read (W_nft)", lambda w: w.ifstate()),
                ("(teardown)", "", lambda w: w.close())],
}
# The workload of each contender that does not run W(N).
FIREWALL = {"kernel-floor": "nftables", "restore-nft": "nftables", "restore-w0": "none", "ifstate": "none"}
# The largest N each contender runs at (the others take minutes per repetition there; ifstate's apply
# of W_0(100) takes 20-35 s, its no-change run 40-50 s). Only the kernel floor and the restore program
# of W_nft(N) run at N=5000.
LIMITS = {"shell": 500, "community-general": 10, "objects": 10, "ifstate": 100,
          "floor": 1000, "restore": 1000, "restore-w0": 100, "ip-batch": 1000, "module": 1000, "ansible-noop": 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-at", default="", help="other repetition counts by N, e.g. 5000=1")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--output", help="write the table (Markdown) here, and the plot beside it")
    args = parser.parse_args()
    names = [n for n in args.contenders.split(",") if n != "community-general" or _have_ansible()]
    sizes = [int(s) for s in args.sizes.split(",")]
    repeats = {size: args.repeat for size in sizes}
    repeats.update({int(k): int(v) for k, v in (pair.split("=") for pair in args.repeat_at.split(",") if pair)})
    results: Dict[Tuple[int, str], List[Tuple[float, float]]] = {}
    started = time.monotonic()
    run_all(sizes, names, repeats, results, started)
    text = table(results, names)
    print(text)
    if args.output:
        write_results(args.output, text, names, sizes, repeats, results)


def run_all(sizes: List[int], names: List[str], repeats: Dict[int, int],
            results: Dict[Tuple[int, str], List[Tuple[float, float]]], started: float) -> None:
    for size in sizes:
        runnable = [n for n in names if size <= LIMITS.get(n, size)]
        for repetition in range(repeats[size]):
            shift = repetition % len(runnable)
            for name in runnable[shift:] + runnable[:shift]:
                workspace = Workspace(size, FIREWALL.get(name, "iptables"))
                try:
                    for label, _baseline, step in CONTENDERS[name]:
                        sample = step(workspace)
                        if not label.startswith("("):
                            results.setdefault((size, label), []).append(sample)
                finally:  # its spec, state and playbooks; its kernel objects are gone with its last step
                    workspace.close()
                    shutil.rmtree(workspace.dir, ignore_errors=True)
            sys.stderr.write("N=%d repetition %d done (%.0f s)\n" % (size, repetition + 1, time.monotonic() - started))


def _have_ansible() -> bool:
    if os.path.exists(os.path.join(ANSIBLE_VENV, "bin", "ansible-playbook")):
        return True
    sys.stderr.write("community-general skipped: %s has no ansible (make bench installs it)\n" % ANSIBLE_VENV)
    return False


def _baseline(label: str) -> str:
    return next((b for steps in CONTENDERS.values() for l, b, _step in steps if l == label), "")


def table(results: Dict[Tuple[int, str], List[Tuple[float, float]]], names: List[str]) -> str:
    order = [l for n in names for l, _baseline, _step in CONTENDERS[n] if not l.startswith("(")]
    lines = ["| N | contender | median wall (s) | per namespace (ms) | peak RSS (MB) | ratio to | ratio |",
             "|---:|---|---:|---:|---:|---|---:|"]
    for (size, label), samples in sorted(results.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        baseline = _baseline(label)
        wall = statistics.median(s[0] for s in samples)
        ratio = ""
        if baseline and (size, baseline) in results:
            ratio = "%.2fx" % (wall / statistics.median(s[0] for s in results[(size, baseline)]))
        memory = statistics.median(s[1] for s in samples)
        lines.append("| %d | %s | %.3f | %.2f | %.0f | %s | %s |"
                     % (size, label, wall, 1000 * wall / size, memory, baseline, ratio))
    return "\n".join(lines)


def _version_of(argv: List[str]) -> str:
    """What ``argv`` prints as its version, "?" when it fails (the description of the machine still stands)."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    pyroute2 = _version_of([PY, "-c", "import pyroute2; print(pyroute2.__version__)"])
    iptables = _version_of(["iptables", "--version"])
    return ("%s, %d CPUs (%s), %s GiB RAM; kernel %s; Python %s, pyroute2 %s, %s"
            % (platform.node() or "?", os.cpu_count() or 0, cpu,
               round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30),
               platform.release(), platform.python_version(), pyroute2, iptables))


def write_results(path: str, text: str, names: List[str], sizes: List[int], repeats: Dict[int, int],
                  results: Dict[Tuple[int, str], List[Tuple[float, float]]]) -> None:
    skipped = ["%s above N=%d" % (n, LIMITS[n]) for n in names if n in LIMITS and max(sizes) > LIMITS[n]]
    skipped += ["%s (not asked for or not installed)" % n for n in CONTENDERS if n not in names]
    plot = os.path.splitext(path)[0] + ".png"
    drawn = draw(plot, results, names)
    with open(path, "w") as handle:
        handle.write("# Benchmark results\n\n")
        handle.write("Written by `make %s` (bench/run.py) on %s.\n\n"
                     % (os.environ.get("BENCH_TARGET", "bench"), datetime.date.today().isoformat()))
        handle.write("Machine: %s.\n\n" % machine())
        counts = sorted(set(repeats.values()), reverse=True)
        handle.write("Median of %s, contenders alternating; N = %s. Skipped: %s.\n\n"
                     % (" / ".join("%d repetitions at N=%s" % (c, ", ".join(str(s) for s in sizes if repeats[s] == c))
                                   for c in counts) if len(counts) > 1 else "%d repetitions" % counts[0],
                        ", ".join(map(str, sizes)), "; ".join(skipped) or "nothing"))
        handle.write(text + "\n")
        if drawn:
            handle.write("\n![time against N](%s)\n" % os.path.basename(plot))
        # kept by hand: W_nft, the kernel floor and ifstate; profiles, fixes and before/after numbers
        for name in ("NFTABLES_IFSTATE.md", "PROFILES.md"):
            notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
            if os.path.exists(notes):
                with open(notes) as kept:
                    handle.write("\n" + kept.read())


def phase_of(label: str) -> str:
    """The panel a contender's step is drawn in: the floor step it is compared with."""
    floor = _baseline(label) or label
    return {"floor read": "no change", "floor teardown": "teardown", "kernel floor read (W_nft)": "no change",
            "kernel floor teardown": "teardown"}.get(floor, "apply")


OURS = ("topology module", "restore", "per-object modules")
# One look per contender (not per step), so a contender reads the same in every panel; ours are solid and thick.
STYLES = {
    "floor": ("black", "--", "s"), "ip-batch": ("#8c564b", ":", "v"), "shell": ("#7f7f7f", ":", "x"),
    "community-general": ("#e377c2", ":", "D"), "module": ("#d62728", "-", "o"), "ansible-noop": ("#bcbd22", "-.", "^"),
    "objects": ("#ff7f0e", "-", "P"), "restore": ("#1f77b4", "-", "o"),
    "kernel-floor": ("black", "-.", "*"), "restore-nft": ("#2ca02c", "-", "o"), "restore-w0": ("#9467bd", "-", "d"),
    "ifstate": ("#17becf", ":", "h"),
}


def draw(path: str, results: Dict[Tuple[int, str], List[Tuple[float, float]]], names: List[str]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("matplotlib is not installed: no plot\n")
        return False
    phases = ["apply", "no change", "teardown"]
    figure, panels = plt.subplots(1, len(phases), figsize=(15, 5.5), sharey=True)
    for name in names:
        color, line, marker = STYLES.get(name, ("#17becf", "-", "o"))
        seen: Dict[str, int] = {}
        for label, _baseline, _step in CONTENDERS[name]:
            points = sorted((size, statistics.median(s[0] for s in samples))
                            for (size, l), samples in results.items() if l == label)
            if label.startswith("(") or not points:
                continue
            ours = label.startswith(OURS)
            phase = phase_of(label)
            seen[phase] = seen.get(phase, -1) + 1  # a second step of one contender in a panel: hollow markers
            axes = panels[phases.index(phase)]
            axes.plot([p[0] for p in points], [p[1] for p in points], color=color, linestyle=line, marker=marker,
                      markerfacecolor=color if not seen[phase] else "white",
                      linewidth=2.6 if ours else 1.2, markersize=6 if ours else 4, alpha=1.0 if ours else 0.8,
                      label=label)
    for axes, phase in zip(panels, phases):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_title(phase)
        axes.set_xlabel("N (namespaces)")
        axes.grid(True, which="both", alpha=0.3)
    panels[0].set_ylabel("median wall time (s)")
    handles = [h for axes in panels for h in axes.get_legend_handles_labels()[0]]
    labels = [l for axes in panels for l in axes.get_legend_handles_labels()[1]]
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.suptitle("W(N), W_nft(N) and W_0(N) per phase (ours: thick solid lines)")
    figure.tight_layout(rect=(0, 0.16, 1, 0.95))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


if __name__ == "__main__":
    main()
