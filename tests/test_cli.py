import subprocess
import sys

from cluster_gnn.cli import main


def test_help_lists_subcommands_and_is_fast():
    out = subprocess.run([sys.executable, "-m", "cluster_gnn", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("build-data", "structures"):
        assert command in out.stdout
    # heavy libraries stay unimported for --help
    probe = "import sys; from cluster_gnn.cli import build_parser; build_parser(); " \
            "print(sorted(m for m in ('torch', 'tblite', 'pandas', 'ase') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"


def test_build_data_cli(shared_datasets, tmp_path, capsys):
    assert main(["build-data", "--source", str(shared_datasets), "--out", str(tmp_path)]) == 0
    assert "216 clusters, 183 with measured lg(k1)" in capsys.readouterr().out


def test_cli_errors_are_one_line_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cluster_gnn", "build-data", "--source", str(tmp_path),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: published data file not found")


def test_dft_of_a_file_without_pyscf_is_one_line_per_file(test_data, monkeypatch, capsys):
    import cluster_gnn.dft_upload as dft_upload

    monkeypatch.setattr(dft_upload, "pyscf_available", lambda: False)
    code = main(["dft", str(test_data / "Rh3-.xyz"), str(test_data / "bad" / "overlap.xyz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0].startswith("error: ") and "Rh3-.xyz" in err[0] and "pip install -e '.[dft]'" in err[0]
    assert "overlap.xyz" in err[1] and "apart" in err[1] and len(err) == 2


def test_a_reader_that_leaves_early_gets_no_traceback():
    """``cluster-gnn ... | head -1``: the rest of the output goes nowhere, quietly."""
    code = ("import sys\n"
            "class Gone:\n"
            "    def write(self, text):\n"
            "        raise BrokenPipeError(32, 'Broken pipe')\n"
            "    def flush(self):\n"
            "        raise BrokenPipeError(32, 'Broken pipe')\n"
            "sys.stdout = Gone()\n"
            "from cluster_gnn.cli import main\n"
            "sys.exit(main(['dft', '--status']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr[-500:]
