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
