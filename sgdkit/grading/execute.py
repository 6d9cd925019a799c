"""How a grading job runs cells: time limits per cell and per job, bounded and contained output.

nbgrader executes notebooks with nbclient, in the job's process J (``worker.py``). Two things
are added here, and only in J:

- ``Budget``, nbclient's ``timeout_func``: each cell gets ``--timeout`` seconds, and the
  student's cells together ``--job-timeout``; once that is spent, each remaining cell gets what
  is left (at least ``MIN_S``), so a slow cell is interrupted, the cells that finished keep
  their points, and the cells after still run briefly. The grader's probe cells (``probes.py``)
  always get ``--timeout`` each.
- ``contain``: a cell's output is cut at ``MAX_OUTPUT_BYTES`` (one "Output truncated" line
  marks it, and the job is flagged ``output_truncated``), and a test cell cannot change what
  other cells show: display updates (``update_display`` / ``display_id``) made while a test
  cell runs are dropped, so nothing seen during a test (its source, hidden tests included)
  reaches the feedback through an earlier cell's display.
- ``ready``, the kernel client's ``wait_for_ready`` without jupyter_client's fixed waits for
  IOPub (0.4 s of every kernel start), and ``PHASES``: the time each job spends starting and
  stopping kernels and running cells (``worker._phases``, ``SGDKIT_GRADING_PROFILE``).
"""

import time
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from nbclient import NotebookClient
from nbformat.v4 import new_output

from . import probes

PHASES = {}  # seconds spent in each phase of the job this process grades (worker.run_job)
MIN_S = 1
MAX_OUTPUT_BYTES = 1_000_000  # per cell
MAX_PROBE_BYTES = 16_000_000  # per probe cell: its records
TRUNCATED = "\n... Output truncated: more than 1 MB from this cell ...\n"


class Budget:
    """``timeout_func`` for nbclient: seconds a cell may run (see the module docstring)."""

    def __init__(self, per_cell: float, per_job: float):
        self.per_cell, self.per_job = per_cell, per_job
        self.start = None
        self.limited = []  # cells that got less than per_cell: the job's limit cut them short

    def __deepcopy__(self, memo):  # traitlets copies config values: keep one shared budget
        return self

    def __call__(self, cell) -> int:
        if str(cell.get("id", "")).startswith(probes.CELL_ID):
            return int(self.per_cell)
        now = time.monotonic()
        self.start = now if self.start is None else self.start
        left = self.per_job - (now - self.start)
        if left < self.per_cell:
            name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            self.limited.append(name or f"#{cell.get('id', '?')}")
        return int(max(MIN_S, min(self.per_cell, left)))


def _size(msg: dict) -> int:
    content = msg.get("content", {})
    parts = [content.get("text", ""), content.get("evalue", ""), *content.get("traceback", [])]
    parts += [v for v in content.get("data", {}).values() if isinstance(v, str)]
    return sum(len(p) for p in parts if isinstance(p, str))


def contain() -> None:
    """Patch nbclient (in this process only) as described in the module docstring."""
    if getattr(NotebookClient, "_sgdkit_contained", False):
        return
    process_message, output = NotebookClient.process_message, NotebookClient.output

    def guarded_process_message(self, msg, cell, cell_index):
        content = msg.get("content") or {}
        if probes.is_test(cell) and (content.get("transient") or {}).get("display_id"):
            if msg.get("msg_type") == "update_display_data":
                return None
            content["transient"] = {}  # shown in the test cell itself, updating nothing else
        return process_message(self, msg, cell, cell_index)

    def bounded_output(self, outs, msg, display_id, cell_index):
        sizes = self.__dict__.setdefault("_sgdkit_sizes", {})
        sizes[cell_index] = sizes.get(cell_index, 0) + _size(msg)
        probe = str(self.nb.cells[cell_index].get("id", "")).startswith(probes.CELL_ID)
        if sizes[cell_index] > (MAX_PROBE_BYTES if probe else MAX_OUTPUT_BYTES):
            if not any(o.get("text") == TRUNCATED for o in outs):
                outs.append(new_output("stream", name="stdout", text=TRUNCATED))
            return None
        return output(self, outs, msg, display_id, cell_index)

    NotebookClient.process_message = guarded_process_message
    NotebookClient.output = bounded_output
    for name, phase in (("start_new_kernel", "kernel_start"),
                        ("start_new_kernel_client", "kernel_start"),
                        ("_cleanup_kernel", "kernel_stop"), ("execute_cell", "cells")):
        _time(NotebookClient, name, phase)
    AsyncKernelClient.wait_for_ready = ready
    NotebookClient._sgdkit_contained = True


async def ready(self, timeout: float | None = None) -> None:
    """jupyter_client's ``wait_for_ready`` without its fixed waits (0.4 s of each kernel start):
    ask for kernel_info until a reply comes, then read IOPub until the kernel says it is idle
    after one of these requests: the subscription works, and what the kernel said about them
    is read (a request IOPub missed, before it was connected, is asked again)."""
    deadline, asked = time.monotonic() + (timeout or 60), set()
    while True:
        asked.add(self.kernel_info())
        try:
            reply = await self.shell_channel.get_msg(timeout=1)
        except Empty:
            reply = None
        if reply is not None and reply["msg_type"] == "kernel_info_reply":
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                try:
                    msg = await self.iopub_channel.get_msg(timeout=until - time.monotonic())
                except Empty:
                    break
                if (msg["parent_header"].get("msg_id") in asked
                        and msg["msg_type"] == "status"
                        and msg["content"].get("execution_state") == "idle"):
                    self._handle_kernel_info_reply(reply)
                    return
        if not await self._async_is_alive():
            raise RuntimeError("Kernel died before replying to kernel_info")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kernel didn't respond in {timeout or 60:g} seconds")


def _time(cls, name: str, phase: str) -> None:
    """Count the time cls.name takes towards PHASES[phase]."""
    original = getattr(cls, name)

    def timed(*args, **kwargs):
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[phase] = PHASES.get(phase, 0.0) + time.monotonic() - start

    setattr(cls, name, timed)
