"""The README's "Use the output" recipe runs as written (issue 22, item 2): its shell commands
(with TIMMCONV_BIN for `timmconv`) and Python blocks are taken from README.md itself, so the text
and the test cannot drift apart. Run by tools/test.sh with the pinned venv."""

import os
import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
README = (ROOT / "README.md").read_text()


def section(title):
    """The text under a heading, up to the next heading of the same or a higher level (lines in
    fenced code blocks, such as a doctest's hidden `# ` lines, are not headings)."""
    lines = README.splitlines(keepends=True)
    out, level, fenced = None, 0, False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^(#+) (.*)$", line.rstrip("\n"))
        if out is None:
            if m and m.group(2) == title:
                out, level = [], len(m.group(1))
            continue
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    assert out is not None, title
    return "".join(out)


def blocks(text, lang):
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def run_sh(block, cwd):
    for line in block.splitlines():
        if line.startswith("timmconv "):
            args = shlex.split(line)
            subprocess.run([BIN, *args[1:]], cwd=cwd, check=True)


def test_use_the_output_recipe_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    # the "Try it" conversion the recipe starts from: the one that writes resnet4.safetensors
    try_it = [b for b in blocks(section("Try it"), "sh") if "resnet4.safetensors" in b]
    assert len(try_it) == 1, try_it
    run_sh(try_it[0], tmp_path)
    use = section("Use the output")
    python = blocks(use, "python")
    assert len(python) == 2 and "strict=False" in python[0] and "local-dir:" in python[1]
    monkeypatch.chdir(tmp_path)
    exec(compile(python[0], "README.md (Use the output, Python)", "exec"), {})
    sh = blocks(use, "sh")
    assert len(sh) == 1 and "--layout hub" in sh[0], sh
    run_sh(sh[0], tmp_path)
    exec(compile(python[1], "README.md (Use the output, local-dir)", "exec"), {})


def test_try_it_uses_the_installed_command_and_the_working_folder():
    """Issue 22, item 8: after Install, `timmconv …`, never `cargo run`, and no /tmp."""
    after = README[README.index("## Install"):]
    after = after[after.index("\n## ", 1):]
    assert "cargo run" not in after
    assert "/tmp" not in after
