"""elffile: the loader's view of ELF files, from the program headers, seekable or streamed."""

from __future__ import annotations

import io

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from minifier.errors import ImageError
from minifier.image import elffile
from minifier.image.elffile import BehindStream, ElfInfo, elf_info, elf_info_streamed
from tests.unit.elves import gcc_elf, tiny_elf

HOST_FILES = ("/usr/bin/true", "/usr/bin/gcc", "/lib/x86_64-linux-gnu/libc.so.6",
              "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/usr/bin/python3")


def _pyelftools(path):
    """The same facts read by pyelftools from the section headers: a second opinion."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        interp = next((s.get_interp_name() for s in elf.iter_segments()
                       if s["p_type"] == "PT_INTERP"), None)
        tags = [t for s in elf.iter_sections() if isinstance(s, DynamicSection)
                for t in s.iter_tags()]
        needed = tuple(t.needed for t in tags if t.entry.d_tag == "DT_NEEDED")
        soname = next((t.soname for t in tags if t.entry.d_tag == "DT_SONAME"), "")
        return interp, needed, soname, elf["e_machine"]


@pytest.mark.parametrize("path", HOST_FILES)
def test_host_files_agree_with_pyelftools(path):
    with open(path, "rb") as f:
        info = elf_info(f)
    assert (info.interp, info.needed, info.soname, info.machine) == _pyelftools(path)
    with open(path, "rb") as f:
        head = f.read(256)
        assert elf_info_streamed(head, f) == info


def test_true_exactly():
    with open("/usr/bin/true", "rb") as f:
        assert elf_info(f) == ElfInfo("/lib64/ld-linux-x86-64.so.2", ("libc.so.6",), (), (),
                                      "EM_X86_64", False, "", 64, False)


def test_gcc_built_paths_soname_and_nodeflib(tmp_path):
    gcc_elf(tmp_path, "libdep.so", shared=True, soname="libdep.so.1")
    data = gcc_elf(tmp_path, "libx.so", shared=True, soname="libx.so.2", needs=["libdep.so"],
                   link_dirs=[tmp_path],
                   flags=["-Wl,--disable-new-dtags,-rpath,$ORIGIN/a:/opt/b", "-Wl,-z,nodefaultlib"])
    info = elf_info(io.BytesIO(data))
    assert info.needed == ("libdep.so.1", "libc.so.6") and info.soname == "libx.so.2"
    assert info.rpath == ("$ORIGIN/a", "/opt/b") and info.runpath == ()
    assert info.nodeflib and info.interp is None and not info.is_static
    prog = gcc_elf(tmp_path, "prog", needs=["libdep.so"], link_dirs=[tmp_path],
                   flags=["-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"])
    info = elf_info(io.BytesIO(prog))
    assert info.runpath == ("$ORIGIN/../lib",) and info.rpath == () and not info.nodeflib
    assert gcc_elf(tmp_path, "static", flags=["-static"]) and elf_info(
        io.BytesIO((tmp_path / "static").read_bytes())).is_static


@pytest.mark.parametrize("bits,big", [(32, False), (64, True), (32, True)])
def test_other_classes_and_byte_orders(bits, big):
    data = tiny_elf(bits=bits, big=big, machine=3 if bits == 32 else 62,
                    interp="/lib/ld-linux.so.2", needed=("liba.so.1", "libb.so.2"),
                    soname="libself.so", runpath="/r1:/r2")
    info = elf_info(io.BytesIO(data))
    assert info == ElfInfo("/lib/ld-linux.so.2", ("liba.so.1", "libb.so.2"), (), ("/r1", "/r2"),
                           "EM_386" if bits == 32 else "EM_X86_64", False, "libself.so", bits,
                           False)
    assert elf_info_streamed(data[:40], io.BytesIO(data[40:])) == info


def test_broken_files_are_image_errors():
    with pytest.raises(ImageError, match="identification"):
        elf_info(io.BytesIO(b"\x7fELF garbage"))
    for short in (b"\x7fELF", b"\x7fELF\x02\x01"):  # the magic alone: no class, no header
        with pytest.raises(ImageError, match="identification"):
            elf_info(io.BytesIO(short))
        with pytest.raises(ImageError, match="identification"):
            elf_info_streamed(short, io.BytesIO(b""))
    with pytest.raises(ImageError, match="truncated"):
        elf_info(io.BytesIO(tiny_elf(needed=("a.so",))[:70]))
    with pytest.raises(ImageError, match="DT_STRTAB outside"):
        elf_info(io.BytesIO(tiny_elf(needed=("a.so",), strtab_outside=True)))


def test_streamed_bytes_behind_the_kept_prefix(monkeypatch):
    """Ranges behind the kept prefix are gone: the member must be read again by path."""
    data = tiny_elf(needed=("liba.so.1",))
    monkeypatch.setattr(elffile, "PREFIX_MAX", 64)  # keep only the ELF header
    with pytest.raises(BehindStream):
        elf_info_streamed(data[:64], io.BytesIO(data[64:]))


def test_hostile_sizes_are_refused_not_allocated():
    many = tuple(f"lib{'x' * 200}{i}.so" for i in range(100))  # 20 KiB of names
    with pytest.raises(ImageError, match="over 16384 bytes of library names"):
        elf_info(io.BytesIO(tiny_elf(needed=many)))
    data = bytearray(tiny_elf(needed=("a.so",)))
    data[56:58] = (0xFFFE).to_bytes(2, "little")  # e_phnum: 65534 entries of 56 bytes
    with pytest.raises(ImageError, match="unsupported program header table"):
        elf_info(io.BytesIO(bytes(data)))
