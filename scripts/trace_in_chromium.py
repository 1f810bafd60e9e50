#!/usr/bin/env python3
"""Opens a `--trace-json` file in a real browser (headless Chromium) and reports what the
browser's own JSON parser and a few lines of JavaScript see in it: the number of events by
phase, the named tracks, and complete events that do not nest on their track (which the
trace viewers cannot draw). The Perfetto UI is not reachable offline, so this checks the file
the way a viewer would read it rather than rendering it in one.

Usage: trace_in_chromium.py TRACE.json [--chromium PATH]
Exits non-zero when the browser cannot parse the file or finds slices that do not nest.
The page is written to a temporary directory that is removed afterwards.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><pre id="out">not run</pre>
<script id="trace" type="application/json">%s</script>
<script>
try {
  const t = JSON.parse(document.getElementById('trace').textContent);
  const phases = {}, tracks = new Set(), byTrack = {};
  for (const e of t.traceEvents) {
    phases[e.ph] = (phases[e.ph] || 0) + 1;
    if (e.ph === 'M' && e.name === 'thread_name') tracks.add(e.pid + '/' + e.tid + ' ' + e.args.name);
    if (e.ph === 'X') (byTrack[e.pid + '/' + e.tid] = byTrack[e.pid + '/' + e.tid] || []).push([e.ts, e.ts + e.dur]);
  }
  let bad = 0;
  for (const k in byTrack) {
    const s = byTrack[k].sort((a, b) => a[0] - b[0] || b[1] - a[1]), stack = [];
    for (const x of s) {
      while (stack.length && stack[stack.length - 1][1] <= x[0] + 1e-3) stack.pop();
      if (stack.length && x[1] > stack[stack.length - 1][1] + 1e-3) bad++;
      stack.push(x);
    }
  }
  document.getElementById('out').textContent = 'RESULT ' + JSON.stringify(
    {events: t.traceEvents.length, phases: phases, tracks: [...tracks].sort(), improperly_nested: bad,
     displayTimeUnit: t.displayTimeUnit});
} catch (err) {
  document.getElementById('out').textContent = 'ERROR ' + err;
}
</script></body></html>
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    with open(args.trace, encoding="utf-8") as f:
        text = f.read()
    # Inside <script> only "</" could end the element early; JSON allows escaping the slash.
    text = text.replace("</", "<\\/")
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "check.html")
        with open(page, "w", encoding="utf-8") as f:
            f.write(PAGE % text)
        run = subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              "file://" + page], capture_output=True, text=True, timeout=120)
    match = re.search(r"(RESULT|ERROR) (.*?)</pre>", run.stdout, re.S)
    if not match:
        sys.exit("chromium produced no result:\n" + run.stderr[-2000:])
    if match.group(1) == "ERROR":
        sys.exit("the browser could not read the trace: " + match.group(2))
    result = json.loads(match.group(2).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    print(json.dumps(result, indent=1))
    if result["improperly_nested"]:
        sys.exit("%d complete events do not nest on their track" % result["improperly_nested"])


if __name__ == "__main__":
    main()
