#!/usr/bin/env python3
"""Summarise and check an Autobahn|Testsuite report (index.json).

    autobahn-summary.py REPORT_DIR/index.json --expect N [--agent NAME]
                        [--mode server|client] [--markdown FILE]

Prints the counts per behavior and per behaviorClose and every case that is not OK,
optionally writes a compact markdown summary, and exits non-zero unless
  1. the report holds exactly N cases for the agent (guards against a run where the
     testee was down and wstest still finished), and
  2. every case's behavior and behaviorClose is OK, except INFORMATIONAL, which is
     allowed only for the cases listed by --allow-informational.
"""

import argparse
import json
import os
import sys
from collections import Counter

DEFAULT_INFORMATIONAL = "7.1.6,7.13.1,7.13.2"
ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "WRONG CODE", "FAILED"]


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def ordered(counter):
    keys = [k for k in ORDER if k in counter] + sorted(k for k in counter if k not in ORDER)
    return [(k, counter[k]) for k in keys]


def one_line(text, limit=160):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", help="path to the report's index.json")
    ap.add_argument("--expect", type=int, required=True, help="number of cases the run must contain")
    ap.add_argument("--agent", help="agent to check (default: the only agent in the report)")
    ap.add_argument("--mode", default="", help="server or client (for titles only)")
    ap.add_argument("--selection", default="", help="case selection text (for the summary only)")
    ap.add_argument("--markdown", help="write a markdown summary to this file")
    ap.add_argument("--allow-informational", default=DEFAULT_INFORMATIONAL,
                    help="comma-separated cases allowed to be INFORMATIONAL (default %(default)s)")
    args = ap.parse_args()

    try:
        with open(args.index, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn-summary: cannot read %s: %s" % (args.index, e), file=sys.stderr)
        return 1

    agents = sorted(index)
    agent = args.agent
    if agent is None:
        if len(agents) != 1:
            print("autobahn-summary: report has agents %s; pass --agent" % agents, file=sys.stderr)
            return 1
        agent = agents[0]
    if agent not in index:
        print("autobahn-summary: agent %r not in report (agents: %s)" % (agent, agents), file=sys.stderr)
        return 1
    others = [a for a in agents if a != agent]
    if others:
        print("autobahn-summary: note: ignoring other agents in the report: %s" % others)

    cases = index[agent]
    allowed_info = {c.strip() for c in args.allow_informational.split(",") if c.strip()}
    report_dir = os.path.dirname(os.path.abspath(args.index))

    behavior = Counter()
    behavior_close = Counter()
    problems = []  # (case, behavior, behaviorClose, close code, allowed?, detail)
    for cid in sorted(cases, key=case_key):
        c = cases[cid]
        b, bc = c.get("behavior", "?"), c.get("behaviorClose", "?")
        behavior[b] += 1
        behavior_close[bc] += 1
        if b == "OK" and bc == "OK":
            continue
        allowed = all(v == "OK" or (v == "INFORMATIONAL" and cid in allowed_info) for v in (b, bc))
        detail = ""
        rf = c.get("reportfile")
        if rf:
            try:
                with open(os.path.join(report_dir, rf), encoding="utf-8") as f:
                    rep = json.load(f)
                parts = []
                if b != "OK":
                    parts.append(rep.get("result", ""))
                if bc != "OK":
                    parts.append(rep.get("resultClose", ""))
                detail = one_line(" / ".join(p for p in parts if p))
            except (OSError, ValueError):
                pass
        problems.append((cid, b, bc, c.get("remoteCloseCode"), allowed, detail))

    failures = []
    if len(cases) != args.expect:
        failures.append("report has %d cases for agent %r, expected %d" % (len(cases), agent, args.expect))
    if args.expect <= 0:
        failures.append("expected case count must be > 0")
    bad = [p for p in problems if not p[4]]
    if bad:
        failures.append("%d case(s) are neither OK nor allowed INFORMATIONAL" % len(bad))

    title = "Autobahn %s results for %s" % (args.mode, agent) if args.mode else "Autobahn results for %s" % agent

    # ---- console
    print("== %s: %d cases (expected %d)" % (title, len(cases), args.expect))
    rows = sorted(set(behavior) | set(behavior_close), key=lambda k: (ORDER.index(k) if k in ORDER else 99, k))
    print("  %-15s %9s %14s" % ("result", "behavior", "behaviorClose"))
    for k in rows:
        print("  %-15s %9d %14d" % (k, behavior[k], behavior_close[k]))
    if problems:
        print("  cases that are not OK:")
        for cid, b, bc, code, allowed, detail in problems:
            print("    %-9s %-13s close=%-13s code=%-5s %s%s" % (
                cid, b, bc, code, "(allowed) " if allowed else "", detail))
    for msg in failures:
        print("FAIL: " + msg)
    if not failures:
        print("PASS: all %d cases OK (allowed INFORMATIONAL: %s)" % (len(cases), ", ".join(sorted(allowed_info, key=case_key))))

    # ---- markdown
    if args.markdown:
        out = ["# %s" % title, ""]
        if args.selection:
            out += ["Selection: `%s`" % args.selection, ""]
        out += ["Cases: %d (expected %d). Verdict: **%s**" % (len(cases), args.expect, "PASS" if not failures else "FAIL"), ""]
        out += ["| result | behavior | behaviorClose |", "| --- | ---: | ---: |"]
        out += ["| %s | %d | %d |" % (k, behavior[k], behavior_close[k]) for k in rows]
        out.append("")
        if problems:
            out += ["## Cases that are not OK", "", "| case | behavior | behaviorClose | close code | allowed | detail |",
                    "| --- | --- | --- | --- | --- | --- |"]
            for cid, b, bc, code, allowed, detail in problems:
                out.append("| %s | %s | %s | %s | %s | %s |" % (
                    cid, b, bc, code, "yes" if allowed else "**no**", detail.replace("|", "\\|")))
            out.append("")
        for msg in failures:
            out.append("- FAIL: %s" % msg)
        if failures:
            out.append("")
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write("\n".join(out))
        print("summary written to %s" % args.markdown)

    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
