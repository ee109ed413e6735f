"""The spawn page's view of an environment build: phases and counts, never a wall of pip output."""

from __future__ import annotations

from analysis_hub.runtime.pip_progress import INSTALLED_AT, PipProgress, requirement_count

NAMES = [f"package{i}" for i in range(145)]  # the tensorflow image's lock holds 145 pins


def shown(progress: PipProgress, pip_lines: list[str]) -> list:
    return [step for step in map(progress.line, pip_lines) if step is not None]


def test_fetching_145_packages_shows_eleven_lines_then_one_for_the_install():
    """145 `Processing …whl` lines become one line per tenth fetched (and the first); the install's
    line names only the count, not the 145 packages; every line is short and the bar only rises."""
    progress = PipProgress(len(NAMES))
    pip = [f"Processing /opt/pypi/files/{n}-1.0-py3-none-any.whl" for n in NAMES]
    pip += ["Installing collected packages: " + ", ".join(NAMES)]
    pip += ["Successfully installed " + " ".join(f"{n}-1.0" for n in NAMES)]
    steps = shown(progress, pip)
    assert steps[0] == "Fetching packages: 1 of 145" and "Fetching packages: 145 of 145" in steps
    assert len([s for s in steps if s.startswith("Fetching")]) == 11
    assert steps[-2:] == ["Installing 145 packages", "Installed 145 packages"]
    assert all(len(s) < 40 for s in steps)
    done = [s.done for s in steps]
    assert done == sorted(done) and done[-1] == INSTALLED_AT


def test_a_silent_install_says_how_long_and_creeps_on_without_reaching_its_end():
    """While pip installs (and prints nothing), each waiting line says the seconds so far and moves
    the bar a little further, never to the install's end; before the install there is none."""
    progress = PipProgress(3)
    assert progress.waiting(10) is None
    progress.line("Installing collected packages: a, b, c")
    waits = [progress.waiting(s) for s in (10, 60, 600)]
    assert waits[0] == "Installing 3 packages (10 s so far)"
    assert waits[0].done < waits[1].done < waits[2].done < INSTALLED_AT


def test_errors_pass_through_and_other_lines_are_dropped():
    progress = PipProgress(3)
    assert progress.line("ERROR: No matching distribution found for nope==1.0") == (
        "ERROR: No matching distribution found for nope==1.0"
    )
    assert progress.line("  Downloading numpy-2.0.whl (18 MB)") is None
    assert progress.line("Looking in links: /opt/wheels") is None


def test_requirement_count_skips_comments_options_and_blank_lines(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("# pinned\n--find-links /x\nnumpy==2.0  # why\n\npandas==2.2\n")
    assert requirement_count([lock]) == 2
