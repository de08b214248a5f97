"""tools/build_wheel.py: the patched wheel keeps every base byte it does not change."""

import base64
import hashlib
import zipfile

import pytest

import build_wheel
import patchset

@pytest.fixture(scope="module")
def base_version(base_wheel):
    """The base wheel's own version (``2.13.0+cpu``, or ``2.14.1`` for PyPI's 2.14.1 with --torch 2.14.1)."""
    return base_wheel.name.split("-")[1]


@pytest.fixture(scope="module")
def built(base_wheel, tmp_path_factory):
    return build_wheel.build(base_wheel, tmp_path_factory.mktemp("dist"), quiet=True)


def _hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_local_version():
    assert build_wheel.local_version("2.13.0+cpu", 3) == "2.13.0+cpu.torchtool3"
    assert build_wheel.local_version("2.13.0", 1) == "2.13.0+torchtool1"
    assert build_wheel.local_version("2.13.0+cu128", 1) == "2.13.0+cu128.torchtool1"
    assert build_wheel.local_version("2.15.0", 2) == "2.15.0+torchtool2"
    assert build_wheel.local_version("2.14.1+cu130", 1) == "2.14.1+cu130.torchtool1"


def test_name_and_metadata(built, base_wheel, base_version):
    VERSION = build_wheel.local_version(base_version)
    assert built.name == f"torch-{VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(built) as zf, zipfile.ZipFile(base_wheel) as base:
        names = zf.namelist()
        assert len(names) == len(set(names)), "duplicate entries"
        assert not [n for n in names if n.startswith(f"torch-{base_version}.dist-info/")]
        metadata = zf.read(f"torch-{VERSION}.dist-info/METADATA").decode()
        assert f"\nVersion: {VERSION}\n" in metadata
        old_meta = base.read(f"torch-{base_version}.dist-info/METADATA").decode()
        assert metadata == old_meta.replace(f"\nVersion: {base_version}\n", f"\nVersion: {VERSION}\n", 1)
        assert zf.read(f"torch-{VERSION}.dist-info/WHEEL") == base.read(f"torch-{base_version}.dist-info/WHEEL")
        renamed = {n.replace(f"torch-{base_version}.dist-info/", f"torch-{VERSION}.dist-info/") for n in base.namelist()}
        assert set(names) == renamed | set(patchset.overlay_files())


def test_untouched_entries_are_raw_copies(built, base_wheel):
    changed = {fp.path for _, fp in patchset.file_patches(base_wheel.name.split("-")[1])}
    with zipfile.ZipFile(built) as zf, zipfile.ZipFile(base_wheel) as base, open(built, "rb") as fnew, open(base_wheel, "rb") as fold:
        new_infos = {i.filename: i for i in zf.infolist()}
        checked = 0
        for old in base.infolist():
            if old.filename in changed or ".dist-info/" in old.filename:
                continue
            new = new_infos[old.filename]
            assert (new.CRC, new.compress_size, new.file_size, new.compress_type) == (
                old.CRC, old.compress_size, old.file_size, old.compress_type
            ), old.filename
            if checked < 300 or old.compress_size > 10 << 20:
                fold.seek(old.header_offset)
                fnew.seek(new.header_offset)
                span = 30 + len(old.filename.encode()) + len(old.extra) + min(old.compress_size, 1 << 20)
                assert fnew.read(span) == fold.read(span), old.filename
                checked += 1


def test_every_entry_decompresses_with_correct_crc(built):
    with zipfile.ZipFile(built) as zf:
        assert zf.testzip() is None


def test_record_hashes(built, base_wheel, base_version):
    VERSION = build_wheel.local_version(base_version)
    with zipfile.ZipFile(built) as zf, zipfile.ZipFile(base_wheel) as base:
        record = zf.read(f"torch-{VERSION}.dist-info/RECORD").decode().splitlines()
        rows = {line.rsplit(",", 2)[0]: line for line in record}
        # Every file has its row; folder entries (PyPI's wheels have them) have none, as in the base.
        assert len(rows) == len(record) == len([n for n in zf.namelist() if not n.endswith("/")])
        assert rows[f"torch-{VERSION}.dist-info/RECORD"].endswith(",,")
        base_rows = {
            line.rsplit(",", 2)[0]: line
            for line in base.read(f"torch-{base_version}.dist-info/RECORD").decode().splitlines()
        }
        fresh = set(patchset.overlay_files()) | {fp.path for _, fp in patchset.file_patches(base_wheel.name.split("-")[1])}
        for name, line in rows.items():
            if name in fresh or ".dist-info/" in name:
                if name.endswith("RECORD"):
                    continue
                data = zf.read(name)
                assert line == f"{name},{_hash(data)},{len(data)}", name
            else:
                assert line == base_rows[name], name
        # Patched files really carry the patch.
        assert b'"_accelerator",' in zf.read("torch/__init__.py")
        for rel, src in patchset.overlay_files().items():
            assert zf.read(rel) == src.read_bytes()


def test_refuses_an_already_patched_base(built, tmp_path):
    with pytest.raises(patchset.PatchSetError, match="already a patched wheel"):
        build_wheel.build(built, tmp_path, quiet=True)


def test_reproducible(built, base_wheel, tmp_path):
    again = build_wheel.build(base_wheel, tmp_path, quiet=True)
    assert again.read_bytes() == built.read_bytes()
