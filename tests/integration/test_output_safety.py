"""What ``topo-mi run --force`` may delete: only folders topo_mi wrote, never the user's files."""
import hashlib
import os
from pathlib import Path

import pytest

from topo_mi.cli import main
from topo_mi.pipelines import runner

TINY_SPEC = """
name = "tiny"
seed = 0

[dataset]
name = "digits"
n = 120

[model]
architecture = "mlp"
params = { widths = [8] }
train = { epochs = 1 }

[analyses.geometry]
embed = "pca"
n_boot = 0
"""


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def user_folder(tmp_path):
    """A folder of the user's own files (and the spec), which must survive every refused run."""
    home = tmp_path / "work"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "a.txt").write_text("my notes")
    (home / "data.csv").write_text("1,2,3\n")
    (home / "spec.toml").write_text(TINY_SPEC)
    return home


@pytest.mark.parametrize("target", [".", "notes", ".."])
def test_force_refuses_folders_it_did_not_write(user_folder, target, capsys, monkeypatch):
    monkeypatch.chdir(user_folder / "notes" if target == ".." else user_folder)
    spec = user_folder / "spec.toml"
    before = _tree_digest(user_folder)
    assert main(["run", str(spec), "--out", target, "--force", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "out:" in err and "Traceback" not in err
    assert _tree_digest(user_folder) == before
    assert not [p for p in user_folder.parent.rglob("*.partial")]


def test_force_refuses_home_root_and_spec_parent(user_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = user_folder / "spec.toml"
    for out in (Path("/"), tmp_path, user_folder):
        with pytest.raises(ValueError, match="out:"):
            runner.check_output_folder(out, force=True, spec_file=spec)
    before = _tree_digest(user_folder)
    assert main(["run", str(spec), "--out", str(user_folder), "--force", "--quiet"]) == 2
    assert _tree_digest(user_folder) == before


def test_spec_out_key_with_force_cannot_delete_user_files(user_folder, capsys, monkeypatch):
    monkeypatch.chdir(user_folder.parent)
    spec = user_folder / "spec.toml"
    spec.write_text(f'out = "{user_folder / "notes"}"\n' + TINY_SPEC)
    before = _tree_digest(user_folder)
    assert main(["run", str(spec), "--force", "--quiet"]) == 2
    assert "only a folder that topo_mi wrote" in capsys.readouterr().err
    assert _tree_digest(user_folder) == before


def test_force_replaces_a_previous_run_and_keeps_the_old_one_on_failure(user_folder, tmp_path, monkeypatch):
    spec = user_folder / "spec.toml"
    out = tmp_path / "runs" / "tiny"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    assert runner.is_run_folder(out)
    first = _tree_digest(out)
    # a crash while moving the new folder into place leaves the old run where it was
    real_rename = Path.rename

    def failing_rename(self, target):
        if Path(target) == out and ".partial" in self.name:
            raise OSError("simulated crash")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    assert main(["run", str(spec), "--out", str(out), "--force", "--quiet"]) == 2
    monkeypatch.setattr(Path, "rename", real_rename)
    assert _tree_digest(out) == first
    assert not list(out.parent.glob(".tiny.*"))
    # and a normal --force run replaces it
    assert main(["run", str(spec), "--out", str(out), "--force", "--quiet", "--seed", "1"]) == 0
    assert runner.is_run_folder(out) and _tree_digest(out) != first
    assert not list(out.parent.glob(".tiny.*"))


def test_output_under_a_file_or_read_only_folder(user_folder, tmp_path, capsys):
    spec = user_folder / "spec.toml"
    assert main(["run", str(spec), "--out", str(user_folder / "data.csv" / "o"), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert main(["run", str(spec), "--out", str(ro / "o"), "--quiet"]) == 2
            assert "not writable" in capsys.readouterr().err
        finally:
            ro.chmod(0o700)


def test_spec_that_is_a_folder_or_binary(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--quiet"]) == 2
    assert "which is a folder" in capsys.readouterr().err
    b = tmp_path / "spec.toml"
    b.write_bytes(b"\x00\x01\x02binary")
    assert main(["run", str(b), "--quiet"]) == 2
    assert "binary file" in capsys.readouterr().err


def test_show_refuses_json_that_is_not_a_results_file(tmp_path, capsys):
    (tmp_path / "results.json").write_text("[1, 2]")
    assert main(["show", str(tmp_path)]) == 2
    assert "not one" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{not json")
    assert main(["show", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_workers_zero_is_refused(user_folder, tmp_path, capsys):
    assert main(["run", str(user_folder / "spec.toml"), "--out", str(tmp_path / "o"), "--workers", "0",
                 "--quiet"]) == 2
    assert "--workers: expected an integer >= 1" in capsys.readouterr().err
