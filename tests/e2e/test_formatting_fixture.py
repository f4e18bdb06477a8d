"""The shared formatting table (tests/fixtures/formatting.json) through format.js, the live
updates, in chromium on a page a real server served; tests/unit/test_formatting_fixture.py runs
the same table through presentation.py, the first paint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_harness import Server
from playwright.sync_api import Page

from formatting_cases import check, load

pytestmark = pytest.mark.e2e

# Imports the module the page itself loads (found next to live.js, however the server versions
# static URLs) and runs every case, decoding and encoding non-finite numbers as the table does.
RUN_ALL = """
async (text) => {
  const cases = JSON.parse(text); // as the page gets a job: a 2**63 - 1 step becomes a double
  const live = document.querySelector('script[type=module]').src;
  const f = await import(new URL('format.js', live).href);
  const special = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };
  const tagged = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) &&
    Object.keys(v).length === 1 && '$' in v;
  const decode = (v) => {
    if (Array.isArray(v)) return v.map(decode);
    if (tagged(v)) return special[v.$];
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]));
    }
    return v;
  };
  const encode = (v) => {
    if (typeof v === 'number' && !Number.isFinite(v)) {
      return { $: Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity' };
    }
    if (Array.isArray(v)) return v.map(encode);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
    }
    return v;
  };
  return cases.map(([name, args]) => {
    try {
      return { ok: encode(f[name](...decode(args))) };
    } catch (error) {
      return { error: `${name}: ${error}` };
    }
  });
}
"""


def test_format_js_gives_the_fixture_text(page: Page, idle_server: Server) -> None:
    cases = list(load())
    page.goto(idle_server.url)
    results: list[dict[str, Any]] = page.evaluate(
        RUN_ALL, json.dumps([[c.js, c.args] for c in cases])
    )
    failures = []
    for case, result in zip(cases, results, strict=True):
        try:
            assert "error" not in result, result.get("error")
            check(case, result["ok"])
        except AssertionError as failure:
            failures.append(str(failure).splitlines()[0])
    assert not failures, "\n".join(failures)
