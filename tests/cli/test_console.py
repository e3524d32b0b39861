"""What long commands print while they work."""

from tdpcr_edge.cli import console


def test_piped_progress_is_one_line_per_stage(capsys, monkeypatch):
    # Under pytest stderr is not a terminal, as in a log or CI.
    monkeypatch.setattr(console.err_console, "_force_terminal", False)
    with console.stage_status("bench") as stage:
        stage("export fp32")
        stage("time 3 rows, each alone: round 1 of 3")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("bench: export fp32 (") and err[0].endswith(" s)")
    assert err[1].startswith("bench: time 3 rows, each alone: round 1 of 3 (")
    assert len(err) == 2


def test_piped_progress_bar_prints_a_line_now_and_then(capsys, monkeypatch):
    monkeypatch.setattr(console.err_console, "_force_terminal", False)
    clock = iter([0.0, 1.0, 12.0, 13.0, 25.0, 26.0, 26.0])
    monkeypatch.setattr(console.time, "perf_counter", lambda: next(clock))
    with console.progress_bar("infer out", 4) as advance:
        for _ in range(4):
            advance()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["infer out: 2/4 after 12 s", "infer out: 4/4 after 25 s", "infer out: 4/4 in 26.0 s"]
