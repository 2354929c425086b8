"""Turn `avfrepo sync --json` into the Markdown of a pull request or refusal issue."""

import json
import sys


def main(path: str) -> None:
    report = json.load(open(path))
    out = ["## avfrepo sync", ""]
    for name, info in report.get("upstreams", {}).items():
        out.append(f"- upstream **{name}**: {info.get('version')} `{(info.get('commit') or '')[:12]}`"
                   + (f" ({info['note']})" if info.get("note") else ""))
    out += ["", "| package | action | old | new | reasons / problems |", "|---|---|---|---|---|"]
    for p in report.get("packages", []):
        notes = "; ".join(p.get("reasons", []) + [f"**refused**: {x}" for x in p.get("problems", [])])
        out.append(f"| {p['name']} | {p['action']} | {p.get('old') or ''} | {p.get('new') or ''} | {notes} |")
    for prob in report.get("problems", []):
        out.append(f"\n**refused**: {prob}")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
