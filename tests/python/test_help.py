"""The help texts and what is made from them: `imgpack help CMD`, `imgpack
CMD -h` and `imgpack CMD --help` say the same; the man page the build
writes (cmake/man_page.cmake) holds exactly those texts, so it cannot
drift from them; bash completion offers the commands and options they
list."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import IMGPACK, run_imgpack
from installed import BUILD, SOURCE, VERSION


def commands():
    """The commands `imgpack --help` lists."""
    text = run_imgpack("--help", check=0).stdout
    listing = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  ([a-z]+) ", listing, re.M)


def help_of(*command):
    return run_imgpack(*command, "--help", check=0).stdout


def test_every_way_to_ask_for_help_gives_the_same_text():
    assert len(commands()) >= 9
    assert run_imgpack("-h", check=0).stdout == help_of()
    assert run_imgpack("help", check=0).stdout == help_of()
    for command in commands():
        text = help_of(command)
        assert text.startswith(f"Usage: imgpack {command}")
        assert run_imgpack(command, "-h", check=0).stdout == text
        assert run_imgpack("help", command, check=0).stdout == text
    for wrong in (["help", "frobnicate"], ["help", "pack", "info"]):
        done = run_imgpack(*wrong, check=2)
        assert done.stderr.startswith("imgpack: ") and not done.stdout


def test_help_lists_version():
    assert re.search(r"^  --version ", help_of(), re.M)
    assert run_imgpack("--version", check=0).stdout == f"imgpack {VERSION}\n"


def unescape(roff):
    """Text of a no-fill block, as cmake/man_page.cmake escaped it."""
    text = re.sub(r"^\\&", "", roff, flags=re.M)
    return text.replace("\\-", "-").replace("\\e", "\\")


def test_the_man_page_is_the_help_texts():
    page = (BUILD / "imgpack.1").read_text()
    assert f'.TH IMGPACK 1 "" "imgpack {VERSION}"' in page
    blocks = dict(re.findall(r"^\.S[HS] ([^\n]*)\n\.nf\n(.*?)^\.fi$", page,
                             re.M | re.S))
    assert unescape(blocks["DESCRIPTION"]) == help_of()
    sections = re.findall(r"^\.SS imgpack (\S+)$", page, re.M)
    assert sections == commands()
    usages = []
    for command in [None] + sections:
        text = help_of(*([command] if command else []))
        if command:
            assert unescape(blocks[f"imgpack {command}"]) == text
        usage = text.split("\n\n", 1)[0][len("Usage: "):]
        usages.append(usage.replace("\n" + " " * len("Usage: "), "\n"))
    assert unescape(blocks["SYNOPSIS"]) == "\n".join(usages) + "\n"


def test_the_man_page_formats_without_warnings():
    if not shutil.which("groff"):
        pytest.skip("no groff (package groff-base)")
    done = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(BUILD / "imgpack.1")],
        capture_output=True, text=True, env=without_preload())
    assert done.returncode == 0 and not done.stderr, done.stderr


def without_preload():
    """The environment minus the ASan tree's preloaded runtime, which is
    for the binding, not for other programs (troff trips over it)."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def complete(*words):
    """What tools/imgpack.bash offers for the command line `words`, the
    last being the word under the cursor."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _imgpack; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(
        ["bash", "-c", script, "complete", str(SOURCE / "tools/imgpack.bash"),
         IMGPACK, *words], capture_output=True, text=True,
        env=dict(without_preload(), LC_ALL="C"))
    assert done.returncode == 0, done.stderr
    return sorted(filter(None, done.stdout.split("\n")))


def test_completion_offers_what_the_help_lists():
    assert complete("") == sorted(commands() + ["help", "--help",
                                                "--version"])
    assert complete("help", "in") == ["info"]
    assert complete("pack", "--res") == ["--resize", "--resume"]
    for command in commands():
        assert set(complete(command, "--")) == {"--help"} | set(
            re.findall(r"--[a-z][a-z0-9-]*", help_of(command)))
    assert complete("info", "some") == []  # files: bash's own completion
