"""JUnit XML of an acceptance: one test case per check, fault and claim, for CI dashboards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hcisim.accept.rows import CheckRow


def junit_xml(rows: list[CheckRow], refusals: list[str], claims: list[dict[str, Any]],
              suite: str = "hcisim accept") -> str:
    cases: list[ET.Element] = []
    failures = skipped = 0
    for r in rows:
        name = f"{r.check} [{r.subject}]" if r.subject else r.check
        case = ET.Element("testcase", classname=f"accept.{r.host}", name=name)
        detail = f"expected {r.expected}; actual {r.actual}"
        if r.verdict == "fail":
            ET.SubElement(case, "failure", message=detail).text = detail
            failures += 1
        elif r.verdict == "warn":
            ET.SubElement(case, "system-out").text = f"warning: {detail}"
        cases.append(case)
    for why in refusals:
        case = ET.Element("testcase", classname="accept.faults", name=why.split(":")[0])
        ET.SubElement(case, "skipped", message=why)
        skipped += 1
        cases.append(case)
    for c in claims:
        case = ET.Element("testcase", classname="accept.claims", name=str(c.get("name")))
        detail = f"measured {c.get('measured')} {c.get('unit')}, limit {c.get('limit')}"
        if c.get("verdict") == "fail":
            ET.SubElement(case, "failure", message=detail).text = detail
            failures += 1
        elif c.get("verdict") == "n/a":
            ET.SubElement(case, "skipped", message="not applicable to this run")
            skipped += 1
        cases.append(case)
    root = ET.Element("testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                      errors="0", skipped=str(skipped))
    root.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: Path, rows: list[CheckRow], refusals: list[str],
                claims: list[dict[str, Any]]) -> None:
    path.write_text(junit_xml(rows, refusals, claims))
