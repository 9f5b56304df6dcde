"""A strict reader for the block-style YAML the chart's own files are written in.

PyYAML is not a project dependency, so the deployment tests read `values.yaml`, `Chart.yaml` and
`k8s/*.yaml` with this: block mappings and sequences, plain and quoted scalars, `{}`, `[]` and flow
lists of scalars, comments, and `---` between documents. Anything else (anchors, tags, block
scalars, flow mappings with content) is refused with the line number rather than misread; when the
Helm library is installed, a test compares this reader's result with Helm's own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_KEY = re.compile(r"^([A-Za-z0-9_.\-/]+|\"[^\"]*\"|'[^']*'):(\s|$)")


class YamlSubsetError(ValueError):
    pass


@dataclass
class _Line:
    number: int
    indent: int
    text: str


def _strip_comment(text: str) -> str:
    quote = ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'" and (i == 0 or text[i - 1] in " :-[,"):
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] == " "):
            return text[:i].rstrip()
    return text.rstrip()


def scalar(text: str, number: int = 0) -> Any:
    text = text.strip()
    if (text and text[0] in "&*!|>") or (text.startswith("{") and text != "{}"):
        raise YamlSubsetError(f"line {number}: unsupported YAML: {text!r}")
    if text == "{}":
        return {}
    if text.startswith("["):
        if not text.endswith("]"):
            raise YamlSubsetError(f"line {number}: unterminated flow list: {text!r}")
        inner = text[1:-1].strip()
        return [scalar(item, number) for item in inner.split(",")] if inner else []
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text in ("", "~", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


class _Reader:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.pos = 0

    def block(self, indent: int) -> Any:
        line = self.lines[self.pos]
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(line.indent)
        return self.mapping(line.indent)

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent != indent or not (line.text == "-" or line.text.startswith("- ")):
                if line.indent > indent:
                    raise YamlSubsetError(f"line {line.number}: unexpected indentation")
                break
            rest = line.text[1:].strip()
            if not rest:
                self.pos += 1
                items.append(self.nested(indent))
            elif _KEY.match(rest):
                # "- key: value": a mapping whose first key sits two columns in.
                self.lines[self.pos] = _Line(line.number, indent + 2, rest)
                items.append(self.mapping(indent + 2))
            else:
                items.append(scalar(rest, line.number))
                self.pos += 1
        return items

    def nested(self, parent: int) -> Any:
        if self.pos >= len(self.lines) or self.lines[self.pos].indent <= parent:
            return None
        return self.block(self.lines[self.pos].indent)

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.indent != indent:
                if line.indent > indent:
                    raise YamlSubsetError(f"line {line.number}: unexpected indentation")
                break
            match = _KEY.match(line.text)
            if not match:
                raise YamlSubsetError(f"line {line.number}: expected 'key: value', got {line.text!r}")
            key = str(scalar(match.group(1), line.number))
            if key in result:
                raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
            rest = line.text[match.end() :].strip()
            self.pos += 1
            if rest:
                result[key] = scalar(rest, line.number)
            elif (
                self.pos < len(self.lines)
                and self.lines[self.pos].indent == indent
                and (self.lines[self.pos].text.startswith("- "))
            ):
                result[key] = self.sequence(indent)  # a list at the key's own indentation
            else:
                result[key] = self.nested(indent)
        return result


def load_all(text: str) -> list[Any]:
    """Every document of `text`, in order (documents that hold only comments are skipped)."""
    documents: list[list[_Line]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.rstrip() == "---":
            documents.append([])
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlSubsetError(f"line {number}: tab in indentation")
        content = _strip_comment(raw)
        if content.strip():
            documents[-1].append(_Line(number, len(content) - len(content.lstrip()), content.strip()))
    loaded = []
    for lines in documents:
        if not lines:
            continue
        reader = _Reader(lines)
        value = reader.block(lines[0].indent)
        if reader.pos != len(lines):
            raise YamlSubsetError(f"line {lines[reader.pos].number}: unexpected content")
        loaded.append(value)
    return loaded


def load(text: str) -> Any:
    documents = load_all(text)
    if len(documents) != 1:
        raise YamlSubsetError(f"expected one document, found {len(documents)}")
    return documents[0]
