"""The worst figures of many runs of the suite, as a Markdown table.

The abuse tests record, per test, the server's peak memory growth and the
well-behaved client's slowest call (conftest.record). With INTEROP_FIGURES
set, every run appends them to one file; this prints, per test, how many
runs there were and the worst of each figure, for the table in
docs/hardening.md ("What the attacks cost"):

    rm -f /tmp/figures.jsonl
    for run in $(seq 10); do INTEROP_FIGURES=/tmp/figures.jsonl make test || break; done
    python3 interop/figures.py /tmp/figures.jsonl

Standard library only.
"""

import json
import sys
from collections import defaultdict


def worst_by_test(lines):
    """{test id: {"runs": n, "peak": worst bytes, "slowest": worst seconds}},
    in the order the tests first appear."""
    table = defaultdict(lambda: {"runs": 0, "peak": 0, "slowest": 0.0})
    for line in lines:
        figures = json.loads(line)
        row = table[figures["test"].split("::")[-1]]
        row["runs"] += 1
        row["peak"] = max(row["peak"], figures["peak"])
        row["slowest"] = max(row["slowest"], figures["slowest"])
    return table


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as figures_file:
        table = worst_by_test(line for line in figures_file if line.strip())
    print("| test | runs | worst RSS peak growth | slowest well-behaved call |")
    print("|---|---|---|---|")
    for test, row in table.items():
        print(f"| `{test}` | {row['runs']} | {row['peak'] / 2**20:.1f} MiB | "
              f"{row['slowest'] * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
