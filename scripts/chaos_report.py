"""Renders the figures the chaos scenarios recorded (one JSON line each, see
tests/suites/chaos.rs) as a Markdown table, and puts it into
docs/reliability.md between its `chaos-figures` markers.

    chaos_report.py FIGURES.jsonl docs/reliability.md --command "make chaos" --elapsed 412
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import os
import re
import subprocess
import sys

BEGIN = "<!-- chaos-figures:begin -->"
END = "<!-- chaos-figures:end -->"

# scenario → (title, target, how to show the measured figures)
ROWS = {
    "sigkill": (
        "1. SIGKILL at random moments",
        "every live MovieApp Ready; exactly 3 tables, 2 queues, 1 topic, 1 subscription per live uid; nothing for deleted ones",
        lambda f: (
            f"{f['rounds']} rounds; {f['created']} created, {f['updates']} updates, {f['deleted']} deleted "
            f"({f['kills_within_500ms_of_start']} kills within 0.5 s of start); "
            f"{f['live']} live own {f['tables']} tables, {f['queues']} queues, {f['topics']} topics, no orphan; "
            f"converged {f['converge_after_last_kill_s']:.1f} s after the last restart"
        ),
    ),
    "aws-faults": (
        "2. AWS faults on 30 % of requests",
        "all Ready; request rate ≤ the `--aws-max-rps` bound; reconciles ≤ resync + backoff rate",
        lambda f: (
            f"{f['apps']} MovieApps Ready in {f['converge_s']:.1f} s through "
            f"{f['injected']['throttled']} throttled, {f['injected']['server_error']} 5xx, "
            f"{f['injected']['hung']} hung, {f['injected']['reset']} reset; "
            f"{f['request_rate']:.1f} req/s against a bound of {f['rate_bound']:.0f}; "
            f"{f['reconciles_in_window']:.0f} reconciles in {f['window_s']:.0f} s (bound {f['reconcile_bound']:.0f})"
        ),
    ),
    "apiserver-restart": (
        "3. kube-apiserver restarted mid-run",
        "the same operator process converges; a deleted child is recreated through the watch",
        lambda f: (
            f"restart took {f['apiserver_restart_s']:.1f} s; {f['apps']} MovieApps Ready "
            f"{f['converge_after_restart_s']:.1f} s after it (resync 10 min, so by watches); "
            f"Deployment recreated in {f['deployment_recreated_s']:.2f} s"
        ),
    ),
    "moto-state-lost": (
        "4. moto restarted, state lost",
        "noticed at the next resync; everything recreated; `Recreated` Events on every MovieApp",
        lambda f: (
            f"{f['apps']} MovieApps, resync {f['resync_s']} s: all resources back "
            f"{f['all_recreated_after_s']:.1f} s after the restart; {f['recreated_events']} Recreated Events"
        ),
    ),
    "tmdb-outage": (
        "5. TMDB outage under api-worker load",
        "no 5xx for cached ids; fresh answers once TMDB is back",
        lambda f: (
            f"{f['requests']} requests, {f['requests_during_outage']} during the outage "
            f"({f['served_stale_during_outage']} served stale), {f['non_2xx']} non-2xx; "
            f"p99 {f['p99_ms_before']:.1f} ms before, {f['p99_ms_during_outage']:.1f} ms during, "
            f"{f['p99_ms_after']:.1f} ms after; TMDB reachable again after {f['recovered_after_s']:.2f} s"
        ),
    ),
    "leader-kill": (
        "6. Leader SIGKILLed under load",
        "standby leads within 15 s; each resource created by exactly one request",
        lambda f: (
            f"{f['apps']} MovieApps, killed after {f['tables_created_when_killed']} tables; takeover "
            f"{f['takeover_s']:.1f} s; create requests "
            + ", ".join(f"{op} {n}" for op, n in f["create_requests"].items())
        ),
    ),
    "leader-cut-off": (
        "8. Leader cut off from the API server",
        "no AWS request by the cut-off replica from 1 s after its renew deadline; standby leads within 15 s + 2 s; drift repaired by the standby",
        lambda f: (
            f"takeover {f['takeover_s']:.1f} s after the cut; the cut-off replica sent {f['cut_off_aws_requests_before_deadline']} AWS requests "
            f"before its deadline, {f['cut_off_aws_requests_after_deadline']} after ({f['cut_off_aws_writes_after_deadline']} writes); "
            f"drift repaired by the standby {f['repaired_after_drift_s']:.1f} s after it was made"
        ),
    ),
    "leader-paused": (
        "9. Leader paused (SIGSTOP) past its Lease",
        "after SIGCONT, no AWS request, Event or Lease write by the old leader until it leads again; the drift it would repair stays",
        lambda f: (
            f"paused {f['paused_s']:.1f} s (takeover {f['takeover_s']:.1f} s); after SIGCONT {f['aws_requests_after_resume']} AWS requests "
            f"({f['aws_writes_after_resume']} writes), {f['events_written_after_resume']} Events, {f['refused_after_resume']:.0f} requests refused by the fence; "
            f"led again {f['leads_again_after_release_s']:.1f} s after the standby released the Lease"
        ),
    ),
}


def render(lines: list[dict], command: str, elapsed: int) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    out = [
        BEGIN,
        f"Measured by `{command}` on {datetime.date.today().isoformat()} (commit {commit}), "
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"{elapsed} s for all scenarios.",
        "",
        "| scenario | asserted | measured |",
        "|---|---|---|",
    ]
    seen = set()
    # In the order of the scenario table, whatever order they ran in.
    order = list(ROWS)
    lines = sorted(lines, key=lambda l: order.index(l["scenario"]) if l["scenario"] in order else len(order))
    for line in lines:
        name = line["scenario"]
        seen.add(name)
        title, target, show = ROWS.get(name, (name, "", lambda f: json.dumps(f)))
        out.append(f"| {title} | {target} | {show(line['figures'])} |")
    missing = [ROWS[name][0] for name in ROWS if name not in seen]
    if missing:
        out.append("")
        out.append("Not measured in this run (the scenario failed or was skipped): " + "; ".join(missing))
    out.append(END)
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures")
    parser.add_argument("document")
    parser.add_argument("--command", required=True)
    parser.add_argument("--elapsed", type=int, required=True)
    args = parser.parse_args()
    with open(args.figures) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    with open(args.document) as f:
        document = f.read()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(document):
        print(f"{args.document} has no {BEGIN} … {END} section", file=sys.stderr)
        return 1
    table = render(lines, args.command, args.elapsed)
    with open(args.document, "w") as f:
        f.write(pattern.sub(lambda _: table, document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
