"""timmconv's table of the pretrained tags timm loads with `load_state_dict(strict=False)`
(src/registry/strict.rs, NON_STRICT_TAGS) is what timm's source says: every factory that sets
`pretrained_strict` to False for a `pretrained_cfg` tag is in it, and nothing else. The timm source
is read, not imported. Run by tools/test.sh."""

import re
from pathlib import Path

import timm

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "src" / "registry" / "strict.rs"

# `if kwargs.get('pretrained_cfg', '') == 'TAG':` followed (within the block) by
# `kwargs.setdefault('pretrained_strict', False)`
TAG_NON_STRICT = re.compile(
    r"if kwargs\.get\('pretrained_cfg', ''\) == '([A-Za-z0-9_]+)':\n(?:[ \t]+#[^\n]*\n)*"
    r"[ \t]+kwargs\.setdefault\('pretrained_strict', False\)")

# the modules with any `pretrained_strict` site, for a change to show: those not per tag depend
# on features_only or hold for all of a family's tags (not mirrored yet, see strict.rs)
KNOWN_SITES = {"convnext", "davit", "dla", "efficientnet", "hardcorenas", "hrnet", "inception_v3",
               "mobilenetv3", "mobilenetv5", "vision_transformer"}


def timm_tags():
    found = set()
    for path in sorted((Path(timm.__file__).parent / "models").glob("*.py")):
        for tag in TAG_NON_STRICT.findall(path.read_text()):
            found.add((path.stem, tag))
    return found


def table():
    text = TABLE.read_text()
    body = text.split("NON_STRICT_TAGS", 1)[1].split(";", 1)[0]
    return set(re.findall(r'\("([a-z0-9_]+)", "([A-Za-z0-9_]+)"\)', body))


def test_the_table_is_timms():
    assert timm.__version__ == "1.0.31"
    assert timm_tags() == {("convnext", "fcmae")}
    assert table() == timm_tags()


def test_no_new_pretrained_strict_site():
    sites = set()
    for path in sorted((Path(timm.__file__).parent / "models").glob("*.py")):
        for line in path.read_text().splitlines():
            if "pretrained_strict" in line and not line.strip().startswith("#"):
                sites.add(path.stem)
    sites.discard("_builder")
    assert sites == KNOWN_SITES, sorted(sites ^ KNOWN_SITES)
