"""Regenerate the tour notebooks (committed without outputs): ``python notebooks/generate.py``.

Run them with ``icpy run notebooks/<name>.ipynb``; tests/integration/test_notebooks.py does.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

KERNELS = {
    "python": ({"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
               {"name": "python", "file_extension": ".py"}),
    "javascript": ({"name": "icpy-javascript", "display_name": "JavaScript (Node.js)",
                    "language": "javascript"},
                   {"name": "javascript", "file_extension": ".js"}),
    "bash": ({"name": "icpy-bash", "display_name": "Bash", "language": "bash"},
             {"name": "bash", "file_extension": ".sh"}),
}


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *, raises: bool = False) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if raises:
        # nbclient's convention, which `icpy run` follows: this cell is expected to fail.
        cell.metadata["tags"] = ["raises-exception"]
    return cell


def notebook(language: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    kernelspec, language_info = KERNELS[language]
    for i, cell in enumerate(cells, 1):
        cell.id = f"cell-{i}"  # stable ids: regenerating does not churn the diff
    nb = new_notebook(cells=cells, metadata={"kernelspec": kernelspec, "language_info": language_info})
    nbformat.validate(nb)
    return nb


PYTHON_TOUR = [
    md("""
# Python tour

One kernel session runs every cell, in order: what a cell defines, later cells see.
Run it with `icpy run notebooks/python-tour.ipynb`.
"""),
    md("## State across cells"),
    code("""
counter = 0

def bump(n=1):
    global counter
    counter += n
    return counter
"""),
    code("""
bump()
bump(5)
print("counter is", counter)
counter * 7
"""),
    md("## Streaming\nOutput arrives as it is printed, not when the cell ends (watch it with `icpy exec`)."),
    code("""
import sys
import time

for i in range(3):
    print(f"tick {i}", flush=True)
    time.sleep(0.1)
print("this line goes to stderr", file=sys.stderr)
"""),
    md("## Rich output\nDisplays carry several representations; a notebook shows the richest one."),
    code("""
from IPython.display import HTML, Markdown, display

display(HTML("<b>bold</b> from <code>IPython.display.HTML</code>"))
display(Markdown("*Markdown* too"))
handle = display("working...", display_id=True)
handle.update("done (this display was updated in place)")
"""),
    code("""
{"language": "python", "answer": 42, "squares": [n * n for n in range(5)]}
"""),
    md("## Errors\nA failing cell is an `error` output with its traceback; this one is tagged "
       "`raises-exception`, so `icpy run` keeps going."),
    code("""
def divide(a, b):
    return a / b

divide(1, 0)
""", raises=True),
]

JAVASCRIPT_TOUR = [
    md("""
# JavaScript tour

Node.js behind the `icpy-javascript` kernel: top-level `let`/`const`/functions persist across
cells, top-level `await` works, and a `display` helper emits rich output.
"""),
    md("## State across cells"),
    code("""
let counter = 0;
function bump(n = 1) {
  counter += n;
  return counter;
}
"""),
    code("""
bump();
bump(5);
console.log('counter is', counter);
counter * 7
"""),
    md("## Streaming and top-level await"),
    code("""
for (let i = 0; i < 3; i++) {
  console.log(`tick ${i}`);
  await new Promise((resolve) => setTimeout(resolve, 100));
}
console.error('this line goes to stderr');
"""),
    md("## Rich output with `display`"),
    code("""
display.html('<b>bold</b> from <code>display.html</code>');
display.markdown('*Markdown* too');
display.json({ language: 'javascript', answer: 42 });
"""),
    code("""
({ language: 'javascript', answer: 42, squares: [0, 1, 2, 3, 4].map((n) => n * n) })
"""),
    md("## Errors\nA thrown error is an `error` output; this cell is tagged `raises-exception`."),
    code("""
function divide(a, b) {
  if (b === 0) throw new RangeError('division by zero');
  return a / b;
}
divide(1, 0);
""", raises=True),
]

BASH_TOUR = [
    md("""
# Bash tour

One long-lived bash process behind the `icpy-bash` kernel: variables, functions and the
working directory persist across cells; output streams line by line.
"""),
    md("## State across cells"),
    code("""
GREETING=hello
greet() { echo "$GREETING, $1"; }
cd /tmp
"""),
    code("""
greet world
echo "still in $(pwd)"
"""),
    md("## Streaming, stderr and pipes"),
    code("""
for i in 1 2 3; do
  echo "tick $i"
  sleep 0.1
done
echo "this line goes to stderr" >&2
"""),
    code("""
printf 'pear\\napple\\nfig\\n' | sort | tr a-z A-Z
"""),
    md("## Errors\nA nonzero exit status fails the cell; this one is tagged `raises-exception`."),
    code("""
ls /no/such/directory
""", raises=True),
]

WEBSOCKET_CLIENT = [
    md("""
# Talking to `icpy serve` over the WebSocket

What a front end does: connect to `/ws` with the token, read the `welcome`, send
`execute_streaming`, and print each `execution_update` as it arrives.

Start a server first (`icpy serve`, it prints its URL and token), then set `ICPY_URL`
(e.g. `ws://127.0.0.1:8765/ws`) and `ICPY_TOKEN` in the notebook's environment. From the
command line: `icpy run --local notebooks/websocket-client.ipynb -e ICPY_URL -e ICPY_TOKEN`.
The protocol is described in `docs/protocol.md`.
"""),
    code("""
import json
import os

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

url = os.environ.get("ICPY_URL", "ws://127.0.0.1:8765/ws")
token = os.environ["ICPY_TOKEN"]
# The token goes in a header (it could also be ?token=...).
conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}))
welcome = json.loads(await conn.read_message())
print(welcome["type"], "- languages:", ", ".join(welcome["languages"]))
"""),
    md("A small client: send one execution, print its updates live, return its result."),
    code("""
async def execute(code, language="python", **fields):
    await conn.write_message(json.dumps(
        {"type": "execute_streaming", "code": code, "language": language, **fields}))
    while True:
        event = json.loads(await conn.read_message())
        kind = event["type"]
        if kind == "execution_update":
            update = event["update"]
            if update["kind"] == "stream":
                print(f"[{update['name']}] {update['text']}", end="")
            elif update["kind"] in ("result", "display"):
                print(f"[{update['kind']}] {update['data'].get('text/plain')}")
            elif update["kind"] == "error":
                print(f"[error] {update['ename']}: {update['evalue']}")
        elif kind == "execution_result":
            print(f"-> {event['status']} in {event['execution_time']:.3f}s")
            return event
        elif kind == "error":
            raise RuntimeError(f"{event['code']}: {event['message']}")
"""),
    code("""
result = await execute("for i in range(3):\\n    print('line', i)\\n6 * 7")
result["output"]
"""),
    md("Named sessions keep their state between executions (and connections)."),
    code("""
await execute("x = 20", session_id="websocket-demo")
result = await execute("x * 2 + 2", session_id="websocket-demo")
result["result"]["text/plain"]
"""),
    md("Other languages, when the server has their kernels; a failing execution is a "
       "`failed` result, not an exception."),
    code("""
if "bash" in welcome["languages"]:
    await execute("echo hello from $0; echo oops >&2", "bash")
if "javascript" in welcome["languages"]:
    await execute("console.log('hello from node', process.version)", "javascript")
failed = await execute("1 / 0")
failed["status"], failed["error"]["ename"]
"""),
    code("""
conn.close()
"""),
]

NOTEBOOKS = {
    "python-tour.ipynb": ("python", PYTHON_TOUR),
    "javascript-tour.ipynb": ("javascript", JAVASCRIPT_TOUR),
    "bash-tour.ipynb": ("bash", BASH_TOUR),
    "websocket-client.ipynb": ("python", WEBSOCKET_CLIENT),
}


def main() -> None:
    for name, (language, cells) in NOTEBOOKS.items():
        nbformat.write(notebook(language, cells), HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
