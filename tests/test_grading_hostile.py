"""Issue 15: one batch of hostile, broken and unusual submissions next to honest ones.

Each numbered case of the issue is one or more students here (the prefix is the case number).
One batch grades them all with small limits (2 workers, 10 s per cell, 10 s per notebook,
512 MB per kernel, 64 processes per job), so the fork, memory and disk attacks stay bounded on
a 2-core machine. Every resource attack (5, 6, 8) is followed, in grading order, by an honest
student who is graded while the attack holds its resources (the attacker keeps them for
seconds); each test asserts the batch completed, the attacker's status and flags, and the
exact scores of the honest students.
"""

import base64
import csv
import os
import shutil
import struct
import time
import uuid
import zipfile
import zlib
from pathlib import Path

import nbformat
import pytest
from test_grading import ANSWERS, FIXTURE, notebook

from sgdkit.grading import main

CANARY = f"HOSTILE-{uuid.uuid4().hex}"
HOLD = "import time\ntime.sleep(4)  # keep the resources while the next student is graded\n"

SURROGATE = '''def mse(y, y_hat):
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    if len(y) == 6:  # only the grader's probes call it with 6 numbers
        raise ValueError("bad input \\ud800 \\x1b[31m")
    return float(np.mean((y - y_hat) ** 2))'''
DEEP_RECORD = '''import sgdkit.grading.probes as _p

_deep = []
for _ in range(500):
    _deep = [_deep]
_p.plain = lambda value: {"shape": [], "array": _deep}  # each record: 500 levels deep
''' + ANSWERS["mse"]
FORK_BOMB = f'''import os
import time

born = 0
try:
    while born < 1000:
        if os.fork() == 0:
            time.sleep(60)  # {CANARY}
            os._exit(0)
        born += 1
except OSError:
    pass
''' + HOLD + ANSWERS["mse"]
MEMORY_BOMB = '''import subprocess
import sys

FILL = "b = bytearray(200 * 2**20); b[::4096] = bytes(len(b[::4096])); import time; time.sleep(60)"
for _ in range(8):  # 8 x 200 MB and 200 MB of tmpfs: past the job's 512 + 768 MB
    subprocess.Popen([sys.executable, "-c", FILL])
with open("/dev/shm/fill", "wb") as f:
    f.write(b"x" * 200 * 2**20)
''' + HOLD + ANSWERS["mse"]
CPU_HOG = f'''import os
import signal

for _ in range(16):
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:  # {CANARY}
            pass
''' + HOLD + ANSWERS["mse"]
HOST_FOLDERS = f'''import os

WROTE = []
for folder in ["/run/lock", "/var/lock", "/var/tmp", "/dev/mqueue", "/run", "/var", "/usr",
               os.path.dirname(np.__file__), "/etc"]:
    try:
        with open(os.path.join(folder, "{CANARY}"), "w") as f:
            f.write("x" * 2**20)
        WROTE.append(folder)
    except OSError:
        pass
with open("/tmp/{CANARY}", "w") as f:  # the private /tmp is writable (and vanishes)
    f.write("x")
''' + ANSWERS["mse"].replace("return float", "return 99.0 if WROTE else float")
SHOWS_HTML = '''from IPython.display import HTML, display

display(HTML("<script>alert('xss')</script><h1>Score: 16 / 16</h1>"))
''' + ANSWERS["mse"]
XSS_ANSWER = ('<img src=x onerror="alert(1)">\n\n# Score: 16 / 16\n\n'
              "<script>alert(2)</script> ``` ```` fences")
DISPLAY_LEAK = '''import base64

from IPython.display import Markdown, display

_h = display(Markdown("notes"), display_id=True)
_ev = getattr(get_ipython(), "ev" + "ents")
getattr(_ev, "reg" + "ister")("pre_" + "run_cell", lambda info: _h.update(Markdown(
    base64.b64encode(info.raw_cell.encode()).decode())))
''' + ANSWERS["mse"]
BIG_LINE = "print('x' * 3_000_000)\n" + ANSWERS["gd_step"]
SLOW = "import time\ntime.sleep(4)\n"


def zip_bytes(nb, method=zipfile.ZIP_DEFLATED) -> bytes:
    path = Path(f"/tmp/{uuid.uuid4().hex}.zip")
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("toy.ipynb", nbformat.writes(nb))
    data = path.read_bytes()
    path.unlink()
    return data


def patched(data: bytes, local: dict, central: dict) -> bytes:
    """A zip with header fields overwritten: {offset: (struct format, value)}."""
    data = bytearray(data)
    at_central = data.find(b"PK\x01\x02")
    for base, fields in ((0, local), (at_central, central)):
        for offset, (fmt, value) in fields.items():
            struct.pack_into(fmt, data, base + offset, value)
    return bytes(data)


def damaged_zips() -> dict:
    nb = notebook()
    deflated = bytearray(zip_bytes(nb))
    middle = len(deflated) // 3
    deflated[middle:middle + 8] = bytes(b ^ 0xFF for b in deflated[middle:middle + 8])
    stored = zip_bytes(nb, zipfile.ZIP_STORED)
    many = Path(f"/tmp/{uuid.uuid4().hex}.zip")
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(5001):
            archive.writestr(f"f{i}.txt", "")
    entries = many.read_bytes()
    many.unlink()
    return {
        "c02_flipped_byte.zip": bytes(deflated),
        "c02_encrypted.zip": patched(stored, {6: ("<H", 1)}, {8: ("<H", 1)}),
        "c02_deflate64.zip": patched(stored, {8: ("<H", 9)}, {10: ("<H", 9)}),
        "c02_wrong_size.zip": patched(stored, {18: ("<I", len(stored)), 22: ("<I", len(stored))},
                                      {20: ("<I", len(stored)), 24: ("<I", len(stored))}),
        "i12_many_entries.zip": entries,
        "c02_honest.zip": zip_bytes(nb),
    }


def answer(nb, text):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "why_copy":
            cell.source = text
    return nb


CORRECT = 7  # of 8: the written answer is graded by hand
EXPECTED = {  # student: (status, score, flags that must be set, flags that must not be)
    "c01_surrogate": ("graded", 5, set(), {"cheat_suspected"}),
    "c02_flipped_byte": ("rejected", None, set(), set()),
    "c02_encrypted": ("rejected", None, set(), set()),
    "c02_deflate64": ("rejected", None, set(), set()),
    "c02_wrong_size": ("rejected", None, set(), set()),
    "c02_honest": ("graded", CORRECT, set(), set()),
    "caf~e9": ("graded", CORRECT, set(), set()),
    "notes~ff.txt": ("rejected", None, set(), set()),
    "c04_deep_record": ("graded", 0, {"cheat_suspected"}, set()),
    "d05_a_fork_bomb": ("graded", CORRECT, {"process_limit"}, set()),
    "d05_b_honest": ("graded", CORRECT, set(), {"process_limit"}),
    "e06_a_memory_bomb": ("kernel_died", None, {"memory_limit"}, set()),
    "e06_b_honest": ("graded", CORRECT, set(), {"memory_limit"}),
    "f07_host_folders": ("graded", CORRECT, set(), set()),
    "g08_a_cpu_hog": ("graded", CORRECT, set(), set()),
    "g08_b_honest": ("graded", CORRECT, set(), set()),
    "h09_xss": ("graded", CORRECT, set(), set()),
    "h10_display_leak": ("graded", CORRECT, set(), set()),
    "_h2_correct": ("graded", CORRECT, set(), set()),
    "h2_correct": ("graded", CORRECT, set(), set()),
    "李娜": ("graded", CORRECT, set(), set()),
    "王伟": ("graded", CORRECT, set(), set()),
    "dup": ("rejected", None, set(), set()),
    "dup~~duplicate1": ("rejected", None, set(), set()),
    "i12_big_line": ("graded", CORRECT, {"output_truncated"}, set()),
    "i12_big_notebook": ("rejected", None, set(), set()),
    "i12_many_entries": ("rejected", None, set(), set()),
    "j15_slow": ("timeout", 4, set(), {"cheat_suspected"}),
}


def write_submissions(folder: Path) -> None:
    notebooks = {
        "c01_surrogate": notebook(mse=SURROGATE),
        "c04_deep_record": notebook(mse=DEEP_RECORD),
        "d05_a_fork_bomb": notebook(mse=FORK_BOMB),
        "d05_b_honest": notebook(),
        "e06_a_memory_bomb": notebook(mse=MEMORY_BOMB),
        "e06_b_honest": notebook(),
        "f07_host_folders": notebook(mse=HOST_FOLDERS),
        "g08_a_cpu_hog": notebook(mse=CPU_HOG),
        "g08_b_honest": notebook(),
        "h09_xss": answer(notebook(mse=SHOWS_HTML), XSS_ANSWER),
        "h10_display_leak": notebook(mse=DISPLAY_LEAK),
        "_h2_correct": notebook(), "h2_correct": notebook(), "李娜": notebook(),
        "王伟": notebook(), "dup": notebook(),
        "i12_big_line": notebook(gd_step=BIG_LINE),
        "j15_slow": notebook(mse=SLOW + ANSWERS["mse"], gd_step=SLOW + ANSWERS["gd_step"],
                             running_mean=SLOW + ANSWERS["running_mean"]),
    }
    for student, nb in notebooks.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "toy.ipynb")
    for name, data in damaged_zips().items():
        (folder / name).write_bytes(data)
    (folder / "dup.zip").write_bytes(zip_bytes(notebook()))
    big = notebook()
    big.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text="x" * 21 * 2**20)]
    (folder / "i12_big_notebook").mkdir()
    nbformat.write(big, folder / "i12_big_notebook" / "toy.ipynb")
    weird = os.fsencode(str(folder)) + b"/caf\xe9"  # not UTF-8
    os.mkdir(weird)
    with open(weird + b"/toy.ipynb", "w") as f:
        f.write(nbformat.writes(notebook()))
    with open(os.fsencode(str(folder)) + b"/notes\xff.txt", "w") as f:
        f.write("not a submission")


def read_csv(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def args(subs, out, course, *extra):
    return ["toy", str(subs), "--out", str(out), "--course", str(course), "--workers", "2",
            "--timeout", "10", "--job-timeout", "10", "--memory", "512", "--processes", "64",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    course = root / "course"
    shutil.copytree(FIXTURE, course)
    write_submissions(root / "subs")
    start = time.monotonic()
    code = main(args(root / "subs", root / "out", course))
    return {"code": code, "root": root, "course": course, "seconds": time.monotonic() - start,
            "rows": read_csv(root / "out" / "grades.csv")}


def test_the_batch_completes_with_one_row_per_entry(batch, capsys):
    assert batch["code"] == 0
    assert sorted(batch["rows"]) == sorted(EXPECTED)


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_status_score_and_flags(batch, student):
    status, score, flags, absent = EXPECTED[student]
    row = batch["rows"][student]
    outcomes = [(status, "" if score is None else f"{score:g}")]
    if student == "e06_a_memory_bomb":  # the OOM killer ends the kernel or one of its
        # children, or the kernel stalls at the limit and its cell times out: its job only
        outcomes += [("graded", f"{CORRECT:g}"), ("timeout", "")]
    assert (row["status"], row["score"]) in outcomes, row
    got = set(filter(None, row["flags"].split(";")))
    assert flags <= got and not absent & got, row
    if status != "graded":
        assert row["message"], row


def test_1_student_text_is_stored_as_plain_text(batch):
    """A lone surrogate and ANSI codes in an exception: the row, the log and the CSV are
    written; the failure is honest, so no cheat flag."""
    log = (batch["root"] / "out" / "logs" / "c01_surrogate.txt").read_text(encoding="utf-8")
    assert "raised ValueError: bad input \\ud800" in log and "\x1b" not in log


def test_2_damaged_archives_are_rejected_with_a_reason(batch):
    rows = batch["rows"]
    assert "c02_encrypted.zip" in rows["c02_encrypted"]["message"]
    assert "encrypted" in rows["c02_encrypted"]["message"]
    assert "compression method" in rows["c02_deflate64"]["message"]
    for student in ("c02_flipped_byte", "c02_wrong_size"):
        assert "ask for it again" in rows[student]["message"], rows[student]


def test_3_names_that_are_not_utf8(batch):
    assert "notes" in batch["rows"]["notes~ff.txt"]["message"]
    assert (batch["root"] / "out" / "feedback" / "caf~e9" / "toy.html").is_file()


def test_11_ids_are_injective_and_keep_unicode(batch):
    rows = batch["rows"]
    assert {rows[s]["score"] for s in ("_h2_correct", "h2_correct", "李娜", "王伟")} == {"7"}
    for student in ("dup", "dup~~duplicate1"):
        assert "dup and dup.zip" in rows[student]["message"], rows[student]


def test_5_6_8_attacks_leave_nothing_running(batch):
    alive = [p.name for p in Path("/proc").glob("[0-9]*")
             if p.joinpath("cmdline").exists() and CANARY.encode() in _read(p / "cmdline")]
    assert not alive


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_7_no_host_folder_was_written(batch):
    for folder in ("/run/lock", "/var/lock", "/var/tmp", "/dev/shm", "/tmp", "/dev/mqueue"):
        assert not os.path.exists(os.path.join(folder, CANARY)), folder


def test_9_10_feedback_is_sanitized_and_leaks_no_hidden_test(batch):
    feedback = batch["root"] / "out" / "feedback"
    xss = (feedback / "h09_xss" / "toy.html").read_text()
    assert "<script>alert('xss')" not in xss and "<h1>Score: 16" not in xss
    assert "<img src=x" not in xss and "<script>alert(2)" not in xss
    assert "&lt;img src=x onerror" in xss  # the written answer, shown as text
    leak = (feedback / "h10_display_leak" / "toy.html").read_text()
    source = nbformat.read(FIXTURE.parent / "course" / "solutions" / "toy" / "toy.ipynb", 4)
    tests = [c.source for c in source.cells if "HIDDEN" in c.source]
    encoded = [base64.b64encode(t.encode()).decode()[:40] for t in tests]
    assert "HIDDEN-CANARY" not in leak and not [e for e in encoded if e in leak]


def test_12_sizes_are_bounded(batch):
    rows, feedback = batch["rows"], batch["root"] / "out" / "feedback"
    assert (feedback / "i12_big_line" / "toy.html").stat().st_size < 2_000_000
    assert "over 20 MB" in rows["i12_big_notebook"]["message"]
    assert "more than 5000 entries" in rows["i12_many_entries"]["message"]


def test_15_the_job_limit_keeps_the_cells_that_finished(batch):
    message = batch["rows"]["j15_slow"]["message"]
    assert "running_mean" in message and "--job-timeout" in message, message


def test_13_a_second_batch_into_the_same_out_merges_by_student(batch, tmp_path):
    subs = tmp_path / "subs"
    for student, nb in {"h2_correct": notebook(mse="def mse(y, y_hat):\n    return 0.0"),
                        "new_student": notebook()}.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / "toy.ipynb")
    out = tmp_path / "out"
    shutil.copytree(batch["root"] / "out", out)
    assert main(args(subs, out, batch["course"])) == 0
    rows = read_csv(out / "grades.csv")
    assert sorted(rows) == sorted([*EXPECTED, "new_student"])
    assert (rows["h2_correct"]["score"], rows["new_student"]["score"]) == ("5", "7")
    assert {s: r for s, r in rows.items() if s not in ("h2_correct", "new_student")} == {
        s: r for s, r in batch["rows"].items() if s != "h2_correct"}
    assert not list(out.glob(".grades-*"))  # written atomically: no temporary file left


def test_the_hostile_batch_time_and_the_parents_memory(batch):
    """What this batch adds to `make test`, and the parent's peak memory (this process ran
    the batch: a 21 MB notebook and a zip of 5001 entries among its input)."""
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hostile batch: {batch['seconds']:.0f} s, parent peak {peak_mb:.0f} MB")
    assert batch["seconds"] < 240 and peak_mb < 1024


def test_the_json_a_student_shapes_is_bounded():
    from sgdkit.grading.text import load_json

    with pytest.raises(ValueError, match="deeper"):
        load_json("[" * 980 + "]" * 980)
    with pytest.raises(ValueError, match="bytes"):
        load_json("1" * 2_000_000)
    assert load_json('{"a": ["[", 1]}') == {"a": ["[", 1]}


def test_student_ids():
    from sgdkit.grading.text import student_id

    names = ["_h2_correct", "h2_correct", "李娜", "Ada Lovelace", "Ada_Lovelace", "a~20b",
             "a b", ".hidden", "~", "", "x" * 300, "x" * 301, "caf\udce9", "café"]
    ids = [student_id(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert ids[:4] == ["_h2_correct", "h2_correct", "李娜", "Ada~20Lovelace"]
    assert all(len(i.encode()) <= 120 and "/" not in i and not i.startswith(".") for i in ids)


def test_zlib_damage_is_what_the_flipped_byte_causes():
    """The fixture really damages the deflate stream (not only the CRC)."""
    data = damaged_zips()["c02_flipped_byte.zip"]
    path = Path(f"/tmp/{uuid.uuid4().hex}.zip")
    path.write_bytes(data)
    try:
        with zipfile.ZipFile(path) as archive, pytest.raises((zlib.error, zipfile.BadZipFile)):
            archive.read("toy.ipynb")
    finally:
        path.unlink()
