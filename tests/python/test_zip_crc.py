"""A byte flipped inside a stored member of a torch.save archive (issue #27, item 6): Python's
`zipfile.ZipFile.testzip()` names the member whose CRC-32 fails, and timmconv must name the same
one (exit 2) wherever it reads the bytes: a hashing `convert`, `inspect --scan`, and `convert
--no-hash --check-crc`. tests/zip_crc.rs pins the Rust side; this is the cross-check against
Python's own zip reader. Run by tools/test.sh with the pinned venv (TIMMCONV_BIN)."""

import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TIMMCONV_BIN", str(ROOT / "target" / "debug" / "timmconv"))
FIXTURES = ROOT / "fixtures" / "ckpt"


def flip(src: Path, dst: Path, member_index: int) -> str:
    """Copies `src` to `dst` with the middle byte of the `member_index`-th `data/` member
    flipped (found from its local header); returns the member's name."""
    with zipfile.ZipFile(src) as z:
        info = [i for i in z.infolist() if "/data/" in i.filename][member_index]
    assert info.compress_type == zipfile.ZIP_STORED
    data = bytearray(src.read_bytes())
    at = info.header_offset
    assert data[at:at + 4] == b"PK\x03\x04"
    name_len = int.from_bytes(data[at + 26:at + 28], "little")
    extra_len = int.from_bytes(data[at + 28:at + 30], "little")
    start = at + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    return info.filename


def named_member(stderr: str) -> str:
    m = re.search(r"zip member `([^`]*)` fails its CRC-32 check", stderr)
    assert m, stderr
    return m.group(1)


@pytest.mark.parametrize("fixture,index", [
    ("test_resnet.f32.zip.pth", 0),
    ("test_vit.f32.zip.pth", 3),
    ("test_convnext.bf16.zip.pth", 5),
])
def test_timmconv_names_the_member_testzip_names(tmp_path, fixture, index):
    flipped = tmp_path / "flipped.pth"
    member = flip(FIXTURES / fixture, flipped, index)
    with zipfile.ZipFile(flipped) as z:
        assert z.testzip() == member
    out = tmp_path / "out.safetensors"
    for args in (
        ["convert", flipped, "-o", out, "-q"],
        ["convert", flipped, "-o", out, "-q", "--no-hash", "--check-crc"],
        ["inspect", "--scan", flipped],
    ):
        p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert named_member(p.stderr) == member, args
        assert not out.exists()


def test_an_intact_archive_passes_both(tmp_path):
    src = FIXTURES / "test_resnet.f32.zip.pth"
    with zipfile.ZipFile(src) as z:
        assert z.testzip() is None
    p = subprocess.run([BIN, "inspect", "--scan", str(src)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
