"""The grading sandbox's pieces that need neither root nor a hub: its wire format, the files it
receives and how it unpacks them, the environment of a graded kernel, and the errors a stopped
notebook is left with.

The sandbox running notebooks as its account, limited, is tested with real accounts on a real
hub: tests/hub/test_hub_grading.py.
"""
import io
import os
import socket
import tarfile

import nbformat
import pytest
from course_hub import sandbox


# ---- the wire and the files the sandbox receives ------------------------------------------------
def test_frames_round_trip_and_refuse_what_is_too_big():
    left, right = socket.socketpair()
    with left, right:
        sandbox.send_frames(left, b"header", b"", b"x" * 70_000)
        assert sandbox.receive_frame(right, 100, "a") == b"header"
        assert sandbox.receive_frame(right, 100, "b") == b""
        with pytest.raises(sandbox.SandboxError, match=r"the files: 70000 bytes is more than the 1000 allowed"):
            sandbox.receive_frame(right, 1000, "the files")


def test_a_frame_cut_short_says_how_much_came():
    left, right = socket.socketpair()
    with right:
        with left:
            left.sendall(sandbox._FRAME.pack(10) + b"abc")
        with pytest.raises(sandbox.SandboxError, match="the notebook: the connection closed after 3 of 10 bytes"):
            sandbox.receive_frame(right, 100, "the notebook")


def test_pack_folder_takes_regular_files_only(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.npy").write_bytes(b"123")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "link").symlink_to("/etc/hostname")
    (tmp_path / "dirlink").symlink_to(tmp_path / "data")
    os.mkfifo(tmp_path / "pipe")
    with tarfile.open(fileobj=io.BytesIO(sandbox.pack_folder(tmp_path))) as archive:
        assert sorted(archive.getnames()) == ["data/x.npy", "notes.txt"]
    with pytest.raises(sandbox.SandboxError, match="exceed 5 bytes"):
        sandbox.pack_folder(tmp_path, limit=5)


def _archive(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = payload
                archive.addfile(info)
            else:
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_unpack_writes_only_regular_files_inside_the_folder(tmp_path):
    target = tmp_path / "scratch"
    target.mkdir()
    archive = _archive([
        ("a1.ipynb", tarfile.REGTYPE, b"{}"),
        ("data/w.npy", tarfile.REGTYPE, b"weights"),
        ("/etc/evil", tarfile.REGTYPE, b"x"),
        ("../outside", tarfile.REGTYPE, b"x"),
        ("data/../../outside2", tarfile.REGTYPE, b"x"),
        ("link", tarfile.SYMTYPE, "/etc/shadow"),
    ])
    assert sorted(sandbox.unpack(archive, target)) == ["a1.ipynb", "data/w.npy"]
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == ["a1.ipynb", "data", "data/w.npy"]
    assert not (tmp_path / "outside").exists() and not (tmp_path / "outside2").exists()
    with pytest.raises(sandbox.SandboxError, match="exceed 3 bytes"):
        sandbox.unpack(_archive([("big", tarfile.REGTYPE, b"1234")]), tmp_path / "other", limit=3)


def test_the_kernels_environment_carries_nothing_of_the_callers(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    env = sandbox.kernel_environment(tmp_path, "sandboxer")
    assert "JUPYTERHUB_API_TOKEN" not in env and "PYTHONPATH" not in env
    assert env["HOME"] == str(tmp_path) and env["USER"] == "sandboxer"
    assert env["PYTHONSAFEPATH"] == "1" and env["OPENBLAS_NUM_THREADS"] == "1"


def test_the_worker_gets_no_hub_variables():
    env = sandbox.worker_environment({"PATH": "/bin", "PYTHONPATH": "/x", "JUPYTERHUB_SERVICE_NAME": "grading-sandbox",
                                      "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"})
    assert env == {"PATH": "/bin", "PYTHONPATH": "/x"}


# ---- what a stopped notebook leaves ---------------------------------------------------------------
def _notebook(*cells):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbformat.v4.new_code_cell(c)
                      for c in cells]
    return notebook


@pytest.mark.parametrize("reason, first_error", [
    ("time limit", "ran out of its time limit (30 s)"),
    ("kernel died", "the kernel died"),
    ("error: RuntimeError: Kernel died before replying to kernel_info", "could not be run"),
])
def test_every_cell_from_the_stopped_one_on_gets_an_error(reason, first_error):
    notebook = _notebook("a = 1", "md:text", "while True: pass", "md:more", "assert a == 1", "b = 2")
    notebook.cells[0].outputs = []
    sandbox.mark_unfinished(notebook, 2, reason, 30)
    errors = [[o for o in cell.get("outputs", []) if o["output_type"] == "error"] for cell in notebook.cells]
    assert errors[0] == [] and "outputs" not in notebook.cells[1] and "outputs" not in notebook.cells[3]
    assert errors[2][0]["ename"] == "GradingStopped" and first_error in errors[2][0]["evalue"]
    assert [e[0]["ename"] for e in (errors[4], errors[5])] == ["NotRun", "NotRun"]
    nbformat.validate(notebook)
