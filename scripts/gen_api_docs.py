"""Render docs/api.md from the comments and definitions in proto/.

The protos are the API documentation; this turns them into one Markdown page (services, RPCs, messages
with field tables, enums). `tests/contracts` regenerates the page in memory and fails when the
committed copy differs, so run this after every proto change:

    .venv/bin/python scripts/gen_api_docs.py
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUTPUT = ROOT / "docs" / "api.md"

# Field numbers inside descriptor.proto, used to build SourceCodeInfo location paths.
FILE_MESSAGE = 4
FILE_ENUM = 5
FILE_SERVICE = 6
FILE_SYNTAX = 12
MESSAGE_FIELD = 2
MESSAGE_NESTED = 3
MESSAGE_ENUM = 4
MESSAGE_ONEOF = 8
ENUM_VALUE = 2
SERVICE_METHOD = 2

# Packages in the order a reader meets them: shared types first, then the services along the data flow.
PACKAGE_ORDER = ["common", "tenants", "marketdata", "strategy", "execution"]

Path_ = tuple[int, ...]
FDP = descriptor_pb2.FieldDescriptorProto

SCALAR_NAMES = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}


def compile_descriptor_set(proto_root: Path = PROTO_ROOT) -> descriptor_pb2.FileDescriptorSet:
    """Compile every .proto under `proto_root` with source info (comments) into a descriptor set."""
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_root}")
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "descriptors.pb"
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{proto_root}",
                f"-I{well_known}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *protos,
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code} (its messages are above)")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def leading_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[Path_, str]:
    """Leading comment of every commented element of `file`, keyed by SourceCodeInfo path."""
    return {
        tuple(loc.path): loc.leading_comments.strip()
        for loc in file.source_code_info.location
        if loc.leading_comments.strip()
    }


def walk_messages(
    messages: Iterable[descriptor_pb2.DescriptorProto], prefix: str, path: Path_
) -> Iterator[tuple[str, Path_, descriptor_pb2.DescriptorProto]]:
    """Every message (nested ones too, map entries excluded) with its full name and path."""
    for index, message in enumerate(messages):
        if message.options.map_entry:
            continue
        name = f"{prefix}.{message.name}"
        message_path = (*path, index)
        yield name, message_path, message
        yield from walk_messages(message.nested_type, name, (*message_path, MESSAGE_NESTED))


def walk_enums(
    file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[str, Path_, descriptor_pb2.EnumDescriptorProto]]:
    """Every enum of `file`, top-level and nested in messages, with its full name and path."""
    for index, enum in enumerate(file.enum_type):
        yield f"{file.package}.{enum.name}", (FILE_ENUM, index), enum
    for name, path, message in walk_messages(file.message_type, file.package, (FILE_MESSAGE,)):
        for index, enum in enumerate(message.enum_type):
            yield f"{name}.{enum.name}", (*path, MESSAGE_ENUM, index), enum


def to_paragraphs(comment: str) -> str:
    """Join wrapped comment lines into paragraphs; blank comment lines separate paragraphs."""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in comment.split("\n\n")]
    return "\n\n".join(escape_html(p) for p in paragraphs if p)


def to_cell(comment: str) -> str:
    """A comment as one table cell: one line, pipes escaped."""
    return " ".join(to_paragraphs(comment).split()).replace("|", "\\|")


def escape_html(text: str) -> str:
    """Escape `<` and `>` outside backtick code spans, so `<tenant_id>` is shown, not eaten as a tag."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def type_link(type_name: str, known: set[str], package: str) -> str:
    """A message or enum type as Markdown: a link when it is defined in these protos, named relative to
    `package` (the package being rendered)."""
    name = type_name.lstrip(".")
    label = name.removeprefix(f"{package}.")
    if name in known:
        return f"[`{label}`](#{anchor(name)})"
    return f"`{label}`"


def anchor(full_name: str) -> str:
    return full_name.replace(".", "-").lower()


def field_type(
    field: descriptor_pb2.FieldDescriptorProto,
    map_entries: dict[str, descriptor_pb2.DescriptorProto],
    known: set[str],
    package: str,
) -> str:
    if field.type_name.lstrip(".") in map_entries:
        key, value = (
            field_type(f, map_entries, known, package) for f in map_entries[field.type_name.lstrip(".")].field
        )
        return f"map&lt;{key}, {value}&gt;"
    if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
        rendered = type_link(field.type_name, known, package)
    else:
        rendered = f"`{SCALAR_NAMES[field.type]}`"
    if field.label == FDP.LABEL_REPEATED:
        return f"repeated {rendered}"
    if field.proto3_optional:
        return f"optional {rendered}"
    return rendered


def package_key(file: descriptor_pb2.FileDescriptorProto) -> tuple[int, str]:
    service = file.package.split(".")[1]
    rank = PACKAGE_ORDER.index(service) if service in PACKAGE_ORDER else len(PACKAGE_ORDER)
    # Within a package: the service file first, then events, then anything else.
    return rank, ("0" if file.name.endswith("_service.proto") else "1") + file.name


def render(descriptor_set: descriptor_pb2.FileDescriptorSet) -> str:
    """The whole API reference as Markdown."""
    files = sorted(
        (f for f in descriptor_set.file if f.package.startswith("tradebot.")),
        key=package_key,
    )
    known: set[str] = set()
    map_entries: dict[str, descriptor_pb2.DescriptorProto] = {}
    for file in files:
        for name, _, message in walk_messages(file.message_type, file.package, (FILE_MESSAGE,)):
            known.add(name)
            for nested in message.nested_type:
                if nested.options.map_entry:
                    map_entries[f"{name}.{nested.name}"] = nested
        known.update(name for name, _, _ in walk_enums(file))

    out: list[str] = [
        "# Tradebot API reference",
        "",
        "<!-- Generated from proto/ by scripts/gen_api_docs.py. Do not edit by hand. -->",
        "",
        "Every service, RPC, message, field and enum value of the platform's gRPC and NATS contracts, "
        "rendered from the comments in `proto/`. The conventions that apply everywhere (decimal strings, "
        "times, pagination, tenancy, step-up, errors, NATS subjects) are in "
        "[`tradebot.common.v1`](#package-tradebot-common-v1).",
        "",
        "## Contents",
        "",
    ]
    packages = list(dict.fromkeys(f.package for f in files))
    for package in packages:
        out.append(f"- [`{package}`](#package-{anchor(package)})")
        for file in (f for f in files if f.package == package):
            out.extend(f"  - service [`{s.name}`](#{anchor(f'{package}.{s.name}')})" for s in file.service)
    out.append("")

    for package in packages:
        out += [f'<a id="package-{anchor(package)}"></a>', "", f"## Package `{package}`", ""]
        for file in (f for f in files if f.package == package):
            out += render_file(file, known, map_entries)
    return "\n".join(out).rstrip("\n") + "\n"


def render_file(
    file: descriptor_pb2.FileDescriptorProto,
    known: set[str],
    map_entries: dict[str, descriptor_pb2.DescriptorProto],
) -> list[str]:
    comments = leading_comments(file)
    out = [f"### `{file.name}`", ""]
    if (FILE_SYNTAX,) in comments:
        out += [to_paragraphs(comments[(FILE_SYNTAX,)]), ""]

    for s_index, service in enumerate(file.service):
        full = f"{file.package}.{service.name}"
        s_path: Path_ = (FILE_SERVICE, s_index)
        out += [f'<a id="{anchor(full)}"></a>', "", f"#### Service `{service.name}`", ""]
        out += [to_paragraphs(comments.get(s_path, "")), ""]
        out += ["| RPC | Request | Response | Description |", "|---|---|---|---|"]
        for m_index, method in enumerate(service.method):
            stream = "stream " if method.server_streaming else ""
            client_stream = "stream " if method.client_streaming else ""
            out.append(
                f"| `{method.name}` | {client_stream}{type_link(method.input_type, known, file.package)} "
                f"| {stream}{type_link(method.output_type, known, file.package)} "
                f"| {to_cell(comments.get((*s_path, SERVICE_METHOD, m_index), ''))} |"
            )
        out.append("")

    for name, path, message in walk_messages(file.message_type, file.package, (FILE_MESSAGE,)):
        out += [f'<a id="{anchor(name)}"></a>', "", f"#### Message `{name.removeprefix(file.package + '.')}`"]
        out += ["", to_paragraphs(comments.get(path, "")), ""]
        if not message.field:
            out += ["No fields.", ""]
            continue
        out += ["| # | Field | Type | Description |", "|---|---|---|---|"]
        for f_index, field in enumerate(message.field):
            description = to_cell(comments.get((*path, MESSAGE_FIELD, f_index), ""))
            if field.HasField("oneof_index") and not field.proto3_optional:
                description = f"One of `{message.oneof_decl[field.oneof_index].name}`. {description}"
            rendered_type = field_type(field, map_entries, known, file.package)
            out.append(f"| {field.number} | `{field.name}` | {rendered_type} | {description} |")
        out.append("")
        for o_index, oneof in enumerate(message.oneof_decl):
            oneof_comment = comments.get((*path, MESSAGE_ONEOF, o_index))
            if oneof_comment:
                out += [f"Oneof `{oneof.name}`: {to_cell(oneof_comment)}", ""]

    for name, path, enum in walk_enums(file):
        out += [f'<a id="{anchor(name)}"></a>', "", f"#### Enum `{name.removeprefix(file.package + '.')}`"]
        out += ["", to_paragraphs(comments.get(path, "")), ""]
        out += ["| Value | Number | Description |", "|---|---|---|"]
        for v_index, value in enumerate(enum.value):
            description = to_cell(comments.get((*path, ENUM_VALUE, v_index), ""))
            out.append(f"| `{value.name}` | {value.number} | {description} |")
        out.append("")
    return out


def main() -> int:
    text = render(compile_descriptor_set())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
