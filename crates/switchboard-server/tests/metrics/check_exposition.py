"""Reads a /metrics page with prometheus_client's parser (the Prometheus text format the server
declares, version 0.0.4) and checks that every family is valid and conventional:

- one family per name (a counter's family is its name without `_total`: a gauge may not take it);
- types counter, gauge or histogram, each with a HELP text;
- `_total` on every counter sample and on no other sample;
- names of the project (`switchboard_`) or the standard process metrics (`process_`).

Prints {"families": {name: type}, "samples": [[name, labels, value], ...]} as JSON on success
(a value that is not finite as the string "+Inf", "-Inf" or "NaN", which JSON has no number for);
exits 1 with the problems otherwise. Usage: python3 check_exposition.py FILE
"""
import json
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
problems = []
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser's own refusal
    print(f"the parser refused the page: {e}", file=sys.stderr)
    sys.exit(1)

seen = {}
for f in families:
    if f.name in seen:
        problems.append(f"two families named {f.name!r}: {seen[f.name]} and {f.type}")
    seen[f.name] = f.type
    if f.type not in ("counter", "gauge", "histogram"):
        problems.append(f"{f.name}: type {f.type!r} (declare counter, gauge or histogram)")
    if not f.documentation:
        problems.append(f"{f.name}: no HELP")
    if not re.fullmatch(r"(switchboard|process)_[a-z0-9_]+", f.name):
        problems.append(f"{f.name}: not a switchboard_ or process_ name in snake case")
    if not f.samples and f.type != "histogram":
        problems.append(f"{f.name}: declared without a sample")
    for s in f.samples:
        if f.type == "counter":
            if s.name != f.name + "_total":
                problems.append(f"counter sample {s.name} does not end in _total")
        elif s.name.endswith("_total"):
            problems.append(f"{f.type} sample {s.name} ends in _total (only counters do)")
        if f.type == "histogram" and not re.search(r"_(bucket|sum|count)$", s.name):
            problems.append(f"histogram sample {s.name}")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
def value(v):
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")


print(json.dumps({
    "families": seen,
    "samples": [[s.name, s.labels, value(s.value)] for f in families for s in f.samples],
}, allow_nan=False))
