"""Print "N passed, N failed, N skipped" for a pytest JUnit XML report.

Usage: junit_counts.py REPORT LABEL TALLY -- also appends "LABEL passed failed skipped"
to TALLY, which .ci/run sums up for its closing line. Errors count as failures.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(report: Path) -> tuple[int, int, int]:
    root = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def main() -> int:
    report, label, tally = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    if not report.exists():
        print("no test report")
        return 0
    passed, failed, skipped = counts(report)
    with tally.open("a") as out:
        out.write(f"{label} {passed} {failed} {skipped}\n")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
