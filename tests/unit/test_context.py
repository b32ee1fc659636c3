"""Per-execution cwd/env code: values with quotes, newlines and code in them arrive literally."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from icpy_kernels.runtime.context import bash_context, javascript_context, python_context

NASTY = {
    "QUOTES": "it's \"both\" `tick` $HOME $(echo pwned)",
    "NEWLINES": "line1\nline2'); import os; os._exit(3) #",
    "UNICODE": "é€ \u2028 \\ \\n",
}


def test_python_context_round_trip(tmp_path):
    ctx = python_context(str(tmp_path), NASTY)
    probe = f"import json, os\nprint(json.dumps([os.getcwd(), {{k: os.environ.get(k) for k in {list(NASTY)!r}}}]))\n"
    script = ctx.enter + probe + ctx.exit + probe
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd="/", env={"PATH": os.environ["PATH"], "UNICODE": "before"})
    inside, after = (json.loads(line) for line in out.stdout.strip("\n").split("\n"))
    assert inside == [str(tmp_path), NASTY]
    assert after == ["/", {"QUOTES": None, "NEWLINES": None, "UNICODE": "before"}]


def test_bash_context_round_trip(tmp_path):
    ctx = bash_context(str(tmp_path), NASTY)
    probe = 'printf "%s\\0" "$PWD" "${QUOTES-unset}" "${NEWLINES-unset}" "${UNICODE-unset}"\n'
    script = ctx.enter + probe + ctx.exit + probe
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         cwd="/", env={"PATH": os.environ["PATH"], "UNICODE": "before"})
    fields = out.stdout.split("\0")
    assert fields[:4] == [str(tmp_path), NASTY["QUOTES"], NASTY["NEWLINES"], NASTY["UNICODE"]]
    assert fields[4:8] == ["/", "unset", "unset", "before"]


def test_bash_context_fails_on_missing_directory():
    ctx = bash_context("/no/such/dir", {})
    result = subprocess.run(["bash", "-c", ctx.enter], capture_output=True)
    assert result.returncode != 0


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_javascript_context_round_trip(tmp_path):
    ctx = javascript_context(str(tmp_path), NASTY)
    keys = json.dumps(list(NASTY))
    probe = f"console.log(JSON.stringify([process.cwd(), Object.fromEntries({keys}.map(k => [k, process.env[k] ?? null]))]));\n"
    script = ctx.enter + probe + ctx.exit + probe
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True,
                         cwd="/", env={"PATH": os.environ["PATH"], "UNICODE": "before"})
    inside, after = (json.loads(line) for line in out.stdout.strip("\n").split("\n"))
    assert inside == [str(tmp_path), NASTY]
    assert after == ["/", {"QUOTES": None, "NEWLINES": None, "UNICODE": "before"}]
