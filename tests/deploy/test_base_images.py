"""The image's base images come from one place, deploy/base-images.env, each pinned to a digest
that ``./dev pin-images`` refreshes: no FROM line names an image of its own, the Dockerfile's ARG
defaults are that file's values, and every value is a tag with its digest (a tag alone moves
when its publisher pushes a rebuild).

What this cannot check here: that each digest is still its tag's newest. This machine reaches no
container registry (docs/operations.md, "Base images").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PINS = ROOT / "deploy" / "base-images.env"
IMAGE = re.compile(r"^[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9_][A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$")


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and name not in pins, line
            pins[name] = value
    return pins


def global_args_and_froms(path: Path) -> tuple[dict[str, str], list[tuple[str, str | None]]]:
    """The ARGs declared before the first FROM (with their defaults), and each FROM's image and
    stage name."""
    args: dict[str, str] = {}
    froms: list[tuple[str, str | None]] = []
    for line in path.read_text("utf-8").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "ARG" and not froms:
            name, _, default = words[1].partition("=")
            args[name] = default
        elif words[0] == "FROM":
            rest = [w for w in words[1:] if not w.startswith("--")]
            froms.append((rest[0], rest[2] if len(rest) == 3 and rest[1] == "AS" else None))
    return args, froms


def test_every_from_line_uses_a_base_image_from_the_pin_file() -> None:
    pins = read_pins(PINS)
    args, froms = global_args_and_froms(DOCKERFILE)
    assert pins and froms
    # The Dockerfile's defaults are the pin file's values, name for name.
    assert args == pins
    stages: set[str] = set()
    for image, stage in froms:
        # Either an earlier stage or one of the pinned ARGs, never an image named in place.
        reference = re.fullmatch(r"\$\{([A-Z_]+)\}", image)
        assert image in stages or (reference and reference[1] in pins), image
        if stage:
            stages.add(stage)
    assert {re.sub(r"[${}]", "", image) for image, _ in froms if image not in stages} == set(pins)


def test_each_pin_is_a_tag_with_its_digest() -> None:
    for name, value in read_pins(PINS).items():
        matched = IMAGE.match(value)
        assert matched and matched[1], f"{name}={value}: a tag without its digest"


def test_pin_images_writes_each_digest_into_the_pin_file_and_the_dockerfile(
    tmp_path: Path,
) -> None:
    # On a copy of the files it edits, with a stand-in for `crane digest` (no registry answers
    # here): the command's own part, reading the pins and writing both files, runs for real.
    work = tmp_path / "checkout"
    (work / "deploy").mkdir(parents=True)
    shutil.copy2(ROOT / "dev", work / "dev")
    shutil.copy2(DOCKERFILE, work / "deploy" / "Dockerfile")
    shutil.copy2(PINS, work / "deploy" / "base-images.env")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crane = bin_dir / "crane"
    crane.write_text(
        '#!/bin/sh\n[ "$1" = digest ] || exit 2\n'
        'printf "sha256:%s\\n" "$(printf %s "$2" | sha256sum | cut -c1-64)"\n',
        encoding="utf-8",
    )
    crane.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for _ in range(2):  # a second run re-pins from the tag, never stacking digests
        ran = subprocess.run(
            ["bash", str(work / "dev"), "pin-images"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
    pinned = read_pins(work / "deploy" / "base-images.env")
    assert pinned.keys() == read_pins(PINS).keys()
    for name, value in pinned.items():
        tag = read_pins(PINS)[name].split("@")[0]
        assert re.fullmatch(re.escape(tag) + r"@sha256:[0-9a-f]{64}", value), value
    args, _ = global_args_and_froms(work / "deploy" / "Dockerfile")
    assert args == pinned
