"""The fenced blocks and shell commands of a Markdown page, as the doc tests read them."""

from __future__ import annotations

from pathlib import Path


def blocks(page: Path, language: str) -> list[str]:
    """The fenced blocks of a page in ``language`` ("" for the plain ones), each fence paired with
    its own closing one."""
    found, current, inside = [], [], None
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            if inside is None:
                inside, current = line[3:].strip(), []
            else:
                if inside == language:
                    found.append("\n".join(current) + "\n")
                inside = None
        elif inside is not None:
            current.append(line)
    return found


def shell_lines(page: Path) -> list[str]:
    """The commands of a page's bash blocks, continuation lines joined, comments dropped."""
    lines = []
    for block in blocks(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines
