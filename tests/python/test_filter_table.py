"""Every `checkpoint_filter_fn` of the timm in this environment (1.0.31) has a row in
docs/conversion.md's table ("Every `checkpoint_filter_fn` in timm 1.0.31"), so that no filter, and
no original layout it converts, is silently uncovered. The timm source is read, not imported:
every function a module passes as `pretrained_filter_fn=` (by name or inside `partial(...)`) and
every function named like a filter. Run by tools/test.sh."""

import ast
import re
from pathlib import Path

import timm

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conversion.md"
HEADING = "### Every `checkpoint_filter_fn` in timm 1.0.31"


def filters():
    """`module.function` of every pretrained filter defined in timm.models."""
    found = set()
    for path in sorted((Path(timm.__file__).parent / "models").glob("*.py")):
        tree = ast.parse(path.read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        named = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "pretrained_filter_fn":
                value = node.value
                if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "partial" and value.args:
                    value = value.args[0]
                if isinstance(value, ast.Name):
                    named.add(value.id)
        named |= {n for n in defined if n.startswith("checkpoint_filter_fn")}
        # a name bound to a function defined elsewhere (deit passes vision_transformer's filter,
        # vision_transformer a partial of its own) is that function's row
        found |= {f"{path.stem}.{n}" for n in named if n in defined}
    return found


def table_rows():
    text = DOC.read_text()
    assert HEADING in text, f"{DOC} lacks the section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+\.[A-Za-z0-9_]+)` \|", section, re.M))


def test_timm_is_the_pinned_version():
    assert timm.__version__ == "1.0.31"


def test_every_filter_has_a_row():
    have = filters()
    assert len(have) >= 55, sorted(have)
    missing = sorted(have - table_rows())
    assert not missing, f"filters missing from {DOC.name}'s table: {missing}"


def test_every_row_is_a_filter():
    stale = sorted(table_rows() - filters())
    assert not stale, f"rows of {DOC.name}'s table that are no filter in timm 1.0.31: {stale}"


def test_the_ported_rows_name_layouts_timmconv_has():
    source = (ROOT / "src" / "original" / "families.rs").read_text()
    layouts = set(re.findall(r'name: "([a-z0-9_]+)"', source))
    section = DOC.read_text().split(HEADING, 1)[1]
    ported = set()
    for m in re.finditer(r"\| ported: ([^|]+) \|", section):
        ported |= set(re.findall(r"`([a-z0-9_]+)`", m.group(1)))
    assert ported == layouts, (ported, layouts)
