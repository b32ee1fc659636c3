"""``icpy run`` on the tours in notebooks/ and on small notebooks made here, as subprocesses."""

from __future__ import annotations

import shutil
import signal

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .clitools import REPO, TOKEN, ServerProcess, clean_env, icpy

NOTEBOOKS = REPO / "notebooks"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def text_of(cell) -> str:
    """Everything a cell showed, as one string (stream text, text/* data, error names)."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        else:
            parts.extend(v for k, v in out.data.items() if k.startswith("text/"))
    return "\n".join(parts)


def run_tour(name: str, tmp_path) -> nbformat.NotebookNode:
    out = tmp_path / f"{name}.out.ipynb"
    proc = icpy("run", str(NOTEBOOKS / f"{name}.ipynb"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    # Progress: one line per code cell when stderr is not a terminal.
    cells = code_cells(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4))
    assert f"[{len(cells)}/{len(cells)}] cell " in proc.stderr
    assert "(allowed)" in proc.stderr  # the tour's last cell is tagged raises-exception
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    # One session: every code cell ran once, in order.
    assert [c.execution_count for c in code_cells(nb)] == list(range(1, len(cells) + 1))
    return nb


def test_the_committed_notebooks_are_valid_and_have_no_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.nbformat == 4
        for cell in code_cells(nb):
            assert cell.outputs == [] and cell.execution_count is None, path.name


def test_python_tour(tmp_path):
    cells = code_cells(run_tour("python-tour", tmp_path))
    assert "counter is 6" in text_of(cells[1])
    result = [o for o in cells[1].outputs if o.output_type == "execute_result"]
    assert result[0].data["text/plain"] == "42" and result[0].execution_count == 2
    streams = {o.name: o.text for o in cells[2].outputs if o.output_type == "stream"}
    assert streams == {"stdout": "tick 0\ntick 1\ntick 2\n", "stderr": "this line goes to stderr\n"}
    displays = [o for o in cells[3].outputs if o.output_type == "display_data"]
    assert "<b>bold</b>" in displays[0].data["text/html"]
    assert displays[1].data["text/markdown"] == "*Markdown* too"
    assert "done" in displays[2].data["text/plain"]  # update_display_data replaced it in place
    assert cells[-1].outputs[-1].output_type == "error"
    assert cells[-1].outputs[-1].ename == "ZeroDivisionError"


def test_javascript_tour(tmp_path):
    cells = code_cells(run_tour("javascript-tour", tmp_path))
    assert "counter is 6" in text_of(cells[1]) and "42" in text_of(cells[1])
    assert "tick 2" in text_of(cells[2]) and "this line goes to stderr" in text_of(cells[2])
    data = [o.data for o in cells[3].outputs if o.output_type == "display_data"]
    assert data[0]["text/html"] == "<b>bold</b> from <code>display.html</code>"
    assert data[2]["application/json"] == {"language": "javascript", "answer": 42}
    assert cells[-1].outputs[-1].ename == "RangeError"


def test_bash_tour(tmp_path):
    cells = code_cells(run_tour("bash-tour", tmp_path))
    assert text_of(cells[1]) == "hello, world\nstill in /tmp\n"  # variables, functions, cwd kept
    assert "tick 3" in text_of(cells[2])
    assert text_of(cells[3]) == "APPLE\nFIG\nPEAR\n"
    assert cells[-1].outputs[-1].output_type == "error"


def small_notebook(path, *sources: str, kernel: str = "python3"):
    nb = new_notebook(metadata={"kernelspec": {"name": kernel, "display_name": kernel}})
    nb.cells = [new_markdown_cell("a test"), *(new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)
    return path


def test_run_stops_at_the_first_error_unless_allowed(tmp_path):
    src = small_notebook(tmp_path / "errors.ipynb", "x = 1", "x / 0", "print('after', x)")
    proc = icpy("run", str(src))
    assert proc.returncode == 1
    assert "cell 3 failed: ZeroDivisionError" in proc.stderr
    # Without -o: NAME.out.ipynb beside the input, written even though the run stopped.
    cells = code_cells(nbformat.read(tmp_path / "errors.out.ipynb", as_version=4))
    assert cells[1].outputs[0].ename == "ZeroDivisionError"
    assert cells[2].outputs == [] and cells[2].execution_count is None

    proc = icpy("run", str(src), "--inplace", "--allow-errors")
    assert proc.returncode == 0, proc.stderr
    cells = code_cells(nbformat.read(src, as_version=4))
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert cells[2].outputs[0].text == "after 1\n"


def test_run_timeout_exits_124_and_writes_to_stdout(tmp_path):
    src = small_notebook(tmp_path / "slow.ipynb", "echo start", "sleep 60", "echo never",
                         kernel="icpy-bash")
    proc = icpy("run", str(src), "--timeout-per-cell", "1", "-o", "-")
    assert proc.returncode == 124
    assert "cell 3 timed out" in proc.stderr
    nb = nbformat.reads(proc.stdout, as_version=4)
    nbformat.validate(nb)
    assert [c.execution_count for c in code_cells(nb)][2] is None


def test_unknown_kernel_exits_2(tmp_path):
    src = small_notebook(tmp_path / "nokernel.ipynb", "1", kernel="no-such-kernel")
    proc = icpy("run", str(src))
    assert proc.returncode == 2
    assert "kernel:no-such-kernel" in proc.stderr
    assert not (tmp_path / "nokernel.out.ipynb").exists()


@pytest.fixture(scope="module")
def server():
    server = ServerProcess()
    yield server
    code, left = server.stop(signal.SIGTERM)
    assert code == 0 and not left


def test_websocket_client_notebook_against_a_running_server(server, tmp_path):
    out = tmp_path / "ws.out.ipynb"
    proc = icpy("run", "--local", str(NOTEBOOKS / "websocket-client.ipynb"), "-o", str(out),
                "-e", "ICPY_URL", "-e", "ICPY_TOKEN",
                env=clean_env(ICPY_URL=server.url, ICPY_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    shown = "\n".join(text_of(c) for c in code_cells(nb))
    assert "welcome - languages: python" in shown
    assert "[stdout] line 0" in shown and "-> completed" in shown
    assert "'42'" in shown  # the named session kept x between executions
    assert "('failed', 'ZeroDivisionError')" in shown


def test_run_on_a_server(server, tmp_path):
    src = tmp_path / "bash-tour.ipynb"
    shutil.copy(NOTEBOOKS / "bash-tour.ipynb", src)
    proc = icpy("run", str(src), env=clean_env(ICPY_URL=server.url, ICPY_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr
    cells = code_cells(nbformat.read(tmp_path / "bash-tour.out.ipynb", as_version=4))
    assert text_of(cells[1]) == "hello, world\nstill in /tmp\n"
